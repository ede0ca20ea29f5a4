"""Seeded synthetic price paths: geometric Brownian motion with jumps and volatility regimes.

Any symbol, any range, any interval. Every symbol has one path per interval, defined for every
date: its bars are generated a calendar year at a time, each year from its own random stream
seeded by ``(seed, symbol, interval, year)``, and the price level carries over from year to
year (the year's returns add up from the level the path reached at the end of the year
before, anchored at 2000). So a bar is a pure function of ``(seed, symbol, interval, its
timestamp)``: the same date gives the same bar whatever range is requested, a longer request
extends a shorter one without changing it (prefixes and sub-ranges are stable), and
incremental ingests and tests are reproducible.

Bars follow the symbol's calendar (:func:`~research.data.calendars.calendar_of`): ``*-USD``
symbols trade 24/7 (higher volatility), others on NYSE sessions. ``1d`` bars are stamped
00:00 UTC of the session date; ``1h`` bars are every hour for crypto and the seven hourly bars
of the regular session (09:30 to 15:30 New York time, in UTC) for equities; ``1wk`` and ``1mo``
bars aggregate the daily bars of each calendar week (stamped its Monday) and month (stamped
its first day). A request whose range holds no bar on the symbol's calendar (a weekend for an
equity, ``start`` after ``end``) raises :class:`~research.data.errors.InvalidRequestError`;
an empty frame is never returned. Everything this source produces carries ``synthetic =
True`` in the store's manifest and in ``frame.attrs``.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np
import pandas as pd

from research.data.calendars import CRYPTO, EQUITY, Calendar, calendar_of, get_calendar
from research.data.errors import InvalidRequestError
from research.data.resilience import describe_request
from research.data.sources.base import Source
from research.timeutil import to_utc

__all__ = ["SyntheticSource", "synthetic_ohlcv", "synthetic_close_matrix", "synthetic_bars"]

_ORIGIN = pd.Timestamp("2000-01-03", tz="UTC")
_BARS = 6000
_ANCHOR_YEAR = 2000  # the level p0 is the close before the first bar of this year
_YEARS = (1900, 2200)  # the years the generator covers
_EQUITY_HOURS = [pd.Timedelta(hours=9, minutes=30) + pd.Timedelta(hours=h) for h in range(7)]
_INTERVALS = ("1h", "1d", "1wk", "1mo")


def _stream(*key: object) -> np.random.Generator:
    digest = hashlib.sha256(":".join(map(str, key)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _start_price(seed: int, symbol: str) -> float:
    """The symbol's price level at the anchor (the same for every interval)."""
    return float(np.exp(_stream(seed, symbol).uniform(np.log(10), np.log(500))))


@lru_cache(maxsize=64)
def _decade_sessions(cal: Calendar, decade: int) -> pd.DatetimeIndex:
    """The calendar's sessions of ten years at once (its holiday rules are slow to evaluate)."""
    return cal.sessions(pd.Timestamp(f"{decade}-01-01", tz="UTC"), pd.Timestamp(f"{decade + 9}-12-31", tz="UTC"))


