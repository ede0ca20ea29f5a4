"""Building blocks shared by every dashboard page.

A page is composed by :func:`page` from a header (title, as-of time, pipeline run, data source)
and a list of panels. Each panel is a function ``panel(run) -> Widget``; :func:`page` calls it
inside a guard, so a panel whose output is missing from the run shows a short message instead of
a traceback. Figures are plotly figures shown through an ``ipywidgets.Output`` as the
``application/vnd.plotly.v1+json`` mime bundle: the renderer is the plotly extension shipped in
the plotly package, so pages render without any network access (no CDN).

Every widget a test or a stylesheet needs to find carries a DOM class starting with ``wb-``.
"""

from __future__ import annotations

import datetime
import html
import json
import logging
import math
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import numpy as np
import pandas as pd

from research.config import get_settings
from research.data.calendars import calendar_of
from research.timeutil import to_naive_utc, to_naive_utc_index
from research.viz.panels.deferred import READY_SCRIPT, deferred, has_figure, on_page, ready_widget
from research.viz.panels.viewer_safe import (
    callback_notice,
    mlflow_link,
    public_tracking_url,
    redact,
)
from research.workflow.results import PublishedRun, latest

__all__ = [
    "PLOTLY_MIME", "BUNDLED_TRACES", "MissingOutputError", "load_run", "run_record", "data_source", "run_header",
    "empty_state", "figure_output", "show_figure", "stamp", "table_html", "set_table", "csv_link", "mlflow_run_url",
    "column_label", "number_text", "cell_text", "table_row",
    "section", "note", "naive_index", "line_xy", "weekly_note", "MAX_POINTS", "guard", "guarded", "page", "page_root", "require", "dropdown", "symbol_periods_per_year", "run_interval",
]

log = logging.getLogger(__name__)

PLOTLY_MIME = "application/vnd.plotly.v1+json"
Panel = Callable[[PublishedRun], widgets.Widget]

_CSS = """
<style>
.wb-page { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2933; }
.wb-header { border-bottom: 2px solid #3e4c59; margin-bottom: 8px; padding-bottom: 6px; }
.wb-header h2 { margin: 0 0 4px 0; font-size: 1.5em; }
.wb-meta span { margin-right: 18px; font-size: 0.92em; color: #52606d; }
.wb-meta b { color: #1f2933; }
.wb-badge-synthetic { background: #f0b429; color: #1f2933; padding: 1px 6px; border-radius: 3px;
  font-weight: 600; }
.wb-section { margin: 10px 0 14px 0; }
.wb-section-title { font-weight: 600; font-size: 1.1em; margin: 6px 0 2px 0; }
.wb-note { color: #52606d; font-size: 0.9em; }
.wb-empty, .wb-panel-error { padding: 12px 16px; border-radius: 4px; margin: 8px 0; }
.wb-empty { background: #e3f8ff; border-left: 4px solid #2680c2; }
.wb-panel-error { background: #fff3c4; border-left: 4px solid #cb6e17; }
.wb-update-failed { position: fixed; top: 8px; left: 8px; right: 8px; z-index: 20; }
.wb-table, .wb-table .widget-html-content { max-width: 100%; min-width: 0; }
.wb-table .widget-html-content { height: auto; }
.wb-table-scroll { overflow-x: auto; max-width: 100%; }
.wb-table table { border-collapse: collapse; font-size: 0.88em; font-variant-numeric: tabular-nums; }
.wb-table th, .wb-table td { border-bottom: 1px solid #d9e2ec; padding: 3px 8px; text-align: left;
  white-space: nowrap; }
.wb-table th.wb-num, .wb-table td.wb-num { text-align: right; }
.wb-table th { background: #f5f7fa; font-weight: 600; }
.wb-row { display: flex; flex-wrap: wrap; gap: 8px 24px; align-items: flex-start; max-width: 100%; }
.wb-row > * { flex: 0 1 auto; min-width: 0; max-width: 100%; }
.wb-download { font-size: 0.82em; color: #2680c2; margin: 2px 0 0 2px; display: inline-block; }
.wb-status-COMPLETED { color: #0e7c45; font-weight: 600; }
.wb-status-FAILED, .wb-status-TIMEOUT, .wb-status-INTERRUPTED { color: #ba2525; font-weight: 600; }
.wb-cards { display: flex; flex-wrap: wrap; gap: 8px; }
.wb-card { border: 1px solid #d9e2ec; border-radius: 4px; padding: 6px 10px; min-width: 120px; }
.wb-card .wb-card-value { font-size: 1.2em; font-weight: 600; }
.wb-card .wb-card-label { font-size: 0.8em; color: #52606d; }
.wb-figure, .wb-plot { max-width: 100%; min-width: 0; }
@media (max-width: 640px) {
  .wb-page .widget-hbox { flex-wrap: wrap; }
  .wb-page .wb-control { width: 100% !important; max-width: 100%; }
  .wb-page .wb-control select { min-width: 0; flex: 1 1 auto; }
  .wb-card { flex: 1 1 100%; min-width: 0; }
  .wb-meta > span { display: block; margin-right: 0; }
  .wb-header h2 { font-size: 1.25em; }
  .wb-page .widget-hbox > .wb-figure, .wb-page .widget-hbox > .wb-sweep-overfit { flex: 1 1 100% !important;
    width: 100% !important; min-width: 0 !important; }
}
</style>
"""


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


