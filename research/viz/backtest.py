"""Plotly figures of backtests, sweeps and walk-forward runs.

    >>> from research.viz.backtest import sweep_heatmap
    >>> sweep_heatmap(sweep_ma_crossover(load_prices("GOOG")), metric="sharpe").show()
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from research.risk.metrics import COMPACT_KEYS

__all__ = ["sweep_heatmap", "equity_figure", "walk_forward_figure"]


def sweep_heatmap(
    sweep: Any,
    *,
    metric: str = "sharpe",
    symbol: str | None = None,
    x: str | None = None,
    y: str | None = None,
    fixed: Mapping[str, Any] | None = None,
    agg: str = "max",
    title: str | None = None,
) -> go.Figure:
    """Heatmap of one metric over two swept parameters: a 2-D slice of the sweep's grid.

    Parameters
    ----------
    sweep : SweepResult or DataFrame
        A sweep result, or its tidy table (``symbol``, parameters, metrics).
    metric : str
        Column to colour by (``sharpe``, ``total_return``, ``max_drawdown``...).
    symbol : str, optional
        Which symbol (required when the table has several).
    x, y : str, optional
        Parameter axes (default: the first two swept parameters).
    fixed : mapping, optional
        Other parameters held at one value each.
    agg : {"max", "min", "median", "mean"}
        How the parameters neither shown nor fixed are folded into each cell (see
        :func:`research.backtest.slices.grid_slice`, which computes the frame).
    title : str, optional
        Figure title; a default names the strategy, symbol, metric and the slice. The best cell
        is marked.
    """
    from research.backtest.slices import grid_slice

    params, strategy = _params_of(sweep)
    x = x or (params[0] if params else "fast")
    y = y or (params[1] if len(params) > 1 else "slow")
    grid = grid_slice(sweep, x=x, y=y, metric=metric, symbol=symbol, fixed=fixed, agg=agg)
    fig = _heatmap_trace(grid, x=x, y=y, metric=metric)
    sliced = ", ".join([*(f"{k}={v}" for k, v in grid.attrs["fixed"].items()),
                        *([f"{agg} over {', '.join(grid.attrs['aggregated'])}"] if grid.attrs["aggregated"] else [])])
    fig.update_layout(
        title=title or f"{strategy} sweep on {grid.attrs['symbol']}: {metric}" + (f" ({sliced})" if sliced else ""),
        xaxis_title=x, yaxis_title=y, template="plotly_white",
    )
    return fig


def _params_of(sweep: Any) -> tuple[list[str], str]:
    """The swept parameters and the strategy name of a sweep result or its table."""
    from research.backtest.slices import param_columns

    if isinstance(sweep, pd.DataFrame):
        return param_columns(sweep), "sweep"
    return list(sweep.param_names), sweep.strategy


def _heatmap_trace(grid: pd.DataFrame, *, x: str, y: str, metric: str) -> go.Figure:
    """The slice as a heatmap (percent metrics in percent) with its best cell marked."""
    pct = COMPACT_KEYS.get(metric, "").endswith("[%]")
    z = grid.to_numpy(dtype=np.float64) * (100.0 if pct else 1.0)
    finite = np.isfinite(z)
    fig = go.Figure(go.Heatmap(
        z=z, x=grid.columns, y=grid.index,
        colorscale="RdYlGn", zmid=0 if finite.any() and np.nanmin(z) < 0 < np.nanmax(z) else None,
        colorbar={"title": f"{metric} [%]" if pct else metric},
        hovertemplate=f"{x}=%{{x}}<br>{y}=%{{y}}<br>{metric}=%{{z:.3f}}<extra></extra>",
    ))
    if finite.any():
        r, c = np.unravel_index(np.nanargmax(np.where(finite, z, -np.inf)), z.shape)
        fig.add_trace(go.Scatter(x=[grid.columns[c]], y=[grid.index[r]], mode="markers", name="best",
                                 marker={"symbol": "x", "size": 12, "color": "black"}))
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
    """Stitched out-of-sample equity with the fold boundaries and each fold's chosen parameters."""
    result = wf.result
    books = list(result.equity.columns)
    symbol = symbol or books[0]
    eq = result.equity[symbol]
    fig = go.Figure(go.Scatter(x=eq.index, y=eq, name="out-of-sample equity", mode="lines"))
    folds = wf.folds[wf.folds["symbol"] == str(symbol)]
    for _, row in folds.iterrows():
        fig.add_vline(x=row["test_start"], line_width=1, line_dash="dot", line_color="grey")
        label = wf.pick_label(row)
        fig.add_annotation(x=row["test_start"], y=1.0, yref="paper", text=label, showarrow=False,
                           textangle=-90, xanchor="left", font={"size": 9})
    fig.update_layout(
        title=f"Walk-forward {symbol}: train {wf.params['train']} bars, test {wf.params['test']} bars "
              f"(in-sample {wf.metric}; {', '.join(wf.param_names)} per fold)",
        xaxis_title="time", yaxis_title="equity", template="plotly_white",
    )
    return fig
