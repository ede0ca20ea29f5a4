"""Candlestick patterns, equal bar for bar to TA-Lib's ``CDL*`` functions.

Each pattern takes ``open, high, low, close`` (wide frames, one column per symbol, or Series)
and returns integers in TA-Lib's convention: ``+100`` for a bullish pattern on that bar,
``-100`` for a bearish one, ``0`` for none. :func:`engulfing` also gives ``+-80`` when the
engulfing body only touches the prior body (equal open or close), as TA-Lib does.

=================  ====================  ====================================================
function           TA-Lib                values
=================  ====================  ====================================================
:func:`engulfing`  ``CDLENGULFING``      +100 / +80 bullish, -100 / -80 bearish
:func:`hammer`     ``CDLHAMMER``         +100
:func:`shooting_star` ``CDLSHOOTINGSTAR`` -100
:func:`doji`       ``CDLDOJI``           +100 (indecision: TA-Lib's sign carries no direction)
:func:`morning_star` ``CDLMORNINGSTAR``  +100 (``penetration`` 0.3 by default)
:func:`evening_star` ``CDLEVENINGSTAR``  -100 (``penetration`` 0.3 by default)
=================  ====================  ====================================================

Candle settings
---------------
"Long", "short", "doji-like" and "near" are judged against averages of the preceding bars,
with TA-Lib's default settings (:data:`CANDLE_SETTINGS`): a setting measures a range (the real
body ``|close - open|``, the high-low range, or the sum of both shadows), averages it over the
``period`` bars *before* the bar it judges (``period = 0``: the bar's own range) and scales it
by ``factor`` (halved for shadows). The running sums are updated in TA-Lib's order, so the
comparisons are bit-for-bit those of the C library.

Warm-up and gaps
----------------
No value at bar ``t`` uses a bar after ``t``. The first :func:`lookback` bars of each symbol
are 0 (TA-Lib's warm-up). Rows where any of a symbol's open, high, low or close is missing are
0 and are skipped: the pattern runs over the symbol's own bars (a stock's Friday is followed by
its Monday in a frame that also holds a cryptocurrency's weekend bars).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import NamedTuple

import numpy as np
import pandas as pd
from numba import njit

from research.features.indicators import _compute

__all__ = [
    "CandleSetting", "CANDLE_SETTINGS", "PATTERNS", "engulfing", "hammer", "shooting_star", "doji",
    "morning_star", "evening_star", "lookback", "candlestick_patterns", "SIDES",
]

logger = logging.getLogger(__name__)

Frame = pd.DataFrame | pd.Series

_REAL_BODY, _HIGH_LOW, _SHADOWS = 0, 1, 2
_RANGE_TYPES = {"real_body": _REAL_BODY, "high_low": _HIGH_LOW, "shadows": _SHADOWS}


class CandleSetting(NamedTuple):
    """How one candle property is judged (TA-Lib's ``TA_CandleSetting``).

    Attributes
    ----------
    range_type : {"real_body", "high_low", "shadows"}
        The range averaged: ``|close - open|``, ``high - low``, or upper plus lower shadow.
    period : int
        Bars averaged, ending with the bar before the one judged; 0 uses the judged bar's own range.
    factor : float
        Multiplier of the average (a shadows average is also halved).
    """

    range_type: str
    period: int
    factor: float


CANDLE_SETTINGS: MappingProxyType[str, CandleSetting] = MappingProxyType({
    "body_long": CandleSetting("real_body", 10, 1.0),
    "body_very_long": CandleSetting("real_body", 10, 3.0),
    "body_short": CandleSetting("real_body", 10, 1.0),
    "body_doji": CandleSetting("high_low", 10, 0.1),
    "shadow_long": CandleSetting("real_body", 0, 1.0),
    "shadow_very_long": CandleSetting("real_body", 0, 2.0),
    "shadow_short": CandleSetting("shadows", 10, 1.0),
    "shadow_very_short": CandleSetting("high_low", 10, 0.1),
    "near": CandleSetting("high_low", 5, 0.2),
    "far": CandleSetting("high_low", 5, 0.6),
    "equal": CandleSetting("high_low", 5, 0.05),
})
"""TA-Lib's default candle settings (``TA_RestoreCandleDefaultSettings``)."""


def _setting(name: str) -> np.ndarray:
    s = CANDLE_SETTINGS[name]
    return np.array([_RANGE_TYPES[s.range_type], s.period, s.factor], dtype=np.float64)


# --------------------------------------------------------------------------- kernels

@njit(cache=True, inline="always")
def _range_nb(s: np.ndarray, o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, i: int) -> float:
    kind = int(s[0])
    if kind == 0:
        return abs(c[i] - o[i])
    if kind == 1:
        return h[i] - lo[i]
    upper = h[i] - (c[i] if c[i] >= o[i] else o[i])
    lower = (o[i] if c[i] >= o[i] else c[i]) - lo[i]
    return upper + lower


@njit(cache=True, inline="always")
def _average_nb(s: np.ndarray, total: float, o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray,
                i: int) -> float:
    period = int(s[1])
    base = total / period if period != 0 else _range_nb(s, o, h, lo, c, i)
    return s[2] * base / (2.0 if int(s[0]) == 2 else 1.0)


@njit(cache=True)
def _sum_nb(s: np.ndarray, o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, start: int,
            stop: int) -> float:
    total = 0.0
    for k in range(start, stop):
        total += _range_nb(s, o, h, lo, c, k)
    return total


@njit(cache=True)
def _engulfing_nb(o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray) -> np.ndarray:
    out = np.zeros(len(o), dtype=np.int32)
    for i in range(2, len(o)):
        white, white_prev = c[i] >= o[i], c[i - 1] >= o[i - 1]
        bull = white and not white_prev and (
            (c[i] >= o[i - 1] and o[i] < c[i - 1]) or (c[i] > o[i - 1] and o[i] <= c[i - 1]))
        bear = (not white) and white_prev and (
            (o[i] >= c[i - 1] and c[i] < o[i - 1]) or (o[i] > c[i - 1] and c[i] <= o[i - 1]))
        if bull or bear:
            size = 100 if (o[i] != c[i - 1] and c[i] != o[i - 1]) else 80
            out[i] = size if white else -size
    return out


@njit(cache=True)
def _hammer_nb(o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, body: np.ndarray,
               shadow_long: np.ndarray, very_short: np.ndarray, near: np.ndarray, start: int) -> np.ndarray:
    out = np.zeros(len(o), dtype=np.int32)
    if start >= len(o):
        return out
    b_tr, sl_tr, vs_tr = start - int(body[1]), start - int(shadow_long[1]), start - int(very_short[1])
    n_tr = start - 1 - int(near[1])
    b_tot = _sum_nb(body, o, h, lo, c, b_tr, start)
    sl_tot = _sum_nb(shadow_long, o, h, lo, c, sl_tr, start)
    vs_tot = _sum_nb(very_short, o, h, lo, c, vs_tr, start)
    n_tot = _sum_nb(near, o, h, lo, c, n_tr, start - 1)
    for i in range(start, len(o)):
        top, bottom = (c[i], o[i]) if c[i] >= o[i] else (o[i], c[i])
        if (abs(c[i] - o[i]) < _average_nb(body, b_tot, o, h, lo, c, i)
                and bottom - lo[i] > _average_nb(shadow_long, sl_tot, o, h, lo, c, i)
                and h[i] - top < _average_nb(very_short, vs_tot, o, h, lo, c, i)
                and min(c[i], o[i]) <= lo[i - 1] + _average_nb(near, n_tot, o, h, lo, c, i - 1)):
            out[i] = 100
        b_tot += _range_nb(body, o, h, lo, c, i) - _range_nb(body, o, h, lo, c, b_tr)
        sl_tot += _range_nb(shadow_long, o, h, lo, c, i) - _range_nb(shadow_long, o, h, lo, c, sl_tr)
        vs_tot += _range_nb(very_short, o, h, lo, c, i) - _range_nb(very_short, o, h, lo, c, vs_tr)
        n_tot += _range_nb(near, o, h, lo, c, i - 1) - _range_nb(near, o, h, lo, c, n_tr)
        b_tr += 1
        sl_tr += 1
        vs_tr += 1
        n_tr += 1
    return out


@njit(cache=True)
def _shooting_star_nb(o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, body: np.ndarray,
                      shadow_long: np.ndarray, very_short: np.ndarray, start: int) -> np.ndarray:
    out = np.zeros(len(o), dtype=np.int32)
    if start >= len(o):
        return out
    b_tr, sl_tr, vs_tr = start - int(body[1]), start - int(shadow_long[1]), start - int(very_short[1])
    b_tot = _sum_nb(body, o, h, lo, c, b_tr, start)
    sl_tot = _sum_nb(shadow_long, o, h, lo, c, sl_tr, start)
    vs_tot = _sum_nb(very_short, o, h, lo, c, vs_tr, start)
    for i in range(start, len(o)):
        top, bottom = (c[i], o[i]) if c[i] >= o[i] else (o[i], c[i])
        if (min(o[i], c[i]) > max(o[i - 1], c[i - 1])
                and abs(c[i] - o[i]) < _average_nb(body, b_tot, o, h, lo, c, i)
                and h[i] - top > _average_nb(shadow_long, sl_tot, o, h, lo, c, i)
                and bottom - lo[i] < _average_nb(very_short, vs_tot, o, h, lo, c, i)):
            out[i] = -100
        b_tot += _range_nb(body, o, h, lo, c, i) - _range_nb(body, o, h, lo, c, b_tr)
        sl_tot += _range_nb(shadow_long, o, h, lo, c, i) - _range_nb(shadow_long, o, h, lo, c, sl_tr)
        vs_tot += _range_nb(very_short, o, h, lo, c, i) - _range_nb(very_short, o, h, lo, c, vs_tr)
        b_tr += 1
        sl_tr += 1
        vs_tr += 1
    return out


@njit(cache=True)
def _doji_nb(o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, body_doji: np.ndarray,
             start: int) -> np.ndarray:
    out = np.zeros(len(o), dtype=np.int32)
    if start >= len(o):
        return out
    tr = start - int(body_doji[1])
    tot = _sum_nb(body_doji, o, h, lo, c, tr, start)
    for i in range(start, len(o)):
        if abs(c[i] - o[i]) <= _average_nb(body_doji, tot, o, h, lo, c, i):
            out[i] = 100
        tot += _range_nb(body_doji, o, h, lo, c, i) - _range_nb(body_doji, o, h, lo, c, tr)
        tr += 1
    return out


@njit(cache=True)
def _star_nb(o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, body_long: np.ndarray,
             body_short: np.ndarray, penetration: float, start: int, sign: int) -> np.ndarray:
    """Morning star (``sign = +1``) or evening star (``sign = -1``)."""
    out = np.zeros(len(o), dtype=np.int32)
    if start >= len(o):
        return out
    l_tr, s_tr = start - 2 - int(body_long[1]), start - 1 - int(body_short[1])
    l_tot = _sum_nb(body_long, o, h, lo, c, l_tr, start - 2)
    s_tot = _sum_nb(body_short, o, h, lo, c, s_tr, start - 1)
    s_tot2 = _sum_nb(body_short, o, h, lo, c, s_tr + 1, start)
    for i in range(start, len(o)):
        first_white, last_white = c[i - 2] >= o[i - 2], c[i] >= o[i]
        first_body = abs(c[i - 2] - o[i - 2])
        if sign > 0:
            shape = (not first_white) and last_white \
                and max(o[i - 1], c[i - 1]) < min(o[i - 2], c[i - 2]) \
                and c[i] > c[i - 2] + first_body * penetration
        else:
            shape = first_white and not last_white \
                and min(o[i - 1], c[i - 1]) > max(o[i - 2], c[i - 2]) \
                and c[i] < c[i - 2] - first_body * penetration
        if (shape
                and first_body > _average_nb(body_long, l_tot, o, h, lo, c, i - 2)
                and abs(c[i - 1] - o[i - 1]) <= _average_nb(body_short, s_tot, o, h, lo, c, i - 1)
                and abs(c[i] - o[i]) > _average_nb(body_short, s_tot2, o, h, lo, c, i)):
            out[i] = 100 * sign
        l_tot += _range_nb(body_long, o, h, lo, c, i - 2) - _range_nb(body_long, o, h, lo, c, l_tr)
        s_tot += _range_nb(body_short, o, h, lo, c, i - 1) - _range_nb(body_short, o, h, lo, c, s_tr)
        s_tot2 += _range_nb(body_short, o, h, lo, c, i) - _range_nb(body_short, o, h, lo, c, s_tr + 1)
        l_tr += 1
        s_tr += 1
    return out


# --------------------------------------------------------------------------- plumbing

_USES: dict[str, tuple[str, ...]] = {
    "engulfing": (),
    "hammer": ("body_short", "shadow_long", "shadow_very_short", "near"),
    "shooting_star": ("body_short", "shadow_long", "shadow_very_short"),
    "doji": ("body_doji",),
    "morning_star": ("body_long", "body_short"),
    "evening_star": ("body_long", "body_short"),
}
"""Candle settings each pattern judges with."""

_BARS_BEFORE = {"hammer": 1, "shooting_star": 1, "doji": 0, "morning_star": 2, "evening_star": 2}
"""Bars before the judged one that a pattern reads beyond its settings' averaging periods."""


def lookback(pattern: str) -> int:
    """Leading bars of a symbol on which ``pattern`` is always 0 (TA-Lib's ``*_Lookback``).

    >>> lookback("engulfing"), lookback("hammer"), lookback("doji"), lookback("morning_star")
    (2, 11, 10, 12)
    """
    if pattern not in _USES:
        raise ValueError(f"unknown candlestick pattern {pattern!r}; expected one of {sorted(_USES)}")
    if pattern == "engulfing":
        return 2
    return max(CANDLE_SETTINGS[s].period for s in _USES[pattern]) + _BARS_BEFORE[pattern]


def _per_symbol(
    kernel: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray],
) -> Callable[..., tuple[pd.DataFrame]]:
    """Run a 1-D kernel over each column's complete bars; other rows are 0."""

    def run(o: pd.DataFrame, h: pd.DataFrame, lo: pd.DataFrame, c: pd.DataFrame) -> tuple[pd.DataFrame]:
        arrays = [f.to_numpy(dtype="float64") for f in (o, h, lo, c)]
        out = np.zeros(arrays[0].shape, dtype=np.int32)
        complete = np.logical_and.reduce([np.isfinite(a) for a in arrays])
        for j in range(out.shape[1]):
            rows = complete[:, j]
            cols = [np.ascontiguousarray(a[rows, j]) for a in arrays]
            out[rows, j] = kernel(*cols)
        return (pd.DataFrame(out, index=o.index, columns=o.columns),)

    return run


