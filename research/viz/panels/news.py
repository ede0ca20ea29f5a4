"""The news panel of the market overview: latest headlines per symbol, daily sentiment beside price.

Reads the run outputs ``news`` (one row per headline and symbol, as ``load_news`` returns them,
up to the run's as-of time) and ``prices`` (the wide close matrix). The daily sentiment is
computed by :func:`research.news.features.session_sentiment` (the point-in-time rule: an item
published after a session's close counts for the next session), not here.
"""

from __future__ import annotations

import html

import ipywidgets as widgets
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from research.news.features import session_sentiment
from research.timeutil import to_naive_utc_index
from research.viz.panels.layout import (
    dropdown,
    figure_output,
    note,
    require,
    section,
    show_figure,
    stamp,
)
from research.viz.panels.viewer_safe import on_change
from research.workflow.results import PublishedRun

__all__ = ["news_panel", "headlines_html", "sentiment_figure", "ALL"]

ALL = "all symbols"
_TIME_COLUMNS = ("published", "seen", "available")


def _news(run: PublishedRun) -> pd.DataFrame:
    require(run, "news")
    news = run.table("news")
    for col in _TIME_COLUMNS:
        if col in news.columns:
            news[col] = pd.to_datetime(news[col], utc=True)
    return news.sort_values("available", ascending=False, kind="stable").reset_index(drop=True)


def _tone(score: float) -> str:
    if score >= 0.05:
        return "wb-news-pos"
    if score <= -0.05:
        return "wb-news-neg"
    return "wb-news-neu"


def headlines_html(news: pd.DataFrame, *, symbol: str = ALL, rows: int = 20) -> str:
    """The latest headlines (of ``symbol``, or of all symbols) as escaped HTML, newest first.

    Each line: when it became available (UTC), the symbol, the publisher, the sentiment and the
    title, linked to the article when its url is http(s).
    """
    items = news if symbol == ALL else news[news["symbol"] == symbol]
    if items.empty:
        return '<div class="wb-news-empty">No headlines for this selection.</div>'
    lines = []
    for row in items.head(rows).itertuples(index=False):
        title = html.escape(str(row.title))
        url = str(getattr(row, "url", "") or "")
        if url.lower().startswith(("http://", "https://")):
            title = f'<a href="{html.escape(url, quote=True)}" target="_blank" rel="noopener noreferrer">{title}</a>'
        when = pd.Timestamp(row.available).strftime("%Y-%m-%d %H:%M")
        lines.append(
            f'<tr><td class="wb-news-time">{when}</td><td>{html.escape(str(row.symbol))}</td>'
            f"<td>{html.escape(str(row.publisher))}</td>"
            f'<td class="{_tone(float(row.sentiment))}">{float(row.sentiment):+.2f}</td><td>{title}</td></tr>')
    head = "<tr><th>available (UTC)</th><th>symbol</th><th>publisher</th><th>sentiment</th><th>headline</th></tr>"
    # in a scroll box: on a phone the table scrolls sideways inside the page, the page does not
    return (f'<div class="wb-table-scroll"><table class="wb-table wb-news-table">{head}{"".join(lines)}'
            "</table></div>")


def sentiment_figure(prices: pd.DataFrame | None, news: pd.DataFrame, symbol: str, run: PublishedRun | None) -> go.Figure:
    """Close price of ``symbol`` and its daily mean news sentiment (bars, one per session)."""
    mine = news[news["symbol"] == symbol]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    if mine.empty:
        fig.update_layout(title=f"{symbol}: no news in this run")
        return stamp(fig, run)
    end = run.as_of if run is not None and run.as_of else mine["available"].max()
    daily = session_sentiment(mine, symbol, start=mine["available"].min(), end=end)
    daily = daily[daily["news_count"] > 0]
    x = to_naive_utc_index(daily.index)
    colors = np.where(daily["sentiment_mean"] >= 0, "#2e7d32", "#c62828")
    fig.add_trace(go.Bar(x=x, y=daily["sentiment_mean"], name="daily sentiment", marker_color=colors, opacity=0.6,
                         customdata=daily["news_count"], hovertemplate="%{x|%Y-%m-%d}: %{y:+.2f} over %{customdata} items"),
                  secondary_y=True)
    if prices is not None and symbol in prices.columns:
        close = prices[symbol].dropna()
        close = close[close.index >= daily.index.min()] if len(daily) else close
        fig.add_trace(go.Scatter(x=to_naive_utc_index(close.index), y=close,
                                 name="close", mode="lines", line={"color": "#1f3b57"}), secondary_y=False)
    fig.update_yaxes(title_text="close", secondary_y=False)
    fig.update_yaxes(title_text="mean sentiment", range=[-1, 1], secondary_y=True)
    fig.update_layout(title=f"{symbol}: price and daily news sentiment", hovermode="x unified", legend_orientation="h")
    return stamp(fig, run)


def news_panel(run: PublishedRun) -> widgets.Widget:
    """Latest headlines per symbol with source, time, sentiment and a link; daily sentiment beside price."""
    news = _news(run)
    prices = run.table("prices") if run.has("prices") else None
    if prices is not None and not isinstance(prices.index, pd.DatetimeIndex):
        prices.index = pd.to_datetime(prices.index, utc=True)
    symbols = sorted(news["symbol"].unique())
    pick = dropdown([ALL, *symbols], description="Symbol", dom_class="wb-news-symbol", width="260px")
    table = widgets.HTML(headlines_html(news))
    table.add_class("wb-table")  # never wider than the page (the table scrolls inside it)
    table.add_class("wb-news-headlines")
    first = symbols[0] if symbols else ""
    out = figure_output(sentiment_figure(prices, news, first, run), dom_class="wb-news-fig", height=380)

    def changed(change: dict) -> None:
        table.value = headlines_html(news, symbol=change["new"])
        show_figure(out, sentiment_figure(prices, news, change["new"] if change["new"] != ALL else first, run))

    on_change(pick, changed, names="value")
    synthetic = "source" in news.columns and news["source"].astype(str).str.startswith("synthetic").any()
    label = note("Synthetic headlines: generated by the workbench's seeded news generator, not real news.",
                 dom_class="wb-news-synthetic") if synthetic else note("", dom_class="wb-news-synthetic")
    return section("News", label, pick, table, out, dom_class="wb-news")
