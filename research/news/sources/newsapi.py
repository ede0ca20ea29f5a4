"""News API (newsapi.org) through newsapi-python (live; key ``NEWSAPI_KEY``).

One ``/v2/everything`` request per symbol, for the symbol's query (``news.yaml``:
``newsapi.queries``, else its keywords, else the symbol), newest first, up to ``page_size``
articles. The key comes from the settings (``NEWSAPI_KEY`` in the environment or ``.env``),
travels in the ``Authorization`` header (never in a URL), and is kept out of logs, errors and
the store: any text taken from an answer is redacted.

The free ("developer") plan allows 1,000 requests a day: the default guard's request budget is
that quota, shared by every process on the machine (``<data dir>/.budget/newsapi.json``), in
bursts of at most 100; a request the budget cannot serve within the deadline fails at once
with a :class:`RateLimitError` instead of waiting for tomorrow. The plan also serves articles
of the last month only: without ``start`` the request asks for the last 29 days, and an older
``start`` is refused by News API (``parameterInvalid``, an :class:`InvalidRequestError`).

Errors: HTTP 429 or ``rateLimited`` is a :class:`RateLimitError` (``Retry-After`` honoured),
5xx and transport failures a :class:`SourceUnavailableError`, a refused key a non-retryable
:class:`SourceError` ("check NEWSAPI_KEY"), a 200 that is not JSON or has no ``articles`` a
:class:`BadResponseError`. Articles News API has withdrawn come back titled ``[Removed]``;
they are quarantined (reason ``removed``).
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import pandas as pd
import requests
from requests.adapters import HTTPAdapter

from research.config import get_settings
from research.data.errors import (
    BadResponseError,
    InvalidRequestError,
    RateLimitError,
    SourceError,
    SourceUnavailableError,
)
from research.data.resilience import (
    Attempt,
    CircuitBreaker,
    Guard,
    RetryPolicy,
    describe_request,
    guard_for,
    parse_retry_after,
    shared_budget,
    transport_error,
)
from research.news.config import NewsConfig, load_news_config, match_symbols
from research.news.sources import RAW_COLUMNS, NewsSource

__all__ = ["NewsAPISource", "default_newsapi_guard", "DAILY_QUOTA"]

log = logging.getLogger(__name__)
DAILY_QUOTA = 1000
_API = "https://newsapi.org"


def default_newsapi_guard() -> Guard:
    """The free plan's guard: 1,000 requests a day for all processes, bursts of 100."""
    return Guard(
        "newsapi",
        policy=RetryPolicy(attempts=3, base_delay=2.0, max_delay=30.0, deadline=60.0, timeout=15.0),
        budget=shared_budget("newsapi", DAILY_QUOTA / 86400.0, 100),
        breaker=CircuitBreaker(failure_threshold=4, cooldown=300.0),
    )


class _Session(requests.Session):
    """A session that sends newsapi-python's requests to ``base`` with the attempt's timeout."""

    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base.rstrip("/")
        self.timeout = 15.0
        self.last: requests.Response | None = None
        plain = HTTPAdapter(max_retries=0)  # the guard alone retries
        self.mount("https://", plain)
        self.mount("http://", plain)

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if url.startswith(_API):
            url = self.base + url[len(_API):]
        kwargs["timeout"] = self.timeout
        self.last = super().request(method, url, *args, **kwargs)
        return self.last


