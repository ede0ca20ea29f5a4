"""News: headlines from RSS, News API, files or the synthetic generator, scored, point in time.

Items from every source are normalised to one schema (:mod:`research.news.schema`: published,
seen, available, source, title, summary, url, symbols, content hash), deduplicated, with bad
items quarantined, and kept in the news store (:mod:`research.news.store`) beside the prices.
:func:`load_news` returns them with a ``sentiment`` column (:mod:`research.news.sentiment`);
:func:`sentiment_features` (and ``feature_set(bars, "sentiment")``) turns them into per-bar
features that use only the items available before each bar's close
(:mod:`research.news.features`).
"""

from research.news.features import NEWS_FEATURES, sentiment_features
from research.news.loader import DEFAULT_NEWS_SOURCE, load_news
from research.news.schema import NEWS_COLUMNS, normalise
from research.news.sentiment import (
    FINANCE_LEXICON,
    FINANCE_PHRASES,
    Scorer,
    VaderScorer,
    get_scorer,
    label,
)
from research.news.sources import NEWS_SOURCE_NAMES, NewsSource, get_news_source
from research.news.store import NewsStore

__all__ = [
    "load_news", "DEFAULT_NEWS_SOURCE", "sentiment_features", "NEWS_FEATURES", "NEWS_COLUMNS", "normalise",
    "Scorer", "VaderScorer", "get_scorer", "label", "FINANCE_LEXICON", "FINANCE_PHRASES",
    "NewsSource", "get_news_source", "NEWS_SOURCE_NAMES", "NewsStore",
]
