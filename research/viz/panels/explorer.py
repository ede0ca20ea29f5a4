"""Backtest explorer: pick a strategy, a symbol and parameters; see what the pipeline recorded.

Reads the run outputs ``backtests`` (strategy, symbol, params as a JSON string, stats columns),
``equity`` (one column per ``strategy|symbol`` or ``strategy|symbol|params`` curve), ``trades``
(optional), ``prices`` (buy-and-hold when no ``buy_and_hold|symbol`` curve was recorded) and
``sweep`` (family, symbol, parameters, metrics; the sweep panel is :mod:`research.viz.panels.sweep`). The
strategy panel only selects among recorded results; the sweep panel re-runs a chosen cell on the
bars the sweep recorded.
"""

from __future__ import annotations

import html
import os

import ipywidgets as widgets
import pandas as pd
import plotly.graph_objects as go

from research.viz.panels.headline import headline_panel
from research.viz.panels.labels import (
    METRIC_GROUPS,
    TRADE_FORMATS,
    TRADE_LABELS,
    canonical_params,
    grouped_metrics,
    params_label,
)
from research.viz.panels.labels import curve_index as _curve_index
from research.viz.panels.layout import (
    dropdown,
    figure_output,
    line_xy,
    load_run,
    page,
    require,
    section,
    set_table,
    show_figure,
    stamp,
    table_html,
    table_row,
    weekly_note,
)
from research.viz.panels.staleness import fresh_first, stale_note, stale_symbols
from research.viz.panels.sweep import sweep_panel
from research.viz.panels.viewer_safe import on_change
from research.workflow.results import PublishedRun

__all__ = ["backtest_explorer", "explorer_panel", "sweep_panel", "canonical_params", "params_label",
           "equity_pair", "BacktestSelection"]

_TRADE_COLS = ("entry_time", "exit_time", "direction", "size", "entry_price", "exit_price", "pnl", "return")


class BacktestSelection:
    """The recorded results of one run, indexed for the explorer's widgets."""

    def __init__(self, run: PublishedRun) -> None:
        require(run, "backtests")
        require(run, "equity")
        self.run = run
        bt = run.table("backtests").copy()
        bt["params"] = bt["params"].map(canonical_params) if "params" in bt else "{}"
        self.backtests = bt
        self.equity = run.table("equity").sort_index()
        self.curves = _curve_index(self.equity)
        self.trades = run.table("trades") if run.has("trades") else None
        if self.trades is not None and "params" in self.trades:
            self.trades = self.trades.assign(params=self.trades["params"].map(canonical_params))
        self.prices = run.table("prices") if run.has("prices") else None

    def strategies(self) -> list[str]:
        names = sorted(self.backtests["strategy"].astype(str).unique())
        return sorted(names, key=lambda s: s == "buy_and_hold")

    def symbols(self, strategy: str) -> list[str]:
        return sorted(self.backtests.loc[self.backtests["strategy"] == strategy, "symbol"].astype(str).unique())

    def params(self, strategy: str, symbol: str) -> list[tuple[str, str]]:
        rows = self.backtests[(self.backtests["strategy"] == strategy) & (self.backtests["symbol"] == symbol)]
        return [(params_label(p), p) for p in dict.fromkeys(rows["params"])]

    def stats(self, strategy: str, symbol: str, params: str) -> pd.Series:
        bt = self.backtests
        rows = bt[(bt["strategy"] == strategy) & (bt["symbol"] == symbol) & (bt["params"] == params)]
        return rows.iloc[0].drop(labels=["strategy", "symbol", "params"]) if len(rows) else pd.Series(dtype=object)

    def curve(self, strategy: str, symbol: str, params: str) -> tuple[pd.Series | None, str]:
        """The recorded equity curve and a note when it is not exactly the selected parameter set."""
        exact = self.curves.get((strategy, symbol, params))
        note = ""
        if exact is None:
            exact = self.curves.get((strategy, symbol, None))
            if exact is None:
                return None, "no equity curve recorded for this selection"
            if len(self.params(strategy, symbol)) > 1:
                note = "equity recorded for the default parameters only"
        return self._own_bars(self.equity[exact].dropna(), symbol), note

    def _own_bars(self, curve: pd.Series, symbol: str) -> pd.Series:
        """Only the symbol's own bars (curves share the universe's index, flat where it has none)."""
        if self.prices is not None and symbol in self.prices:
            first, last = self.prices[symbol].first_valid_index(), self.prices[symbol].last_valid_index()
            if first is not None:
                curve = curve[(curve.index >= first) & (curve.index <= last)]
        return curve

    def buy_and_hold(self, symbol: str, like: pd.Series) -> pd.Series | None:
        col = self.curves.get(("buy_and_hold", symbol, None)) or self.curves.get(("buy_and_hold", symbol, "{}"))
        if col is not None:  # only the symbol's own bars: no flat line after its data ends
            return self._own_bars(self.equity[col].dropna(), symbol)
        if self.prices is None or symbol not in self.prices:
            return None
        close = self.prices[symbol].dropna()
        close = close[close.index >= like.index[0]]
        return close / close.iloc[0] * float(like.iloc[0]) if len(close) else None


