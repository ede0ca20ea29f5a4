"""The pipelines' news step, and what the signals step takes from the news.

=============  ==========================================  ==================================
stage          function                                    writes
=============  ==========================================  ==================================
news           :func:`news_stage`                          ``news``
=============  ==========================================  ==================================

``news`` holds one row per headline and symbol known at the run's as-of time (the close of
that date's session on each symbol's calendar, or the as-of hour): when it was published,
first seen and became available, the source and publisher, title, url and sentiment. The
signals step adds each symbol's latest-session sentiment to the ``signals`` table
(:func:`news_signal_columns`) and the news alerts to ``alerts`` (:func:`research.news.alerts.news_alerts`).
"""

from __future__ import annotations

import logging

import pandas as pd

from research.defaults import PIPELINES
from research.news import load_news
from research.news.features import known_at, sentiment_as_of
from research.timeutil import to_utc
from research.workflow.results import write_output

__all__ = ["news_stage", "news_signal_columns", "NEWS_OUTPUT_COLUMNS"]

log = logging.getLogger(__name__)
_NEWS = PIPELINES["daily"]["news"]
NEWS_OUTPUT_COLUMNS = ["available", "published", "seen", "symbol", "source", "publisher", "title", "url",
                       "sentiment", "hash"]


def news_stage(output_dir: str, *, symbols: list[str], as_of: str, news_source: str = _NEWS["news_source"],
               lookback_days: float = _NEWS["lookback_days"]) -> pd.DataFrame:
    """Headlines about ``symbols`` from ``lookback_days`` before ``as_of`` up to it, scored; write ``news``."""
    when = to_utc(as_of)
    news = load_news(symbols, source=news_source, start=when - pd.Timedelta(days=lookback_days),
                     end=when + pd.Timedelta(days=1))
    known = known_at(news, as_of)
    table = known[NEWS_OUTPUT_COLUMNS].sort_values("available", kind="stable").reset_index(drop=True)
    label = " (synthetic)" if news.attrs.get("synthetic") else ""
    log.info("news from %s%s: %d headlines about %d symbols up to %s", news.attrs.get("source"), label, len(table),
             table["symbol"].nunique(), as_of)
    write_output(output_dir, "news", table)
    return table


def news_signal_columns(signals: pd.DataFrame, news: pd.DataFrame, *, as_of: str) -> pd.DataFrame:
    """``signals`` with each symbol's latest-session ``news_sentiment``, ``news_count`` and ``news_surprise``."""
    symbols = sorted(signals["symbol"].unique())
    latest = sentiment_as_of(news, symbols, as_of=to_utc(as_of))
    cols = {"sentiment_mean": "news_sentiment", "news_count": "news_count", "sentiment_surprise": "news_surprise"}
    joined = signals.join(latest[list(cols)].rename(columns=cols), on="symbol")
    return joined
