"""Plotly figures of out-of-sample forecasts (the predictions table of ``research.models.evaluate``).

    >>> from research.viz.models import evaluation_figures
    >>> figs = evaluation_figures(result.predictions)       # {"predicted_vs_actual": ..., ...}
    >>> train_and_evaluate("SPX", figures=evaluation_figures)  # logged with the MLflow run

Every figure shows the out-of-sample span in its title; dashed vertical lines mark fold starts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from research.models.evaluate import rolling_directional_accuracy

__all__ = [
    "predicted_vs_actual_figure",
    "rolling_accuracy_figure",
    "error_distribution_figure",
    "comparison_figure",
    "evaluation_figures",
]

_COLORS = {"lstm": "#1f77b4", "naive": "#7f7f7f", "naive_mean": "#bcbd22",
           "moving_average": "#ff7f0e", "ridge": "#2ca02c", "actual": "#d62728"}


def _series(predictions: pd.DataFrame, model: str, *, seed: int | None = None) -> pd.DataFrame:
    g = predictions[predictions["model"] == model]
    if g.empty:
        raise ValueError(f"no predictions for model {model!r}; models: {sorted(predictions['model'].unique())}")
    seed = int(g["seed"].min()) if seed is None else seed
    g = g[g["seed"] == seed]
    return g.set_index(pd.DatetimeIndex(g["timestamp"]))[["fold", "predicted", "actual"]].sort_index()


def _span(predictions: pd.DataFrame) -> str:
    ts = pd.DatetimeIndex(predictions["timestamp"])
    return f"out of sample {ts.min():%Y-%m-%d} .. {ts.max():%Y-%m-%d}"


def _fold_lines(fig: go.Figure, frame: pd.DataFrame) -> None:
    starts = pd.Series(frame.index, index=frame.index).groupby(frame["fold"].to_numpy()).min()
    for ts in list(starts)[1:]:
        fig.add_vline(x=ts, line_dash="dash", line_color="#aaaaaa", line_width=1)


def _models(predictions: pd.DataFrame, models: Sequence[str] | None) -> list[str]:
    return list(models) if models else list(dict.fromkeys(predictions["model"]))


def predicted_vs_actual_figure(
    predictions: pd.DataFrame, *, models: Sequence[str] | None = None, title: str | None = None
) -> go.Figure:
    """Realised target and each model's forecast over time (first seed)."""
    names = _models(predictions, models)
    base = _series(predictions, names[0])
    fig = go.Figure()
    fig.add_scatter(x=base.index, y=base["actual"], name="actual", mode="lines",
                    line={"color": _COLORS["actual"], "width": 1}, opacity=0.6)
    for name in names:
        s = _series(predictions, name)
        fig.add_scatter(x=s.index, y=s["predicted"], name=name, mode="lines",
                        line={"color": _COLORS.get(name), "width": 1.5})
    _fold_lines(fig, base)
    fig.update_layout(title=title or f"Predicted vs actual ({_span(predictions)})",
                      xaxis_title="forecast made at", yaxis_title="target", hovermode="x unified")
    return fig


def rolling_accuracy_figure(
    predictions: pd.DataFrame, *, window: int = 63, models: Sequence[str] | None = None,
    target: str = "return", title: str | None = None,
) -> go.Figure:
    """Directional accuracy over a trailing window of ``window`` forecasts, per model."""
    fig = go.Figure()
    frame = None
    for name in _models(predictions, models):
        frame = _series(predictions, name)
        acc = rolling_directional_accuracy(frame["actual"], frame["predicted"], window=window, target=target)
        fig.add_scatter(x=acc.index, y=acc, name=name, mode="lines", line={"color": _COLORS.get(name)})
    fig.add_hline(y=0.5, line_dash="dot", line_color="#555555")
    if frame is not None:
        _fold_lines(fig, frame)
    fig.update_layout(title=title or f"Rolling directional accuracy, {window} forecasts ({_span(predictions)})",
                      yaxis_title="directional accuracy", yaxis_range=[0, 1])
    return fig


def error_distribution_figure(
    predictions: pd.DataFrame, *, models: Sequence[str] | None = None, bins: int = 60, title: str | None = None
) -> go.Figure:
    """Histogram of forecast errors (predicted - actual) per model, overlaid."""
    fig = go.Figure()
    for name in _models(predictions, models):
        g = predictions[predictions["model"] == name]
        err = (g["predicted"] - g["actual"]).to_numpy()
        rmse = float(np.sqrt(np.mean(err**2))) if err.size else float("nan")
        fig.add_histogram(x=err, name=f"{name} (RMSE {rmse:.4f})", nbinsx=bins, opacity=0.55,
                          marker_color=_COLORS.get(name), histnorm="probability density")
    fig.update_layout(barmode="overlay", title=title or f"Forecast errors ({_span(predictions)})",
                      xaxis_title="predicted - actual", yaxis_title="density")
    return fig


def comparison_figure(summary: pd.DataFrame, *, metric: str = "rmse", title: str | None = None) -> go.Figure:
    """Bar chart of one metric per model with its std over seeds as error bars."""
    std = summary.get(f"{metric}_std", pd.Series(np.nan, index=summary.index)).fillna(0.0)
    fig = go.Figure(go.Bar(x=list(summary.index), y=summary[metric], error_y={"type": "data", "array": std},
                           marker_color=[_COLORS.get(m, "#1f77b4") for m in summary.index]))
    fig.update_layout(title=title or f"Out-of-sample {metric} by model", yaxis_title=metric)
    return fig


def evaluation_figures(predictions: pd.DataFrame, *, target: str = "return") -> dict[str, go.Figure]:
    """The three evaluation figures, keyed by name (what the training cycle logs)."""
    window = max(5, min(63, len(predictions["timestamp"].unique()) // 4))
    return {
        "predicted_vs_actual": predicted_vs_actual_figure(predictions),
        "rolling_directional_accuracy": rolling_accuracy_figure(predictions, window=window, target=target),
        "error_distribution": error_distribution_figure(predictions),
    }
