"""``workbench pipeline run|resume|list|status|show`` on a toy pipeline."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from research.cli import app
from research.config import get_settings

pytestmark = pytest.mark.slow
runner = CliRunner()


def test_bad_parameter_is_refused_with_exit_2_before_anything_runs(tmp_path, toys):
    spec = toys.two_stage_spec(tmp_path, "toy-cli-bad")
    result = runner.invoke(app, ["pipeline", "run", str(spec), "-p", "n=many", "-p", "api_token=abc"])
    assert result.exit_code == 2
    assert "parameter 'n' (int): expected int, got 'many'" in result.output
    assert "unknown parameter" in result.output  # api_token is not declared
    assert not (get_settings().runs_dir / "toy-cli-bad").exists()


def test_run_then_read_the_ledger(tmp_path, toys):
    spec = toys.write_spec(tmp_path, "toy-cli", [{"name": "numbers", "notebook": "01-numbers.ipynb", "writes": ["numbers"]}],
                           {"n": 5})
    result = runner.invoke(app, ["pipeline", "run", str(spec), "-p", "as_of=2021-03-04", "-p", "n=3"])
    assert result.exit_code == 0, result.output
    assert "completed and published" in result.output and "outputs: numbers" in result.output
    run_id = next(line.split()[1] for line in result.output.splitlines() if line.startswith("run ") and " of 'toy-cli' as of " in line)

    listed = runner.invoke(app, ["pipeline", "list", "--pipeline", "toy-cli"])
    assert listed.exit_code == 0 and run_id in listed.output and "COMPLETED" in listed.output
    status = runner.invoke(app, ["pipeline", "status", "toy-cli"])
    assert f"published   {run_id}  as of 2021-03-04" in status.output
    shown = runner.invoke(app, ["pipeline", "show", run_id])
    assert shown.exit_code == 0 and '"n": 3' in shown.output and "01-numbers.ipynb" in shown.output
    assert "ledger: COMPLETED (1 stage runs)" in shown.output

    again = runner.invoke(app, ["pipeline", "run", str(spec), "-p", "as_of=2021-03-04", "-p", "n=3"])
    assert again.exit_code == 0 and "already published" in again.output
    missing = runner.invoke(app, ["pipeline", "show", "no-such-run"])
    assert missing.exit_code == 2 and "error: no pipeline run 'no-such-run'" in missing.output  # an input error