@lru_cache(maxsize=1024)
def _year_index(cal: Calendar, interval: str, year: int) -> pd.DatetimeIndex:
    """Every bar of ``year`` at ``interval`` (``1d`` or ``1h``) on ``cal``, in UTC."""
    first, last = pd.Timestamp(f"{year}-01-01", tz="UTC"), pd.Timestamp(f"{year}-12-31", tz="UTC")
    block = _decade_sessions(cal, year // 10 * 10)
    days = block[(block >= first) & (block <= last)]
    if interval == "1d":
        return days
    if cal.name == "crypto":
        return pd.date_range(first, last + pd.Timedelta(hours=23), freq="h", name="timestamp")
    local = days.tz_localize(None)
    stamps = [(local + offset).tz_localize("America/New_York").tz_convert("UTC") for offset in _EQUITY_HOURS]
    return stamps[0].append(stamps[1:]).sort_values().rename("timestamp")


def _regimes(rng: np.random.Generator, n: int) -> np.ndarray:
    """A calm/stressed Markov chain (enter stress w.p. 0.01 a bar, leave w.p. 0.05), vectorised."""
    p_enter, p_leave = 0.01, 0.05
    state = bool(rng.random() < p_enter / (p_enter + p_leave))  # stationary start
    out = np.empty(n, dtype=bool)
    filled = 0
    while filled < n:
        run = int(rng.geometric(p_leave if state else p_enter))
        out[filled:filled + run] = state
        filled += run
        state = not state
    return out


@lru_cache(maxsize=8192)
def _year(seed: int, symbol: str, cal_name: str, interval: str, year: int) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """One year of a path: its index and a ``(5, n)`` array ``[log return, gap, wick up, wick down, volume]``."""
    cal = get_calendar(cal_name)
    index = _year_index(cal, interval, year)
    n = len(index)
    rng = _stream(seed, symbol, interval, year)
    periods = cal.periods(interval)
    vol = 0.7 if cal is CRYPTO else 0.25
    sigma = np.where(_regimes(rng, n), vol * 2.0, vol * 0.75) / np.sqrt(periods)
    drift = 0.06 / periods - 0.5 * sigma**2
    jumps = rng.poisson(3.0 / periods, n) * rng.normal(-0.02, 0.06, n)
    r = drift + sigma * rng.standard_normal(n) + jumps
    scale = vol / np.sqrt(periods)
    gap = rng.normal(0, scale * 0.3, n)
    wick = np.abs(rng.normal(0, scale * 0.5, (2, n)))
    volume = np.round(rng.lognormal(13, 0.4, n) * (1 + 20 * np.abs(r)))
    draws = np.vstack([r, gap, wick, volume])
    draws.setflags(write=False)
    return index, draws


@lru_cache(maxsize=8192)
def _level(seed: int, symbol: str, cal_name: str, interval: str, year: int) -> float:
    """Log price level (relative to p0) at the start of ``year``: the sum of the years between."""
    if year == _ANCHOR_YEAR:
        return 0.0
    if year > _ANCHOR_YEAR:
        return _level(seed, symbol, cal_name, interval, year - 1) + float(_year(seed, symbol, cal_name, interval, year - 1)[1][0].sum())
    return _level(seed, symbol, cal_name, interval, year + 1) - float(_year(seed, symbol, cal_name, interval, year)[1][0].sum())


def _base_bars(symbol: str, seed: int, cal: Calendar, interval: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """``1d`` or ``1h`` bars with ``start <= timestamp <= end`` (possibly none)."""
    lo, hi = max(start.year, _YEARS[0]), min(end.year, _YEARS[1])
    if lo > hi:
        return _empty()
    for y in range(min(lo, _ANCHOR_YEAR), max(hi, _ANCHOR_YEAR) + 1):  # warm the level cache in order
        _level(seed, symbol, cal.name, interval, y)
    parts = [_year(seed, symbol, cal.name, interval, y) for y in range(lo, hi + 1)]
    index = parts[0][0].append([p[0] for p in parts[1:]]) if len(parts) > 1 else parts[0][0]
    _, gap, up, down, volume = np.hstack([p[1] for p in parts])
    # each year's closes start from the level the path reached at its start, so a bar's value
    # never depends on which years were requested with it
    levels = [_level(seed, symbol, cal.name, interval, y) for y in range(lo, hi + 1)]
    within = [lv + np.cumsum(p[1][0]) for lv, p in zip(levels, parts, strict=True)]
    log_close = np.concatenate(within)
    log_prev = np.concatenate([np.concatenate([[lv], w[:-1]]) for lv, w in zip(levels, within, strict=True)])
    p0 = _start_price(seed, symbol)
    close = p0 * np.exp(log_close)
    prev = p0 * np.exp(log_prev)
    open_ = prev * np.exp(gap)
    frame = pd.DataFrame(
        {"open": open_, "high": np.maximum(open_, close) * np.exp(up), "low": np.minimum(open_, close) * np.exp(-down),
         "close": close, "volume": volume},
        index=pd.DatetimeIndex(index, name="timestamp").as_unit("ns"),
    )
    return frame.loc[start:end]


def _empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="float64") for c in ("open", "high", "low", "close", "volume")},
                        index=pd.DatetimeIndex([], tz="UTC", name="timestamp").as_unit("ns"))