def _pattern(name: str, kernel: Callable[..., np.ndarray], open: Frame, high: Frame, low: Frame,
             close: Frame) -> Frame:
    inputs = {"open": open, "high": high, "low": low, "close": close}
    return _compute(name, _per_symbol(kernel), inputs, {})[0]


# --------------------------------------------------------------------------- patterns

def engulfing(open: Frame, high: Frame, low: Frame, close: Frame) -> Frame:
    """Engulfing: a body that engulfs the prior, opposite-coloured body (``CDLENGULFING``).

    Bullish (+100): a white (close >= open) body after a black one, opening at or below the prior
    close and closing at or above the prior open, strictly on at least one side. Bearish (-100):
    the mirror image. When the open equals the prior close or the close equals the prior open
    the value is +-80.

    Parameters
    ----------
    open, high, low, close : DataFrame or Series
        Same index and columns (one column per symbol).

    Returns
    -------
    DataFrame or Series
        int32 in {-100, -80, 0, 80, 100}; 0 on the first 2 bars of each symbol.
    """
    return _pattern("engulfing", _engulfing_nb, open, high, low, close)


def hammer(open: Frame, high: Frame, low: Frame, close: Frame) -> Frame:
    """Hammer: a small body at the top of a long lower shadow, near the prior low (``CDLHAMMER``).

    +100 when the body is shorter than the average body of the 10 prior bars, the lower shadow is
    longer than the body, the upper shadow is under 10% of the average high-low range of the 10
    prior bars, and the body's bottom is at most 20% of the average range (5 bars before the
    prior bar) above the prior bar's low. TA-Lib does not check the preceding trend.

    Parameters
    ----------
    open, high, low, close : DataFrame or Series
        Same index and columns.

    Returns
    -------
    DataFrame or Series
        int32 in {0, 100}; 0 on the first 11 bars of each symbol.
    """
    args = tuple(_setting(s) for s in _USES["hammer"])
    start = lookback("hammer")
    return _pattern("hammer", lambda o, h, lo, c: _hammer_nb(o, h, lo, c, *args, start), open, high, low, close)


