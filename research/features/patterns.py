"""Candlestick patterns, equal bar for bar to TA-Lib's ``CDL*`` functions.

Each pattern takes ``open, high, low, close`` (wide frames, one column per symbol, or Series)
and returns integers in TA-Lib's convention: ``+100`` for a bullish pattern on that bar,
``-100`` for a bearish one, ``0`` for none. :func:`engulfing` also gives ``+-80`` when the
engulfing body only touches the prior body (equal open or close), as TA-Lib does.

======================  ===================  ==========================================
function                TA-Lib               values
======================  ===================  ==========================================
:func:`engulfing`       ``CDLENGULFING``     +100 / +80 bullish, -100 / -80 bearish
:func:`hammer`          ``CDLHAMMER``        +100
:func:`shooting_star`   ``CDLSHOOTINGSTAR``  -100
:func:`doji`            ``CDLDOJI``          +100 (indecision: the sign has no direction)
:func:`morning_star`    ``CDLMORNINGSTAR``   +100 (``penetration`` 0.3 by default)
:func:`evening_star`    ``CDLEVENINGSTAR``   -100 (``penetration`` 0.3 by default)
======================  ===================  ==========================================

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

from research.kernel_cache import configure_kernel_cache

configure_kernel_cache()  # before the @njit(cache=True) decorators below

__all__ = [
    "CandleSetting", "CANDLE_SETTINGS", "PATTERNS", "engulfing", "hammer", "shooting_star", "doji",
    "morning_star", "evening_star", "lookback", "candlestick_patterns", "SIDES",
]

logger = logging.getLogger(__name__)

Frame = pd.DataFrame | pd.Series

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


def _params(names: tuple[str, ...]) -> np.ndarray:
    """``period, factor, divisor`` of each setting (the divisor halves a shadows average)."""
    settings = [CANDLE_SETTINGS[n] for n in names]
    return np.array([[s.period, s.factor, 2.0 if s.range_type == "shadows" else 1.0] for s in settings],
                    dtype=np.float64).reshape(len(settings), 3)


def _ranges(names: tuple[str, ...], o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Each setting's range per bar, stacked on a new first axis (TA-Lib's ``TA_CANDLERANGE``, same operations)."""
    if not names:
        return np.empty((0, *o.shape))
    kinds = {CANDLE_SETTINGS[n].range_type for n in names}
    by_type = {}
    if "real_body" in kinds:
        by_type["real_body"] = np.abs(c - o)
    if "high_low" in kinds:
        by_type["high_low"] = h - lo
    if "shadows" in kinds:
        white = c >= o
        by_type["shadows"] = (h - np.where(white, c, o)) + (np.where(white, o, c) - lo)
    return np.stack([by_type[CANDLE_SETTINGS[n].range_type] for n in names])


# --------------------------------------------------------------------------- kernels
# Each kernel reads one symbol's complete bars. ``ranges[k]`` and ``params[k]`` describe the k-th
# setting the pattern uses (in the order of ``_USES``); running totals start at TA-Lib's trailing
# index and are updated after each bar exactly as TA-Lib does (``total += new - old``).

@njit(cache=True)
def _avg_nb(total: float, own: float, period: float, factor: float, divisor: float) -> float:
    """``TA_CANDLEAVERAGE``: ``factor * (total / period) / divisor`` (the bar's own range if period is 0)."""
    base = total / period if period != 0.0 else own
    return factor * base / divisor


@njit(cache=True)
def _total_nb(r: np.ndarray, start: int, stop: int) -> float:
    total = 0.0
    for k in range(start, stop):
        total += r[k]
    return total


