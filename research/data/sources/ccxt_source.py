"""Public OHLCV from a crypto exchange through ccxt (live, hourly and daily, 24/7 calendar).

The exchange is chosen in the settings (``WORKBENCH_CCXT_EXCHANGE``, default ``binance``) or
by the ``exchange`` argument; only public market data is read, so no key is needed. The store
name is ``ccxt-<exchange>``, so bars of different exchanges never mix.

Symbols
-------
The workbench's names (``BTC-USD``) are mapped to the exchange's unified ccxt symbols:
``BASE-QUOTE`` becomes ``BASE/QUOTE`` when the exchange lists it, and for a ``USD`` quote the
first of ``BASE/USD``, ``BASE/USDT``, ``BASE/USDC`` it lists (Binance has no USD pairs:
``BTC-USD`` is read from ``BTC/USDT``); a unified symbol (``ETH/BTC``) is taken as it is. The
pair actually read is in the provenance and in ``frame.attrs["market"]``.

Fetching
--------
``fetch_ohlcv(market, timeframe, since, limit)`` is paged: each page starts one bar after the
last bar of the page before and asks for ``page_limit`` bars (1000, Binance's maximum), until
the requested end or the present. The store resumes from its last stored bar (an ingest of a
live source fetches only from there). ``start=None`` reads from the first bar the exchange
has. The bar whose period has not ended yet (the current hour or day) is listed in
``frame.attrs["partial"]`` and never stored as final.

Rate limits and failures
------------------------
ccxt's own throttle is on (``enableRateLimit=True``: its ``rateLimit`` milliseconds between
requests of one exchange object); on top of it, every request goes through the source's
:class:`~research.data.resilience.Guard` (retries with backoff, a request budget and a
retry-after memory shared by every process on the machine, a circuit breaker). ccxt's
exceptions become the workbench's typed errors: ``RateLimitExceeded`` and ``DDoSProtection``
(HTTP 429, 418) :class:`RateLimitError` with the ``Retry-After`` the exchange sent;
``RequestTimeout``, ``ExchangeNotAvailable``, other network errors and HTTP 5xx
:class:`SourceUnavailableError`; ``BadSymbol`` :class:`SymbolNotFoundError`; an answer that is
not JSON (HTML, a truncated body) or not a list of candles :class:`BadResponseError`.
"""

from __future__ import annotations

import json
import logging
import threading
from importlib import metadata
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pandas as pd

from research.config import get_settings
from research.data.calendars import CRYPTO, Calendar
from research.data.errors import (
    BadResponseError,
    EmptyResultError,
    InvalidRequestError,
    RateLimitError,
    SourceError,
    SourceUnavailableError,
    SymbolNotFoundError,
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
)
from research.data.sources.base import Source
from research.timeutil import to_utc

__all__ = ["CcxtSource", "market_for", "candidate_markets", "candles_frame", "CCXT_INTERVALS"]

log = logging.getLogger(__name__)

#: Workbench interval -> ccxt timeframe.
CCXT_INTERVALS = {"1h": "1h", "1d": "1d"}
_STEP_MS = {"1h": 3_600_000, "1d": 86_400_000}
_USD_QUOTES = ("USD", "USDT", "USDC")
_MAX_PAGES = 100_000


def default_ccxt_guard(exchange: str) -> Guard:
    """The guard of one exchange: 5 requests a second with bursts of 5, for all processes together."""
    return Guard(
        f"ccxt-{exchange}",
        policy=RetryPolicy(attempts=4, base_delay=1.0, max_delay=30.0, deadline=60.0, timeout=10.0),
        budget=shared_budget(f"ccxt-{exchange}", rate=5.0, burst=5),
        breaker=CircuitBreaker(failure_threshold=5, cooldown=120.0),
    )


def candidate_markets(symbol: str) -> list[str]:
    """The unified symbols ``symbol`` may stand for, most preferred first (no network).

    Raises :class:`InvalidRequestError` for a symbol that is neither ``BASE-QUOTE`` nor
    ``BASE/QUOTE``.
    """
    text = symbol.strip().upper() if isinstance(symbol, str) else ""
    parts = text.replace("/", "-").split("-")
    if len(parts) != 2 or not all(p.isalnum() for p in parts):
        raise InvalidRequestError(f"ccxt: expected a symbol like 'BTC-USD' or 'BTC/USDT', got {symbol!r}")
    base, quote = parts
    if "/" not in text and quote == "USD":
        return [f"{base}/{q}" for q in _USD_QUOTES]
    return [f"{base}/{quote}"]


