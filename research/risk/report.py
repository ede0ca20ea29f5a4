"""The risk report: every number a tear sheet shows, computed once and kept together.

:func:`risk_report` composes :mod:`research.risk.metrics` (and, for sweeps,
:mod:`research.risk.overfitting`) into a :class:`RiskReport`. Drawing lives in
:mod:`research.viz.risk`: ``tearsheet_figures(report)`` turns a report into plotly figures.
This module never imports the drawing layer, and a report holds numbers only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from research.risk import metrics as m
from research.risk.overfitting import (
    DeflatedSharpeResult,
    PBOResult,
    deflated_sharpe_ratio,
    probability_of_backtest_overfitting,
)

__all__ = ["RiskReport", "risk_report", "risk_document", "monthly_returns", "rolling_metrics"]

def monthly_returns(returns: pd.Series) -> pd.DataFrame | None:
    """Compounded return per calendar month: rows = year, columns = month 1..12 (NaN if no bar).

    Returns ``None`` when the index is not a ``DatetimeIndex``.
    """
    if not isinstance(returns.index, pd.DatetimeIndex) or returns.empty:
        return None
    r = returns.astype("float64").dropna()
    grouped = (1.0 + r).groupby([r.index.year, r.index.month]).prod() - 1.0
    table = grouped.unstack().reindex(columns=range(1, 13))
    table.index.name, table.columns.name = "year", "month"
    return table


def _periods(returns: pd.Series, override: float | None) -> float:
    """The explicit annualisation, else the calendar the returns carry, else 252 with a warning."""
    return m.annualisation(returns, override)


def rolling_metrics(returns: pd.Series, *, window: int, periods_per_year: float | None = None) -> pd.DataFrame:
    """Trailing ``window``-bar annualised Sharpe ratio and volatility (NaN until the window fills).

    ``periods_per_year`` left out is read from the returns (:func:`_periods`).
    """
    periods_per_year = _periods(returns, periods_per_year)
    r = returns.astype("float64")
    roll = r.rolling(window, min_periods=window)
    mean, sd = roll.mean(), roll.std(ddof=1)
    sharpe = (mean / sd.where(sd > 0)) * np.sqrt(periods_per_year)
    return pd.DataFrame({"sharpe": sharpe, "volatility": sd * np.sqrt(periods_per_year)})


@dataclass(frozen=True)
class RiskReport:
    """Everything a tear sheet shows, computed (no drawing).

    Attributes
    ----------
    returns : Series
        The strategy's per-bar returns (NaN bars dropped).
    summary : Series
        :func:`research.risk.metrics.summary` plus, for sweeps, ``'Deflated Sharpe Ratio'``
        and ``'PBO [%]'``; ``attrs["nan_reasons"]`` explains every NaN.
    equity, drawdown : Series
        Growth of 1 and the underwater curve (decimal, <= 0).
    benchmark, benchmark_equity : Series or None
        Benchmark returns aligned on ``returns`` and its growth of 1.
    monthly : DataFrame or None
        Year x month compounded returns (decimal).
    rolling : DataFrame
        Columns ``sharpe`` and ``volatility`` (annualised) over ``rolling_window`` bars.
    var : DataFrame
        VaR and CVaR (decimal returns): rows ``historical``, ``gaussian``, ``cornish_fisher``;
        columns ``VaR 95%``, ``CVaR 95%``, ``VaR 99%``, ``CVaR 99%``.
    periods_per_year, rolling_window : float, int
    trades, positions : optional inputs kept for drill-down
    deflated_sharpe, pbo : optional overfitting statistics (when trial returns were given)
    """

    returns: pd.Series
    summary: pd.Series
    equity: pd.Series
    drawdown: pd.Series
    rolling: pd.DataFrame
    var: pd.DataFrame
    periods_per_year: float
    rolling_window: int
    benchmark: pd.Series | None = None
    benchmark_equity: pd.Series | None = None
    monthly: pd.DataFrame | None = None
    trades: pd.DataFrame | None = None
    positions: pd.DataFrame | pd.Series | None = None
    deflated_sharpe: DeflatedSharpeResult | None = None
    pbo: PBOResult | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def _var_table(r: pd.Series) -> pd.DataFrame:
    rows = {}
    for method in m.VAR_METHODS:
        rows[method] = {
            f"{kind} {level:.0%}": fn(r, level=level, method=method)
            for level in (0.95, 0.99)
            for kind, fn in (("VaR", m.value_at_risk), ("CVaR", m.conditional_value_at_risk))
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def _overfitting(
    r: pd.Series, trial_returns: pd.DataFrame | None, n_splits: int, summary: pd.Series
) -> tuple[DeflatedSharpeResult | None, PBOResult | None, pd.Series]:
    if trial_returns is None:
        return None, None, summary
    trials = trial_returns.astype("float64").dropna()
    dsr = deflated_sharpe_ratio(r, trial_returns=trials)
    pbo = probability_of_backtest_overfitting(trials, n_splits=n_splits)
    extra = pd.Series({"Deflated Sharpe Ratio": dsr.dsr, "PBO [%]": pbo.pbo * 100, "# Trials": float(dsr.n_trials)})
    out = pd.concat([summary, extra])
    out.attrs = summary.attrs
    return dsr, pbo, out


def risk_report(
    returns: pd.Series,
    *,
    benchmark: pd.Series | None = None,
    periods_per_year: float | None = None,
    trades: pd.DataFrame | None = None,
    positions: pd.DataFrame | pd.Series | None = None,
    risk_free: float = 0.0,
    rolling_window: int | None = None,
    trial_returns: pd.DataFrame | None = None,
    n_splits: int = 16,
    meta: dict[str, Any] | None = None,
) -> RiskReport:
    """Compute a :class:`RiskReport` for one strategy's returns.

    Parameters
    ----------
    returns : Series
        Per-bar decimal returns (DatetimeIndex for the monthly table).
    benchmark : Series, optional
        Benchmark returns; aligned on ``returns``' index.
    periods_per_year : float, optional
        252 for equities, 365 for crypto; left out, the calendar the returns carry (see
        :func:`research.data.calendars.periods_per_year`), else 252.
    trades, positions : optional
        As in :func:`research.risk.metrics.summary`.
    risk_free : float
        Annual risk-free rate.
    rolling_window : int, optional
        Bars for the rolling Sharpe and volatility; default half a year of bars.
    trial_returns : DataFrame, optional
        Returns of every configuration a sweep tried (columns), to report the deflated Sharpe
        ratio and the probability of backtest overfitting of this (selected) strategy.
    n_splits : int
        CSCV blocks for the PBO.
    meta : dict, optional
        Free-form provenance (strategy, parameters, run id) kept on the report.

    Returns
    -------
    RiskReport
    """
    if not isinstance(returns, pd.Series):
        raise TypeError(f"returns must be a pandas Series of per-bar decimal returns, not {type(returns).__name__}")
    periods_per_year = _periods(returns, periods_per_year)
    r = returns.astype("float64").dropna()
    window = int(rolling_window or max(2, round(periods_per_year / 2)))
    summary = m.summary(r, benchmark=benchmark, periods_per_year=periods_per_year, trades=trades,
                        positions=positions, risk_free=risk_free)
    dsr, pbo, summary = _overfitting(r, trial_returns, n_splits, summary)
    return RiskReport(
        returns=r, summary=summary, **_curves(r, window=window, periods_per_year=periods_per_year),
        **_benchmark_curves(benchmark, r), trades=trades, positions=positions, deflated_sharpe=dsr, pbo=pbo,
        meta=dict(meta or {}),
    )


def _curves(r: pd.Series, *, window: int, periods_per_year: float) -> dict[str, Any]:
    """The report's series and tables of ``r``: equity, drawdown, rolling metrics, VaR, monthly returns."""
    return {
        "equity": m.equity_curve(r).rename("equity"),
        "drawdown": m.drawdown_series(r),
        "rolling": rolling_metrics(r, window=window, periods_per_year=periods_per_year),
        "var": _var_table(r),
        "periods_per_year": float(periods_per_year),
        "rolling_window": window,
        "monthly": monthly_returns(r),
    }