@njit(cache=True)
def _engulfing_nb(o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, ranges: np.ndarray,
                  params: np.ndarray, start: int) -> np.ndarray:
    out = np.zeros(len(o), dtype=np.int32)
    for i in range(start, len(o)):
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
def _hammer_nb(o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, ranges: np.ndarray,
               params: np.ndarray, start: int) -> np.ndarray:
    """Settings: body_short, shadow_long, shadow_very_short, near."""
    n = len(o)
    out = np.zeros(n, dtype=np.int32)
    if start >= n:
        return out
    rb, rs, rv, rn = ranges[0], ranges[1], ranges[2], ranges[3]
    pb, ps, pv, pn = params[0], params[1], params[2], params[3]
    tb, ts, tv, tn = start - int(pb[0]), start - int(ps[0]), start - int(pv[0]), start - 1 - int(pn[0])
    sb, ss, sv = _total_nb(rb, tb, start), _total_nb(rs, ts, start), _total_nb(rv, tv, start)
    sn = _total_nb(rn, tn, start - 1)
    for i in range(start, n):
        top, bottom = (c[i], o[i]) if c[i] >= o[i] else (o[i], c[i])
        if (abs(c[i] - o[i]) < _avg_nb(sb, rb[i], pb[0], pb[1], pb[2])
                and bottom - lo[i] > _avg_nb(ss, rs[i], ps[0], ps[1], ps[2])
                and h[i] - top < _avg_nb(sv, rv[i], pv[0], pv[1], pv[2])
                and min(c[i], o[i]) <= lo[i - 1] + _avg_nb(sn, rn[i - 1], pn[0], pn[1], pn[2])):
            out[i] = 100
        sb += rb[i] - rb[tb]
        ss += rs[i] - rs[ts]
        sv += rv[i] - rv[tv]
        sn += rn[i - 1] - rn[tn]
        tb += 1
        ts += 1
        tv += 1
        tn += 1
    return out


@njit(cache=True)
def _shooting_star_nb(o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, ranges: np.ndarray,
                      params: np.ndarray, start: int) -> np.ndarray:
    """Settings: body_short, shadow_long, shadow_very_short."""
    n = len(o)
    out = np.zeros(n, dtype=np.int32)
    if start >= n:
        return out
    rb, rs, rv = ranges[0], ranges[1], ranges[2]
    pb, ps, pv = params[0], params[1], params[2]
    tb, ts, tv = start - int(pb[0]), start - int(ps[0]), start - int(pv[0])
    sb, ss, sv = _total_nb(rb, tb, start), _total_nb(rs, ts, start), _total_nb(rv, tv, start)
    for i in range(start, n):
        top, bottom = (c[i], o[i]) if c[i] >= o[i] else (o[i], c[i])
        if (min(o[i], c[i]) > max(o[i - 1], c[i - 1])
                and abs(c[i] - o[i]) < _avg_nb(sb, rb[i], pb[0], pb[1], pb[2])
                and h[i] - top > _avg_nb(ss, rs[i], ps[0], ps[1], ps[2])
                and bottom - lo[i] < _avg_nb(sv, rv[i], pv[0], pv[1], pv[2])):
            out[i] = -100
        sb += rb[i] - rb[tb]
        ss += rs[i] - rs[ts]
        sv += rv[i] - rv[tv]
        tb += 1
        ts += 1
        tv += 1
    return out


@njit(cache=True)
def _doji_nb(o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, ranges: np.ndarray,
             params: np.ndarray, start: int) -> np.ndarray:
    """Settings: body_doji."""
    n = len(o)
    out = np.zeros(n, dtype=np.int32)
    if start >= n:
        return out
    r, p = ranges[0], params[0]
    t = start - int(p[0])
    total = _total_nb(r, t, start)
    for i in range(start, n):
        if abs(c[i] - o[i]) <= _avg_nb(total, r[i], p[0], p[1], p[2]):
            out[i] = 100
        total += r[i] - r[t]
        t += 1
    return out


@njit(cache=True)
def _star_nb(o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, ranges: np.ndarray,
             params: np.ndarray, start: int, penetration: float, sign: int) -> np.ndarray:
    """Morning star (``sign = +1``) or evening star (``sign = -1``). Settings: body_long, body_short."""
    n = len(o)
    out = np.zeros(n, dtype=np.int32)
    if start >= n:
        return out
    rl, rs = ranges[0], ranges[1]
    pl, ps = params[0], params[1]
    tl, ts = start - 2 - int(pl[0]), start - 1 - int(ps[0])
    sl, ss, ss2 = _total_nb(rl, tl, start - 2), _total_nb(rs, ts, start - 1), _total_nb(rs, ts + 1, start)
    for i in range(start, n):
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
                and first_body > _avg_nb(sl, rl[i - 2], pl[0], pl[1], pl[2])
                and abs(c[i - 1] - o[i - 1]) <= _avg_nb(ss, rs[i - 1], ps[0], ps[1], ps[2])
                and abs(c[i] - o[i]) > _avg_nb(ss2, rs[i], ps[0], ps[1], ps[2])):
            out[i] = 100 * sign
        sl += rl[i - 2] - rl[tl]
        ss += rs[i - 1] - rs[ts]
        ss2 += rs[i] - rs[ts + 1]
        tl += 1
        ts += 1
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


