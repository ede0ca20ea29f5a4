"""Time zones: every timestamp and time index the workbench keeps is in UTC.

One rule, used everywhere a value from outside (a parameter, a file, a provider, a notebook)
becomes a time: **a naive time is read as UTC; an aware time is converted to UTC** (the same
instant, shown on the UTC clock). The functions here apply it to a scalar or an index, and give
the naive form some consumers need (the ledger stores naive UTC; plotly ignores offsets):

==========================  ====================================================
:func:`to_utc`              a scalar as a UTC :class:`pandas.Timestamp`
:func:`to_utc_index`        a time index (or list of times) as a UTC index
:func:`to_naive_utc`        a scalar as naive UTC (aware converted, then dropped)
:func:`to_naive_utc_index`  an index as naive UTC
:func:`on_clock_of`         a time comparable with an index (aware or naive)
:func:`naive_utc_now`       the clock, as the naive UTC datetime tables store
:func:`parse_date_or_time`  an ISO date or date-time as a UTC time, and whether it was a bare date
==========================  ====================================================

>>> to_utc("2024-03-01 09:30")
Timestamp('2024-03-01 09:30:00+0000', tz='UTC')
>>> to_utc(pd.Timestamp("2024-03-01 09:30", tz="America/New_York"))
Timestamp('2024-03-01 14:30:00+0000', tz='UTC')
>>> to_naive_utc("2024-03-01T09:30:00-05:00")
Timestamp('2024-03-01 14:30:00')

Each function is idempotent and keeps the instant (its nanoseconds since the epoch); a naive
input's wall time is kept as the UTC instant. Hand-written conversions (``tz_localize`` /
``tz_convert``) outside this module are refused by ``tests/test_layering.py`` unless listed
there with the reason they do another job (a file's or exchange's own time zone).

This module imports nothing from the package, so every room may use it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import overload

import pandas as pd

__all__ = ["to_utc", "to_utc_index", "to_naive_utc", "to_naive_utc_index", "on_clock_of", "naive_utc_now",
           "parse_date_or_time"]

_DATE_ONLY = re.compile(r"^\s*\d{4}-\d{2}-\d{2}\s*$")


@overload
def to_utc(value: None) -> None: ...
@overload
def to_utc(value: object) -> pd.Timestamp: ...
def to_utc(value: object) -> pd.Timestamp | None:
    """``value`` as a UTC timestamp: naive read as UTC, aware converted; ``None`` stays ``None``.

    Parameters
    ----------
    value : str, datetime, date, numpy datetime64, Timestamp or None
        Anything :class:`pandas.Timestamp` parses. ``NaT`` stays ``NaT``.

    Returns
    -------
    Timestamp or None
        The same instant, with ``tz="UTC"``.

    Raises
    ------
    ValueError
        When ``value`` is not a time (pandas' own error).
    """
    if value is None:
        return None
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def to_utc_index(values: pd.DatetimeIndex | Iterable[object]) -> pd.DatetimeIndex:
    """``values`` as a UTC :class:`~pandas.DatetimeIndex`: naive read as UTC, aware converted.

    Parameters
    ----------
    values : DatetimeIndex or iterable of times
        An index keeps its name and resolution; anything else is parsed by
        :class:`pandas.DatetimeIndex` (mixed zones are refused there).

    Returns
    -------
    DatetimeIndex
        The same instants, with ``tz="UTC"``.
    """
    index = values if isinstance(values, pd.DatetimeIndex) else pd.DatetimeIndex(values)
    return index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")


@overload
def to_naive_utc(value: None) -> None: ...
@overload
def to_naive_utc(value: object) -> pd.Timestamp: ...
def to_naive_utc(value: object) -> pd.Timestamp | None:
    """``value`` as a naive timestamp on the UTC clock: aware converted to UTC, then its zone
    dropped; naive kept as it is (already read as UTC). ``None`` stays ``None``.

    Parameters
    ----------
    value : str, datetime, date, numpy datetime64, Timestamp or None
        Anything :class:`pandas.Timestamp` parses.

    Returns
    -------
    Timestamp or None
        A naive timestamp (``tzinfo is None``); :meth:`~pandas.Timestamp.to_pydatetime` gives
        the :class:`datetime.datetime` a database column takes.
    """
    if value is None:
        return None
    ts = pd.Timestamp(value)
    return ts if ts.tzinfo is None else ts.tz_convert("UTC").tz_localize(None)


def to_naive_utc_index(index: pd.Index) -> pd.Index:
    """A time index as naive UTC (aware converted to UTC, then its zone dropped); any other
    index (naive times, integers, labels) is returned as it is."""
    if isinstance(index, pd.DatetimeIndex) and index.tz is not None:
        return index.tz_convert("UTC").tz_localize(None)
    return index


def on_clock_of(value: object, index: pd.Index) -> pd.Timestamp:
    """``value`` (read as :func:`to_utc` does) in the form ``index`` compares with: aware UTC for
    an aware index, naive UTC for a naive one (whose times are read as UTC)."""
    if getattr(index, "tz", None) is not None:
        return to_utc(value)
    return to_naive_utc(to_utc(value))


def naive_utc_now() -> dt.datetime:
    """The current time as a naive :class:`datetime.datetime` on the UTC clock (how the ledger
    and the outbox store times)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def parse_date_or_time(value: object) -> tuple[pd.Timestamp, bool]:
    """``value`` (ISO text, a date, a datetime or a timestamp) as a UTC time, and whether it is a bare date.

    A bare date is text of the form ``2019-03-01`` or a :class:`datetime.date` that is not a
    datetime; anything with a time of day, midnight included, is a date-time. Raises
    ``ValueError`` naming the value when it is not a date or a date-time.

    >>> parse_date_or_time("2019-03-01")
    (Timestamp('2019-03-01 00:00:00+0000', tz='UTC'), True)
    >>> parse_date_or_time("2019-03-01T05:00:00+05:00")
    (Timestamp('2019-03-01 00:00:00+0000', tz='UTC'), False)
    """
    is_date = (isinstance(value, str) and bool(_DATE_ONLY.match(value))) or (
        isinstance(value, dt.date) and not isinstance(value, dt.datetime))
    try:
        ts = pd.Timestamp(value.strip() if isinstance(value, str) else value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not an ISO date or date-time: {value!r}") from exc
    if ts is pd.NaT:
        raise ValueError(f"not an ISO date or date-time: {value!r}")
    return to_utc(ts), is_date