def shooting_star(open: Frame, high: Frame, low: Frame, close: Frame) -> Frame:
    """Shooting star: a small body gapping up, with a long upper shadow (``CDLSHOOTINGSTAR``).

    -100 when the body gaps above the prior body, is shorter than the average body of the 10
    prior bars, the upper shadow is longer than the body and the lower shadow is under 10% of the
    average high-low range of the 10 prior bars. TA-Lib does not check the preceding trend.

    Parameters
    ----------
    open, high, low, close : DataFrame or Series
        Same index and columns.

    Returns
    -------
    DataFrame or Series
        int32 in {-100, 0}; 0 on the first 11 bars of each symbol.
    """
    args = tuple(_setting(s) for s in _USES["shooting_star"])
    start = lookback("shooting_star")
    return _pattern("shooting_star", lambda o, h, lo, c: _shooting_star_nb(o, h, lo, c, *args, start),
                    open, high, low, close)


def doji(open: Frame, high: Frame, low: Frame, close: Frame) -> Frame:
    """Doji: open and close (nearly) equal (``CDLDOJI``).

    +100 when the body is at most 10% of the average high-low range of the 10 prior bars. The
    sign follows TA-Lib and carries no direction: a doji marks indecision.

    Parameters
    ----------
    open, high, low, close : DataFrame or Series
        Same index and columns.

    Returns
    -------
    DataFrame or Series
        int32 in {0, 100}; 0 on the first 10 bars of each symbol.
    """
    arg, start = _setting("body_doji"), lookback("doji")
    return _pattern("doji", lambda o, h, lo, c: _doji_nb(o, h, lo, c, arg, start), open, high, low, close)


