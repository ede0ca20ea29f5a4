"""Risk and performance metrics as pure functions (numpy, pandas and scipy only).

This module imports nothing from ``research`` but :mod:`research.risk.activity` (trade and
position metrics, re-exported here), so any layer (backtests included) can use it.

Data contracts
--------------
``returns``
    A ``pandas.Series`` of decimal, non-cumulative simple returns per bar (0.01 = +1%).
    NaN entries (bars before a strategy starts) are dropped before computing.
``benchmark``
    The benchmark's returns in the same units; aligned on the index, only bars where both
    exist are used.
``trades``
    A ``DataFrame`` with one row per trade and a ``pnl`` column (currency) and/or a ``return``
    column (decimal), matched case-insensitively (vectorbt's ``PnL`` and ``Return`` work), or a
    Series of either.
``positions``
    Exposure per asset per bar as a fraction of equity (weights; a Series for one asset), or
    currency values with a ``cash`` column (the pyfolio convention), which are converted to
    weights by dividing by each row's total.

Conventions
-----------
* ``periods_per_year`` annualises: 252 for equities, 365 for crypto. Left out (``None``), it is
  the calendar the returns carry (``attrs``, as :func:`research.data.load_prices` records and
  ``pct_change`` keeps), else 252 with a warning
  (:func:`annualisation`); an explicit value wins.
* ``risk_free`` is an annual decimal rate, converted to a per-bar rate
  ``(1 + rf) ** (1 / periods_per_year) - 1``.
* Volatility uses the sample standard deviation (``ddof=1``); skew and excess kurtosis are the
  bias-corrected sample estimates (pandas ``skew`` and ``kurt``).
* Drawdowns are measured from the running peak of equity that starts at 1.0 (the initial
  capital), so a loss on the first bar is already a drawdown. Max drawdown is <= 0.
* VaR and CVaR are returns (usually negative): VaR 95% is the return that the worst 5% of bars
  fall at or below; CVaR 95% is the mean return of those worst bars.
* A ratio whose denominator is zero is NaN, not infinite: Sharpe with zero volatility, Sortino
  with no bar below the risk-free rate, Calmar with no drawdown, information ratio with zero
  tracking error, profit factor with no losing trade. :func:`summary` records why each NaN is
  NaN in ``attrs["nan_reasons"]``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd

from research.risk.activity import exposure, profit_factor, trade_values, turnover, win_rate

__all__ = [
    "total_return", "annualized_return", "annualized_volatility", "sharpe_ratio",
    "sortino_ratio", "downside_deviation", "calmar_ratio", "equity_curve", "drawdown_series",
    "max_drawdown", "max_drawdown_duration", "value_at_risk", "conditional_value_at_risk",
    "beta", "alpha", "tracking_error", "information_ratio", "win_rate", "profit_factor",
    "exposure", "turnover", "equal_weight_returns", "summary", "SUMMARY_KEYS", "VAR_METHODS",
    "COMPACT_KEYS", "compact_stats", "annualisation", "CalendarWarning",
]

VAR_METHODS = ("historical", "gaussian", "cornish_fisher")
_VAR_LABEL = {"historical": "hist.", "gaussian": "Gauss.", "cornish_fisher": "C-F"}
_LEVELS = (0.95, 0.99)


# --------------------------------------------------------------------------- helpers

def _clean(returns: pd.Series | np.ndarray, what: str = "returns") -> pd.Series:
    if isinstance(returns, pd.DataFrame):
        if returns.shape[1] != 1:
            raise TypeError(f"{what} must be a Series (one column of returns), got a DataFrame with {returns.shape[1]} columns")
        returns = returns.iloc[:, 0]
    if isinstance(returns, np.ndarray | list | tuple):
        returns = pd.Series(np.asarray(returns, dtype="float64"))
    if not isinstance(returns, pd.Series):
        raise TypeError(f"{what} must be a pandas Series of decimal returns, not {type(returns).__name__}")
    out = returns.astype("float64")
    if np.isinf(out.to_numpy()).any():
        raise ValueError(f"{what} contain infinite values; expected finite decimal returns")
    return out.dropna()


class CalendarWarning(UserWarning):
    """Annualising data that records no calendar, with the equity convention (252)."""


_DAILY = {"equity": 252.0, "crypto": 365.0}


def annualisation(data: object, periods_per_year: float | None = None, *, what: str = "returns") -> float:
    """Periods per year of a metric: explicit, else the data's calendar, else 252 with a warning.

    The rule of every function that annualises (these metrics, :mod:`research.risk.report`,
    ``vol_target`` sizing): an explicit ``periods_per_year`` wins; left out (``None``), it is
    what the data records: ``attrs["periods_per_year"]``, which
    :func:`research.data.load_prices` sets from the calendar and interval and pandas keeps
    through ``pct_change``, column selection and arithmetic (else ``attrs["calendar"]`` of daily
    bars: 252 equity, 365 crypto); data that records neither is annualised with 252 and a
    :class:`CalendarWarning` saying so.

    >>> r = pd.Series([0.01, -0.02, 0.03]); r.attrs.update(calendar="crypto", periods_per_year=365.0)
    >>> annualisation(r), annualisation(r, 252)
    (365.0, 252.0)
    """
    if periods_per_year is not None:
        if isinstance(periods_per_year, bool) or not periods_per_year > 0:
            raise ValueError(f"periods_per_year must be positive (252 equities, 365 crypto), got {periods_per_year!r}")
        return float(periods_per_year)
    if isinstance(data, Mapping):
        data = next(iter(data.values()), None)
    attrs = getattr(data, "attrs", None) or {}
    if attrs.get("periods_per_year"):
        return float(attrs["periods_per_year"])
    if attrs.get("calendar") in _DAILY and attrs.get("interval", "1d") == "1d":
        return _DAILY[attrs["calendar"]]
    warnings.warn(f"the {what} record no calendar (attrs['periods_per_year']); annualising with 252 (equity "
                  "sessions). Pass periods_per_year= (365 for daily crypto) or use returns of load_prices.",
                  CalendarWarning, stacklevel=3)
    return 252.0


def _ppy(returns: object, periods_per_year: float | None) -> float:
    return annualisation(returns, periods_per_year)


def _rf_per_period(risk_free: float, periods_per_year: float) -> float:
    if periods_per_year <= 0:
        raise ValueError(f"periods_per_year must be positive (252 equities, 365 crypto), got {periods_per_year!r}")
    return (1.0 + risk_free) ** (1.0 / periods_per_year) - 1.0


def _std(x: pd.Series) -> float:
    """Sample standard deviation, exactly 0.0 for a constant series (no rounding residue)."""
    if len(x) < 2:
        return float("nan")
    arr = x.to_numpy()
    return 0.0 if np.ptp(arr) == 0 else float(x.std(ddof=1))


def _ratio(num: float, den: float) -> float:
    return float(num / den) if np.isfinite(den) and den > 0 and np.isfinite(num) else float("nan")


def _aligned(returns: pd.Series, benchmark: pd.Series) -> tuple[pd.Series, pd.Series]:
    r, b = _clean(returns), _clean(benchmark, "benchmark")
    both = pd.concat([r, b], axis=1, join="inner").dropna()
    return both.iloc[:, 0], both.iloc[:, 1]


# --------------------------------------------------------------------------- returns and volatility

def total_return(returns: pd.Series) -> float:
    """Compounded return over the whole series, ``prod(1 + r) - 1``."""
    r = _clean(returns)
    return float(np.prod(1.0 + r.to_numpy()) - 1.0)


def annualized_return(returns: pd.Series, *, periods_per_year: float | None = None) -> float:
    """Geometric annual growth rate, ``(1 + total) ** (periods_per_year / n) - 1``.

    NaN for an empty series; -1 when the equity was wiped out.
    """
    periods_per_year = _ppy(returns, periods_per_year)
    r = _clean(returns)
    _rf_per_period(0.0, periods_per_year)
    if r.empty:
        return float("nan")
    growth = 1.0 + total_return(r)
    return -1.0 if growth <= 0 else float(growth ** (periods_per_year / len(r)) - 1.0)


def annualized_volatility(returns: pd.Series, *, periods_per_year: float | None = None) -> float:
    """Sample standard deviation of returns times ``sqrt(periods_per_year)``; NaN below 2 returns."""
    periods_per_year = _ppy(returns, periods_per_year)
    r = _clean(returns)
    _rf_per_period(0.0, periods_per_year)
    return _std(r) * np.sqrt(periods_per_year)


def sharpe_ratio(returns: pd.Series, *, risk_free: float = 0.0, periods_per_year: float | None = None) -> float:
    """Annualised Sharpe ratio ``mean(excess) / std(excess) * sqrt(periods_per_year)``.

    NaN when the excess returns have zero volatility (the ratio is undefined) or fewer than 2 bars.
    """
    periods_per_year = _ppy(returns, periods_per_year)
    r = _clean(returns)
    ex = r - _rf_per_period(risk_free, periods_per_year)
    if len(ex) < 2:
        return float("nan")
    return _ratio(ex.mean(), _std(ex)) * np.sqrt(periods_per_year)


def downside_deviation(returns: pd.Series, *, risk_free: float = 0.0, periods_per_year: float | None = None) -> float:
    """Per-bar downside deviation ``sqrt(mean(min(excess, 0) ** 2))`` over all bars (not annualised)."""
    periods_per_year = _ppy(returns, periods_per_year)
    r = _clean(returns)
    ex = r - _rf_per_period(risk_free, periods_per_year)
    return float(np.sqrt(np.mean(np.minimum(ex.to_numpy(), 0.0) ** 2))) if len(ex) else float("nan")


def sortino_ratio(returns: pd.Series, *, risk_free: float = 0.0, periods_per_year: float | None = None) -> float:
    """Annualised Sortino ratio ``mean(excess) / downside_deviation * sqrt(periods_per_year)``.

    NaN when no bar falls below the risk-free rate (zero downside deviation).
    """
    periods_per_year = _ppy(returns, periods_per_year)
    r = _clean(returns)
    ex = r - _rf_per_period(risk_free, periods_per_year)
    dd = downside_deviation(r, risk_free=risk_free, periods_per_year=periods_per_year)
    return _ratio(ex.mean(), dd) * np.sqrt(periods_per_year) if len(ex) else float("nan")


# --------------------------------------------------------------------------- drawdowns

def equity_curve(returns: pd.Series, *, start: float = 1.0) -> pd.Series:
    """Compounded equity ``start * cumprod(1 + r)`` (NaN returns count as flat bars)."""
    if not isinstance(returns, pd.Series):
        returns = _clean(returns)
    return start * (1.0 + returns.astype("float64").fillna(0.0)).cumprod()


def drawdown_series(returns: pd.Series) -> pd.Series:
    """Underwater curve: equity over its running peak minus 1 (<= 0), peak starting at 1.0."""
    eq = equity_curve(returns)
    peak = np.maximum(eq.cummax(), 1.0)
    return (eq / peak - 1.0).rename("drawdown")


def max_drawdown(returns: pd.Series) -> float:
    """Deepest drawdown as a decimal (<= 0; -0.25 is a 25% fall from the peak). NaN if empty."""
    r = _clean(returns)
    return float(drawdown_series(r).min()) if len(r) else float("nan")


def max_drawdown_duration(returns: pd.Series) -> int:
    """Longest run of consecutive bars spent below a previous equity peak (0 if never underwater).

    A drawdown still open at the end counts up to the last bar.
    """
    under = (drawdown_series(_clean(returns)) < 0).to_numpy()
    if not under.any():
        return 0
    edges = np.diff(np.concatenate([[0], under.astype(int), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return int((ends - starts).max())


def calmar_ratio(returns: pd.Series, *, periods_per_year: float | None = None) -> float:
    """Annualised return over the absolute max drawdown; NaN when there is no drawdown."""
    periods_per_year = _ppy(returns, periods_per_year)
    return _ratio(annualized_return(returns, periods_per_year=periods_per_year), -max_drawdown(returns))


# --------------------------------------------------------------------------- tail risk

def _check_var_args(level: float, method: str) -> None:
    if not 0.5 < level < 1.0:
        raise ValueError(f"level must be a confidence level in (0.5, 1), e.g. 0.95; got {level!r}")
    if method not in VAR_METHODS:
        raise ValueError(f"method must be one of {VAR_METHODS}, got {method!r}")


def _cf_quantile(p: np.ndarray | float, mu: float, sigma: float, s: float, k: float) -> np.ndarray:
    from scipy import stats  # imported when used: scipy.stats adds about 60 MiB to every process

    z = stats.norm.ppf(p)
    zcf = z + (z**2 - 1) * s / 6 + (z**3 - 3 * z) * k / 24 - (2 * z**3 - 5 * z) * s**2 / 36
    return mu + zcf * sigma


def value_at_risk(returns: pd.Series, *, level: float = 0.95, method: str = "historical") -> float:
    """Value at risk as a return quantile (usually negative).

    Parameters
    ----------
    returns : Series
        Per-bar decimal returns.
    level : float
        Confidence, e.g. 0.95 or 0.99 (the ``1 - level`` tail is measured).
    method : {"historical", "gaussian", "cornish_fisher"}
        ``historical``: the empirical ``1 - level`` quantile (linear interpolation, as
        ``numpy.quantile``); ``gaussian``: ``mean + z * std``; ``cornish_fisher``: the Gaussian
        quantile ``z`` adjusted for sample skew ``S`` and excess kurtosis ``K``:
        ``z + (z^2 - 1) S / 6 + (z^3 - 3z) K / 24 - (2z^3 - 5z) S^2 / 36``.

    Returns
    -------
    float
        NaN for an empty series (historical) or fewer than 2 (Gaussian) / 4 (Cornish-Fisher) bars.
    """
    _check_var_args(level, method)
    r = _clean(returns)
    x = r.to_numpy()
    if method == "historical":
        return float(np.quantile(x, 1.0 - level)) if len(x) else float("nan")
    if method == "gaussian":
        from scipy import stats

        return float(x.mean() + stats.norm.ppf(1.0 - level) * _std(r)) if len(x) > 1 else float("nan")
    if len(x) < 4 or _std(r) == 0:
        return float("nan")
    return float(_cf_quantile(1.0 - level, x.mean(), _std(r), r.skew(), r.kurt()))


def conditional_value_at_risk(returns: pd.Series, *, level: float = 0.95, method: str = "historical") -> float:
    """Conditional VaR (expected shortfall): the mean return in the ``1 - level`` tail.

    ``historical``: mean of the returns at or below the historical VaR; ``gaussian``:
    ``mean - std * pdf(z) / (1 - level)``; ``cornish_fisher``: the average of the
    Cornish-Fisher quantile function over the tail probabilities ``(0, 1 - level]`` (midpoint
    rule on 2,000 points).
    """
    _check_var_args(level, method)
    r = _clean(returns)
    x = r.to_numpy()
    alpha = 1.0 - level
    if method == "historical":
        if not len(x):
            return float("nan")
        var = np.quantile(x, alpha)
        return float(x[x <= var].mean())
    if len(x) < (2 if method == "gaussian" else 4):
        return float("nan")
    sigma = _std(r)
    if method == "cornish_fisher" and sigma == 0:
        return float("nan")
    if method == "gaussian":
        from scipy import stats

        return float(x.mean() - sigma * stats.norm.pdf(stats.norm.ppf(alpha)) / alpha)
    grid = (np.arange(2000) + 0.5) / 2000 * alpha
    return float(np.mean(_cf_quantile(grid, x.mean(), sigma, r.skew(), r.kurt())))


# --------------------------------------------------------------------------- benchmark-relative

def beta(returns: pd.Series, benchmark: pd.Series) -> float:
    """OLS beta ``cov(r, b) / var(b)`` on the bars where both exist; NaN if the benchmark is flat."""
    r, b = _aligned(returns, benchmark)
    if len(r) < 2:
        return float("nan")
    return _ratio(np.cov(r, b, ddof=1)[0, 1], _std(b) ** 2)


def alpha(returns: pd.Series, benchmark: pd.Series, *, risk_free: float = 0.0, periods_per_year: float | None = None) -> float:
    """Annualised Jensen's alpha ``(mean(r - rf) - beta * mean(b - rf)) * periods_per_year``."""
    periods_per_year = _ppy(returns, periods_per_year)
    r, b = _aligned(returns, benchmark)
    rf = _rf_per_period(risk_free, periods_per_year)
    bt = beta(r, b)
    return float(((r - rf).mean() - bt * (b - rf).mean()) * periods_per_year) if np.isfinite(bt) else float("nan")


