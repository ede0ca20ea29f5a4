"""The as-of moment of a run, a signal, a paper step or a page: one value, parsed once.

An :class:`AsOf` says up to when data may be used:

* a **date** (``"2018-12-31"``, a :class:`datetime.date`, or a midnight timestamp of daily bars)
  means the **end of that session**: every bar stamped on that day is in, the daily bar of the
  day included, and for hourly 24/7 bars every hour up to 23:00 UTC;
* an **instant** (``"2000-09-05T12:00:00"``, a timestamp with a time of day) means that
  instant: bars stamped at or before it are in. Naive times are UTC.

Its text forms round-trip: ``label`` (``"2018-12-31"`` or ``"2000-09-05T12:00:00"``: what run
records, tables and pages show; a midnight instant keeps its time, ``"...T00:00:00"``, so it is
never read back as a whole day) and ``slug`` (``"20181231"``, ``"20000905T120000"``: file and
run-id safe). ``AsOf.parse(a.label) == a`` for every ``a``.

>>> a = AsOf.parse("2000-09-05")
>>> a.end, a.label, a.slug
(Timestamp('2000-09-05 23:59:59.999999+0000', tz='UTC'), '2000-09-05', '20000905')
>>> AsOf.parse("2000-09-05T23:00:00").label
'2000-09-05T23:00:00'
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from research.timeutil import on_clock_of, parse_date_or_time

__all__ = ["AsOf", "as_of"]

_DAILY = ("1d", "1wk", "1mo")


@dataclass(frozen=True, order=True)
class AsOf:
    """An as-of moment.

    Attributes
    ----------
    end : Timestamp
        The last instant whose bars may be used (tz-aware UTC).
    is_date : bool
        True for a whole session (``end`` is its last microsecond), False for an instant.
    """

    end: pd.Timestamp
    is_date: bool = False

    @classmethod
    def parse(cls, value: object, *, interval: str | None = None) -> AsOf:
        """Read ``value`` (an :class:`AsOf`, ISO text, a date, a datetime or a timestamp).

        Parameters
        ----------
        value : object
            What the caller was given (``-p as_of=...``, a CLI option, a bar's timestamp).
        interval : str, optional
            The bars' length: with daily (or longer) bars a timestamp at midnight is that day's
            bar, so it means the whole session; text always says which it is.

        Raises
        ------
        ValueError
            For anything that is not a date or a date-time (the message names it).
        """
        if isinstance(value, AsOf):
            return value
        if value is None or (isinstance(value, str) and not value.strip()):
            raise ValueError("as_of is empty; give a date (2018-12-31) or a date-time (2018-12-31T15:00:00)")
        try:
            ts, is_date = parse_date_or_time(value)
        except ValueError as exc:
            raise ValueError(f"as_of must be an ISO date or date-time, got {value!r}") from exc
        if not isinstance(value, str) and interval in _DAILY and ts == ts.normalize():
            is_date = True
        if is_date:
            return cls(ts.normalize() + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1), True)
        return cls(ts, False)

    @classmethod
    def now(cls, *, interval: str = "1d") -> AsOf:
        """The current moment as a live run sees it: today for daily bars, the current hour for hourly."""
        t = pd.Timestamp.now(tz="UTC")
        return cls.parse(t.normalize().date(), interval=interval) if interval in _DAILY else cls(t.floor("h"), False)

    @property
    def day(self) -> pd.Timestamp:
        """The UTC day (midnight) the moment falls on."""
        return self.end.normalize()

    @property
    def label(self) -> str:
        """``YYYY-MM-DD`` for a date, ``YYYY-MM-DDTHH:MM:SS`` (UTC) for an instant."""
        return f"{self.end:%Y-%m-%d}" if self.is_date else f"{self.end:%Y-%m-%dT%H:%M:%S}"

    @property
    def slug(self) -> str:
        """The label without ``-`` and ``:``, for file names and run ids."""
        return self.label.replace("-", "").replace(":", "")

    def cut(self, frame: pd.DataFrame | pd.Series) -> pd.DataFrame | pd.Series:
        """The rows of a time-indexed frame that may be used (stamped at or before ``end``)."""
        index = frame.index
        end = on_clock_of(self.end, index)
        return frame.loc[index <= end]

    def __str__(self) -> str:
        return self.label


def as_of(value: object = None, *, interval: str = "1d") -> AsOf:
    """:meth:`AsOf.parse` of ``value``, or :meth:`AsOf.now` when it is None."""
    return AsOf.now(interval=interval) if value is None else AsOf.parse(value, interval=interval)
