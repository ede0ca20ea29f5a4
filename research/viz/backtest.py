"""Plotly figures of backtests, sweeps and walk-forward runs.

    >>> from research.viz.backtest import sweep_heatmap
    >>> sweep_heatmap(sweep_ma_crossover(load_prices("GOOG")), metric="sharpe").show()
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from research.risk.metrics import COMPACT_KEYS

__all__ = ["sweep_heatmap", "equity_figure", "walk_forward_figure"]


def _table(sweep: Any) -> tuple[pd.DataFrame, list[str], str]:
    if isinstance(sweep, pd.DataFrame):
        params = [c for c in ("fast", "slow") if c in sweep.columns]
        return sweep, params, "sweep"
    return sweep.table, list(sweep.param_names), sweep.strategy


def sweep_heatmap(
    sweep: Any,
    *,
    metric: str = "sharpe",
    symbol: str | None = None,
    x: str | None = None,
    y: str | None = None,
    title: str | None = None,
) -> go.Figure:
    """Heatmap of one metric over two swept parameters (fast on x, slow on y by default).

    Parameters
    ----------
    sweep : SweepResult or DataFrame
        A sweep result, or its tidy table (``symbol``, parameters, metrics).
    metric : str
        Column to colour by (``sharpe``, ``total_return``, ``max_drawdown``...).
    symbol : str, optional
        Which symbol (required when the table has several).
    x, y : str, optional
        Parameter columns for the axes (default: the first two swept parameters).
    title : str, optional
        Figure title; a default names the strategy, symbol and metric. The best cell is marked.
    """
    table, params, strategy = _table(sweep)
    if metric not in table.columns:
        raise ValueError(f"metric {metric!r} is not a column of the sweep table; columns: {list(table.columns)}")
    symbols = list(pd.unique(table["symbol"]))
    if symbol is None:
        if len(symbols) != 1:
            raise ValueError(f"the sweep covers several symbols {symbols[:5]}: pass symbol=")
        symbol = symbols[0]
    t = table[table["symbol"] == symbol]
    if t.empty:
        raise ValueError(f"no rows for symbol {symbol!r}; symbols: {symbols[:10]}")
    x = x or (params[0] if params else "fast")
    y = y or (params[1] if len(params) > 1 else "slow")
    grid = t.pivot_table(index=y, columns=x, values=metric, aggfunc="first")
    pct = COMPACT_KEYS.get(metric, "").endswith("[%]")
    z = grid.to_numpy() * (100.0 if pct else 1.0)
    fig = go.Figure(go.Heatmap(
        z=z, x=grid.columns, y=grid.index, colorscale="RdYlGn", zmid=0 if np.nanmin(z) < 0 < np.nanmax(z) else None,
        colorbar={"title": f"{metric} [%]" if pct else metric},
        hovertemplate=f"{x}=%{{x}}<br>{y}=%{{y}}<br>{metric}=%{{z:.3f}}<extra></extra>",
    ))
    finite = t[metric].dropna()
    if not finite.empty:
        best = t.loc[finite.idxmax()]
        fig.add_trace(go.Scatter(x=[best[x]], y=[best[y]], mode="markers", name="best",
                                 marker={"symbol": "x", "size": 12, "color": "black"}))
    fig.update_layout(
        title=title or f"{strategy} sweep on {symbol}: {metric} ({len(t):,} parameter sets)",
        xaxis_title=x, yaxis_title=y, template="plotly_white",
    )
    return fig


def equity_figure(result: Any, *, title: str | None = None, log: bool = False) -> go.Figure:
    """Equity of every book of a :class:`~research.backtest.engine.BacktestResult`, with fills marked."""
    fig = go.Figure()
    for book in result.equity.columns:
        fig.add_trace(go.Scatter(x=result.equity.index, y=result.equity[book], name=str(book), mode="lines"))
    params = result.params
    fig.update_layout(
        title=title or f"{params.get('strategy')} {params.get('params')} · fills {params.get('timing')}",
        xaxis_title="time", yaxis_title="equity", template="plotly_white",
        yaxis_type="log" if log else "linear",
    )
    return fig


def walk_forward_figure(wf: Any, *, symbol: str | None = None) -> go.Figure:
    """Stitched out-of-sample equity with the fold boundaries and each fold's chosen windows."""
    result = wf.result
    books = list(result.equity.columns)
    symbol = symbol or books[0]
    eq = result.equity[symbol]
    fig = go.Figure(go.Scatter(x=eq.index, y=eq, name="out-of-sample equity", mode="lines"))
    folds = wf.folds[wf.folds["symbol"] == str(symbol)]
    for _, row in folds.iterrows():
        fig.add_vline(x=row["test_start"], line_width=1, line_dash="dot", line_color="grey")
        label = f"{row['fast']}/{row['slow']}" if row["fast"] else "flat"
        fig.add_annotation(x=row["test_start"], y=1.0, yref="paper", text=label, showarrow=False,
                           textangle=-90, xanchor="left", font={"size": 9})
    fig.update_layout(
        title=f"Walk-forward {symbol}: train {wf.params['train']} bars, test {wf.params['test']} bars "
              f"(in-sample {wf.metric}; windows fast/slow per fold)",
        xaxis_title="time", yaxis_title="equity", template="plotly_white",
    )
    return fig