def note(text: str, *, dom_class: str = "wb-note") -> widgets.HTML:
    """A short line of escaped text."""
    box = widgets.HTML(f'<div class="{dom_class}">{html.escape(text)}</div>')
    box.add_class(dom_class)
    return box


# ---------------------------------------------------------------- figures and tables
#: Longer series are drawn at weekly resolution (keeps pages light; tables keep every bar).
MAX_POINTS = 2500


def naive_index(index: pd.Index) -> pd.Index:
    """A timestamp index as naive UTC (plotly ignores offsets, so make the choice explicit)."""
    return to_naive_utc_index(index)


def line_xy(series: pd.Series, *, how: str = "last", max_points: int = MAX_POINTS) -> tuple[pd.Index, Any, bool]:
    """x, y of a time series for drawing, and whether it was thinned to weekly points.

    A series longer than ``max_points`` bars is resampled to weeks ending Friday, keeping each
    week's ``how`` value (``"last"`` for levels, ``"min"`` for drawdowns so troughs survive).
    """
    series = series.dropna()
    thinned = len(series) > max_points and isinstance(series.index, pd.DatetimeIndex)
    if thinned:
        series = getattr(series.resample("W-FRI"), how)().dropna()
    return naive_index(series.index), series.to_numpy(), thinned


def weekly_note(thinned: bool) -> str:
    """Title suffix for figures drawn from weekly points."""
    return " · weekly points" if thinned else ""


def stamp(fig: Any, run: PublishedRun | None) -> Any:
    """Write the run's as-of time and id under a figure (every figure says where it came from)."""
    if run is not None:
        fig.add_annotation(
            text=f"as of {run.as_of or run.finished_at or '?'} · run {run.run_id}",
            xref="paper", yref="paper", x=1.0, y=-0.12, xanchor="right", yanchor="top",
            showarrow=False, font={"size": 10, "color": "#7b8794"},
        )
    fig.update_layout(margin={"l": 50, "r": 20, "t": 50, "b": 60}, template="plotly_white")
    return fig


#: The trace types the page's plotly.js bundle holds (``research/viz/static/plotly-bundle/entry.js``);
#: a figure of any other type would not draw on the dashboard server.
BUNDLED_TRACES = ("scatter", "bar", "heatmap", "histogram")

