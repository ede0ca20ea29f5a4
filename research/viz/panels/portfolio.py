"""Portfolio risk: VaR and CVaR, drawdowns, exposures, rolling Sharpe and volatility.

Reads the run outputs ``risk`` (the portfolio risk summary: a flat or sectioned JSON of
unit-suffixed metrics such as ``"VaR 95% (hist.) [%]"``), ``equity`` (curves; the portfolio is
the ``portfolio|...`` column when there is one), ``positions`` (weights per symbol over time;
optional) and ``signals`` (today's target positions, used when no positions were recorded).
"""

from __future__ import annotations

import html
import os
import re

import ipywidgets as widgets
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from research.viz.panels.layout import (
    dropdown,
    figure_output,
    load_run,
    page,
    periods_per_year,
    require,
    section,
    set_table,
    show_figure,
    stamp,
    table_html,
)
from research.viz.panels.market import naive_index
from research.workflow.results import PublishedRun

__all__ = ["portfolio_risk", "var_panel", "drawdown_panel", "exposure_panel", "rolling_panel",
           "flatten_risk", "var_table", "drawdown_episodes"]

_VAR_KEY = re.compile(r"^(?:(?P<section>.+?) / )?(?P<kind>C?VaR)\s*(?P<level>\d+(?:\.\d+)?)\s*%?\s*(?:\((?P<method>[^)]*)\))?",
                      re.IGNORECASE)


def flatten_risk(doc: dict, prefix: str = "") -> dict[str, object]:
    """Nested sections of the risk document as ``"section / key"`` scalars."""
    out: dict[str, object] = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten_risk(value, prefix=f"{name} / "))
        elif not isinstance(value, list):
            out[name] = value
    return out


def var_table(doc: dict) -> pd.DataFrame:
    """VaR and CVaR entries of the risk document: section, method, level, VaR, CVaR (as recorded)."""
    rows: dict[tuple[str, str, str], dict[str, object]] = {}
    for key, value in flatten_risk(doc).items():
        m = _VAR_KEY.match(key)
        if not m or value is None:
            continue
        ident = (m["section"] or "portfolio", (m["method"] or "historical").strip(), f"{m['level']}%")
        rows.setdefault(ident, {})[m["kind"].upper()] = value
    frame = pd.DataFrame([{"section": s, "method": meth, "level": lvl, "VaR": v.get("VAR"), "CVaR": v.get("CVAR")}
                          for (s, meth, lvl), v in rows.items()])
    return frame.sort_values(["section", "method", "level"]).reset_index(drop=True) if len(frame) else frame


def _portfolio_column(equity: pd.DataFrame) -> str:
    for col in equity.columns:
        if str(col).split("|")[0].lower() in {"portfolio", "total"}:
            return col
    return equity.columns[0]


def _equity(run: PublishedRun) -> pd.DataFrame:
    require(run, "equity")
    return run.table("equity").sort_index()


def _var_figure(returns: pd.Series, table: pd.DataFrame, method: str, run: PublishedRun) -> go.Figure:
    pct = returns * 100
    fig = go.Figure(go.Histogram(x=pct.to_numpy(), nbinsx=60, name="returns", marker_color="#9aa5b1"))
    colors = {"VaR": "#cb6e17", "CVaR": "#ba2525"}
    for _, row in table[(table["method"] == method) & (table["section"] == "portfolio")].iterrows():
        for kind in ("VaR", "CVaR"):
            value = row[kind]
            if value is None or pd.isna(value):
                continue
            fig.add_vline(x=float(value), line_dash="dash" if row["level"].startswith("99") else "dot",
                          line_color=colors[kind], annotation_text=f"{kind} {row['level']}",
                          annotation_textangle=-90)
    fig.update_layout(title=f"Distribution of portfolio returns per bar [%] with VaR/CVaR ({method})",
                      xaxis_title="return per bar [%]", yaxis_title="bars", showlegend=False)
    return stamp(fig, run)


def _cards(table: pd.DataFrame, summary: dict[str, object]) -> str:
    cards = []
    portfolio = table[table["section"] == "portfolio"] if len(table) else table
    for _, row in portfolio.iterrows():
        for kind in ("VaR", "CVaR"):
            if row[kind] is not None and not pd.isna(row[kind]):
                cards.append((f"{kind} {row['level']} ({row['method']}) [%]", f"{float(row[kind]):.2f}"))
    for key in ("Max. Drawdown [%]", "Sharpe Ratio", "Volatility (Ann.) [%]", "Return (Ann.) [%]"):
        value = summary.get(key)
        if isinstance(value, (int, float)) and not pd.isna(value):
            cards.append((key, f"{value:.2f}"))
    body = "".join(f'<div class="wb-card"><div class="wb-card-value">{html.escape(v)}</div>'
                   f'<div class="wb-card-label">{html.escape(k)}</div></div>' for k, v in cards)
    return f'<div class="wb-cards">{body}</div>'


