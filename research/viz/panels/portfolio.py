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

from research.risk.metrics import equal_weight_returns
from research.risk.report import rolling_metrics
from research.viz.panels.headline import headline_panel
from research.viz.panels.labels import grouped_metrics
from research.viz.panels.layout import (
    dropdown,
    figure_output,
    line_xy,
    load_run,
    page,
    require,
    run_interval,
    section,
    set_table,
    show_figure,
    stamp,
    symbol_periods_per_year,
    table_html,
    table_row,
    weekly_note,
)
from research.viz.panels.viewer_safe import on_change
from research.workflow.results import PublishedRun

__all__ = ["portfolio_risk", "var_panel", "drawdown_panel", "exposure_panel", "rolling_panel",
           "flatten_risk", "var_table", "headline", "portfolio_curves", "drawdown_episodes", "risk_summary"]

_VAR_LEAF = re.compile(r"^(?P<kind>C?VaR)\s*(?P<level>\d+(?:\.\d+)?)\s*%\s*(?:\((?P<method>[^)]*)\))?\s*(?P<unit>\[%\])?$",
                       re.IGNORECASE)
_METHODS = {"hist.": "historical", "historical": "historical", "gauss.": "gaussian", "gaussian": "gaussian",
            "c-f": "cornish-fisher", "cornish_fisher": "cornish-fisher", "cornish-fisher": "cornish-fisher"}
#: sections of the risk document that describe the portfolio itself
_PORTFOLIO = {"summary", "portfolio", "var", "risk", "book"}
_HEADLINE = ("Max. Drawdown [%]", "Sharpe Ratio", "Volatility (Ann.) [%]", "Return (Ann.) [%]")


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


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not np.isnan(float(value))


def var_table(doc: dict) -> pd.DataFrame:
    """VaR and CVaR of the risk document in percent: section, method, level, VaR, CVaR.

    Reads keys such as ``"VaR 95% (hist.) [%]"`` (percent) and ``"var / historical / VaR 95%"``
    (decimal, converted to percent); the percent spelling wins when both are recorded. The
    portfolio's own entries (top level or sections ``summary``, ``var``...) form the section
    ``"portfolio"``; others keep their path (``"per_symbol / SPX"``). ``nan_reasons`` are skipped.
    """
    found: dict[tuple[str, str, str], dict[str, tuple[bool, float]]] = {}
    for key, value in flatten_risk(doc).items():
        *path, leaf = key.split(" / ")
        m = _VAR_LEAF.match(leaf)
        if not m or not _number(value) or any("nan_reason" in p for p in path):
            continue
        method = m["method"]
        if method is None and path:
            method, path = path[-1], path[:-1]
        method = (method or "historical").strip()
        method = _METHODS.get(method.lower(), method)
        percent = m["unit"] is not None
        section = " / ".join(p for p in path if p.lower() not in _PORTFOLIO) or "portfolio"
        entry = found.setdefault((section, method, f"{m['level']}%"), {})
        kind = "CVaR" if m["kind"].upper() == "CVAR" else "VaR"
        if kind not in entry or (percent and not entry[kind][0]):
            entry[kind] = (percent, float(value) if percent else float(value) * 100)
    rows = [{"section": sec, "method": meth, "level": lvl,
             "VaR": v["VaR"][1] if "VaR" in v else np.nan, "CVaR": v["CVaR"][1] if "CVaR" in v else np.nan}
            for (sec, meth, lvl), v in found.items()]
    frame = pd.DataFrame(rows, columns=["section", "method", "level", "VaR", "CVaR"])
    return frame.sort_values(["section", "method", "level"]).reset_index(drop=True)


def headline(doc: dict) -> dict[str, float]:
    """The portfolio's drawdown, Sharpe, volatility and return from the risk document."""
    out: dict[str, float] = {}
    for key, value in flatten_risk(doc).items():
        *path, leaf = key.split(" / ")
        if leaf in _HEADLINE and _number(value) and all(p.lower() in _PORTFOLIO for p in path):
            out.setdefault(leaf, float(value))
    return out


def risk_values(doc: dict) -> dict[str, object]:
    """The portfolio's metrics of the risk document under the names of
    :data:`research.viz.panels.labels.METRIC_GROUPS` (``"Sharpe Ratio"``, ``"Current Drawdown [%]"``...).

    Read from the portfolio's own entries (top level, ``summary``...); fractions recorded
    elsewhere (``drawdown / current``) are converted to percent; the benchmark's name and the
    period (``start``, ``end``) come from their own keys.
    """
    flat = flatten_risk(doc)
    out: dict[str, object] = {}
    for key, value in flat.items():
        *path, leaf = key.split(" / ")
        if all(p.lower() in _PORTFOLIO for p in path):
            out.setdefault(leaf, value)
    for key, name in (("strategy", "Strategy"), ("book", "Book"), ("start", "Start"), ("end", "End"),
                      ("benchmark / name", "Benchmark")):
        if flat.get(key) not in (None, ""):
            out.setdefault(name, flat[key])
    for key, name in (("drawdown / current", "Current Drawdown [%]"), ("drawdown / max", "Max. Drawdown [%]")):
        if _number(flat.get(key)) and not _number(out.get(name)):
            out[name] = float(flat[key]) * 100
    if _number(flat.get("benchmark / return_ann_pct")) and not _number(out.get("Benchmark Return (Ann.) [%]")):
        out["Benchmark Return (Ann.) [%]"] = float(flat["benchmark / return_ann_pct"])
    return out


