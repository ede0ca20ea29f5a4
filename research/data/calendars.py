"""Trading calendars: which bars should exist, and how many periods make a year.

Two calendars cover the workbench's markets:

* ``EQUITY`` (NYSE): weekdays less NYSE holidays and the unscheduled closures listed below;
  annualisation 252.
* ``CRYPTO``: every day (and every hour), 24/7; annualisation 365.

Calendars decide *gaps* (expected bars that are missing), which the validator flags but never
fills, and the annualisation used by :mod:`research.risk`.

The frame carries its calendar: :func:`~research.data.load_prices` records
``attrs["calendar"]`` (``"equity"`` or ``"crypto"``) and ``attrs["periods_per_year"]`` (the
calendar's bars per year at the frame's interval), and pandas keeps ``attrs`` through slicing,
column selection and element-wise arithmetic. Everything downstream asks
:func:`periods_per_year` (the one explicit override wins, then the frame's record, then an
inference from the index for frames built by hand).

>>> spx = load_prices("SPX")
>>> spx.attrs["calendar"], periods_per_year(spx), periods_per_year(spx["close"].pct_change())
('equity', 252.0, 252.0)
>>> periods_per_year(spx, override=260)
260.0
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import pandas as pd
from pandas.tseries.holiday import (
    AbstractHolidayCalendar,
    GoodFriday,
    Holiday,
    USLaborDay,
    USMartinLutherKingJr,
    USMemorialDay,
    USPresidentsDay,
    USThanksgivingDay,
    nearest_workday,
    sunday_to_monday,
)

from research.timeutil import to_utc, to_utc_index

__all__ = [
    "Calendar", "EQUITY", "CRYPTO", "get_calendar", "calendar_of", "record_calendar", "periods_per_year",
    "infer_periods_per_year",
]

# Unscheduled NYSE closures (weather, national mourning, 9/11).
_SPECIAL_CLOSURES = pd.to_datetime(
    [
        "1994-04-27", "2001-09-11", "2001-09-12", "2001-09-13", "2001-09-14",
        "2004-06-11", "2007-01-02", "2012-10-29", "2012-10-30", "2018-12-05",
        "2025-01-09",
    ]
)


class _NYSEHolidays(AbstractHolidayCalendar):
    rules = [
        # New Year's Day: a Sunday moves to Monday; a Saturday is not observed on Friday.
        Holiday("NewYearsDay", month=1, day=1, observance=sunday_to_monday),
        USMartinLutherKingJr,
        USPresidentsDay,
        GoodFriday,
        USMemorialDay,
        Holiday("Juneteenth", month=6, day=19, start_date="2022-01-01", observance=nearest_workday),
        Holiday("IndependenceDay", month=7, day=4, observance=nearest_workday),
        USLaborDay,
        USThanksgivingDay,
        Holiday("Christmas", month=12, day=25, observance=nearest_workday),
    ]


@lru_cache(maxsize=64)
def _nyse_holidays(start_year: int, end_year: int) -> pd.DatetimeIndex:
    hol = _NYSEHolidays().holidays(f"{start_year}-01-01", f"{end_year}-12-31")
    # MLK day is observed by the NYSE from 1998 on.
    hol = hol[~((hol.month == 1) & (hol.day > 14) & (hol.day < 22) & (hol.weekday == 0) & (hol.year < 1998))]
    return hol.union(_SPECIAL_CLOSURES).unique()


@dataclass(frozen=True)
class Calendar:
    """A trading calendar.

    Attributes
    ----------
    name : str
        ``"equity"`` or ``"crypto"``.
    periods_per_year : int
        Daily bars in a year: 252 sessions for equities, 365 days for crypto.
    hours_per_day : float
        Hours of trading in a day (6.5 for NYSE regular hours, 24 for crypto).
    """

    name: str
    periods_per_year: int
    hours_per_day: float

    def sessions(self, start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
        """Daily bars expected between ``start`` and ``end`` inclusive (UTC midnights)."""
        start = to_utc(start).normalize()
        end = to_utc(end).normalize()
        if end < start:
            return pd.DatetimeIndex([], tz="UTC", name="timestamp")
        days = pd.date_range(start, end, freq="D", tz="UTC", name="timestamp")
        if self.name == "crypto":
            return days
        days = days[days.weekday < 5]
        hol = to_utc_index(_nyse_holidays(start.year, end.year))
        return days[~days.isin(hol)]

    def expected(self, start: pd.Timestamp, end: pd.Timestamp, interval: str) -> pd.DatetimeIndex:
        """Bars expected at ``interval`` (only ``1d`` and, for crypto, ``1h`` are checked)."""
        if interval == "1d":
            return self.sessions(start, end)
        if interval == "1h" and self.name == "crypto":
            return pd.date_range(to_utc(start), to_utc(end), freq="h", name="timestamp")
        return pd.DatetimeIndex([], tz="UTC", name="timestamp")

    def periods(self, interval: str) -> float:
        """Bars per year at ``interval`` (used for annualisation)."""
        per_day = {"1d": 1.0, "1h": self.hours_per_day}
        if interval in per_day:
            return self.periods_per_year * per_day[interval]
        return {"1wk": 52.0, "1mo": 12.0}[interval]


EQUITY = Calendar("equity", 252, 6.5)
CRYPTO = Calendar("crypto", 365, 24.0)


def get_calendar(name: str) -> Calendar:
    """Look a calendar up by name (``"equity"`` or ``"crypto"``)."""
    try:
        return {"equity": EQUITY, "crypto": CRYPTO}[name]
    except KeyError:
        raise ValueError(f"unknown calendar {name!r}; expected 'equity' or 'crypto'") from None


def calendar_of(symbol: str) -> Calendar:
    """The calendar a symbol's name implies: 24/7 for ``*-USD`` pairs, equity sessions otherwise.

    Sources that know better (the bundled sample, CoinGecko, a ``FilesSource`` told its
    calendar) answer from their own records; this is the rule for the others.
    """
    return CRYPTO if str(symbol).upper().endswith("-USD") else EQUITY


def record_calendar(frame: pd.DataFrame, calendars: dict[str, Calendar], interval: str) -> pd.DataFrame:
    """Record the frame's calendar and periods per year in ``frame.attrs`` (in place; returned).

    ``attrs["calendars"]`` keeps each symbol's own calendar (an equity symbol in a frame shared
    with crypto is still judged on NYSE sessions by :mod:`research.data.freshness`).

    Parameters
    ----------
    frame : pandas.DataFrame
        Bars of the symbols in ``calendars``, on one time index.
    calendars : dict of str to Calendar
        Each symbol's calendar. Symbols on different calendars share the wider one (24/7): an
        outer join of their bars has a row on every day.
    interval : str
        The bars' length (``"1d"``, ``"1h"``, ``"1wk"``, ``"1mo"``).

    """
    names = {cal.name for cal in calendars.values()}
    cal = EQUITY if names == {"equity"} else CRYPTO
    frame.attrs["calendar"] = cal.name
    frame.attrs["periods_per_year"] = float(cal.periods(interval))
    frame.attrs["calendars"] = {str(sym): c.name for sym, c in calendars.items()}  # each symbol's own (staleness)
    return frame


def periods_per_year(frame: object, override: float | None = None, *, default: float | None = None) -> float:
    """Bars per year of ``frame``: ``override``, else its recorded calendar, else ``default``.

    Parameters
    ----------
    frame : DataFrame, Series, mapping of frames or index
        Prices or returns. A mapping is asked through its first frame.
    override : float, optional
        The caller's explicit annualisation; wins when given.
    default : float, optional
        For a frame that records no calendar; left out, it is inferred from the index
        (:func:`infer_periods_per_year`).

    Returns
    -------
    float
        252 for daily equity sessions, 365 for daily crypto, 8760 for hourly crypto, 52 weekly,
        12 monthly.
    """
    if override is not None:
        if not override > 0:
            raise ValueError(f"periods_per_year must be positive (252 equities, 365 crypto), got {override!r}")
        return float(override)
    if isinstance(frame, Mapping):
        frame = next(iter(frame.values()), None)
    recorded = getattr(frame, "attrs", {}).get("periods_per_year")
    if recorded:
        return float(recorded)
    if default is not None:
        return float(default)
    index = frame if isinstance(frame, pd.Index) else getattr(frame, "index", None)
    return infer_periods_per_year(index)


def infer_periods_per_year(index: pd.Index | None) -> float:
    """Bars per year from a time index: 252 (equity days), 365 (24/7 days), 52, 12 or hourly.

    The fallback of :func:`periods_per_year` for frames that carry no calendar.
    """
    if not isinstance(index, pd.DatetimeIndex) or len(index) < 3:
        return float(EQUITY.periods_per_year)
    step = pd.Series(index).diff().dropna().median()
    days = step / pd.Timedelta(days=1)
    weekends = bool((index.day_of_week >= 5).any())
    if days < 0.9:  # intraday
        cal = CRYPTO if weekends else EQUITY
        return float(cal.periods_per_year * cal.hours_per_day * pd.Timedelta(hours=1) / step)
    if days < 3:
        return float(CRYPTO.periods_per_year if weekends else EQUITY.periods_per_year)
    if days < 10:
        return 52.0
    if days < 45:
        return 12.0
    return float(round(365.25 / days, 2))