def var_panel(run: PublishedRun) -> widgets.Widget:
    """VaR and CVaR as recorded by the pipeline, over the distribution of portfolio returns."""
    require(run, "risk")
    doc = run.document("risk")
    table = var_table(doc)
    if table.empty:
        raise ValueError(f"the risk document of run {run.run_id} has no VaR/CVaR entries")
    equity = _equity(run)
    returns = equity[_portfolio_column(equity)].dropna().pct_change().dropna()
    cards = widgets.HTML(_cards(table, flatten_risk(doc)))
    cards.add_class("wb-var-cards")
    methods = list(dict.fromkeys(table["method"]))
    method = dropdown(methods, description="VaR method", dom_class="wb-var-method")
    out = figure_output(_var_figure(returns, table, method.value, run), dom_class="wb-var-fig", height=360)
    method.observe(lambda change: show_figure(out, _var_figure(returns, table, change["new"], run)), names="value")
    others = {k: v for k, v in flatten_risk(doc).items()
              if not _VAR_KEY.match(k) and v is not None and not (isinstance(v, float) and np.isnan(v))}
    summary = pd.DataFrame({"metric": list(others), "value": [
        f"{v:,.4g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else ("" if v is None else str(v))
        for v in others.values()]})
    tables = widgets.HBox([
        table_html(table, dom_class="wb-var-table", formats={"VaR": ".3f", "CVaR": ".3f"}),
        table_html(summary, dom_class="wb-risk-summary-table", max_rows=60),
    ], layout=widgets.Layout(gap="24px", align_items="flex-start"))
    return section("Value at risk", cards, method, out, tables, dom_class="wb-var")


def drawdown_episodes(equity: pd.Series, *, top: int = 5) -> pd.DataFrame:
    """The deepest drawdowns of a curve: peak, trough, recovery (empty if not yet), depth [%]."""
    under = equity / equity.cummax() - 1
    rows, peak, prev = [], None, None
    for ts, value in under.items():
        if value < 0 and peak is None:
            peak = prev if prev is not None else ts
        elif value >= 0 and peak is not None:
            seg = under[peak:ts]
            rows.append({"peak": peak, "trough": seg.idxmin(), "recovered": ts, "depth [%]": seg.min() * 100})
            peak = None
        prev = ts
    if peak is not None:
        seg = under[peak:]
        rows.append({"peak": peak, "trough": seg.idxmin(), "recovered": None, "depth [%]": seg.min() * 100})
    frame = pd.DataFrame(rows, columns=["peak", "trough", "recovered", "depth [%]"])
    frame = frame.sort_values("depth [%]").head(top)
    for col in ("peak", "trough", "recovered"):
        frame[col] = frame[col].map(lambda t: "" if t is None or pd.isna(t) else pd.Timestamp(t).strftime("%Y-%m-%d"))
    return frame.reset_index(drop=True)


def _drawdown_figure(equity: pd.DataFrame, column: str, run: PublishedRun) -> go.Figure:
    series = equity[column].dropna()
    under = (series / series.cummax() - 1) * 100
    fig = go.Figure(go.Scatter(x=naive_index(under.index), y=under.to_numpy(), fill="tozeroy", mode="lines",
                               line={"color": "#ba2525"}, name="drawdown"))
    fig.update_layout(title=f"Drawdown [%]: {column}", yaxis_title="%", hovermode="x unified")
    return stamp(fig, run)


def drawdown_panel(run: PublishedRun) -> widgets.Widget:
    """Underwater curve and the deepest drawdowns of the portfolio or any recorded curve."""
    equity = _equity(run)
    columns = [str(c) for c in equity.columns]
    curve = dropdown(columns, value=str(_portfolio_column(equity)), description="Curve",
                     dom_class="wb-dd-curve", width="420px")
    out = figure_output(_drawdown_figure(equity, curve.value, run), dom_class="wb-dd-fig", height=300)
    table = table_html(drawdown_episodes(equity[curve.value].dropna()), dom_class="wb-dd-table",
                       formats={"depth [%]": ".2f"})

    def refresh(change: dict) -> None:
        show_figure(out, _drawdown_figure(equity, change["new"], run))
        set_table(table, drawdown_episodes(equity[change["new"]].dropna()), formats={"depth [%]": ".2f"})

    curve.observe(refresh, names="value")
    return section("Drawdowns", curve, out, table, dom_class="wb-drawdowns")


