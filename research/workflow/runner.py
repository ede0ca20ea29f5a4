"""Run a pipeline: validate, lock, execute stage by stage, record, publish only when all passed.

``run_pipeline(spec, params)`` and ``resume_run(run_id)`` are what ``workbench pipeline run``
and ``workbench pipeline resume`` call. A run lives in ``<runs_dir>/<pipeline>/<run_id>/``
(see :mod:`research.workflow.results`) and in the tracking store (see
:mod:`research.workflow.runlog`).

Guarantees:

* parameters are checked before any kernel starts (:func:`research.workflow.spec.plan_run`);
* one run per pipeline and as-of date at a time: a second start gets :class:`RunLocked`,
  naming a live holder; a lock whose recorded holder is dead (or whose PID now belongs to
  another process) is taken over;
* a published as-of date is not run again unless ``force=True``; a failed run of the same
  date with the same parameters is resumed instead of started over (``force`` starts anew);
* each stage has a wall-time limit and retries with exponential backoff; a raising cell, a
  dead kernel and a timeout all end the stage with the executed notebook kept;
* a failed run is FAILED or TIMEOUT, names the stage and the cell, and publishes nothing;
  :func:`resume_run` continues from the failed stage, reusing the outputs of the others;
* Ctrl-C or SIGTERM ends the run INTERRUPTED (:class:`RunInterrupted`), its stage runs ended
  in the run log; stage runs left RUNNING by a killed runner are closed (KILLED, tagged why)
  when the run is resumed or ``workbench pipeline status`` finds its runner gone;
* publishing compares as-of dates: a completed run older than the published one is kept and
  listed (``superseded_by`` in its record) but does not become the latest.

Exit codes of the command line: 0 done (or already published), 1 a stage failed,
2 refused before execution, 3 a stage timed out, 75 another run holds the lock, 130 / 143
interrupted by SIGINT / SIGTERM.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from filelock import FileLock, Timeout

from research.atomic import atomic_write
from research.config import get_settings
from research.workflow.execute import KernelPrefetch, execute_stage
from research.workflow.hooks import call_after_run, load_hook
from research.workflow.locks import RunLocked, holder_alive, record_owner, run_lock
from research.workflow.results import latest, pipeline_dir, publish
from research.workflow.runlog import RunLog, find_run_dir, iter_run_records, read_run_record
from research.workflow.spec import (
    PipelineSpec,
    RunPlan,
    SpecError,
    canonical_date,
    load_spec,
    notebook_parameters,
    plan_run,
)

__all__ = [
    "run_pipeline", "resume_run", "RunResult", "RunLocked", "RunInterrupted", "run_as_of", "pipeline_dir",
    "is_running", "close_orphans",
    "EXIT_OK", "EXIT_FAILED", "EXIT_INVALID", "EXIT_TIMEOUT", "EXIT_LOCKED",
]

log = logging.getLogger(__name__)
EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_TIMEOUT, EXIT_LOCKED = 0, 1, 2, 3, 75
_RESUMABLE = {"FAILED", "TIMEOUT", "INTERRUPTED", "RUNNING"}
Echo = Callable[[str], None]


class RunInterrupted(KeyboardInterrupt):
    """The run was stopped by Ctrl-C or SIGTERM; it is recorded INTERRUPTED and can be resumed.

    ``result`` is the recorded outcome (``message`` says how to continue).
    """

    def __init__(self, result: RunResult, reason: str) -> None:
        super().__init__(reason)
        self.result, self.reason = result, reason


@dataclass
class RunResult:
    """How a ``run`` or ``resume`` ended."""

    pipeline: str
    status: str  # COMPLETED | FAILED | TIMEOUT | INTERRUPTED | SKIPPED
    exit_code: int
    message: str
    run_id: str | None = None
    run_dir: Path | None = None
    record: dict = field(default_factory=dict)


def _now() -> str:
    return pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds")


def run_as_of(spec: PipelineSpec, shared: Mapping[str, Any]) -> str:
    """The as-of date of a run: the spec's ``as_of`` hook, else the ``as_of`` parameter, else today (UTC).

    The hook (e.g. :func:`research.stages.as_of.resolve_as_of`) receives the shared parameters.
    """
    if spec.hooks.as_of:
        return canonical_date(load_hook(spec.hooks.as_of)(shared))
    if shared.get("as_of"):
        return canonical_date(shared["as_of"])
    return canonical_date(pd.Timestamp.now(tz="UTC").date())


def settle_parameters(plan: RunPlan, echo: Echo) -> RunPlan:
    """The plan with the spec's ``parameters`` hook applied to its shared parameters (once per run).

    Raises
    ------
    SpecError
        The hook returned something other than a mapping of declared shared parameters.
    """
    ref = plan.spec.hooks.parameters
    if not ref:
        return plan
    updates = load_hook(ref)(dict(plan.shared))
    if not isinstance(updates, Mapping) or set(updates) - set(plan.shared):
        raise SpecError(f"the parameters hook {ref} must return new values of declared shared parameters "
                        f"{sorted(plan.shared)}; got {updates!r}")
    for key, value in updates.items():
        if value != plan.shared[key]:
            echo(f"{key}: {plan.shared[key]!r} -> {value!r} (hook {ref})")
    shared = {**plan.shared, **updates}
    stage = {k: {**v, **{p: shared[p] for p in updates if p in v}} for k, v in plan.stage_parameters.items()}
    return RunPlan(plan.spec, shared, stage)


def _slug(as_of: str) -> str:
    return as_of.replace("-", "").replace(":", "")


@contextmanager
def _kernel_environment(tracking_uri: str, run_id: str):
    """Environment the stage kernels inherit: the tracking URI set explicitly, the run id, and the
    project folder, so each kernel reads the same ``.env`` whatever its working directory."""
    changes = {"MLFLOW_TRACKING_URI": tracking_uri, "WORKBENCH_PIPELINE_RUN": run_id,
               "WORKBENCH_HOME": str(get_settings().home),
               "MLFLOW_DISABLE_TELEMETRY": os.environ.get("MLFLOW_DISABLE_TELEMETRY", "true"),
               "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}
    saved = {k: os.environ.get(k) for k in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def is_running(pipeline: str, as_of: str) -> bool:
    """Whether a live runner currently holds the lock of ``pipeline`` for ``as_of``."""
    locks = pipeline_dir(pipeline) / ".locks"
    return holder_alive(locks / f"{_slug(as_of)}.lock", locks / f"{_slug(as_of)}.owner.json")


def close_orphans(pipeline: str, as_of: str, runlog: RunLog | None = None) -> list[str]:
    """Housekeeping: when no runner holds ``pipeline``/``as_of``, record its runs left RUNNING as
    INTERRUPTED and end their stage runs in the run log. Returns the run ids marked."""
    pdir = pipeline_dir(pipeline)
    lock = FileLock(str(pdir / ".locks" / f"{_slug(as_of)}.lock"))
    if not (pdir / ".locks").is_dir():
        return []
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return []
    try:
        return _mark_stale(pdir, as_of, runlog or RunLog())
    finally:
        lock.release()


def _write_record(run_dir: Path, record: dict) -> None:
    atomic_write(run_dir / "run.json", json.dumps(record, indent=2, default=str))


# ---------------------------------------------------------------- stages
@dataclass
class _Context:
    plan: RunPlan
    record: dict
    run_dir: Path
    runlog: RunLog
    echo: Echo
    kernels: KernelPrefetch | None = None
    last_stage: str | None = None

    @property
    def spec(self) -> PipelineSpec:
        return self.plan.spec


def _stage_inputs(ctx: _Context, stage_name: str) -> dict:
    st = ctx.spec.stage(stage_name)
    params = dict(ctx.plan.stage_parameters[st.name])
    declared = notebook_parameters(st.notebook)
    params.update(output_dir=str(ctx.run_dir / "outputs"), as_of=ctx.record["as_of"])
    for name, value in (("run_id", ctx.record["run_id"]), ("pipeline", ctx.spec.name)):
        if name in declared:
            params[name] = value
    return params


def _missing_outputs(outputs: Path, names: Iterable[str]) -> list[str]:
    return [n for n in names if not ((outputs / f"{n}.parquet").exists() or (outputs / f"{n}.json").exists())]


def _keep_previous(out: Path) -> Path | None:
    """Move an earlier attempt's notebook aside (``NN-stage.tryK.ipynb``) so it is kept."""
    if not out.exists():
        return None
    k = 1
    while (kept := out.with_name(f"{out.stem}.try{k}.ipynb")).exists():
        k += 1
    os.replace(out, kept)
    return kept