def market_for(symbol: str, markets: dict[str, Any] | list[str]) -> str:
    """The exchange's unified symbol for a workbench symbol (see the module docstring).

    Raises
    ------
    InvalidRequestError
        A symbol that is neither ``BASE-QUOTE`` nor ``BASE/QUOTE``.
    SymbolNotFoundError
        The exchange lists no matching pair.
    """
    candidates = candidate_markets(symbol)
    for candidate in candidates:
        if candidate in markets:
            return candidate
    base = candidates[0].split("/")[0]
    near = sorted(m for m in markets if str(m).split("/")[0] == base)[:8]
    hint = f"; pairs of {base} it lists: {near}" if near else ""
    raise SymbolNotFoundError(f"ccxt: the exchange lists none of {candidates} (for {symbol!r}){hint}")


def candles_frame(rows: object, *, what: str) -> pd.DataFrame:
    """``[[ms, o, h, l, c, v], ...]`` as OHLCV (float64, UTC index); raises on anything else."""
    if not isinstance(rows, list) or any(not isinstance(r, (list, tuple)) or len(r) < 6 for r in rows):
        raise BadResponseError(f"{what}: the answer is not a list of [time, open, high, low, close, volume] candles")
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in ("open", "high", "low", "close", "volume")},
                            index=pd.DatetimeIndex([], tz="UTC", name="timestamp").as_unit("ns"))
    try:
        ms = np.array([int(r[0]) for r in rows], dtype="int64")
        values = np.array([[np.nan if v is None else float(v) for v in r[1:6]] for r in rows], dtype="float64")
    except (TypeError, ValueError) as exc:
        raise BadResponseError(f"{what}: a candle holds a value that is not a number ({exc})") from None
    frame = pd.DataFrame(values, columns=["open", "high", "low", "close", "volume"],
                         index=pd.DatetimeIndex(pd.to_datetime(ms, unit="ms", utc=True), name="timestamp").as_unit("ns"))
    return frame[~frame.index.duplicated(keep="last")].sort_index()


