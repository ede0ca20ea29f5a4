"""Market overview: universe prices, returns, volatility, correlations and data freshness.

Reads the run outputs ``prices`` (wide close matrix) and ``data_report`` (one row per symbol).
"""

from __future__ import annotations

import os

import ipywidgets as widgets
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from research.data.asof import AsOf
from research.data.calendars import calendar_of
from research.data.freshness import bars_behind, frame_interval, is_stale, symbol_calendar
from research.timeutil import on_clock_of
from research.viz.panels.headline import headline_panel
from research.viz.panels.layout import (
    dropdown,
    figure_output,
    line_xy,
    load_run,
    naive_index,
    note,
    page,
    require,
    run_interval,
    section,
    show_figure,
    stamp,
    symbol_periods_per_year,
    table_html,
    weekly_note,
)
from research.viz.panels.news import news_panel
from research.viz.panels.viewer_safe import on_change
from research.workflow.results import PublishedRun

__all__ = [
    "market_overview", "prices_panel", "returns_panel", "volatility_panel", "correlation_panel",
    "freshness_panel", "naive_index", "trailing_returns",
]

_PERIODS = {"1 day": None, "1 week": 7, "1 month": 30, "3 months": 91, "1 year": 365, "all": 0}


def _prices(run: PublishedRun) -> pd.DataFrame:
    require(run, "prices")
    prices = run.table("prices").sort_index()
    if not isinstance(prices.index, pd.DatetimeIndex):
        prices.index = pd.to_datetime(prices.index, utc=True)
    return prices.astype("float64")


#: Price views: series of different ages are compared from a common start or on a log scale.
PRICE_SCALES = ["rebased to 100 from a common start", "rebased to 100, log scale", "price", "log price"]


def _price_figure(prices: pd.DataFrame, scale: str, run: PublishedRun) -> go.Figure:
    fig, weekly, left_out = go.Figure(), False, []
    firsts = [prices[c].first_valid_index() for c in prices if prices[c].notna().any()]
    start = max(firsts) if scale == PRICE_SCALES[0] and firsts else None
    for symbol in prices:
        s = prices[symbol].dropna()
        if start is not None:
            s = s[s.index >= start]
        if s.empty:
            left_out.append(str(symbol))
            continue
        x, y, thinned = line_xy(s / s.iloc[0] * 100 if scale.startswith("rebased") else s)
        weekly |= thinned
        fig.add_trace(go.Scatter(x=x, y=y, name=str(symbol), mode="lines"))
    since = f" since {start.date()}" if start is not None else ""
    gone = f" · no data since then: {', '.join(left_out)}" if left_out else ""
    fig.update_layout(title=f"Universe prices ({scale}{since}){weekly_note(weekly)}{gone}",
                      yaxis_type="log" if "log" in scale else "linear",
                      hovermode="x unified", legend_title_text="symbol")
    return stamp(fig, run)


def prices_panel(run: PublishedRun) -> widgets.Widget:
    """Close prices of the universe: rebased to 100 from the first date every symbol has a price
    (the default), rebased on a log scale (each from its own first bar), raw or log prices."""
    prices = _prices(run)
    scale = dropdown(PRICE_SCALES, description="Scale", dom_class="wb-prices-scale", width="380px")
    out = figure_output(_price_figure(prices, scale.value, run), dom_class="wb-prices-fig", height=420)
    on_change(scale, lambda change: show_figure(out, _price_figure(prices, change["new"], run)), names="value")
    return section("Prices", scale, out, dom_class="wb-prices")


def trailing_returns(prices: pd.DataFrame, *, as_of: object = None, stale_bars: int = 3) -> pd.DataFrame:
    """Per symbol: returns over the last bar and over calendar windows that all end at ``as_of`` [%].

    Every symbol's windows end at the same time (``as_of``, default the latest bar of any
    symbol), so the figures compare like with like. A symbol whose last bar is more than
    ``stale_bars`` sessions of its calendar before that end is marked ``stale`` and its returns
    are left empty (they would describe another period).
    """
    interval = frame_interval(prices)
    when = AsOf.parse(as_of if as_of is not None else prices.index.max(), interval=interval)
    end = on_clock_of(when.end, prices.index)
    rows = []
    for symbol in prices:
        s = prices[symbol].dropna()
        s = s[s.index <= end]
        if len(s) < 2:
            continue
        last_ts, last = s.index[-1], float(s.iloc[-1])
        stale = is_stale(symbol_calendar(prices, str(symbol)), interval, last_ts, when, stale_bars=stale_bars)
        row: dict[str, object] = {"symbol": symbol, "last close": last, "last bar": last_ts.date(), "stale": stale}
        for label, days in _PERIODS.items():
            if days is None:
                base = float(s.iloc[-2])
            elif days == 0:
                base = float(s.iloc[0])
            else:
                past = s[: end - pd.Timedelta(days=days)]
                base = float(past.iloc[-1]) if len(past) else np.nan
            row[f"{label} [%]"] = np.nan if stale else (last / base - 1) * 100
        rows.append(row)
    return pd.DataFrame(rows)


