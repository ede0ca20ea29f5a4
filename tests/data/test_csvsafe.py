"""Spreadsheet-safe CSV: no text cell can start a formula; numbers are written unchanged."""

from __future__ import annotations

import csv
import io

import numpy as np
import pandas as pd
from hypothesis import example, given, settings
from hypothesis import strategies as st

from research.data.csvsafe import FORMULA_START, escape_cell, escape_formulas, to_csv

text = st.text(alphabet=st.sampled_from(list("=+-@\t\r\"',;ab1.e ")), max_size=8)


@settings(max_examples=200, deadline=None)
@example(cells=["-", "-1.5", "=1+2", "+3e-4", "@x", "\t", "\r=", ""], numbers=[-1.5, 0.0, -1e-300, np.nan])
@example(cells=["a\r=1+2", "b\n@x"], numbers=[1.0])  # a line break inside a cell must not start a new row
@given(cells=st.lists(text, min_size=1, max_size=8),
       numbers=st.lists(st.floats(allow_infinity=False), min_size=1, max_size=8))
def test_no_written_text_cell_starts_a_formula_and_numbers_round_trip(cells, numbers):
    n = max(len(cells), len(numbers))
    frame = pd.DataFrame({"=name": (cells * n)[:n], "value": (numbers * n)[:n]})
    out = to_csv(frame, index=False, float_format="%.17g")
    rows = list(csv.reader(io.StringIO(out, newline="")))
    assert rows[0] == ["'=name", "value"]
    for (cell, number), row in zip(zip(frame["=name"], frame["value"], strict=True), rows[1:], strict=True):
        assert row[0] == escape_cell(cell) in (cell, "'" + cell)
        if row[0].startswith(FORMULA_START):  # only a plain number is left as it is
            assert float(row[0]) == float(cell)
        assert (np.isnan(number) and row[1] == "") or float(row[1]) == number


def test_numbers_as_text_and_numeric_columns_are_untouched():
    frame = pd.DataFrame({"a": ["-12.5", "+3", "-", "=A1", None], "b": [-1, 2, 3, 4, 5]},
                         index=pd.Index(["@i", "x", "-2", "y", "z"], name="+idx"))
    out = escape_formulas(frame)
    assert list(out["a"][:4]) == ["-12.5", "+3", "'-", "'=A1"] and pd.isna(out["a"].iloc[4])
    assert list(out["b"]) == [-1, 2, 3, 4, 5] and out["b"].dtype == frame["b"].dtype
    assert list(out.index) == ["'@i", "x", "-2", "y", "z"] and out.index.name == "'+idx"
    assert list(frame["a"][:4]) == ["-12.5", "+3", "-", "=A1"]  # the caller's frame is not changed