def _attempt(ctx: _Context, index: int, stage_name: str, params: dict, *, last_attempt: bool) -> dict:
    st = ctx.spec.stage(stage_name)
    out = ctx.run_dir / "notebooks" / f"{index:02d}-{st.name}.ipynb"
    _keep_previous(out)
    km = ctx.kernels.take() if ctx.kernels else None
    if ctx.kernels and not (last_attempt and st.name == ctx.last_stage):
        ctx.kernels.prefetch()  # the next stage's (or retry's) kernel starts while this one runs
    outcome = execute_stage(st.notebook, out, params, timeout=st.timeout, cwd=ctx.run_dir, km=km, kernels=ctx.kernels)
    result = {"status": outcome.status, "duration_s": round(outcome.duration_s, 3), "cells_s": round(outcome.cells_s, 3),
              "overhead_s": round(max(outcome.duration_s - outcome.cells_s, 0.0), 3), "notebook": str(out), "error": None}
    if outcome.status == "COMPLETED":
        missing = _missing_outputs(ctx.run_dir / "outputs", st.writes)
        if missing:
            result["status"] = "FAILED"
            result["error"] = {"cell": None, "ename": "MissingOutput", "evalue": f"the stage declares writes {missing} but did not write them", "source": ""}
    elif outcome.error is not None:
        result["error"] = {"cell": outcome.error.cell, "ename": outcome.error.ename,
                           "evalue": outcome.error.evalue.splitlines()[0] if outcome.error.evalue else "",
                           "source": outcome.error.source}
    return result