def _check_penetration(penetration: float) -> float:
    if isinstance(penetration, bool) or not isinstance(penetration, int | float | np.floating | np.integer) \
            or not np.isfinite(penetration) or penetration < 0:
        raise ValueError(f"penetration must be a finite number >= 0, got {penetration!r}")
    return float(penetration)


def _star(name: str, sign: int, penetration: float, frames: tuple[Frame, ...]) -> Frame:
    pen = _check_penetration(penetration)
    body_long, body_short = _setting("body_long"), _setting("body_short")
    start = lookback(name)
    return _pattern(name, lambda o, h, lo, c: _star_nb(o, h, lo, c, body_long, body_short, pen, start, sign),
                    *frames)


def morning_star(open: Frame, high: Frame, low: Frame, close: Frame, *, penetration: float = 0.3) -> Frame:
    """Morning star: long black body, a short body gapping down, then a white body (``CDLMORNINGSTAR``).

    +100 when bar ``t-2`` is black with a body longer than the average of its 10 prior bodies,
    bar ``t-1``'s body lies entirely below it and is no longer than the average of its 10 prior
    bodies, and bar ``t`` is white, longer than that average (over its own 10 prior bars) and
    closes above ``close[t-2] + penetration * body[t-2]``.

    Parameters
    ----------
    open, high, low, close : DataFrame or Series
        Same index and columns.
    penetration : float
        How far into the first body the third close must reach (TA-Lib's default 0.3).

    Returns
    -------
    DataFrame or Series
        int32 in {0, 100}; 0 on the first 12 bars of each symbol.
    """
    return _star("morning_star", 1, penetration, (open, high, low, close))


