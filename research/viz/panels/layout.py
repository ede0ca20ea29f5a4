"""Building blocks shared by every dashboard page.

A page is composed by :func:`page` from a header (title, as-of time, pipeline run, data source)
and a list of panels. Each panel is a function ``panel(run) -> Widget``; :func:`page` calls it
inside a guard, so a panel whose output is missing from the run shows a short message instead of
a traceback. Figures are plotly figures shown through an ``ipywidgets.Output`` as the
``application/vnd.plotly.v1+json`` mime bundle: the renderer is the plotly extension shipped in
the plotly package, so pages render without any network access (no CDN).

Every widget a test or a stylesheet needs to find carries a DOM class starting with ``wb-``.

The pieces live by job in :mod:`research.viz.panels.runinfo` (the run and the page header),
:mod:`research.viz.panels.figures` (figures) and :mod:`research.viz.panels.tables` (tables);
their public names are importable from here too.
"""

from __future__ import annotations

import html
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as widgets

from research.viz.panels.deferred import deferred, has_figure, on_page, ready_widget
from research.viz.panels.figures import (
    BUNDLED_TRACES,
    MAX_POINTS,
    PLOTLY_MIME,
    clickable_figure_output,
    figure_output,
    line_xy,
    naive_index,
    show_clickable_figure,
    show_figure,
    stamp,
    weekly_note,
)
from research.viz.panels.runinfo import (
    MissingOutputError,
    data_source,
    empty_state,
    load_run,
    mlflow_run_url,
    require,
    run_header,
    run_interval,
    run_record,
    symbol_periods_per_year,
)
from research.viz.panels.tables import (
    LABELS,
    cell_text,
    column_label,
    csv_link,
    number_text,
    set_table,
    table_html,
    table_row,
    time_text,
)
from research.viz.panels.viewer_safe import callback_notice, redact
from research.workflow.results import PublishedRun

__all__ = [
    "PLOTLY_MIME", "BUNDLED_TRACES", "MissingOutputError", "load_run", "run_record", "data_source", "run_header",
    "empty_state", "figure_output", "show_figure", "stamp", "table_html", "set_table", "csv_link", "mlflow_run_url",
    "column_label", "number_text", "cell_text", "table_row", "time_text", "LABELS",
    "section", "note", "naive_index", "line_xy", "weekly_note", "MAX_POINTS", "guard", "guarded", "page", "page_root",
    "require", "dropdown", "symbol_periods_per_year", "run_interval", "show_clickable_figure", "clickable_figure_output",
    "Panel",
]

log = logging.getLogger(__name__)

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


# ---------------------------------------------------------------- messages and controls
def note(text: str, *, dom_class: str = "wb-note") -> widgets.HTML:
    """A short line of escaped text."""
    box = widgets.HTML(f'<div class="{dom_class}">{html.escape(text)}</div>')
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
