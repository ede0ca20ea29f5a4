"""The whole sweep of any recorded strategy family: a heatmap of any metric over two of the
family's parameters (the others fixed or folded), the best cell with its deflated Sharpe ratio
and PBO, and any cell (clicked, or chosen in the dropdowns) re-run with its equity, drawdown,
trades and walk-forward windows, side by side with a second cell or a recorded strategy.

Reads the run outputs ``sweep`` (family, symbol, parameters, metrics), ``sweep_summary`` (per
family and symbol: grid, costs, best cell, deflated Sharpe, PBO; optional), ``sweep_bars`` (the
bars the sweep ran on; without it cells are not re-run) and, for comparisons, ``equity`` and
``backtests`` (:mod:`research.viz.panels.sweep_data`).

A family with more than two parameters shows a 2-D slice of its grid
(:func:`research.backtest.slices.grid_slice`): pick the x and y parameters, hold any other at one
value or fold it (max, median, mean or min over its values). A cell is re-run by
:func:`research.backtest.backtest` on the recorded bars with the recorded costs and timing, so its
figures are those of the sweep's row (the note under the controls says so, or says how they
differ). A click on a folded cell re-runs the parameter set behind the cell's value (the max or
min) or, for the median and mean, the cell's best set. On the dashboard server a click reaches
the kernel through a hidden text box (DOM class ``wb-sweep-pick``, see
:func:`research.viz.panels.layout.show_clickable_figure`); the parameter dropdowns and the
"best cell" button take the same path, and are in the page's address (deep links).
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass, field
from typing import Any

import ipywidgets as widgets
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from research.backtest.slices import grid_slice
from research.viz.panels.labels import TRADE_FORMATS, TRADE_LABELS
from research.viz.panels.layout import (
    clickable_figure_output,
    column_label,
    dropdown,
    figure_output,
    section,
    set_table,
    show_clickable_figure,
    show_figure,
    stamp,
    table_html,
    table_row,
)
from research.viz.panels.staleness import fresh_first, stale_symbols
from research.viz.panels.sweep_compare import (
    cell_leg,
    cell_trades,
    compare_leg,
    pair_figures,
    rerun_note,
    stats_frame,
    walk_forward_table,
)
from research.viz.panels.sweep_data import (
    AGGREGATES,
    LOWER_BETTER,
    SweepData,
    param_set_text,
    value_text,
)
from research.viz.panels.viewer_safe import on_change
from research.workflow.results import PublishedRun

__all__ = ["SweepData", "SweepView", "sweep_panel", "heatmap_figure", "click_cell", "PICK_CLASS"]

logger = logging.getLogger(__name__)

#: DOM class of the hidden text box a heatmap click writes ``"x,y,n"`` into.
PICK_CLASS = "wb-sweep-pick"
_PERCENT = {"total_return", "annual_return", "annual_volatility", "max_drawdown", "win_rate", "exposure"}
_AXIS_TITLES = {"fast": "fast window (bars)", "slow": "slow window (bars)", "window": "window (bars)",
                "lookback": "lookback (bars)", "hold": "hold (bars)"}
ALL = "*"  # a fix dropdown's "fold this parameter" choice


def _label(metric: str) -> str:
    """A sweep metric as the page names it: ``"total_return"`` -> ``"Total return [%]"`` (shown in percent)."""
    label = column_label(metric)
    return f"{label} [%]" if metric in _PERCENT else label


@dataclass
class SweepView:
    """What the heatmap shows: a family's metric on one symbol over ``x`` and ``y``, the other
    parameters held at ``fixed`` values or folded by ``agg``."""

    family: str
    symbol: str
    metric: str
    x: str
    y: str
    fixed: dict[str, Any] = field(default_factory=dict)
    agg: str = "max"

    @classmethod
    def default(cls, data: SweepData, family: str, symbol: str, metric: str) -> SweepView:
        """The family's first two parameters (y the first: the crossover's fast, x its slow)."""
        params = data.params(family)
        return cls(family, symbol, metric, x=params[1] if len(params) > 1 else params[0], y=params[0])


def _slice(data: SweepData, view: SweepView) -> pd.DataFrame:
    return grid_slice(data.rows(view.family, view.symbol), x=view.x, y=view.y, metric=view.metric, fixed=view.fixed,
                      agg=view.agg, symbol=view.symbol)


# ---------------------------------------------------------------- figures
def heatmap_figure(data: SweepData, view: SweepView) -> go.Figure:
    """The metric over the view's two parameters as one heatmap trace (a 2-D z matrix), the best
    cell of the slice marked (and the highest-Sharpe cell when another metric is shown)."""
    rows = data.rows(view.family, view.symbol)
    grid = _slice(data, view) if len(rows) else pd.DataFrame()
    scale = 100.0 if view.metric in _PERCENT else 1.0
    z = grid.to_numpy(dtype="float64") * scale
    x, y = list(grid.columns), list(grid.index)
    fig = go.Figure(go.Heatmap(
        z=z.astype("float32"), x=x, y=y, colorscale="Viridis", colorbar={"title": {"text": _label(view.metric)}},
        hovertemplate=f"{view.y} %{{y}} · {view.x} %{{x}}<br>{_label(view.metric)} %{{z:.4g}}<extra></extra>",
        name=view.metric))
    _mark_best(fig, data, view, grid, z)
    _mark_sharpe(fig, data, view)
    unit = "pairs" if view.family == "ma_crossover" else "parameter sets"
    title = f"Sweep {view.symbol}: {view.family} · {_label(view.metric)} · {len(rows):,} {unit}"
    best = data.best(view.family, view.symbol, view.metric)
    if best is not None:
        word = "lowest" if view.metric in LOWER_BETTER else "highest"
        title += f" · {word} at {param_set_text(data.cell_of(view.family, best))} ({best[view.metric] * scale:.3g})"
    folded = grid.attrs.get("aggregated", [])
    shown = [f"{k}={value_text(v)}" for k, v in view.fixed.items()] + ([f"{view.agg} over {', '.join(folded)}"]
                                                                       if folded else [])
    fig.update_layout(title=title + (f"<br><sup>{html.escape('; '.join(shown))}</sup>" if shown else ""),
                      xaxis_title=_AXIS_TITLES.get(view.x, view.x), yaxis_title=_AXIS_TITLES.get(view.y, view.y),
                      legend={"x": 0.01, "y": 0.99, "xanchor": "left", "yanchor": "top",
                              "bgcolor": "rgba(255,255,255,0.8)"},
                      clickmode="event", height=520)
    return stamp(fig, data.run)


def _mark_best(fig: go.Figure, data: SweepData, view: SweepView, grid: pd.DataFrame, z: np.ndarray) -> None:
    """A star on the slice's best cell (none for trades and exposure)."""
    finite = np.isfinite(z)
    if data.best(view.family, view.symbol, view.metric) is None or not finite.any():
        return
    lower = view.metric in LOWER_BETTER
    flat = np.where(finite, z, np.inf if lower else -np.inf)
    r, c = np.unravel_index(np.argmin(flat) if lower else np.argmax(flat), z.shape)
    word = "lowest" if lower else "highest"
    fig.add_trace(go.Scatter(x=[grid.columns[c]], y=[grid.index[r]], mode="markers", name=f"{word} {_label(view.metric)}",
                             marker={"symbol": "star", "size": 16, "color": "white", "line": {"color": "black", "width": 1.5}},
                             hovertemplate=f"{word} {_label(view.metric)}: {view.y} %{{y}} · {view.x} %{{x}}<extra></extra>"))


