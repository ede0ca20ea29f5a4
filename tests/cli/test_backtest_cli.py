"""``workbench backtest`` and ``workbench sweep`` end to end on the sample data."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

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
    assert "plotly" in html.lower()
    report = json.loads((tmp_path / "sweep.json").read_text())
    best = report["best"]["GOOG"]
    assert best["sharpe"] == table["sharpe"].max()
    assert 0 <= best["overfitting"]["pbo"] <= 1 and "deflated Sharpe ratio" in out.output
    pq = runner.invoke(app, ["sweep", "rsi_reversion", "--symbol", "SPX", "--grid", "window=10,14", "--out",
                             str(tmp_path / "rsi"), "--format", "parquet"])
    assert pq.exit_code == 0, pq.output
    assert len(pd.read_parquet(tmp_path / "rsi" / "sweep.parquet")) == 2
