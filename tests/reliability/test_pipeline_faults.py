"""Pipelines under faults (shared/RELIABILITY.md, "Pipelines"), on the toy notebooks of tests/workflow.

* a runner killed (SIGKILL) or terminated (SIGTERM) at K points: nothing partial is published,
  no kernel outlives it, its stage runs in MLflow do not stay RUNNING, and the next start
  (or ``resume``) completes the same run;
* a doubled run: the second start says "already running" (exit 75) and names a live holder,
  never a dead PID;
* bad, mistyped and out-of-range parameters are refused before anything executes;
* a run for an older as-of date never replaces the published pointer to a newer one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml
from filelock import FileLock
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from research.cli import app
from research.config import get_settings
from research.workflow.results import latest, read_output
from research.workflow.runlog import RunLog, read_run_record
from research.workflow.runner import RunLocked, resume_run, run_pipeline
from research.workflow.spec import SpecError

pytestmark = pytest.mark.slow

NOTEBOOKS = Path(__file__).resolve().parents[1] / "workflow" / "notebooks"
ROOT = Path(__file__).resolve().parents[2]
RUNNER = "import sys; from research.workflow.runner import run_pipeline; run_pipeline(sys.argv[1], sys.argv[2:])"


def _spec(folder: Path, name: str, stages: list[dict], parameters: dict | None = None) -> Path:
    for st in stages:
        st["notebook"] = str(NOTEBOOKS / st["notebook"])
        st.setdefault("timeout", 120)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "parameters": parameters or {}, "stages": stages}, sort_keys=False))
    return path


def _gated(folder: Path, name: str) -> tuple[Path, Path, Path]:
    """numbers -> gate-a -> gate-b; each gate stage waits while its file exists."""
    gate_a, gate_b = folder / f"{name}.gate-a", folder / f"{name}.gate-b"
    spec = _spec(folder, name, [
        {"name": "numbers", "notebook": "01-numbers.ipynb", "writes": ["numbers"]},
        {"name": "gate-a", "notebook": "gate.ipynb", "parameters": {"gate": str(gate_a)}, "writes": ["gated"]},
        {"name": "gate-b", "notebook": "gate.ipynb", "parameters": {"gate": str(gate_b)}, "writes": ["gated"]},
    ], {"n": {"type": "int", "default": 5, "min": 1, "max": 1000}})
    return spec, gate_a, gate_b


def _wait_running(pdir: Path, stage: str, proc: subprocess.Popen, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        for path in pdir.glob("*/run.json"):
            try:
                rec = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            st = next(s for s in rec["stages"] if s["name"] == stage)
            if st["status"] == "RUNNING" and st.get("mlflow_run_id"):
                return rec
        time.sleep(0.2)
    raise AssertionError(f"stage {stage!r} never started (runner exit {proc.poll()})")


def _kernels_of(pid: int) -> list[psutil.Process]:
    try:
        return [p for p in psutil.Process(pid).children(recursive=True) if "ipykernel" in " ".join(p.cmdline())]
    except psutil.NoSuchProcess:
        return []


def _stage_runs(parent: str) -> list:
    client = MlflowClient(get_settings().tracking_uri)
    exp = client.get_run(parent).info.experiment_id
    return client.search_runs([exp], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")


@pytest.mark.parametrize("point", ["sigkill in gate-a", "sigkill in gate-b", "sigterm in gate-b"])
def test_killed_runner_recovers(tmp_path, point, case):
    name = "rel-kill-" + point.split()[0] + "-" + point.split()[-1]
    spec, gate_a, gate_b = _gated(tmp_path, name)
    stage = point.split()[-1]
    gate_b.touch()
    if stage == "gate-a":
        gate_a.touch()
    pdir = get_settings().runs_dir / name
    params = ["as_of=2020-01-02", "n=4"]
    if point.startswith("sigterm"):
        cmd = [sys.executable, "-m", "research", "pipeline", "run", str(spec), "-p", params[0], "-p", params[1]]
    else:
        cmd = [sys.executable, "-c", RUNNER, str(spec), *params]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        rec = _wait_running(pdir, stage, proc)
        deadline = time.monotonic() + 60
        while not (kernels := _kernels_of(proc.pid)) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)  # the gate cell is running in its kernel
        if point == "sigkill in gate-a":  # a doubled run meanwhile
            second = CliRunner().invoke(app, ["pipeline", "run", str(spec), "-p", params[0], "-p", params[1]])
            case("pipelines", "doubled run: the second exits 'already running' (75) naming the live runner",
                 f"75; pid {proc.pid}", f"{second.exit_code}; {second.output.strip()[-160:]}",
                 second.exit_code == 75 and "already running" in second.output and f"pid {proc.pid}" in second.output)
            folders = [p for p in pdir.iterdir() if p.is_dir() and not p.name.startswith(".")]
            case("pipelines", "doubled run: one run folder", 1, len(folders), len(folders) == 1)
        proc.send_signal(signal.SIGTERM if point.startswith("sigterm") else signal.SIGKILL)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = out.decode(errors="replace")
    _, alive = psutil.wait_procs(kernels, timeout=15)
    case("pipelines", f"{point}: no kernel outlives the runner", "0 alive", f"{len(alive)} alive of {len(kernels)}",
         kernels and not alive)
    case("pipelines", f"{point}: nothing partial published", "no pointer", latest(name), latest(name) is None)
    if point.startswith("sigterm"):
        clean = "Traceback" not in text and "DeadKernelError" not in text
        case("pipelines", "sigterm: one clean INTERRUPTED message, exit 143, no traceback",
             "INTERRUPTED; 143; no traceback",
             f"{'INTERRUPTED' if 'INTERRUPTED' in text else '?'}; {proc.returncode}; {'clean' if clean else text[-300:]}",
             "INTERRUPTED" in text and proc.returncode == 143 and clean and "resume" in text)
    parent = rec["mlflow_run_id"]
    if point == "sigkill in gate-b":  # housekeeping by `pipeline status`, before any resume
        status = CliRunner().invoke(app, ["pipeline", "status", name])
        running = [r.info.run_id for r in _stage_runs(parent) if r.info.status == "RUNNING"]
        case("pipelines", "status closes the stage runs of a killed runner", "0 RUNNING; status says INTERRUPTED",
             f"{len(running)} RUNNING; {'INTERRUPTED' if 'INTERRUPTED' in status.output else status.output[-200:]}",
             not running and "INTERRUPTED" in status.output)

    gate_a.unlink(missing_ok=True)
    gate_b.unlink(missing_ok=True)
    result = resume_run(rec["run_id"]) if point == "sigkill in gate-b" else run_pipeline(spec, params)
    final = read_run_record(pdir / rec["run_id"])
    ok = (result.status == "COMPLETED" and result.run_id == rec["run_id"] and latest(name).run_id == rec["run_id"]
          and final["stages"][0]["attempts"] == 1 and read_output(result.run_dir / "outputs", "numbers").shape == (4, 1))
    case("pipelines", f"{point}: the same run resumes, completed stages reused, published", "COMPLETED, same run",
         f"{result.status}, {'same' if result.run_id == rec['run_id'] else 'other'} run", ok)
    runs = _stage_runs(parent)
    running = [r for r in runs if r.info.status == "RUNNING"]
    killed = [r for r in runs if r.data.tags.get("workbench.stage") == stage and r.info.status in {"KILLED", "FAILED"}]
    case("pipelines", f"{point}: no MLflow stage run left RUNNING; the interrupted one ended with a reason",
         "0 RUNNING; interrupted stage KILLED with reason",
         f"{len(running)} RUNNING; {[r.info.status for r in killed]}",
         not running and killed and all(r.data.tags.get("workbench.closed") or r.data.tags.get("workbench.error")
                                        for r in killed))


def test_a_dead_holder_is_never_named_and_its_lock_is_taken_over(tmp_path, case):
    spec = _spec(tmp_path, "rel-holder", [{"name": "numbers", "notebook": "01-numbers.ipynb", "writes": ["numbers"]}])
    locks = get_settings().runs_dir / "rel-holder" / ".locks"
    locks.mkdir(parents=True)
    owner = locks / "20200106.owner.json"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    record = {"run_id": "x", "pid": dead.pid, "host": os.uname().nodename, "since": "then"}
    # the lock is held by a live process (here: this test) while the owner record names a dead PID
    with FileLock(str(locks / "20200106.lock")):
        owner.write_text(json.dumps(record))
        with pytest.raises(RunLocked) as err:
            run_pipeline(spec, ["as_of=2020-01-06"])
    message = str(err.value)
    case("pipelines", "'already running' never names a dead PID", f"pid {os.getpid()}, not {dead.pid}", message[-120:],
         f"pid {dead.pid}" not in message and str(os.getpid()) in message)
    # the holder died (its lock is free) but left its owner record: the next start takes over
    owner.write_text(json.dumps(record))
    result = run_pipeline(spec, ["as_of=2020-01-06"])
    case("pipelines", "a dead holder's lock is taken over", "COMPLETED", result.status, result.status == "COMPLETED")


def test_bad_parameters_are_refused_before_execution(tmp_path, case):
    spec, _, _ = _gated(tmp_path, "rel-params")
    pdir = get_settings().runs_dir / "rel-params"
    bad = {
        "out of range (-p n=-5)": (["n=-5"], "'n' = -5 is out of range: allowed >= 1 and <= 1000"),
        "mistyped (-p n=five)": (["n=five"], "expected int, got 'five'"),
        "unknown (-p m=1)": (["m=1"], "-p m: unknown parameter"),
        "unknown stage parameter": (["gate-a.nope=1"], "stage 'gate-a' has no parameter 'nope'"),
    }
    for label, (params, expected) in bad.items():
        try:
            run_pipeline(spec, ["as_of=2020-01-02", *params])
            observed = "accepted"
        except SpecError as exc:
            observed = str(exc)
        case("pipelines", f"parameter {label} refused before execution", expected, observed.splitlines()[-1][:120],
             expected in observed and not pdir.exists())
    daily = ROOT / "pipelines" / "daily.yaml"
    for params, expected in [(["max_bars=-5"], "'max_bars' = -5 is out of range: allowed >= 1"),
                             (["epochs=0"], "'epochs' = 0 is out of range"),
                             (["retrain_every_days=0"], "'retrain_every_days' = 0.0 is out of range: allowed > 0"),
                             (["source=nasdaq"], "'source' = 'nasdaq' is not allowed"),
                             (["symbols="], "'symbols' = [] has too few items"),
                             (["backtest.fees=-0.1"], "'fees' = -0.1 is out of range")]:
        res = CliRunner().invoke(app, ["pipeline", "run", str(daily), *[a for p in params for a in ("-p", p)]])
        case("pipelines", f"daily: -p {params[0]} refused (exit 2)", f"2; {expected}",
             f"{res.exit_code}; {res.output.strip().splitlines()[-1][:100] if res.output.strip() else ''}",
             res.exit_code == 2 and expected in res.output)


def test_an_older_as_of_never_replaces_the_published_pointer(tmp_path, case):
    spec = _spec(tmp_path, "rel-asof", [{"name": "numbers", "notebook": "01-numbers.ipynb", "writes": ["numbers"]}])
    newer = run_pipeline(spec, ["as_of=2018-12-31"])
    older = run_pipeline(spec, ["as_of=2018-12-28"])
    pub = latest("rel-asof")
    rec = read_run_record(older.run_dir)
    case("pipelines", "an older as-of completes but the pointer stays on the newer one", "2018-12-31",
         f"{pub.as_of} (older run {older.status}, published={rec['published']})",
         pub.run_id == newer.run_id and older.status == "COMPLETED" and not rec["published"])
    listed = {r["run_id"] for r in RunLog().list_runs("rel-asof")}
    case("pipelines", "the older run is kept, listed and says it is not the latest",
         "listed; 'not published as the latest'", older.message[-90:],
         older.run_id in listed and "not published as the latest" in older.message
         and rec["superseded_by"]["run_id"] == newer.run_id)
    again = run_pipeline(spec, ["as_of=2018-12-28"])
    case("pipelines", "re-running the older as-of does not run it again", "SKIPPED", again.status,
         again.status == "SKIPPED")
