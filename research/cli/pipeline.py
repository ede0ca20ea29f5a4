"""``workbench pipeline ...``: run, resume and inspect papermill pipelines."""

from __future__ import annotations

import signal
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register", "app", "print_run_summary", "print_where", "run_daily"]

app = typer.Typer(
    help="Run parameterised notebook pipelines (pipelines/*.yaml) and read their run log.",
    no_args_is_help=True,
)


def _echo(line: str) -> None:
    typer.echo(line)


@contextmanager
def _sigterm_interrupts():
    """SIGTERM (systemd stop, kill) ends the run like Ctrl-C: recorded INTERRUPTED, kernels shut down.

    A second signal while that happens is ignored (with a note), so the record is always written.
    """
    def again(signum, frame):  # the run is already being recorded INTERRUPTED: let that finish
        typer.echo(f"{signal.Signals(signum).name}: already stopping; recording the run", err=True)

    def handler(signum, frame):
        signal.signal(signal.SIGTERM, again)
        signal.signal(signal.SIGINT, again)
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _fmt(value, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def print_run_summary(record: dict) -> None:
    """Print a run's stage table and where its files are."""
    import pandas as pd

    from research.data.summary import print_table

    rows = [
        {"stage": s["name"], "status": s["status"], "attempts": s.get("attempts", 0),
         "wall_s": _fmt(s.get("duration_s")), "cells_s": _fmt(s.get("cells_s")),
         "overhead_s": _fmt(s.get("overhead_s")), "notebook": Path(s["notebook"]).name if s.get("notebook") else ""}
        for s in record.get("stages", [])
    ]
    print_table(pd.DataFrame(rows))
    typer.echo(f"run {record['run_id']} ({record['pipeline']}, as of {record['as_of']}): {record['status']}"
               f" in {_fmt(record.get('duration_s'))} s; published: {'yes' if record.get('published') else 'no'}")
    if record.get("outputs"):
        typer.echo(f"outputs: {', '.join(record['outputs'])}")
    typer.echo(f"mlflow: parent run {record.get('mlflow_run_id')} in experiment pipeline-{record['pipeline']} "
               f"({record.get('tracking_uri')})")


def print_where(run_dir: Path, record: dict) -> None:
    """Print where a run's notebooks, outputs, signals and MLflow runs are, and how to look."""
    import pandas as pd

    from research.data.summary import print_table
    from research.workflow.results import read_output

    outputs = run_dir / "outputs"
    if (outputs / "signals.parquet").exists():
        sig = read_output(outputs, "signals")
        cols = [c for c in ("symbol", "strategy", "bar_time", "signal", "target_position", "stale") if c in sig.columns]
        typer.echo(f"today's signals (as of {record['as_of']}; research output, not orders):")
        frame = sig[cols].copy()
        frame["target_position"] = frame["target_position"].map(lambda v: f"{v:+.2f}")
        frame["bar_time"] = pd.to_datetime(frame["bar_time"]).dt.strftime("%Y-%m-%d %H:%M")
        frame["signal"] = frame["signal"].map(lambda v: f"{v:+.0f}")
        if "stale" in frame:
            frame["stale"] = frame["stale"].map({True: "yes", False: "no"})
        print_table(frame)
    if (outputs / "alerts.parquet").exists():
        alerts = read_output(outputs, "alerts")
        counts = ", ".join(f"{n} {k}" for k, n in alerts["severity"].value_counts().items()) or "none"
        typer.echo(f"alerts: {counts}")
    typer.echo("")
    typer.echo(f"executed notebooks  {run_dir / 'notebooks'}")
    typer.echo(f"signals and alerts  {outputs / 'signals.parquet'}, {outputs / 'alerts.parquet'}")
    typer.echo(f"all outputs         {outputs}  (published pointer: {run_dir.parent / 'published.json'})")
    typer.echo(f"MLflow runs         {record.get('tracking_uri')}: experiment pipeline-{record['pipeline']} "
               f"(run {record.get('mlflow_run_id')}), models in lstm-forecast; browse with `make mlflow` "
               "(workbench mlflow) at http://127.0.0.1:5000")
    typer.echo("dashboards          `make dashboards` (workbench dashboards), then open http://127.0.0.1:8866")
    typer.echo(f"ledger              workbench pipeline status | list | show {record['run_id']}")


def run_daily() -> None:
    """Run ``pipelines/daily.yaml`` with its defaults, print the summary and where things are."""
    from research.config import get_settings
    from research.workflow.runner import run_pipeline

    spec = get_settings().home / "pipelines" / "daily.yaml"
    if not spec.is_file():
        typer.secho(f"no daily pipeline spec at {spec}; run from the workbench's checkout", err=True, fg=typer.colors.RED)
        raise typer.Exit(2)
    t0 = time.monotonic()
    result = _guarded(lambda: run_pipeline(spec, [], echo=_echo))
    if result.status == "SKIPPED":
        typer.echo(result.message)
    else:
        print_run_summary(result.record)
    if result.run_dir is not None and result.status in {"COMPLETED", "SKIPPED"}:
        print_where(result.run_dir, result.record)
    if result.exit_code:
        typer.secho(result.message, err=True, fg=typer.colors.RED)
    elif result.status == "COMPLETED":
        typer.echo(f"daily pipeline finished in {time.monotonic() - t0:.0f} s")
    if result.status in {"COMPLETED", "SKIPPED"}:
        from research.cli.paper import ensure_demo
        from research.paper.db import LedgerError

        typer.echo("\npaper trading: the demo account follows ma_crossover on the sample universe (2018)")
        try:
            ensure_demo()
        except (LedgerError, ValueError, OSError) as exc:  # the pipeline's result stands
            typer.secho(f"the demo paper account was not replayed: {exc}", err=True, fg=typer.colors.YELLOW)
    raise typer.Exit(result.exit_code)


def _finish(result) -> None:
    if result.status == "SKIPPED":
        typer.echo(result.message)
        raise typer.Exit(result.exit_code)
    print_run_summary(result.record)
    typer.echo(f"run folder: {result.run_dir}")
    if result.exit_code:
        typer.secho(result.message, err=True, fg=typer.colors.RED)
    else:
        typer.echo(result.message)
    raise typer.Exit(result.exit_code)


def _guarded(call):
    from research.workflow.runlog import RunLogError
    from research.workflow.runner import (
        EXIT_FAILED,
        EXIT_INVALID,
        EXIT_LOCKED,
        RunInterrupted,
        RunLocked,
    )
    from research.workflow.spec import SpecError

    try:
        with _sigterm_interrupts():
            return call()
    except RunInterrupted as exc:  # recorded INTERRUPTED; one clean message, no traceback
        if exc.result.record.get("stages"):
            print_run_summary(exc.result.record)
        typer.secho(exc.result.message, err=True, fg=typer.colors.RED)
        raise typer.Exit(143 if exc.reason.endswith("SIGTERM") else 130) from None
    except SpecError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(EXIT_INVALID) from None
    except RunLocked as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.YELLOW)
        raise typer.Exit(EXIT_LOCKED) from None
    except RunLogError as exc:  # a run id that is not in the store is an input error
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(EXIT_INVALID if isinstance(exc, LookupError) else EXIT_FAILED) from None


