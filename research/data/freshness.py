"""Freshness: how many bars a symbol's data lags a moment, and whether that makes it stale.

One rule, used by the signals, the backtest engine and the paper book (no target and no order for
a stale symbol), the paper monitor (a held stale position is flagged with its age) and the
dashboards:

* ``bars_behind(calendar, interval, last_bar, as_of)`` counts the bars the calendar expects
  after ``last_bar`` up to ``as_of``: for daily bars, the calendar's sessions after the last
  bar's day up to the as-of day (a weekend or a holiday is not a missed bar, and a bar in the
  as-of session means none is missed); for hourly 24/7 bars, the hours after the last bar up to
  the as-of hour; for hourly equity bars, the sessions missed times the bars of a session;
  weekly and monthly bars count weeks and months.
* ``is_stale(...)`` is ``bars_behind(...) > stale_bars`` (:data:`STALE_BARS` by default).

A symbol's calendar is the one its source recorded (``attrs["calendars"]`` of a frame from
:func:`research.data.load_prices`), else the rule of :func:`~research.data.calendars.calendar_of`.

>>> bars_behind("equity", "1d", "2018-12-21", "2018-12-27")   # Mon 24, Wed 26, Thu 27
3
>>> is_stale("crypto", "1h", "2000-09-05 20:00", "2000-09-05 23:00", stale_bars=2)
True
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import lru_cache

import numpy as np
import pandas as pd

from research.data.calendars import Calendar, calendar_of, get_calendar
from research.timeutil import to_utc_index

__all__ = ["STALE_BARS", "bars_behind", "is_stale", "stale_frame", "symbol_calendar", "frame_interval", "bar_age"]

log = logging.getLogger(__name__)

STALE_BARS = 3
"""Bars a symbol may lag before it is stale (the pipelines' ``stale_bars`` default)."""

_STEPS = {"1h": pd.Timedelta(hours=1), "1wk": pd.Timedelta(weeks=1)}


def _cal(calendar: Calendar | str) -> Calendar:
    return calendar if isinstance(calendar, Calendar) else get_calendar(str(calendar))


def _utc_index(values: object) -> pd.DatetimeIndex:
    return to_utc_index(pd.to_datetime(np.atleast_1d(np.asarray(values, dtype=object))))


@lru_cache(maxsize=256)
def _sessions(calendar: str, first_year: int, last_year: int) -> pd.DatetimeIndex:
    """The calendar's sessions of whole years (cached: every session of a replay asks again)."""
    return get_calendar(calendar).sessions(pd.Timestamp(f"{first_year}-01-01"), pd.Timestamp(f"{last_year}-12-31"))


def _behind(cal: Calendar, interval: str, last: pd.DatetimeIndex, as_of: pd.DatetimeIndex) -> np.ndarray:
    """Bars expected in ``(last, as_of]``, element-wise; -1 where ``last`` is NaT."""
    out = np.full(len(last), -1, dtype=np.int64)
    ok = ~(last.isna() | as_of.isna())
    if not ok.any():
        return out
    lo, hi = last[ok], as_of[ok]
    if interval == "1d" or (interval == "1h" and cal.name == "equity"):
        days = _sessions(cal.name, min(lo.min(), hi.min()).year, max(lo.max(), hi.max()).year)
        a = days.searchsorted(lo.normalize(), side="right")
        b = days.searchsorted(hi.normalize(), side="right")
        n = np.maximum(b - a, 0)
        out[ok] = n * (int(np.ceil(cal.hours_per_day)) if interval == "1h" else 1)
    elif interval in _STEPS:
        step = _STEPS[interval]
        out[ok] = np.maximum(((hi - lo) // step).to_numpy(dtype=np.int64), 0)
    elif interval == "1mo":
        out[ok] = np.maximum((hi.year - lo.year) * 12 + (hi.month - lo.month), 0)
    else:
        raise ValueError(f"unknown interval {interval!r}; expected '1h', '1d', '1wk' or '1mo'")
    return out


def bars_behind(calendar: Calendar | str, interval: str, last_bar: object, as_of: object) -> int:
    """Bars ``calendar`` expects at ``interval`` after ``last_bar`` up to ``as_of``.

    Parameters
    ----------
    calendar : Calendar or str
        ``"equity"`` or ``"crypto"`` (or the object).
    interval : str
        ``"1h"``, ``"1d"``, ``"1wk"`` or ``"1mo"``.
    last_bar, as_of : timestamp-like
        The symbol's last bar and the moment asked about (naive values are UTC); an
        :class:`~research.data.asof.AsOf` is read through its ``end``.

    Returns
    -------
    int
        0 when the symbol has a bar in the as-of session (or hour).
    """
    if last_bar is None or pd.isna(last_bar):
        raise ValueError("bars_behind needs the symbol's last bar (the symbol has none)")
    end = getattr(as_of, "end", as_of)
    return int(_behind(_cal(calendar), interval, _utc_index([last_bar]), _utc_index([end]))[0])


def is_stale(calendar: Calendar | str, interval: str, last_bar: object, as_of: object, *,
             stale_bars: int = STALE_BARS) -> bool:
    """Whether the data lags ``as_of`` by more than ``stale_bars`` bars (no last bar: stale)."""
    if last_bar is None or pd.isna(last_bar):
        return True
    return bars_behind(calendar, interval, last_bar, as_of) > stale_bars


def bar_age(last_bar: object, as_of: object) -> pd.Timedelta:
    """Wall-clock age of ``last_bar`` at ``as_of`` (what a flag shows next to a stale position)."""
    a, b = _utc_index([last_bar])[0], _utc_index([getattr(as_of, "end", as_of)])[0]
    return b - a


def symbol_calendar(frame: object, symbol: str) -> Calendar:
    """The calendar of ``symbol`` as its source recorded it on ``frame`` (else :func:`calendar_of`)."""
    recorded = getattr(frame, "attrs", {}).get("calendars") or {}
    name = recorded.get(str(symbol))
    return get_calendar(name) if name else calendar_of(str(symbol))


def frame_interval(frame: object) -> str:
    """The bar length a frame records (``attrs["interval"]``), else the one its index spacing implies."""
    recorded = getattr(frame, "attrs", {}).get("interval")
    if recorded:
        return str(recorded)
    index = frame if isinstance(frame, pd.Index) else getattr(frame, "index", None)
    if not isinstance(index, pd.DatetimeIndex) or len(index) < 2:
        return "1d"
    step = pd.Series(index[-200:]).diff().median()
    if step < pd.Timedelta(hours=20):
        return "1h"
    if step < pd.Timedelta(days=4):
        return "1d"
    return "1wk" if step < pd.Timedelta(days=20) else "1mo"


def stale_frame(close: pd.DataFrame, *, stale_bars: int | None = STALE_BARS, interval: str | None = None,
                calendars: Mapping[str, Calendar | str] | None = None, since: object = None) -> pd.DataFrame:
    """Whether each symbol is stale at the close of each bar of ``close`` (bars up to it only).

    Parameters
    ----------
    close : DataFrame
        Wide closes (NaN where a symbol has no bar).
    stale_bars : int, optional
        Bars a symbol may lag; ``None`` marks nothing stale.
    interval : str, optional
        Bar length (default: :func:`frame_interval`).
    calendars : mapping, optional
        Symbol -> calendar (default: :func:`symbol_calendar`).
    since : timestamp, optional
        Only rows from this bar on are judged (earlier rows are False); the last bars are still
        looked up in the whole history.

    Returns
    -------
    DataFrame of bool
        True where the symbol's last bar at or before that row lags it by more than
        ``stale_bars`` bars, or where it has no bar yet.
    """
    if stale_bars is None or close.empty or not isinstance(close.index, pd.DatetimeIndex):
        return pd.DataFrame(False, index=close.index, columns=close.columns)
    interval = interval or frame_interval(close)
    index = to_utc_index(close.index)
    lo = 0 if since is None else int(index.searchsorted(_utc_index([since])[0], side="left"))
    valid = close.notna().to_numpy()
    pos = np.where(valid, np.arange(len(index))[:, None], -1)
    last_pos = np.maximum.accumulate(pos, axis=0)[lo:]
    asof = index[lo:]
    values = np.zeros(close.shape, dtype=bool)
    ns = index.as_unit("ns").asi8
    for k, sym in enumerate(close.columns):
        cal = _cal((calendars or {}).get(sym) or symbol_calendar(close, str(sym)))
        lp = last_pos[:, k]
        last = to_utc_index(np.where(lp >= 0, ns[np.maximum(lp, 0)], np.iinfo(np.int64).min).astype("datetime64[ns]"))
        behind = _behind(cal, interval, last, asof)
        values[lo:, k] = (behind < 0) | (behind > stale_bars)
    return pd.DataFrame(values, index=close.index, columns=close.columns)