def _mark_sharpe(fig: go.Figure, data: SweepData, view: SweepView) -> None:
    """A diamond on the recorded highest-Sharpe cell, when another metric is shown and the cell is in the slice."""
    cell = data.overfitting(view.family, view.symbol).get("cell")
    if view.metric == "sharpe" or not cell or view.x not in cell or view.y not in cell:
        return
    if any(value_text(cell.get(k)) != value_text(v) for k, v in view.fixed.items()):
        return
    fig.add_trace(go.Scatter(x=[cell[view.x]], y=[cell[view.y]], mode="markers", name="highest Sharpe",
                             marker={"symbol": "diamond", "size": 13, "color": "#f0b429", "line": {"color": "black", "width": 1}},
                             hovertemplate=f"highest Sharpe: {view.y} %{{y}} · {view.x} %{{x}}<extra></extra>"))


def overfitting_html(data: SweepData, view: SweepView) -> str:
    """The card beside the heatmap: the best Sharpe cell, its deflated Sharpe and PBO, the grid and costs."""
    o = data.overfitting(view.family, view.symbol)
    if "cell" not in o:
        return '<div class="wb-note">This run recorded no deflated Sharpe or PBO for this sweep.</div>'
    pct = lambda v: f"{100 * float(v):.1f}%"  # noqa: E731
    where = "" if view.metric == "sharpe" else " (the diamond)"
    best = " · ".join(f"{html.escape(str(k))} {html.escape(value_text(v))}" for k, v in o["cell"].items())
    parts = [f'<div class="wb-card-label">highest Sharpe cell of {int(o.get("pairs", 0)):,}{where}</div>'
             f'<div class="wb-card-value wb-sweep-best-cell">{best}</div>'
             f'<div>Sharpe {o["sharpe"]:.2f} · total return {pct(o.get("total_return", float("nan")))}</div>']
    if "deflated_sharpe" in o:
        parts.append(f'<div class="wb-card-value wb-sweep-dsr">deflated Sharpe {pct(o["deflated_sharpe"])}</div>'
                     f'<div class="wb-note">a probability, not a Sharpe ratio: that its true Sharpe beats the best of '
                     f'{int(o["dsr_trials"]):,} unskilled trials (luck threshold: Sharpe '
                     f'{o.get("expected_max_sharpe", float("nan")):.2f}; {int(o.get("n_obs", 0)):,} bars)</div>')
    if "pbo" in o:
        parts.append(f'<div class="wb-card-value wb-sweep-pbo">PBO {pct(o["pbo"])}</div>'
                     f'<div class="wb-note">probability that the in-sample best ranks below the median out of '
                     f'sample (CSCV: {int(o["pbo_splits"])} blocks, {int(o["pbo_combinations"]):,} splits, over '
                     f'{int(o["pbo_trials"]):,} cells: {html.escape(str(o.get("pbo_grid", "")))}); '
                     f'out-of-sample loss in {pct(o.get("prob_oos_loss", float("nan")))} of splits</div>')
    costs = data.costs(view.family, view.symbol)
    parts.append(f'<div class="wb-note">{html.escape(view.family)} grid {html.escape(str(o.get("grid", "")))}; '
                 f'fees {100 * costs["fees"]:.2f}%, slippage {100 * costs["slippage"]:.2f}%, '
                 f'{html.escape(str(costs.get("timing", "next_open")))} fills</div>')
    return '<div class="wb-card wb-sweep-overfit-card">' + "".join(parts) + "</div>"