def tracking_error(returns: pd.Series, benchmark: pd.Series, *, periods_per_year: float | None = None) -> float:
    """Annualised standard deviation of active returns ``r - b``."""
    periods_per_year = _ppy(returns, periods_per_year)
    r, b = _aligned(returns, benchmark)
    return annualized_volatility(r - b, periods_per_year=periods_per_year)


def information_ratio(returns: pd.Series, benchmark: pd.Series, *, periods_per_year: float | None = None) -> float:
    """Annualised mean active return over tracking error; NaN when the tracking error is zero."""
    periods_per_year = _ppy(returns, periods_per_year)
    r, b = _aligned(returns, benchmark)
    active = r - b
    if len(active) < 2:
        return float("nan")
    return _ratio(active.mean(), _std(active)) * np.sqrt(periods_per_year)


# --------------------------------------------------------------------------- glossary

#: One glossary for the statistics. Summaries, reports, dashboards and MLflow use the
#: summary's keys (``'Sharpe Ratio'``, percentages in percent); tables of many backtests
#: (sweeps, the fused kernel's ``STATS``) use these compact names in decimal units. Each
#: compact name is exactly one summary key; a key ending in ``[%]`` is 100 x the compact value.
COMPACT_KEYS: dict[str, str] = {
    "total_return": "Total Return [%]",
    "annual_return": "Return (Ann.) [%]",
    "annual_volatility": "Volatility (Ann.) [%]",
    "sharpe": "Sharpe Ratio",
    "max_drawdown": "Max. Drawdown [%]",
    "trades": "# Trades",
    "win_rate": "Win Rate [%]",
    "exposure": "Exposure Time [%]",
}


