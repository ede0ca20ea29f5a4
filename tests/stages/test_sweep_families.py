"""The backtest stage sweeps every strategy family it backtests: one long table, a deflated Sharpe
and a PBO per family and symbol, cells equal to the engine's, choices from pipeline parameters."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from research.backtest import backtest
from research.backtest.families import FAMILIES, engine_call
from research.data.sources.synthetic import synthetic_ohlcv
from research.risk.overfitting import deflated_sharpe_ratio
from research.stages.steps import backtest_stage, ingest_stage, risk_stage
from research.stages.sweep_grids import (
    FAMILY_GRIDS,
    family_grids,
    parse_sweep_grid,
    parse_values,
    resolve_families,
    values_text,
)
from research.stages.sweep_outputs import (
    PBO_MAX_TRIALS,
    cell_label,
    coarse_grid,
    pbo_grid,
    sweep_record,
)
from research.workflow.results import read_output

COSTS = {"fees": 0.001, "slippage": 0.0005}
#: Small grids of every family, risk levels and a short side included.
GRIDS = {
    "rsi_reversion": {"window": [2, 6, 14], "lower": [20, 30], "exit_level": [50, 60], "stop_loss": [0.0, 0.05]},
    "bollinger_breakout": {"window": [10, 20, 40], "k": [1.5, 2.0], "direction": ["long", "both"]},
    "time_series_momentum": {"lookback": [10, 40, 120], "threshold": [0.0, 0.02]},
    "candlestick": {"hold": [2, 5], "bullish": ["engulfing", "hammer+morning_star"]},
}
FAMILY_LIST = ["ma_crossover", *GRIDS]


@pytest.fixture(scope="module")
def prices() -> dict[str, pd.DataFrame]:
    frames = {s: synthetic_ohlcv(s, bars=700, seed=i + 3, start="2020-01-02") for i, s in enumerate(("AAA", "BBB"))}
    return {f: pd.DataFrame({s: fr[f] for s, fr in frames.items()}) for f in ("open", "high", "low", "close", "volume")}


@pytest.fixture(scope="module")
def record(prices) -> dict[str, pd.DataFrame]:
    return sweep_record(prices, fast="2:30:4", slow="10:80:10", target="BBB", families=FAMILY_LIST, grids=GRIDS,
                        **COSTS)


def _cells(grid: dict) -> int:
    return math.prod(len(v) for v in grid.values())


def test_the_table_is_long_with_each_familys_own_parameter_columns(record):
    sweep = record["sweep"]
    assert list(sweep.columns[:2]) == ["family", "symbol"] and set(sweep["family"]) == set(FAMILY_LIST)
    for family, grid in GRIDS.items():
        rows = sweep[sweep["family"] == family]
        assert len(rows) == 2 * _cells(grid)  # every set on both symbols, nothing refused
        for col in {c for g in GRIDS.values() for c in g} | {"fast", "slow"}:  # the others' columns are empty
            assert (rows[col].notna() if col in grid else rows[col].isna()).all(), (family, col)
    ma = sweep[sweep["family"] == "ma_crossover"]
    assert ma["window"].isna().all() and (ma["fast"] < ma["slow"]).all()


def test_every_family_and_symbol_has_a_deflated_sharpe_and_pbo_over_its_own_grid(record):
    summary, sweep = record["sweep_summary"], record["sweep"]
    assert len(summary) == len(FAMILY_LIST) * 2
    for _, row in summary.iterrows():
        assert 0 <= row["deflated_sharpe"] <= 1 and 0 <= row["pbo"] <= 1, row["family"]
        cells = sweep[(sweep["family"] == row["family"]) & (sweep["symbol"] == row["symbol"])]
        assert row["pairs"] == len(cells) and row["pbo_splits"] == 16
        assert row["dsr_trials"] == cells["sharpe"].notna().sum()  # a cell that never trades has no Sharpe
        names = row["param_names"].split(",")
        assert list(json.loads(row["params"])) == names
        if row["family"] != "ma_crossover":
            assert row["pairs"] == _cells(GRIDS[row["family"]]) and row["grid"].startswith(names[0])


def test_a_sampled_cell_of_every_family_is_the_engines_backtest(prices, record):
    sweep, summary = record["sweep"], record["sweep_summary"]
    rng = np.random.default_rng(0)
    for family in FAMILY_LIST:
        names = summary.loc[summary["family"] == family, "param_names"].iloc[0].split(",")
        rows = sweep[(sweep["family"] == family) & (sweep["symbol"] == "AAA")]
        best = summary[(summary["family"] == family) & (summary["symbol"] == "AAA")].iloc[0]
        for row in (rows.iloc[int(rng.integers(len(rows)))], rows.loc[rows["sharpe"].idxmax()]):
            cell = {n: _value(row[n]) for n in names}
            one = {k: v[["AAA"]] for k, v in prices.items()}
            res = backtest(one, family, **engine_call(cell, {**COSTS, "sizing": "all_in"}))
            stats = res.summary("AAA")
            assert int(row["trades"]) == int(stats["# Trades"]), (family, cell)
            assert float(row["total_return"]) == pytest.approx(stats["Total Return [%]"] / 100, rel=1e-5, abs=1e-6)
            assert float(row["sharpe"]) == pytest.approx(stats["Sharpe Ratio"], rel=1e-5, abs=1e-6), (family, cell)
        # the deflated Sharpe is the library's, over every cell of the family's grid on that symbol
        cell = json.loads(best["params"])
        one = {k: v[["AAA"]] for k, v in prices.items()}
        res = backtest(one, family, **engine_call(cell, {**COSTS, "sizing": "all_in"}))
        per_bar = rows["sharpe"].to_numpy(float) / math.sqrt(best["periods_per_year"])
        dsr = deflated_sharpe_ratio(res.returns["AAA"].dropna(), trial_sharpes=per_bar)
        assert best["deflated_sharpe"] == pytest.approx(dsr.dsr, rel=1e-3, abs=1e-6), family


def _value(v):
    v = v.item() if hasattr(v, "item") else v
    return int(v) if isinstance(v, float) and v.is_integer() else v


def test_side_outputs_stay_bounded_and_name_their_family(record):
    trials = record["sweep_returns"]
    cols = [c for c in trials.columns if c != "symbol"]
    assert set(trials["symbol"]) == {"BBB"}
    for family in FAMILY_LIST:
        mine = [c for c in cols if c.startswith(f"{family}|")]
        assert 2 <= len(mine) <= 16, family
    assert "rsi_reversion|window=2,lower=20,exit_level=50,stop_loss=0" in cols
    bars = record["sweep_bars"]  # whole bars: the candlestick family and the stop grid read them
    assert {f"{f}|{s}" for f in ("open", "high", "low", "close") for s in ("AAA", "BBB")} == set(bars.columns)


def test_families_and_grids_come_from_pipeline_parameters_with_clear_errors():
    assert resolve_families("backtested", strategies=["ma_crossover", "rsi_reversion", "buy_and_hold"]) == \
        ["ma_crossover", "rsi_reversion"]
    assert resolve_families("all", strategies=[]) == list(FAMILIES)
    assert resolve_families("none", strategies=["ma_crossover"]) == []
    assert resolve_families(" rsi_reversion , candlestick", strategies=[]) == ["rsi_reversion", "candlestick"]
    with pytest.raises(ValueError, match="unknown family 'rsi'.*ma_crossover"):
        resolve_families("rsi", strategies=[])
    with pytest.raises(ValueError, match="'none' cannot be combined"):
        resolve_families("none,rsi_reversion", strategies=[])
    grid = parse_sweep_grid("rsi_reversion.window=2:10:4; rsi_reversion.stop_loss=0,0.05;"
                            "bollinger_breakout.k=1:2:0.5; candlestick.bullish=hammer,engulfing+doji")
    assert grid == {"rsi_reversion": {"window": [2, 6, 10], "stop_loss": [0, 0.05]},
                    "bollinger_breakout": {"k": [1.0, 1.5, 2.0]},
                    "candlestick": {"bullish": ["hammer", "engulfing+doji"]}}
    assert parse_sweep_grid({"time_series_momentum": {"lookback": "5:15:5"}}) == \
        {"time_series_momentum": {"lookback": [5, 10, 15]}}
    for bad, why in (("rsi_reversion.window", "FAMILY.PARAM=VALUES"), ("window=2:10", "FAMILY.PARAM=VALUES"),
                     ("rsi.window=2", "unknown family 'rsi'"), ("rsi_reversion.fast=2", "no parameter 'fast'"),
                     ("rsi_reversion.window=10:2", "START <= STOP"), ("rsi_reversion.window=a:b", "of numbers"),
                     ("rsi_reversion.window=", "no value")):
        with pytest.raises(ValueError, match=why):
            parse_sweep_grid(bad)
    grids = family_grids(["ma_crossover", "rsi_reversion"], fast="5,10", slow="20:40:10",
                         overrides={"rsi_reversion": {"window": [5]}})
    assert grids["ma_crossover"] == {"fast": [5, 10], "slow": [20, 30, 40]}
    assert grids["rsi_reversion"] == {**FAMILY_GRIDS["rsi_reversion"], "window": [5]}
    with pytest.raises(ValueError, match="sweep_families does not sweep"):
        family_grids(["ma_crossover"], fast="5", slow="20", overrides={"rsi_reversion": {"window": [5]}})


def test_the_default_grids_keep_the_stage_small():
    for family, grid in FAMILY_GRIDS.items():
        assert 20 <= _cells(grid) <= 800, family  # the PBO runs over the whole default grid
        assert pbo_grid(grid) == grid


@given(sizes=st.lists(st.integers(1, 40), min_size=1, max_size=4), cap=st.integers(2, 900))
def test_sub_grids_are_bounded_regular_and_keep_every_parameter(sizes, cap):
    grid = {f"p{i}": list(range(0, 3 * n, 3)) for i, n in enumerate(sizes)}
    sub = pbo_grid(grid, max_trials=cap)
    assert list(sub) == list(grid) and all(sub[k] and set(sub[k]) <= set(grid[k]) for k in grid)
    assert _cells(sub) <= max(cap, 1) or all(len(v) == 1 for v in sub.values())
    assert all(len(set(np.diff(v))) <= 1 for v in sub.values())  # every k-th value: evenly spaced
    small = coarse_grid(grid)
    assert _cells(small) <= 16 and all(v[0] == grid[k][0] for k, v in small.items())


def test_values_and_cells_read_back_as_text():
    assert values_text(list(range(2, 31, 2))) == "2:30:2" and values_text([1.0, 1.25, 1.5]) == "1:1.5:0.25"
    assert values_text([0.0, 0.02, 0.05]) == "0,0.02,0.05" and values_text(["hammer", "doji"]) == "hammer,doji"
    assert parse_values("1:3:0.5") == [1.0, 1.5, 2.0, 2.5, 3.0] and parse_values("0, 0.05") == [0, 0.05]
    assert cell_label("ma_crossover", {"fast": 5.0, "slow": 20.0}) == "5/20"
    assert cell_label("rsi_reversion", {"window": 14, "lower": 30.0}) == "window=14,lower=30"


def test_the_stage_sweeps_what_it_backtests_and_the_risk_stage_reads_its_family(tmp_path):
    out = tmp_path / "outputs"
    ingest_stage(str(out), symbols=["SPX", "IXIC"], as_of="2018-12-31", start="2014-01-01")
    backtest_stage(str(out), symbols=["SPX", "IXIC"], as_of="2018-12-31", start="2014-01-01",
                   sweep_fast="5,10,20", sweep_slow="50,100",
                   sweep_grid="rsi_reversion.window=7,14; time_series_momentum.lookback=21,63,126")
    sweep, summary = read_output(out, "sweep"), read_output(out, "sweep_summary")
    assert sweep.groupby("family").size().to_dict() == {
        "ma_crossover": 2 * 6, "rsi_reversion": 2 * 2 * 7 * 5, "time_series_momentum": 2 * 3 * 4}
    assert set(zip(summary["family"], summary["symbol"], strict=True)) == {
        (f, s) for f in ("ma_crossover", "rsi_reversion", "time_series_momentum") for s in ("SPX", "IXIC")}
    doc = risk_stage(str(out), as_of="2018-12-31", strategy="rsi_reversion")
    row = summary[(summary["family"] == "rsi_reversion") & (summary["symbol"] == "SPX")].iloc[0]
    assert doc["overfitting"]["n_trials"] == row["dsr_trials"] and 2 <= row["dsr_trials"] <= row["pairs"] == 2 * 7 * 5
    assert doc["overfitting"]["selected"] == cell_label("rsi_reversion", json.loads(row["params"]))
    assert doc["overfitting"]["pbo_pct"] == pytest.approx(100 * row["pbo"])
    assert risk_stage(str(out), as_of="2018-12-31")["overfitting"]["selected"].count("/") == 1


def test_a_bad_sweep_parameter_is_refused_before_any_backtest(tmp_path, monkeypatch):
    import research.backtest as bt

    ran = []
    monkeypatch.setattr(bt, "backtest", lambda *a, **k: ran.append(a))
    for kwargs, why in (({"sweep_families": "momentum"}, "unknown family 'momentum'"),
                        ({"sweep_grid": "rsi_reversion.windw=2:5"}, "no parameter 'windw'"),
                        ({"sweep_families": "ma_crossover", "sweep_grid": "rsi_reversion.window=5"},
                         "does not sweep"),
                        ({"sweep_fast": "10:2"}, "START <= STOP")):
        with pytest.raises(ValueError, match=why):
            backtest_stage(str(tmp_path), symbols=["SPX"], as_of="2018-12-31", **kwargs)
    assert ran == []


def test_sweeping_nothing_writes_empty_outputs_and_no_overfitting(tmp_path):
    out = tmp_path / "outputs"
    ingest_stage(str(out), symbols=["SPX"], as_of="2018-12-31", start="2016-01-01")
    backtest_stage(str(out), symbols=["SPX"], as_of="2018-12-31", start="2016-01-01", sweep_families="none")
    for name in ("sweep", "sweep_summary", "sweep_returns", "sweep_bars"):
        assert read_output(out, name).empty
    assert risk_stage(str(out), as_of="2018-12-31")["overfitting"] is None


def test_a_pbo_grid_below_the_cap_is_the_whole_grid():
    grid = {"window": list(range(2, 31, 2)), "lower": list(range(10, 41, 5))}
    assert pbo_grid(grid) == grid and _cells(pbo_grid(grid, max_trials=PBO_MAX_TRIALS // 8)) <= PBO_MAX_TRIALS // 8