def _benchmark_curves(benchmark: pd.Series | None, r: pd.Series) -> dict[str, pd.Series | None]:
    """The benchmark's returns aligned on ``r`` and its equity curve (both ``None`` without one)."""
    if benchmark is None:
        return {"benchmark": None, "benchmark_equity": None}
    bench = benchmark.astype("float64").reindex(r.index)
    return {"benchmark": bench, "benchmark_equity": m.equity_curve(bench).rename("benchmark")}


#: The figures of each symbol's own report kept in :func:`risk_document`'s ``per_symbol``.
PER_SYMBOL_KEYS = ("Sharpe Ratio", "Max. Drawdown [%]", "Return (Ann.) [%]")
#: The headline figures of a book, and of its benchmark over the same bars (``risk_document["headline"]``).
HEADLINE_KEYS = ("Total Return [%]", "Return (Ann.) [%]", "Sharpe Ratio", "Max. Drawdown [%]")
BENCHMARK_NAME = "equal-weight buy and hold of the same symbols"


def headline_document(book: pd.Series, benchmark: pd.Series | None, *, periods_per_year: float,
                      subject: dict[str, Any]) -> dict[str, Any]:
    """The headline figures every page shows, computed once: the book's and its benchmark's.

    The benchmark is measured over exactly the book's bars (its first bar dropped when it has no
    return there), so the two columns compare the same period.

    Parameters
    ----------
    book : Series
        Per-bar decimal returns of the book.
    benchmark : Series, optional
        Per-bar returns of the benchmark (equal-weight buy and hold of the book's symbols).
    periods_per_year : float
        Bars per year of ``book``.
    subject : dict
        What the book is: ``strategy``, ``symbols``, ``book`` (its construction).

    Returns
    -------
    dict
        ``subject`` (with ``start``, ``end``, ``bars``), ``book`` and ``benchmark`` (each
        :data:`HEADLINE_KEYS` to a number or ``None``), ``benchmark_name``.
    """
    def figures(r: pd.Series) -> dict[str, float | None]:
        summary = m.summary(r, periods_per_year=periods_per_year)
        return {k: (None if pd.isna(summary.get(k)) else float(summary.get(k))) for k in HEADLINE_KEYS}

    bench = None
    if benchmark is not None:
        aligned = benchmark.reindex(book.index).dropna()
        bench = figures(aligned) if len(aligned) > 1 else None
    return {
        "subject": {**subject, "start": book.index.min(), "end": book.index.max(), "bars": int(len(book))},
        "book": figures(book), "benchmark": bench, "benchmark_name": BENCHMARK_NAME,
    }


