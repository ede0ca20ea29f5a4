"""The re-run side of the sweep panel: one cell re-run by the engine, a second side to compare it
with (another cell, the best cell, the family's walk-forward, a recorded strategy), their
equity and drawdown, statistics, trades and walk-forward windows."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from research.viz.panels.labels import METRIC_LABELS
from research.viz.panels.labels import metric_text as _metric_text
from research.viz.panels.layout import line_xy, stamp, weekly_note
from research.viz.panels.sweep_data import SweepData, param_set_text

__all__ = ["Leg", "cell_leg", "compare_leg", "pair_figures", "stats_frame", "walk_forward_table", "rerun_note",
           "cell_trades"]

_STATS = ("Total Return [%]", "Return (Ann.) [%]", "Sharpe Ratio", "Sortino Ratio", "Max. Drawdown [%]",
          "Volatility (Ann.) [%]", "# Trades", "Win Rate [%]", "Exposure Time [%]")
_TRADE_COLS = ("entry_time", "exit_time", "direction", "size", "entry_price", "exit_price", "pnl", "return",
               "exit_reason")


def _missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def _bh(close: pd.Series, like: pd.Series) -> pd.Series:
    close = close.dropna()
    close = close[close.index >= like.index[0]]
    return close / close.iloc[0] * float(like.iloc[0])


def pair_figures(data: SweepData, symbol: str, legs: list[tuple[str, pd.Series]]) -> tuple[go.Figure, go.Figure]:
    """Equity and drawdown of the legs, with buy and hold of the recorded bars."""
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


def stats_frame(columns: list[tuple[str, pd.Series]]) -> pd.DataFrame:
    """The legs' statistics side by side."""
    keys = [k for k in _STATS if any(k in s.index for _, s in columns)]
    rows = [[METRIC_LABELS.get(k, k.replace(" [%]", ""))] + [_metric_text(k, s.get(k)) if not _missing(s.get(k)) else ""
                                                            for _, s in columns] for k in keys]
    return pd.DataFrame(rows, columns=["metric", *[n for n, _ in columns]])


def _window_stats(returns: pd.Series, ppy: float) -> tuple[float, float]:
    from research.risk.metrics import sharpe_ratio, total_return

    r = returns.dropna()
    return (sharpe_ratio(r, periods_per_year=ppy), total_return(r) * 100) if len(r) > 2 else (float("nan"),) * 2


def walk_forward_table(legs: list[tuple[str, pd.Series]], ppy: float,
                       picks: tuple[str, pd.DataFrame] | None = None) -> tuple[pd.DataFrame, str]:
    """Per walk-forward fold, each leg's Sharpe on the training window and on the test window
    (and, for a walk-forward leg, the cell it picked on the training window: ``picks`` is its name and
    folds with a ``pick`` column, :meth:`SweepData.walk_forward_picks`)."""
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
            row[f"{picks[0]}: pick"] = picks[1]["pick"].iloc[k]
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
class Leg:
    """One side of the comparison: a name, its equity, per-bar returns and statistics."""

    name: str
    equity: pd.Series
    returns: pd.Series
    stats: pd.Series | None
    label: str = ""
    result: Any = None

    def __post_init__(self) -> None:
        self.label = self.label or self.name


def cell_leg(data: SweepData, family: str, symbol: str, cell: dict[str, Any]) -> Leg | None:
    """One cell re-run by the engine on the recorded bars (``None`` without bars)."""
    res = data.rerun(family, symbol, cell)
    if res is None:
        return None
    return Leg(param_set_text(cell), res.equity[symbol].dropna(), res.returns[symbol], res.summary(symbol), result=res)


def compare_leg(data: SweepData, family: str, symbol: str, choice: str, metric: str, other: dict[str, Any],
                first: Leg) -> tuple[Leg | None, tuple[str, pd.DataFrame] | None]:
    """The second side chosen in "Compare with" (and the walk-forward's picks per fold)."""
    if choice in ("best", "cell"):
        b = data.best(family, symbol, metric) if choice == "best" else None
        cell = data.cell_of(family, b) if b is not None else other
        leg = cell_leg(data, family, symbol, cell) if data.cell(family, symbol, cell) is not None else None
        return (None if leg is None or leg.name == first.name else leg), None
    if choice == "wf":
        wf = data.walk_forward(family, symbol)
        if wf is None:
            return None, None
        leg = Leg("walk-forward", wf.result.equity[symbol].dropna(), wf.result.returns[symbol], wf.summary(symbol),
                  label="walk-forward (out of sample)")
        return leg, ("walk-forward", data.walk_forward_picks(family, symbol))
    if choice.startswith("curve:"):
        col = choice[6:]
        curve = data.recorded_curve(col)
        curve = curve[curve.index >= first.equity.index[0]]
        name = dict((c, lab) for lab, c in data.recorded(symbol)).get(col, col)
        return Leg(name, curve, curve.pct_change(fill_method=None), data.recorded_stats(col),
                   label=f"{name} (recorded)"), None
    return None, None


def rerun_note(data: SweepData, family: str, symbol: str, cell: dict[str, Any], row: pd.Series,
               stats: pd.Series) -> str:
    """How a cell was re-run, and whether its Sharpe is the sweep row's."""
    recorded = float(row["sharpe"]) if "sharpe" in row else float("nan")
    rerun = float(stats.get("Sharpe Ratio", float("nan")))
    same = "matches" if abs(recorded - rerun) <= 1e-4 * max(1.0, abs(recorded)) else "differs from"
    costs = data.costs(family, symbol)
    return (f'<div class="wb-note">{html.escape(family)} {html.escape(param_set_text(cell))} on {html.escape(symbol)}: '
            f're-run from the recorded bars with fees {100 * costs["fees"]:.2f}%, slippage '
            f'{100 * costs["slippage"]:.2f}%, {html.escape(str(costs.get("timing", "next_open")))} fills; Sharpe '
            f"{rerun:.3f} {same} the sweep's {recorded:.3f}.</div>")


def cell_trades(res: Any, symbol: str) -> pd.DataFrame:
    """The re-run cell's trades, most recent first."""
    t = res.trades
    t = t[t["symbol"].astype(str) == symbol] if "symbol" in t else t
    t = t.sort_values("entry_time", ascending=False) if "entry_time" in t else t
    return t[[c for c in _TRADE_COLS if c in t]]