def compact_stats(stats: pd.Series) -> dict[str, float]:
    """A summary's statistics under their compact names, percentages as decimals.

    >>> compact_stats(summary(r))["sharpe"] == summary(r)["Sharpe Ratio"]
    True
    """
    return {name: stats[key] * 0.01 if key.endswith("[%]") else stats[key] for name, key in COMPACT_KEYS.items()}


# --------------------------------------------------------------------------- books

def equal_weight_returns(curves: pd.DataFrame) -> pd.Series:
    """Per-bar returns of an equal-weight book of ``curves``, rebalanced every bar.

    The mean of the members' simple returns on each bar, over the members that have a return
    on that bar (a member before its first or after its last bar does not count; no price is
    filled). A bar where no member has a return is NaN: the caller decides whether it is a
    flat bar (``fillna(0)``) or no bar (``dropna()``).

    Parameters
    ----------
    curves : DataFrame
        Equity curves or prices, one column per member.
    """
    return curves.pct_change(fill_method=None).mean(axis=1, skipna=True)


# --------------------------------------------------------------------------- summary

def _var_keys() -> list[str]:
    keys = []
    for method in VAR_METHODS:
        for level in _LEVELS:
            pct = f"{level:.0%}"
            keys += [f"VaR {pct} ({_VAR_LABEL[method]}) [%]", f"CVaR {pct} ({_VAR_LABEL[method]}) [%]"]
    return keys


