"""RSS and Atom feeds through feedparser (live), listed in ``news.yaml``.

The bytes of each feed are fetched here, with ``requests``, through the feed host's
:class:`~research.data.resilience.Guard` (bounded timeouts, retries with backoff honouring
``Retry-After``, a request budget per host, a circuit breaker), and only then handed to
``feedparser.parse`` (whose own fetching has no timeout). Answers are checked:

* HTTP 429 is a :class:`RateLimitError`, 5xx, timeouts and dropped or truncated transfers a
  :class:`SourceUnavailableError` (both retried); other HTTP errors a :class:`BadResponseError`;
* a 200 that is not a feed (an HTML page, an empty body: feedparser finds no feed version) or
  a document cut short (not well-formed and missing its closing ``</rss>``/``</feed>``) is a
  :class:`BadResponseError`; a well-closed feed with minor faults (feedparser's ``bozo``) is
  read, with a warning.

``published_parsed`` (or ``updated_parsed``) is a UTC ``struct_time``; an entry with neither
keeps its raw date text and is quarantined by the store (``bad_date``). A feed that fails is
named in the frame's ``attrs["failed"]`` while the others are still read; when every feed
fails, the first error is raised (and the store serves its stored copy, marked stale).
"""

from __future__ import annotations

import calendar
import logging
import re
from urllib.parse import urlsplit

import pandas as pd
import requests
from requests.adapters import HTTPAdapter

from research.data.errors import (
    BadResponseError,
    RateLimitError,
    SourceError,
    SourceUnavailableError,
)
from research.data.resilience import (
    Attempt,
    CircuitBreaker,
    Guard,
    RequestBudget,
    RetryPolicy,
    guard_for,
    parse_retry_after,
    transport_error,
)
from research.news.config import Feed, NewsConfig, load_news_config, match_symbols
from research.news.sources import RAW_COLUMNS, NewsSource

__all__ = ["RSSSource", "parse_feed", "default_rss_guard"]

log = logging.getLogger(__name__)
_CLOSED = re.compile(rb"</(?:\w+:)?(?:rss|feed|RDF)\s*>\s*$")
_HEADERS = {
    "User-Agent": "quant-workbench news reader (feedparser)",
    "Accept": "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5",
}


def default_rss_guard(host: str) -> Guard:
    """The guard of one feed host: a request a second at most, 3 attempts within 30 s."""
    return Guard(
        f"rss:{host}",
        policy=RetryPolicy(attempts=3, base_delay=1.0, max_delay=10.0, deadline=30.0, timeout=10.0),
        budget=RequestBudget(1.0, 2),
        breaker=CircuitBreaker(failure_threshold=4, cooldown=300.0),
    )


def _when(entry: dict) -> object:
    for key in ("published_parsed", "updated_parsed"):
        st = entry.get(key)
        if st:
            return pd.Timestamp(calendar.timegm(st), unit="s", tz="UTC")
    return entry.get("published") or entry.get("updated")


def parse_feed(body: bytes, feed: Feed, *, keywords: dict[str, tuple[str, ...]] | None = None, what: str = "") -> pd.DataFrame:
    """Raw items of one feed document (see the module docstring for what is refused)."""
    import feedparser

    parsed = feedparser.parse(body)
    src = "rss"
    if not parsed.get("version"):
        kind = "an empty body" if not body.strip() else "not an RSS or Atom document (an HTML page?)"
        raise BadResponseError(f"{src} {what}: the answer is {kind}", source=src, symbol=feed.name)
    if parsed.get("bozo"):
        problem = type(parsed.get("bozo_exception")).__name__
        if not _CLOSED.search(body.rstrip()):
            raise BadResponseError(f"{src} {what}: the feed is cut short ({problem}: no closing tag); nothing read",
                                   source=src, symbol=feed.name)
        log.warning("%s %s: feed has minor faults (%s); its entries are read", src, what, problem)
    rows = []
    for entry in parsed.entries:
        title = entry.get("title", "")
        symbols = list(feed.symbols) + [s for s in match_symbols(title, keywords or {}) if s not in feed.symbols]
        rows.append({"published": _when(entry), "title": title,
                     "summary": entry.get("summary") or entry.get("description") or "", "url": entry.get("link", ""),
                     "symbols": ",".join(symbols), "publisher": feed.name})
    return pd.DataFrame(rows, columns=list(RAW_COLUMNS))