class CcxtSource(Source):
    """Hourly and daily crypto bars from an exchange's public API, through ccxt.

    Parameters
    ----------
    exchange : str, optional
        A ccxt exchange id (``binance``, ``kraken``, ``coinbase``, ...); defaults to the
        setting ``ccxt_exchange`` (``WORKBENCH_CCXT_EXCHANGE``).
    api_url : str, optional
        Send every request to this scheme and host instead of the exchange's (a local mirror
        or a test server); the paths stay the exchange's. Defaults to the setting
        ``ccxt_api_url`` (``WORKBENCH_CCXT_API_URL``), unset: the exchange's own hosts.
    page_limit : int
        Candles asked for per request.
    guard : Guard, optional
        Retries, budget, retry-after memory and breaker; by default the process-wide guard of
        the exchange.

    Attributes
    ----------
    client : ccxt.Exchange
        The ccxt exchange object (``enableRateLimit=True``, spot markets only).
    """

    live = True
    libraries = ["ccxt", "requests"]

    def __init__(self, *, exchange: str | None = None, api_url: str | None = None, page_limit: int = 1000,
                 guard: Guard | None = None) -> None:
        import ccxt

        settings = get_settings()
        exchange = (exchange or settings.ccxt_exchange).strip().lower()
        api_url = api_url or settings.ccxt_api_url
        if exchange not in ccxt.exchanges:
            raise ValueError(f"unknown ccxt exchange {exchange!r}; ccxt knows e.g. binance, kraken, coinbase, bitstamp, "
                             "okx (the full list is ccxt.exchanges)")
        if page_limit < 1:
            raise ValueError(f"page_limit must be >= 1, got {page_limit}")
        self.exchange, self.page_limit = exchange, page_limit
        self.name = f"ccxt-{exchange}"
        self.client = getattr(ccxt, exchange)({
            "enableRateLimit": True,
            "options": {"defaultType": "spot", "fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False,
                        "fetchMargins": False},
        })
        self.client.has["fetchCurrencies"] = False  # a private call on several exchanges; markets are enough
        if api_url:
            self.client.urls["api"] = _rehost(self.client.urls["api"], api_url)
        self.guard = guard or guard_for(self.name, lambda: default_ccxt_guard(exchange))
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CcxtSource(exchange={self.exchange!r})"

    def calendar(self, symbol: str) -> Calendar:
        return CRYPTO

    def provenance(self, symbol: str) -> str:
        try:
            version = metadata.version("ccxt")
        except metadata.PackageNotFoundError:  # pragma: no cover
            version = "?"
        try:
            candidate_markets(symbol)  # a malformed symbol is refused before any request
            market = self.market(symbol) if self.client.markets else None
        except SourceError:
            market = None
        pair = f" pair {market}" if market else ""
        return f"ccxt:{self.exchange}{pair} for {symbol} via ccxt {version} (public OHLCV, spot)"

    # ------------------------------------------------------------------ markets
    def market(self, symbol: str) -> str:
        """The exchange's unified symbol for ``symbol`` (loads the markets once)."""
        if not self.client.markets:
            what = f"{self.exchange} markets"
            self._guarded(lambda: self.client.load_markets(), symbol=symbol, what=what, check=_markets_ok)
        return market_for(symbol, self.client.markets)

    def probe(self, symbols: list[str], *, interval: str = "1d", timeout: float = 5.0) -> None:
        """Load the markets with one quick attempt and map every symbol; raise if that fails.

        The attempt honours the exchange's budget and remembered ``Retry-After`` (shared with
        every process) but not its retries: a probe answers within ``timeout`` seconds.
        """
        if interval not in CCXT_INTERVALS:
            raise InvalidRequestError(f"{self.name}: hourly and daily bars (1h, 1d) are served, not {interval!r}")
        for sym in symbols:
            candidate_markets(sym)
        if not self.client.markets:
            quick = Guard(self.name, policy=RetryPolicy(attempts=1, deadline=timeout, timeout=timeout),
                          budget=self.guard.budget, memory=self.guard.memory,
                          breaker=CircuitBreaker(failure_threshold=1, cooldown=1.0))
            regular, self.guard = self.guard, quick
            try:
                self.market(symbols[0] if symbols else "BTC-USD")
            finally:
                self.guard = regular
        for sym in symbols:
            self.market(sym)

    # ----------------------------------------------------------------- fetching
    def fetch(
        self,
        symbol: str,
        start: pd.Timestamp | None,
        end: pd.Timestamp | None,
        interval: str = "1d",
    ) -> pd.DataFrame:
        """Bars with ``start <= timestamp <= end`` (open ends: the first bar listed / now)."""
        s, e = to_utc(start), to_utc(end)
        what = describe_request(symbol, s, e, interval)
        if interval not in CCXT_INTERVALS:
            raise InvalidRequestError(f"{self.name} {what}: hourly and daily bars (1h, 1d) are served, not {interval!r}")
        if s is not None and e is not None and s > e:
            raise InvalidRequestError(f"{self.name} {what}: start {s} is after end {e}")
        now = pd.Timestamp.now(tz="UTC")
        if s is not None and s > now:
            raise InvalidRequestError(f"{self.name} {what}: start {s} is in the future")
        try:
            candidate_markets(symbol)  # a malformed symbol is refused before any request
            market = self.market(symbol)
        except (SymbolNotFoundError, InvalidRequestError) as exc:
            raise type(exc)(f"{self.name} {what}: {str(exc).removeprefix('ccxt: ')}") from None
        frame = self._pages(symbol, market, s, e, interval, what)
        if s is not None:
            frame = frame.loc[s:]
        if e is not None:
            frame = frame.loc[:e]
        if frame.empty:
            raise EmptyResultError(f"{self.name} {what}: {self.exchange} has no {market} bar in the range",
                                   source=self.name, symbol=symbol)
        step = pd.Timedelta(milliseconds=_STEP_MS[interval])
        partial = [t.isoformat() for t in frame.index if t + step > now]
        frame.attrs.update(source=self.name, symbol=symbol, market=market, exchange=self.exchange, partial=partial)
        return frame

    def _pages(self, symbol: str, market: str, s: pd.Timestamp | None, e: pd.Timestamp | None, interval: str,
               what: str) -> pd.DataFrame:
        """Every page from ``s`` (or the first bar listed) to ``e`` (or now)."""
        step = _STEP_MS[interval]
        since = 0 if s is None else int(s.value // 1_000_000)
        since = -(-since // step) * step  # the first bar opening at or after start
        stop = int((e if e is not None else pd.Timestamp.now(tz="UTC")).value // 1_000_000)
        frames = []
        for _ in range(_MAX_PAGES):
            rows = self._guarded(
                lambda since=since: self.client.fetch_ohlcv(market, CCXT_INTERVALS[interval], since, self.page_limit),
                symbol=symbol, what=f"{what} (page from {pd.Timestamp(since, unit='ms', tz='UTC').isoformat()})",
                check=lambda rows: isinstance(rows, list),
            )
            page = candles_frame(rows, what=f"{self.name} {what}")
            page = page[page.index.asi8 // 1_000_000 >= since]  # an exchange that ignores `since` cannot loop us
            if page.empty:
                break
            frames.append(page)
            last = int(page.index[-1].value // 1_000_000)
            if last + step > stop:
                break
            since = last + step
        else:  # pragma: no cover - a range this long is not a market's history
            raise BadResponseError(f"{self.name} {what}: more than {_MAX_PAGES} pages", source=self.name, symbol=symbol)
        if not frames:
            return candles_frame([], what=what)
        frame = pd.concat(frames)
        return frame[~frame.index.duplicated(keep="last")].sort_index()

    def _guarded(self, request: Any, *, symbol: str, what: str, check: Any) -> Any:
        """One request through the guard, ccxt's errors mapped to the typed ones."""

        def attempt(att: Attempt) -> Any:
            with self._lock:
                self.client.timeout = max(1, int(att.timeout * 1000))
                self.client.last_response_headers = None
                self.client.last_http_response = None
                try:
                    answer = request()
                except Exception as exc:  # ccxt's hierarchy, mapped below
                    raise self._map_error(exc, symbol, what) from None
                if not check(answer):
                    raise BadResponseError(f"{self.name} {what}: {self._body_hint()}", source=self.name, symbol=symbol)
                if isinstance(answer, list) and not answer and self._garbled():
                    raise BadResponseError(f"{self.name} {what}: {self._body_hint()}", source=self.name, symbol=symbol)
                return answer

        return self.guard.call(attempt, symbol=symbol, what=what)

    def _garbled(self) -> bool:
        """Whether the last answer's body was not the JSON list it claims to be empty from."""
        body = (self.client.last_http_response or "").strip()
        return bool(body) and body != "[]"

    def _body_hint(self) -> str:
        body = (self.client.last_http_response or "").strip()
        if not body:
            kind = "an empty body"
        elif body.lower().startswith("<"):
            kind = "an HTML page"
        else:
            try:
                json.loads(body)
                kind = "JSON in another shape, or a value that is not a number"
            except ValueError:
                kind = "a truncated or invalid JSON body"
        return f"the answer is not a list of candles ({kind})"

    def _map_error(self, exc: Exception, symbol: str, what: str) -> Exception:
        import ccxt

        src = self.name
        headers = self.client.last_response_headers or {}
        if isinstance(exc, (ccxt.RateLimitExceeded, ccxt.DDoSProtection)):
            retry_after = parse_retry_after(headers.get("Retry-After"))
            wait = f"; Retry-After {retry_after:g} s" if retry_after is not None else ""
            return RateLimitError(f"{src} {what}: rate limited by {self.exchange} ({type(exc).__name__}{wait})",
                                  source=src, symbol=symbol, retry_after=retry_after)
        if isinstance(exc, ccxt.BadSymbol):
            return SymbolNotFoundError(f"{src} {what}: {self.exchange} does not list this market ({_short(exc)})")
        if isinstance(exc, (ccxt.RequestTimeout, ccxt.ExchangeNotAvailable, ccxt.NetworkError)):
            label = "timed out" if isinstance(exc, ccxt.RequestTimeout) else "is unavailable"
            return SourceUnavailableError(f"{src} {what}: {self.exchange} {label} ({type(exc).__name__})",
                                          source=src, symbol=symbol)
        if isinstance(exc, (ccxt.BadResponse, ccxt.BadRequest, ccxt.ExchangeError)):
            return BadResponseError(f"{src} {what}: {self.exchange} answered with an error ({type(exc).__name__}: "
                                    f"{_short(exc)})", source=src, symbol=symbol)
        if isinstance(exc, (TypeError, ValueError, KeyError, IndexError, AttributeError)):
            # ccxt's parsers meet a body that is not what the exchange documents
            return BadResponseError(f"{src} {what}: {self._body_hint()} ({type(exc).__name__})", source=src, symbol=symbol)
        return exc


def _markets_ok(answer: object) -> bool:
    return isinstance(answer, dict) and len(answer) > 0


def _short(exc: Exception, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + "..."


def _rehost(api: object, base: str) -> object:
    """The exchange's API URLs (a string or nested dict) with scheme and host replaced by ``base``'s."""
    target = urlsplit(base)
    if isinstance(api, dict):
        return {k: _rehost(v, base) for k, v in api.items()}
    if isinstance(api, str) and "://" in api:
        parts = urlsplit(api)
        return urlunsplit((target.scheme, target.netloc, parts.path, parts.query, parts.fragment))
    return api