#: Draws a figure with the page's plotly.js (``<script id="wb-plotly">``, loaded once per page).
#: Figures are drawn one at a time, each in its own task after the browser has had a frame, so
#: the first figure shows while the others are still waiting; a figure redrawn after a widget
#: change (plotly already loaded, nothing queued) is drawn at once.
_PAGE_FIGURE = """<div class="wb-plot" id="{id}"></div><script>(function () {{
var el = document.getElementById("{id}"), spec = {spec};
var title = ((spec.layout || {{}}).title || {{}}).text || "figure";
var q = window.wbFigures || (window.wbFigures = {{busy: false, todo: []}});
function next() {{ q.busy = false; var f = q.todo.shift(); if (f) f(); }}
function fit(layout) {{
  var width = el.clientWidth || (el.parentNode && el.parentNode.clientWidth) || 800;
  if (width >= 640) return layout;
  var t = layout.title = Object.assign({{}}, layout.title || {{}});
  var words = String(t.text || "").split(" "), lines = [""], most = Math.max(Math.floor((width - 24) / 7.6), 16);
  words.forEach(function (w) {{
    var line = lines[lines.length - 1];
    if (line && (line + " " + w).length > most) lines.push(w); else lines[lines.length - 1] = line ? line + " " + w : w;
  }});
  t.text = lines.join("<br>");
  t.font = Object.assign({{}}, t.font || {{}}, {{size: 14}});
  // below the mode bar (about 30 px), which a phone shows over the figure's top edge
  t.x = 0.02; t.xanchor = "left"; t.y = 1 - 32 / (layout.height || 450); t.yanchor = "top"; t.yref = "container";
  var above = 0;  // notes above the plot (small print): one item per line
  layout.annotations = (layout.annotations || []).map(function (a) {{
    var text = String(a.text || "");
    if (a.yref !== "paper" || !(a.y > 1) || text.length * 6 < width - 40) return a;
    var parts = text.split(", ");
    above = Math.max(above, parts.length);
    return Object.assign({{}}, a, {{text: parts.join("<br>"), y: 1.0, yanchor: "bottom", x: 0, xanchor: "left", yshift: 4}});
  }});
  layout.margin = Object.assign({{}}, layout.margin || {{}}, {{l: 44, r: 12, t: 40 + 18 * lines.length + 13 * above, b: 60}});
  layout.legend = Object.assign({{}}, layout.legend || {{}}, {{orientation: "h", x: 0, xanchor: "left", y: -0.18, yanchor: "top"}});
  return layout;
}}
function draw() {{
  if (!el.isConnected) {{ next(); return; }}
  q.busy = true;
  Promise.resolve(window.Plotly.newPlot(el, spec.data, fit(spec.layout || {{}}), {{displaylogo: false, responsive: true,
    toImageButtonOptions: {{format: "png", filename: title.replace(/[^A-Za-z0-9._-]+/g, "-").slice(0, 80)}}}}))
    .catch(function (e) {{ console.error(e); }})
    .then(function () {{ {ready} requestAnimationFrame(function () {{ setTimeout(next, 0); }}); }});
}}
function enqueue() {{ if (q.busy) q.todo.push(draw); else draw(); }}
if (window.Plotly) {{ enqueue(); return; }}
var tag = document.getElementById("wb-plotly");
if (!tag) {{ tag = document.createElement("script"); tag.id = "wb-plotly";
  tag.src = (document.body.dataset.baseUrl || "/voila/") + "wb/plotly-workbench.min.js"; document.head.appendChild(tag); }}
tag.addEventListener("load", enqueue);
}})();</script>"""


def _bundle(fig: Any) -> dict:
    """The display bundle of ``fig``: plotly's mime type, or, on the dashboard server
    (``WORKBENCH_FIGURES=page``), HTML drawing it with the plotly.js bundle the server serves."""
    import uuid

    import plotly.io as pio

    text = pio.to_json(fig, validate=False)
    spec = json.loads(text)
    title = ((spec.get("layout") or {}).get("title") or {}).get("text") or "figure"
    if get_settings().figures == "page":
        markup = _PAGE_FIGURE.format(id=f"wb-plot-{uuid.uuid4().hex[:12]}", spec=text.replace("</", "<\\/"),
                                     ready=READY_SCRIPT)
        data = {"text/html": markup, "text/plain": f"<plotly figure: {title}>"}
    else:
        data = {PLOTLY_MIME: spec, "text/plain": f"<plotly figure: {title}>"}
    return {"output_type": "display_data", "data": data, "metadata": {}}


