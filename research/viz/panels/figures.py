"""Plotly figures on a dashboard page: thinning long series for drawing, the run stamp under a
figure, and the output widgets showing a figure. In JupyterLab a figure is the plotly mime bundle
(the renderer shipped in the plotly package, no CDN); on the dashboard server
(``WORKBENCH_FIGURES=page``) it is HTML drawn by the plotly.js bundle the server serves, one
figure at a time, with an optional bridge sending clicks on it to a widget."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import ipywidgets as widgets
import pandas as pd

from research.config import get_settings
from research.timeutil import to_naive_utc_index
from research.viz.panels.deferred import READY_SCRIPT
from research.workflow.results import PublishedRun

__all__ = ["PLOTLY_MIME", "BUNDLED_TRACES", "MAX_POINTS", "naive_index", "line_xy", "weekly_note", "stamp",
           "show_figure", "figure_output", "show_clickable_figure", "clickable_figure_output"]

log = logging.getLogger(__name__)

PLOTLY_MIME = "application/vnd.plotly.v1+json"

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