def exposure_panel(run: PublishedRun) -> widgets.Widget:
    """Weights per symbol over time and now (from ``positions``, else today's target positions)."""
    if run.has("positions"):
        pos = run.table("positions").sort_index().fillna(0.0)
        fig = go.Figure()
        for symbol in pos.columns:
            fig.add_trace(go.Scatter(x=naive_index(pos.index), y=(pos[symbol] * 100).to_numpy(), name=str(symbol),
                                     mode="lines", stackgroup="weights"))
        fig.update_layout(title="Exposure by symbol [% of equity]", yaxis_title="%", hovermode="x unified")
        last = pos.iloc[-1]
    else:
        require(run, "signals")
        signals = run.table("signals")
        last = signals.groupby("symbol")["target_position"].sum()
        fig = go.Figure(go.Bar(x=last.index.astype(str), y=(last * 100).to_numpy(), marker_color="#2680c2"))
        fig.update_layout(title="Target exposure by symbol today [% of equity]", yaxis_title="%")
    now = pd.DataFrame({"symbol": last.index.astype(str), "weight [%]": (last * 100).to_numpy()})
    totals = pd.DataFrame({"symbol": ["gross", "net"], "weight [%]": [last.abs().sum() * 100, last.sum() * 100]})
    return section("Exposures", figure_output(stamp(fig, run), dom_class="wb-exposure-fig", height=320),
                   table_html(pd.concat([now, totals], ignore_index=True), dom_class="wb-exposure-table",
                              formats={"weight [%]": ".1f"}), dom_class="wb-exposures")


def _rolling_figure(equity: pd.DataFrame, column: str, window: int, run: PublishedRun) -> go.Figure:
    r = equity[column].dropna().pct_change().dropna()
    symbol = column.split("|")[1] if "|" in column else column
    ppy = periods_per_year(symbol)
    mean, std = r.rolling(window).mean(), r.rolling(window).std()
    sharpe = (mean / std.replace(0.0, np.nan) * np.sqrt(ppy)).dropna()
    vol = (std * np.sqrt(ppy) * 100).dropna()
    fig = go.Figure([
        go.Scatter(x=naive_index(sharpe.index), y=sharpe.to_numpy(), name="Sharpe", line={"color": "#2680c2"}),
        go.Scatter(x=naive_index(vol.index), y=vol.to_numpy(), name="volatility [%]", yaxis="y2",
                   line={"color": "#cb6e17"}),
    ])
    fig.update_layout(title=f"Rolling Sharpe and volatility, {window} bars ({ppy}/year): {column}",
                      yaxis={"title": "Sharpe"}, yaxis2={"title": "volatility (ann.) [%]", "overlaying": "y",
                                                         "side": "right"}, hovermode="x unified")
    return stamp(fig, run)


def rolling_panel(run: PublishedRun) -> widgets.Widget:
    """Rolling annualised Sharpe ratio and volatility of a chosen curve over a chosen window."""
    equity = _equity(run)
    curve = dropdown([str(c) for c in equity.columns], value=str(_portfolio_column(equity)),
                     description="Curve", dom_class="wb-roll-curve", width="420px")
    window = dropdown([21, 63, 126, 252], value=63, description="Window (bars)", dom_class="wb-roll-window")
    out = figure_output(_rolling_figure(equity, curve.value, window.value, run), dom_class="wb-roll-fig", height=340)

    def refresh(*_: object) -> None:
        show_figure(out, _rolling_figure(equity, curve.value, window.value, run))

    curve.observe(refresh, names="value")
    window.observe(refresh, names="value")
    return section("Rolling Sharpe and volatility", widgets.HBox([curve, window]), out, dom_class="wb-rolling")


def portfolio_risk(run: PublishedRun | None = None, *, pipeline: str = "daily",
                   runs_dir: str | os.PathLike | None = None) -> widgets.Widget:
    """The portfolio risk page of the latest published run (or of ``run``).

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
    panels = [("Value at risk", var_panel), ("Drawdowns", drawdown_panel), ("Exposures", exposure_panel),
              ("Rolling Sharpe and volatility", rolling_panel)]
    return page("Portfolio risk", panels, run=run, pipeline=pipeline, runs_dir=runs_dir, dom_id="portfolio")
