"""``workbench walk-forward`` end to end on the sample data."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from research.atomic import PLAIN_FILE_MODE
from research.backtest.walkforward import walk_forward
from research.cli import COMMANDS, app
from research.data import load_prices

runner = CliRunner()
GRID = ["window=10:20:5", "lower=25,35", "exit_level=50,60", "stop_loss=0,0.05"]


def test_help_names_the_families_and_the_grid_syntax():
    out = runner.invoke(app, ["walk-forward", "--help"])
    assert out.exit_code == 0 and "Example: workbench walk-forward" in out.output
    assert "bollinger_breakout" in out.output and "START:STOP" in out.output
    assert "walk-forward" in COMMANDS


def test_prints_the_folds_and_the_out_of_sample_summary(tmp_path):
    args = ["walk-forward", "rsi_reversion", "--symbol", "GOOG", *[a for g in GRID for a in ("--grid", g)],
            "--train", "504", "--test", "252", "--fees", "0.001", "--out", str(tmp_path)]
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    assert "window x lower x exit_level x stop_loss" in out.output and "Sharpe Ratio" in out.output
    header = next(line for line in out.output.splitlines() if line.strip().startswith("symbol"))
    assert header.split() == ["symbol", "fold", "train_start", "test_start", "test_end", "window", "lower",
                              "exit_level", "stop_loss", "is_sharpe", "oos_sharpe", "oos_return"]
    folds = pd.read_csv(tmp_path / "folds.csv")
    wf = walk_forward(load_prices("GOOG"), "rsi_reversion",
                      {"window": [10, 15, 20], "lower": [25, 35], "exit_level": [50, 60], "stop_loss": [0, 0.05]},
                      train=504, test=252, fees=0.001)
    assert len(folds) == len(wf.folds) >= 5
    for name in ("window", "lower", "exit_level", "stop_loss", "is_sharpe", "oos_return"):
        assert folds[name].tolist() == pytest.approx(wf.folds[name].tolist(), rel=1e-12, nan_ok=True)
    assert all((tmp_path / n).stat().st_mode & 0o777 == PLAIN_FILE_MODE for n in ("folds.csv", "summary.json"))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["stats"]["GOOG"]["Sharpe Ratio"] == pytest.approx(wf.summary()["Sharpe Ratio"], rel=1e-12)


@pytest.mark.parametrize(("args", "words"), [
    (["nope"], ["unknown family 'nope'", "rsi_reversion"]),
    (["rsi_reversion", "--grid", "widow=5:10"], ["--grid", "no parameter 'widow'", "exit_level"]),
    (["rsi_reversion", "--grid", "window=10:5"], ["--grid", "START <= STOP"]),
    (["bollinger_breakout", "--grid", "drawdown_halt=0.1,0.2"], ["--grid", "drawdown_halt cannot be"]),
    (["rsi_reversion", "--train", "1"], ["--train"]),
    (["rsi_reversion", "--train", "5000"], ["train + test <= bars"]),
])
def test_errors_name_what_was_wrong(args, words):
    from research.cli import main

    out = runner.invoke(app, ["walk-forward", *args, "--symbol", "GOOG"], standalone_mode=True)
    text = out.output + str(out.exception or "")
    if out.exception is not None and not isinstance(out.exception, SystemExit):
        with pytest.raises(SystemExit) as stop:  # as the console script reports it: one line, non-zero exit
            main(["walk-forward", *args, "--symbol", "GOOG"])
        assert stop.value.code != 0
    assert out.exit_code != 0
    for word in words:
        assert word in text, text


def test_the_command_takes_every_fused_family_and_no_other():
    """The command's own list (a refusal imports no kernel) is the fused families', so neither can drift."""
    from research.backtest.families import FAMILIES
    from research.cli.walkforward import FAMILY_NAMES

    assert set(FAMILY_NAMES) == set(FAMILIES)
    out = runner.invoke(app, ["walk-forward", "--help"])
    assert all(name in out.output for name in FAMILIES)
