"""Pipeline health: recent runs with status and duration, failed stages, today's signals and alerts,
and the alert outbox (deliveries pending, sent and failed; see :mod:`research.alerts.outbox`).

Runs are read from the run log's folders, ``<runs_dir>/<pipeline>/*/run.json`` (every run,
failed ones included); signals and alerts from the latest published run. Error details shown are
the exception's name and message, the cell number and the executed notebook's path; the failing
cell's source is never shown.
"""

from __future__ import annotations

import html
import json
import logging
import os
from pathlib import Path

import ipywidgets as widgets
import pandas as pd
import plotly.graph_objects as go

from research.viz.panels.explorer import params_label
from research.viz.panels.layout import (
    dropdown,
    empty_state,
    figure_output,
    guard,
    load_run,
    note,
    number_text,
    page_root,
    require,
    run_header,
    section,
    set_table,
    show_figure,
    stamp,
    table_html,
)
from research.viz.panels.paper import outbox_panel
from research.viz.panels.staleness import date_alerts, stale_symbols
from research.viz.panels.viewer_safe import on_change, redact
from research.workflow.results import PublishedRun, pipeline_dir

__all__ = ["pipeline_health", "read_runs", "runs_frame", "failed_stages", "runs_panel", "failures_panel",
           "signals_panel", "alerts_panel", "alert_rows"]

log = logging.getLogger(__name__)

_OK = "COMPLETED"
_COLORS = {"COMPLETED": "#2f9e66", "FAILED": "#ba2525", "TIMEOUT": "#cb6e17", "INTERRUPTED": "#8d2b0b",
           "RUNNING": "#2680c2", "PENDING": "#9aa5b1"}
_SEVERITY = {"critical": 0, "error": 0, "warning": 1, "warn": 1, "info": 2}


def read_runs(pipeline: str = "daily", *, runs_dir: str | os.PathLike | None = None, limit: int = 50) -> list[dict]:
    """The newest ``limit`` run records (``run.json``) of a pipeline, newest first; unreadable ones skipped."""
    records = []
    for path in pipeline_dir(pipeline, runs_dir).glob("*/run.json"):
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            log.warning("unreadable run record %s: %s", path, exc)
            continue
        rec.setdefault("run_id", path.parent.name)
        rec["_dir"] = str(path.parent)
        records.append(rec)
    records.sort(key=lambda r: str(r.get("started_at") or r.get("run_id")), reverse=True)
    return records[:limit]


def _stages(record: dict) -> list[dict]:
    stages = record.get("stages") or []
    if isinstance(stages, dict):
        stages = [{"name": k, **(v if isinstance(v, dict) else {"status": v})} for k, v in stages.items()]
    return [s for s in stages if isinstance(s, dict)]


def _duration(rec: dict) -> float | None:
    if rec.get("duration_s") is not None:
        return float(rec["duration_s"])
    start, end = rec.get("started_at"), rec.get("finished_at")
    if start and end:
        return (pd.Timestamp(end) - pd.Timestamp(start)).total_seconds()
    return None


def runs_frame(records: list[dict]) -> pd.DataFrame:
    """One row per run: id, as-of, status, start, duration, published, the stage that stopped it."""
    rows = []
    for rec in records:
        failed = [s.get("name") for s in _stages(rec) if str(s.get("status", "")).upper() not in {_OK, "PENDING", ""}]
        start = rec.get("started_at")
        rows.append({
            "run": str(rec.get("run_id")), "as of": rec.get("as_of") or "", "status": str(rec.get("status") or "?").upper(),
            "started": pd.Timestamp(start).strftime("%Y-%m-%d %H:%M:%S") if start else "",
            "duration [s]": _duration(rec), "published": bool(rec.get("published")),
            "stopped at": ", ".join(str(f) for f in failed),
        })
    return pd.DataFrame(rows, columns=["run", "as of", "status", "started", "duration [s]", "published", "stopped at"])