def _returns_figure(table: pd.DataFrame, period: str, run: PublishedRun) -> go.Figure:
    col = f"{period} [%]"
    shown = table[table[col].notna()]
    values = shown[col].to_numpy()
    colors = np.where(values >= 0, "#2f9e66", "#d64545")
    fig = go.Figure(go.Bar(x=shown["symbol"], y=values, marker_color=colors,
                           text=[f"{v:+.1f}%" for v in values], textposition="outside"))
    fig.update_layout(title=f"Return over {period} to {run.as_of or 'the last bar'} [%]", yaxis_title="%")
    return stamp(fig, run)


def returns_panel(run: PublishedRun) -> widgets.Widget:
    """Trailing returns per symbol over windows ending at the run's as-of date: a table and a bar chart."""
    table = trailing_returns(_prices(run), as_of=run.as_of)
    period = dropdown(list(_PERIODS), value="1 month", description="Window", dom_class="wb-returns-period")
    out = figure_output(_returns_figure(table, period.value, run), dom_class="wb-returns-fig", height=340)
    on_change(period, lambda change: show_figure(out, _returns_figure(table, change["new"], run)), names="value")
    formats = {c: "+.2f" for c in table.columns if c.endswith("[%]")} | {"last close": ",.2f"}
    children: list[widgets.Widget] = [table_html(table, dom_class="wb-returns-table", formats=formats)]
    stale = [str(s) for s in table.loc[table["stale"], "symbol"]] if len(table) else []
    if stale:
        children.append(note(f"{', '.join(stale)}: data ends before {run.as_of} (stale), so no return is "
                             "shown; every window ends at the as-of date.", dom_class="wb-returns-stale"))
    return section("Returns", *children, period, out, dom_class="wb-returns")


def _volatility_figure(prices: pd.DataFrame, window: int, run: PublishedRun) -> go.Figure:
    fig, weekly = go.Figure(), False
    for symbol in prices:
        r = prices[symbol].dropna().pct_change().dropna()
        x, y, thinned = line_xy(r.rolling(window).std() * np.sqrt(symbol_periods_per_year(symbol, run_interval(run))) * 100)
        weekly |= thinned
        fig.add_trace(go.Scatter(x=x, y=y, name=str(symbol), mode="lines"))
    fig.update_layout(title=f"Rolling volatility, {window} bars (annualised) [%]{weekly_note(weekly)}", yaxis_title="%",
                      hovermode="x unified")
    return stamp(fig, run)


def volatility_panel(run: PublishedRun) -> widgets.Widget:
    """Rolling annualised volatility per symbol (252 periods a year for equities, 365 for crypto)."""
    prices = _prices(run)
    window = dropdown([21, 63, 126, 252], value=63, description="Window (bars)", dom_class="wb-vol-window")
    out = figure_output(_volatility_figure(prices, window.value, run), dom_class="wb-vol-fig", height=360)
    on_change(window, lambda change: show_figure(out, _volatility_figure(prices, change["new"], run)), names="value")
    return section("Volatility", window, out, dom_class="wb-volatility")


