"""The news panel: latest headlines per symbol with links, daily sentiment beside the price."""

from __future__ import annotations

import json

import ipywidgets as widgets
import pandas as pd

from research.news import load_news
from research.news.store import NewsStore
from research.viz.panels.layout import PLOTLY_MIME
from research.viz.panels.market import market_overview
from research.viz.panels.news import ALL, headlines_html, news_panel
from research.workflow.results import PublishedRun, write_output


def _walk(w):
    yield w
    for c in getattr(w, "children", ()):
        yield from _walk(c)


def _run(tmp_path, news) -> PublishedRun:
    run_dir = tmp_path / "daily" / "20101231T220000-test"
    idx = pd.date_range("2010-06-01", "2010-12-31", freq="B", tz="UTC", name="timestamp")
    prices = pd.DataFrame({"SPX": range(len(idx)), "BTC-USD": range(len(idx))}, index=idx, dtype="float64")
    write_output(run_dir / "outputs", "news", news)
    write_output(run_dir / "outputs", "prices", prices)
    return PublishedRun("daily", "20101231T220000-test", run_dir, {"as_of": "2010-12-31"})


def test_news_panel_lists_headlines_filters_by_symbol_and_draws_sentiment_beside_price(tmp_path):
    news = load_news(["SPX", "BTC-USD"], start="2010-06-01", end="2010-12-31", store=NewsStore(tmp_path / "data"))
    run = _run(tmp_path, news)
    panel = news_panel(run)
    table = next(w for w in _walk(panel) if "wb-news-headlines" in w._dom_classes)
    pick = next(w for w in _walk(panel) if isinstance(w, widgets.Dropdown))
    assert pick.options == (ALL, "BTC-USD", "SPX") and "SPX" in table.value and "BTC-USD" in table.value
    assert 'target="_blank" rel="noopener noreferrer"' in table.value and "Synthetic headlines" in json.dumps(
        [w.value for w in _walk(panel) if isinstance(w, widgets.HTML)])
    pick.value = "SPX"
    assert "BTC-USD</td>" not in table.value and "SPX</td>" in table.value
    out = next(w for w in _walk(panel) if "wb-news-fig" in getattr(w, "_dom_classes", ()))
    spec = out.outputs[0]["data"][PLOTLY_MIME]
    assert spec["layout"]["title"]["text"].startswith("SPX: price and daily news sentiment")
    assert {t["type"] for t in spec["data"]} == {"bar", "scatter"}
    assert "as of 2010-12-31" in json.dumps(spec["layout"]["annotations"])


def test_headlines_are_escaped_and_only_web_links_are_linked():
    news = pd.DataFrame({"available": pd.to_datetime(["2024-01-02 10:00", "2024-01-02 11:00"], utc=True),
                         "symbol": ["AAA", "AAA"], "publisher": ["<b>x</b>", "y"], "sentiment": [0.5, -0.5],
                         "title": ["<script>alert(1)</script>", "ok"], "url": ["javascript:alert(1)", "https://e.com/a?b=1&c=2"]})
    text = headlines_html(news)
    assert "<script>" not in text and "&lt;script&gt;" in text and "javascript:" not in text
    assert 'href="https://e.com/a?b=1&amp;c=2"' in text and "&lt;b&gt;x&lt;/b&gt;" in text
    assert "No headlines" in headlines_html(news, symbol="BBB")


def test_the_market_overview_shows_the_news_panel_only_for_runs_with_news(tmp_path):
    news = load_news(["SPX"], start="2010-11-01", end="2010-12-31", store=NewsStore(tmp_path / "data"))
    run = _run(tmp_path, news)
    page = market_overview(run)
    assert any("wb-news" in getattr(w, "_dom_classes", ()) for w in _walk(page))
