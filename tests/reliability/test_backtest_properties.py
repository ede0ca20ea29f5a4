"""Backtests: metamorphic properties on the bundled sample (shared/RELIABILITY.md, "Backtests").

* the symbols' column order never changes a result (shared-cash books sequence simultaneous
  buys, which decides who is filled when cash runs short);
* scaling every price by a constant leaves returns unchanged;
* adding an all-NaN asset leaves the other symbols' results unchanged (it is excluded with a
  warning).
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest

from research.backtest import backtest
from research.data import load_prices

pytestmark = pytest.mark.slow

SYMBOLS = ["SPX", "IXIC", "GOOG", "MSFT"]
# (label, backtest options): all_in splits the book equally; fixed_fraction 0.6 x 4 symbols with
# max_gross 2 asks for more than the cash, so buys on the same bar compete for it
BOOKS = [
    ("shared all_in", {"shared_cash": True}),
    ("shared cash short", {"shared_cash": True, "sizing": "fixed_fraction",
                           "sizing_params": {"fraction": 0.6}, "max_gross": 2.0}),
]


@pytest.fixture(scope="module")
def prices() -> pd.DataFrame:
    # the years all four symbols trade in the sample (GOOG ends in March 2013): ~800 bars
    return load_prices(SYMBOLS, source="sample").loc["2010-01-01":"2013-03-01"]


def _ordered(prices: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    return prices[[(f, s) for f in prices.columns.get_level_values(0).unique() for s in order]]


def _run(prices: pd.DataFrame, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return backtest(prices, "ma_crossover", params={"fast": 10, "slow": 30}, fees=0.001, slippage=0.0005,
                        **options)


@pytest.mark.parametrize("label, options", BOOKS, ids=[b[0] for b in BOOKS])
def test_column_order_never_changes_a_shared_book(prices, label, options, case):
    base = _run(prices, **options)
    perms = [list(p) for p in itertools.permutations(SYMBOLS)][1:]
    worst, orders_differ, trades_differ = 0.0, 0, 0
    for perm in perms[::3]:  # 8 of the 23 other orders, each symbol first at least once
        res = _run(_ordered(prices, perm), **options)
        worst = max(worst, float((res.equity["portfolio"] - base.equity["portfolio"]).abs().max()))
        orders_differ += not res.orders.reset_index(drop=True).equals(base.orders.reset_index(drop=True))
        trades_differ += not res.trades.reset_index(drop=True).equals(base.trades.reset_index(drop=True))
        assert list(res.positions.columns) == [*perm, "cash"] and res.params["symbols"] == perm
        pd.testing.assert_frame_equal(res.positions[[*SYMBOLS, "cash"]], base.positions)
    case("backtests", f"column order, {label}: max |equity difference| over 8 orders", 0.0, worst, worst == 0.0)
    case("backtests", f"column order, {label}: orders and trades identical", "8/8",
         f"{8 - max(orders_differ, trades_differ)}/8", orders_differ == trades_differ == 0)


def test_cash_runs_short_in_the_competing_book(prices, case):
    # the fixed-fraction book does ask for more than its cash: the case above is not vacuous
    res = _run(prices, **BOOKS[1][1])
    asked = res.weights[SYMBOLS].abs().sum(axis=1).max()
    case("backtests", "cash-short book exercises partial fills", "gross weight reaches ~1 (cash spent)",
         f"max gross weight {asked:.3f}", asked > 0.95)


@pytest.mark.parametrize("scale", [0.01, 37.0])
def test_scaling_prices_leaves_returns_unchanged(prices, scale, case):
    fields = prices.columns.get_level_values(0)
    scaled = prices.copy()
    price_cols = [c for c in prices.columns if c[0] in {"open", "high", "low", "close"}]
    scaled[price_cols] = prices[price_cols] * scale
    assert set(fields) >= {"open", "close"}
    for label, options in [("per symbol", {}), *BOOKS]:
        a, b = _run(prices, **options), _run(scaled, **options)
        diff = float(np.nanmax(np.abs(a.returns.to_numpy() - b.returns.to_numpy())))
        case("backtests", f"prices x {scale:g}, {label}: max |return difference|", "< 1e-12", f"{diff:.1e}",
             diff < 1e-12)


def test_an_all_nan_asset_leaves_the_others_unchanged(prices, case):
    empty = prices.xs("close", axis=1, level=0)["SPX"].rename("EMPTY") * np.nan
    extra = prices.copy()
    for f in prices.columns.get_level_values(0).unique():
        extra[(f, "EMPTY")] = empty.to_numpy()
    extra = extra[sorted(extra.columns, key=lambda c: (list(prices.columns.get_level_values(0).unique()).index(c[0]),
                                                        c[1] != "EMPTY"))]  # the empty asset first
    for label, options in [("per symbol", {}), *BOOKS]:
        base = _run(prices, **options)
        with pytest.warns(UserWarning, match="EMPTY: no valid prices; excluded"):
            res = backtest(extra, "ma_crossover", params={"fast": 10, "slow": 30}, fees=0.001, slippage=0.0005,
                           **options)
        same = res.equity.equals(base.equity) and res.stats.equals(base.stats) and res.excluded == ["EMPTY"]
        nan_totals = int(res.equity.isna().to_numpy().sum())
        case("backtests", f"all-NaN asset added, {label}: others identical, no NaN totals",
             "identical equity and stats; 0 NaN", f"{'identical' if same else 'DIFFERENT'}; {nan_totals} NaN",
             same and nan_totals == 0)
