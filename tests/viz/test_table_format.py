"""How the dashboards' tables are written for a reader (``research.viz.panels.tables``): human
headers, numbers never in scientific notation, booleans, timestamps, explicit formats, raw CSV."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pandas as pd
import pytest

from research.viz.panels.tables import (
    _table_markup,
    cell_text,
    column_label,
    number_text,
    table_html,
)

SCIENTIFIC = re.compile(r"\d[eE][+-]?\d")


def _headers(markup: str) -> list[str]:
    return re.findall(r"<th(?: [^>]*)?>(.*?)</th>", markup)


def _cells(markup: str) -> list[list[str]]:
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", markup)[1:]]


def _csv(box) -> pd.DataFrame:
    found = re.search(r'href="data:text/csv;base64,([^"]+)"', box.value)
    assert found, "no CSV download"
    return pd.read_csv(io.StringIO(base64.b64decode(found.group(1)).decode()))


@pytest.mark.parametrize(("name", "label"), [
    ("pnl", "P&L"), ("qty", "Quantity"), ("as_of", "As of"), ("entry_price", "Entry price"),
    ("previous_signal", "Previous signal"), ("order_id", "Order"), ("target_position", "Target position"),
    ("depth [%]", "Depth [%]"), ("duration [s]", "Duration [s]"), ("stopped at", "Stopped at"),
    ("qty_paper", "Quantity paper"), ("periods_per_year", "Bars per year"),
    # names that are not lower-case words are someone's deliberate spelling: kept
    ("Sharpe Ratio", "Sharpe Ratio"), ("fast=7, slow=60", "fast=7, slow=60"),
    ("walk-forward: pick", "walk-forward: pick"), ("VaR", "VaR"), (3, "3"),
])
def test_column_labels_are_humanised(name, label):
    assert column_label(name) == label


@pytest.mark.parametrize("value", [2.411e4, -2.411e4, 1.5e-7, 3.2e-12, 1e20, -7.7e15, 123456789.123, 1e-300,
                                   np.float32(2.5e-9), np.int64(10**12)])
def test_numbers_are_never_in_scientific_notation(value):
    assert not SCIENTIFIC.search(number_text(value)), number_text(value)
    assert not SCIENTIFIC.search(cell_text(value))


def test_numbers_have_separators_and_decimals_by_magnitude():
    assert number_text(24110.531) == "24,110.53"
    assert number_text(12345678.9) == "12,345,679"
    assert number_text(3.0) == "3" and number_text(np.int64(8267)) == "8,267"
    assert number_text(-0.4047) == "-0.4047" and number_text(0.000123) == "0.000123"
    assert number_text(-0.0) == "0" and number_text(1e-20) == "0"
    assert number_text(float("nan")) == "" and number_text(None) == ""


def test_a_table_writes_cells_for_a_reader_and_its_csv_stays_raw():
    frame = pd.DataFrame({
        "entry_time": pd.to_datetime(["2024-01-02", "2024-02-05"], utc=True),
        "exit_time": pd.to_datetime(["2024-01-03 14:30", "2024-02-06 09:05:07.123456"], utc=True, format="ISO8601"),
        "pnl": [24110.531, -3.2],
        "changed": [True, False],
        "as_of": ["1986-03-14T00:00:00+00:00", "2018-12-31T00:00:00.000000+00:00"],
        "note": ["a", None],
        "weight": [np.nan, 0.25],
        "n": [3.0, 4.0],
    })
    box = table_html(frame, dom_class="wb-demo-table")
    markup = box.value
    assert _headers(markup) == ["Entry", "Exit", "P&amp;L", "Changed", "As of", "Note", "Weight", "N"]
    assert _cells(markup) == [
        ["2024-01-02", "2024-01-03 14:30", "24,110.53", "yes", "1986-03-14", "a", "", "3"],
        ["2024-02-05", "2024-02-06 09:05", "-3.20", "no", "2018-12-31", "", "0.2500", "4"],
    ]
    assert not SCIENTIFIC.search(markup.split("<a ")[0]) and "True" not in markup and "nan" not in markup.lower()
    assert "T00:00:00" not in markup.split("<a ")[0] and ".123456" not in markup
    back = _csv(box)  # the download: original names, full precision, raw values
    assert list(back.columns) == list(frame.columns)
    assert back["pnl"].tolist() == [24110.531, -3.2] and back["changed"].tolist() == [True, False]
    assert back["as_of"].tolist() == list(frame["as_of"])


def test_explicit_formats_and_labels_win_but_never_print_scientific_notation():
    frame = pd.DataFrame({"ret": [0.01234, -0.5], "pnl": [2.411e4, 1.0], "signal": [1.0, -1.0]})
    markup = _table_markup(frame, max_rows=10, formats={"ret": "+.2%", "pnl": ".4g", "signal": "+.0f"},
                           labels={"ret": "Return of the trade"})
    assert _headers(markup) == ["Return of the trade", "P&amp;L", "Signal"]
    rows = _cells(markup)
    assert [r[0] for r in rows] == ["+1.23%", "-50.00%"] and [r[2] for r in rows] == ["+1", "-1"]
    assert rows[0][1] == "24,110" and rows[1][1] == "1"  # ".4g" would print 2.411e+04: the default is used
    assert not SCIENTIFIC.search(markup)


def test_numbers_are_right_aligned_and_text_left():
    frame = pd.DataFrame({"symbol": ["SPX"], "close": [2506.85], "value": ["12.35%"]})
    markup = _table_markup(frame, max_rows=10, formats=None)
    assert "<td>SPX</td>" in markup and '<td class="wb-num">2,506.85</td>' in markup
    assert '<td class="wb-num">12.35%</td>' in markup  # numbers already written as text align as numbers


def test_a_digest_table_downloads_the_full_frame():
    shown = pd.DataFrame({"metric": ["Sharpe ratio"], "value": ["0.60"]})
    full = pd.DataFrame({"key": ["summary / Sharpe Ratio", "periods_per_year"], "value": [0.6030194478146548, 252]})
    box = table_html(shown, dom_class="wb-demo-table", csv=full)
    assert "download CSV (2 rows)" in box.value
    assert _csv(box)["key"].tolist() == ["summary / Sharpe Ratio", "periods_per_year"]


def test_tables_wrap_and_scroll_instead_of_overlapping():
    from research.viz.panels.layout import _CSS, table_row

    row = table_row(table_html(pd.DataFrame({"a": [1]}), dom_class="wb-x-table"), dom_class="wb-x-row")
    assert {"wb-row", "wb-x-row"} <= set(row._dom_classes) and row.layout.flex_flow == "row wrap"
    assert '<div class="wb-table-scroll">' in row.children[0].value  # a wide table scrolls inside its box
    assert re.search(r"\.wb-table-scroll \{[^}]*overflow-x: auto", _CSS)
    assert re.search(r"\.wb-row \{[^}]*flex-wrap: wrap", _CSS)