def failed_stages(records: list[dict]) -> pd.DataFrame:
    """Stages that did not complete, with the error (name, message, cell) and the executed notebook."""
    rows = []
    for rec in records:
        for stage in _stages(rec):
            status = str(stage.get("status", "")).upper()
            if status in {_OK, "PENDING", "RUNNING", ""}:
                continue
            err = stage.get("error") or {}
            error = ": ".join(str(p) for p in (err.get("ename"), err.get("evalue")) if p) or str(err.get("message", ""))
            notebook = str(stage.get("notebook") or err.get("notebook") or stage.get("notebook_source") or "")
            if rec.get("_dir") and notebook.startswith(str(Path(rec["_dir"]).parent)):
                notebook = os.path.relpath(notebook, Path(rec["_dir"]).parent)
            elif notebook:  # outside the runs folder: its name only (viewers never see the server's paths)
                notebook = Path(notebook).name
            rows.append({"run": str(rec.get("run_id")), "stage": stage.get("name"), "status": status,
                         "attempts": stage.get("attempts"), "cell": err.get("cell"), "error": redact(error)[:300],
                         "notebook": redact(notebook)})
    return pd.DataFrame(rows, columns=["run", "stage", "status", "attempts", "cell", "error", "notebook"])


def _runs_figure(records: list[dict], status_filter: str) -> go.Figure:
    shown = [r for r in records if status_filter == "all" or str(r.get("status", "")).upper() != _OK]
    shown = list(reversed(shown))
    fig = go.Figure()
    names = list(dict.fromkeys(s.get("name") for r in shown for s in _stages(r)))
    for name in names:
        y, colors, x = [], [], []
        for rec in shown:
            stage = next((s for s in _stages(rec) if s.get("name") == name), {})
            x.append(str(rec.get("run_id")))
            y.append(_duration(stage) or 0.0)
            colors.append(_COLORS.get(str(stage.get("status", "")).upper(), "#9aa5b1"))
        fig.add_trace(go.Bar(x=x, y=y, name=str(name), marker_line_color=colors, marker_line_width=2,
                             hovertemplate=f"{name}: %{{y:.1f}} s<extra></extra>"))
    status = ", ".join(f"{r.get('run_id')}: {r.get('status')}" for r in shown[-3:])
    which = "recent runs" if status_filter == "all" else "runs that did not complete"
    fig.update_layout(barmode="stack", title=f"Stage durations of the {len(shown)} {which} [s]",
                      yaxis_title="seconds", xaxis_type="category", legend_title_text="stage",
                      annotations=[{"text": html.escape(status), "xref": "paper", "yref": "paper", "x": 0, "y": 1.08,
                                    "showarrow": False, "xanchor": "left", "font": {"size": 10}}])
    return stamp(fig, None)


def runs_panel(records: list[dict]) -> widgets.Widget:
    """Recent runs: a table with status and duration, and stage durations per run."""
    status = dropdown(["all", "not completed"], description="Runs", dom_class="wb-runs-filter")
    frame = runs_frame(records)
    table = table_html(frame, dom_class="wb-runs-table", formats={"duration [s]": ".1f"})
    out = figure_output(_runs_figure(records, status.value), dom_class="wb-runs-fig", height=340)

    def refresh(change: dict) -> None:
        shown = frame if change["new"] == "all" else frame[frame["status"] != _OK]
        set_table(table, shown, formats={"duration [s]": ".1f"})
        show_figure(out, _runs_figure(records, change["new"]))

    on_change(status, refresh, names="value")
    return section("Recent runs", status, table, out, dom_class="wb-runs")


def failures_panel(records: list[dict]) -> widgets.Widget:
    """Stages that failed or timed out, with their executed notebooks."""
    frame = failed_stages(records)
    if frame.empty:
        body = note("No failed stage in the recent runs.", dom_class="wb-failures-none")
    else:
        body = table_html(frame, dom_class="wb-failures-table")
    return section("Failed stages", body, dom_class="wb-failures")


