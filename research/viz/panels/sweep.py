"""The whole sweep: a heatmap of any metric over the recorded fast x slow grid, the best cell
with its deflated Sharpe ratio and PBO, and any cell (clicked, or chosen in the dropdowns) re-run
with its equity, drawdown, trades and walk-forward windows, side by side with a second cell or a
recorded strategy.

Reads the run outputs ``sweep`` (symbol, fast, slow, metrics), ``sweep_summary`` (per symbol:
grid, costs, best cell, deflated Sharpe, PBO; optional), ``sweep_bars`` (the open and close the
sweep ran on; without it cells are not re-run) and, for comparisons, ``equity`` and ``backtests``.

A cell is re-run by :func:`research.backtest.backtest` on the recorded bars with the recorded
costs and timing, so its figures are those of the sweep's row (the note under the controls says
so, or says how they differ). On the dashboard server a click on the heatmap reaches the kernel
through a hidden text box (DOM class ``wb-sweep-pick``, see
:func:`research.viz.panels.layout.show_clickable_figure`); the fast and slow dropdowns and the
"best cell" button take the same path, and are in the page's address (deep links).
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import ipywidgets as widgets
import pandas as pd
import plotly.graph_objects as go

from research.viz.panels.labels import (
    METRIC_LABELS,
    TRADE_FORMATS,
    TRADE_LABELS,
    canonical_params,
    params_label,
)
from research.viz.panels.labels import curve_index as _curve_index
from research.viz.panels.labels import metric_text as _metric_text
from research.viz.panels.layout import (
    clickable_figure_output,
    column_label,
    dropdown,
    figure_output,
    line_xy,
    require,
    run_record,
    section,
    set_table,
    show_clickable_figure,
    show_figure,
    stamp,
    table_html,
    table_row,
    weekly_note,
)
from research.viz.panels.staleness import fresh_first, stale_symbols
from research.viz.panels.viewer_safe import on_change
from research.workflow.results import PublishedRun

__all__ = ["SweepData", "sweep_panel", "heatmap_figure", "PICK_CLASS"]

#: DOM class of the hidden text box a heatmap click writes ``"slow,fast,n"`` into.
PICK_CLASS = "wb-sweep-pick"
_PERCENT = {"total_return", "annual_return", "annual_volatility", "max_drawdown", "win_rate", "exposure"}
_LOWER_BETTER = {"annual_volatility"}
_NO_BEST = {"trades", "exposure"}
_STATS = ("Total Return [%]", "Return (Ann.) [%]", "Sharpe Ratio", "Sortino Ratio", "Max. Drawdown [%]",
          "Volatility (Ann.) [%]", "# Trades", "Win Rate [%]", "Exposure Time [%]")
_TRADE_COLS = ("entry_time", "exit_time", "direction", "size", "entry_price", "exit_price", "pnl", "return",
               "exit_reason")


def _label(metric: str) -> str:
    """A sweep metric as the page names it: ``"total_return"`` -> ``"Total return [%]"`` (shown in percent)."""
    label = column_label(metric)
    return f"{label} [%]" if metric in _PERCENT else label


class SweepData:
    """A run's recorded sweep, indexed for the panel; re-runs cells on the recorded bars."""

    def __init__(self, run: PublishedRun) -> None:
        require(run, "sweep")
        self.run = run
        table = run.table("sweep")
        missing = {"symbol", "fast", "slow"} - set(table.columns)
        if missing:
            raise ValueError(f"the sweep table needs columns symbol, fast, slow; missing {sorted(missing)}")
        self.table = table.assign(symbol=table["symbol"].astype(str))
        self.summary = run.table("sweep_summary") if run.has("sweep_summary") else None
        self.bars = run.table("sweep_bars") if run.has("sweep_bars") else None
        self._equity = run.table("equity") if run.has("equity") else None
        self._curves = _curve_index(self._equity) if self._equity is not None else {}
        self._backtests = run.table("backtests") if run.has("backtests") else None
        self._params = run_record(run).get("parameters") or {}
        self._rows = dict(tuple(self.table.groupby("symbol", sort=False)))
        self._cache: dict[tuple, Any] = {}

    def symbols(self) -> list[str]:
        return list(self._rows)

    def metrics(self) -> list[str]:
        skip = {"symbol", "fast", "slow", "strategy"}
        cols = [c for c in self.table.columns if c not in skip and pd.api.types.is_numeric_dtype(self.table[c])]
        return sorted(cols, key=lambda c: c != "sharpe")

    def rows(self, symbol: str) -> pd.DataFrame:
        return self._rows.get(symbol, self.table.iloc[:0])

    def windows(self, symbol: str) -> tuple[list[int], list[int]]:
        rows = self.rows(symbol)
        return sorted(int(v) for v in rows["fast"].unique()), sorted(int(v) for v in rows["slow"].unique())

    def cell(self, symbol: str, fast: int, slow: int) -> pd.Series | None:
        rows = self.rows(symbol)
        hit = rows[(rows["fast"] == fast) & (rows["slow"] == slow)]
        return None if hit.empty else hit.iloc[0]

    def best(self, symbol: str, metric: str) -> pd.Series | None:
        rows = self.rows(symbol)
        if metric in _NO_BEST or rows[metric].notna().sum() == 0:
            return None
        return rows.loc[rows[metric].idxmin() if metric in _LOWER_BETTER else rows[metric].idxmax()]

    def overfitting(self, symbol: str) -> Mapping[str, Any]:
        if self.summary is None:
            return {}
        rows = self.summary[self.summary["symbol"].astype(str) == symbol]
        return {} if rows.empty else {k: v for k, v in rows.iloc[0].items() if not _missing(v)}

    def costs(self, symbol: str) -> dict[str, Any]:
        """The sweep's costs and timing (``sweep_summary``, else the run's parameters)."""
        rec, params = self.overfitting(symbol), self._params
        out = {"fees": rec.get("fees", params.get("fees", 0.0)), "slippage": rec.get("slippage", params.get("slippage", 0.0))}
        for key in ("init_cash", "timing", "periods_per_year"):
            if key in rec:
                out[key] = rec[key]
        return out

    def rerun(self, symbol: str, fast: int, slow: int):
        """The engine's backtest of one cell on the recorded bars (``None`` without ``sweep_bars``)."""
        key = (symbol, fast, slow)
        if key in self._cache:
            return self._cache[key]
        fields = self.fields(symbol)
        if fields is None:
            return None
        from research.backtest import backtest

        res = backtest(fields, "ma_crossover", params={"fast": fast, "slow": slow}, **self.costs(symbol))
        if len(self._cache) > 64:
            self._cache.clear()
        self._cache[key] = res
        return res

    def fields(self, symbol: str) -> dict[str, pd.DataFrame] | None:
        """The recorded open and close of ``symbol`` over its own bars (``None`` without ``sweep_bars``)."""
        if self.bars is None or f"close|{symbol}" not in self.bars:
            return None
        fields = {f: self.bars[[f"{f}|{symbol}"]].rename(columns=lambda c: symbol) for f in ("open", "close")
                  if f"{f}|{symbol}" in self.bars}
        alive = fields["close"][symbol].notna().to_numpy()
        return {f: v[alive] for f, v in fields.items()}

    def walk_forward(self, symbol: str):
        """The walk-forward of ``symbol`` on the recorded bars and costs: in each training window the
        highest-Sharpe cell of a regular sub-grid of the sweep (at most 800 cells), traded on the next
        test window (:func:`research.backtest.walkforward.walk_forward`); ``None`` without bars."""
        key = ("walk_forward", symbol)
        if key not in self._cache:
            fields = self.fields(symbol)
            if fields is None:
                return None
            from research.backtest.walkforward import walk_forward
            from research.stages.sweep_outputs import pbo_subgrid, wf_windows

            fast, slow = pbo_subgrid(*self.windows(symbol))
            train, test = wf_windows(len(fields["close"]))
            self._cache[key] = walk_forward(fields, fast=fast, slow=slow, train=train, test=test, **self.costs(symbol))
        return self._cache[key]

    def recorded(self, symbol: str) -> list[tuple[str, str]]:
        """Recorded strategy curves of ``symbol`` (label, equity column) to compare with."""
        out = []
        for (strategy, sym, params), col in self._curves.items():
            if sym == symbol:
                out.append((strategy + (f" ({params_label(params)})" if params not in (None, "{}") else ""), col))
        return sorted(out)

    def recorded_curve(self, col: str) -> pd.Series:
        return self._equity[col].dropna()

    def recorded_stats(self, col: str) -> pd.Series | None:
        """The ``backtests`` row of a recorded curve (``strategy|symbol[|params]``), if any."""
        if self._backtests is None:
            return None
        parts = str(col).split("|", 2)
        bt = self._backtests
        hit = bt[(bt["strategy"].astype(str) == parts[0]) & (bt["symbol"].astype(str) == parts[1])]
        if len(parts) == 3 and "params" in hit:
            hit = hit[hit["params"].map(canonical_params) == canonical_params(parts[2])]
        return hit.iloc[0] if len(hit) else None