def risk_document(
    book: pd.Series,
    *,
    benchmark: pd.Series | None = None,
    per_symbol: Mapping[str, pd.Series] | None = None,
    periods_per_year: float,
    meta: dict[str, Any] | None = None,
    subject: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The risk of a book as plain data (what the pipelines publish as ``risk``).

    Parameters
    ----------
    book : Series
        Per-bar decimal returns of the book.
    benchmark : Series, optional
        Benchmark returns, aligned on ``book``'s index.
    per_symbol : mapping of str to Series, optional
        Per-bar returns of each symbol's own book; each gets :data:`PER_SYMBOL_KEYS` of its report.
    periods_per_year : float
        Bars per year of ``book``.
    meta : dict, optional
        Provenance kept on the book's :class:`RiskReport`.
    subject : dict, optional
        What the book is (``strategy``, ``book``, ``symbols``) for :func:`headline_document`;
        default: ``meta``'s strategy and the names of ``per_symbol``.

    Returns
    -------
    dict
        ``periods_per_year``, ``start``, ``end``, ``summary``, ``nan_reasons``, ``var`` (by
        level), ``drawdown`` (``max``, ``current``), ``benchmark`` (its annualised return in
        percent) and ``per_symbol``, ``headline`` (:func:`headline_document`: the figures every
        page shows, the book's and the benchmark's over the same bars).
    """
    rep = risk_report(book, benchmark=benchmark, periods_per_year=periods_per_year, meta=meta)
    per = {name: risk_report(r, periods_per_year=periods_per_year).summary for name, r in (per_symbol or {}).items()}
    bench_ann = None
    if rep.benchmark is not None:
        bench_ann = m.annualized_return(rep.benchmark, periods_per_year=periods_per_year) * 100
    return {
        "periods_per_year": periods_per_year, "start": book.index.min(), "end": book.index.max(),
        "summary": dict(rep.summary), "nan_reasons": rep.summary.attrs.get("nan_reasons", {}),
        "var": rep.var.to_dict(orient="index"),
        "drawdown": {"max": rep.drawdown.min(), "current": rep.drawdown.iloc[-1]},
        "benchmark": {"name": BENCHMARK_NAME, "return_ann_pct": bench_ann},
        "per_symbol": {k: {key: v.get(key) for key in PER_SYMBOL_KEYS} for k, v in per.items()},
        "headline": headline_document(book, benchmark, periods_per_year=periods_per_year, subject=subject or {
            "strategy": (meta or {}).get("strategy"), "symbols": sorted(per_symbol or {})}),
    }