def _error_message(stage: str, result: dict) -> str:
    err = result["error"] or {}
    verb = "timed out" if result["status"] == "TIMEOUT" else "failed"
    where = f"in cell {err['cell'] + 1}" if err.get("cell") is not None else "after its cells"
    code = f" ({err['source']!r})" if err.get("source") else ""
    return f"stage {stage!r} {verb} {where}{code}: {err.get('ename')}: {err.get('evalue')}"


def _run_stage(ctx: _Context, index: int, stage_rec: dict, *, resumed: bool) -> dict:
    st = ctx.spec.stage(stage_rec["name"])
    missing = _missing_outputs(ctx.run_dir / "outputs", st.reads)
    params = _stage_inputs(ctx, st.name)
    child = ctx.runlog.start_stage(ctx.record["mlflow_run_id"], pipeline=ctx.spec.name, run_id=ctx.record["run_id"],
                                   stage=st.name, index=index, resumed=resumed)
    stage_rec.update(status="RUNNING", started_at=_now(), mlflow_run_id=child, attempts=0, error=None)
    _write_record(ctx.run_dir, ctx.record)
    total = {"duration_s": 0.0, "cells_s": 0.0, "overhead_s": 0.0}
    for attempt in range(st.retries + 1):
        if missing:
            result = {"status": "FAILED", "duration_s": 0.0, "cells_s": 0.0, "overhead_s": 0.0, "notebook": None,
                      "error": {"cell": None, "ename": "MissingInput", "evalue": f"outputs {missing} of earlier stages are missing", "source": ""}}
            stage_rec["attempts"] = 1
            break
        if attempt:
            delay = st.backoff * 2 ** (attempt - 1)
            ctx.echo(f"      retry {attempt}/{st.retries} of {st.name!r} in {delay:.1f} s")
            time.sleep(delay)
        result = _attempt(ctx, index, st.name, params, last_attempt=attempt == st.retries)
        stage_rec["attempts"] = attempt + 1
        for key in total:
            total[key] += result[key]
        if result["status"] == "COMPLETED":
            break
        if attempt < st.retries:
            ctx.runlog.log_notebook(child, result["notebook"], folder=f"notebooks/attempt-{attempt + 1}")
            ctx.echo(f"      {_error_message(st.name, result)}")
    stage_rec.update({k: round(v, 3) for k, v in total.items()})
    stage_rec.update(status=result["status"], finished_at=_now(), notebook=result["notebook"])
    if result["status"] != "COMPLETED":
        stage_rec["error"] = {**result["error"], "message": _error_message(st.name, result), "notebook": result["notebook"]}
    if result["notebook"]:
        ctx.runlog.log_notebook(child, result["notebook"])
    ctx.runlog.end_stage(child, stage_rec)
    return stage_rec


