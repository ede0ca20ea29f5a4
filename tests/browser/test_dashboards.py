"""Every dashboard in a real browser: renders offline, reacts to widgets, leaks nothing."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from research.viz.panels import DASHBOARDS
from research.viz.panels.server import UNUSED_EXTENSIONS

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(__file__).with_name("screenshots")
DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots"

#: per dashboard, (control, figure) pairs to try in order: the first control with two options is changed
INTERACTIONS = {
    "01-market-overview": [("wb-prices-scale", "wb-prices-fig"), ("wb-vol-window", "wb-vol-fig")],
    "02-predictions": [("wb-pva-symbol", "wb-pva-fig"), ("wb-acc-metric", "wb-acc-fig")],
    "03-backtest-explorer": [("wb-bt-params", "wb-bt-equity-fig"), ("wb-bt-symbol", "wb-bt-equity-fig")],
    "04-portfolio-risk": [("wb-roll-window", "wb-roll-fig"), ("wb-dd-curve", "wb-dd-fig")],
    "05-pipeline-health": [("wb-runs-filter", "wb-runs-fig")],
    "06-paper-trading": [("wb-paper-view", "wb-paper-equity-fig")],
}
ALL_DRAWN = """() => {
  const figs = [...document.querySelectorAll('.wb-figure')];
  return figs.length > 0 && figs.every(f => f.querySelector('.js-plotly-plot .main-svg'))
    && document.querySelectorAll('.wb-deferred-pending').length === 0;
}"""
SOURCE_SNIPPETS = ("from research.viz.panels import", "research.viz.panels")


def _title(page, fig: str) -> str:
    return page.locator(f".{fig} .gtitle").first.text_content() or ""


def _change_a_widget(page, name: str) -> tuple[str, str, str]:
    for control, fig in INTERACTIONS[name]:
        select = page.locator(f".{control} select")
        if select.count() == 0:
            continue
        labels = [o.strip() for o in select.locator("option").all_text_contents()]
        current = select.evaluate("s => s.options[s.selectedIndex].text").strip()
        others = [label for label in labels if label != current]
        if not others:
            continue
        before = _title(page, fig)
        select.select_option(label=others[-1])
        page.wait_for_function(
            "([sel, old]) => { const t = document.querySelector(sel); return t && t.textContent !== old; }",
            arg=[f".{fig} .gtitle", before], timeout=30_000)
        return control, before, _title(page, fig)
    pytest.fail(f"{name}: no control with two options among {INTERACTIONS[name]}")


def _save_screenshot(page, name: str, element: str | None = None) -> None:
    """Always to tests/browser/screenshots/; to docs/screenshots/ (small, committed) when that copy
    is missing, when the page shows a real run (WORKBENCH_BROWSER_RUNS_DIR), or when
    WORKBENCH_UPDATE_SCREENSHOTS=1, so ordinary test runs leave the committed images alone."""
    from PIL import Image

    SCREENSHOTS.mkdir(exist_ok=True)
    shot = SCREENSHOTS / f"{name}.png"
    if element:  # one part of the page (e.g. a panel below the fold)
        page.locator(element).first.screenshot(path=str(shot))
    else:
        page.screenshot(path=str(shot))
    docs = DOCS_SCREENSHOTS / f"{name}.png"
    if docs.exists() and not (os.environ.get("WORKBENCH_BROWSER_RUNS_DIR")
                              or os.environ.get("WORKBENCH_UPDATE_SCREENSHOTS") == "1"):
        return
    DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with Image.open(shot) as img:
        small = img.convert("RGB")
        small = small.resize((small.width * 3 // 4, small.height * 3 // 4), Image.Resampling.LANCZOS)
        small = small.quantize(colors=96, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        small.save(DOCS_SCREENSHOTS / f"{name}.png", optimize=True)


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_renders_offline_reacts_and_shows_no_source_or_error(served, page, name):
    page.goto(f"{served.url}/voila/render/{name}.ipynb")
    page.wait_for_selector(".wb-page")
    page.wait_for_function(ALL_DRAWN)

    assert page.locator(".wb-run-id").first.text_content() == served.run_id
    assert page.locator(".wb-as-of").first.text_content() == served.as_of
    assert page.locator(".wb-source").first.text_content()
    assert page.locator(".wb-panel-error").count() == 0, page.locator(".wb-panel-error").all_text_contents()

    _save_screenshot(page, name)
    control, before, after = _change_a_widget(page, name)
    assert after != before, f"changing {control} did not redraw its figure"

    text = page.inner_text("body")
    html = page.content()
    assert "Traceback" not in text and "There was an error when executing" not in text
    assert page.locator('[data-mime-type="application/vnd.jupyter.stderr"]').count() == 0, "stderr reached the page"
    assert page.locator(".jp-InputArea, .jp-Cell-inputWrapper .jp-InputArea-editor").count() == 0
    assert not any(snippet in html for snippet in SOURCE_SNIPPETS), "notebook source reached the page"
    assert page.blocked == [], f"requests that left 127.0.0.1: {page.blocked}"
    assert any(url.endswith("/voila/wb/plotly-workbench.min.js") for url in page.requests)
    assert not any("jupyterlab-plotly" in url or "plotly.min.js" in url for url in page.requests)
    unused = [u for u in page.requests if any(f"/labextensions/{name}/" in u for name in UNUSED_EXTENSIONS)]
    assert unused == [], f"lab extensions no dashboard uses were sent: {unused[:3]}"


def _get(url: str) -> tuple[int, str]:
    request = urllib.request.Request(url)
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


FORBIDDEN = [
    "/.env", "/voila/files/.env", "/voila/files/prices.csv", "/voila/files/notes.txt", "/voila/files/voila.json",
    "/voila/files/01-market-overview.ipynb", "/voila/files/..%2F.env", "/voila/files/%2E%2E/.env",
    "/voila/files/../mlruns/mlflow.db", "/voila/files/..%2Fmlruns%2Fmlflow.db",
    "/voila/files/..%2Fdata%2Fstore%2FSPX.parquet", "/voila/render/.env", "/voila/render/prices.csv",
    "/voila/render/..%2F.env", "/voila/render/..%2Fmlruns%2Fmlflow.db", "/voila/static/..%2F..%2F.env",
    "/voila/templates/lab/static/..%2F..%2F..%2F.env", "/voila/labextensions/..%2F..%2F.env",
    "/voila/api/contents/.env", "/voila/api/contents/prices.csv", "/voila/api/contents/..%2F",
    "/api/contents/01-market-overview.ipynb", "/api/kernels", "/api/sessions", "/files/.env", "/tree",
    "/mlruns/mlflow.db", "/data/store/SPX.parquet", "/voila/tree/..%2F",
]


def test_only_the_dashboards_are_served(served):
    for path in FORBIDDEN:
        status, body = _get(served.url + path)
        assert status in (403, 404, 405), f"{path} answered {status}"
        assert served.canary not in body, f"{path} leaked a planted file"
        assert "Traceback" not in body, f"{path} showed a traceback"


def test_listing_names_dashboards_only_and_never_their_source(served):
    status, body = _get(f"{served.url}/voila/api/contents/")
    assert status == 200
    names = sorted(item["name"] for item in json.loads(body)["content"])
    assert names == sorted(f"{n}.ipynb" for n in DASHBOARDS)
    status, body = _get(f"{served.url}/voila/api/contents/01-market-overview.ipynb")
    assert status == 200 and json.loads(body)["content"] is None
    assert not any(snippet in body for snippet in SOURCE_SNIPPETS)


def test_tables_download_as_csv_and_figures_as_png(served, page):
    page.goto(f"{served.url}/voila/render/01-market-overview.ipynb")
    page.wait_for_function(ALL_DRAWN)
    link = page.locator(".wb-returns-table a.wb-download")
    with page.expect_download() as download:
        link.click()
    assert download.value.suggested_filename == "returns-table.csv"
    assert "symbol" in Path(download.value.path()).read_text().splitlines()[0]
    page.locator(".wb-prices-fig .js-plotly-plot").hover()
    assert page.locator(".wb-prices-fig [data-title='Download plot as a PNG']").count() == 1
    assert page.blocked == []


def test_a_link_opens_the_same_view_and_changes_rewrite_the_link(served, page):
    page.goto(f"{served.url}/voila/render/01-market-overview.ipynb?returns-period=1+year&prices-scale=log+price")
    page.wait_for_function(ALL_DRAWN)
    page.wait_for_function("() => (document.querySelector('.wb-returns-fig .gtitle') || {}).textContent"
                           " && document.querySelector('.wb-returns-fig .gtitle').textContent.includes('1 year')")
    page.wait_for_function("() => ((document.querySelector('.wb-prices-fig .gtitle') || {}).textContent || '')"
                           ".includes('log price')", timeout=30_000)
    assert "log price" in _title(page, "wb-prices-fig")
    page.locator(".wb-vol-window select").select_option(index=0)
    page.locator(".wb-returns-period select").select_option(index=1)  # 1 week
    page.wait_for_function("() => window.location.search.includes('returns-period=1+week')")
    assert "prices-scale=log+price" in page.url and "vol-window=" in page.url
    assert page.blocked == []


def test_the_news_panel_lists_headlines_and_follows_its_symbol(served, page):
    page.goto(f"{served.url}/voila/render/01-market-overview.ipynb")
    page.wait_for_function(ALL_DRAWN)
    news = page.locator(".wb-news")
    assert news.count() == 1, "the fixture run holds news: the market page must show its panel"
    rows = page.locator(".wb-news-headlines tr")
    assert rows.count() > 1 and "headline" in rows.first.inner_text()
    assert "Synthetic headlines" in page.locator(".wb-news-synthetic").first.inner_text()
    select = page.locator(".wb-news-symbol select")
    symbols = [o.strip() for o in select.locator("option").all_text_contents()][1:]
    assert symbols, "no symbol to filter the headlines by"
    target = symbols[-1]
    select.select_option(label=target)
    page.wait_for_function(
        "(s) => ((document.querySelector('.wb-news-fig .gtitle') || {}).textContent || '').startsWith(s)",
        arg=target, timeout=30_000)
    page.wait_for_function(
        "(s) => [...document.querySelectorAll('.wb-news-headlines tr')].slice(1)"
        ".every(r => r.cells[1] && r.cells[1].textContent === s)", arg=target, timeout=30_000)
    assert _title(page, "wb-news-fig").startswith(target)
    assert page.blocked == []