def evening_star(open: Frame, high: Frame, low: Frame, close: Frame, *, penetration: float = 0.3) -> Frame:
    """Evening star: long white body, a short body gapping up, then a black body (``CDLEVENINGSTAR``).

    The mirror image of :func:`morning_star`: -100 when the third close falls below
    ``close[t-2] - penetration * body[t-2]``.

    Parameters
    ----------
    open, high, low, close : DataFrame or Series
        Same index and columns.
    penetration : float
        How far into the first body the third close must reach (TA-Lib's default 0.3).

    Returns
    -------
    DataFrame or Series
        int32 in {-100, 0}; 0 on the first 12 bars of each symbol.
    """
    return _star("evening_star", -1, penetration, (open, high, low, close))


PATTERNS: MappingProxyType[str, Callable[..., Frame]] = MappingProxyType({
    "engulfing": engulfing,
    "hammer": hammer,
    "shooting_star": shooting_star,
    "doji": doji,
    "morning_star": morning_star,
    "evening_star": evening_star,
})
"""Pattern name -> function ``(open, high, low, close) -> int frame``."""

SIDES: MappingProxyType[str, str] = MappingProxyType({
    "engulfing": "both",
    "hammer": "bullish",
    "shooting_star": "bearish",
    "doji": "neutral",
    "morning_star": "bullish",
    "evening_star": "bearish",
})
"""Which signs a pattern can take: ``"bullish"`` (> 0 only), ``"bearish"`` (< 0 only), ``"both"``,
or ``"neutral"`` (a doji: TA-Lib writes +100, which marks indecision, not a direction)."""