def _drive(ctx: _Context, *, resumed: bool) -> RunResult:
    rec = ctx.record
    t0 = time.monotonic()
    rec.update(status="RUNNING", error=None, pid=os.getpid(), host=socket.gethostname())
    _write_record(ctx.run_dir, rec)
    n = len(rec["stages"])
    ctx.last_stage = rec["stages"][-1]["name"]
    try:
        with _kernel_environment(ctx.runlog.tracking_uri, rec["run_id"]):
            ctx.kernels = KernelPrefetch(ctx.run_dir, log=ctx.run_dir / "kernels.log")
            for i, stage_rec in enumerate(rec["stages"], start=1):
                if stage_rec["status"] == "COMPLETED":
                    ctx.echo(f"[{i}/{n}] {stage_rec['name']}: completed earlier, outputs reused")
                    continue
                ctx.echo(f"[{i}/{n}] {stage_rec['name']} ...")
                _run_stage(ctx, i, stage_rec, resumed=resumed)
                ctx.echo(f"      {stage_rec['status']} in {stage_rec['duration_s']:.1f} s "
                         f"(cells {stage_rec['cells_s']:.1f} s, attempts {stage_rec['attempts']})")
                if stage_rec["status"] != "COMPLETED":
                    return _finish(ctx, stage_rec["status"], t0, error={"stage": stage_rec["name"], **stage_rec["error"]})
    except BaseException as exc:  # interrupted (Ctrl-C, SIGTERM) or a bug in the runner itself
        reason = (f"terminated by {exc}" if str(exc).startswith("SIG") and str(exc) != "SIGINT"
                  else "interrupted (Ctrl-C)") if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"
        where = None
        for stage_rec in rec["stages"]:
            if stage_rec["status"] == "RUNNING":
                where = stage_rec["name"]
                stage_rec.update(status="INTERRUPTED", finished_at=_now(),
                                 error={"message": f"stage {where!r} {reason}", "cell": None, "ename": "Interrupted"})
                if stage_rec.get("mlflow_run_id"):
                    try:
                        ctx.runlog.end_stage(stage_rec["mlflow_run_id"], stage_rec)
                    except Exception as err:
                        log.warning("could not end stage run %s: %s", stage_rec["mlflow_run_id"], err)
        msg = f"run {reason}" + (f" during stage {where!r}" if where else "")
        result = _finish(ctx, "INTERRUPTED", t0, error={"stage": where, "message": msg})
        if isinstance(exc, KeyboardInterrupt):
            raise RunInterrupted(result, reason) from None
        raise
    finally:
        if ctx.kernels is not None:
            ctx.kernels.close()
    return _finish(ctx, "COMPLETED", t0)


