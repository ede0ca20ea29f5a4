"""When a bar closes, and which bar a news item belongs to.

The point-in-time rule of the news features: an item counts for the first bar that closes
*strictly after* the item became available (``available``: ``max(published, seen)`` for live
sources, ``published`` for archives). So an item published after a session's close belongs to
the next session on the symbol's calendar, an item of a weekend or a holiday to the next
session, and an item that falls in a session missing from the bars to the next bar present.

Bar closes (bars are stamped as in :mod:`research.data`: daily bars at 00:00 UTC of the
session date):

* equity daily bars close at 16:00 America/New_York (13:00 on the NYSE's early-close days:
  the day after Thanksgiving, Christmas Eve and the eve of Independence Day when they are
  sessions), whatever the daylight-saving time;
* crypto daily bars close at the next 00:00 UTC;
* hourly bars close one hour after their stamp (equity bars no later than the session close).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from research.data.calendars import Calendar
from research.data.errors import InvalidRequestError
from research.timeutil import to_naive_utc_index, to_utc_index

__all__ = ["bar_closes", "assign_bars", "session_close", "early_close"]

_NY = "America/New_York"


def early_close(day: pd.Timestamp) -> bool:
    """Whether the NYSE closes at 13:00 on ``day`` (a session date)."""
    d = pd.Timestamp(day)
    if d.month == 11 and d.weekday() == 4 and 23 <= d.day <= 29:  # the day after Thanksgiving
        return True
    if d.month == 12 and d.day == 24 and d.weekday() < 5:
        return True
    return bool(d.month == 7 and d.day == 3 and d.weekday() < 4)  # July 4th on a weekday after it


def session_close(dates: pd.DatetimeIndex, calendar: Calendar) -> pd.DatetimeIndex:
    """The close (UTC) of the daily sessions stamped ``dates``."""
    days = to_naive_utc_index(pd.DatetimeIndex(dates)).normalize()
    if calendar.name == "crypto":
        return to_utc_index(days + pd.Timedelta(days=1)).as_unit("ns")
    hours = np.where([early_close(d) for d in days], 13, 16)
    local = (days + pd.to_timedelta(hours, unit="h")).tz_localize(_NY, ambiguous="raise", nonexistent="raise")
    return local.tz_convert("UTC").as_unit("ns")


def bar_closes(index: pd.DatetimeIndex, calendar: Calendar, interval: str = "1d") -> pd.DatetimeIndex:
    """The close time (UTC, nanoseconds) of each bar of ``index`` (daily or hourly)."""
    if not isinstance(index, pd.DatetimeIndex):
        raise InvalidRequestError(f"news features need bars on a DatetimeIndex, got {type(index).__name__}")
    idx = to_utc_index(index).as_unit("ns")
    if interval == "1d":
        return session_close(idx, calendar)
    if interval == "1h":
        end = idx + pd.Timedelta(hours=1)
        if calendar.name == "crypto":
            return end
        close = session_close(idx.normalize(), calendar)
        return to_utc_index(np.minimum(end.asi8, close.asi8))
    raise InvalidRequestError(f"news features are built on daily or hourly bars, not {interval!r}")


def assign_bars(available: pd.Series, closes: pd.DatetimeIndex, *, first_open: pd.Timestamp) -> np.ndarray:
    """Position of the bar each item counts for (``-1`` when none of ``closes`` is after it).

    Parameters
    ----------
    available : Series of datetime64[ns, UTC]
        When each item became available.
    closes : DatetimeIndex
        Close of each bar, increasing.
    first_open : Timestamp
        Items available before this (the close of the session before the first bar) are
        older than the bars and count for none (``-1``).
    """
    t = available.to_numpy(dtype="datetime64[ns]").view("int64")
    c = closes.as_unit("ns").asi8
    pos = np.searchsorted(c, t, side="right")  # first close strictly after t
    pos = np.where(pos >= len(c), -1, pos)
    return np.where(t < pd.Timestamp(first_open).as_unit("ns").value, -1, pos)