def equity_pair(sel: BacktestSelection, strategy: str, symbol: str, params: str) -> tuple[go.Figure, go.Figure, str]:
    """The equity-vs-buy-and-hold and drawdown figures of one selection, and its caveat note."""
    run = sel.run
    curve, note = sel.curve(strategy, symbol, params)
    title = f"{strategy} · {symbol} · {params_label(params)}"
    eq, dd, weekly = go.Figure(), go.Figure(), False
    if curve is not None and len(curve):
        bh = sel.buy_and_hold(symbol, curve) if strategy != "buy_and_hold" else None
        for name, series, color in ((strategy, curve, "#2680c2"), ("buy and hold", bh, "#9aa5b1")):
            if series is None or not len(series):
                continue
            x, y, thinned = line_xy(series)
            weekly |= thinned
            eq.add_trace(go.Scatter(x=x, y=y, name=name, mode="lines", line={"color": color}))
            x, y, _ = line_xy((series / series.cummax() - 1) * 100, how="min")
            dd.add_trace(go.Scatter(x=x, y=y, name=name, mode="lines", fill="tozeroy", line={"color": color}))
    eq.update_layout(title=f"Equity: {title}{weekly_note(weekly)}", hovermode="x unified", yaxis_title="equity")
    dd.update_layout(title=f"Drawdown [%]: {title}{weekly_note(weekly)}", hovermode="x unified", yaxis_title="%")
    return stamp(eq, run), stamp(dd, run), note


def _risk_frame(stats: pd.Series) -> pd.DataFrame:
    """The selection's metrics as a short grouped table (returns, risk, drawdown, benchmark,
    trading: :func:`research.viz.panels.labels.grouped_metrics`); metrics without a value are
    counted in one last row (a benchmark that was not recorded, too few trades...); the others
    (VaR by every method...) are in the table's CSV download."""
    return grouped_metrics(stats.to_dict())


def _risk_csv(stats: pd.Series) -> pd.DataFrame:
    """Every metric of the selection, as recorded (the risk table's CSV download)."""
    grouped = [k for _, keys in METRIC_GROUPS for k in keys]
    keys = [k for k in grouped if k in stats.index] + [k for k in stats.index if k not in grouped]
    return pd.DataFrame({"metric": keys, "value": [stats[k] for k in keys]})


def _trades_frame(sel: BacktestSelection, strategy: str, symbol: str, params: str) -> pd.DataFrame:
    t = sel.trades
    if t is None:
        return pd.DataFrame({"note": ["this run recorded no trades table"]})
    mask = (t["symbol"].astype(str) == symbol) if "symbol" in t else pd.Series(True, index=t.index)
    if "strategy" in t:
        mask &= t["strategy"].astype(str) == strategy
    if "params" in t:
        mask &= t["params"] == params
    rows = t[mask]
    if "entry_time" in rows:
        rows = rows.sort_values("entry_time", ascending=False)
    return rows[[c for c in _TRADE_COLS if c in rows]]