def bar_index(cal: Calendar, interval: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    """The timestamps of the bars with ``start <= timestamp <= end`` (no prices are drawn)."""
    lo, hi = max(start.year, _YEARS[0]), min(end.year, _YEARS[1])
    if lo > hi or start > end:
        return pd.DatetimeIndex([], tz="UTC", name="timestamp").as_unit("ns")
    if interval in ("1d", "1h"):
        years = [_year_index(cal, interval, y) for y in range(lo, hi + 1)]
        index = years[0].append(years[1:]) if len(years) > 1 else years[0]
        return index[(index >= start) & (index <= end)].as_unit("ns")
    first, last = _whole_periods(start, end, interval)
    if first > last:
        return pd.DatetimeIndex([], tz="UTC", name="timestamp").as_unit("ns")
    days = bar_index(cal, "1d", first, last + (pd.Timedelta(days=6) if interval == "1wk" else pd.offsets.MonthEnd(1)))
    keys = pd.DatetimeIndex(sorted({_period_start(t, interval) for t in days}), name="timestamp")
    return keys.as_unit("ns") if len(keys) else pd.DatetimeIndex([], tz="UTC", name="timestamp").as_unit("ns")


def _whole_periods(start: pd.Timestamp, end: pd.Timestamp, interval: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The first and last period start of the whole weeks or months within ``start..end``."""
    first = _period_start(start, interval)
    if first < start:
        first = first + (pd.Timedelta(weeks=1) if interval == "1wk" else pd.offsets.MonthBegin(1))
    return first, _period_start(end, interval)


def _period_start(ts: pd.Timestamp, interval: str) -> pd.Timestamp:
    day = ts.normalize()
    if interval == "1wk":
        return day - pd.Timedelta(days=day.weekday())
    return day.replace(day=1)


def _aggregate(symbol: str, seed: int, cal: Calendar, interval: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Weekly or monthly bars from the daily bars of whole weeks or months."""
    first, last_start = _whole_periods(start, end, interval)
    if first > last_start:
        return _empty()
    last = last_start + (pd.Timedelta(days=6) if interval == "1wk" else pd.offsets.MonthEnd(1))
    daily = _base_bars(symbol, seed, cal, "1d", first, last)
    if daily.empty:
        return _empty()
    keys = [_period_start(t, interval) for t in daily.index]
    agg = daily.groupby(pd.DatetimeIndex(keys, name="timestamp")).agg(
        open=("open", "first"), high=("high", "max"), low=("low", "min"), close=("close", "last"), volume=("volume", "sum"))
    agg.index = pd.DatetimeIndex(agg.index, name="timestamp").as_unit("ns")
    return agg


def synthetic_bars(
    symbol: str, start: object, end: object, *, interval: str = "1d", seed: int = 42, calendar: Calendar | None = None,
) -> pd.DataFrame:
    """The synthetic bars of ``symbol`` with ``start <= timestamp <= end`` (inclusive, UTC).

    Raises
    ------
    InvalidRequestError
        Unknown interval, ``start`` after ``end``, a range outside 1900-2200, or a range that
        holds no bar on the symbol's calendar.
    """
    cal = calendar or calendar_of(symbol)
    s, e = to_utc(start), to_utc(end)
    what = f"synthetic {describe_request(symbol, s, e, interval)}"
    if interval not in _INTERVALS:
        raise InvalidRequestError(f"{what}: the synthetic source makes {list(_INTERVALS)} bars, not {interval!r}")
    if s > e:
        raise InvalidRequestError(f"{what}: start is after end")
    if s.year < _YEARS[0] or e.year > _YEARS[1]:
        raise InvalidRequestError(f"{what}: the synthetic source covers {_YEARS[0]}-{_YEARS[1]}")
    if interval in ("1d", "1h"):
        frame = _base_bars(symbol, seed, cal, interval, s, e)
    else:
        frame = _aggregate(symbol, seed, cal, interval, s, e)
    if frame.empty:
        raise InvalidRequestError(f"{what}: no {interval} bar in the range on the {cal.name} calendar "
                                  f"({'24/7' if cal is CRYPTO else 'NYSE sessions'}); widen the range")
    frame.attrs.update(source="synthetic", symbol=symbol, synthetic=True)
    return frame


_SPAN_DAYS = {"1d": 1.0, "1h": 1 / 24, "1wk": 7.0, "1mo": 31.0}


@lru_cache(maxsize=1024)
def _nth_bar(cal: Calendar, interval: str, anchor: pd.Timestamp, n: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The first and last of the ``|n|`` bars from ``anchor`` onwards (``n > 0``) or up to it (``n < 0``)."""
    per_day = _SPAN_DAYS.get(interval, 1.0) * (1.0 if cal is CRYPTO or interval == "1mo" else 1.6)
    if interval == "1h" and cal is EQUITY:
        per_day = 1.6 / 7
    span = pd.Timedelta(days=int(abs(n) * per_day) + 40)
    while True:
        lo, hi = (anchor, anchor + span) if n > 0 else (anchor - span, anchor)
        index = bar_index(cal, interval, lo, hi)
        if len(index) >= abs(n) or lo.year <= _YEARS[0] or hi.year >= _YEARS[1]:
            index = index[:n] if n > 0 else index[n:]
            if not len(index):
                raise InvalidRequestError(f"synthetic: no {interval} bar near {anchor} on the {cal.name} calendar")
            return index[0], index[-1]
        span = span * 2


@lru_cache(maxsize=4096)
def _window(
    cal: Calendar, interval: str, s: pd.Timestamp | None, e: pd.Timestamp | None, origin: pd.Timestamp, bars: int,
) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """:meth:`SyntheticSource.window` for one calendar; ``None`` when the range holds no bar."""
    if interval not in _INTERVALS:
        return None
    if s is None and (e is None or e >= origin):
        s = origin
    if s is None:  # only an end before the default window: the `bars` bars up to it
        return _nth_bar(cal, interval, e, -bars)
    if e is None:
        e = max(_nth_bar(cal, interval, origin, bars)[1], _nth_bar(cal, interval, s, bars)[1])
    if s > e:
        return None
    index = bar_index(cal, interval, s, e)
    return (index[0], index[-1]) if len(index) else None


def synthetic_ohlcv(
    symbol: str,
    *,
    bars: int = _BARS,
    seed: int = 42,
    start: pd.Timestamp | str = _ORIGIN,
    interval: str = "1d",
    calendar: Calendar | None = None,
) -> pd.DataFrame:
    """The first ``bars`` synthetic bars of ``symbol`` from ``start`` (valid by construction).

    Parameters
    ----------
    symbol : str
        Any name; it seeds the path together with ``seed``.
    bars : int
        Number of bars.
    seed : int
        Global seed.
    start : timestamp
        The first bar is the first one at or after ``start`` on the calendar.
    interval : {"1d", "1h", "1wk", "1mo"}
        Bar length.
    calendar : Calendar, optional
        Defaults to crypto for ``*-USD`` symbols, equity otherwise.
    """
    if bars < 1:
        raise InvalidRequestError(f"synthetic {symbol}: bars must be >= 1, got {bars}")
    cal = calendar or calendar_of(symbol)
    first, last = _nth_bar(cal, interval, to_utc(start), bars)
    return synthetic_bars(symbol, first, last, interval=interval, seed=seed, calendar=cal)


def synthetic_close_matrix(n_symbols: int, n_bars: int, *, seed: int = 42) -> pd.DataFrame:
    """A wide close matrix of ``n_symbols`` synthetic equities named ``SYN0000``... (in memory)."""
    cols = {f"SYN{i:04d}": synthetic_ohlcv(f"SYN{i:04d}", bars=n_bars, seed=seed)["close"] for i in range(n_symbols)}
    frame = pd.DataFrame(cols)
    frame.attrs.update(source="synthetic", synthetic=True)
    return frame


class SyntheticSource(Source):
    """Seeded synthetic bars for any symbol and range (labelled synthetic everywhere).

    Parameters
    ----------
    seed : int
        Global seed.
    bars, start : int, timestamp
        The default window: a request with no ``start`` begins at ``start``, and one with no
        ``end`` ends ``bars`` bars after its start (the default window's end when that is
        later). The values of a bar do not depend on them.
    """

    name = "synthetic"
    synthetic = True
    #: The source makes bars for any range: the store fetches what a request needs.
    unbounded = True

    def __init__(self, *, seed: int = 42, bars: int = _BARS, start: str | pd.Timestamp = _ORIGIN) -> None:
        self.seed, self.bars = seed, bars
        self.start = pd.Timestamp(start).tz_localize(None) if pd.Timestamp(start).tzinfo else pd.Timestamp(start)
        if seed != 42:
            self.name = f"synthetic-s{seed}"  # another seed is another dataset in the store

    def calendar(self, symbol: str) -> Calendar:
        return calendar_of(symbol)

    def provenance(self, symbol: str) -> str:
        return f"synthetic:{symbol} (GBM with jumps and volatility regimes, seed={self.seed}, any range)"

    def window(self, symbol: str, start: object, end: object, interval: str = "1d") -> tuple[pd.Timestamp, pd.Timestamp]:
        """The first and last bar a request covers (open ends filled from the default window).

        Raises :class:`InvalidRequestError` when the range holds no bar.
        """
        cal = self.calendar(symbol)
        s = to_utc(start) if start is not None else None
        e = to_utc(end) if end is not None else None
        bounds = _window(cal, interval, s, e, to_utc(self.start), self.bars)
        if bounds is None:
            synthetic_bars(symbol, s, e, interval=interval, seed=self.seed, calendar=cal)  # raises, naming the range
            raise InvalidRequestError(f"synthetic {symbol}: no {interval} bar in the range")  # pragma: no cover
        return bounds

    def fetch(self, symbol, start, end, interval="1d") -> pd.DataFrame:
        """Bars with ``start <= timestamp <= end``; open ends as in :meth:`window`."""
        first, last = self.window(symbol, start, end, interval)
        return synthetic_bars(symbol, first, last, interval=interval, seed=self.seed)
