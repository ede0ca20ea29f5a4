"""The runner's failure paths on toy pipelines: every way a stage can end, end to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import nbformat
import pandas as pd
import pytest
from typer.testing import CliRunner

from research.cli import app
from research.config import get_settings
from research.workflow.results import latest, read_output
from research.workflow.runlog import RunLog, read_run_record
from research.workflow.runner import EXIT_FAILED, EXIT_TIMEOUT, RunLocked, resume_run, run_pipeline

pytestmark = pytest.mark.slow


def test_failure_publishes_nothing_and_resume_matches_a_clean_run(tmp_path, no_orphan_kernels, toys):
    spec = toys.two_stage_spec(tmp_path, "toy-resume")
    marker = tmp_path / "break-total"
    marker.touch()
    params = ["as_of=2020-01-03", f"fail_if_exists={marker}", "n=6"]
    failed = run_pipeline(spec, params)
    assert failed.status == "FAILED" and failed.exit_code == EXIT_FAILED
    assert "stage 'total' failed in cell 4" in failed.message and "planted failure" in failed.message
    assert f"workbench pipeline resume {failed.run_id}" in failed.message
    assert latest("toy-resume") is None  # nothing partial published
    rec = read_run_record(failed.run_dir)
    assert [s["status"] for s in rec["stages"]] == ["COMPLETED", "FAILED"]
    kept = nbformat.read(rec["error"]["notebook"], as_version=4)
    assert any(o.output_type == "error" for c in kept.cells for o in c.get("outputs", []))
    entry = RunLog().get_run(failed.run_id)
    assert entry["status"] == "FAILED" and [s["status"] for s in entry["stages"]] == ["COMPLETED", "FAILED"]

    # a re-run of the same date and parameters resumes the failed run (and fails again while broken)
    again = run_pipeline(spec, params)
    assert again.run_id == failed.run_id and again.status == "FAILED"
    assert len([p for p in failed.run_dir.parent.iterdir() if p.is_dir() and not p.name.startswith(".")]) == 1

    marker.unlink()
    resumed = resume_run(failed.run_id)
    assert resumed.status == "COMPLETED" and resumed.exit_code == 0
    rec = read_run_record(resumed.run_dir)
    assert rec["stages"][0]["attempts"] == 1 and len(rec["resumed_at"]) == 2
    assert sorted(p.name for p in (resumed.run_dir / "notebooks").iterdir()) == [
        "01-numbers.ipynb", "02-total.ipynb", "02-total.try1.ipynb", "02-total.try2.ipynb"]
    pub = latest("toy-resume")
    assert pub.run_id == failed.run_id and pub.as_of == "2020-01-03"

    clean = run_pipeline(spec, ["as_of=2020-01-03", "n=6"], force=True)
    assert clean.status == "COMPLETED" and clean.run_id != failed.run_id
    assert latest("toy-resume").run_id == clean.run_id
    pd.testing.assert_frame_equal(read_output(clean.run_dir / "outputs", "numbers"), read_output(resumed.run_dir / "outputs", "numbers"))
    assert read_output(clean.run_dir / "outputs", "total") == read_output(resumed.run_dir / "outputs", "total") == {"total": 15.0, "as_of": "2020-01-03"}

    skipped = run_pipeline(spec, ["as_of=2020-01-03", "n=6"])
    assert skipped.status == "SKIPPED" and skipped.exit_code == 0 and "already published" in skipped.message


def test_hung_cell_times_out(tmp_path, no_orphan_kernels, toys):
    spec = toys.write_spec(tmp_path, "toy-hang", [{"name": "hang", "notebook": "hang.ipynb", "timeout": 5}])
    t0 = time.monotonic()
    result = run_pipeline(spec, ["as_of=2020-01-02"])
    assert time.monotonic() - t0 < 40
    assert result.status == "TIMEOUT" and result.exit_code == EXIT_TIMEOUT
    assert "stage 'hang' timed out in cell 4 ('time.sleep(seconds)')" in result.message
    assert read_run_record(result.run_dir)["stages"][0]["status"] == "TIMEOUT"
    assert RunLog().get_run(result.run_id)["status"] == "TIMEOUT"
    assert latest("toy-hang") is None


def test_retries_with_backoff_then_succeeds(tmp_path, no_orphan_kernels, toys):
    spec = toys.write_spec(tmp_path, "toy-flaky", [
        {"name": "flaky", "notebook": "flaky.ipynb", "retries": 2, "backoff": 0.1, "writes": ["flaky"]}])
    result = run_pipeline(spec, ["as_of=2020-01-02"])
    assert result.status == "COMPLETED"
    stage = result.record["stages"][0]
    assert stage["attempts"] == 2 and read_output(result.run_dir / "outputs", "flaky") == {"attempts": 2}
    assert (result.run_dir / "notebooks" / "01-flaky.try1.ipynb").exists()


def test_missing_declared_output_fails_the_stage(tmp_path, toys):
    spec = toys.write_spec(tmp_path, "toy-writes", [
        {"name": "numbers", "notebook": "01-numbers.ipynb", "writes": ["numbers", "promised"]}])
    result = run_pipeline(spec, ["as_of=2020-01-02"])
    assert result.status == "FAILED" and "MissingOutput" in result.message and "promised" in result.message


def test_double_start_is_refused_and_sigterm_interrupts(tmp_path, kernels, toys):
    spec = toys.write_spec(tmp_path, "toy-lock", [{"name": "hang", "notebook": "hang.ipynb", "timeout": 120}])
    code = ("import sys; from research.cli import app; sys.argv = ['workbench', 'pipeline', 'run', sys.argv[1], "
            "'-p', 'as_of=2020-01-02']; app()")
    first = subprocess.Popen([sys.executable, "-c", code, str(spec)], env=os.environ.copy(),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    owner = get_settings().runs_dir / "toy-lock" / ".locks" / "20200102.owner.json"
    try:
        deadline = time.monotonic() + 90
        while not owner.exists() and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.2)
        assert owner.exists(), first.stdout.read().decode() if first.poll() is not None else "lock never taken"
        with pytest.raises(RunLocked, match="already running .*run 20200102-"):
            run_pipeline(spec, ["as_of=2020-01-02"])
        second = CliRunner().invoke(app, ["pipeline", "run", str(spec), "-p", "as_of=2020-01-02"])
        assert second.exit_code == 75 and "already running" in second.output
        run_id = json.loads(owner.read_text())["run_id"]
        run_json = get_settings().runs_dir / "toy-lock" / run_id / "run.json"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not (
                run_json.exists() and json.loads(run_json.read_text())["stages"][0]["status"] == "RUNNING"):
            time.sleep(0.2)  # the run folder is written after the lock is taken
        time.sleep(1.0)  # let the kernel start
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) != 0
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    rec = json.loads(run_json.read_text())
    assert rec["status"] == "INTERRUPTED" and not rec["published"]
    time.sleep(2.5)  # a kernel whose runner is gone exits on its own within a second or two
    assert not [p for p in kernels() if p.ppid() == first.pid]


def test_killed_runner_leaves_no_kernel_and_the_next_start_resumes(tmp_path, kernels, toys):
    gate = tmp_path / "gate"
    gate.touch()
    spec = toys.write_spec(tmp_path, "toy-kill", [
        {"name": "numbers", "notebook": "01-numbers.ipynb", "writes": ["numbers"]},
        {"name": "gate", "notebook": "gate.ipynb", "writes": ["gated"]},
    ], {"gate": {"type": "str", "default": str(gate)}})
    code = ("import sys; from research.workflow.runner import run_pipeline; "
            "run_pipeline(sys.argv[1], ['as_of=2020-01-02'])")
    runner = subprocess.Popen([sys.executable, "-c", code, str(spec)], env=os.environ.copy(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pdir = get_settings().runs_dir / "toy-kill"
    try:
        deadline = time.monotonic() + 90
        rec = None
        while time.monotonic() < deadline and runner.poll() is None:
            found = list(pdir.glob("*/run.json"))
            rec = json.loads(found[0].read_text()) if found else None
            if rec and rec["stages"][1]["status"] == "RUNNING":
                break
            time.sleep(0.2)
        assert rec and rec["stages"][1]["status"] == "RUNNING", "the gate stage never started"
        time.sleep(1.5)  # the gate cell is running
        import psutil

        stage_kernels = [p for p in psutil.Process(runner.pid).children(recursive=True) if "ipykernel" in " ".join(p.cmdline())]
        runner.kill()  # SIGKILL: no cleanup at all
        runner.wait(timeout=10)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert stage_kernels
    gone, alive = psutil.wait_procs(stage_kernels, timeout=10)
    assert not alive, f"kernels outlived their runner: {[p.pid for p in alive]}"
    assert latest("toy-kill") is None  # nothing partial was published
    status = CliRunner().invoke(app, ["pipeline", "status", "toy-kill"])
    assert "INTERRUPTED (its runner is gone" in status.output, status.output
    gate.unlink()
    result = run_pipeline(spec, ["as_of=2020-01-02"])
    assert result.status == "COMPLETED" and result.run_id == rec["run_id"]  # the same run, resumed
    final = read_run_record(result.run_dir)
    assert [s["attempts"] for s in final["stages"]] == [1, 1] and final["resumed_at"]
    assert latest("toy-kill").run_id == rec["run_id"]
    assert read_output(result.run_dir / "outputs", "gated") == {"as_of": "2020-01-02"}


def test_the_engine_takes_the_as_of_from_the_spec_hook_else_the_parameter_else_today(tmp_path, toys):
    from research.workflow.runner import run_as_of
    from research.workflow.spec import load_spec

    plain = load_spec(toys.two_stage_spec(tmp_path, "toy-plain"))
    assert run_as_of(plain, {"as_of": "2019-03-01T00:00:00Z"}) == "2019-03-01T00:00:00"  # a midnight instant
    assert run_as_of(plain, {"as_of": "2019-03-01"}) == "2019-03-01"
    assert run_as_of(plain, {"symbols": ["SPX"], "source": "sample"}) == str(pd.Timestamp.now(tz="UTC").date())
    hooked = load_spec(toys.two_stage_spec(tmp_path, "toy-hooked", hooks={"as_of": "research.stages.as_of:resolve_as_of"}))
    assert run_as_of(hooked, {"symbols": ["SPX", "GOOG"], "source": "sample", "interval": "1d"}) == "2018-12-31"


def test_a_spec_hook_that_cannot_be_loaded_is_refused_when_the_spec_loads(tmp_path, toys):
    from research.workflow.spec import SpecError, load_spec

    for hooks, match in [({"after_run": ["research.alerts.delivery:nope"]}, "has no callable 'nope'"),
                         ({"after_run": ["no_such_module_x:run"]}, "cannot import no_such_module_x"),
                         ({"after_run": ["no_such_pkg_x.sub:run"]}, "cannot import no_such_pkg_x.sub"),
                         ({"as_of": "research.stages.as_of.resolve_as_of"}, "must be 'module:function'"),
                         ({"before_run": []}, r"unknown hooks \['before_run'\]")]:
        for load_hooks in (True, False):  # the full check and the quick one (no module runs) agree
            with pytest.raises(SpecError, match=match):
                load_spec(toys.two_stage_spec(tmp_path, "toy-bad-hook", hooks=hooks), load_hooks=load_hooks)


def test_the_quick_hook_check_runs_no_module_and_the_run_loads_every_hook(tmp_path, toys, monkeypatch):
    from research.workflow.spec import SpecError, load_spec

    (tmp_path / "wb_broken_hook.py").write_text("raise ImportError('a library the hook needs is missing')\n"
                                                "def after_run(record, run_dir, *, echo):\n    pass\n")
    (tmp_path / "wb_bound_hook.py").write_text("after_run = 3\n")  # bound by assignment: the source cannot tell
    monkeypatch.syspath_prepend(str(tmp_path))
    broken = toys.two_stage_spec(tmp_path, "toy-broken-hook", hooks={"after_run": ["wb_broken_hook:after_run"]})
    assert load_spec(broken, load_hooks=False).hooks.after_run == ("wb_broken_hook:after_run",)
    assert "wb_broken_hook" not in sys.modules
    with pytest.raises(SpecError, match="cannot import wb_broken_hook: a library the hook needs is missing"):
        load_spec(broken)
    with pytest.raises(SpecError, match="cannot import wb_broken_hook"):
        run_pipeline(broken, ["as_of=2020-01-03"])
    bound = toys.two_stage_spec(tmp_path, "toy-bound-hook", hooks={"after_run": ["wb_bound_hook:after_run"]})
    for load_hooks in (True, False):
        with pytest.raises(SpecError, match="wb_bound_hook has no callable 'after_run'"):
            load_spec(bound, load_hooks=load_hooks)


def test_a_failing_after_run_hook_never_fails_the_run(tmp_path, toys, monkeypatch):
    module = tmp_path / "wb_failing_hook.py"
    module.write_text("def after_run(record, run_dir, *, echo):\n    raise RuntimeError('receiver on fire')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = toys.two_stage_spec(tmp_path, "toy-hook-fails", hooks={"after_run": ["wb_failing_hook:after_run"]})
    lines: list[str] = []
    result = run_pipeline(spec, ["as_of=2020-01-03"], echo=lines.append)
    assert result.status == "COMPLETED" and result.exit_code == 0
    assert any("hook wb_failing_hook:after_run: failed (RuntimeError: receiver on fire)" in line for line in lines)


def test_a_parameters_hook_settles_shared_parameters_once_before_the_run(tmp_path, toys, monkeypatch):
    from research.workflow.runner import settle_parameters
    from research.workflow.spec import SpecError, load_spec, plan_run

    module = tmp_path / "wb_params_hook.py"
    module.write_text("calls = []\n"
                      "def settle(shared):\n    calls.append(dict(shared))\n    return {'n': shared['n'] + 2}\n"
                      "def rogue(shared):\n    return {'not_declared': 1}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = load_spec(toys.two_stage_spec(tmp_path, "toy-params-hook", hooks={"parameters": "wb_params_hook:settle"}))
    lines: list[str] = []
    plan = settle_parameters(plan_run(spec, {}), lines.append)
    assert plan.shared["n"] == 7 and lines == ["n: 5 -> 7 (hook wb_params_hook:settle)"]
    assert plan.stage_parameters["numbers"]["n"] == 7  # the stage sees the settled value
    rogue = load_spec(toys.two_stage_spec(tmp_path, "toy-rogue-hook", hooks={"parameters": "wb_params_hook:rogue"}))
    with pytest.raises(SpecError, match="declared shared parameters"):
        settle_parameters(plan_run(rogue, {}), lines.append)
    result = run_pipeline(spec, ["as_of=2020-01-03"], echo=lines.append)
    assert result.status == "COMPLETED" and result.record["parameters"]["n"] == 7
    assert read_output(result.run_dir / "outputs", "total") is not None