def _symbol_major(name: str, frames: tuple[Frame, ...]) -> tuple[list[np.ndarray], pd.DataFrame | pd.Series]:
    """Validated inputs as float arrays of shape (symbol, bar), and the first input (for the output's axes)."""
    fields = ("open", "high", "low", "close")
    series_in = [isinstance(f, pd.Series) for f in frames]
    if any(series_in) and not all(series_in):
        raise TypeError(f"{name}: give all inputs as Series or all as DataFrames ({', '.join(fields)})")
    for field, frame in zip(fields, frames, strict=True):
        if not isinstance(frame, pd.Series | pd.DataFrame):
            raise TypeError(f"{field} must be a pandas DataFrame or Series, not {type(frame).__name__}")
    ref = frames[0]
    for field, frame in zip(fields[1:], frames[1:], strict=True):
        same_cols = all(series_in) or frame.columns.equals(ref.columns)
        if not frame.index.equals(ref.index) or not same_cols:
            raise ValueError(
                f"{field} must have the same index and columns as open (open: {ref.shape[0]} rows x "
                f"{1 if all(series_in) else ref.shape[1]} columns; {field}: {frame.shape[0]} rows x "
                f"{1 if all(series_in) else frame.shape[1]} columns)"
            )
    arrays = [np.asarray(f.to_numpy(dtype="float64")) for f in frames]
    return [np.ascontiguousarray(a[None, :] if a.ndim == 1 else a.T) for a in arrays], ref


def _pattern(name: str, kernel: Callable[..., np.ndarray], frames: tuple[Frame, ...], *extra: float) -> Frame:
    """Run ``kernel`` over each symbol's complete bars (other rows are 0), shaped like the inputs."""
    columns, ref = _symbol_major(name, frames)
    start, names = lookback(name), _USES[name]
    params = _params(names)
    out = np.zeros(columns[0].shape, dtype=np.int32)
    complete = np.logical_and.reduce([np.isfinite(a) for a in columns])
    ranges = np.ascontiguousarray(_ranges(names, *columns).transpose(1, 0, 2))  # (symbol, setting, bar)
    for j in range(out.shape[0]):
        rows = complete[j]
        whole = rows.all()
        bars = [a[j] if whole else a[j][rows] for a in columns]
        found = kernel(*bars, ranges[j] if whole else _ranges(names, *bars), params, start, *extra)
        if whole:
            out[j] = found
        else:
            out[j][rows] = found
    if isinstance(ref, pd.Series):
        return pd.Series(out[0], index=ref.index, name=name, copy=False)
    return pd.DataFrame(out.T, index=ref.index, columns=ref.columns, copy=False)


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
    return _pattern("engulfing", _engulfing_nb, (open, high, low, close))


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
    return _pattern("hammer", _hammer_nb, (open, high, low, close))


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
    return _pattern("shooting_star", _shooting_star_nb, (open, high, low, close))


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
    return _pattern("doji", _doji_nb, (open, high, low, close))


def _check_penetration(penetration: float) -> float:
    if isinstance(penetration, bool) or not isinstance(penetration, int | float | np.floating | np.integer) \
            or not np.isfinite(penetration) or penetration < 0:
        raise ValueError(f"penetration must be a finite number >= 0, got {penetration!r}")
    return float(penetration)


def _star(name: str, sign: int, penetration: float, frames: tuple[Frame, ...]) -> Frame:
    return _pattern(name, _star_nb, frames, _check_penetration(penetration), sign)


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