def _finish(ctx: _Context, status: str, t0: float, error: dict | None = None) -> RunResult:
    rec = ctx.record
    rec.update(status=status, finished_at=_now(), error=error)
    rec["duration_s"] = round(rec.get("previous_duration_s", 0.0) + time.monotonic() - t0, 3)
    outputs = ctx.run_dir / "outputs"
    rec["outputs"] = sorted(p.stem for p in outputs.glob("*") if p.suffix in {".parquet", ".json"})
    if status == "COMPLETED":
        _write_record(ctx.run_dir, rec)
        pointer = publish(ctx.run_dir, pipeline=ctx.spec.name, run_id=rec["run_id"], only_newer=True, record={
            "as_of": rec["as_of"], "status": status, "finished_at": rec["finished_at"],
            "mlflow_run_id": rec["mlflow_run_id"], "outputs": rec["outputs"],
        })
        rec["published"] = pointer is not None
        if pointer is None:
            newer = latest(ctx.spec.name)
            rec["superseded_by"] = {"run_id": newer.run_id, "as_of": newer.as_of} if newer else None
    _write_record(ctx.run_dir, rec)
    try:
        ctx.runlog.end_pipeline_run(rec["mlflow_run_id"], rec, ctx.run_dir / "run.json")
    except Exception as exc:  # the run folder is the record of last resort
        log.error("could not end the run-log run %s: %s", rec["mlflow_run_id"], exc)
    call_after_run(ctx.spec.hooks, rec, ctx.run_dir, echo=ctx.echo)  # the spec's after-run hooks (alert delivery); never raises
    code = {"COMPLETED": EXIT_OK, "TIMEOUT": EXIT_TIMEOUT}.get(status, EXIT_FAILED)
    if status == "COMPLETED" and not rec["published"]:
        newer = rec.get("superseded_by") or {}
        message = (f"run {rec['run_id']} of {ctx.spec.name!r} (as of {rec['as_of']}) completed; kept but not "
                   f"published as the latest: run {newer.get('run_id')} of the newer as-of {newer.get('as_of')} stays published")
    elif status == "COMPLETED":
        message = f"run {rec['run_id']} of {ctx.spec.name!r} (as of {rec['as_of']}) completed and published"
    else:
        where = f"; executed notebook: {error['notebook']}" if error and error.get("notebook") else ""
        message = (f"run {rec['run_id']} {status}: {error['message'] if error else ''}{where}; nothing was published. "
                   f"Continue it with: workbench pipeline resume {rec['run_id']}")
    return RunResult(ctx.spec.name, status, code, message, rec["run_id"], ctx.run_dir, rec)


# ---------------------------------------------------------------- entry points
_ORPHAN_REASON = "its runner stopped without finishing (killed?); closed when the run was found without a runner"


def _mark_stale(pdir: Path, as_of: str, runlog: RunLog) -> list[str]:
    """Runs of this date still marked RUNNING while we hold the lock were killed: say so, in the
    run folder and in the run log (the parent run and every stage run left RUNNING)."""
    marked = []
    for rec in iter_run_records(pdir):
        if rec.get("as_of") == as_of and rec.get("status") == "RUNNING":
            rec["status"] = "INTERRUPTED"
            rec["error"] = {"stage": None, "message": "the runner stopped without finishing (killed?)"}
            for st in rec.get("stages", []):
                if st.get("status") == "RUNNING":
                    st["status"] = "INTERRUPTED"
                    rec["error"]["stage"] = st["name"]
            _write_record(pdir / rec["run_id"], rec)
            marked.append(rec["run_id"])
            if rec.get("mlflow_run_id"):
                try:
                    runlog.close_orphan_stages(rec["mlflow_run_id"], f"stage {_ORPHAN_REASON}")
                    runlog.mark(rec["mlflow_run_id"], "INTERRUPTED", rec["error"]["message"])
                except Exception as exc:
                    log.warning("could not mark %s interrupted in the run log: %s", rec["run_id"], exc)
    return marked


def _new_record(plan: RunPlan, as_of: str, run_id: str, overrides: dict, runlog: RunLog) -> dict:
    spec = plan.spec
    return {
        "pipeline": spec.name, "run_id": run_id, "as_of": as_of, "status": "PENDING",
        "spec_path": str(spec.path), "spec_sha256": spec.sha256, "overrides": overrides,
        "parameters": plan.shared, "stage_parameters": plan.stage_parameters,
        "started_at": _now(), "finished_at": None, "duration_s": None, "resumed_at": [],
        "tracking_uri": runlog.tracking_uri, "mlflow_run_id": None, "published": False, "error": None,
        "stages": [
            {"name": st.name, "notebook_source": str(st.notebook), "status": "PENDING", "attempts": 0,
             "timeout": st.timeout, "retries": st.retries, "reads": list(st.reads), "writes": list(st.writes)}
            for st in spec.stages
        ],
    }


