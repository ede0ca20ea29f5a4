"""The backtest stage's sweep record: the whole grid, its deflated Sharpe and PBO, bounded outputs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from research.backtest import backtest
from research.backtest.sweep import ma_pairs, parse_windows
from research.data.sources.synthetic import synthetic_ohlcv
from research.defaults import PIPELINES
from research.stages.steps import backtest_stage, ingest_stage, risk_stage
from research.stages.sweep_outputs import (
    PBO_MAX_TRIALS,
    coarse,
    grid_text,
    pbo_subgrid,
    sweep_record,
)
from research.workflow.results import read_output


@pytest.fixture(scope="module")
def prices() -> dict[str, pd.DataFrame]:
    frames = {s: synthetic_ohlcv(s, bars=900, seed=i, start="2020-01-02") for i, s in enumerate(("AAA", "BBB"))}
    return {f: pd.DataFrame({s: fr[f] for s, fr in frames.items()}) for f in ("open", "high", "low", "close", "volume")}


def test_windows_are_parsed_from_ranges_and_lists():
    assert parse_windows("2:6") == [2, 3, 4, 5, 6]
    assert parse_windows("10:30:10") == [10, 20, 30]
    assert parse_windows("5,10, 20") == [5, 10, 20]
    assert parse_windows("2:4,10:30:10") == [2, 3, 4, 10, 20, 30]
    assert parse_windows([20, 5, 5]) == [5, 20]
    for bad in ("10:2", "2:10:0", "a:b", "", "1:2:3:4"):
        with pytest.raises(ValueError):
            parse_windows(bad)
    assert grid_text(range(2, 101)) == "2:100" and grid_text(range(10, 251, 5)) == "10:250:5"
    assert grid_text([5, 10, 50]) == "5,10,50"
    assert coarse(list(range(2, 101)), 4) == [2, 35, 67, 100]


def test_the_daily_default_grid_is_the_whole_grid():
    bt = PIPELINES["daily"]["backtest"]
    pairs = ma_pairs(parse_windows(bt["sweep_fast"]), parse_windows(bt["sweep_slow"]))
    assert len(pairs) > 3000 and pairs[:, 0].min() == 2 and pairs[:, 1].max() == 250


def test_pbo_subgrid_is_regular_and_bounded():
    f, s = pbo_subgrid(list(range(2, 101)), list(range(10, 251, 5)))
    assert len(ma_pairs(f, s)) <= PBO_MAX_TRIALS
    assert len(set(np.diff(f))) == 1 and len(set(np.diff(s))) == 1 and f[0] == 2 and s[0] == 10
    assert pbo_subgrid([5, 10], [20, 50]) == ([5, 10], [20, 50])


def test_sweep_record_covers_the_grid_and_deflates_over_every_cell(prices):
    out = sweep_record(prices, fast="2:60", slow="10:150:5", fees=0.001, slippage=0.0005, target="BBB")
    n_pairs = len(ma_pairs(range(2, 61), range(10, 151, 5)))
    sweep, summary = out["sweep"], out["sweep_summary"].set_index("symbol")
    assert len(sweep) == 2 * n_pairs and set(sweep["symbol"]) == {"AAA", "BBB"}
    assert (sweep["fast"] < sweep["slow"]).all() and set(sweep["family"]) == {"ma_crossover"}
    for sym in ("AAA", "BBB"):
        row, rows = summary.loc[sym], sweep[sweep["symbol"] == sym]
        best = rows.loc[rows["sharpe"].idxmax()]
        assert (row["fast"], row["slow"]) == (best["fast"], best["slow"])
        assert row["dsr_trials"] == n_pairs == row["pairs"]
        assert 0 <= row["deflated_sharpe"] <= 1 and 0 <= row["pbo"] <= 1
        assert 2 <= row["pbo_trials"] <= PBO_MAX_TRIALS and row["pbo_splits"] == 16
        assert row["grid"] == "fast 2:60 x slow 10:150:5" and row["pbo_grid"].startswith("fast 2:")
        assert row["family"] == "ma_crossover" and row["param_names"] == "fast,slow"
        assert row["fees"] == 0.001 and row["slippage"] == 0.0005 and row["timing"] == "next_open"
    # the deflated Sharpe is the library's, over every cell's Sharpe ratio
    from research.risk.overfitting import deflated_sharpe_ratio

    sym, row = "BBB", summary.loc["BBB"]
    one = {k: v[[sym]] for k, v in prices.items()}
    res = backtest(one, "ma_crossover", params={"fast": int(row["fast"]), "slow": int(row["slow"])},
                   fees=0.001, slippage=0.0005, periods_per_year=row["periods_per_year"])
    assert res.summary(sym)["Sharpe Ratio"] == pytest.approx(row["sharpe"], rel=1e-6)
    per_bar = sweep.loc[sweep["symbol"] == sym, "sharpe"].to_numpy(float) / math.sqrt(row["periods_per_year"])
    dsr = deflated_sharpe_ratio(res.returns[sym].dropna(), trial_sharpes=per_bar)
    assert row["deflated_sharpe"] == pytest.approx(dsr.dsr, rel=1e-3)
    # bounded side outputs: a 4 x 4 sub-grid of returns, the bars each symbol ran on
    trials = out["sweep_returns"]
    assert trials.shape[1] - 1 <= 16 and set(trials["symbol"]) == {"BBB"}
    assert all(c.startswith("ma_crossover|") for c in trials.columns if c != "symbol")
    bars = out["sweep_bars"]
    assert set(bars.columns) == {"open|AAA", "open|BBB", "close|AAA", "close|BBB"}
    np.testing.assert_allclose(bars["open|AAA"].to_numpy(), prices["open"]["AAA"].to_numpy())


def test_backtest_stage_records_the_grid_and_the_risk_stage_its_overfitting(tmp_path):
    out = tmp_path / "outputs"
    ingest_stage(str(out), symbols=["SPX", "MSFT"], as_of="2018-12-31", start="2014-01-01")
    backtest_stage(str(out), symbols=["SPX", "MSFT"], as_of="2018-12-31", start="2014-01-01",
                   sweep_fast="2:40", sweep_slow="10:100:10", sweep_families="ma_crossover")
    sweep, summary = read_output(out, "sweep"), read_output(out, "sweep_summary")
    n_pairs = len(ma_pairs(range(2, 41), range(10, 101, 10)))
    assert len(sweep) == 2 * n_pairs and set(summary["symbol"]) == {"SPX", "MSFT"}
    assert (summary["dsr_trials"] == n_pairs).all() and summary["deflated_sharpe"].between(0, 1).all()
    assert read_output(out, "sweep_returns").shape[1] <= 17
    assert set(sweep["family"]) == set(summary["family"]) == {"ma_crossover"}
    doc = risk_stage(str(out), as_of="2018-12-31")
    spx = summary.set_index("symbol").loc["SPX"]
    assert doc["overfitting"]["n_trials"] == n_pairs
    assert doc["overfitting"]["selected"] == f"{spx['fast']:.0f}/{spx['slow']:.0f}"
    assert doc["overfitting"]["pbo_pct"] == pytest.approx(100 * spx["pbo"])


def test_a_book_does_not_hold_a_symbol_past_its_last_bar():
    from research.stages.steps import until_last_bar

    idx = pd.date_range("2018-01-01", periods=6, freq="D", tz="UTC")
    cols = pd.MultiIndex.from_product([["open", "close"], ["OLD", "NEW"]], names=["field", "symbol"])
    prices = pd.DataFrame(1.0, index=idx, columns=cols)
    prices.loc[idx[3]:, ("close", "OLD")] = float("nan")  # OLD's data ends on its third bar
    equity = pd.DataFrame({"OLD": [1.0, 1.1, 1.2, 1.2, 1.2, 1.2], "NEW": [1.0, 1.0, 1.1, 1.2, 1.3, 1.4]}, index=idx)
    held = until_last_bar(equity, prices)
    assert held["OLD"].last_valid_index() == idx[2] and held["NEW"].notna().all()
    from research.risk.metrics import equal_weight_returns

    book = equal_weight_returns(held)
    assert book.iloc[3:].tolist() == equity["NEW"].pct_change().iloc[3:].tolist()  # NEW alone after OLD's end
