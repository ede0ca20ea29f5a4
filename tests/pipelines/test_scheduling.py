"""The shipped cron entries and systemd units call the runner with the right arguments."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
SCHEDULE = ROOT / "pipelines" / "schedule"
HOME = "/opt/quant-workbench"
EXPECTED = {"daily": ["pipeline", "run", "pipelines/daily.yaml"], "hourly": ["pipeline", "run", "pipelines/hourly.yaml"]}
_FIELD = {0: (0, 59), 1: (0, 23), 2: (1, 31), 3: (1, 12), 4: (0, 7)}


def _unit(path: Path) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None, comment_prefixes=("#", ";"))
    cp.optionxform = str
    cp.read(path)
    return cp


def _cron_field_ok(text: str, lo: int, hi: int) -> bool:
    for part in text.split(","):
        base, _, step = part.partition("/")
        if step and not step.isdigit():
            return False
        if base == "*":
            continue
        bounds = base.split("-")
        if not all(b.isdigit() and lo <= int(b) <= hi for b in bounds) or len(bounds) > 2:
            return False
    return True


def _workbench_argv(command: str) -> list[str]:
    """The arguments given to the workbench executable in a shell command line."""
    words = shlex.split(command.split("&&")[-1].split(">>")[0])
    i = next(i for i, w in enumerate(words) if w.endswith("/workbench") or w == "workbench")
    return words[i + 1:]


def _cli_accepts(argv: list[str], monkeypatch) -> Path:
    """Run the CLI on ``argv`` with the runner replaced; returns the spec it would run."""
    from research.cli import app
    from research.workflow import runner

    seen = {}

    def fake_run(spec, params, *, force, echo):
        seen.update(spec=Path(spec), params=params, force=force)
        return runner.RunResult("x", "SKIPPED", 0, "already published")

    monkeypatch.setattr(runner, "run_pipeline", fake_run)
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    assert seen["params"] == [] and seen["force"] is False
    return seen["spec"]


def test_crontab_entries(monkeypatch):
    lines = [ln for ln in (SCHEDULE / "crontab").read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    env = [ln for ln in lines if re.match(r"^[A-Z_]+=", ln)]
    assert env == ["CRON_TZ=UTC"]
    entries = [ln.split(None, 5) for ln in lines if ln not in env]
    found = {}
    for fields in entries:
        assert len(fields) == 6, fields
        for i, text in enumerate(fields[:5]):
            assert _cron_field_ok(text, *_FIELD[i]), f"bad cron field {text!r} in {fields}"
        command = fields[5]
        assert command.startswith(f"cd {HOME} && ")
        argv = _workbench_argv(command)
        name = Path(argv[2]).stem
        assert argv == EXPECTED[name]
        assert (ROOT / argv[2]).is_file()
        assert _cli_accepts(argv, monkeypatch) == Path(argv[2])
        found[name] = fields[:5]
    assert found["daily"] == ["30", "22", "*", "*", "1-5"] and found["hourly"][1] == "*"


@pytest.mark.parametrize("name", ["daily", "hourly"])
def test_systemd_units(name, monkeypatch):
    service, timer = _unit(SCHEDULE / f"workbench-{name}.service"), _unit(SCHEDULE / f"workbench-{name}.timer")
    svc = service["Service"]
    assert svc["Type"] == "oneshot" and svc["WorkingDirectory"] == HOME
    exec_start = shlex.split(svc["ExecStart"])
    assert exec_start[0] == f"{HOME}/.venv/bin/workbench" and exec_start[1:] == EXPECTED[name]
    assert _cli_accepts(exec_start[1:], monkeypatch) == Path(EXPECTED[name][2])
    assert "75" in svc["SuccessExitStatus"].split() and svc["KillMode"] == "control-group"
    assert timer["Timer"]["Unit"] == f"workbench-{name}.service" and timer["Timer"]["Persistent"] == "true"
    assert timer["Install"]["WantedBy"] == "timers.target"
    if shutil.which("systemd-analyze"):
        cal = subprocess.run(["systemd-analyze", "calendar", timer["Timer"]["OnCalendar"]], capture_output=True, text=True)
        assert cal.returncode == 0, cal.stderr


def test_systemd_analyze_verify(tmp_path):
    """The units pass systemd's own checker (with the checkout's real path substituted)."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed; the units are still parsed by test_systemd_units")
    exe = ROOT / ".venv" / "bin" / "workbench"
    if not exe.exists():
        pytest.skip(f"{exe} is not installed")
    paths = []
    for unit in sorted(SCHEDULE.glob("workbench-*")):
        dst = tmp_path / unit.name
        dst.write_text(unit.read_text().replace(HOME, str(ROOT)))
        paths.append(str(dst))
    res = subprocess.run(["systemd-analyze", "verify", "--man=no", *paths], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and not res.stderr.strip(), res.stderr