def show_figure(out: widgets.Output, fig: Any) -> None:
    """Replace what ``out`` shows with ``fig`` (works with or without a running kernel)."""
    out.outputs = (_bundle(fig),)


def figure_output(fig: Any, *, dom_class: str, height: int | None = None) -> widgets.Output:
    """An output widget showing a plotly figure, with DOM classes ``wb-figure`` and ``dom_class``."""
    if height is not None:
        fig.update_layout(height=height)
    out = widgets.Output()
    out.add_class("wb-figure")
    out.add_class(dom_class)
    show_figure(out, fig)
    return out


def _format_times(column: pd.Series) -> pd.Series:
    stamps = pd.to_datetime(column, utc=True)
    daily = bool((stamps.dropna() == stamps.dropna().dt.normalize()).all())
    return stamps.dt.strftime("%Y-%m-%d" if daily else "%Y-%m-%d %H:%M")


#: Column names whose label is not their words in sentence case (keys lower case).
LABELS = {
    "pnl": "P&L", "pnl_pct": "P&L [%]", "realised_pnl": "Realised P&L", "realized_pnl": "Realised P&L",
    "unrealised_pnl": "Unrealised P&L", "unrealized_pnl": "Unrealised P&L", "qty": "Quantity", "as_of": "As of",
    "order_id": "Order", "run_id": "Run", "mlflow_run_id": "MLflow run", "id": "ID", "var": "VaR", "cvar": "CVaR",
    "entry_time": "Entry", "exit_time": "Exit", "bar_time": "Bar", "return": "Return", "last_error": "Last error",
    "periods_per_year": "Bars per year", "n_obs": "Bars", "ts": "Time", "timestamp": "Time",
}
#: Words spelled their own way inside a snake_case name.
_WORDS = {"pnl": "P&L", "qty": "quantity", "id": "ID", "pct": "%", "usd": "USD", "var": "VaR", "cvar": "CVaR",
          "oos": "out-of-sample", "ann": "ann.", "mlflow": "MLflow", "ohlc": "OHLC", "sma": "SMA", "ema": "EMA",
          "rsi": "RSI", "macd": "MACD", "pbo": "PBO", "dsr": "DSR"}
_SNAKE = re.compile(r"[a-z][a-z0-9_ ]*?(?P<unit>\s*\[[^\]]*\])?")
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?")
_NUMBER_TEXT = re.compile(r"[+-]?(\d{1,3}(,\d{3})*|\d+)(\.\d+)?\s?%?")
_SCIENTIFIC = re.compile(r"\de[+-]?\d", re.IGNORECASE)


def column_label(name: object) -> str:
    """How a column is headed on a page: ``"entry_price"`` -> ``"Entry price"``, ``"pnl"`` -> ``"P&L"``,
    ``"depth [%]"`` -> ``"Depth [%]"`` (:data:`LABELS` first); names that are not lower-case words
    (``"Sharpe Ratio"``, ``"fast=7, slow=60"``) are kept as they are."""
    text = str(name)
    if text.lower() in LABELS:
        return LABELS[text.lower()]
    found = _SNAKE.fullmatch(text)
    if not found:
        return text
    unit = found["unit"] or ""
    words = [_WORDS.get(w, w) for w in re.split(r"[_ ]+", text[: len(text) - len(unit)].strip()) if w]
    if not words:
        return text
    label = " ".join(words)
    return label[:1].upper() + label[1:] + unit


def _missing_value(value: object) -> bool:
    if value is None or value is pd.NaT:
        return True
    try:
        return bool(pd.isna(value)) if not isinstance(value, (str, bytes)) else False
    except (TypeError, ValueError):
        return False