def signals_panel(run: PublishedRun) -> widgets.Widget:
    """Today's signal and target position per symbol (a research output, not an order)."""
    require(run, "signals")
    signals = run.table("signals")
    if "params" in signals:
        signals = signals.assign(params=signals["params"].map(params_label))
    keep = [c for c in ("symbol", "strategy", "signal", "previous_signal", "changed", "target_position", "close",
                        "bar_time", "stale", "params") if c in signals]
    signals = signals[keep] if {"symbol", "signal"} <= set(keep) else signals
    return section("Today's signals", table_html(signals, dom_class="wb-signals-table",
                                                 formats={"target_position": ".3f", "close": ",.2f", "signal": "+.0f",
                                                          "previous_signal": "+.0f"},
                                                 labels={"previous_signal": "Previous", "changed": "Changed today",
                                                         "bar_time": "Last bar", "params": "Parameters"}),
                   dom_class="wb-signals")


#: Alert kinds whose value and threshold are fractions (shown in percent) or days
#: (:mod:`research.stages.todays_signals`); the others (sigmas, RSI, prices) are plain numbers.
_PERCENT_KINDS = {"drawdown", "price_move"}
_DAY_KINDS = {"data"}


def _alert_number(kind: str, value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return str(value)
    if kind in _PERCENT_KINDS:
        return f"{100 * float(value):+.1f}%"
    if kind in _DAY_KINDS:
        return f"{float(value):,.0f} days"
    return number_text(value)


def alert_rows(alerts: pd.DataFrame) -> pd.DataFrame:
    """The alerts as shown: each value and threshold in its own unit (a drawdown in percent, a
    stale feed in days, an RSI as a number), read from the alert's ``kind``."""
    if "kind" not in alerts:
        return alerts
    out = alerts.copy()
    kinds = out["kind"].astype(str).str.lower()
    for col in ("value", "threshold"):
        if col in out:
            out[col] = [_alert_number(k, v) for k, v in zip(kinds, out[col], strict=True)]
    out["kind"] = out["kind"].astype(str).str.replace("_", " ")  # "price_move" -> "price move"
    return out


def alerts_panel(run: PublishedRun) -> widgets.Widget:
    """Price, technical, volume and drawdown alerts of the latest run, most severe first."""
    require(run, "alerts")
    alerts = date_alerts(run.table("alerts"), stale_symbols(run))  # a stale symbol's alerts: dated by its last bar
    alerts = alerts.drop(columns=[c for c in ("as_of", "bar_time") if c in alerts and "dated" in alerts])
    if "severity" in alerts:
        alerts = alerts.assign(_rank=alerts["severity"].astype(str).str.lower().map(_SEVERITY).fillna(3))
        alerts = alerts.sort_values("_rank").drop(columns="_rank")
    body = (table_html(alert_rows(alerts), dom_class="wb-alerts-table", csv=alerts)
            if len(alerts) else note("No alerts.", dom_class="wb-alerts-none"))
    return section("Alerts", body, dom_class="wb-alerts")


def pipeline_health(*, pipeline: str = "daily", runs_dir: str | os.PathLike | None = None,
                    limit: int = 30) -> widgets.Widget:
    """The pipeline health page: every recent run (failed ones too) and the latest run's signals.

    Parameters
    ----------
    pipeline : str
        Pipeline to report on.
    runs_dir : path, optional
        The pipeline's folder (default ``<Settings.runs_dir>/<pipeline>``).
    limit : int
        How many recent runs to list.
    """
    title = "Pipeline health"
    records = read_runs(pipeline, runs_dir=runs_dir, limit=limit)
    run = load_run(pipeline, runs_dir=runs_dir)
    if not records and run is None:
        return page_root([empty_state(pipeline, title=title, runs_dir=runs_dir)], dom_id="health")
    if run is not None:
        head: widgets.Widget = run_header(run, title=title)
    else:
        head = widgets.HTML(f'<div class="wb-header"><h2>{html.escape(title)}</h2></div><div class="wb-empty">'
                            "No run has been published yet: the runs below did not complete. Fix the failing "
                            "stage and resume the run, or run <code>make run</code>.</div>")
    children = [head, guard("Recent runs", lambda: runs_panel(records)),
                guard("Failed stages", lambda: failures_panel(records))]
    if run is not None:
        children += [guard("Signals", lambda: signals_panel(run)), guard("Alerts", lambda: alerts_panel(run))]
    children.append(guard("Alert outbox", lambda: outbox_panel()))
    return page_root(children, dom_id="health")