def _snap(values: list[Any], raw: str) -> Any:
    """The grid value a clicked coordinate names (numbers matched within 1e-9, text exactly), else None."""
    for v in values:
        if isinstance(v, str):
            if v == raw:
                return v
            continue
        try:
            if abs(float(raw) - float(v)) <= 1e-9 * max(1.0, abs(float(v))):
                return v
        except ValueError:
            return None
    return None


def _point(text: str, xs: list[Any], ys: list[Any]) -> tuple[Any, Any] | None:
    """The ``(x, y)`` grid values of a click's ``"x,y,n"`` text (values may hold commas themselves)."""
    parts = text.split(",")[:-1] if text.count(",") >= 2 else text.split(",")
    for i in range(1, len(parts)):
        x, y = _snap(xs, ",".join(parts[:i]).strip()), _snap(ys, ",".join(parts[i:]).strip())
        if x is not None and y is not None:
            return x, y
    return None


def click_cell(data: SweepData, view: SweepView, x: Any, y: Any) -> dict[str, Any] | None:
    """The parameter set a click on heatmap cell ``(x, y)`` re-runs: the fixed values, and for the
    folded parameters the set behind the cell's value (``max``/``min``) or the cell's best set
    (``median``/``mean``, or a metric without a best); ``None`` where the slice has no set."""
    rows = data.rows(view.family, view.symbol)
    mask = (rows[view.x] == x) & (rows[view.y] == y)
    for name, value in view.fixed.items():
        mask &= rows[name] == value
    hit = rows[mask]
    if hit.empty:
        return None
    values = hit[view.metric] if view.metric in hit else pd.Series(dtype=float)
    if values.notna().any():
        low = view.agg == "min" or (view.agg in ("median", "mean") and view.metric in LOWER_BETTER)
        hit = hit.loc[[values.idxmin() if low else values.idxmax()]]
    return data.cell_of(view.family, hit.iloc[0])


# ---------------------------------------------------------------- the panel
def sweep_panel(run: PublishedRun) -> widgets.Widget:
    """Heatmap of any recorded family's sweep, the best cell's deflated Sharpe and PBO, and any cell re-run."""
    return _SweepPanel(run).widget


