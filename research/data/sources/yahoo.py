"""Yahoo Finance through yfinance (live).

How yfinance is called
----------------------
One symbol per request with ``yf.Ticker(symbol, session=...).history(...)``, every argument
explicit: ``auto_adjust=False`` (raw OHLC plus ``adj_close``, Yahoo's split- and
dividend-adjusted close), ``back_adjust=False``, ``actions=False``, ``repair=False``,
``prepost=False``, ``keepna=False``, ``rounding=False`` and a bounded ``timeout``.
``yf.download`` is not used for fetching because it turns every per-ticker failure,
``YFRateLimitError`` included, into a log line and an empty column; the typed errors below
need the exception. :func:`normalise_yahoo_frame` still accepts its shapes (``(Price,
Ticker)`` or ``(Ticker, Price)`` MultiIndex columns with ``multi_level_index=True``, flat
columns with ``multi_level_index=False``, tz-naive local dates with ``ignore_tz=True``).

While a request runs, yfinance's process-wide switches are set so that errors arrive as
exceptions (``config.debug.hide_exceptions = False``) and yfinance does not retry on its own
(``config.network.retries = 0``): the :class:`~research.data.resilience.Guard` of this source
retries, paces (with a request budget shared by every process on the machine) and breaks the
circuit. yfinance keeps one HTTP session for the whole process, so requests are serialised by a
lock. Its in-process cache of past ranges is cleared before each attempt (it would otherwise
replay a cached 5xx page on retry); the store is the cache. After an HTTP error yfinance
re-sends a request at once with its other cookie strategy, which no setting turns off: for a
chart answer of 429 or 5xx the instrumented session stops yfinance before that re-send, so
each attempt is one chart request and only the guard's backoff (honouring ``Retry-After``)
decides when the next one goes out. yfinance's own log warnings are kept quiet during a call:
its failures arrive as the typed errors below.

The still-forming bar
---------------------
While a session is open, Yahoo's last bar is today's, still forming. Bars whose period has not
ended (a daily bar before the exchange's regular close, per the answer's trading period, or
before the next exchange-local midnight when that is unknown; a weekly or monthly bar before
its period ends; an hourly bar before its hour ends) are listed in ``frame.attrs["partial"]``;
the store never keeps them as final bars and the next fetch brings them once complete.

Schema
------
Columns ``open high low close adj_close volume`` (float64). Daily, weekly and monthly bars are
stamped at 00:00 UTC of the *exchange-local* session date: the date is read in the exchange's
timezone, never by converting the bar's instant to UTC (a Sydney session opening at 10:00
AEDT is 23:00 UTC of the previous day). Hourly bars keep their instant, in UTC.

Errors
------
``YFRateLimitError`` or HTTP 429 -> :class:`RateLimitError` (with ``Retry-After`` when sent);
HTTP 5xx, timeouts, dropped connections, Yahoo's "will be right back" page ->
:class:`SourceUnavailableError`; HTML or truncated JSON with status 200 ->
:class:`BadResponseError`; an empty frame, ``YFPricesMissingError`` ("possibly delisted") and
``YFTzMissingError`` (no exchange timezone: unknown or delisted symbol) ->
:class:`EmptyResultError`. Unsupported intervals, malformed symbols or ISINs, ``start`` after
``end`` or in the future, and hourly ranges beyond Yahoo's 730 days ->
:class:`InvalidRequestError` before any request.
"""

from __future__ import annotations

import logging
import re
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pandas as pd