class RSSSource(NewsSource):
    """Headlines from the RSS/Atom feeds of the news configuration.

    Parameters
    ----------
    config : NewsConfig, optional
        Feeds and keywords; default :func:`research.news.config.load_news_config` (``news.yaml``).
    feeds : list of Feed, optional
        Feeds to read instead of the configuration's.
    guards : dict, optional
        ``{host: Guard}`` to use instead of the process-wide guard of each host (tests).
    """

    name = "rss"
    live = True
    libraries = ["feedparser", "requests"]

    def __init__(self, *, config: NewsConfig | None = None, feeds: list[Feed] | None = None,
                 guards: dict[str, Guard] | None = None) -> None:
        self.config = config or load_news_config(required=feeds is None)
        self.feeds = tuple(feeds) if feeds is not None else self.config.feeds
        if not self.feeds:
            where = self.config.path or "news.yaml"
            raise ValueError(f"no RSS feeds configured in {where}: add them under 'feeds' (see news.example.yaml)")
        self.guards = dict(guards or {})
        self.session = requests.Session()
        plain = HTTPAdapter(max_retries=0)  # the guard alone retries
        self.session.mount("https://", plain)
        self.session.mount("http://", plain)

    def provenance(self) -> str:
        return f"rss via feedparser: {', '.join(f.name for f in self.feeds)}"

    def _guard(self, host: str) -> Guard:
        return self.guards.get(host) or guard_for(f"rss:{host}", lambda: default_rss_guard(host))

    def _get(self, feed: Feed, attempt: Attempt, what: str) -> bytes:
        try:
            resp = self.session.get(feed.url, timeout=attempt.timeout, headers=_HEADERS)
            body = resp.content  # a transfer cut short raises here
        except Exception as exc:  # requests, urllib3 and socket errors
            mapped = transport_error(exc, source="rss", symbol=feed.name, what=what)
            if mapped is None:
                raise
            raise mapped from None
        if resp.status_code == 429:
            after = parse_retry_after(resp.headers.get("Retry-After"))
            raise RateLimitError(f"rss {what}: rate limited (HTTP 429)", source="rss", symbol=feed.name, retry_after=after)
        if resp.status_code >= 500:
            raise SourceUnavailableError(f"rss {what}: HTTP {resp.status_code}", source="rss", symbol=feed.name)
        if resp.status_code != 200:
            raise BadResponseError(f"rss {what}: HTTP {resp.status_code}", source="rss", symbol=feed.name)
        return body

    def fetch_feed(self, feed: Feed) -> pd.DataFrame:
        """Raw items of one feed, through its host's guard."""
        what = f"feed {feed.name!r} ({urlsplit(feed.url).netloc})"
        guard = self._guard(urlsplit(feed.url).netloc)
        return guard.call(lambda att: parse_feed(self._get(feed, att, what), feed, keywords=self.config.keywords, what=what),
                          symbol=feed.name, what=what)

    def fetch(self, symbols: list[str], start: pd.Timestamp | None, end: pd.Timestamp | None) -> pd.DataFrame:
        parts, failed, first_error = [], [], None
        for feed in self.feeds:
            try:
                parts.append(self.fetch_feed(feed))
            except SourceError as exc:
                log.warning("rss: feed %s failed: %s", feed.name, exc)
                failed.append(f"{feed.name}: {type(exc).__name__}")
                first_error = first_error or exc
        if not parts and first_error is not None:
            raise first_error
        frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(RAW_COLUMNS))
        frame.attrs["failed"] = failed
        return frame
