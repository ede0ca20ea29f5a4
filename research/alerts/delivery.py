"""Alerts at the end of a pipeline run: put them in the outbox, then deliver what is pending.

A pipeline spec names :func:`after_run` as its after-run hook (``hooks: {after_run:
[research.alerts.delivery:after_run]}``; see :mod:`research.workflow.hooks`), so the engine
calls it once a run ends, whatever its status:

* a run that completed enqueues the alerts its ``signals`` stage wrote (price, technical,
  volume, drawdown, data, model) and the drift alerts of the paper accounts the pipeline steps
  (:func:`paper_drift_alerts`);
* a run that failed or timed out enqueues one critical ``pipeline`` alert naming the stage,
  the error and the executed notebook; an interrupted run (Ctrl-C, SIGTERM) too;
* then, unless the run was interrupted, every pending alert is delivered to the channels of the
  channel file (:mod:`research.alerts.channels`). Without a channel file alerts stay in the
  outbox; ``workbench alerts deliver`` sends them later.

Nothing here can fail a run: problems (an invalid channel file, a receiver that is down, an
unreachable ledger) are reported on the run's progress lines and in the log, and whatever was
not delivered is delivered by the next run. Secrets are read by the channels from the
environment or ``.env`` when they send; they never pass through a notebook.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from research.timeutil import to_naive_utc
from research.workflow.results import read_output

__all__ = ["after_run", "run_alerts", "failure_alert", "paper_drift_alerts", "DELIVERY_DEADLINE"]

log = logging.getLogger(__name__)
#: Seconds a run spends delivering at its end; what is left waits for the next run.
DELIVERY_DEADLINE = 120.0
_FAILED = {"FAILED", "TIMEOUT", "INTERRUPTED"}


def failure_alert(record: dict) -> dict:
    """The critical ``pipeline`` alert of a run that did not complete (one per run and stage)."""
    error = record.get("error") or {}
    stage = error.get("stage") or "?"
    status = str(record.get("status"))
    message = f"pipeline {record.get('pipeline')!r} run {record.get('run_id')} (as of {record.get('as_of')}) {status}"
    if error.get("message"):
        message += f": {error['message']}"
    message += f". Continue it with: workbench pipeline resume {record.get('run_id')}"
    return {"kind": "pipeline", "severity": "critical", "subject": str(record.get("pipeline")),
            "message": message, "as_of": str(record.get("as_of") or ""), "source": "pipeline",
            "key": f"{record.get('run_id')}:{stage}:{status}",
            "payload": {"run_id": record.get("run_id"), "status": status, "stage": error.get("stage"),
                        "cell": error.get("cell"), "ename": error.get("ename"), "notebook": error.get("notebook")}}


def run_alerts(run_dir: str | Path) -> pd.DataFrame:
    """The ``alerts`` output of a run (empty when the run wrote none)."""
    try:
        frame = read_output(Path(run_dir) / "outputs", "alerts")
    except KeyError:
        return pd.DataFrame()
    return frame if isinstance(frame, pd.DataFrame) else pd.DataFrame()


def paper_drift_alerts(pipeline: str, *, since: object = None, url: str | None = None,
                       window: int | None = None, band: float | None = None) -> list[dict]:
    """Drift alerts of the paper accounts ``pipeline`` steps (see :mod:`research.paper.monitor`).

    :func:`research.paper.monitor.drift_alerts` reports every session where an account's rolling
    tracking error against its backtest crossed out of its band; only crossings at or after
    ``since`` (the run's as-of date) are returned, so a replayed history does not flood the
    channels. The monitor's stable id becomes the alert's rule key. ``window`` and ``band`` are
    the drift check's (the run's ``paper`` stage parameters; the monitor's defaults when None).
    """
    from research.paper import book, monitor

    cutoff = None if since in (None, "") else to_naive_utc(since)
    rows: list[dict] = []
    for account in book.list_accounts(url=url, pipeline=pipeline):
        opts = {k: v for k, v in (("window", window), ("band", band)) if v is not None}
        for row in monitor.drift_alerts(account.name, url=url, **opts):
            if cutoff is not None and to_naive_utc(row.get("as_of")) < cutoff:
                continue
            row = dict(row)
            row["key"] = row.pop("id", None) or row.get("as_of")
            row.setdefault("subject", row.get("account") or account.name)
            row.setdefault("kind", "paper_drift")
            row.setdefault("source", "paper")
            rows.append(row)
    return rows


def after_run(record: dict, run_dir: str | Path, *, echo: Callable[[str], None] | None = None,
              url: str | None = None) -> None:
    """Enqueue the alerts of a finished run and deliver what is pending; never raises.

    Parameters
    ----------
    record : dict
        The run's record (``run.json``): ``pipeline``, ``run_id``, ``as_of``, ``status``, ``error``.
    run_dir : path
        The run's folder (its ``outputs/alerts`` is read when the run completed).
    echo : callable, optional
        Receives one progress line (default: the module logger).
    url : str, optional
        Ledger database URL.
    """
    say = echo or log.info
    status = str(record.get("status"))
    try:
        from research.alerts import dispatch, outbox
        from research.alerts.channels import ConfigError, load_config

        new: list[str] = []
        if status == "COMPLETED":
            new += outbox.enqueue(run_alerts(run_dir), url=url, source="signals")
            try:
                stage = (record.get("stage_parameters") or {}).get("paper") or {}
                drift = paper_drift_alerts(str(record.get("pipeline")), since=record.get("as_of"), url=url,
                                           window=stage.get("drift_window"), band=stage.get("drift_band"))
                new += outbox.enqueue(drift, url=url, source="paper")
            except Exception as exc:  # the monitor is optional here; signals alerts still go out
                log.warning("paper drift alerts skipped: %s: %s", type(exc).__name__, exc)
        elif status in _FAILED:
            new += outbox.enqueue([failure_alert(record)], url=url, source="pipeline")
        if status == "INTERRUPTED":
            say(f"alerts: {len(new)} new in the outbox; delivery left to the next run or `workbench alerts deliver`")
            return
        try:
            cfg = load_config()
        except ConfigError as exc:
            say(f"alerts: {len(new)} new in the outbox, not delivered: {exc}")
            return
        if not cfg.channels:
            if new:
                say(f"alerts: {len(new)} new in the outbox (no channel file; see alerts.example.yaml)")
            return
        report = dispatch.deliver(cfg, url=url, deadline=DELIVERY_DEADLINE)
        lines = report.summary().splitlines()
        say(f"alerts: {len(new)} new; " + "; ".join(lines))
    except Exception as exc:  # alerts never fail a run
        log.exception("alert delivery after run %s failed", record.get("run_id"))
        say(f"alerts: not delivered ({type(exc).__name__}: {exc}); `workbench alerts deliver` retries")
