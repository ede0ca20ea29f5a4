"""load_prices: one documented return shape."""

from __future__ import annotations

import pandas as pd

from research.data import load_prices


def test_a_str_gives_flat_columns_and_a_list_gives_field_symbol_columns(store):
    flat = load_prices("GOOG", start="2010-01-01", end="2010-03-31", store=store)
    one = load_prices(["GOOG"], start="2010-01-01", end="2010-03-31", store=store)
    assert not isinstance(flat.columns, pd.MultiIndex)
    assert list(one.columns.names) == ["field", "symbol"]
    pd.testing.assert_series_equal(one["close"]["GOOG"], flat["close"], check_names=False)
