"""Sweeps: the tidy table, agreement with the engine, the generic path and the heatmap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from research.backtest import backtest
from research.backtest.sweep import STATS, ma_pairs, sweep, sweep_ma_crossover
from research.data import load_prices
from research.data.sources.synthetic import synthetic_ohlcv


@pytest.fixture(scope="module")
def goog() -> pd.DataFrame:
    return load_prices("GOOG")


@pytest.fixture(scope="module")
def full_grid(goog):
    return sweep_ma_crossover(goog, fees=0.001, slippage=0.0005)


def test_full_grid_shape_and_columns(full_grid):
    t = full_grid.table
    assert len(t) == 19_701 and full_grid.n_trials == 19_701
    assert list(t.columns) == ["symbol", "fast", "slow", *STATS]
    assert (t["fast"] < t["slow"]).all() and t["fast"].min() == 2 and t["slow"].max() == 200
    assert not t[["total_return", "max_drawdown", "trades", "final_value"]].isna().any().any()
    assert t["trades"].dtype == np.int64
    best = full_grid.best()
    assert best["sharpe"] == t["sharpe"].max()
    assert full_grid.params["engine"] == "fused" and full_grid.params["timing"] == "next_open"


@pytest.mark.parametrize(("fast", "slow"), [(10, 19), (5, 25), (50, 200), (2, 3)])
def test_grid_rows_equal_the_engine(goog, full_grid, fast, slow):
    row = full_grid.table.set_index(["fast", "slow"]).loc[(fast, slow)]
    s = backtest(goog, "ma_crossover", params={"fast": fast, "slow": slow}, fees=0.001, slippage=0.0005).summary()
    assert row["total_return"] == pytest.approx(s["Total Return [%]"] / 100, rel=1e-9)
    assert row["sharpe"] == pytest.approx(s["Sharpe Ratio"], rel=1e-9)
    assert row["max_drawdown"] == pytest.approx(s["Max. Drawdown [%]"] / 100, rel=1e-9)
    assert row["trades"] == s["# Trades"]
    assert row["exposure"] == pytest.approx(s["Exposure Time [%]"] / 100, rel=1e-12)
    assert row["annual_return"] == pytest.approx(s["Return (Ann.) [%]"] / 100, rel=1e-9)
    assert row["win_rate"] == pytest.approx(s["Win Rate [%]"] / 100, rel=1e-12)


def test_trial_returns_feed_overfitting_statistics(goog):
    res = sweep_ma_crossover(goog, fast=range(5, 50, 5), slow=range(20, 200, 20), fees=0.001)
    tr = res.trial_returns()
    assert tr.shape == (len(goog), len(res.table))
    best = res.best()
    r = tr[(int(best["fast"]), int(best["slow"]))]
    assert r.mean() / r.std(ddof=1) * np.sqrt(252) == pytest.approx(best["sharpe"], rel=1e-9)
    from research.risk.overfitting import deflated_sharpe_ratio, probability_of_backtest_overfitting

    dsr = deflated_sharpe_ratio(r, trial_returns=tr)
    pbo = probability_of_backtest_overfitting(tr, n_splits=8)
    assert 0 <= dsr.dsr <= 1 and 0 <= pbo.pbo <= 1 and dsr.n_trials == len(res.table)


def test_many_symbols_one_pair_and_date_range():
    frames = {f"S{i}": synthetic_ohlcv(f"S{i}", bars=700, seed=2) for i in range(30)}
    fields = {f: pd.DataFrame({k: v[f] for k, v in frames.items()}) for f in ("open", "high", "low", "close")}
    res = sweep_ma_crossover(fields, fast=[10], slow=[30], start=fields["close"].index[200])
    assert len(res.table) == 30 and set(res.table["symbol"]) == set(frames)
    one = backtest({k: v[["S7"]] for k, v in fields.items()}, "ma_crossover", params={"fast": 10, "slow": 30},
                   start=fields["close"].index[200]).summary()
    row = res.table.set_index("symbol").loc["S7"]
    assert row["total_return"] == pytest.approx(one["Total Return [%]"] / 100, rel=1e-9)
    assert res.params["start"] == str(fields["close"].index[200])


def test_a_late_listing_is_measured_over_its_own_life(goog):
    both = load_prices(["MSFT", "GOOG"])  # MSFT from 1986, GOOG from 2004
    joint = sweep_ma_crossover(both, fast=[10, 20], slow=[50], fees=0.001).table.set_index(["symbol", "fast"])
    alone = sweep_ma_crossover(goog, fast=[10, 20], slow=[50], fees=0.001).table.set_index("fast")
    engine = backtest(both, "ma_crossover", params={"fast": 20, "slow": 50}, fees=0.001).summary("GOOG")
    for f in (10, 20):
        a = joint.loc[("GOOG", f), list(STATS)].astype(float).to_numpy()
        b = alone.loc[f, list(STATS)].astype(float).to_numpy()
        np.testing.assert_allclose(a, b, rtol=1e-12)
    assert joint.loc[("GOOG", 20), "sharpe"] == pytest.approx(engine["Sharpe Ratio"], rel=1e-9)
    many = sweep_ma_crossover(both, fast=[20], slow=[50], fees=0.001).table.set_index("symbol")  # symbol-parallel path
    assert many.loc["GOOG", "annual_return"] == pytest.approx(engine["Return (Ann.) [%]"] / 100, rel=1e-9)


def test_generic_sweep_uses_the_engine_and_skips_invalid_sets(goog):
    kw = {"fees": 0.001, "sizing": "fixed_fraction"}  # a sizer the fused kernels do not cover
    res = sweep(goog, "rsi_reversion", {"window": [7, 14], "lower": [25.0, 30.0]}, **kw)
    assert res.params["engine"] == "engine" and len(res.table) == 4
    one = backtest(goog, "rsi_reversion", params={"window": 14, "lower": 25.0}, **kw).summary()
    row = res.table.set_index(["window", "lower"]).loc[(14, 25.0)]
    assert row["sharpe"] == pytest.approx(one["Sharpe Ratio"], rel=1e-12)
    fused = sweep(goog, "ma_crossover", {"fast": [5, 10], "slow": [10, 30]}, fees=0.001)
    assert fused.params["engine"] == "fused" and len(fused.table) == 3
    rsi = sweep(goog, "rsi_reversion", {"window": [7, 14], "lower": [25.0, 30.0]}, fees=0.001)
    assert rsi.params["engine"] == "fused" and len(rsi.table) == 4  # every catalog family: fused kernels
    one = backtest(goog, "rsi_reversion", params={"window": 14, "lower": 25.0}, fees=0.001).summary()
    assert rsi.table.set_index(["window", "lower"]).loc[(14, 25.0), "sharpe"] == pytest.approx(one["Sharpe Ratio"],
                                                                                             rel=1e-9)
    with pytest.warns(UserWarning, match="skipped"):
        stops = sweep(goog, "ma_crossover", {"fast": [5, 10], "slow": [10]}, risk={"stop_loss": 0.05})
    assert stops.params["engine"] == "fused" and len(stops.table) == 1  # (10, 10) skipped


def test_input_validation(goog):
    with pytest.raises(ValueError, match="no pair with fast < slow"):
        ma_pairs([50], [20])
    with pytest.raises(ValueError, match="timing"):
        sweep_ma_crossover(goog, fast=[5], slow=[20], timing="same_close")
    with pytest.raises(ValueError, match="metric"):
        sweep_ma_crossover(goog, fast=[5], slow=[20], metric="luck")
    before = goog.copy()
    sweep_ma_crossover(goog, fast=[5, 6], slow=[20])
    pd.testing.assert_frame_equal(goog, before)


def test_heatmap(full_grid):
    from research.viz.backtest import sweep_heatmap

    fig = sweep_heatmap(full_grid, metric="sharpe")
    heat = fig.data[0]
    assert heat.type == "heatmap" and np.shape(heat.z) == (198, 198)  # slow 3..200 x fast 2..199
    assert fig.data[1].x[0] == full_grid.best()["fast"] and "GOOG" in fig.layout.title.text
    with pytest.raises(ValueError, match="metric"):
        sweep_heatmap(full_grid, metric="nope")


def test_one_glossary_for_sweep_tables_and_summaries():
    from research.backtest.kernels import STATS
    from research.risk.metrics import COMPACT_KEYS, SUMMARY_KEYS

    assert set(STATS) - {"final_value"} == set(COMPACT_KEYS)
    assert set(COMPACT_KEYS.values()) <= set(SUMMARY_KEYS)
