"""Indicator tables of the fused strategy families: one table per distinct window, computed once
and shared by every parameter set that uses it (:mod:`research.backtest.families`).

Each function takes the price fields (``close``, and ``open``/``high``/``low`` for the candlestick
family) and the distinct windows, and returns one array per window (two for Bollinger and the
candlestick family), symbols by bars, with the arithmetic of the strategy's own indicator in
:mod:`research.features`, so every value is the one the engine sees.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from numba import njit

from research.features.indicators import ewm_seeded_nb
from research.kernel_cache import configure_kernel_cache
from research.strategies._nb import rolling_mean_1d_nb

configure_kernel_cache()  # before the @njit(cache=True) decorators below

__all__ = ["ma_tables", "rsi_tables", "bollinger_tables", "momentum_tables", "pattern_tables", "pattern_names",
           "per_window_columns", "window_table_nb", "SMA", "RSI", "RETURNS", "rsi_column_nb", "returns_column_nb",
           "pandas_rolling"]


def ma_tables(fields: Mapping[str, pd.DataFrame], windows: np.ndarray) -> np.ndarray:
    close = fields["close"]
    return per_window_columns(close, windows, SMA)


@njit(cache=True)
def rsi_column_nb(p: np.ndarray, window: int) -> np.ndarray:
    """Wilder's RSI of one column with the arithmetic of :func:`research.features.indicators.rsi`."""
    n = p.shape[0]
    x = np.empty((n, 2))
    x[0, 0] = np.nan
    x[0, 1] = np.nan
    for t in range(1, n):
        change = p[t] - p[t - 1]
        x[t, 0] = change if change > 0 else (0.0 if change <= 0 else np.nan)
        neg = -change
        x[t, 1] = neg if neg > 0 else (0.0 if neg < 0 else neg)  # clip(lower=0) keeps -0.0 and NaN
    avg = ewm_seeded_nb(x, 1.0 / window, window)
    out = np.empty(n)
    for t in range(n):
        g = avg[t, 0]
        total = g + avg[t, 1]
        if np.isnan(g) or np.isnan(total):
            out[t] = np.nan
        elif total == 0.0:
            out[t] = 50.0
        else:
            out[t] = 100.0 * g / total
    return out


@njit(cache=True)
def returns_column_nb(p: np.ndarray, periods: int) -> np.ndarray:
    """``p[t] / p[t - periods] - 1`` (NaN where undefined), as :func:`research.features.indicators.returns`."""
    n = p.shape[0]
    out = np.full(n, np.nan)
    for t in range(periods, n):
        a, b = p[t], p[t - periods]
        if b != 0.0:
            out[t] = a / b - 1.0
        elif a != 0.0 and not np.isnan(a):
            out[t] = np.inf * np.sign(a) * np.sign(1.0 / b) - 1.0
    return out


#: Indicators of :func:`window_table_nb`.
SMA, RSI, RETURNS = 0, 1, 2


