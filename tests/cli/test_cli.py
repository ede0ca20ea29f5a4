"""The `workbench` command: help everywhere, and the data commands end to end."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from research.cli import app

runner = CliRunner()
EMOJI = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\uFE0F]")


def _all_commands(group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [path]
    if hasattr(group, "list_commands"):
        ctx = typer.Context(group)
        for name in group.list_commands(ctx):
            out += _all_commands(group.get_command(ctx, name), (*path, name))
    return out


def test_every_command_has_help():
    root = typer.main.get_command(app)
    commands = _all_commands(root)
    assert ("data", "fetch") in commands and ("run",) in commands
    for path in commands:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output
        # help shows what was written: rich turns ":100:" (as in "5:100:5") into an emoji
        assert not EMOJI.search(result.output), (path, EMOJI.findall(result.output))


def test_python_dash_m_research_is_the_same_command():
    out = subprocess.run([sys.executable, "-m", "research", "data", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "fetch" in out.stdout


def test_data_fetch_list_show(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "data"))
    result = runner.invoke(app, ["data", "fetch", "GOOG", "SPX"])
    assert result.exit_code == 0, result.output
    assert "GOOG" in result.output and "2,148" in result.output and str(tmp_path) in result.output
    listed = runner.invoke(app, ["data", "list"])
    assert listed.exit_code == 0 and "SPX" in listed.output
    shown = runner.invoke(app, ["data", "show", "GOOG", "--rows", "2"])
    assert shown.exit_code == 0 and "sha256" in shown.output and "2013-03-01" in shown.output
    missing = runner.invoke(app, ["data", "show", "NOPE"])
    assert missing.exit_code == 2  # an input error


def test_data_fetch_synthetic_and_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "data"))
    ok = runner.invoke(app, ["data", "fetch", "ABC-USD", "--source", "synthetic"])
    assert ok.exit_code == 0 and "yes" in ok.output  # labelled synthetic
    bad = runner.invoke(app, ["data", "fetch", "SPX", "--start", "2010-01-01", "--end", "2009-01-01"])
    assert bad.exit_code == 2 and "is after --end 2009-01-01" in bad.output  # refused while parsing


@pytest.mark.parametrize(("corrupt", "code"), [(False, 0), (True, 1)])
def test_data_validate_file(tmp_path, corrupt, code):
    from research.data.sources.synthetic import synthetic_ohlcv

    bars = synthetic_ohlcv("V", bars=20).reset_index()
    if corrupt:
        bars.loc[3, "close"] = -1
    bars.to_csv(tmp_path / "V.csv", index=False)
    result = runner.invoke(app, ["data", "validate", str(tmp_path / "V.csv")])
    assert result.exit_code == code, result.output
    assert ("NONPOSITIVE_PRICE" in result.output) == corrupt
