"""Position sizing: how much of the book each position gets.

A sizer turns :class:`~research.strategies.signals.Signals` and prices into a *magnitude*
frame: the fraction of the book's equity (>= 0) a position in that symbol should hold if it
were opened at this bar's close. The signed target weight is ``direction * magnitude``.
Magnitudes use data up to ``t`` only. The backtest samples the magnitude when a position opens
and holds it (no drift trading) unless a rebalance schedule is given; caps come last
(:func:`apply_caps`).

=================  =========================================================================
sizer              magnitude
=================  =========================================================================
``all_in``         1 (the whole book; several symbols in one book share it through the cap)
``fixed_fraction`` ``fraction`` of equity
``vol_target``     ``target / realised volatility`` (annualised; rolling ``window`` bars)
``atr_risk``       ``risk * close / (multiple * ATR)``: a ``multiple`` x ATR move costs
                   ``risk`` of equity
``kelly``          ``fraction * mean / variance`` of the strategy's own unsized daily returns
                   over the last ``window`` bars, clipped to ``[0, cap]``
=================  =========================================================================
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from research.strategies.signals import Signals
from research.types import Fields

__all__ = [
    "all_in", "fixed_fraction", "vol_target", "atr_risk", "kelly", "apply_caps", "SIZERS", "check_sizing",
    "get_sizer", "position_magnitude",
]


def _ones(signals: Signals) -> pd.DataFrame:
    return pd.DataFrame(1.0, index=signals.direction.index, columns=signals.direction.columns)


def _field(prices: Fields, name: str, signals: Signals) -> pd.DataFrame:
    if name not in prices:
        raise ValueError(f"this sizer needs {name!r} prices; got fields {sorted(prices)}")
    frame = prices[name]
    d = signals.direction
    if not frame.index.equals(d.index) or not frame.columns.equals(d.columns):
        raise ValueError(
            f"{name} prices must be aligned with the signals "
            f"(signals: {d.shape[0]} rows x {d.shape[1]} columns; {name}: {frame.shape[0]} x {frame.shape[1]})"
        )
    return frame


def _positive(name: str, value: float) -> float:
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return float(value)


def all_in(signals: Signals, prices: Fields) -> pd.DataFrame:
    """Every position gets the whole book (a shared book splits it through the gross cap)."""
    return _ones(signals)


def fixed_fraction(signals: Signals, prices: Fields, *, fraction: float = 0.1) -> pd.DataFrame:
    """Each position gets ``fraction`` of equity (0 < fraction)."""
    return _ones(signals) * _positive("fraction", fraction)


def vol_target(
    signals: Signals,
    prices: Fields,
    *,
    target: float = 0.15,
    window: int = 20,
    periods_per_year: float | None = None,
    max_weight: float = 1.0,
) -> pd.DataFrame:
    """Volatility targeting: weight ``target / sigma`` with sigma the annualised rolling volatility.

    Parameters
    ----------
    target : float
        Annualised volatility the position should carry (0.15 = 15%).
    window : int
        Bars of close-to-close returns in the volatility estimate.
    periods_per_year : float, optional
        Annualisation (252 equities, 365 crypto); left out, the calendar the prices carry
        (:func:`research.risk.metrics.annualisation`), else 252 with a warning.
    max_weight : float
        Upper bound on the weight (leverage cap per position). Zero until sigma is known.
    """
    from research.features.indicators import returns, rolling_volatility
    from research.risk.metrics import annualisation

    close = _field(prices, "close", signals)
    ppy = annualisation(close, periods_per_year, what="prices")
    sigma = rolling_volatility(returns(close), window=window, periods_per_year=ppy)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = _positive("target", target) / sigma
    return w.clip(upper=_positive("max_weight", max_weight)).where(sigma > 0).fillna(0.0)


def atr_risk(
    signals: Signals,
    prices: Fields,
    *,
    risk: float = 0.01,
    window: int = 14,
    multiple: float = 2.0,
    max_weight: float = 1.0,
) -> pd.DataFrame:
    """ATR risk per trade: size so that a ``multiple`` x ATR adverse move loses ``risk`` of equity.

    ``weight = risk * close / (multiple * ATR)``, capped at ``max_weight``; zero until the ATR
    is known. Pair it with ``stop_loss`` near ``multiple * ATR / close`` for the classic rule.
    """
    from research.features.indicators import atr

    close = _field(prices, "close", signals)
    a = atr(_field(prices, "high", signals), _field(prices, "low", signals), close, window=window)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = _positive("risk", risk) * close / (_positive("multiple", multiple) * a)
    return w.clip(upper=_positive("max_weight", max_weight)).where(a > 0).fillna(0.0)


def kelly(
    signals: Signals,
    prices: Fields,
    *,
    window: int = 252,
    fraction: float = 0.5,
    cap: float = 1.0,
) -> pd.DataFrame:
    """Capped fractional Kelly from the strategy's own unsized returns.

    The unsized return at ``t`` is ``direction[t-1] * r[t]`` (``r`` the close-to-close return);
    the Kelly weight is ``mean / variance`` of its last ``window`` values, times ``fraction``
    (half-Kelly by default), clipped to ``[0, cap]``. Zero until ``window`` returns exist.
    """
    from research.features.indicators import returns

    close = _field(prices, "close", signals)
    if isinstance(window, bool) or int(window) != window or window < 2:
        raise ValueError(f"window must be an integer >= 2, got {window!r}")
    strat = signals.direction.shift(1) * returns(close)
    roll = strat.rolling(int(window), min_periods=int(window))
    with np.errstate(divide="ignore", invalid="ignore"):
        k = roll.mean() / roll.var(ddof=1)
    k = (k * _positive("fraction", fraction)).clip(lower=0.0, upper=_positive("cap", cap))
    return k.replace([np.inf, -np.inf], np.nan).fillna(0.0)


def apply_caps(
    weights: pd.DataFrame,
    *,
    max_position: float | None = None,
    max_gross: float | None = None,
) -> pd.DataFrame:
    """Cap signed target weights: each ``|w| <= max_position``, then each row's ``sum |w| <= max_gross``.

    Rows over the gross cap are scaled down proportionally (signs kept). Returns a new frame.
    """
    w = weights.astype("float64")
    if max_position is not None:
        cap = _positive("max_position", max_position)
        w = w.clip(lower=-cap, upper=cap)
    if max_gross is not None:
        gross = w.abs().sum(axis=1)
        scale = (_positive("max_gross", max_gross) / gross).clip(upper=1.0).where(gross > 0, 1.0)
        w = w.mul(scale, axis=0)
    return w


SIZERS: dict[str, Callable[..., pd.DataFrame]] = {
    "all_in": all_in,
    "fixed_fraction": fixed_fraction,
    "vol_target": vol_target,
    "atr_risk": atr_risk,
    "kelly": kelly,
}


def get_sizer(name: str) -> Callable[..., pd.DataFrame]:
    """Look a sizer up by name (see :data:`SIZERS`)."""
    try:
        return SIZERS[name]
    except KeyError:
        raise ValueError(f"unknown sizer {name!r}; expected one of {sorted(SIZERS)}") from None


def check_sizing(name: str, params: Mapping[str, Any] | None = None) -> None:
    """Refuse an unknown sizer or an option it does not take.

    Raises
    ------
    ValueError
        Naming the sizer, the options it was given that it does not take, and those it takes.
    """
    sizer = get_sizer(name)
    options = [p.name for p in inspect.signature(sizer).parameters.values() if p.kind is p.KEYWORD_ONLY]
    unknown = sorted(set(params or {}) - set(options))
    if unknown:
        raise ValueError(f"sizer {name!r} takes no option {', '.join(map(repr, unknown))}; "
                         f"its options are {options or 'none'}")


def position_magnitude(
    signals: Signals, prices: Fields, sizer: str = "all_in", params: Mapping[str, Any] | None = None
) -> pd.DataFrame:
    """Run a named sizer: the magnitude (>= 0, never NaN) each position would get at each bar."""
    check_sizing(sizer, params)
    out = get_sizer(sizer)(signals, prices, **dict(params or {}))
    if out.isna().to_numpy().any() or (out.to_numpy() < 0).any():
        raise ValueError(f"sizer {sizer!r} returned NaN or negative magnitudes")
    return out
