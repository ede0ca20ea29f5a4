"""``workbench backtest`` and ``workbench sweep`` end to end on the sample data."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from research.atomic import PLAIN_FILE_MODE
from research.cli import app
from research.cli.backtest import parse_grid, parse_params

runner = CliRunner()


def test_help_texts():
    for cmd in ("backtest", "sweep"):
        out = runner.invoke(app, [cmd, "--help"])
        assert out.exit_code == 0 and "Example: workbench" in out.output
    assert "next_open" in runner.invoke(app, ["backtest", "--help"]).output


def test_parsers():
    assert parse_params(["fast=20", "slow = 50"]) == {"fast": "20", "slow": "50"}
    assert parse_grid(["fast=2:5", "slow=10,20", "k=1.5:2.5:0.5"]) == {
        "fast": [2, 3, 4, 5], "slow": [10, 20], "k": [1.5, 2.0, 2.5]}
    with pytest.raises(typer.BadParameter, match="KEY=VALUE"):
        parse_params(["fast"])
    with pytest.raises(typer.BadParameter, match="START <= STOP"):
        parse_grid(["fast=5:2"])


def test_backtest_prints_the_summary():
    out = runner.invoke(app, ["backtest", "ma_crossover", "--symbol", "SPX", "--param", "fast=20", "--param", "slow=50",
                              "--source", "sample", "--fees", "0.001"])
    assert out.exit_code == 0, out.output
    assert "Sharpe Ratio" in out.output and "# Trades" in out.output and "fills: next_open" in out.output
    js = runner.invoke(app, ["backtest", "ma_crossover", "--symbol", "GOOG", "-p", "fast=10", "-p", "slow=50",
                             "--fees", "0.001", "--slippage", "0.0005", "--cash", "10000", "--json"])
    payload = json.loads(js.output)
    assert payload["params"]["params"] == {"fast": 10, "slow": 50, "direction": "long"}
    assert payload["stats"]["GOOG"]["Total Return [%]"] == pytest.approx(255.52140909618757, rel=1e-10)


def test_backtest_errors_are_clear():
    bad = runner.invoke(app, ["backtest", "ma_crossover", "--symbol", "SPX", "--param", "speed=3"])
    assert bad.exit_code != 0 and "no parameter 'speed'" in str(bad.exception)
    nope = runner.invoke(app, ["backtest", "nope", "--symbol", "SPX"])
    assert nope.exit_code != 0 and "unknown strategy" in str(nope.exception)


def test_sweep_writes_table_heatmap_and_report(tmp_path):
    out = runner.invoke(app, ["sweep", "ma_crossover", "--symbol", "GOOG", "--grid", "fast=5:40:5", "--grid",
                              "slow=20:200:20", "--out", str(tmp_path), "--fees", "0.001"])
    assert out.exit_code == 0, out.output
    table = pd.read_csv(tmp_path / "sweep.csv")
    assert len(table) == sum(f < s for f in range(5, 45, 5) for s in range(20, 220, 20)) and {"symbol", "fast", "slow", "sharpe", "max_drawdown", "trades"} <= set(table.columns)
    html = (tmp_path / "heatmap_GOOG.html").read_text()
    assert 'src="plotly.min.js"' in html and "cdn.plot.ly" not in html  # opens offline
    assert (tmp_path / "plotly.min.js").stat().st_size > 1_000_000
    written = ["sweep.csv", "sweep.json", "heatmap_GOOG.html", "heatmap_GOOG.csv"]
    assert all((tmp_path / name).stat().st_mode & 0o777 == PLAIN_FILE_MODE for name in written)
    assert not list(tmp_path.glob(".*.tmp"))
    report = json.loads((tmp_path / "sweep.json").read_text())
    best = report["best"]["GOOG"]
    assert best["sharpe"] == table["sharpe"].max()
    assert 0 <= best["overfitting"]["pbo"] <= 1 and "deflated Sharpe ratio" in out.output
    pq = runner.invoke(app, ["sweep", "rsi_reversion", "--symbol", "SPX", "--grid", "window=10,14", "--out",
                             str(tmp_path / "rsi"), "--format", "parquet"])
    assert pq.exit_code == 0, pq.output
    assert len(pd.read_parquet(tmp_path / "rsi" / "sweep.parquet")) == 2


@pytest.mark.parametrize("family,grid", [
    ("rsi_reversion", ["window=2:12", "lower=10:40:10", "exit_level=50:60:5", "stop_loss=0:0.1:0.05"]),
    ("bollinger_breakout", ["window=10:30:5", "k=1:2:0.5", "trailing_stop=0,0.08", "direction=long,both"]),
    ("time_series_momentum", ["lookback=20:120:20", "threshold=0,0.02", "take_profit=0,0.2"]),
    ("ma_crossover", ["fast=5:20:5", "slow=30:60:10", "stop_loss=0.02:0.1:0.04"]),
    ("candlestick", ["hold=1:10", "bullish=hammer,engulfing+hammer", "take_profit=0,0.1"]),
])
def test_sweep_every_family_with_stops_gives_heatmap_dsr_and_pbo(tmp_path, family, grid):
    args = ["sweep", family, "--symbol", "GOOG", "--out", str(tmp_path), "--fees", "0.001"]
    for g in grid:
        args += ["--grid", g]
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    assert "(fused)" in out.output and "deflated Sharpe ratio" in out.output and "PBO" in out.output
    table = pd.read_csv(tmp_path / "sweep.csv")
    keys = [g.split("=")[0] for g in grid]
    assert list(table.columns[1:1 + len(keys)]) == keys
    heat = pd.read_csv(tmp_path / "heatmap_GOOG.csv", index_col=0)
    assert heat.index.name == keys[1] and len(heat.columns) == table[keys[0]].nunique()
    assert f"heatmap -> {tmp_path / 'heatmap_GOOG.html'}" in out.output and "max over" in out.output


def test_sweep_heatmap_axes_fixed_values_and_bad_slices(tmp_path):
    base = ["sweep", "rsi_reversion", "--symbol", "GOOG", "--grid", "window=5:15:5", "--grid", "lower=20:30:5",
            "--grid", "stop_loss=0,0.05", "--no-overfitting"]
    out = runner.invoke(app, [*base, "--out", str(tmp_path), "--x", "stop_loss", "--y", "window", "--fix",
                              "lower=25", "--agg", "median"])
    assert out.exit_code == 0, out.output
    heat = pd.read_csv(tmp_path / "heatmap_GOOG.csv", index_col=0)
    assert heat.shape == (3, 2) and "lower=25" in out.output
    bad = runner.invoke(app, [*base, "--out", str(tmp_path / "b"), "--fix", "stop_loss=0.07"])
    text = " ".join(bad.output.replace("│", " ").split())
    assert bad.exit_code == 2 and "stop_loss=0.07 is not in the sweep" in text