def _correlation_figure(prices: pd.DataFrame, lookback: str, run: PublishedRun) -> go.Figure:
    returns = pd.DataFrame({s: prices[s].dropna().pct_change() for s in prices})
    if lookback != "all":
        days = int(lookback.split()[0])
        returns = returns[returns.index > returns.index.max() - pd.Timedelta(days=days)]
    corr = returns.corr(min_periods=10)
    labels = [str(c) for c in corr.columns]
    values = corr.to_numpy()
    # a pair with fewer than 10 shared bars has no correlation: its cell is left blank, not "nan"
    text = [[f"{v:.2f}" if np.isfinite(v) else "" for v in row] for row in values]
    hover = [[f"{a} / {b}: {v:.2f}" if np.isfinite(v) else f"{a} / {b}: too few shared bars"
              for b, v in zip(labels, row, strict=True)] for a, row in zip(labels, values, strict=True)]
    fig = go.Figure(go.Heatmap(z=values, x=labels, y=labels, zmin=-1, zmax=1, colorscale="RdBu",
                               reversescale=True, text=text, texttemplate="%{text}", customdata=hover,
                               hovertemplate="%{customdata}<extra></extra>", colorbar={"tickformat": ".1f"}))
    fig.update_layout(title=f"Correlation of returns ({lookback})", yaxis_autorange="reversed")
    return stamp(fig, run)


def correlation_panel(run: PublishedRun) -> widgets.Widget:
    """Correlation heatmap of returns over a chosen lookback (bars shared by each pair)."""
    prices = _prices(run)
    lookback = dropdown(["90 days", "365 days", "all"], value="365 days", description="Lookback",
                        dom_class="wb-corr-lookback")
    out = figure_output(_correlation_figure(prices, lookback.value, run), dom_class="wb-corr-fig", height=420)
    on_change(lookback, lambda change: show_figure(out, _correlation_figure(prices, change["new"], run)), names="value")
    return section("Correlation", lookback, out, dom_class="wb-correlation")


def freshness_table(report: pd.DataFrame, *, as_of: str | None, stale_bars: int = 3) -> pd.DataFrame:
    """The data report with each symbol's age at the run's as-of time.

    ``stale`` is true when the stored copy was served because its source failed (the report's
    own flag) or when more than ``stale_bars`` sessions of the symbol's calendar passed between
    its last bar and the as-of time (``sessions behind``: bars of its interval), the rule of
    :mod:`research.data.freshness` that the signals and the paper book follow.
    """
    table = report.copy().reset_index(drop=True)
    intervals = table["interval"].fillna("1d").astype(str) if "interval" in table else pd.Series("1d", index=table.index)
    ref = AsOf.parse(as_of, interval=str(intervals.iloc[0]) if len(table) else "1d") if as_of else AsOf.now()
    if "last" in table:
        last = pd.to_datetime(table["last"], utc=True)
        table["age [days]"] = ((ref.end - last).dt.total_seconds() / 86400).round(1)
        if "symbol" in table:
            behind = pd.Series([bars_behind(calendar_of(str(sym)), iv, t, ref) if pd.notna(t) else np.nan
                                for sym, iv, t in zip(table["symbol"], intervals, last, strict=True)],
                               index=table.index)
            table["sessions behind"] = behind.astype("Int64")
            served_stale = table["stale"].fillna(False).astype(bool) if "stale" in table else False
            table["stale"] = served_stale | (behind > stale_bars)
    keep = [c for c in ("symbol", "source", "synthetic", "interval", "rows", "first", "last", "age [days]",
                        "sessions behind", "stale",
                        "fetched_at", "quarantined", "flagged", "gaps") if c in table]
    for col in ("first", "last"):
        if col in table:
            table[col] = pd.to_datetime(table[col], utc=True).dt.strftime("%Y-%m-%d")
    return table[keep]


def freshness_panel(run: PublishedRun) -> widgets.Widget:
    """Per symbol: source, rows, first and last bar, age at the as-of time, quarantined rows."""
    require(run, "data_report")
    table = freshness_table(run.table("data_report"), as_of=run.as_of)
    return section("Data freshness", table_html(table, dom_class="wb-freshness-table"), dom_class="wb-freshness")


def market_overview(run: PublishedRun | None = None, *, pipeline: str = "daily",
                    runs_dir: str | os.PathLike | None = None) -> widgets.Widget:
    """The market overview page of the latest published run (or of ``run``).

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
    panels = [("Headline", headline_panel), ("Prices", prices_panel), ("Returns", returns_panel), ("Volatility", volatility_panel),
              ("Correlation", correlation_panel), ("Data freshness", freshness_panel)]
    if run is not None and run.has("news"):  # runs of pipelines that read the news
        panels.append(("News", news_panel))
    return page("Market overview", panels, run=run, pipeline=pipeline, runs_dir=runs_dir, dom_id="market")
