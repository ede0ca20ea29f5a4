"""A stale symbol in a real browser: flagged wherever it appears, never where a page opens, and out
of the book past its last bar.

The fixture run holds one symbol whose data ends months before the as-of date
(``run_fixture.STALE_SYMBOL``). Which symbols are stale, and their last bars, are read here from
the run's price data with the library's rule (:func:`research.data.freshness.is_stale`), so the
test also holds for a real run (``WORKBENCH_BROWSER_RUNS_DIR``) that has a stale symbol.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from research.data.asof import AsOf
from research.data.calendars import calendar_of
from research.data.freshness import is_stale
from research.workflow.results import latest
from tests.browser.test_dashboards import ALL_DRAWN

pytestmark = pytest.mark.browser

#: a table as the viewer sees it: one dict per row, keyed by lower-case header text
TABLE_ROWS = """(cls) => {
  const table = document.querySelector(`.${cls} table`);
  if (!table) return null;
  const heads = [...table.querySelectorAll('thead th')].map(th => th.textContent.trim().toLowerCase());
  return [...table.querySelectorAll('tbody tr')].map(tr => {
    const cells = [...tr.querySelectorAll('th, td')].map(td => td.textContent.trim());
    const row = {};
    heads.slice(heads.length - cells.length).forEach((h, i) => { row[h] = cells[i]; });
    return row;
  });
}"""


@pytest.fixture(scope="module")
def stale(served) -> dict[str, str]:
    """``{symbol: last bar date}`` of the stale symbols of the served run, from its prices."""
    runs = Path(os.environ.get("WORKBENCH_BROWSER_RUNS_DIR") or served.home / "runs") / "daily"
    run = latest("daily", runs_dir=runs)
    prices = run.table("prices")
    prices.index = pd.to_datetime(prices.index, utc=True)
    when = AsOf.parse(run.as_of, interval="1d")
    found = {str(s): str(prices[s].last_valid_index().date()) for s in prices
             if is_stale(calendar_of(str(s)), "1d", prices[s].last_valid_index(), when)}
    if not found:
        assert os.environ.get("WORKBENCH_BROWSER_RUNS_DIR"), "the fixture run must hold a stale symbol"
        pytest.skip("the published run has no stale symbol")
    return found


def _open(page, served, name: str) -> None:
    page.goto(f"{served.url}/voila/render/{name}.ipynb")
    page.wait_for_function(ALL_DRAWN)


def _rows(page, cls: str) -> list[dict[str, str]]:
    rows = page.evaluate(TABLE_ROWS, cls)
    assert rows, f"no table .{cls} on the page"
    return rows


def _column(row: dict[str, str], *words: str) -> str:
    """The cell of the first header containing all ``words``."""
    key = next((k for k in row if all(w in k for w in words)), None)
    assert key is not None, f"no column with {words} among {list(row)}"
    return row[key]


def test_signals_and_alerts_flag_the_stale_symbol_dated_by_its_last_bar(served, page, stale):
    _open(page, served, "05-pipeline-health")
    for row in _rows(page, "wb-signals-table"):
        symbol = row["symbol"]
        assert _column(row, "stale") == ("yes" if symbol in stale else "no"), row
        if symbol in stale:
            assert float(_column(row, "target")) == 0.0, f"a stale symbol with a target position: {row}"
            assert _column(row, "last bar").startswith(stale[symbol]), row
    alerts = [r for r in _rows(page, "wb-alerts-table") if r["symbol"] in stale]
    assert alerts, "no alert about the stale symbol (its data alert at least)"
    for row in alerts:
        assert _column(row, "dated") == stale[row["symbol"]], f"a stale symbol's alert not dated by its last bar: {row}"
        assert _column(row, "stale") == "yes", row
    assert page.blocked == []


def test_market_page_flags_the_stale_symbol(served, page, stale):
    _open(page, served, "01-market-overview")
    note = page.locator(".wb-returns-stale").first.inner_text()
    assert all(symbol in note for symbol in stale), note
    for row in _rows(page, "wb-freshness-table"):
        assert _column(row, "stale") == ("yes" if row["symbol"] in stale else "no"), row
    cards = " ".join(page.locator(".wb-headline .wb-card").all_inner_texts())
    for symbol, last in stale.items():
        assert f"{symbol} (last bar {last})" in cards, f"the headline's data card does not name {symbol}: {cards!r}"


@pytest.mark.parametrize(("name", "control"), [("02-predictions", "wb-pva-symbol"),
                                               ("03-backtest-explorer", "wb-bt-symbol")])
def test_symbol_pickers_open_on_a_fresh_symbol_and_flag_the_stale_one(served, page, stale, name, control):
    _open(page, served, name)
    select = page.locator(f".{control} select")
    options = [o.strip() for o in select.locator("option").all_text_contents()]
    current = select.evaluate("s => s.options[s.selectedIndex].text").strip()
    assert current not in stale, f"{name} opens on the stale symbol {current}"
    shown = [s for s in stale if s in options]
    assert shown, f"{name}: the stale symbol is not offered at all ({options})"
    assert set(options[-len(shown):]) == set(shown), f"{name}: stale symbols not listed last: {options}"
    note = page.locator(".wb-stale-note").first.inner_text()
    for symbol in shown:
        assert f"{symbol} (last bar {stale[symbol]})" in note, note
    assert page.blocked == []


def test_the_risk_book_does_not_hold_the_stale_symbol_past_its_last_bar(served, page, stale):
    _open(page, served, "04-portfolio-risk")
    traces = page.evaluate("""() => {
      const gd = document.querySelector('.wb-exposure-fig .js-plotly-plot');
      return gd._fullData.map(t => ({name: t.name, x: Array.from(t.x, String), y: Array.from(t.y, Number)}));
    }""")
    by_name = {t["name"]: t for t in traces}
    for symbol, last in stale.items():
        trace = by_name.get(symbol)
        assert trace is not None, f"no exposure line for {symbol}: {list(by_name)}"
        after = [y for x, y in zip(trace["x"], trace["y"], strict=True) if x[:10] > last]
        assert after, f"the exposure figure ends at {symbol}'s last bar: nothing after it to check"
        assert all(y == 0 for y in after), f"the book holds {symbol} after its last bar ({last})"
        held = [y for x, y in zip(trace["x"], trace["y"], strict=True) if x[:10] <= last]
        assert any(y > 0 for y in held), f"{symbol} never held: the check above proves nothing"
    for row in _rows(page, "wb-exposure-table"):
        if row["symbol"] in stale:
            assert float(_column(row, "weight")) == 0.0 and _column(row, "stale") == "yes", row
    assert page.blocked == []
