"""Point-in-time sentiment features: per symbol and bar, from scored news items.

Each item counts for the first bar that closes strictly after it became available (see
:mod:`research.news.sessions`): ``available`` is ``max(published, seen)`` for live sources and
``published`` for archives, so a headline first seen hours after it was stamped, or published
after the close, is used no earlier than the next bar. A feature at bar ``t`` therefore uses
only items available before ``t``'s close, and removing or altering bars or items after ``t``
leaves it unchanged (``tests/news/test_features.py`` checks both with ``check_lookahead``).

Feature definitions (``window`` bars, 20 by default)
----------------------------------------------------
``sentiment_mean``      mean sentiment of the bar's items; 0 when the bar has none
``news_count``          number of the bar's items
``sentiment_surprise``  ``sentiment_mean`` minus the mean sentiment of the items of the
                        ``window`` bars before (0 when either has no item); NaN for the first
                        ``window`` bars (warm-up)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from research.data.calendars import CRYPTO, Calendar, calendar_of, get_calendar
from research.data.errors import SchemaError
from research.news.sessions import assign_bars, bar_closes, session_close
from research.timeutil import to_utc

__all__ = ["NEWS_FEATURES", "sentiment_features", "bar_counts", "session_sentiment", "known_at", "sentiment_as_of"]

NEWS_FEATURES = ("sentiment_mean", "news_count", "sentiment_surprise")


def _calendar(bars: pd.DataFrame, symbol: str | None, calendar: Calendar | str | None) -> Calendar:
    if isinstance(calendar, Calendar):
        return calendar
    if isinstance(calendar, str):
        return get_calendar(calendar)
    recorded = bars.attrs.get("calendar")
    if recorded:
        return get_calendar(recorded)
    return calendar_of(symbol or "")


def _first_open(index: pd.DatetimeIndex, calendar: Calendar, interval: str) -> pd.Timestamp:
    """Close of the session before the first bar (items before it predate the bars)."""
    first = index[0]
    if interval == "1h":
        return first
    if calendar is CRYPTO:
        return first.normalize()
    previous = calendar.sessions(first - pd.Timedelta(days=10), first - pd.Timedelta(days=1))
    return session_close(previous[-1:], calendar)[0] if len(previous) else first.normalize()


def bar_counts(bars: pd.DataFrame, news: pd.DataFrame, *, calendar: Calendar, interval: str = "1d") -> tuple[np.ndarray, np.ndarray]:
    """Sum of sentiment and number of items per bar (items assigned by the point-in-time rule)."""
    n = len(bars)
    if n == 0 or news.empty:
        return np.zeros(n), np.zeros(n)
    closes = bar_closes(bars.index, calendar, interval)
    pos = assign_bars(news["available"], closes, first_open=_first_open(bars.index, calendar, interval))
    ok = pos >= 0
    sums = np.bincount(pos[ok], weights=news["sentiment"].to_numpy(dtype="float64")[ok], minlength=n).astype("float64")
    counts = np.bincount(pos[ok], minlength=n).astype("float64")
    return sums, counts


def sentiment_features(
    bars: pd.DataFrame,
    news: pd.DataFrame,
    *,
    symbol: str | None = None,
    calendar: Calendar | str | None = None,
    interval: str | None = None,
    window: int = 20,
) -> pd.DataFrame:
    """The news features of one symbol on its bars.

    Parameters
    ----------
    bars : DataFrame
        The symbol's bars (only the index is used), e.g. ``load_prices("SPX")``.
    news : DataFrame
        Scored items (``load_news``): columns ``available`` and ``sentiment``; with a
        ``symbol`` column, only the rows of ``symbol`` are used.
    symbol : str, optional
        Defaults to ``bars.attrs["symbol"]``.
    calendar : Calendar or str, optional
        Defaults to the calendar the bars record, else the symbol's.
    interval : {"1d", "1h"}, optional
        Defaults to ``bars.attrs["interval"]``, else ``"1d"``.
    window : int
        Bars of the trailing average of ``sentiment_surprise``.

    Returns
    -------
    DataFrame
        Index = ``bars.index``; columns :data:`NEWS_FEATURES` (float64).
    """
    missing = {"available", "sentiment"} - set(news.columns)
    if missing:
        raise SchemaError(f"news needs columns 'available' and 'sentiment' (from load_news); missing {sorted(missing)}")
    symbol = symbol or bars.attrs.get("symbol")
    if "symbol" in news.columns:
        names = set(news["symbol"].unique())
        if symbol is None and len(names) > 1:
            raise ValueError(f"news holds several symbols {sorted(names)}; say which with symbol=...")
        if symbol is None and names:
            symbol = next(iter(names))
        elif symbol is not None:
            news = news[news["symbol"] == str(symbol).upper()]
    cal = _calendar(bars, symbol if isinstance(symbol, str) else None, calendar)
    sums, counts = bar_counts(bars, news, calendar=cal, interval=interval or bars.attrs.get("interval", "1d"))
    mean = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    trail_s = pd.Series(sums).rolling(window, min_periods=window).sum().shift(1).to_numpy()
    trail_n = pd.Series(counts).rolling(window, min_periods=window).sum().shift(1).to_numpy()
    trail = np.divide(trail_s, trail_n, out=np.zeros_like(sums), where=trail_n > 0)
    surprise = np.where(counts > 0, mean - trail, 0.0)
    surprise[np.isnan(trail_n)] = np.nan
    frame = pd.DataFrame({"sentiment_mean": mean, "news_count": counts, "sentiment_surprise": surprise}, index=bars.index)
    frame.attrs = {"calendar": cal.name, "symbol": symbol, "news_source": news.attrs.get("source"),
                   "synthetic": bool(news.attrs.get("synthetic", False))}
    return frame


def session_sentiment(
    news: pd.DataFrame, symbol: str, *, start: object, end: object, calendar: Calendar | str | None = None,
    window: int = 20,
) -> pd.DataFrame:
    """The news features of ``symbol`` on its calendar's daily sessions in ``[start, end]``, without bars.

    For views and alerts that have news but no prices at hand (a news panel, news alerts): the
    same point-in-time rule, on every session the calendar expects.
    """
    cal = calendar if isinstance(calendar, Calendar) else (get_calendar(calendar) if calendar else calendar_of(symbol))
    lo, hi = to_utc(start), to_utc(end)
    sessions = cal.sessions(lo, hi)
    frame = pd.DataFrame(index=sessions)
    frame.attrs.update(symbol=symbol, calendar=cal.name, interval="1d")
    return sentiment_features(frame, news, symbol=symbol, calendar=cal, interval="1d", window=window)


def _cutoff(symbol: str, as_of: pd.Timestamp) -> pd.Timestamp:
    """The instant ``as_of`` means for ``symbol``: its session's close for a date, else itself."""
    if as_of != as_of.normalize():
        return as_of
    return session_close(pd.DatetimeIndex([as_of]), calendar_of(symbol))[0]