def _check_plan(spec: Path, params: list[str]) -> None:
    """Refuse a spec or parameters that the run would refuse, before the runner's libraries load."""
    from research.workflow.spec import SpecError, load_spec, plan_run

    try:
        plan_run(load_spec(spec, load_hooks=False), params)
    except SpecError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from None


@app.command("run")
def run_cmd(
    spec: Annotated[Path, typer.Argument(help="Pipeline spec, e.g. pipelines/daily.yaml.")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="Override a parameter: key=value or stage.key=value (repeatable).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Run again even if this as-of date is published, and never resume a failed run.")] = False,
) -> None:
    """Run a pipeline: every stage notebook through papermill, then publish the run.

    Parameters are validated before anything executes. The executed notebooks go to
    runs/<pipeline>/<run id>/notebooks, the run log to the MLflow tracking store. Exit codes:
    0 done or already published, 1 a stage failed, 2 refused, 3 a stage timed out, 75 the same
    pipeline and as-of date is already running. A failed run of the same as-of date and
    parameters is resumed instead of started over (unless --force).
    """
    _check_plan(spec, param or [])
    from research.workflow.runner import run_pipeline

    _finish(_guarded(lambda: run_pipeline(spec, param or [], force=force, echo=_echo)))


@app.command("resume")
def resume_cmd(run_id: Annotated[str, typer.Argument(help="The run id printed by `pipeline run`.")]) -> None:
    """Continue a failed run from its failed stage, reusing the outputs of completed stages."""
    from research.workflow.runner import resume_run

    _finish(_guarded(lambda: resume_run(run_id, echo=_echo)))


