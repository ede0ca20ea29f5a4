"""The explorer's sweep heatmap in a real browser: a click on a cell re-runs that cell, and the
picked cell lives in the page's address."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlparse

import pytest

from tests.browser.test_dashboards import _save_screenshot

pytestmark = pytest.mark.browser

PAGE = "/voila/render/03-backtest-explorer.ipynb"
EQUITY_TITLE = ".wb-sweep-equity-fig .gtitle"
HEATMAP = ".wb-sweep-fig .js-plotly-plot"


def _cell_position(page, fast: int, slow: int) -> tuple[float, float]:
    """Page coordinates of the centre of the heatmap cell (fast, slow), from plotly's own axes."""
    return page.evaluate(
        """([fast, slow]) => {
          const gd = document.querySelector('.wb-sweep-fig .js-plotly-plot');
          const box = gd.querySelector('.nsewdrag').getBoundingClientRect();
          const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
          return [box.left + xa.l2p(slow), box.top + ya.l2p(fast)];
        }""", [fast, slow])


def _wait_title(page, text: str, timeout: int = 30_000) -> None:
    page.wait_for_function(
        "([sel, want]) => { const t = document.querySelector(sel); return t && t.textContent.includes(want); }",
        arg=[EQUITY_TITLE, text], timeout=timeout)


def _wait_text(page, selector: str, text: str, timeout: int = 30_000) -> None:
    """Wait until the element ``selector`` shows ``text``: one callback updates the figures, the note and
    the tables in turn, and the browser applies each update as it arrives."""
    page.wait_for_function(
        "([sel, want]) => { const t = document.querySelector(sel); return t && t.innerText.includes(want); }",
        arg=[selector, text], timeout=timeout)


def test_clicking_a_heatmap_cell_shows_that_pair(served, page):
    page.goto(f"{served.url}{PAGE}")
    page.wait_for_selector(f"{HEATMAP}[data-wb-click='wb-sweep-pick']")
    page.wait_for_selector(EQUITY_TITLE)
    before = page.locator(EQUITY_TITLE).first.text_content()
    assert "fast=7, slow=60" not in before

    page.locator(HEATMAP).scroll_into_view_if_needed()
    x, y = _cell_position(page, 7, 60)
    started = time.perf_counter()
    page.mouse.click(x, y)
    _wait_title(page, "fast=7, slow=60")
    redraw_s = time.perf_counter() - started
    print(f"click to redrawn equity figure: {redraw_s:.2f} s")

    symbol = page.locator(".wb-sweep-symbol select").evaluate("s => s.options[s.selectedIndex].text").strip()
    assert f"Equity: {symbol} · fast=7, slow=60" in page.locator(EQUITY_TITLE).first.text_content()
    drawdown = page.locator(".wb-sweep-drawdown-fig .gtitle").first
    page.wait_for_function("t => t.textContent.includes('fast=7, slow=60')", arg=drawdown.element_handle())
    assert page.locator(".wb-sweep-fast select").evaluate("s => s.options[s.selectedIndex].text").strip() == "7"
    assert page.locator(".wb-sweep-slow select").evaluate("s => s.options[s.selectedIndex].text").strip() == "60"
    _wait_text(page, ".wb-sweep-pair-note", "fast=7, slow=60 on")
    assert "matches the sweep" in page.locator(".wb-sweep-pair-note").inner_text()
    _wait_text(page, ".wb-sweep-wf-table", "fast=7, slow=60: Sharpe in test")
    _save_screenshot(page, "03-backtest-explorer-sweep", element=".wb-sweep")
    query = parse_qs(urlparse(page.url).query)
    assert query.get("sweep-fast") == ["7"] and query.get("sweep-slow") == ["60"]

    # a second cell, then a deep link to the first one
    x, y = _cell_position(page, 12, 90)
    page.mouse.click(x, y)
    _wait_title(page, "fast=12, slow=90")
    page.goto(f"{served.url}{PAGE}?sweep-fast=7&sweep-slow=60")
    _wait_title(page, "fast=7, slow=60", timeout=120_000)
    assert page.locator(".wb-panel-error").count() == 0
    assert page.blocked == []


def _point_position(page, x, y) -> tuple[float, float]:
    """Page coordinates of the centre of the heatmap cell at axis values (x, y)."""
    return _cell_position(page, y, x)


def test_another_family_shows_its_heatmap_and_a_click_re_runs_that_set(served, page):
    page.goto(f"{served.url}{PAGE}")
    page.wait_for_selector(f"{HEATMAP}[data-wb-click='wb-sweep-pick']")
    page.wait_for_selector(EQUITY_TITLE)
    started = time.perf_counter()
    page.locator(".wb-sweep-family select").select_option(label="rsi_reversion")
    page.wait_for_function(
        "() => { const t = document.querySelector('.wb-sweep-fig .gtitle');"
        " const gd = document.querySelector('.wb-sweep-fig .js-plotly-plot');"
        " return t && t.textContent.includes('rsi_reversion') && gd && gd.getAttribute('data-wb-click'); }",
        timeout=60_000)
    print(f"family change to redrawn heatmap: {time.perf_counter() - started:.2f} s")
    heat_title = page.locator(".wb-sweep-fig .gtitle").first.text_content()
    assert "max over exit_level" in heat_title
    assert page.locator(".wb-sweep-xaxis select").evaluate("s => s.options[s.selectedIndex].text").strip() == "lower"

    page.locator(HEATMAP).scroll_into_view_if_needed()
    x, y = _point_position(page, 30, 10)  # x: lower, y: window
    page.mouse.click(x, y)
    _wait_title(page, "window=10, lower=30, exit_level=")
    _wait_text(page, ".wb-sweep-pair-note", "window=10, lower=30, exit_level=")
    assert "matches the sweep" in page.locator(".wb-sweep-pair-note").inner_text()
    assert page.locator(".wb-sweep-window select").evaluate("s => s.options[s.selectedIndex].text").strip() == "10"
    query = parse_qs(urlparse(page.url).query)
    assert query.get("sweep-window") == ["10"] and query.get("sweep-lower") == ["30"]
    # a deep link to a set of another family
    page.goto(f"{served.url}{PAGE}?sweep-family=rsi_reversion&sweep-window=14&sweep-lower=25&sweep-exit_level=55")
    _wait_title(page, "window=14, lower=25, exit_level=55", timeout=120_000)
    assert page.locator(".wb-panel-error").count() == 0
    assert page.blocked == []