SUMMARY_KEYS: tuple[str, ...] = (
    "# Periods", "Total Return [%]", "Return (Ann.) [%]", "Volatility (Ann.) [%]",
    "Sharpe Ratio", "Sortino Ratio", "Calmar Ratio", "Max. Drawdown [%]",
    "Max. Drawdown Duration [bars]", "Skew", "Kurtosis (excess)", *_var_keys(),
    "Benchmark Return (Ann.) [%]", "Beta", "Alpha (Ann.) [%]", "Tracking Error (Ann.) [%]",
    "Information Ratio", "# Trades", "Win Rate [%]", "Profit Factor", "Exposure Time [%]",
    "Turnover (Ann.) [%]",
)
"""Every key :func:`summary` returns, in order (the set never depends on the inputs)."""


def _core(r: pd.Series, ppy: float, rf: float) -> tuple[dict[str, float], dict[str, str]]:
    n = len(r)
    out: dict[str, float] = {
        "# Periods": float(n),
        "Total Return [%]": total_return(r) * 100 if n else np.nan,
        "Return (Ann.) [%]": annualized_return(r, periods_per_year=ppy) * 100,
        "Volatility (Ann.) [%]": annualized_volatility(r, periods_per_year=ppy) * 100,
        "Sharpe Ratio": sharpe_ratio(r, risk_free=rf, periods_per_year=ppy),
        "Sortino Ratio": sortino_ratio(r, risk_free=rf, periods_per_year=ppy),
        "Calmar Ratio": calmar_ratio(r, periods_per_year=ppy),
        "Max. Drawdown [%]": max_drawdown(r) * 100,
        "Max. Drawdown Duration [bars]": float(max_drawdown_duration(r)) if n else np.nan,
        "Skew": float(r.skew()) if n > 2 and _std(r) > 0 else np.nan,
        "Kurtosis (excess)": float(r.kurt()) if n > 3 and _std(r) > 0 else np.nan,
    }
    for method in VAR_METHODS:
        for level in _LEVELS:
            pct, tag = f"{level:.0%}", _VAR_LABEL[method]
            out[f"VaR {pct} ({tag}) [%]"] = value_at_risk(r, level=level, method=method) * 100
            out[f"CVaR {pct} ({tag}) [%]"] = conditional_value_at_risk(r, level=level, method=method) * 100
    reasons: dict[str, str] = {}
    few = "fewer than 2 returns" if n < 2 else None
    if n == 0:
        reasons.update({k: "no returns" for k in out if k != "# Periods"})
        return out, reasons
    flat = _std(r) == 0 if n > 1 else False
    for key in ("Volatility (Ann.) [%]", "Sharpe Ratio"):
        reasons[key] = few or "zero volatility"
    reasons["Sortino Ratio"] = few or "no return below the risk-free rate (zero downside deviation)"
    reasons["Calmar Ratio"] = "no drawdown"
    reasons["Skew"] = "fewer than 3 returns" if n < 3 else "zero volatility"
    reasons["Kurtosis (excess)"] = "fewer than 4 returns" if n < 4 else "zero volatility"
    for key in out:
        if key.startswith(("VaR", "CVaR")) and "hist." not in key:
            reasons[key] = ("fewer than 4 returns" if "C-F" in key and n < 4 else few) or (
                "zero volatility" if flat else "undefined skew/kurtosis")
    return out, reasons


