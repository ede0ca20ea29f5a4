"""Walk-forward: parameters chosen in-sample only, stitched out-of-sample result, no look-ahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from research.backtest.sweep import sweep_ma_crossover
from research.backtest.walkforward import fold_bounds, walk_forward
from research.data import load_prices

GRID = {"fast": [5, 10, 20, 40], "slow": [30, 60, 120]}


@pytest.fixture(scope="module")
def spx() -> pd.DataFrame:
    return load_prices("SPX", end="2008-12-31")


@pytest.fixture(scope="module")
def wf(spx):
    return walk_forward(spx, **GRID, train=504, test=252, fees=0.001)


def test_fold_bounds():
    assert fold_bounds(10, train=4, test=3) == [(0, 4, 4, 7), (3, 7, 7, 10)]
    assert fold_bounds(10, train=4, test=3, anchored=True) == [(0, 4, 4, 7), (0, 7, 7, 10)]
    assert fold_bounds(11, train=4, test=3)[-1] == (3, 7, 7, 10)  # a 1-bar tail is too short for a fold
    with pytest.raises(ValueError, match="train \\+ test"):
        fold_bounds(10, train=8, test=3)


def test_each_fold_picks_the_in_sample_best(spx, wf):
    folds = wf.folds
    assert len(folds) == len(fold_bounds(len(spx), train=504, test=252))
    for _, row in folds.iterrows():
        res = sweep_ma_crossover(spx, **GRID, start=row["train_start"], end=row["train_end"], fees=0.001)
        best = res.best()
        assert (row["fast"], row["slow"]) == (best["fast"], best["slow"])
        assert row["is_sharpe"] == pytest.approx(best["sharpe"], rel=1e-12)


def test_the_result_is_the_stitched_out_of_sample_book(spx, wf):
    res = wf.result
    first_test = wf.folds["test_start"].iloc[0]
    assert res.equity.index[0] == first_test and res.equity.index[-1] == spx.index[-1]
    assert res.orders["timestamp"].min() >= first_test
    assert wf.summary()["# Periods"] == len(spx.loc[first_test:])
    # the stitched returns inside each test window are what the per-fold OOS figures report
    for _, row in wf.folds.iterrows():
        r = res.returns["SPX"].loc[row["test_start"]:row["test_end"]]
        assert row["oos_return"] == pytest.approx(np.prod(1 + r) - 1, rel=1e-12)
    # in-sample scores of the chosen sets beat their out-of-sample scores on average (selection bias)
    assert wf.folds["is_sharpe"].mean() > wf.folds["oos_sharpe"].mean()


def test_future_data_does_not_change_earlier_choices(spx, wf):
    cut = wf.folds["test_start"].iloc[2]
    noisy = spx.copy()
    rng = np.random.default_rng(1)
    later = noisy.index > cut
    noisy.loc[later, ["open", "high", "low", "close"]] *= rng.uniform(0.8, 1.2, (later.sum(), 1))
    other = walk_forward(noisy, **GRID, train=504, test=252, fees=0.001)
    before = wf.folds["test_start"] <= cut
    pd.testing.assert_frame_equal(other.folds.loc[before, ["fast", "slow", "is_sharpe"]],
                                  wf.folds.loc[before, ["fast", "slow", "is_sharpe"]])
    pd.testing.assert_series_equal(other.result.equity["SPX"].loc[:cut], wf.result.equity["SPX"].loc[:cut])


def test_figure(wf):
    from research.viz.backtest import walk_forward_figure

    fig = walk_forward_figure(wf)
    assert fig.data[0].name == "out-of-sample equity" and len(fig.layout.annotations) == len(wf.folds)