class _SweepPanel:
    """The sweep panel's widgets and the callbacks that keep them in step."""

    def __init__(self, run: PublishedRun) -> None:
        self.data = data = SweepData(run)
        self.stale = stale_symbols(run)
        family = data.families()[0]
        self.family = dropdown([(f, f) for f in data.families()], description="Strategy", dom_class="wb-sweep-family")
        self.symbol = dropdown(fresh_first(data.symbols(family), self.stale), description="Symbol",
                               dom_class="wb-sweep-symbol")
        self.metric = dropdown([(_label(m), m) for m in data.metrics()], description="Metric", dom_class="wb-sweep-metric")
        self.view = SweepView.default(data, family, self.symbol.value, self.metric.value)
        self.heat = clickable_figure_output(heatmap_figure(data, self.view), dom_class="wb-sweep-fig", height=520,
                                            target=PICK_CLASS, link=self._link())
        self.card = widgets.HTML(overfitting_html(data, self.view),
                                 layout=widgets.Layout(width="380px", max_width="100%", min_width="0"))
        self.card.add_class("wb-sweep-overfit")
        self.busy = False
        self._build_outputs()
        self._build_family_controls()
        self._wire()
        self._start()

    # ------------------------------------------------------------ building
    def _build_outputs(self) -> None:
        self.best_btn = widgets.Button(description="Best cell", tooltip="pick the best cell of the metric shown")
        self.best_btn.add_class("wb-sweep-best")
        self.pick = widgets.Text(value="", layout=widgets.Layout(display="none"))
        self.pick.add_class(PICK_CLASS)
        self.compare = dropdown([], description="Compare with", dom_class="wb-sweep-compare", width="360px")
        self.agg = dropdown([(a, a) for a in AGGREGATES], description="Others", dom_class="wb-sweep-agg", width="150px")
        self.note = widgets.HTML()
        self.note.add_class("wb-sweep-pair-note")
        self.eq_out = figure_output(go.Figure(), dom_class="wb-sweep-equity-fig", height=380)
        self.dd_out = figure_output(go.Figure(), dom_class="wb-sweep-drawdown-fig", height=240)
        self.stats = table_html(pd.DataFrame(), dom_class="wb-sweep-stats-table", max_rows=20)
        self.trades = table_html(pd.DataFrame(), dom_class="wb-sweep-trades-table", max_rows=20)
        self.wf_note = widgets.HTML()
        self.wf_note.add_class("wb-sweep-wf-note")
        self.wf = table_html(pd.DataFrame(), dom_class="wb-sweep-wf-table", max_rows=60)
        self.axes_box, self.cell_box, self.other_box = widgets.HBox(), widgets.HBox(), widgets.HBox()

    def _values(self, name: str) -> list[tuple[str, Any]]:
        return [(value_text(v), v) for v in self.data.values(self.view.family, self.view.symbol, name)]

    def _build_family_controls(self) -> None:
        """The axis, fix, cell and compare-cell dropdowns of the family shown (rebuilt on a family change)."""
        params = self.data.params(self.view.family)
        axes = [(p, p) for p in params]
        self.xaxis = dropdown(axes, description="x", dom_class="wb-sweep-xaxis", value=self.view.x, width="170px")
        self.yaxis = dropdown(axes, description="y", dom_class="wb-sweep-yaxis", value=self.view.y, width="170px")
        self.fixes = {p: dropdown([("all", ALL), *self._values(p)], description=p, dom_class=f"wb-sweep-fix-{p}",
                                  width="170px") for p in params}
        self.cells = {p: dropdown(self._values(p), description=p.capitalize(), dom_class=f"wb-sweep-{p}",
                                  width="150px") for p in params}
        self.others = {p: dropdown(self._values(p), description=p, dom_class=f"wb-sweep-c{p}", width="140px")
                       for p in params}
        self.axes_box.children = [self.xaxis, self.yaxis, self.agg, *self.fixes.values()]
        self.axes_box.layout = widgets.Layout(display=None if len(params) > 2 else "none", flex_flow="row wrap")
        self.cell_box.children = [*self.cells.values(), self.best_btn, self.pick]
        self.cell_box.layout = widgets.Layout(flex_flow="row wrap")
        self.other_box.children = [self.compare, *self.others.values()]
        self.other_box.layout = widgets.Layout(flex_flow="row wrap")
        self._show_fixes()
        on_change(self.xaxis, self._on_axes, names="value")
        on_change(self.yaxis, self._on_axes, names="value")
        for box in self.fixes.values():
            on_change(box, self._on_fix, names="value")
        for box in (*self.cells.values(), *self.others.values()):
            on_change(box, self.refresh_pair, names="value")

    def _show_fixes(self) -> None:
        """Only the parameters off the axes can be fixed; the fold choice only when one is folded."""
        for name, box in self.fixes.items():
            box.layout.display = "none" if name in (self.view.x, self.view.y) else None
        folded = [p for p in self.fixes if p not in (self.view.x, self.view.y, *self.view.fixed)]
        self.agg.layout.display = None if folded else "none"

    def _wire(self) -> None:
        on_change(self.family, self._on_family, names="value")
        on_change(self.symbol, self._on_symbol, names="value")
        on_change(self.metric, self._on_metric, names="value")
        on_change(self.agg, self._on_fix, names="value")
        on_change(self.compare, self.refresh_pair, names="value")
        on_change(self.pick, self._on_pick, names="value")
        self.best_btn.on_click(self._on_best)

    def _start(self) -> None:
        self.redraw()
        self._choose_start()
        top = widgets.HBox([self.heat, self.card], layout=widgets.Layout(width="100%", align_items="flex-start",
                                                                          flex_flow="row wrap"))
        self.heat.layout = widgets.Layout(flex="1 1 420px", min_width="0", max_width="100%")  # full width on a phone
        hint = widgets.HTML('<div class="wb-note">Click a cell of the heatmap (or choose its parameters) to re-run it. '
                            'With more than two parameters, pick the axes and fix or fold the others.</div>')
        self.widget = section(
            "Parameter sweep", widgets.HBox([self.family, self.symbol, self.metric], layout=widgets.Layout(flex_flow="row wrap")),
            self.axes_box, top, hint, self.cell_box, self.other_box, self.note, self.eq_out, self.dd_out,
            table_row(section("Side by side", self.stats, dom_class="wb-sweep-stats"),
                      section("Trades of the cell (most recent first)", self.trades, dom_class="wb-sweep-trades"),
                      dom_class="wb-sweep-tables"),
            section("Walk-forward windows", self.wf_note, self.wf, dom_class="wb-sweep-wf"),
            dom_class="wb-sweep",
        )

    # ------------------------------------------------------------ state
    def _link(self) -> dict[str, str]:
        return {f"sweep-{self.view.y}": "y", f"sweep-{self.view.x}": "x"}

    def current(self) -> dict[str, Any]:
        return {p: box.value for p, box in self.cells.items()}

    def _compare_options(self) -> list[tuple[str, str]]:
        v = self.view
        opts = [("nothing", "none"), ("another cell (parameters on the right)", "cell")]
        if self.data.fields(v.symbol) is not None and not self.data.rows(v.family, v.symbol).empty:
            opts.append(("the walk-forward (best Sharpe of each training window, out of sample)", "wf"))
        if self.data.best(v.family, v.symbol, v.metric) is not None:
            opts.insert(1, (f"the best {_label(v.metric)} cell (the star)", "best"))
        return opts + [(f"recorded: {label}", f"curve:{col}") for label, col in self.data.recorded(v.symbol)]

    def redraw(self, *_: object) -> None:
        """The heatmap, the card and the comparison choices of the current view."""
        show_clickable_figure(self.heat, heatmap_figure(self.data, self.view), target=PICK_CLASS, link=self._link())
        self.card.value = overfitting_html(self.data, self.view)
        self._quietly(lambda: setattr(self.compare, "options", self._compare_options()))

    def _quietly(self, change: Any) -> None:
        self.busy = True
        try:
            change()
        finally:
            self.busy = False

    def refresh_pair(self, *_: object) -> None:
        """Re-run the chosen cell (and the comparison) and show its figures and tables."""
        if self.busy:
            return
        data, v, cell = self.data, self.view, self.current()
        row = data.cell(v.family, v.symbol, cell)
        first = cell_leg(data, v.family, v.symbol, cell) if row is not None else None
        if first is None:
            self.note.value = ('<div class="wb-note">' + (f"{html.escape(param_set_text(cell))} is not a cell of the grid."
                               if row is None else "This run recorded no sweep bars, so cells cannot be re-run; the "
                               "heatmap shows the recorded figures.") + "</div>")
            return
        other = {p: box.value for p, box in self.others.items()}
        second, picks = compare_leg(data, v.family, v.symbol, self.compare.value or "none", v.metric, other, first)
        legs = [first] if second is None else [first, second]
        eq, dd = pair_figures(data, v.symbol, [(leg.name, leg.equity) for leg in legs])
        show_figure(self.eq_out, eq)
        show_figure(self.dd_out, dd)
        self.note.value = rerun_note(data, v.family, v.symbol, cell, row, first.stats)
        set_table(self.stats, stats_frame([(leg.label, leg.stats) for leg in legs if leg.stats is not None]), max_rows=20)
        set_table(self.trades, cell_trades(first.result, v.symbol), max_rows=20, formats=TRADE_FORMATS,
                  labels=TRADE_LABELS)
        ppy = float(data.costs(v.family, v.symbol).get("periods_per_year") or 252)
        frame, text = walk_forward_table([(leg.name, leg.returns) for leg in legs], ppy, picks)
        self.wf_note.value = f'<div class="wb-note">{text}</div>' if text else ""
        set_table(self.wf, frame, max_rows=60, formats={c: ".2f" for c in frame.columns if "Sharpe" in c or "[%]" in c})

    def choose(self, cell: dict[str, Any] | None) -> None:
        """Set the cell dropdowns to ``cell`` (a cell of the grid) and re-run it."""
        v = self.view
        if cell is None or self.data.cell(v.family, v.symbol, cell) is None:
            return

        def assign() -> None:
            for p, box in self.cells.items():
                box.value = cell[p]
        self._quietly(assign)
        self.refresh_pair()

    def _choose_start(self) -> None:
        v = self.view
        start = self.data.overfitting(v.family, v.symbol).get("cell")
        if start is None or self.data.cell(v.family, v.symbol, start) is None:
            b = self.data.best(v.family, v.symbol, "sharpe")
            start = self.data.cell_of(v.family, b) if b is not None else None
        if start is not None:
            self.choose(start)
        else:
            self.refresh_pair()

    # ------------------------------------------------------------ callbacks
    def _on_family(self, *_: object) -> None:
        family = self.family.value
        symbols = fresh_first(self.data.symbols(family), self.stale)
        keep = self.symbol.value
        self._quietly(lambda: (setattr(self.symbol, "options", symbols),
                               setattr(self.symbol, "value", keep if keep in self.data.symbols(family) else symbols[0])))
        self.view = SweepView.default(self.data, family, self.symbol.value, self.metric.value)
        self._build_family_controls()
        self.redraw()
        self._choose_start()

    def _on_symbol(self, *_: object) -> None:
        if self.busy:
            return
        self.view.symbol = self.symbol.value
        self.redraw()

        def options() -> None:
            for p in self.cells:
                for box in (self.cells[p], self.others[p]):
                    keep = box.value
                    box.options = self._values(p)
                    box.value = keep if keep in [o[1] for o in box.options] else box.options[0][1]
        self._quietly(options)
        if self.data.cell(self.view.family, self.view.symbol, self.current()) is None:
            self._on_best()
        else:
            self.refresh_pair()

    def _on_metric(self, *_: object) -> None:
        self.view.metric = self.metric.value
        self.redraw()

    def _on_axes(self, *_: object) -> None:
        if self.busy:
            return
        x, y = self.xaxis.value, self.yaxis.value
        if x == y:  # one axis moved onto the other: they swap
            if x != self.view.x:
                self._quietly(lambda: setattr(self.yaxis, "value", self.view.x))
            else:
                self._quietly(lambda: setattr(self.xaxis, "value", self.view.y))
            x, y = self.xaxis.value, self.yaxis.value
        self.view.x, self.view.y = x, y
        self._on_fix()

    def _on_fix(self, *_: object) -> None:
        if self.busy:
            return
        v = self.view
        v.fixed = {p: box.value for p, box in self.fixes.items() if box.value != ALL and p not in (v.x, v.y)}
        v.agg = self.agg.value
        self._show_fixes()
        self.redraw()

    def _on_pick(self, change: dict) -> None:
        v = self.view
        point = _point(str(change["new"]), self.data.values(v.family, v.symbol, v.x),
                       self.data.values(v.family, v.symbol, v.y))
        if point is not None:
            self.choose(click_cell(self.data, v, *point))

    def _on_best(self, *_: object) -> None:
        v = self.view
        b = self.data.best(v.family, v.symbol, v.metric)
        b = self.data.best(v.family, v.symbol, "sharpe") if b is None else b
        if b is not None:
            self.choose(self.data.cell_of(v.family, b))