def run_pipeline(
    spec: str | os.PathLike | PipelineSpec,
    parameters: Iterable[str] | Mapping[str, Any] | None = None,
    *,
    force: bool = False,
    echo: Echo | None = None,
) -> RunResult:
    """Run a pipeline spec.

    Parameters
    ----------
    spec : path or PipelineSpec
        The YAML spec (see :mod:`research.workflow.spec`).
    parameters : list of "key=value" or mapping, optional
        Overrides of shared (``key``) or stage (``stage.key``) parameters.
    force : bool
        Start a new run even when this as-of date is published or a failed run of it exists.
    echo : callable, optional
        Receives progress lines (default: the module logger).

    Returns
    -------
    RunResult
        ``exit_code`` is what the command line exits with.

    Raises
    ------
    SpecError
        Parameters or notebooks refused before execution.
    RunLocked
        Another run of this pipeline and as-of date is in progress.
    """
    echo = echo or log.info
    spec = spec if isinstance(spec, PipelineSpec) else load_spec(spec)
    overrides = _overrides(parameters)
    plan = _plan_as_of(spec, overrides, echo)
    as_of = plan.shared["as_of"]
    pdir = pipeline_dir(spec.name)
    runlog = RunLog()
    run_id = f"{_slug(as_of)}-{pd.Timestamp.now(tz='UTC'):%Y%m%dT%H%M%S}-{secrets.token_hex(2)}"
    with run_lock(pdir / ".locks", _slug(as_of), spec.name, as_of, run_id) as owner:
        _mark_stale(pdir, as_of, runlog)
        same_day = [r for r in iter_run_records(pdir) if r.get("as_of") == as_of]
        skipped = None if force else _already_done(spec.name, pdir, as_of, same_day)
        if skipped is not None:
            return skipped
        last = None if force else _resumable(same_day, plan)
        if last is not None:
            echo(f"resuming failed run {last['run_id']} of the same as-of date and parameters (use --force for a new run)")
            record_owner(owner, last["run_id"])
            return _resume_locked(last, plan, runlog, echo)
        return _start_run(plan, pdir / run_id, overrides, runlog, echo)


