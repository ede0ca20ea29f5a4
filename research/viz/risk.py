"""Plotly figures of a risk report: the tear sheet.

Each function takes a :class:`research.risk.report.RiskReport` and returns a titled
``plotly.graph_objects.Figure`` with labelled axes. ``as_of`` and ``run_id`` go into a subtitle
so every figure says when its data ends and which run produced it (``as_of`` defaults to the
last bar of the report).

    >>> from research.risk.report import risk_report
    >>> from research.viz.risk import tearsheet_figures
    >>> figs = tearsheet_figures(risk_report(returns, benchmark=bench), run_id="abc123")
    >>> figs["drawdown"].show()
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from research.risk.report import RiskReport

__all__ = [
    "growth_figure", "drawdown_figure", "monthly_returns_figure", "rolling_figure",
    "distribution_figure", "tearsheet_figures",
]

_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_VAR_STYLES = {"historical": "solid", "gaussian": "dash", "cornish_fisher": "dot"}


def _subtitle(report: RiskReport, as_of: object, run_id: str | None) -> str:
    if as_of is None and len(report.returns):
        last = report.returns.index[-1]
        as_of = last.strftime("%Y-%m-%d") if isinstance(last, pd.Timestamp) else str(last)
    parts = [f"as of {as_of}" if as_of is not None else "as of: no data"]
    if run_id:
        parts.append(f"run {run_id}")
    name = report.meta.get("name")
    if name:
        parts.insert(0, str(name))
    return " · ".join(parts)


def _layout(fig: go.Figure, title: str, report: RiskReport, as_of: object, run_id: str | None,
            x: str, y: str) -> go.Figure:
    fig.update_layout(
        title={"text": f"{title}<br><sup>{_subtitle(report, as_of, run_id)}</sup>"},
        template="plotly_white",
        legend={"orientation": "h", "y": -0.2},
        margin={"t": 80},
    )
    fig.update_xaxes(title_text=x)
    fig.update_yaxes(title_text=y)
    return fig


def growth_figure(report: RiskReport, *, as_of: object = None, run_id: str | None = None) -> go.Figure:
    """Growth of 1 for the strategy and, when given, the benchmark."""
    fig = go.Figure(go.Scatter(x=report.equity.index, y=report.equity.to_numpy(), name="strategy", mode="lines"))
    if report.benchmark_equity is not None:
        fig.add_trace(go.Scatter(x=report.benchmark_equity.index, y=report.benchmark_equity.to_numpy(),
                                 name="benchmark", mode="lines", line={"dash": "dash"}))
    return _layout(fig, "Equity vs benchmark", report, as_of, run_id, "date", "growth of 1")


def drawdown_figure(report: RiskReport, *, as_of: object = None, run_id: str | None = None) -> go.Figure:
    """Underwater curve in percent below the running peak, with the maximum drawdown marked."""
    dd = report.drawdown * 100
    fig = go.Figure(go.Scatter(x=dd.index, y=dd.to_numpy(), name="drawdown", mode="lines", fill="tozeroy",
                               line={"color": "firebrick"}))
    if len(dd):
        worst = dd.idxmin()
        fig.add_trace(go.Scatter(x=[worst], y=[dd.min()], mode="markers+text", name="max. drawdown",
                                 text=[f"{dd.min():.1f}%"], textposition="bottom center"))
    return _layout(fig, "Drawdown (underwater)", report, as_of, run_id, "date", "drawdown [%]")


def monthly_returns_figure(report: RiskReport, *, as_of: object = None, run_id: str | None = None) -> go.Figure:
    """Heatmap of compounded monthly returns (year x month), annotated in percent."""
    fig = go.Figure()
    table = report.monthly
    if table is not None and not table.empty:
        z = table.to_numpy() * 100
        text = np.where(np.isnan(z), "", np.char.mod("%.1f", np.nan_to_num(z)))
        bound = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
        fig.add_trace(go.Heatmap(
            z=z, x=_MONTHS, y=[str(y) for y in table.index], text=text, texttemplate="%{text}",
            colorscale="RdYlGn", zmid=0, zmin=-bound, zmax=bound, colorbar={"title": {"text": "return [%]"}},
            hovertemplate="%{y} %{x}: %{z:.2f}%<extra></extra>",
        ))
        fig.update_yaxes(autorange="reversed", type="category")
    else:
        fig.add_annotation(text="monthly table needs a DatetimeIndex", showarrow=False)
    return _layout(fig, "Monthly returns [%]", report, as_of, run_id, "month", "year")


def rolling_figure(report: RiskReport, *, as_of: object = None, run_id: str | None = None) -> go.Figure:
    """Rolling annualised Sharpe ratio (top) and volatility (bottom)."""
    w = report.rolling_window
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=(f"Sharpe ratio ({w} bars)", f"volatility ({w} bars)"))
    roll = report.rolling
    fig.add_trace(go.Scatter(x=roll.index, y=roll["sharpe"].to_numpy(), name="rolling Sharpe", mode="lines"), 1, 1)
    fig.add_trace(go.Scatter(x=roll.index, y=roll["volatility"].to_numpy() * 100, name="rolling volatility",
                             mode="lines"), 2, 1)
    _layout(fig, "Rolling Sharpe ratio and volatility", report, as_of, run_id, "date", "")
    fig.update_xaxes(title_text="", row=1, col=1)
    fig.update_yaxes(title_text="Sharpe ratio (ann.)", row=1, col=1)
    fig.update_yaxes(title_text="volatility (ann.) [%]", row=2, col=1)
    return fig


def distribution_figure(report: RiskReport, *, as_of: object = None, run_id: str | None = None) -> go.Figure:
    """Histogram of per-bar returns with VaR 95% and 99% lines for each method (named in the legend)."""
    r = (report.returns * 100).to_numpy()
    fig = go.Figure()
    top = 1.0
    if len(r):
        counts, edges = np.histogram(r, bins=min(100, max(10, len(r) // 10)))
        top = float(counts.max()) * 1.05
        fig.add_trace(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, width=np.diff(edges), name="returns",
                             marker={"color": "steelblue"}, opacity=0.75))
    for method, row in report.var.iterrows():
        for level, color in (("95%", "darkorange"), ("99%", "firebrick")):
            value = row[f"VaR {level}"]
            if np.isfinite(value):
                fig.add_trace(go.Scatter(
                    x=[value * 100, value * 100], y=[0, top], mode="lines",
                    name=f"VaR {level} {method.replace('_', '-')}: {value * 100:.2f}%",
                    line={"dash": _VAR_STYLES[method], "color": color},
                ))
    _layout(fig, "Return distribution with VaR", report, as_of, run_id, "return per bar [%]", "count")
    fig.update_layout(bargap=0, legend={"orientation": "v", "y": 1, "x": 1.02})
    return fig


def tearsheet_figures(report: RiskReport, *, as_of: object = None, run_id: str | None = None) -> dict[str, go.Figure]:
    """All tear-sheet figures of a report, keyed ``equity``, ``drawdown``, ``monthly_returns``,
    ``rolling`` and ``distribution``."""
    options: dict[str, Any] = {"as_of": as_of, "run_id": run_id}
    return {
        "equity": growth_figure(report, **options),
        "drawdown": drawdown_figure(report, **options),
        "monthly_returns": monthly_returns_figure(report, **options),
        "rolling": rolling_figure(report, **options),
        "distribution": distribution_figure(report, **options),
    }