from research.data.calendars import Calendar, calendar_of
from research.data.errors import (
    BadResponseError,
    EmptyResultError,
    InvalidRequestError,
    RateLimitError,
    SchemaError,
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
from research.data.sources.base import Source
from research.timeutil import to_utc, to_utc_index

__all__ = ["YahooSource", "normalise_yahoo_frame", "default_yahoo_guard", "YAHOO_INTERVALS"]

log = logging.getLogger(__name__)

#: Workbench interval -> Yahoo interval.
YAHOO_INTERVALS = {"1h": "1h", "1d": "1d", "1wk": "1wk", "1mo": "1mo"}
#: Yahoo serves hourly bars for the last 730 days only (kept one day inside the limit).
HOURLY_DEPTH = pd.Timedelta(days=729)
_SYMBOL = re.compile(r"[A-Za-z0-9^][A-Za-z0-9.\-^=&]{0,31}")
_CRUMB = re.compile(r"(crumb=)[^&\s'\"]+")
_ISIN = re.compile(r"[A-Z]{2}[A-Z0-9]{9}[0-9]")
_COLUMNS = {"open": "open", "high": "high", "low": "low", "close": "close", "adj close": "adj_close",
            "adj_close": "adj_close", "adjclose": "adj_close", "volume": "volume"}
_EVENT_COLUMNS = {"dividends", "stock splits", "capital gains", "repaired?"}
_DAILY_OR_LONGER = {"1d", "1wk", "1mo"}
_YF_LOCK = threading.RLock()
_PANDAS4_WARNING: type[Warning] = getattr(pd.errors, "Pandas4Warning", FutureWarning)


def default_yahoo_guard() -> Guard:
    """The guard every :class:`YahooSource` shares unless given one.

    Four attempts within 60 s (backoff 2, 4, 8 s, jittered), 10 s per request, one request per
    second on average with bursts of 4 (for all processes on the machine together), and a breaker that opens after 5 consecutive failures
    for 2 minutes.
    """
    return Guard(
        "yahoo",
        policy=RetryPolicy(attempts=4, base_delay=2.0, max_delay=30.0, deadline=60.0, timeout=10.0),
        budget=shared_budget("yahoo", rate=1.0, burst=4),
        breaker=CircuitBreaker(failure_threshold=5, cooldown=120.0),
    )


# ------------------------------------------------------------------ session instrumentation
@dataclass
class _Observed:
    """What the instrumented session saw during the current attempt."""

    timeout: float | None = None
    chart: list[tuple[int, float | None]] = field(default_factory=list)

    def last_chart(self) -> tuple[int, float | None] | None:
        return self.chart[-1] if self.chart else None


_OBSERVED = _Observed()


class _ChartFailed(Exception):
    """A chart answer of 429 or 5xx, raised inside yfinance to stop its immediate re-send."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
_DEFAULT_SESSION: Any = None


def _instrument(session: Any) -> Any:
    """Wrap ``session.get``/``post`` to cap every timeout and record chart answers' status.

    yfinance hard-codes 10-30 s timeouts on its cookie, crumb and timezone requests; the cap
    bounds them by the current attempt's timeout. Works for requests and curl_cffi sessions.
    """
    if getattr(session, "_workbench_instrumented", False):
        return session
    for method in ("get", "post"):
        original = getattr(session, method)

        def wrapper(*args: Any, __original: Any = original, **kwargs: Any) -> Any:
            cap = _OBSERVED.timeout
            if cap is not None:
                given = kwargs.get("timeout")
                kwargs["timeout"] = cap if given is None else min(float(given), cap)
            response = __original(*args, **kwargs)
            url = str(kwargs.get("url", args[0] if args else ""))
            if "/finance/chart/" in url:
                status = int(response.status_code)
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                _OBSERVED.chart.append((status, retry_after))
                if _OBSERVED.timeout is not None and (status == 429 or status >= 500):
                    raise _ChartFailed(status)  # before yfinance re-sends it on its own
            return response

        setattr(session, method, wrapper)
    session._workbench_instrumented = True
    return session


def _default_session() -> Any:
    """yfinance's own kind of session (curl_cffi unless disabled), shared by the process."""
    global _DEFAULT_SESSION
    if _DEFAULT_SESSION is None:
        from yfinance._http import new_session

        _DEFAULT_SESSION = new_session()
    return _DEFAULT_SESSION


@contextmanager
def _strict_yfinance():
    """Exceptions instead of logged errors, and no retries inside yfinance, for one call."""
    import yfinance as yf

    saved = (yf.config.debug.hide_exceptions, yf.config.network.retries)
    yf.config.debug.hide_exceptions = False
    yf.config.network.retries = 0
    yf_log = logging.getLogger("yfinance")
    level = yf_log.level
    yf_log.setLevel(logging.CRITICAL)  # its failures come back as typed errors instead
    try:
        with warnings.catch_warnings():
            # yfinance 1.7 calls pandas APIs deprecated in pandas 3 (inplace=...): not the user's concern
            warnings.filterwarnings("ignore", category=_PANDAS4_WARNING, module="yfinance")
            yield yf
    finally:
        yf.config.debug.hide_exceptions, yf.config.network.retries = saved
        yf_log.setLevel(level)


# ---------------------------------------------------------------------------- normalisation
def _select_ticker(frame: pd.DataFrame, symbol: str) -> pd.DataFrame:
    wanted = symbol.upper()
    for level in range(frame.columns.nlevels):
        values = [str(v).upper() for v in frame.columns.get_level_values(level)]
        if wanted in values:
            key = frame.columns.get_level_values(level)[values.index(wanted)]
            return frame.xs(key, axis=1, level=level)
    raise SchemaError(
        f"yahoo {symbol}: MultiIndex columns hold no ticker {symbol!r}; got {list(frame.columns)[:12]}"
    )


def _session_index(index: pd.Index, interval: str, exchange_tz: str | None) -> pd.DatetimeIndex:
    idx = pd.DatetimeIndex(index)
    if interval in _DAILY_OR_LONGER:
        if idx.tz is not None:
            local = idx.tz_convert(exchange_tz) if exchange_tz else idx
            idx = local.tz_localize(None)  # wall-clock time at the exchange
        dates = idx.normalize()  # the exchange-local session date
        return pd.DatetimeIndex(to_utc_index(dates), name="timestamp").as_unit("ns")
    if idx.tz is None:
        raise SchemaError(f"intraday ({interval}) timestamps without a timezone cannot be placed in UTC")
    return pd.DatetimeIndex(to_utc_index(idx), name="timestamp").as_unit("ns")


def normalise_yahoo_frame(
    raw: pd.DataFrame, *, symbol: str, interval: str = "1d", exchange_tz: str | None = None
) -> pd.DataFrame:
    """Bring a yfinance frame (history or download, any column shape) to the OHLCV schema.

    Parameters
    ----------
    raw : DataFrame
        ``Ticker.history`` output, or ``yf.download`` output with ``(Price, Ticker)`` /
        ``(Ticker, Price)`` MultiIndex columns or flat columns.
    symbol : str
        The ticker to take from MultiIndex columns.
    interval : str
        ``1d``, ``1wk`` and ``1mo`` bars are stamped at 00:00 UTC of the exchange-local date.
    exchange_tz : str, optional
        The exchange's timezone, for timezone-aware frames whose index was converted to
        another zone (``yf.download(ignore_tz=False)`` with several exchanges).

    Returns
    -------
    DataFrame
        float64 ``open high low close [adj_close] volume``, index ``timestamp`` in UTC.
        Event columns (dividends, splits, capital gains) are dropped.
    """
    frame = raw
    multi = isinstance(frame.columns, pd.MultiIndex)
    if multi:
        frame = _select_ticker(frame, symbol)
    mapping: dict[Any, str] = {}
    for col in frame.columns:
        key = str(col).strip().lower()
        if key in _COLUMNS:
            mapping[col] = _COLUMNS[key]
        elif key not in _EVENT_COLUMNS:
            log.debug("yahoo %s: ignoring column %r", symbol, col)
    missing = [c for c in ("open", "high", "low", "close", "volume") if c not in mapping.values()]
    if missing:
        raise SchemaError(f"yahoo {symbol}: yfinance frame lacks {missing}; got columns {list(frame.columns)}")
    out = frame[list(mapping)].rename(columns=mapping).astype("float64")
    if multi:  # rows another ticker brought into the union index
        out = out[~out[["open", "high", "low", "close"]].isna().all(axis=1)]
    out.index = _session_index(out.index, interval, exchange_tz)
    order = [c for c in ("open", "high", "low", "close", "adj_close", "volume") if c in out.columns]
    return out[order].rename_axis(columns=None)


# ------------------------------------------------------------------------------- the source
@dataclass(frozen=True)
class _Request:
    symbol: str
    interval: str
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    kwargs: dict[str, Any]
    what: str


class YahooSource(Source):
    """Daily, weekly, monthly and hourly bars from Yahoo Finance.

    Parameters
    ----------
    session : requests.Session or curl_cffi Session, optional
        HTTP session for yfinance; by default yfinance's own kind (curl_cffi), shared by every
        YahooSource in the process. Tests pass a ``requests.Session`` routed to a local server.
    guard : Guard, optional
        Retries, budget and breaker; by default the process-wide guard of ``"yahoo"``.
    """

    name = "yahoo"
    live = True
    libraries = ["yfinance", "curl_cffi", "requests"]

    def __init__(self, *, session: Any = None, guard: Guard | None = None) -> None:
        self._session = session
        self.guard = guard or guard_for("yahoo", default_yahoo_guard)

    def __repr__(self) -> str:
        return f"YahooSource(guard={self.guard!r})"

    @property
    def session(self) -> Any:
        return _instrument(self._session if self._session is not None else _default_session())

    def calendar(self, symbol: str) -> Calendar:
        return calendar_of(symbol)

    def provenance(self, symbol: str) -> str:
        try:
            version = metadata.version("yfinance")
        except metadata.PackageNotFoundError:  # pragma: no cover
            version = "?"
        return (
            f"yahoo:{symbol} via yfinance {version} (auto_adjust=False: raw OHLC; adj_close is "
            "Yahoo's split- and dividend-adjusted close)"
        )

    def fetch(
        self,
        symbol: str,
        start: pd.Timestamp | None,
        end: pd.Timestamp | None,
        interval: str = "1d",
    ) -> pd.DataFrame:
        """Bars with ``start <= timestamp <= end`` (inclusive; open ends mean first / latest)."""
        request = self._plan(symbol, start, end, interval)
        return self.guard.call(lambda attempt: self._attempt(request, attempt), symbol=symbol, what=request.what)

    # ----------------------------------------------------------------------- steps
    def _plan(self, symbol: object, start: object, end: object, interval: str) -> _Request:
        """Check the request and build yfinance's arguments; raises before any request."""
        if not isinstance(symbol, str) or not _SYMBOL.fullmatch(symbol):
            raise InvalidRequestError(
                f"yahoo: {symbol!r} is not a Yahoo ticker (expected letters, digits and . - ^ = &, "
                "up to 32 characters, e.g. 'AAPL', 'BRK-B', '^GSPC', 'BTC-USD', 'BHP.AX')"
            )
        if _ISIN.fullmatch(symbol):
            raise InvalidRequestError(f"yahoo: {symbol!r} looks like an ISIN; pass the Yahoo ticker instead")
        if interval not in YAHOO_INTERVALS:
            raise InvalidRequestError(
                f"yahoo {symbol}: interval {interval!r} is not supported; expected one of {list(YAHOO_INTERVALS)}"
            )
        s, e, now = to_utc(start), to_utc(end), pd.Timestamp.now(tz="UTC")
        what = describe_request(symbol, s, e, interval)
        if s is not None and e is not None and s > e:
            raise InvalidRequestError(f"yahoo {what}: start {s} is after end {e}")
        if s is not None and s > now:
            raise InvalidRequestError(f"yahoo {what}: start {s} is in the future")
        kwargs: dict[str, Any] = dict(
            interval=YAHOO_INTERVALS[interval], prepost=False, actions=False, auto_adjust=False,
            back_adjust=False, repair=False, keepna=False, rounding=False, raise_errors=False,
        )
        if interval in _DAILY_OR_LONGER:
            # yfinance reads dates in the exchange's timezone; its end is exclusive.
            kwargs["start"] = s.date() if s is not None else None
            kwargs["end"] = (e.normalize() + pd.Timedelta(days=1)).date() if e is not None else None
            kwargs["period"] = "max" if s is None else None
        else:
            if s is None:
                s = (now - HOURLY_DEPTH).ceil("h")
            elif s < now - HOURLY_DEPTH - pd.Timedelta(days=1):
                raise InvalidRequestError(
                    f"yahoo {what}: Yahoo serves hourly bars for the last 730 days only; start on or after "
                    f"{(now - HOURLY_DEPTH).date()} or use interval='1d'"
                )
            kwargs["start"] = s.to_pydatetime()
            kwargs["end"] = (e + pd.Timedelta(hours=1)).to_pydatetime() if e is not None else None
            kwargs["period"] = None
        return _Request(symbol, interval, to_utc(start), e, kwargs, what)

    def _attempt(self, request: _Request, attempt: Attempt) -> pd.DataFrame:
        with _YF_LOCK, _strict_yfinance() as yf:
            from yfinance.data import YfData

            YfData.cache_get.cache_clear()  # never replay a cached failure (or stale range)
            _OBSERVED.timeout, _OBSERVED.chart = attempt.timeout, []
            try:
                ticker = yf.Ticker(request.symbol, session=self.session)
                raw = ticker.history(**request.kwargs, timeout=attempt.timeout)
                meta = getattr(getattr(ticker, "_price_history", None), "_history_metadata", None)
            except Exception as exc:  # yfinance raises many kinds; map every one
                raise self._map_error(exc, request, _OBSERVED.last_chart()) from None
            finally:
                _OBSERVED.timeout = None
        return self._to_frame(raw, request, meta if isinstance(meta, dict) else {})

    def _map_error(self, exc: Exception, request: _Request, chart: tuple[int, float | None] | None) -> SourceError:
        from yfinance import exceptions as yfe

        src, sym, what = self.name, request.symbol, request.what
        status, retry_after = chart if chart else (None, None)
        kind = type(exc).__name__
        if isinstance(exc, yfe.YFRateLimitError) or status == 429:
            wait = f"; Retry-After {retry_after:g} s" if retry_after is not None else ""
            return RateLimitError(f"{src} {what}: rate limited by Yahoo (HTTP 429{wait})", source=src, symbol=sym, retry_after=retry_after)
        if status is not None and status >= 500:
            return SourceUnavailableError(f"{src} {what}: Yahoo answered HTTP {status} ({kind})", source=src, symbol=sym)
        if status == 404:
            return EmptyResultError(
                f"{src} {what}: Yahoo does not know {sym!r} (HTTP 404: unknown or delisted symbol)", source=src, symbol=sym
            )
        if isinstance(exc, yfe.YFTzMissingError):
            return EmptyResultError(
                f"{src} {what}: Yahoo has no exchange timezone for {sym!r}: unknown or delisted symbol", source=src, symbol=sym
            )
        if isinstance(exc, yfe.YFPricesMissingError):
            reason = exc.yahoo_reason or "possibly delisted; no price data in the range"
            return EmptyResultError(f"{src} {what}: no bars from Yahoo ({reason})", source=src, symbol=sym)
        if isinstance(exc, yfe.YFInvalidPeriodError):
            return InvalidRequestError(f"{src} {what}: {exc}")  # type: ignore[return-value]
        if isinstance(exc, yfe.YFDataException) and "DOWN" in str(exc).upper():
            return SourceUnavailableError(f"{src} {what}: Yahoo Finance is down (maintenance page)", source=src, symbol=sym)
        mapped = transport_error(exc, source=src, symbol=sym, what=what)
        cause = exc.__context__
        while mapped is None and cause is not None:  # e.g. yfinance failing inside its own except clause
            mapped = transport_error(cause, source=src, symbol=sym, what=what)
            cause = cause.__context__
        if mapped is not None:
            return mapped
        status_text = f"HTTP {status}, " if status is not None else ""
        detail = _CRUMB.sub(r"\1***", str(exc))[:200]  # the crumb is a session credential
        return BadResponseError(
            f"{src} {what}: unexpected answer from Yahoo ({status_text}{kind}: {detail})", source=src, symbol=sym
        )

    def _to_frame(self, raw: pd.DataFrame | None, request: _Request, meta: dict | None = None) -> pd.DataFrame:
        src, sym, what = self.name, request.symbol, request.what
        if raw is None or not isinstance(raw, pd.DataFrame) or raw.empty:
            raise EmptyResultError(
                f"{src} {what}: Yahoo returned no bars (no trading in the range, or the symbol is delisted)",
                source=src, symbol=sym,
            )
        exchange_tz = str(raw.index.tz) if getattr(raw.index, "tz", None) is not None else None
        try:
            frame = normalise_yahoo_frame(raw, symbol=sym, interval=request.interval)
        except SchemaError as exc:
            raise BadResponseError(f"{src} {what}: {exc}", source=src, symbol=sym) from None
        keep = pd.Series(True, index=frame.index)
        if request.start is not None:
            lo = request.start.normalize() if request.interval in _DAILY_OR_LONGER else request.start
            keep &= frame.index >= lo
        if request.end is not None:
            keep &= frame.index <= request.end
        frame = frame[keep.to_numpy()]
        if frame.empty:
            raise EmptyResultError(f"{src} {what}: Yahoo returned no bars inside the range", source=src, symbol=sym)
        partial = partial_bars(frame.index, request.interval, exchange_tz, meta or {}, now=_now())
        frame.attrs.update(source=src, symbol=sym, interval=request.interval, exchange_tz=exchange_tz,
                           partial=[t.isoformat() for t in partial])
        return frame


def _now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC")


def partial_bars(
    index: pd.DatetimeIndex, interval: str, exchange_tz: str | None, meta: dict, *, now: pd.Timestamp
) -> list[pd.Timestamp]:
    """Bars of ``index`` (normalised stamps) whose period had not ended at ``now``.

    Daily bars end at the regular close of their session when the answer's
    ``currentTradingPeriod`` covers that session, else at the next exchange-local midnight;
    weekly and monthly bars at the end of their week or month (exchange-local); hourly bars an
    hour after they start.
    """
    if not len(index):
        return []
    if interval not in _DAILY_OR_LONGER:
        return [t for t in index[-3:] if t + pd.Timedelta(hours=1) > now]
    tz = exchange_tz or "UTC"
    regular = ((meta.get("currentTradingPeriod") or {}).get("regular") or {}) if isinstance(meta, dict) else {}
    out = []
    for t in index[-3:]:
        day = pd.Timestamp(t.date())
        if interval == "1wk":
            ends = (day + pd.Timedelta(days=7)).tz_localize(tz)
        elif interval == "1mo":
            ends = (day + pd.offsets.MonthBegin(1)).tz_localize(tz)
        else:
            ends = (day + pd.Timedelta(days=1)).tz_localize(tz)
            try:
                start = pd.Timestamp(int(regular["start"]), unit="s", tz="UTC")
                end = pd.Timestamp(int(regular["end"]), unit="s", tz="UTC")
            except (KeyError, TypeError, ValueError):
                start = end = None
            if start is not None and start.tz_convert(tz).date() == day.date():
                ends = end
        if now < ends:
            out.append(t)
    return out