def risk_summary(doc: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The risk document as a short table (grouped: portfolio, returns, risk, drawdown, benchmark,
    trading; VaR and CVaR are in the VaR table) and every entry of it as ``key, value`` rows (the
    table's CSV download: nothing dropped from the page is lost)."""
    values = risk_values(doc)
    shown = grouped_metrics(values, skip={k for k in values if _VAR_LEAF.match(k)})
    flat = flatten_risk(doc)
    raw = pd.DataFrame({"key": list(flat), "value": [v if v is None or isinstance(v, (int, float, str)) else str(v)
                                                     for v in flat.values()]})
    return shown, raw


def _equity(run: PublishedRun) -> pd.DataFrame:
    require(run, "equity")
    equity = run.table("equity").sort_index()
    if not isinstance(equity.index, pd.DatetimeIndex):
        equity.index = pd.to_datetime(equity.index, utc=True)
    return equity


def portfolio_curves(run: PublishedRun) -> tuple[dict[str, pd.Series], str]:
    """Equity curves to choose from, and the default one: the portfolio.

    The portfolio is a recorded ``portfolio|...`` curve, else the equal-weight, daily rebalanced
    book over the per-symbol curves of the risk document's ``strategy`` (as the risk report
    builds it), else the first recorded curve.
    """
    equity = _equity(run)
    curves = {str(c): equity[c].dropna() for c in equity.columns}
    for name in curves:
        if name.split("|")[0].lower() in {"portfolio", "total", "book"}:
            return curves, name
    strategy = run.document("risk").get("strategy") if run.has("risk") else None
    members = [c for c in equity.columns if strategy and str(c).startswith(f"{strategy}|") and str(c).count("|") == 1]
    if len(members) > 1:
        book = equal_weight_returns(equity[members]).dropna()
        label = f"book|{strategy} (equal weight)"
        return {label: (1 + book).cumprod(), **curves}, label
    return curves, next(iter(curves))


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
    fig.update_layout(title=f"Distribution of portfolio returns per bar [%] with the recorded VaR/CVaR ({method})",
                      xaxis_title="return per bar [%]", yaxis_title="bars", showlegend=False)
    return stamp(fig, run)


def _cards(table: pd.DataFrame, numbers: dict[str, float], method: str) -> str:
    cards = []
    for _, row in table[(table["section"] == "portfolio") & (table["method"] == method)].iterrows():
        for kind in ("VaR", "CVaR"):
            if not pd.isna(row[kind]):
                cards.append((f"{kind} {row['level']} ({row['method']}) [%]", f"{float(row[kind]):.2f}"))
    cards += [(key, f"{value:.2f}") for key, value in numbers.items()]
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
    curves, default = portfolio_curves(run)
    returns = curves[default].pct_change().dropna()
    methods = sorted(dict.fromkeys(table["method"]), key=lambda m: (m != "historical", m))
    method = dropdown(methods, description="VaR method", dom_class="wb-var-method")
    cards = widgets.HTML(_cards(table, headline(doc), method.value))
    cards.add_class("wb-var-cards")
    out = figure_output(_var_figure(returns, table, method.value, run), dom_class="wb-var-fig", height=360)

    def refresh(change: dict) -> None:
        cards.value = _cards(table, headline(doc), change["new"])
        show_figure(out, _var_figure(returns, table, change["new"], run))

    on_change(method, refresh, names="value")
    summary, raw = risk_summary(doc)
    tables = table_row(
        table_html(table, dom_class="wb-var-table", formats={"VaR": ".2f", "CVaR": ".2f"},
                   labels={"VaR": "VaR [%]", "CVaR": "CVaR [%]"}),
        table_html(summary, dom_class="wb-risk-summary-table", max_rows=60, labels={"group": ""}, csv=raw),
    )
    return section("Value at risk", method, cards, out, tables, dom_class="wb-var")


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


def _drawdown_figure(series: pd.Series, name: str, run: PublishedRun) -> go.Figure:
    x, y, weekly = line_xy((series / series.cummax() - 1) * 100, how="min")
    fig = go.Figure(go.Scatter(x=x, y=y, fill="tozeroy", mode="lines", line={"color": "#ba2525"}, name="drawdown"))
    fig.update_layout(title=f"Drawdown [%]: {name}{weekly_note(weekly)}", yaxis_title="%", hovermode="x unified")
    return stamp(fig, run)


def drawdown_panel(run: PublishedRun) -> widgets.Widget:
    """Underwater curve and the deepest drawdowns of the portfolio or any recorded curve."""
    curves, default = portfolio_curves(run)
    curve = dropdown(list(curves), value=default, description="Curve", dom_class="wb-dd-curve", width="420px")
    out = figure_output(_drawdown_figure(curves[default], default, run), dom_class="wb-dd-fig", height=300)
    table = table_html(drawdown_episodes(curves[default]), dom_class="wb-dd-table", formats={"depth [%]": ".2f"})

    def refresh(change: dict) -> None:
        show_figure(out, _drawdown_figure(curves[change["new"]], change["new"], run))
        set_table(table, drawdown_episodes(curves[change["new"]]), formats={"depth [%]": ".2f"})

    on_change(curve, refresh, names="value")
    return section("Drawdowns", curve, out, table, dom_class="wb-drawdowns")


def exposure_panel(run: PublishedRun) -> widgets.Widget:
    """Weights per symbol over time and now (from ``positions``, else today's target positions)."""
    if run.has("positions"):
        pos = run.table("positions").sort_index().fillna(0.0)
        fig, weekly = go.Figure(), False
        for symbol in pos.columns:
            x, y, weekly = line_xy(pos[symbol] * 100)
            fig.add_trace(go.Scatter(x=x, y=y, name=str(symbol), mode="lines", stackgroup="weights"))
        fig.update_layout(title=f"Exposure by symbol [% of equity]{weekly_note(weekly)}", yaxis_title="%",
                          hovermode="x unified")
        last = pos.iloc[-1]
    else:
        require(run, "signals")
        signals = run.table("signals")
        last = signals.groupby("symbol")["target_position"].sum()
        fig = go.Figure(go.Bar(x=last.index.astype(str), y=(last * 100).to_numpy(), marker_color="#2680c2"))
        fig.update_layout(title="Target exposure by symbol today [% of equity]", yaxis_title="%")
    now = pd.DataFrame({"symbol": last.index.astype(str), "weight [%]": (last * 100).to_numpy()})
    if run.has("signals"):  # a symbol whose data stopped is marked (and holds no target position)
        sig = run.table("signals")
        if {"symbol", "stale"} <= set(sig.columns):
            stale = sig.groupby(sig["symbol"].astype(str))["stale"].any()
            now["stale"] = now["symbol"].map(stale).fillna(False).astype(bool)
    totals = pd.DataFrame({"symbol": ["gross", "net"], "weight [%]": [last.abs().sum() * 100, last.sum() * 100]})
    return section("Exposures", figure_output(stamp(fig, run), dom_class="wb-exposure-fig", height=320),
                   table_html(pd.concat([now, totals], ignore_index=True), dom_class="wb-exposure-table",
                              formats={"weight [%]": ".1f"}), dom_class="wb-exposures")


def _rolling_figure(series: pd.Series, name: str, window: int, run: PublishedRun) -> go.Figure:
    r = series.pct_change().dropna()
    symbol = name.split("|")[1] if "|" in name else name
    ppy = symbol_periods_per_year(symbol, run_interval(run))
    rolling = rolling_metrics(r, window=window, periods_per_year=ppy)
    sharpe, vol = rolling["sharpe"].dropna(), (rolling["volatility"] * 100).dropna()
    (xs, ys, weekly), (xv, yv, _) = line_xy(sharpe), line_xy(vol)
    fig = go.Figure([
        go.Scatter(x=xs, y=ys, name="Sharpe", line={"color": "#2680c2"}),
        go.Scatter(x=xv, y=yv, name="volatility [%]", yaxis="y2", line={"color": "#cb6e17"}),
    ])
    fig.update_layout(title=f"Rolling Sharpe and volatility, {window} bars ({ppy:g}/year): {name}{weekly_note(weekly)}",
                      yaxis={"title": "Sharpe"}, yaxis2={"title": "volatility (ann.) [%]", "overlaying": "y",
                                                         "side": "right"}, hovermode="x unified")
    return stamp(fig, run)


def rolling_panel(run: PublishedRun) -> widgets.Widget:
    """Rolling annualised Sharpe ratio and volatility of a chosen curve over a chosen window."""
    curves, default = portfolio_curves(run)
    curve = dropdown(list(curves), value=default, description="Curve", dom_class="wb-roll-curve", width="420px")
    window = dropdown([21, 63, 126, 252], value=63, description="Window (bars)", dom_class="wb-roll-window")
    out = figure_output(_rolling_figure(curves[default], default, window.value, run), dom_class="wb-roll-fig",
                        height=340)

    def refresh(*_: object) -> None:
        show_figure(out, _rolling_figure(curves[curve.value], curve.value, window.value, run))

    on_change(curve, refresh, names="value")
    on_change(window, refresh, names="value")
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
    panels = [("Headline", headline_panel), ("Value at risk", var_panel), ("Drawdowns", drawdown_panel), ("Exposures", exposure_panel),
              ("Rolling Sharpe and volatility", rolling_panel)]
    return page("Portfolio risk", panels, run=run, pipeline=pipeline, runs_dir=runs_dir, dom_id="portfolio")
