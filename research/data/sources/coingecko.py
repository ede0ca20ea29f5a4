"""CoinGecko through pycoingecko (live, daily bars, 24/7 crypto calendar).

Two kinds of bars, kept in separate datasets of the store so they never mix:

``bars="close"`` (default; store name ``coingecko-close``)
    From ``/coins/{id}/market_chart?interval=daily``, which has no OHLC: CoinGecko gives one
    price per day at 00:00 UTC. The bar of session date D is built from two observed prices:
    ``open`` = price at D 00:00, ``close`` = price at D+1 00:00, ``volume`` = the 24 h volume
    reported at D+1 00:00. ``high``/``low`` are ``max``/``min`` of open and close: there is no
    intraday range, so these bars are *close-only* and labelled so (store name, provenance,
    ``frame.attrs["bars"]``). Use them for close-to-close work, not for range-based features.
    Depth: the last 365 days on the public and demo plans, all history with a paid key.
``bars="ohlc"`` (store name ``coingecko-ohlc``)
    Real candles from ``/coins/{id}/ohlc`` (the timestamp is the candle's *close* time),
    aggregated into complete UTC days (4-hour candles on the public and demo plans, daily
    candles with ``interval=daily`` on a paid plan), with volume merged from market_chart.
    The plan limits how far back candles reach: 30 days public/demo, 180 days paid; older
    starts raise :class:`InvalidRequestError` before any request.

Alignment and the last point: ``prices``, ``market_caps`` and ``total_volumes`` can differ in
length; they are aligned by timestamp, never by position (a missing volume becomes NaN for
that day only). The last point of market_chart is a partial "now" price (not at midnight) and
is dropped, as is the current, incomplete UTC day; ``frame.attrs`` counts what was dropped.

Keys: ``COINGECKO_API_KEY`` (paid, pro-api host) or ``COINGECKO_DEMO_API_KEY`` from
:func:`research.config.get_settings`. pycoingecko puts keys in the URL query string; here the
key is moved into the ``x-cg-pro-api-key`` / ``x-cg-demo-api-key`` header instead, so it never
appears in a URL, a log line, an error message or a recorded request. Error text taken from
the client is redacted as well.

Retries: pycoingecko mounts a retrying adapter on ``https://`` (5 retries on 502/503/504);
it is replaced by a plain adapter on both schemes so that the source's
:class:`~research.data.resilience.Guard` alone retries, paces and breaks the circuit.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Literal

import numpy as np
import pandas as pd
import requests
from requests.adapters import HTTPAdapter

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
    transport_error,
)
from research.data.sources.base import Source
from research.timeutil import to_utc

__all__ = ["CoinGeckoSource", "COIN_IDS", "resolve_coin", "close_only_bars", "ohlc_daily_bars", "align_market_chart"]

log = logging.getLogger(__name__)

#: Ticker -> CoinGecko coin id for common coins; raw ids ("bitcoin") are accepted too.
COIN_IDS = {
    "BTC": "bitcoin", "ETH": "ethereum", "SOL": "solana", "BNB": "binancecoin", "XRP": "ripple",
    "ADA": "cardano", "DOGE": "dogecoin", "LTC": "litecoin", "DOT": "polkadot", "LINK": "chainlink",
    "AVAX": "avalanche-2", "TRX": "tron", "BCH": "bitcoin-cash", "XLM": "stellar", "ATOM": "cosmos",
    "USDT": "tether", "USDC": "usd-coin",
}
DAY_MS = 86_400_000
#: History depth in days per plan (market_chart; OHLC candles).
CHART_DEPTH = {"public": 365, "demo": 365, "pro": None}
OHLC_DEPTH = {"public": 30, "demo": 30, "pro": 180}
_OHLC_DAYS = (1, 7, 14, 30, 90, 180)
_ID = re.compile(r"[a-z0-9][a-z0-9\-]{0,79}")
_VS = re.compile(r"[a-z]{3,5}")
_KEY_IN_URL = re.compile(r"(x_cg_(?:pro|demo)_api_key=)[^&\s'\"]+", re.IGNORECASE)


def default_coingecko_guard(plan: str) -> Guard:
    """The guard of one plan: public about 10 calls/min, demo 30, paid 500, for all processes together."""
    rate, burst = {"public": (1 / 6.0, 1), "demo": (1 / 2.1, 1), "pro": (8.0, 8)}[plan]
    budget = shared_budget(f"coingecko-{plan}", rate, burst)  # one budget for every process
    return Guard(
        "coingecko",
        policy=RetryPolicy(attempts=4, base_delay=2.0, max_delay=30.0, deadline=90.0, timeout=15.0),
        budget=budget,
        breaker=CircuitBreaker(failure_threshold=5, cooldown=120.0),
    )


def resolve_coin(symbol: str, extra: dict[str, str] | None = None) -> tuple[str, str]:
    """``(coin id, vs currency)`` for ``BTC-USD``, ``bitcoin``, ``bitcoin/eur`` or ``ETH-EUR``.

    Raises
    ------
    InvalidRequestError
        Malformed symbol.
    SymbolNotFoundError
        A ``TICKER-CCY`` symbol whose ticker has no known coin id.
    """
    if not isinstance(symbol, str) or not symbol.strip():
        raise InvalidRequestError(f"coingecko: expected a symbol like 'BTC-USD' or a coin id like 'bitcoin', got {symbol!r}")
    text = symbol.strip()
    ids = {**COIN_IDS, **{k.upper(): v for k, v in (extra or {}).items()}}
    if "/" in text:
        coin, _, vs = text.partition("/")
        coin, vs = coin.lower(), vs.lower()
    elif "-" in text and text.rsplit("-", 1)[0].upper() in ids and text.rsplit("-", 1)[1].isalpha():
        ticker, vs = text.rsplit("-", 1)
        coin, vs = ids[ticker.upper()], vs.lower()
    elif re.fullmatch(r"[A-Za-z0-9]{2,10}-[A-Za-z]{3,5}", text) and text.upper() == text:
        raise SymbolNotFoundError(
            f"coingecko: no coin id known for {text.split('-')[0]!r} (from {text!r}); pass the CoinGecko id "
            f"(e.g. 'bitcoin' or 'bitcoin/usd') or coins={{'{text.split('-')[0]}': '<id>'}}; known: {sorted(ids)}"
        )
    else:
        coin, vs = text.lower(), "usd"
    if not _ID.fullmatch(coin) or not _VS.fullmatch(vs):
        raise InvalidRequestError(f"coingecko: {symbol!r} is not a coin id / currency pair like 'bitcoin/usd'")
    return coin, vs


# ------------------------------------------------------------------------------ parsing
def _points(payload: dict, key: str, what: str) -> pd.Series:
    """One ``[[ms, value], ...]`` array as a Series indexed by ms (last value wins on repeats)."""
    raw = payload.get(key)
    if raw is None:
        return pd.Series(dtype="float64", name=key)
    if not isinstance(raw, list) or any(not isinstance(p, (list, tuple)) or len(p) < 2 for p in raw):
        raise BadResponseError(f"coingecko {what}: '{key}' is not a list of [timestamp, value] pairs")
    ms = np.array([p[0] for p in raw], dtype="int64")
    values = pd.to_numeric(pd.Series([p[1] for p in raw]), errors="coerce").to_numpy(dtype="float64")
    series = pd.Series(values, index=ms, name=key)
    return series[~series.index.duplicated(keep="last")].sort_index()


def align_market_chart(payload: dict, *, what: str = "") -> pd.DataFrame:
    """``prices``, ``market_caps`` and ``total_volumes`` aligned by timestamp (ms index).

    Rows are the timestamps that have a price; a volume or market cap missing at one of them
    is NaN there (never borrowed from a neighbour by position).
    """
    if not isinstance(payload, dict) or "prices" not in payload:
        raise BadResponseError(f"coingecko {what}: market_chart answer has no 'prices' ({type(payload).__name__})")
    prices = _points(payload, "prices", what)
    frame = pd.DataFrame({"price": prices})
    frame["market_cap"] = _points(payload, "market_caps", what).reindex(frame.index)
    frame["volume"] = _points(payload, "total_volumes", what).reindex(frame.index)
    return frame[frame["price"].notna()]


def close_only_bars(payload: dict, *, what: str = "") -> pd.DataFrame:
    """Close-only daily bars from a market_chart answer (see the module docstring)."""
    points = align_market_chart(payload, what=what)
    midnight = points.index % DAY_MS == 0
    partial = int((~midnight).sum())
    daily = points[midnight]
    day = pd.to_datetime(daily.index, unit="ms", utc=True)
    nxt = (daily.index + DAY_MS)
    close = daily["price"].reindex(nxt).to_numpy()
    volume = daily["volume"].reindex(nxt).to_numpy()
    open_ = daily["price"].to_numpy()
    bars = pd.DataFrame(
        {"open": open_, "high": np.fmax(open_, close), "low": np.fmin(open_, close), "close": close, "volume": volume},
        index=pd.DatetimeIndex(day, name="timestamp").as_unit("ns"),
    )
    bars = bars[~np.isnan(close)]  # the last day (and a day before a missing point) has no close yet
    if partial > 1 or (partial == 1 and midnight[-1]):
        log.warning("coingecko %s: %d point(s) not at 00:00 UTC besides the last one were left out", what, partial)
    bars.attrs.update(bars="close-only", partial_points_dropped=partial, points=len(points))
    return bars


def ohlc_daily_bars(candles: list, *, what: str = "") -> pd.DataFrame:
    """Complete UTC days from ``[[close_ms, o, h, l, c], ...]`` candles of any fixed length.

    A day is kept only when its candles cover it entirely (so the current, partial day and
    days with a missing candle are dropped and counted in ``attrs``).
    """
    if not isinstance(candles, list) or any(not isinstance(c, (list, tuple)) or len(c) < 5 for c in candles):
        raise BadResponseError(f"coingecko {what}: OHLC answer is not a list of [t, o, h, l, c] rows")
    if not candles:
        return pd.DataFrame(columns=["open", "high", "low", "close"], dtype="float64")
    arr = pd.DataFrame(candles, columns=["t", "open", "high", "low", "close"][: 5]).astype({"t": "int64"})
    arr = arr.drop_duplicates("t", keep="last").sort_values("t")
    steps = np.diff(arr["t"].to_numpy())
    step = int(np.median(steps)) if len(steps) else DAY_MS
    if step <= 0 or DAY_MS % step:
        raise BadResponseError(f"coingecko {what}: OHLC candles are {step} ms apart, which does not divide a day")
    arr["day"] = (arr["t"] - 1) // DAY_MS * DAY_MS  # a candle closing at midnight belongs to the day before
    groups = arr.groupby("day", sort=True)
    agg = groups.agg(open=("open", "first"), high=("high", "max"), low=("low", "min"), close=("close", "last"), n=("t", "size"))
    complete = agg["n"] == DAY_MS // step
    bars = agg.loc[complete, ["open", "high", "low", "close"]].astype("float64")
    bars.index = pd.DatetimeIndex(pd.to_datetime(bars.index, unit="ms", utc=True), name="timestamp").as_unit("ns")
    bars.attrs.update(bars="ohlc", candle_ms=step, incomplete_days_dropped=int((~complete).sum()))
    return bars


# ------------------------------------------------------------------------------- source
@dataclass
class _Seen:
    status: int | None = None
    retry_after: float | None = None


class CoinGeckoSource(Source):
    """Daily crypto bars from CoinGecko.

    Parameters
    ----------
    bars : {"close", "ohlc"}
        Close-only bars from market_chart (deep history) or real OHLC candles (recent only);
        see the module docstring.
    api_key, demo_api_key : str, optional
        Paid (pro) or demo key; default to the settings (``COINGECKO_API_KEY``,
        ``COINGECKO_DEMO_API_KEY``). A paid key wins over a demo key.
    coins : dict, optional
        Extra ``{"TICKER": "coin-id"}`` mappings for ``TICKER-CCY`` symbols.
    guard : Guard, optional
        Retries, budget and breaker; by default the process-wide guard of the plan.

    Attributes
    ----------
    client : pycoingecko.CoinGeckoAPI
        The client; ``client.api_base_url`` can point at another server (tests).
    plan : {"public", "demo", "pro"}
    """

    name = "coingecko-close"  # per instance: "coingecko-close" or "coingecko-ohlc"
    live = True
    libraries = ["pycoingecko", "requests"]

    def __init__(
        self,
        *,
        bars: Literal["close", "ohlc"] = "close",
        api_key: str | None = None,
        demo_api_key: str | None = None,
        coins: dict[str, str] | None = None,
        guard: Guard | None = None,
    ) -> None:
        from pycoingecko import CoinGeckoAPI

        if bars not in ("close", "ohlc"):
            raise ValueError(f"bars must be 'close' or 'ohlc', got {bars!r}")
        if api_key is None and demo_api_key is None:
            settings = get_settings()
            api_key, demo_api_key = (k.get_secret_value() if k is not None else None
                                     for k in (settings.coingecko_api_key, settings.coingecko_demo_api_key))
        self.bars = bars
        self.name = f"coingecko-{bars}"
        self.plan = "pro" if api_key else ("demo" if demo_api_key else "public")
        self._secrets = tuple(k for k in (api_key, demo_api_key) if k)
        self.coins = dict(coins or {})
        self.client = CoinGeckoAPI(api_key=api_key or "", retries=0, demo_api_key=demo_api_key or "")
        self._move_key_to_header(api_key, demo_api_key)
        plain = HTTPAdapter(max_retries=0)
        self.client.session.mount("https://", plain)
        self.client.session.mount("http://", plain)
        self.client.session.hooks["response"].append(self._observe)
        self._seen = _Seen()
        self._lock = threading.Lock()
        self.guard = guard or guard_for(f"coingecko:{self.plan}", lambda: default_coingecko_guard(self.plan))

    def _move_key_to_header(self, api_key: str | None, demo_api_key: str | None) -> None:
        self.client.extra_params = None
        if api_key:
            self.client.session.headers["x-cg-pro-api-key"] = api_key
        elif demo_api_key:
            self.client.session.headers["x-cg-demo-api-key"] = demo_api_key

    def __repr__(self) -> str:
        return f"CoinGeckoSource(bars={self.bars!r}, plan={self.plan!r})"

    def calendar(self, symbol: str) -> Calendar:
        return CRYPTO

    def provenance(self, symbol: str) -> str:
        try:
            version = metadata.version("pycoingecko")
        except metadata.PackageNotFoundError:  # pragma: no cover
            version = "?"
        kind = (
            "close-only bars from market_chart (open = price at 00:00 UTC, close = price at the next "
            "00:00 UTC, high/low = max/min of open and close: no intraday range)"
            if self.bars == "close"
            else "OHLC from /ohlc candles aggregated to UTC days, volume from market_chart"
        )
        coin, vs = resolve_coin(symbol, self.coins)
        return f"coingecko:{coin}/{vs} via pycoingecko {version}, {self.plan} plan; {kind}"

    # ---------------------------------------------------------------- fetching
    def fetch(
        self,
        symbol: str,
        start: pd.Timestamp | None,
        end: pd.Timestamp | None,
        interval: str = "1d",
    ) -> pd.DataFrame:
        """Complete daily bars with ``start <= timestamp <= end`` (open ends: plan depth / latest)."""
        coin, vs = resolve_coin(symbol, self.coins)
        s, e = to_utc(start), to_utc(end)
        what = describe_request(symbol, s, e, interval)
        if interval != "1d":
            raise InvalidRequestError(f"coingecko {what}: only daily bars (interval='1d') are served, not {interval!r}")
        if s is not None and e is not None and s > e:
            raise InvalidRequestError(f"coingecko {what}: start {s} is after end {e}")
        today = pd.Timestamp.now(tz="UTC").normalize()
        if s is not None and s > today:
            raise InvalidRequestError(f"coingecko {what}: start {s.date()} is in the future")
        days = self._days(s, today, what)
        if self.bars == "close":
            payload = self._call(lambda: self.client.get_coin_market_chart_by_id(coin, vs, days, interval="daily", precision="full"), symbol, what)
            frame = close_only_bars(payload, what=what)
        else:
            frame = self._ohlc(coin, vs, days, symbol, what)
        lo = s.normalize() if s is not None else None
        mask = np.ones(len(frame), dtype=bool)
        if lo is not None:
            mask &= frame.index >= lo
        if e is not None:
            mask &= frame.index <= e
        frame = frame[mask]
        if frame.empty:
            raise EmptyResultError(f"coingecko {what}: no complete daily bar in the range", source="coingecko", symbol=symbol)
        frame.attrs.update(source=self.name, symbol=symbol, coin=coin, vs_currency=vs, plan=self.plan)
        return frame

    def _days(self, start: pd.Timestamp | None, today: pd.Timestamp, what: str) -> int | str:
        """The ``days`` parameter reaching back to ``start``; plan limits raise here."""
        limit = CHART_DEPTH[self.plan] if self.bars == "close" else OHLC_DEPTH[self.plan]
        if start is None:
            return limit if limit is not None else "max"
        need = int((today - start.normalize()).days) + 1
        if limit is not None and need > limit:
            kind = "market_chart history" if self.bars == "close" else "OHLC candles"
            hint = " or set COINGECKO_API_KEY (paid plan)" if self.plan != "pro" else ""
            alt = " or use bars='close'" if self.bars == "ohlc" else ""
            raise InvalidRequestError(
                f"coingecko {what}: the {self.plan} plan serves {kind} for the last {limit} days only "
                f"(from {(today - pd.Timedelta(days=limit - 1)).date()}); start later{alt}{hint}"
            )
        if self.bars == "ohlc":
            return next(d for d in _OHLC_DAYS if d >= need)
        return max(need, 1)

    def _ohlc(self, coin: str, vs: str, days: int | str, symbol: str, what: str) -> pd.DataFrame:
        extra = {"interval": "daily"} if self.plan == "pro" else {}
        candles = self._call(lambda: self.client.get_coin_ohlc_by_id(coin, vs, days, precision="full", **extra), symbol, what)
        bars = ohlc_daily_bars(candles, what=what)
        chart = self._call(lambda: self.client.get_coin_market_chart_by_id(coin, vs, days, interval="daily", precision="full"), symbol, what)
        points = align_market_chart(chart, what=what)
        # the 24 h volume reported at D+1 00:00 is day D's volume
        day_ms = (bars.index.asi8 // 1_000_000).astype("int64")
        bars["volume"] = points["volume"].reindex(day_ms + DAY_MS).to_numpy()
        return bars

    def _call(self, request: Callable[[], Any], symbol: str, what: str) -> Any:
        """One guarded HTTP request through pycoingecko, errors mapped and redacted."""

        def attempt(att: Attempt) -> Any:
            with self._lock:
                self._seen = _Seen()
                self.client.request_timeout = att.timeout
                try:
                    answer = request()
                except Exception as exc:  # pycoingecko raises ValueError, HTTPError, requests errors
                    raise self._map_error(exc, symbol, what) from None
                if isinstance(answer, dict) and "prices" not in answer:  # an error body with HTTP 200
                    error = self._map_error(None, symbol, what, body=answer)
                    if error is not None:
                        raise error
                return answer

        return self.guard.call(attempt, symbol=symbol, what=what)

    def _observe(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._seen = _Seen(response.status_code, parse_retry_after(response.headers.get("Retry-After")))

    def _redact(self, text: str) -> str:
        text = _KEY_IN_URL.sub(r"\1***", text)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _map_error(self, exc: Exception | None, symbol: str, what: str, body: object = None) -> Exception | None:
        """The typed error for a failed request (``exc``) or an error body answered with 200.

        Returns ``None`` only when ``exc`` is ``None`` and ``body`` is not an error body.
        """
        src = "coingecko"
        status, retry_after = self._seen.status, self._seen.retry_after
        if body is None and isinstance(exc, ValueError) and exc.args and isinstance(exc.args[0], (dict, list)):
            body = exc.args[0]  # pycoingecko raises ValueError(<json body>) for HTTP errors with JSON
        detail = self._redact(json.dumps(body)[:300]) if body is not None else ""
        code = _error_code(body)
        if status == 429 or code == 429:
            wait = f"; Retry-After {retry_after:g} s" if retry_after is not None else ""
            return RateLimitError(f"{src} {what}: rate limited by CoinGecko (HTTP {status}{wait}) {detail}".rstrip(),
                                  source=src, symbol=symbol, retry_after=retry_after)
        if code == 10012 or "allowed time range" in detail:
            return InvalidRequestError(f"{src} {what}: beyond the history the {self.plan} plan allows: {detail}")
        if status in (401, 403) or (code is not None and code >= 10000):
            return SourceError(f"{src} {what}: CoinGecko refused the request (HTTP {status}, {self.plan} plan; "
                               f"check the API key settings): {detail}", source=src, symbol=symbol)
        if status == 404 or (isinstance(body, dict) and body.get("error") == "coin not found"):
            return SymbolNotFoundError(f"{src} {what}: CoinGecko does not know this coin (HTTP {status}): {detail}")
        if status is not None and status >= 500:
            return SourceUnavailableError(f"{src} {what}: CoinGecko answered HTTP {status}", source=src, symbol=symbol)
        if exc is None:
            if isinstance(body, dict) and "prices" not in body and ("status" in body or "error" in body):
                return BadResponseError(f"{src} {what}: error answer with HTTP {status}: {detail}", source=src, symbol=symbol)
            return None
        mapped = transport_error(exc, source=src, symbol=symbol, what=what)
        if mapped is not None:
            return mapped
        kind = type(exc).__name__
        return BadResponseError(f"{src} {what}: unexpected answer (HTTP {status}, {kind}) {detail}".rstrip(),
                                source=src, symbol=symbol)


def _error_code(body: object) -> int | None:
    """CoinGecko's ``error_code`` from ``{"status": {...}}`` or ``{"error": {"status": {...}}}``."""
    if not isinstance(body, dict):
        return None
    status = body.get("status")
    if not isinstance(status, dict) and isinstance(body.get("error"), dict):
        status = body["error"].get("status")
    if isinstance(status, dict):
        try:
            return int(status.get("error_code"))
        except (TypeError, ValueError):
            return None
    return None