def _missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


# ---------------------------------------------------------------- figures
def heatmap_figure(data: SweepData, symbol: str, metric: str) -> go.Figure:
    """The metric over the grid as one heatmap trace (a 2-D z matrix), the best cells marked."""
    rows = data.rows(symbol)
    fast, slow = data.windows(symbol)
    grid = rows.pivot_table(index="fast", columns="slow", values=metric).reindex(index=fast, columns=slow)
    z = grid.to_numpy(dtype="float64") * (100.0 if metric in _PERCENT else 1.0)
    fig = go.Figure(go.Heatmap(
        z=z.astype("float32"), x=slow, y=fast, colorscale="Viridis", colorbar={"title": {"text": _label(metric)}},
        hovertemplate="fast %{y} · slow %{x}<br>" + _label(metric) + " %{z:.4g}<extra></extra>", name=metric))
    best, title = data.best(symbol, metric), f"Sweep {symbol}: {_label(metric)} · {len(rows):,} pairs"
    if best is not None:
        scale = 100.0 if metric in _PERCENT else 1.0
        word = "lowest" if metric in _LOWER_BETTER else "highest"
        title += f" · {word} at fast={best['fast']:.0f}, slow={best['slow']:.0f} ({best[metric] * scale:.3g})"
        fig.add_trace(go.Scatter(x=[best["slow"]], y=[best["fast"]], mode="markers", name=f"{word} {_label(metric)}",
                                 marker={"symbol": "star", "size": 16, "color": "white", "line": {"color": "black", "width": 1.5}},
                                 hovertemplate=f"{word} {_label(metric)}: fast %{{y}} · slow %{{x}}<extra></extra>"))
    over = data.overfitting(symbol)
    if "fast" in over and metric != "sharpe":
        fig.add_trace(go.Scatter(x=[over["slow"]], y=[over["fast"]], mode="markers", name="highest Sharpe",
                                 marker={"symbol": "diamond", "size": 13, "color": "#f0b429", "line": {"color": "black", "width": 1}},
                                 hovertemplate="highest Sharpe: fast %{y} · slow %{x}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title="slow window (bars)", yaxis_title="fast window (bars)",
                      legend={"x": 0.01, "y": 0.99, "xanchor": "left", "yanchor": "top", "bgcolor": "rgba(255,255,255,0.8)"},
                      clickmode="event",
                      height=520)
    return stamp(fig, data.run)


def _overfitting_html(data: SweepData, symbol: str, metric: str) -> str:
    o = data.overfitting(symbol)
    if "fast" not in o:
        return '<div class="wb-note">This run recorded no deflated Sharpe or PBO for its sweep.</div>'
    pct = lambda v: f"{100 * float(v):.1f}%"  # noqa: E731
    where = "" if metric == "sharpe" else " (the diamond)"
    parts = [f'<div class="wb-card-label">highest Sharpe cell of {int(o.get("pairs", 0)):,}{where}</div>'
             f'<div class="wb-card-value wb-sweep-best-cell">fast {o["fast"]:.0f} · slow {o["slow"]:.0f}</div>'
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
    costs = data.costs(symbol)
    parts.append(f'<div class="wb-note">grid {html.escape(str(o.get("grid", "")))}; fees {100 * costs["fees"]:.2f}%, '
                 f'slippage {100 * costs["slippage"]:.2f}%, {html.escape(str(costs.get("timing", "next_open")))} fills</div>')
    return '<div class="wb-card wb-sweep-overfit-card">' + "".join(parts) + "</div>"


def _bh(close: pd.Series, like: pd.Series) -> pd.Series:
    close = close.dropna()
    close = close[close.index >= like.index[0]]
    return close / close.iloc[0] * float(like.iloc[0])


def _pair_figures(data: SweepData, symbol: str, legs: list[tuple[str, pd.Series]]) -> tuple[go.Figure, go.Figure]:
    names = " vs ".join(name for name, _ in legs)
    eq, dd, weekly = go.Figure(), go.Figure(), False
    curves = list(legs)
    if legs and data.bars is not None and f"close|{symbol}" in data.bars:
        curves.append(("buy and hold", _bh(data.bars[f"close|{symbol}"], legs[0][1])))
    for (name, series), color in zip(curves, ("#2680c2", "#cb6e17", "#9aa5b1"), strict=False):
        x, y, thinned = line_xy(series)
        weekly |= thinned
        eq.add_trace(go.Scatter(x=x, y=y, name=name, mode="lines", line={"color": color}))
        x, y, _ = line_xy((series / series.cummax() - 1) * 100, how="min")
        dd.add_trace(go.Scatter(x=x, y=y, name=name, mode="lines", fill="tozeroy", line={"color": color}))
    eq.update_layout(title=f"Equity: {symbol} · {names}{weekly_note(weekly)}", hovermode="x unified",
                     yaxis_title="equity", height=380)
    dd.update_layout(title=f"Drawdown [%]: {symbol} · {names}{weekly_note(weekly)}", hovermode="x unified",
                     yaxis_title="%", height=240)
    return stamp(eq, data.run), stamp(dd, data.run)


# ---------------------------------------------------------------- tables
def _stats_frame(columns: list[tuple[str, pd.Series]]) -> pd.DataFrame:
    keys = [k for k in _STATS if any(k in s.index for _, s in columns)]
    rows = [[METRIC_LABELS.get(k, k.replace(" [%]", ""))] + [_metric_text(k, s.get(k)) if not _missing(s.get(k)) else "" for _, s in columns]
            for k in keys]
    return pd.DataFrame(rows, columns=["metric", *[n for n, _ in columns]])


def _window_stats(returns: pd.Series, ppy: float) -> tuple[float, float]:
    from research.risk.metrics import sharpe_ratio, total_return

    r = returns.dropna()
    return (sharpe_ratio(r, periods_per_year=ppy), total_return(r) * 100) if len(r) > 2 else (float("nan"),) * 2


def _walk_forward(legs: list[tuple[str, pd.Series]], ppy: float,
                  picks: tuple[str, pd.DataFrame] | None = None) -> tuple[pd.DataFrame, str]:
    """Per walk-forward fold, each leg's Sharpe on the training window and on the test window
    (and, for a walk-forward leg, the cell it picked on the training window)."""
    from research.backtest.walkforward import fold_bounds
    from research.stages.sweep_outputs import wf_windows

    index = legs[0][1].index
    train, test = wf_windows(len(index))
    try:
        bounds = fold_bounds(len(index), train=train, test=test)
    except ValueError as exc:
        return pd.DataFrame({"note": [str(exc)]}), ""
    rows = []
    for k, (a, b, c, d) in enumerate(bounds):
        row = {"fold": k, "train": f"{index[a]:%Y-%m-%d} – {index[b - 1]:%Y-%m-%d}",
               "test": f"{index[c]:%Y-%m-%d} – {index[d - 1]:%Y-%m-%d}"}
        if picks is not None and k < len(picks[1]):
            chosen = picks[1].iloc[k]
            row[f"{picks[0]}: pick"] = f"{chosen['fast']:.0f}/{chosen['slow']:.0f}" if chosen["fast"] else "flat"
        for name, r in legs:
            r = r.reindex(index)
            row[f"{name}: Sharpe in train"] = _window_stats(r.iloc[a:b], ppy)[0]
            row[f"{name}: Sharpe in test"], row[f"{name}: return in test [%]"] = _window_stats(r.iloc[c:d], ppy)
        rows.append(row)
    first = bounds[0][2]
    stitched = "; ".join(f"{html.escape(name)}: Sharpe {_window_stats(r.reindex(index).iloc[first:], ppy)[0]:.2f}"
                         for name, r in legs)
    text = (f"Walk-forward windows: {len(bounds)} folds of {train} training and {test} test bars. Over all test "
            f"windows ({index[first]:%Y-%m-%d} to {index[-1]:%Y-%m-%d}): {stitched}. A cell picked from this "
            "heatmap has seen every window, so its test-window figures are not out of sample; the drop from "
            "training to test windows shows how stable the cell is. Compare with the walk-forward for an "
            "out-of-sample benchmark: it picks a cell on each training window only.")
    return pd.DataFrame(rows), text


@dataclass
class _Leg:
    """One side of the comparison: a name, its equity, per-bar returns and statistics."""

    name: str
    equity: pd.Series
    returns: pd.Series
    stats: pd.Series | None
    label: str = ""
    result: Any = None

    def __post_init__(self) -> None:
        self.label = self.label or self.name


def _cell_leg(data: SweepData, symbol: str, fast: int, slow: int) -> _Leg | None:
    res = data.rerun(symbol, fast, slow)
    if res is None:
        return None
    return _Leg(f"fast={fast}, slow={slow}", res.equity[symbol].dropna(), res.returns[symbol], res.summary(symbol),
                result=res)


def _compare_leg(data: SweepData, symbol: str, choice: str, metric: str, cell: tuple[int, int],
                 first: _Leg) -> tuple[_Leg | None, tuple[str, pd.DataFrame] | None]:
    """The second side chosen in "Compare with" (and the walk-forward's picks per fold)."""
    if choice in ("best", "cell"):
        b = data.best(symbol, metric) if choice == "best" else None
        f, s = (int(b["fast"]), int(b["slow"])) if b is not None else cell
        leg = _cell_leg(data, symbol, f, s) if data.cell(symbol, f, s) is not None else None
        return (None if leg is None or leg.name == first.name else leg), None
    if choice == "wf":
        wf = data.walk_forward(symbol)
        if wf is None:
            return None, None
        leg = _Leg("walk-forward", wf.result.equity[symbol].dropna(), wf.result.returns[symbol], wf.summary(symbol),
                   label="walk-forward (out of sample)")
        return leg, ("walk-forward", wf.folds.reset_index(drop=True))
    if choice.startswith("curve:"):
        col = choice[6:]
        curve = data.recorded_curve(col)
        curve = curve[curve.index >= first.equity.index[0]]
        name = dict((c, lab) for lab, c in data.recorded(symbol)).get(col, col)
        return _Leg(name, curve, curve.pct_change(fill_method=None), data.recorded_stats(col),
                    label=f"{name} (recorded)"), None
    return None, None


def _rerun_note(data: SweepData, symbol: str, cell: tuple[int, int], row: pd.Series, stats: pd.Series) -> str:
    """How a cell was re-run, and whether its Sharpe is the sweep row's."""
    recorded = float(row["sharpe"]) if "sharpe" in row else float("nan")
    rerun = float(stats.get("Sharpe Ratio", float("nan")))
    same = "matches" if abs(recorded - rerun) <= 1e-4 * max(1.0, abs(recorded)) else "differs from"
    costs = data.costs(symbol)
    return (f'<div class="wb-note">fast={cell[0]}, slow={cell[1]} on {html.escape(symbol)}: re-run from the recorded '
            f'bars with fees {100 * costs["fees"]:.2f}%, slippage {100 * costs["slippage"]:.2f}%, '
            f'{html.escape(str(costs.get("timing", "next_open")))} fills; Sharpe {rerun:.3f} {same} the '
            f"sweep's {recorded:.3f}.</div>")


def _cell_trades(res: Any, symbol: str) -> pd.DataFrame:
    t = res.trades
    t = t[t["symbol"].astype(str) == symbol] if "symbol" in t else t
    t = t.sort_values("entry_time", ascending=False) if "entry_time" in t else t
    return t[[c for c in _TRADE_COLS if c in t]]


# ---------------------------------------------------------------- the panel
def sweep_panel(run: PublishedRun) -> widgets.Widget:
    """Heatmap of the whole sweep, the best cell's deflated Sharpe and PBO, and any cell re-run."""
    data = SweepData(run)
    symbol = dropdown(fresh_first(data.symbols(), stale_symbols(run)), description="Symbol", dom_class="wb-sweep-symbol")
    metric = dropdown([(_label(m), m) for m in data.metrics()], description="Metric", dom_class="wb-sweep-metric")
    heat = clickable_figure_output(heatmap_figure(data, symbol.value, metric.value), dom_class="wb-sweep-fig",
                                   height=520, target=PICK_CLASS, link={"sweep-fast": "y", "sweep-slow": "x"})
    card = widgets.HTML(_overfitting_html(data, symbol.value, metric.value), layout=widgets.Layout(width="380px", max_width="100%", min_width="0"))
    card.add_class("wb-sweep-overfit")
    fast_w, slow_w = data.windows(symbol.value)
    fast = dropdown([(str(w), w) for w in fast_w], description="Fast", dom_class="wb-sweep-fast", width="130px")
    slow = dropdown([(str(w), w) for w in slow_w], description="Slow", dom_class="wb-sweep-slow", width="130px")
    best_btn = widgets.Button(description="Best cell", tooltip="pick the best cell of the metric shown")
    best_btn.add_class("wb-sweep-best")
    pick = widgets.Text(value="", layout=widgets.Layout(display="none"))
    pick.add_class(PICK_CLASS)
    compare = dropdown([], description="Compare with", dom_class="wb-sweep-compare", width="360px")
    cfast = dropdown([(str(w), w) for w in fast_w], description="fast", dom_class="wb-sweep-cfast", width="110px")
    cslow = dropdown([(str(w), w) for w in slow_w], description="slow", dom_class="wb-sweep-cslow", width="110px")
    note = widgets.HTML()
    note.add_class("wb-sweep-pair-note")
    eq_out = figure_output(go.Figure(), dom_class="wb-sweep-equity-fig", height=380)
    dd_out = figure_output(go.Figure(), dom_class="wb-sweep-drawdown-fig", height=240)
    stats = table_html(pd.DataFrame(), dom_class="wb-sweep-stats-table", max_rows=20)
    trades = table_html(pd.DataFrame(), dom_class="wb-sweep-trades-table", max_rows=20)
    wf_note = widgets.HTML()
    wf_note.add_class("wb-sweep-wf-note")
    wf = table_html(pd.DataFrame(), dom_class="wb-sweep-wf-table", max_rows=60)
    busy = {"on": False}

    def compare_options() -> list[tuple[str, str]]:
        best = data.best(symbol.value, metric.value)
        opts = [("nothing", "none"), ("another cell (fast, slow on the right)", "cell"),
                ("the walk-forward (best Sharpe of each training window, out of sample)", "wf")]
        if best is not None:
            opts.insert(1, (f"the best {_label(metric.value)} cell (the star)", "best"))
        return opts + [(f"recorded: {label}", f"curve:{col}") for label, col in data.recorded(symbol.value)]

    def refresh_pair(*_: object) -> None:
        if busy["on"]:
            return
        sym, f, s = symbol.value, int(fast.value), int(slow.value)
        row = data.cell(sym, f, s)
        first = _cell_leg(data, sym, f, s) if row is not None else None
        if first is None:
            note.value = ('<div class="wb-note">' + (f"fast={f}, slow={s} is not a cell of the grid (fast must be "
                          "below slow)." if row is None else "This run recorded no sweep bars, so cells cannot be "
                          "re-run; the heatmap shows the recorded figures.") + "</div>")
            return
        choice = compare.value or "none"
        second, picks = _compare_leg(data, sym, choice, metric.value, (int(cfast.value), int(cslow.value)), first)
        legs = [first] if second is None else [first, second]
        eq, dd = _pair_figures(data, sym, [(leg.name, leg.equity) for leg in legs])
        show_figure(eq_out, eq)
        show_figure(dd_out, dd)
        note.value = _rerun_note(data, sym, (f, s), row, first.stats)
        set_table(stats, _stats_frame([(leg.label, leg.stats) for leg in legs if leg.stats is not None]), max_rows=20)
        set_table(trades, _cell_trades(first.result, sym), max_rows=20, formats=TRADE_FORMATS, labels=TRADE_LABELS)
        ppy = float(data.costs(sym).get("periods_per_year") or 252)
        frame, text = _walk_forward([(leg.name, leg.returns) for leg in legs], ppy, picks)
        wf_note.value = f'<div class="wb-note">{text}</div>' if text else ""
        set_table(wf, frame, max_rows=60, formats={c: ".2f" for c in frame.columns if "Sharpe" in c or "[%]" in c})

    def choose(f: int, s: int) -> None:
        if data.cell(symbol.value, f, s) is None:
            return
        busy["on"] = True
        try:
            fast.value, slow.value = f, s
        finally:
            busy["on"] = False
        refresh_pair()

    def on_pick(change: dict) -> None:
        try:
            x, y = (int(round(float(v))) for v in str(change["new"]).split(",")[:2])
        except ValueError:
            return
        choose(y, x)  # the heatmap's x is the slow window, y the fast one

    def on_best(*_: object) -> None:
        b = data.best(symbol.value, metric.value)
        b = data.best(symbol.value, "sharpe") if b is None else b
        if b is not None:
            choose(int(b["fast"]), int(b["slow"]))

    def redraw(*_: object) -> None:
        show_clickable_figure(heat, heatmap_figure(data, symbol.value, metric.value), target=PICK_CLASS,
                              link={"sweep-fast": "y", "sweep-slow": "x"})
        card.value = _overfitting_html(data, symbol.value, metric.value)
        busy["on"] = True
        try:
            compare.options = compare_options()
        finally:
            busy["on"] = False

    def on_symbol(*_: object) -> None:
        redraw()
        fw, sw = data.windows(symbol.value)
        busy["on"] = True
        try:
            for box, opts in ((fast, fw), (slow, sw), (cfast, fw), (cslow, sw)):
                keep = box.value
                box.options = [(str(w), w) for w in opts]
                box.value = keep if keep in opts else opts[0]
        finally:
            busy["on"] = False
        if data.cell(symbol.value, int(fast.value), int(slow.value)) is None:
            on_best()
        else:
            refresh_pair()

    on_change(symbol, on_symbol, names="value")
    on_change(metric, redraw, names="value")
    for box in (fast, slow, compare, cfast, cslow):
        on_change(box, refresh_pair, names="value")
    on_change(pick, on_pick, names="value")
    best_btn.on_click(on_best)
    redraw()
    start = data.overfitting(symbol.value) or {}
    b = data.best(symbol.value, "sharpe")
    f0, s0 = (int(start["fast"]), int(start["slow"])) if "fast" in start else (
        (int(b["fast"]), int(b["slow"])) if b is not None else (fast_w[0], slow_w[-1]))
    choose(f0, s0) if data.cell(symbol.value, f0, s0) is not None else refresh_pair()
    top = widgets.HBox([heat, card], layout=widgets.Layout(width="100%", align_items="flex-start", flex_flow="row wrap"))
    heat.layout = widgets.Layout(flex="1 1 420px", min_width="0", max_width="100%")  # full width on a phone
    hint = widgets.HTML('<div class="wb-note">Click a cell of the heatmap (or choose fast and slow) to re-run it.</div>')
    return section(
        "Parameter sweep", widgets.HBox([symbol, metric]), top, hint,
        widgets.HBox([fast, slow, best_btn, pick]), widgets.HBox([compare, cfast, cslow]), note, eq_out, dd_out,
        table_row(section("Side by side", stats, dom_class="wb-sweep-stats"),
                  section("Trades of the cell (most recent first)", trades, dom_class="wb-sweep-trades"),
                  dom_class="wb-sweep-tables"),
        section("Walk-forward windows", wf_note, wf, dom_class="wb-sweep-wf"),
        dom_class="wb-sweep",
    )