@app.command("list")
def list_cmd(
    pipeline: Annotated[str | None, typer.Option("--pipeline", help="Only this pipeline.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many runs.")] = 20,
) -> None:
    """List the latest pipeline runs from the run log (newest first)."""
    import pandas as pd

    from research.data.summary import print_table
    from research.workflow.runlog import RunLog

    rows = _guarded(lambda: RunLog().list_runs(pipeline, limit=limit))
    if not rows:
        typer.echo("no pipeline runs recorded yet")
        return
    frame = pd.DataFrame(rows)
    frame["started"] = pd.to_datetime(frame["started"], unit="ms", utc=True).dt.strftime("%Y-%m-%d %H:%M:%S")
    frame["duration_s"] = frame["duration_s"].map(_fmt)
    frame["published"] = frame["published"].map({True: "yes", False: "no"})
    print_table(frame[["run_id", "pipeline", "as_of", "status", "started", "duration_s", "published"]])


@app.command("status")
def status_cmd(pipeline: Annotated[str | None, typer.Argument(help="Pipeline name (default: every pipeline).")] = None) -> None:
    """Show each pipeline's latest run, its published run, and how to continue a failed one."""
    from research.workflow.results import latest
    from research.workflow.runlog import RunLog
    from research.workflow.runner import close_orphans, is_running

    ledger = _guarded(RunLog)
    rows = ledger.list_runs(pipeline, limit=200)
    names = [pipeline] if pipeline else sorted({r["pipeline"] for r in rows})
    if not names:
        typer.echo("no pipeline runs recorded yet")
        return
    # housekeeping: runs left RUNNING by a runner that is gone are recorded INTERRUPTED (stage runs too)
    closed: set[str] = set()
    for key in sorted({(r["pipeline"], r["as_of"]) for r in rows if r["status"] == "RUNNING"}):
        if not is_running(*key):
            closed.update(close_orphans(*key, ledger))
    for name in names:
        mine = [r for r in rows if r["pipeline"] == name]
        pub = latest(name)
        typer.echo(f"{name}:")
        if mine:
            last = mine[0]
            status = last["status"]
            if status == "RUNNING" and (last["run_id"] in closed or not is_running(name, last["as_of"])):
                status = "INTERRUPTED (its runner is gone; the next start resumes it)"
                if last["run_id"] in closed:
                    status += "; recorded INTERRUPTED in the ledger"
            typer.echo(f"  latest run  {last['run_id']}  as of {last['as_of']}  {status}")
            if last["status"] not in {"COMPLETED", "RUNNING"}:
                typer.echo(f"  error       {last['error']}")
                typer.echo(f"  continue    workbench pipeline resume {last['run_id']}")
        typer.echo(f"  published   {pub.run_id + '  as of ' + str(pub.as_of) if pub else 'nothing yet'}")


@app.command("show")
def show_cmd(run_id: Annotated[str, typer.Argument(help="The run id.")]) -> None:
    """Show one run: parameters, stages, error, outputs and where its notebooks are."""
    import json

    from research.workflow.runlog import RunLog, find_run_dir, read_run_record

    entry = _guarded(lambda: RunLog().get_run(run_id))
    try:
        record = read_run_record(find_run_dir(run_id))
    except Exception:  # the folder may have been cleaned up; the run log still knows
        record = {"run_id": run_id, "pipeline": entry["pipeline"], "as_of": entry["as_of"], "status": entry["status"],
                  "duration_s": entry["duration_s"], "mlflow_run_id": entry["mlflow_run_id"],
                  "stages": [{"name": s["stage"], "status": s["status"], "attempts": s["attempts"],
                              "duration_s": s["duration_s"]} for s in entry["stages"]]}
    typer.echo(f"parameters: {json.dumps(record.get('parameters', entry.get('parameters')), default=str)}")
    print_run_summary(record)
    if record.get("error"):
        typer.echo(f"error: {record['error'].get('message')}")
        if record["error"].get("notebook"):
            typer.echo(f"failing notebook: {record['error']['notebook']}")
    typer.echo(f"ledger: {entry['status']} ({len(entry['stages'])} stage runs); artifacts {entry['artifact_uri']}")


def register(app_root: typer.Typer) -> None:
    """Add the ``pipeline`` group to the root ``workbench`` command."""
    app_root.add_typer(app, name="pipeline")
