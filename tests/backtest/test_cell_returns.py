"""One cell of a fused sweep: its per-bar returns, recomputed from the sweep's own inputs."""

from __future__ import annotations

import pandas as pd
import pytest

from research.backtest.sweep import sweep_ma_crossover
from research.data import load_prices


@pytest.fixture(scope="module")
def sweep():
    prices = load_prices(["GOOG", "SPX"], progress=False)
    return prices, sweep_ma_crossover(prices, fast=[5, 10], slow=[20, 30], fees=0.001, slippage=0.0005)


def test_a_cell_is_the_column_of_the_trial_returns(sweep):
    _, sw = sweep
    one = sw.cell_returns("SPX", fast=10, slow=30)
    pd.testing.assert_series_equal(one, sw.trial_returns("SPX")[(10, 30)], check_names=False)
    assert not one.equals(sw.cell_returns("GOOG", fast=10, slow=30))


def test_a_cell_compounds_to_its_row_of_the_table(sweep):
    _, sw = sweep
    row = sw.table.set_index(["symbol", "fast", "slow"]).loc[("GOOG", 5, 20)]
    one = sw.cell_returns("GOOG", fast=5, slow=20)
    assert (1 + one).prod() - 1 == pytest.approx(row["total_return"], rel=1e-6)


def test_a_cell_must_be_named_exactly(sweep):
    _, sw = sweep
    with pytest.raises(KeyError, match="not a parameter"):
        sw.cell_returns("SPX", fast=5, window=20)
    with pytest.raises(KeyError, match="2 parameter sets"):
        sw.cell_returns("SPX", fast=5)
    with pytest.raises(KeyError, match="no rows for symbol 'NOPE'"):
        sw.cell_returns("NOPE", fast=5, slow=20)