class NewsAPISource(NewsSource):
    """Articles from News API's ``/v2/everything``.

    Parameters
    ----------
    api_key : str, optional
        Defaults to the settings' ``newsapi_key`` (``NEWSAPI_KEY``).
    config : NewsConfig, optional
        Queries, keywords and language (default ``news.yaml``, optional).
    base_url : str
        The API's address (another server in tests).
    page_size : int
        Articles per request (at most 100).
    guard : Guard, optional
        By default the process-wide guard with the free plan's daily budget.
    """

    name = "newsapi"
    live = True
    libraries = ["newsapi-python", "requests"]

    def __init__(self, *, api_key: str | None = None, config: NewsConfig | None = None, base_url: str = _API,
                 page_size: int = 100, guard: Guard | None = None) -> None:
        from newsapi import NewsApiClient

        configured = get_settings().newsapi_key
        key = api_key or (configured.get_secret_value() if configured is not None else None)
        if not key:
            raise InvalidRequestError("News API needs a key: register at https://newsapi.org/register and put "
                                      "NEWSAPI_KEY=<your key> in the project's .env (or the environment)")
        if not 1 <= page_size <= 100:
            raise ValueError(f"page_size must be between 1 and 100, got {page_size}")
        self._secret = key
        self.config = config or load_news_config()
        self.page_size = page_size
        self.session = _Session(base_url)
        self.client = NewsApiClient(api_key=key, session=self.session)
        self.guard = guard or guard_for("newsapi", default_newsapi_guard)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"NewsAPISource(base_url={self.session.base!r}, page_size={self.page_size})"

    def provenance(self) -> str:
        return "newsapi.org /v2/everything via newsapi-python"

    def query(self, symbol: str) -> str:
        """The News API query of ``symbol``."""
        if symbol in self.config.queries:
            return self.config.queries[symbol]
        words = self.config.keywords.get(symbol) or (symbol,)
        return " OR ".join(f'"{w}"' for w in words)

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, "***")

    def _error(self, exc: Exception | None, body: object, symbol: str, what: str) -> Exception:
        resp = self.session.last
        status = resp.status_code if resp is not None else None
        code = body.get("code") if isinstance(body, dict) else None
        detail = self._redact(json.dumps(body)[:300]) if isinstance(body, dict) else ""
        if status == 429 or code == "rateLimited":
            after = parse_retry_after(resp.headers.get("Retry-After")) if resp is not None else None
            return RateLimitError(f"newsapi {what}: rate limited (HTTP {status}, {code or 'no code'})",
                                  source="newsapi", symbol=symbol, retry_after=after)
        if status is not None and status >= 500:
            return SourceUnavailableError(f"newsapi {what}: HTTP {status}", source="newsapi", symbol=symbol)
        if status in (401, 403) or (isinstance(code, str) and code.startswith("apiKey")):
            return SourceError(f"newsapi {what}: the key was refused (HTTP {status}, {code}); check NEWSAPI_KEY",
                               source="newsapi", symbol=symbol)
        if code in ("parameterInvalid", "parametersMissing", "sourcesTooMany", "sourceDoesNotExist"):
            return InvalidRequestError(f"newsapi {what}: request refused: {detail}")
        if exc is not None:
            mapped = transport_error(exc, source="newsapi", symbol=symbol, what=what)
            if mapped is not None:
                return mapped
        return BadResponseError(f"newsapi {what}: unexpected answer (HTTP {status}) {detail}".rstrip(),
                                source="newsapi", symbol=symbol)

    def _articles(self, symbol: str, start: pd.Timestamp, end: pd.Timestamp | None, what: str) -> list[dict]:
        from newsapi.newsapi_exception import NewsAPIException

        def attempt(att: Attempt) -> list[dict]:
            with self._lock:
                self.session.timeout, self.session.last = att.timeout, None
                try:
                    answer = self.client.get_everything(
                        q=self.query(symbol), from_param=start.strftime("%Y-%m-%dT%H:%M:%S"),
                        to=end.strftime("%Y-%m-%dT%H:%M:%S") if end is not None else None,
                        language=self.config.language, sort_by="publishedAt", page_size=self.page_size)
                except NewsAPIException as exc:
                    raise self._error(None, exc.get_exception(), symbol, what) from None
                except Exception as exc:  # requests errors, JSON decoding of an HTML or cut body
                    raise self._error(exc, None, symbol, what) from None
                if not isinstance(answer, dict) or answer.get("status") != "ok" or not isinstance(answer.get("articles"), list):
                    raise self._error(None, answer if isinstance(answer, dict) else None, symbol, what)
                return answer["articles"]

        return self.guard.call(attempt, symbol=symbol, what=what)

    def fetch(self, symbols: list[str], start: pd.Timestamp | None, end: pd.Timestamp | None) -> pd.DataFrame:
        start = start if start is not None else pd.Timestamp.now(tz="UTC").floor("s") - pd.Timedelta(days=29)
        rows = []
        for symbol in symbols:
            what = describe_request(symbol, start, end, "news")
            for art in self._articles(symbol, start, end, what):
                if not isinstance(art, dict):
                    continue
                title = art.get("title") or ""
                more = [s for s in match_symbols(title, self.config.keywords) if s != symbol]
                publisher = (art.get("source") or {}).get("name") if isinstance(art.get("source"), dict) else None
                rows.append({"published": art.get("publishedAt"), "title": title, "summary": art.get("description") or "",
                             "url": art.get("url") or "", "symbols": ",".join([symbol, *more]),
                             "publisher": publisher or "newsapi"})
        return pd.DataFrame(rows, columns=list(RAW_COLUMNS))