def _overrides(parameters: Iterable[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    """The overrides as a mapping (``"key=value"`` strings parsed)."""
    if isinstance(parameters, Mapping):
        return dict(parameters)
    if parameters is None:
        return {}
    from research.workflow.spec import parse_overrides

    return parse_overrides(parameters)


def _plan_as_of(spec: PipelineSpec, overrides: dict[str, Any], echo: Echo) -> RunPlan:
    """The run's plan with its parameters settled and its as-of date resolved into every ``as_of`` parameter.

    Raises
    ------
    SpecError
        The as-of date could not be worked out (its hook failed on the data).
    """
    plan = settle_parameters(plan_run(spec, overrides), echo)
    try:
        as_of = run_as_of(spec, plan.shared)
    except Exception as exc:  # unknown symbol, unreadable data ...
        raise SpecError(f"could not work out the as-of date from the data ({type(exc).__name__}: {exc}); "
                        "check symbols and source, or pass -p as_of=YYYY-MM-DD") from exc
    shared = {**plan.shared, "as_of": as_of}
    return RunPlan(spec, shared, {k: ({**v, "as_of": as_of} if "as_of" in v else v) for k, v in plan.stage_parameters.items()})


def _already_done(pipeline: str, pdir: Path, as_of: str, same_day: list[dict]) -> RunResult | None:
    """A SKIPPED result when a run of this as-of date completed and was published (or superseded); else None."""
    done = [r for r in same_day if r.get("status") == "COMPLETED" and (r.get("published") or r.get("superseded_by"))]
    if not done:
        return None
    last = done[-1]
    how = "already published" if last.get("published") else "already completed (kept; a newer as-of is published)"
    return RunResult(pipeline, "SKIPPED", EXIT_OK,
                     f"as-of {as_of} of {pipeline!r} is {how} by run {last['run_id']} "
                     f"(finished {last.get('finished_at')}); use --force to run it again",
                     last["run_id"], pdir / last["run_id"], last)


def _resumable(same_day: list[dict], plan: RunPlan) -> dict | None:
    """The last run of this as-of date when it can be resumed (unfinished, same spec and parameters); else None."""
    if not same_day:
        return None
    last = same_day[-1]
    if (last.get("status") in _RESUMABLE and last.get("spec_sha256") == plan.spec.sha256
            and json.dumps(last.get("parameters"), sort_keys=True, default=str) == json.dumps(plan.shared, sort_keys=True, default=str)):
        return last
    return None


def _start_run(plan: RunPlan, run_dir: Path, overrides: dict[str, Any], runlog: RunLog, echo: Echo) -> RunResult:
    """A new run in ``run_dir`` (its folders, a copy of the spec, its record and run-log entry), driven stage by stage."""
    spec, as_of, run_id = plan.spec, plan.shared["as_of"], run_dir.name
    (run_dir / "notebooks").mkdir(parents=True)
    (run_dir / "outputs").mkdir()
    (run_dir / "spec.yaml").write_text(spec.path.read_text(encoding="utf-8"), encoding="utf-8")
    record = _new_record(plan, as_of, run_id, overrides, runlog)
    record["mlflow_run_id"] = runlog.start_pipeline_run(
        pipeline=spec.name, run_id=run_id, as_of=as_of, parameters=plan.shared, spec_path=str(spec.path))
    echo(f"run {run_id} of {spec.name!r} as of {as_of}: {run_dir}")
    return _drive(_Context(plan, record, run_dir, runlog, echo), resumed=False)


def _resume_locked(record: dict, plan: RunPlan, runlog: RunLog, echo: Echo) -> RunResult:
    run_dir = pipeline_dir(plan.spec.name) / record["run_id"]
    record["resumed_at"] = [*record.get("resumed_at", []), _now()]
    record["previous_duration_s"] = float(record.get("duration_s") or 0.0)
    record["published"] = False
    if record.get("mlflow_run_id"):
        closed = runlog.close_orphan_stages(record["mlflow_run_id"], f"stage {_ORPHAN_REASON}; the run was resumed")
        if closed:
            echo(f"closed {len(closed)} stage run(s) left RUNNING in the run log by the interrupted runner")
        runlog.reopen(record["mlflow_run_id"])
    else:
        record["mlflow_run_id"] = runlog.start_pipeline_run(
            pipeline=plan.spec.name, run_id=record["run_id"], as_of=record["as_of"],
            parameters=plan.shared, spec_path=str(plan.spec.path))
    first = next((s["name"] for s in record["stages"] if s["status"] != "COMPLETED"), None)
    echo(f"resuming run {record['run_id']} of {plan.spec.name!r} as of {record['as_of']} from stage {first!r}")
    return _drive(_Context(plan, record, run_dir, runlog, echo), resumed=True)


def resume_run(run_id: str, *, echo: Echo | None = None) -> RunResult:
    """Continue a FAILED, TIMEOUT or INTERRUPTED run from its first unfinished stage.

    Completed stages are not run again; their outputs in the run folder are reused. The
    parameters are the ones the run was started with; the spec and notebooks are read again
    from their paths, so a fixed notebook takes effect.
    """
    echo = echo or log.info
    run_dir = find_run_dir(run_id)
    record = read_run_record(run_dir)
    spec = load_spec(record["spec_path"])
    recorded = [s["name"] for s in record["stages"]]
    if [s.name for s in spec.stages] != recorded:
        raise SpecError(f"the stages of {spec.path} changed since run {run_id} started "
                        f"(then {recorded}, now {[s.name for s in spec.stages]}); start a new run instead")
    overrides = {k: v for k, v in record["parameters"].items() if k in spec.parameters}
    for stage, values in record.get("stage_parameters", {}).items():
        overrides.update({f"{stage}.{k}": v for k, v in values.items() if k in spec.stage(stage).parameters})
    plan = plan_run(spec, overrides)
    with run_lock(run_dir.parent / ".locks", _slug(record["as_of"]), spec.name, record["as_of"], run_id):
        _mark_stale(run_dir.parent, record["as_of"], RunLog())
        record = read_run_record(run_dir)
        if record["status"] == "COMPLETED":
            return RunResult(spec.name, "SKIPPED", EXIT_OK, f"run {run_id} already completed; nothing to resume",
                             run_id, run_dir, record)
        return _resume_locked(record, plan, RunLog(), echo)