def known_at(news: pd.DataFrame, as_of: object) -> pd.DataFrame:
    """The items of ``news`` (``load_news`` output) available before ``as_of``.

    A date means the close of that day's session on each symbol's calendar (16:00 New York for
    equities, the next midnight UTC for crypto); a time means that instant. This is what a run
    as of that date may show or use: nothing after it.
    """
    when = to_utc(as_of)
    cut = news["symbol"].map({s: _cutoff(s, when) for s in news["symbol"].unique()})
    out = news[news["available"] < cut.astype(news["available"].dtype)].reset_index(drop=True)
    out.attrs = dict(news.attrs)
    return out


def sentiment_as_of(news: pd.DataFrame, symbols: list[str], *, as_of: object, window: int = 20) -> pd.DataFrame:
    """Per symbol, the news features of its latest session at or before ``as_of``.

    Returns
    -------
    DataFrame
        Index ``symbol``; columns ``session`` and :data:`NEWS_FEATURES` (a symbol without news
        has a count of 0 and a mean of 0).
    """
    when = to_utc(as_of)
    rows = {}
    for symbol in symbols:
        mine = news[news["symbol"] == symbol] if len(news) else news
        f = session_sentiment(mine, symbol, start=when - pd.Timedelta(days=3 * window + 10), end=when, window=window)
        if len(f):
            rows[symbol] = {"session": f.index[-1], **f.iloc[-1].to_dict()}
    return pd.DataFrame.from_dict(rows, orient="index", columns=["session", *NEWS_FEATURES]).rename_axis("symbol")