def _decimals(size: float) -> int:
    """Decimals for a number of this size: none from 100,000, 2 from 1, 4 significant digits below 1."""
    if size >= 1e5:
        return 0
    if size >= 1 or size == 0:
        return 2
    return min(10, 3 - math.floor(math.log10(size)))


def number_text(value: float | int, *, decimals: int | None = None) -> str:
    """A number as a page shows it: thousands separators and never scientific notation; whole
    numbers without decimals, else :func:`_decimals` (or ``decimals``)."""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if _missing_value(value):
        return ""
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    value = float(value) + 0.0  # no "-0"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    alone = decimals is None
    if decimals is None:
        if abs(value) < 1e15 and value == int(value):
            return f"{value:,.0f}"
        decimals = _decimals(abs(value))
    text = f"{value:,.{decimals}f}"
    if alone and decimals > 2:  # a number on its own: 0.0001230 -> 0.000123
        text = text.rstrip("0")
        text += "0" * max(0, 2 - len(text.partition(".")[2]))
    if text.strip("-0.,") == "":  # no "-0.00", no "0.0000000000"
        return "0" if decimals > 2 else text.lstrip("-")
    return text


def time_text(value: Any) -> str:
    """A timestamp (or ISO string) as a date, or date and HH:MM when it is not midnight (UTC)."""
    stamp = to_naive_utc(value)
    return stamp.strftime("%Y-%m-%d" if stamp == stamp.normalize() else "%Y-%m-%d %H:%M")