def candlestick_patterns(
    prices: Mapping[str, Frame] | pd.DataFrame, names: Sequence[str] | None = None
) -> dict[str, Frame]:
    """Several patterns at once from one set of OHLC prices.

    Parameters
    ----------
    prices : mapping or DataFrame
        ``{"open": ..., "high": ..., "low": ..., "close": ...}`` wide frames, or one symbol's
        OHLC(V) frame with those columns (e.g. ``load_prices("SPX")``).
    names : sequence of str, optional
        Keys of :data:`PATTERNS` (default: all of them).

    Returns
    -------
    dict
        Pattern name -> its values (frames for wide input, Series for one symbol's frame).
    """
    wanted = list(PATTERNS) if names is None else list(names)
    unknown = [n for n in wanted if n not in PATTERNS]
    if unknown:
        raise ValueError(f"unknown candlestick pattern(s) {unknown}; expected some of {sorted(PATTERNS)}")
    missing = [f for f in ("open", "high", "low", "close") if f not in prices]
    if missing:
        have = list(prices.columns) if isinstance(prices, pd.DataFrame) else sorted(prices)
        raise ValueError(f"candlestick patterns need open, high, low and close; missing {missing} (got {have})")
    fields = [prices[f] for f in ("open", "high", "low", "close")]
    return {n: PATTERNS[n](*fields) for n in wanted}