def explorer_panel(run: PublishedRun) -> widgets.Widget:
    """Strategy, symbol and parameter pickers driving equity, drawdown, trades and risk summary."""
    sel = BacktestSelection(run)
    strategy = dropdown(sel.strategies(), description="Strategy", dom_class="wb-bt-strategy")
    stale = stale_symbols(run)
    symbol = dropdown(fresh_first(sel.symbols(strategy.value), stale), description="Symbol", dom_class="wb-bt-symbol")
    params = dropdown(sel.params(strategy.value, symbol.value), description="Parameters",
                      dom_class="wb-bt-params", width="320px")
    eq_fig, dd_fig, note_text = equity_pair(sel, strategy.value, symbol.value, params.value)
    eq_out = figure_output(eq_fig, dom_class="wb-bt-equity-fig", height=380)
    dd_out = figure_output(dd_fig, dom_class="wb-bt-drawdown-fig", height=260)
    note = widgets.HTML()
    note.add_class("wb-bt-note")
    risk = table_html(pd.DataFrame(), dom_class="wb-bt-risk-table", max_rows=40)
    trades = table_html(pd.DataFrame(), dom_class="wb-bt-trades-table", max_rows=25)

    busy = {"on": False}

    def refresh(*_: object) -> None:
        if busy["on"] or params.value is None:
            return
        eq, dd, caveat = equity_pair(sel, strategy.value, symbol.value, params.value)
        show_figure(eq_out, eq)
        show_figure(dd_out, dd)
        note.value = f'<div class="wb-note">{html.escape(caveat)}</div>' if caveat else ""
        stats = sel.stats(strategy.value, symbol.value, params.value)
        set_table(risk, _risk_frame(stats), max_rows=40, labels={"group": ""}, csv=_risk_csv(stats))
        set_table(trades, _trades_frame(sel, strategy.value, symbol.value, params.value), max_rows=25,
                  formats=TRADE_FORMATS, labels=TRADE_LABELS)

    def on_strategy(change: dict) -> None:
        busy["on"] = True
        try:
            symbol.options = sel.symbols(change["new"])
            params.options = sel.params(change["new"], symbol.value)
        finally:
            busy["on"] = False
        refresh()

    def on_symbol(change: dict) -> None:
        if busy["on"]:
            return
        busy["on"] = True
        try:
            params.options = sel.params(strategy.value, change["new"])
        finally:
            busy["on"] = False
        refresh()

    on_change(strategy, on_strategy, names="value")
    on_change(symbol, on_symbol, names="value")
    on_change(params, refresh, names="value")
    refresh()
    risk_box = section("Risk summary", risk, dom_class="wb-bt-risk")
    trades_box = section("Trades (most recent first)", trades, dom_class="wb-bt-trades")
    flag = widgets.HTML(stale_note(symbol.options, stale))
    return section("Strategy backtest", table_row(strategy, symbol, params, dom_class="wb-bt-controls"), flag, note,
                   eq_out, dd_out, table_row(risk_box, trades_box, dom_class="wb-bt-tables"), dom_class="wb-explorer")


def backtest_explorer(run: PublishedRun | None = None, *, pipeline: str = "daily",
                      runs_dir: str | os.PathLike | None = None) -> widgets.Widget:
    """The backtest explorer page of the latest published run (or of ``run``).

    Parameters
    ----------
    run : PublishedRun, optional
        Defaults to ``research.workflow.results.latest(pipeline)``.
    pipeline : str
        Pipeline whose results are shown.
    runs_dir : path, optional
        The pipeline's folder (default ``<Settings.runs_dir>/<pipeline>``).
    """
    run = run if run is not None else load_run(pipeline, runs_dir=runs_dir)
    panels = [("Headline", headline_panel), ("Backtest", explorer_panel), ("Sweep", sweep_panel)]
    return page("Backtest explorer", panels, run=run, pipeline=pipeline, runs_dir=runs_dir, dom_id="explorer")
