"""Walk-forward of every strategy family: in-sample choice by the family sweep, no look-ahead,
the stitched book is the engine's backtest of the stitched signals and stop levels."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from research.backtest import backtest
from research.backtest.family_sweep import sweep_family
from research.backtest.walkforward import walk_forward
from research.data import load_prices
from research.strategies.catalog import get_strategy
from research.strategies.signals import Signals
from research.strategies.stops import RiskSchedule

GRIDS = {
    "ma_crossover": {"fast": [5, 10, 20], "slow": [30, 60], "stop_loss": [0, 0.05]},
    "rsi_reversion": {"window": [7, 14], "lower": [25, 30, 35], "exit_level": [50, 60], "direction": ["long", "both"]},
    "bollinger_breakout": {"window": [10, 20, 40], "k": [1.0, 1.5, 2.0], "trailing_stop": [0, 0.08]},
    "time_series_momentum": {"lookback": [10, 21, 63], "threshold": [0.0, 0.02], "take_profit": [0, 0.1]},
    "candlestick": {"bullish": ["engulfing", "hammer"], "hold": [2, 5, 10]},
}
ONE_SET = {
    "ma_crossover": {"fast": [10], "slow": [40], "trailing_stop": [0.06]},
    "rsi_reversion": {"window": [14], "lower": [35], "exit_level": [55], "direction": ["both"], "stop_loss": [0.04]},
    "bollinger_breakout": {"window": [20], "k": [1.5], "take_profit": [0.05]},
    "time_series_momentum": {"lookback": [21], "direction": ["both"], "stop_loss": [0.03]},
    "candlestick": {"bullish": ["hammer"], "hold": [5], "trailing_stop": [0.05]},
}
FAMILIES = list(GRIDS)
WINDOWS = {"train": 250, "test": 100}
COSTS = {"fees": 0.001, "slippage": 0.0005}
_STOPS = ("stop_loss", "take_profit", "trailing_stop")


@pytest.fixture(scope="module")
def prices() -> pd.DataFrame:
    return load_prices("GOOG").iloc[:700]


@pytest.fixture(scope="module")
def runs(prices) -> dict[str, object]:
    return {fam: walk_forward(prices, fam, grid, **WINDOWS, **COSTS) for fam, grid in GRIDS.items()}


def _chosen(row: pd.Series, names: list[str]) -> dict[str, object]:
    return {n: (row[n].item() if hasattr(row[n], "item") else row[n]) for n in names}


@pytest.mark.parametrize("family", FAMILIES)
def test_each_fold_picks_the_best_row_of_the_family_sweep(prices, runs, family):
    wf = runs[family]
    names = list(GRIDS[family])
    assert len(wf.folds) >= 4 and {*names, "is_sharpe", "oos_sharpe", "oos_return"} <= set(wf.folds.columns)
    for _, row in wf.folds.iterrows():
        res = sweep_family(prices, family, GRIDS[family], start=row["train_start"], end=row["train_end"], **COSTS)
        best = res.best()
        assert _chosen(row, names) == {n: (best[n].item() if hasattr(best[n], "item") else best[n]) for n in names}
        assert row["is_sharpe"] == pytest.approx(best["sharpe"], rel=1e-12)


def _stitched(prices: pd.DataFrame, family: str, folds: pd.DataFrame, names: list[str]):
    """The stitched signals and stop levels, built from the folds table as the rule states."""
    close = prices["close"].to_frame("GOOG")
    fields = {k: prices[k].to_frame("GOOG") for k in ("open", "high", "low", "close")}
    index, n = close.index, len(close)
    direction = pd.DataFrame(0.0, index=index, columns=["GOOG"])
    levels = {k: pd.DataFrame(0.0, index=index, columns=["GOOG"]) for k in _STOPS}
    for _, row in folds.iterrows():
        params = _chosen(row, names)
        c, d = index.get_loc(row["test_start"]), index.get_loc(row["test_end"]) + 1
        call = {k: v for k, v in params.items() if k not in _STOPS}
        sig = get_strategy(family).run(fields, **call).direction["GOOG"].to_numpy()
        stop = n if d == n else d - 1
        direction.iloc[c - 1:stop, 0] = sig[c - 1:stop]
        for k in _STOPS:
            levels[k].iloc[c:d, 0] = float(params.get(k, 0.0))
    return fields, Signals(direction, name="stitched"), RiskSchedule(**levels)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_stitched_book_is_the_engine_backtest_of_the_stitched_signals(prices, runs, family):
    wf = runs[family]
    fields, signals, schedule = _stitched(prices, family, wf.folds, list(GRIDS[family]))
    first = wf.folds["test_start"].iloc[0]
    ref = backtest(fields, signals, risk=schedule, start=first, **COSTS)
    pd.testing.assert_frame_equal(wf.result.equity, ref.equity)
    pd.testing.assert_frame_equal(wf.result.orders.reset_index(drop=True), ref.orders.reset_index(drop=True))
    assert wf.result.equity.index[0] == first and wf.result.orders["timestamp"].min() >= first
    for _, row in wf.folds.iterrows():
        r = wf.result.returns["GOOG"].loc[row["test_start"]:row["test_end"]]
        assert row["oos_return"] == pytest.approx(np.prod(1 + r) - 1, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("family", FAMILIES)
def test_one_set_in_every_fold_is_that_sets_own_backtest(prices, family):
    """The same set in every fold: the stitched book is the plain backtest of that set and its stops."""
    grid = ONE_SET[family]
    wf = walk_forward(prices, family, grid, **WINDOWS, **COSTS)
    params = {k: v[0] for k, v in grid.items() if k not in _STOPS}
    risk = {k: v[0] for k, v in grid.items() if k in _STOPS}
    ref = backtest(prices, family, params=params, risk=risk, start=wf.folds["test_start"].iloc[0], **COSTS)
    assert len(ref.trades) > 0
    pd.testing.assert_series_equal(wf.result.equity["GOOG"], ref.equity["GOOG"])
    pd.testing.assert_frame_equal(wf.result.trades.reset_index(drop=True), ref.trades.reset_index(drop=True))


@settings(max_examples=6)
@given(data=st.data())
@pytest.mark.parametrize("family", FAMILIES)
def test_prices_after_a_test_start_change_nothing_before_them(prices, runs, family, data):
    wf = runs[family]
    names = list(GRIDS[family])
    k = data.draw(st.integers(0, len(wf.folds) - 1), label="fold")
    start = prices.index.get_loc(wf.folds["test_start"].iloc[k]) + data.draw(st.integers(0, 99), label="offset")
    start = min(start, len(prices) - 2)
    seed = data.draw(st.integers(0, 2**16), label="seed")
    factor = np.random.default_rng(seed).uniform(0.7, 1.3, (len(prices) - start, 1)).cumprod(axis=0)
    noisy = prices.copy()
    noisy.iloc[start:, [noisy.columns.get_loc(c) for c in ("open", "high", "low", "close")]] *= factor
    other = walk_forward(noisy, family, GRIDS[family], **WINDOWS, **COSTS)
    keep = wf.folds.index <= k
    pd.testing.assert_frame_equal(other.folds.loc[keep, [*names, "is_sharpe"]], wf.folds.loc[keep, [*names, "is_sharpe"]])
    before = prices.index[start - 1]
    pd.testing.assert_series_equal(other.result.returns["GOOG"].loc[:before], wf.result.returns["GOOG"].loc[:before])


def test_a_crossover_grid_is_the_crossover_walk_forward(prices):
    grid = {"fast": [5, 10, 20], "slow": [30, 60]}
    a = walk_forward(prices, "ma_crossover", grid, **WINDOWS, **COSTS)
    b = walk_forward(prices, fast=grid["fast"], slow=grid["slow"], **WINDOWS, **COSTS)
    pd.testing.assert_frame_equal(a.folds, b.folds)
    pd.testing.assert_frame_equal(a.result.equity, b.result.equity)


def test_the_default_grid_is_the_catalogs(prices):
    wf = walk_forward(prices, "bollinger_breakout", **WINDOWS)
    assert wf.params["grid"] == {k: list(v) for k, v in get_strategy("bollinger_breakout").grid.items()}
    assert {"window", "k"} <= set(wf.folds.columns)


@pytest.mark.parametrize(("args", "kwargs", "match"), [
    (("no_such",), {}, "no fused sweep for 'no_such'.*rsi_reversion"),
    (("rsi_reversion", {"widow": [5]}), {}, "rsi_reversion has no parameter 'widow'"),
    (("rsi_reversion", {"window": [5], "drawdown_halt": [0.2]}), {}, "drawdown_halt cannot be a walk-forward grid"),
    (("rsi_reversion",), {"fast": [5]}, "fast= and slow= are the crossover's"),
    (("rsi_reversion", {"window": [1]}), {}, "no valid parameter set of rsi_reversion"),
    (("bollinger_breakout", {"window": []}), {}, "no value for 'window'"),
    (("ma_crossover",), {"metric": "luck"}, "metric must be one of"),
])
def test_bad_input_is_named(prices, args, kwargs, match):
    with pytest.raises(ValueError, match=match), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the refused sets' warning
        walk_forward(prices, *args, **{**WINDOWS, **kwargs})


def test_a_fixed_drawdown_halt_acts_on_the_stitched_book(prices):
    wf = walk_forward(prices, "time_series_momentum", {"lookback": [10, 21]}, risk={"max_drawdown": 0.05},
                      **WINDOWS, **COSTS)
    eq = wf.result.equity["GOOG"]
    assert (eq / eq.cummax() - 1).min() <= -0.05  # the halt fired...
    assert wf.result.trades["exit_reason"].eq("halt").any()  # ...and closed the book


@pytest.mark.parametrize("family", FAMILIES)
def test_figure_labels_each_fold_with_its_pick(runs, family):
    from research.viz.backtest import walk_forward_figure

    wf = runs[family]
    fig = walk_forward_figure(wf)
    labels = [a.text for a in fig.layout.annotations]
    assert labels == [wf.pick_label(row) for _, row in wf.folds.iterrows()] and len(labels) == len(wf.folds)
    assert all(label == "flat" or all(f"{n}=" in label for n in GRIDS[family]) for label in labels)


def test_each_symbol_walks_forward_on_its_own():
    """Several symbols (one listed later): each has its own folds, sets and book, those of its own walk-forward."""
    both = load_prices(["SPX", "GOOG"]).loc["2003":"2009"]
    grid = {"window": [7, 14], "lower": [25, 35], "stop_loss": [0, 0.05]}
    wf = walk_forward(both, "rsi_reversion", grid, train=300, test=200, **COSTS)
    for sym in ("SPX", "GOOG"):
        alone = walk_forward(both.xs(sym, axis=1, level=1), "rsi_reversion", grid, train=300, test=200, **COSTS)
        mine = wf.folds[wf.folds["symbol"] == sym].reset_index(drop=True)
        cols = [*grid, "is_sharpe", "oos_return"]
        pd.testing.assert_frame_equal(mine[cols], alone.folds[cols].astype(mine[cols].dtypes.to_dict()))
        pd.testing.assert_series_equal(wf.result.equity[sym].dropna(), alone.result.equity.iloc[:, 0].dropna(),
                                       check_names=False)
    goog = wf.folds[wf.folds["symbol"] == "GOOG"]
    assert goog["window"].isna().iloc[0] and goog["window"].notna().iloc[-1]  # flat before it lists, then trades