def _relative(r: pd.Series, benchmark: pd.Series | None, ppy: float, rf: float) -> tuple[dict, dict]:
    keys = ("Benchmark Return (Ann.) [%]", "Beta", "Alpha (Ann.) [%]", "Tracking Error (Ann.) [%]", "Information Ratio")
    if benchmark is None:
        return dict.fromkeys(keys, np.nan), dict.fromkeys(keys, "no benchmark given")
    rr, b = _aligned(r, benchmark)
    out = {
        "Benchmark Return (Ann.) [%]": annualized_return(b, periods_per_year=ppy) * 100,
        "Beta": beta(rr, b),
        "Alpha (Ann.) [%]": alpha(rr, b, risk_free=rf, periods_per_year=ppy) * 100,
        "Tracking Error (Ann.) [%]": tracking_error(rr, b, periods_per_year=ppy) * 100,
        "Information Ratio": information_ratio(rr, b, periods_per_year=ppy),
    }
    if len(rr) < 2:
        return out, dict.fromkeys(keys, "fewer than 2 bars shared with the benchmark")
    reasons = {"Beta": "benchmark has zero variance", "Alpha (Ann.) [%]": "benchmark has zero variance",
               "Information Ratio": "zero tracking error (returns equal the benchmark's)",
               "Tracking Error (Ann.) [%]": "fewer than 2 bars shared with the benchmark",
               "Benchmark Return (Ann.) [%]": "no benchmark returns"}
    return out, reasons