@njit(cache=True)
def window_table_nb(kind: int, cols: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """One indicator (:data:`SMA`, :data:`RSI` or :data:`RETURNS`) of every column (``cols`` is symbols by
    bars) for every window: ``(windows, symbols, bars)``, column by column with the indicator's own kernel."""
    out = np.empty((windows.shape[0], cols.shape[0], cols.shape[1]))
    for i in range(windows.shape[0]):
        w = windows[i]
        for j in range(cols.shape[0]):
            if kind == SMA:
                out[i, j] = rolling_mean_1d_nb(cols[j], w)
            elif kind == RSI:
                out[i, j] = rsi_column_nb(cols[j], w)
            else:
                out[i, j] = returns_column_nb(cols[j], w)
    return out


def per_window_columns(close: pd.DataFrame, windows: np.ndarray, kind: int) -> np.ndarray:
    """:func:`window_table_nb` of a close frame (bars x symbols): ``(windows, symbols, bars)``."""
    cols = np.ascontiguousarray(close.to_numpy(dtype=np.float64).T)
    return window_table_nb(kind, cols, np.asarray(windows, dtype=np.int64))


def rsi_tables(fields: Mapping[str, pd.DataFrame], windows: np.ndarray) -> np.ndarray:
    close = fields["close"]
    return per_window_columns(close, windows, RSI)


def bollinger_tables(fields: Mapping[str, pd.DataFrame], windows: np.ndarray) -> list[np.ndarray]:
    """Per window the rolling mean and std (ddof 0) of :func:`research.features.indicators.bollinger`."""
    close = fields["close"]
    kernels = pandas_rolling()
    if kernels is None:  # a pandas without its window kernels where expected: its public rolling
        out = []
        for w in windows:
            roll = close.rolling(int(w), min_periods=int(w))
            out += [roll.mean().to_numpy(dtype=np.float64).T, roll.std(ddof=0).to_numpy(dtype=np.float64).T]
        return out
    roll_mean, roll_var, zsqrt, bounds = kernels
    values = close.to_numpy(dtype=np.float64)
    cols = [np.ascontiguousarray(values[:, j]) for j in range(values.shape[1])]
    out = []
    for w in windows:  # what rolling(w, min_periods=w).mean() / .std(ddof=0) run, column by column
        start, end = bounds(int(w), values.shape[0])
        out += [np.stack([roll_mean(c, start, end, int(w)) for c in cols]),
                np.stack([zsqrt(roll_var(c, start, end, int(w), ddof=0)) for c in cols])]
    return out


def pandas_rolling() -> tuple[Callable[..., Any], ...] | None:
    """pandas' fixed-window mean and variance kernels, its ``zsqrt`` and window bounds (None if not found).

    ``DataFrame.rolling(w, min_periods=w).mean()`` and ``.std(ddof=0)`` run these column by
    column; called directly they give the same numbers without pandas' bookkeeping per call
    (most of the time on one symbol's 84 windows).
    """
    try:
        from pandas._libs.window.aggregations import roll_mean, roll_var
        from pandas.core.indexers.objects import FixedWindowIndexer
        from pandas.core.window.common import zsqrt
    except ImportError:  # pragma: no cover - another pandas layout
        return None

    def bounds(window: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        return FixedWindowIndexer(window_size=window).get_window_bounds(num_values=n, min_periods=window,
                                                                        center=False, closed=None, step=None)

    return roll_mean, roll_var, zsqrt, bounds


def momentum_tables(fields: Mapping[str, pd.DataFrame], windows: np.ndarray) -> np.ndarray:
    close = fields["close"]
    return per_window_columns(close, windows, RETURNS)


def pattern_names(text: str) -> list[str]:
    return [n.strip() for n in str(text).replace("+", ",").split(",") if n.strip()]


def pattern_tables(fields: Mapping[str, pd.DataFrame], windows: np.ndarray) -> list[np.ndarray]:
    """Per pattern list: bullish and bearish flags (1/0) of :func:`research.strategies.signals.candlestick`,
    NaN on a bar missing any of open, high, low, close."""
    from research.features.patterns import SIDES, candlestick_patterns

    missing = [f for f in ("open", "high", "low", "close") if f not in fields]
    if missing:
        raise ValueError(f"the candlestick family needs open, high, low and close prices; missing {missing}")
    names = sorted({n for w in windows for n in pattern_names(w)})
    values = {k: v.to_numpy() for k, v in candlestick_patterns(dict(fields), names).items()}
    complete = np.logical_and.reduce([fields[f].notna().to_numpy() for f in ("open", "high", "low", "close")])
    out = []
    for w in windows:
        bull = np.zeros(complete.shape, dtype=bool)
        bear = np.zeros(complete.shape, dtype=bool)
        for name in pattern_names(w):
            v = values[name]
            bull |= (v != 0) if SIDES[name] == "neutral" else v > 0
            bear |= (v != 0) if SIDES[name] == "neutral" else v < 0
        out += [np.where(complete, bull, np.nan).T, np.where(complete, bear, np.nan).T]
    return out
