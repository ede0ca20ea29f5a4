"""What a dashboard page knows of the run it shows: the published run, its record and
parameters, its data source and bar length, the page header and the empty state shown before any
run is published."""

from __future__ import annotations

import html
import json
import logging
import os
from pathlib import Path

import ipywidgets as widgets

from research.data.calendars import calendar_of
from research.viz.panels.viewer_safe import mlflow_link, public_tracking_url
from research.workflow.results import PublishedRun, latest

__all__ = ["MissingOutputError", "load_run", "run_record", "require", "data_source", "run_interval",
           "symbol_periods_per_year", "mlflow_run_url", "run_header", "empty_state"]

log = logging.getLogger(__name__)


class MissingOutputError(LookupError):
    """A panel needs a run output that the run did not record."""


# ---------------------------------------------------------------- run data
def load_run(pipeline: str = "daily", *, runs_dir: str | os.PathLike | None = None) -> PublishedRun | None:
    """The latest published run of ``pipeline`` (``None`` when nothing is published yet)."""
    return latest(pipeline, runs_dir=runs_dir)


def run_record(run: PublishedRun) -> dict:
    """The run's full ``run.json`` (parameters, stages) merged over the published pointer."""
    path = Path(run.path) / "run.json"
    record = dict(run.record)
    if path.is_file():
        try:
            record = {**record, **json.loads(path.read_text(encoding="utf-8"))}
        except (OSError, json.JSONDecodeError) as exc:
            log.warning("unreadable run record %s: %s", path, exc)
    return record


def require(run: PublishedRun, name: str) -> None:
    """Raise :class:`MissingOutputError` when ``run`` has no output ``name``."""
    if not run.has(name):
        raise MissingOutputError(f"run {run.run_id} recorded no output {name!r}")


def data_source(run: PublishedRun) -> tuple[str, bool]:
    """The run's data source label and whether any of it is synthetic.

    Read from the ``data_report`` output (columns ``source`` and ``synthetic``), else from the
    run's ``source`` parameter.
    """
    sources: list[str] = []
    synthetic = False
    if run.has("data_report"):
        report = run.table("data_report")
        if "source" in report:
            sources = sorted({str(s) for s in report["source"].dropna()})
        if "synthetic" in report:
            synthetic = bool(report["synthetic"].fillna(False).astype(bool).any())
    if not sources:
        params = run_record(run).get("parameters") or {}
        if params.get("source"):
            sources = [str(params["source"])]
    synthetic = synthetic or "synthetic" in sources
    return (", ".join(sources) if sources else "unknown"), synthetic


def run_interval(run: PublishedRun | None) -> str:
    """The bar length a run used (its ``interval`` parameter; ``"1d"`` when it recorded none)."""
    if run is None:
        return "1d"
    params = run_record(run).get("parameters") or {}
    shared = params.get("shared") if isinstance(params.get("shared"), dict) else {}
    return str(params.get("interval") or shared.get("interval") or run.record.get("interval") or "1d")


def symbol_periods_per_year(symbol: str, interval: str = "1d") -> float:
    """Bars per year of a symbol's calendar at ``interval`` (recorded tables keep no ``attrs``).

    252 for a daily equity, 365 for daily crypto, 8760 for hourly crypto: the calendar's rule
    (:func:`research.data.calendars.calendar_of`, :meth:`~research.data.calendars.Calendar.periods`).
    """
    return float(calendar_of(symbol).periods(interval))


def mlflow_run_url(run_id: str, *, ui_url: str | None = None) -> str | None:
    """Link to a run in the MLflow UI viewers can reach: ``ui_url``, else the configured public
    tracking URL (:func:`research.viz.panels.viewer_safe.public_tracking_url`); ``None`` when
    neither is set (a link to a tracking server behind the proxy would be dead, and would show
    an internal address)."""
    base = ui_url if ui_url is not None else public_tracking_url()
    return f"{base.rstrip('/')}/#/runs/{run_id}" if base and run_id else None


# ---------------------------------------------------------------- header and messages
def run_header(run: PublishedRun, *, title: str) -> widgets.HTML:
    """The page header: title, as-of time, pipeline run id (linked to its MLflow run) and data source."""
    source, synthetic = data_source(run)
    mlflow_id = str(run.record.get("mlflow_run_id") or "")
    link = mlflow_link(mlflow_id)
    mlflow = f" {link}" if link else ""
    badge = ' <span class="wb-badge-synthetic wb-synthetic">synthetic</span>' if synthetic else ""
    as_of = run.as_of or run.finished_at or "unknown"
    body = (
        f'<div class="wb-header"><h2>{html.escape(title)}</h2><div class="wb-meta">'
        f'<span>as of <b class="wb-as-of">{html.escape(str(as_of))}</b></span>'
        f'<span>pipeline run <b class="wb-run-id">{html.escape(run.run_id)}</b> '
        f"({html.escape(run.pipeline)}){mlflow}</span>"
        f'<span>data <b class="wb-source">{html.escape(source)}</b>{badge}</span>'
        f"</div></div>"
    )
    header = widgets.HTML(body)
    header.add_class("wb-header-box")
    return header


def empty_state(pipeline: str = "daily", *, title: str, runs_dir: str | os.PathLike | None = None) -> widgets.HTML:
    """What a page shows before any run of ``pipeline`` is published."""
    box = widgets.HTML(  # no folder named: viewers never see the server's paths
        f'<div class="wb-header"><h2>{html.escape(title)}</h2></div>'
        f'<div class="wb-empty"><b>No results yet.</b> No run of the <code>{html.escape(pipeline)}</code> '
        "pipeline has been published. "
        "Run <code>make run</code> (or <code>workbench pipeline run "
        f"{html.escape(pipeline)}</code>) to produce them, then reload this page.</div>"
    )
    box.add_class("wb-empty-box")
    return box