def _trading(trades, positions, ppy: float) -> tuple[dict, dict]:
    out: dict[str, float] = {}
    reasons: dict[str, str] = {}
    tkeys = ("# Trades", "Win Rate [%]", "Profit Factor")
    if trades is None:
        out.update(dict.fromkeys(tkeys, np.nan))
        reasons.update(dict.fromkeys(tkeys, "no trades given"))
    else:
        values = trade_values(trades)
        out["# Trades"] = float(len(values))
        out["Win Rate [%]"] = win_rate(values) * 100
        out["Profit Factor"] = profit_factor(values)
        none = "no trades" if len(values) == 0 else None
        reasons.update({"Win Rate [%]": none or "no trades", "Profit Factor": none or "no losing trade"})
    pkeys = ("Exposure Time [%]", "Turnover (Ann.) [%]")
    if positions is None:
        out.update(dict.fromkeys(pkeys, np.nan))
        reasons.update(dict.fromkeys(pkeys, "no positions given"))
    else:
        out["Exposure Time [%]"] = exposure(positions) * 100
        out["Turnover (Ann.) [%]"] = turnover(positions, periods_per_year=ppy) * 100
        reasons.update(dict.fromkeys(pkeys, "empty positions"))
    return out, reasons


def summary(
    returns: pd.Series,
    *,
    benchmark: pd.Series | None = None,
    periods_per_year: float | None = None,
    trades: pd.DataFrame | pd.Series | None = None,
    positions: pd.DataFrame | pd.Series | None = None,
    risk_free: float = 0.0,
) -> pd.Series:
    """All metrics in one float Series with unit-suffixed keys (:data:`SUMMARY_KEYS`, in order).

    Parameters
    ----------
    returns : Series
        Per-bar decimal returns of the strategy or portfolio.
    benchmark : Series, optional
        Benchmark returns (beta, alpha, tracking error, information ratio).
    periods_per_year : float, optional
        252 for equities, 365 for crypto; left out, the calendar ``returns`` carry (``attrs``),
        else 252 with a :class:`CalendarWarning`.
    trades : DataFrame or Series, optional
        One row per trade with ``pnl`` and/or ``return`` (``# Trades``, win rate, profit factor).
    positions : DataFrame or Series, optional
        Weights per asset per bar, or values with a ``cash`` column (exposure, turnover).
    risk_free : float
        Annual risk-free rate (decimal).

    Returns
    -------
    Series
        Percentages are in percent (``'Return (Ann.) [%]'`` = 12.3 for 12.3%). Keys whose inputs
        were not given are NaN. ``attrs["nan_reasons"]`` maps every NaN key to why it is NaN
        (e.g. ``'Sharpe Ratio': 'zero volatility'``, ``'Beta': 'no benchmark given'``);
        ``attrs["periods_per_year"]`` and ``attrs["risk_free"]`` record the conventions used.

    Examples
    --------
    >>> s = summary(returns, benchmark=spx_returns, periods_per_year=252)
    >>> s["Sharpe Ratio"], s["Max. Drawdown [%]"]
    """
    periods_per_year = _ppy(returns, periods_per_year)
    r = _clean(returns)
    _rf_per_period(risk_free, periods_per_year)
    values, reasons = _core(r, periods_per_year, risk_free)
    for part in (_relative(r, benchmark, periods_per_year, risk_free), _trading(trades, positions, periods_per_year)):
        values.update(part[0])
        reasons.update(part[1])
    out = pd.Series({k: float(values[k]) for k in SUMMARY_KEYS}, dtype="float64", name="value")
    out.attrs = {
        "nan_reasons": {k: reasons.get(k, "undefined for this input") for k in SUMMARY_KEYS if np.isnan(out[k])},
        "periods_per_year": float(periods_per_year),
        "risk_free": float(risk_free),
    }
    return out
