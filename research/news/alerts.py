"""News alerts: a symbol's news volume or sentiment moving beyond a threshold, a watched word.

:func:`news_alerts` looks at each symbol's latest session at or before ``as_of`` (on its
calendar, with the point-in-time rule of :mod:`research.news.features`) and returns one row
per condition that fired, in the columns of the pipelines' ``alerts`` table::

    symbol  kind            severity  message                                         value  threshold  as_of       bar_time
    AAPL    news_volume     warning   AAPL: 14 news items, 4.2 sd above its 20-session mean  4.2    3.0        2025-01-06  2025-01-06
    AAPL    news_sentiment  critical  AAPL news sentiment -0.71 over 5 items             -0.71  -0.6       2025-01-06  2025-01-06
    AAPL    news_keyword    warning   AAPL: "Apple faces SEC probe" (reuters) mentions 'probe'  1.0  1.0   2025-01-06  2025-01-06

Kinds: ``news_volume`` (the session's item count ``volume_z`` standard deviations above the
mean of the ``window`` sessions before), ``news_sentiment`` (the session's mean sentiment at
or beyond ``sentiment_warning`` / ``sentiment_critical`` either way, over at least
``min_items`` items; positive extremes are ``info``), ``news_keyword`` (a title of the
session holds a word of the watch list).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from research.data.calendars import get_calendar
from research.news.features import session_sentiment
from research.news.sessions import bar_closes
from research.timeutil import to_utc

__all__ = ["NewsAlertRules", "news_alerts", "NEWS_ALERT_COLUMNS"]

NEWS_ALERT_COLUMNS = ["symbol", "kind", "severity", "message", "value", "threshold", "as_of", "bar_time"]


@dataclass(frozen=True)
class NewsAlertRules:
    """Thresholds of the news alerts."""

    window: int = 20
    volume_z: float = 3.0
    min_items: int = 3
    sentiment_warning: float = 0.4
    sentiment_critical: float = 0.6
    watch: tuple[str, ...] = ("bankruptcy", "chapter 11", "fraud", "probe", "investigation", "delisting", "halt",
                              "default", "recall", "lawsuit", "resigns", "restatement")


def _row(symbol: str, kind: str, severity: str, message: str, value: float, threshold: float, as_of: str,
         bar: pd.Timestamp) -> dict:
    return {"symbol": symbol, "kind": kind, "severity": severity, "message": message, "value": float(value),
            "threshold": float(threshold), "as_of": as_of, "bar_time": bar}


def _volume(symbol: str, f: pd.DataFrame, rules: NewsAlertRules, label: str) -> list[dict]:
    counts = f["news_count"]
    before = counts.iloc[:-1].tail(rules.window)
    last = counts.iloc[-1]
    if len(before) < rules.window or last < rules.min_items:
        return []
    sd = before.std()
    z = (last - before.mean()) / sd if sd > 0 else (np.inf if last > before.mean() else 0.0)
    if z < rules.volume_z:
        return []
    shown = "far" if not np.isfinite(z) else f"{z:.1f} sd"
    return [_row(symbol, "news_volume", "warning", f"{symbol}: {int(last)} news items, {shown} above its "
                 f"{rules.window}-session mean of {before.mean():.1f}", min(z, 99.0), rules.volume_z, label, f.index[-1])]


def _sentiment(symbol: str, f: pd.DataFrame, rules: NewsAlertRules, label: str) -> list[dict]:
    n, mean = f["news_count"].iloc[-1], f["sentiment_mean"].iloc[-1]
    if n < rules.min_items or abs(mean) < rules.sentiment_warning:
        return []
    level = rules.sentiment_critical if abs(mean) >= rules.sentiment_critical else rules.sentiment_warning
    severity = "info" if mean > 0 else ("critical" if level == rules.sentiment_critical else "warning")
    return [_row(symbol, "news_sentiment", severity, f"{symbol} news sentiment {mean:+.2f} over {int(n)} items",
                 mean, np.sign(mean) * level, label, f.index[-1])]


def _keywords(symbol: str, items: pd.DataFrame, rules: NewsAlertRules, label: str, bar: pd.Timestamp) -> list[dict]:
    if not rules.watch or items.empty:
        return []
    pattern = re.compile(r"(?<!\w)(" + "|".join(re.escape(w) for w in rules.watch) + r")(?!\w)", re.IGNORECASE)
    rows = []
    for title, publisher in zip(items["title"], items["publisher"], strict=True):
        hit = pattern.search(title)
        if hit:
            rows.append(_row(symbol, "news_keyword", "warning", f'{symbol}: "{title}" ({publisher}) mentions '
                             f"{hit.group(1).lower()!r}", 1.0, 1.0, label, bar))
    return rows


def news_alerts(news: pd.DataFrame, *, as_of: object, rules: NewsAlertRules | None = None) -> pd.DataFrame:
    """News alerts of every symbol of ``news`` (``load_news`` output) at ``as_of``.

    Returns
    -------
    DataFrame
        Columns :data:`NEWS_ALERT_COLUMNS`; empty (with those columns) when nothing fired.
    """
    rules = rules or NewsAlertRules()
    when = to_utc(as_of)
    label = str(when.date()) if when == when.normalize() else when.isoformat()
    rows: list[dict] = []
    for symbol in sorted(news["symbol"].unique()) if len(news) else []:
        mine = news[news["symbol"] == symbol]
        f = session_sentiment(mine, symbol, start=when - pd.Timedelta(days=3 * rules.window + 10), end=when,
                              window=rules.window)
        if f.empty:
            continue
        rows += _volume(symbol, f, rules, label) + _sentiment(symbol, f, rules, label)
        rows += _keywords(symbol, _last_session_items(mine, f), rules, label, f.index[-1])
    return pd.DataFrame(rows, columns=NEWS_ALERT_COLUMNS)


def _last_session_items(items: pd.DataFrame, f: pd.DataFrame) -> pd.DataFrame:
    """The items that count for the last session of ``f`` (after the previous close, before its own)."""
    closes = bar_closes(f.index, get_calendar(f.attrs["calendar"]))
    after = closes[-2] if len(closes) > 1 else closes[-1] - pd.Timedelta(days=1)
    return items[(items["available"] >= after) & (items["available"] < closes[-1])]
