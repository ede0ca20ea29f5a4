"""News sources, one module each, behind :class:`NewsSource`.

=============  =============================================================  ======
name           what                                                           live
=============  =============================================================  ======
``synthetic``  seeded headlines for any symbol, optionally linked to the      no
               synthetic prices (offline default; labelled synthetic)
``files``      the user's own archive: CSV or JSON lines                      no
``rss``        RSS/Atom feeds listed in ``news.yaml``, through feedparser     yes
``newsapi``    News API (newsapi.org) through newsapi-python (``NEWSAPI_KEY``)  yes
=============  =============================================================  ======

A source turns ``(symbols, start, end)`` into a *raw* frame, one row per item, with columns
``published``, ``title``, ``summary``, ``url``, ``symbols`` and ``publisher`` as found; the
news store normalises it (:func:`research.news.schema.normalise`). Live sources send every
request through a :class:`~research.data.resilience.Guard` and raise the typed errors of
:mod:`research.data.errors`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import pandas as pd

__all__ = ["NewsSource", "get_news_source", "NEWS_SOURCE_NAMES", "RAW_COLUMNS"]

NEWS_SOURCE_NAMES = ("synthetic", "files", "rss", "newsapi")
RAW_COLUMNS = ("published", "title", "summary", "url", "symbols", "publisher")


class NewsSource(ABC):
    """A news source.

    Attributes
    ----------
    name : str
        Name of the source's dataset in the news store and of ``load_news(source=...)``.
    live : bool
        ``True`` when fetching needs the network: items then count from
        ``max(published, seen)`` and the store refetches after its freshness TTL.
    synthetic : bool
        ``True`` when the items are generated, not observed.
    """

    name: ClassVar[str]
    live: ClassVar[bool] = False
    synthetic: ClassVar[bool] = False
    libraries: ClassVar[list[str]] = []

    @abstractmethod
    def fetch(self, symbols: list[str], start: pd.Timestamp | None, end: pd.Timestamp | None) -> pd.DataFrame:
        """Raw items about ``symbols`` published in ``[start, end]`` (either may be open)."""

    def provenance(self) -> str:
        """One line saying where the items come from."""
        return self.name


def get_news_source(name: str | NewsSource, **options: object) -> NewsSource:
    """A news source by name (``options`` go to its constructor), or ``name`` itself."""
    if isinstance(name, NewsSource):
        return name
    if name == "synthetic":
        from research.news.sources.synthetic import SyntheticNews

        return SyntheticNews(**options)
    if name == "files":
        from research.news.sources.files import NewsFiles

        if options.get("path") is None:
            raise ValueError("source='files' needs path=<a CSV or JSON-lines file of headlines> "
                             "(on the command line: --path FILE)")
        return NewsFiles(**options)
    if name == "rss":
        from research.news.sources.rss import RSSSource

        return RSSSource(**options)
    if name == "newsapi":
        from research.news.sources.newsapi import NewsAPISource

        return NewsAPISource(**options)
    raise ValueError(f"unknown news source {name!r}; expected one of {list(NEWS_SOURCE_NAMES)} or a NewsSource")