def cell_text(value: Any) -> str:
    """One cell of a table as a page shows it (see :func:`_table_markup` for the rules)."""
    if isinstance(value, (bool, np.bool_, int, float, np.integer, np.floating)):
        return number_text(value)  # booleans as yes/no, NaN empty
    if _missing_value(value):
        return ""
    if isinstance(value, (pd.Timestamp, datetime.datetime, np.datetime64)):
        return time_text(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, str) and _ISO.fullmatch(value.strip()):
        try:
            return time_text(value.strip())
        except (ValueError, TypeError):
            return value
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _column_texts(column: pd.Series, fmt: str | None) -> tuple[list[str], bool]:
    """The cells of one column as text, and whether the column is numeric (right-aligned)."""
    values = list(column)
    missing = column.isna().tolist()  # once per column, not per cell and per check
    if isinstance(column.dtype, np.dtype) and column.dtype.kind in "fiu":  # a numpy number column: no per-cell test
        numeric = bool(values)
    else:
        numeric = (all(m or _is_number(v) for v, m in zip(values, missing, strict=True))
                   and any(_is_number(v) for v in values))
    if fmt is not None:
        texts = []
        for v, m in zip(values, missing, strict=True):
            if m:
                texts.append("")
                continue
            try:
                text = format(v, fmt)
            except (TypeError, ValueError):
                text = cell_text(v)
            texts.append(cell_text(v) if _SCIENTIFIC.search(text) and _is_number(v) else text)
        return texts, numeric
    if isinstance(column.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(column):
        return list(_format_times(column).fillna("")), False
    stamps = [v for v in values if isinstance(v, (pd.Timestamp, datetime.datetime))
              or (isinstance(v, str) and _ISO.fullmatch(v.strip()))]
    if stamps and len(stamps) == missing.count(False):
        try:  # a column of timestamps: one precision for the whole column
            parsed = [None if m else pd.Timestamp(v.strip() if isinstance(v, str) else v)
                      for v, m in zip(values, missing, strict=True)]
            return list(_format_times(pd.Series(parsed, dtype=object)).fillna("")), False
        except (ValueError, TypeError):
            pass
    if numeric and pd.api.types.is_float_dtype(column):  # one precision for the whole column
        finite = column[np.isfinite(column.astype("float64"))].abs()
        if len(finite) and (finite == finite.round()).all() and (finite < 1e15).all():
            decimals = 0
        else:
            nonzero = finite[finite > 0]
            decimals = _decimals(float(nonzero.median())) if len(nonzero) else 2
        return [number_text(v, decimals=decimals) for v in values], True
    texts = [cell_text(v) for v in values]
    if not numeric:  # numbers already written as text ("12.35%", "2,391") are aligned as numbers
        written = [t for t in texts if t]
        numeric = bool(written) and all(_NUMBER_TEXT.fullmatch(t) for t in written)
    return texts, numeric


def _table_markup(frame: pd.DataFrame, *, max_rows: int, formats: dict[str, str] | None,
                  labels: dict[str, str] | None = None) -> str:
    """The HTML of a table as a page shows it (the CSV download keeps the raw frame).

    Headers: ``labels[column]`` when given, else :func:`column_label`. Cells: ``formats[column]``
    (a format spec) when given, unless it would print scientific notation; else numbers by
    :func:`number_text`, booleans as yes/no, timestamps and ISO timestamp strings as a date (or
    date and HH:MM when any of the column is intraday), missing values empty.
    """
    shown = frame.head(max_rows)
    formats, labels = formats or {}, labels or {}
    columns = []
    for i, col in enumerate(shown.columns):
        texts, numeric = _column_texts(shown.iloc[:, i], formats.get(col))
        columns.append((labels.get(col, column_label(col)), texts, numeric))
    num = ' class="wb-num"'
    head = "".join(f"<th{num if numeric else ''}>{html.escape(label)}</th>" for label, _, numeric in columns)
    rows = "".join("<tr>" + "".join(f"<td{num if numeric else ''}>{html.escape(texts[r])}</td>"
                                    for _, texts, numeric in columns) + "</tr>" for r in range(len(shown)))
    markup = (f'<div class="wb-table-scroll"><table class="wb-table-inner"><thead><tr>{head}</tr></thead>'
              f"<tbody>{rows}</tbody></table></div>")
    if len(frame) > max_rows:
        markup += f'<div class="wb-note">showing {max_rows} of {len(frame)} rows</div>'
    return markup


def table_html(frame: pd.DataFrame, *, dom_class: str, max_rows: int = 30,
               formats: dict[str, str] | None = None, labels: dict[str, str] | None = None,
               csv: pd.DataFrame | None = None) -> widgets.HTML:
    """A read-only HTML table of ``frame`` (values escaped), DOM classes ``wb-table`` and ``dom_class``.

    Headers and cells are written for a reader (:func:`_table_markup`: ``labels`` and ``formats``,
    keyed by the frame's own column names, win over the defaults); the CSV download under the
    table holds the frame as it is (full precision, original column names), or ``csv`` when the
    table shown is a digest of a larger one.
    """
    box = widgets.HTML()
    box.add_class("wb-table")
    box.add_class(dom_class)
    set_table(box, frame, max_rows=max_rows, formats=formats, labels=labels, csv=csv)
    return box


def csv_link(frame: pd.DataFrame, name: str) -> str:
    """A "download CSV" link holding every row of ``frame`` (a ``data:`` URL: nothing is fetched)."""
    import base64

    from research.data.csvsafe import to_csv

    data = base64.b64encode(to_csv(frame, index=False).encode("utf-8")).decode("ascii")
    filename = html.escape(f"{name}.csv", quote=True)
    return (f'<a class="wb-download" download="{filename}" href="data:text/csv;base64,{data}">'
            f"download CSV ({len(frame)} rows)</a>")


def set_table(box: widgets.HTML, frame: pd.DataFrame, *, max_rows: int = 30,
              formats: dict[str, str] | None = None, labels: dict[str, str] | None = None,
              csv: pd.DataFrame | None = None) -> None:
    """Replace the table shown by ``box``, with a link downloading all its rows as CSV (the raw
    ``frame``, or ``csv`` when the table shown is a digest of a larger one)."""
    if not len(frame):
        box.value = '<div class="wb-note">nothing to show</div>'
        return
    name = next((c[3:] for c in box._dom_classes if c.startswith("wb-") and c != "wb-table"), "table")
    box.value = (_table_markup(frame, max_rows=max_rows, formats=formats, labels=labels)
                 + csv_link(frame if csv is None else csv, name))


def table_row(*children: widgets.Widget, dom_class: str = "wb-table-row") -> widgets.HBox:
    """Tables (or sections holding them) side by side that wrap onto the next line when the
    screen is too narrow for both: they never overlap (DOM classes ``wb-row`` and ``dom_class``)."""
    box = widgets.HBox(list(children), layout=widgets.Layout(flex_flow="row wrap", align_items="flex-start",
                                                             width="100%"))
    box.add_class("wb-row")
    box.add_class(dom_class)
    return box


def dropdown(options: Sequence[Any], *, description: str, dom_class: str, value: Any = None,
             width: str = "260px") -> widgets.Dropdown:
    """A labelled dropdown with DOM class ``dom_class``."""
    options = list(options)
    first = options[0] if options else None
    if isinstance(first, tuple):
        first = first[1]
    box = widgets.Dropdown(
        options=options, value=value if value is not None else first,
        description=description, style={"description_width": "initial"},
        layout=widgets.Layout(width=width),
    )
    box.add_class("wb-control")
    box.add_class(dom_class)
    _hide_without_choice(box)
    box.observe(lambda _: _hide_without_choice(box), names="options")
    return box


def _hide_without_choice(box: widgets.Dropdown) -> None:
    """A dropdown with one option offers no choice: hidden (the figure's title names the option)."""
    box.layout.display = "none" if len(box.options) <= 1 else None


def section(title: str, *children: widgets.Widget, dom_class: str) -> widgets.VBox:
    """A titled block of a page with DOM classes ``wb-section`` and ``dom_class``."""
    box = widgets.VBox([widgets.HTML(f'<div class="wb-section-title">{html.escape(title)}</div>'), *children])
    box.add_class("wb-section")
    box.add_class(dom_class)
    return box


# ---------------------------------------------------------------- composition
def guard(name: str, build: Callable[[], widgets.Widget]) -> widgets.Widget:
    """Build one panel; on failure show a short message (no traceback) and log the details."""
    try:
        return build()
    except MissingOutputError as exc:
        message = f"{name}: not available — {redact(exc)}."
    except Exception as exc:  # a viewer never sees a traceback
        log.exception("panel %r failed", name)
        message = f"{name}: could not be shown ({type(exc).__name__}: {redact(exc)[:200]})."
    box = widgets.HTML(f'<div class="wb-panel-error">{html.escape(message)}</div>')
    box.add_class("wb-panel-error-box")
    return box


def guarded(name: str, panel: Panel, run: PublishedRun) -> widgets.Widget:
    """:func:`guard` for a panel of ``run``."""
    return guard(name, lambda: panel(run))


def page_root(children: Sequence[widgets.Widget], *, dom_id: str) -> widgets.VBox:
    """The page's outer box (stylesheet first), DOM classes ``wb-page`` and ``wb-page-<dom_id>``."""
    from research.viz.panels.links import deep_link_widget

    extra = [ready_widget()] if on_page() else []
    root = widgets.VBox([widgets.HTML(_CSS), *children, callback_notice(), deep_link_widget(), *extra],
                        layout=widgets.Layout(width="100%"))
    root.add_class("wb-page")
    root.add_class(f"wb-page-{dom_id}")
    return root


def page(title: str, panels: Sequence[tuple[str, Panel]], *, run: PublishedRun | None,
         pipeline: str = "daily", runs_dir: str | os.PathLike | None = None,
         dom_id: str) -> widgets.VBox:
    """Compose a dashboard page: the header, then each panel built from ``run``.

    Parameters
    ----------
    title : str
        Page title.
    panels : sequence of (name, panel)
        ``panel(run) -> Widget``; ``name`` labels its error message if it fails.
    run : PublishedRun or None
        The run to show; ``None`` shows how to produce one.
    pipeline, runs_dir
        Where the empty-state message says results are expected.
    dom_id : str
        The page's own DOM class (``wb-page-<dom_id>``).
    """
    if run is None:
        return page_root([empty_state(pipeline, title=title, runs_dir=runs_dir)], dom_id=dom_id)
    built: list[widgets.Widget] = []
    for name, panel in panels:  # the panels after the first one with a figure are drawn after that figure
        if any(has_figure(w) for w in built):
            built.append(deferred(name, lambda name=name, panel=panel: guarded(name, panel, run)))
        else:
            built.append(guarded(name, panel, run))
    return page_root([run_header(run, title=title), *built], dom_id=dom_id)


# ---------------------------------------------------------------- clicks on page-drawn figures
#: Sends plotly clicks on a page-drawn figure (:data:`_PAGE_FIGURE`) to the kernel: waits for the
#: figure's div to be drawn, then on ``plotly_click`` writes ``"x,y,n"`` (the clicked point and a
#: click counter, so a second click on the same cell still changes the value) into the
#: ``<input>`` of the widget with DOM class ``{target}`` and dispatches ``input`` and ``change``,
#: which ipywidgets syncs to the kernel. ``link`` maps query-string keys to point fields
#: (``"x"``/``"y"``) written into the address bar, as the deep links do for dropdowns.
_CLICK_BRIDGE = """<script>(function () {{
var id = "{id}", target = {target}, link = {link}, tries = 0;
var counter = window.wbClicks || (window.wbClicks = {{n: 0}});
function send(p) {{
  var box = document.querySelector("." + target + " input");
  if (!box || !p) return;
  box.value = p.x + "," + p.y + "," + (++counter.n);
  box.dispatchEvent(new Event("input", {{bubbles: true}}));
  box.dispatchEvent(new Event("change", {{bubbles: true}}));
  var keys = Object.keys(link);
  if (keys.length) {{
    var query = new URLSearchParams(window.location.search);
    keys.forEach(function (k) {{ query.set(k, String(p[link[k]])); }});
    window.history.replaceState(null, "", "?" + query.toString());
  }}
}}
function attach() {{
  var el = document.getElementById(id);
  if (el && typeof el.on === "function" && el._fullLayout) {{
    el.on("plotly_click", function (ev) {{ send((ev && ev.points || [])[0]); }});
    el.setAttribute("data-wb-click", target);
    return;
  }}
  if (++tries < 2400) setTimeout(attach, 50);
}}
attach();
}})();</script>"""


def show_clickable_figure(out: widgets.Output, fig: Any, *, target: str, link: dict[str, str] | None = None) -> None:
    """:func:`show_figure`, plus, on the dashboard server, :data:`_CLICK_BRIDGE` sending clicks on
    the figure to the widget with DOM class ``target`` (a hidden ``ipywidgets.Text``).

    Elsewhere (JupyterLab's plotly renderer) the figure is shown as usual and clicks stay in
    the browser: give the page another way (dropdowns) to reach the same code.
    """
    bundle = _bundle(fig)
    markup = bundle["data"].get("text/html")
    found = re.search(r'id="(wb-plot-[0-9a-f]+)"', markup or "")
    if found:
        bundle["data"]["text/html"] = markup + _CLICK_BRIDGE.format(
            id=found.group(1), target=json.dumps(target), link=json.dumps(link or {}))
    out.outputs = (bundle,)


def clickable_figure_output(fig: Any, *, dom_class: str, target: str, height: int | None = None,
                            link: dict[str, str] | None = None) -> widgets.Output:
    """:func:`figure_output` whose clicks reach the widget with DOM class ``target`` (see
    :func:`show_clickable_figure`)."""
    out = figure_output(fig, dom_class=dom_class, height=height)
    show_clickable_figure(out, fig, target=target, link=link)
    return out
