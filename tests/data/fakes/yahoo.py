"""Hand-built Yahoo Finance responses and a requests session that sends Yahoo traffic to a FakeServer.

The bodies follow the shape of the v8 ``finance/chart`` API as yfinance 1.7 parses it: daily
bars are stamped at the exchange's *opening time* in UTC seconds (09:30 New York is 14:30 UTC
in winter and 13:30 UTC in summer; 10:00 Sydney is 23:00 UTC of the *previous* day during
Australian daylight saving), ``meta.exchangeTimezoneName`` names the exchange timezone, and
``indicators.adjclose`` carries the adjusted close. Prices are made up (hand-built), not
recorded from Yahoo.

yfinance first asks ``https://fc.yahoo.com`` for a cookie (``A3``, domain ``.yahoo.com``) and
``/v1/test/getcrumb`` for a crumb, then ``/v8/finance/chart/<SYM>?range=1d`` for the
exchange timezone, then the chart with ``period1``/``period2``. After an HTTP error it retries
once with the other cookie strategy (``guce.yahoo.com/consent`` then ``query2 .../getcrumb``).
:func:`install_yahoo_basics` serves all of those.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import pandas as pd
import requests
from requests.adapters import HTTPAdapter

from tests.data.fakes.server import FakeServer, Reply, json_reply, text_reply

__all__ = [
    "YahooRewriteAdapter",
    "yahoo_session",
    "install_yahoo_basics",
    "chart_body",
    "empty_chart_body",
    "not_found_body",
    "make_bars",
    "reset_yfinance",
    "CHART",
]

#: Path regex of the chart endpoint on either query host, for one symbol.
CHART = r"/query[12]\.finance\.yahoo\.com/v8/finance/chart/{sym}"


class YahooRewriteAdapter(HTTPAdapter):
    """Send ``https://<host>/<path>`` to ``http://127.0.0.1:<port>/<host>/<path>``.

    The original request is left untouched, so the session's cookie jar files cookies under
    the real Yahoo host names, as it would in production.
    """

    def __init__(self, port: int) -> None:
        super().__init__(max_retries=0)
        self.port = port

    def send(self, request, **kwargs):  # type: ignore[override]
        rewritten = copy.copy(request)
        rewritten.headers = request.headers.copy()
        parts = requests.utils.urlparse(request.url)
        path = parts.path or "/"
        query = f"?{parts.query}" if parts.query else ""
        rewritten.url = f"http://127.0.0.1:{self.port}/{parts.hostname}{path}{query}"
        return super().send(rewritten, **kwargs)


def yahoo_session(server: FakeServer) -> requests.Session:
    """A plain requests session whose https traffic goes to ``server``."""
    session = requests.Session()
    session.headers["User-Agent"] = "workbench-tests"
    session.mount("https://", YahooRewriteAdapter(server.port))
    return session


def install_yahoo_basics(server: FakeServer) -> None:
    """Serve the cookie, crumb and consent endpoints yfinance calls before any data request."""
    cookie = "A3=d=AQABBFAKE&S=AQAAAFAKE; Expires=Fri, 31 Dec 2037 23:59:59 GMT; Max-Age=31557600; Domain=.yahoo.com; Path=/; SameSite=None; Secure; HttpOnly"
    server.route(r"/fc\.yahoo\.com/?", Reply(404, b"<html><body>Not found</body></html>", {"Set-Cookie": cookie, "Content-Type": "text/html"}))
    server.route(r"/query[12]\.finance\.yahoo\.com/v1/test/getcrumb", text_reply("fakeCrumb123", content_type="text/plain"))
    consent = (
        "<html><body><form method='post' action='https://consent.yahoo.com/v2/collectConsent'>"
        "<input name='csrfToken' value='tok'/><input name='sessionId' value='sid'/></form></body></html>"
    )
    server.route(r"/guce\.yahoo\.com/consent", text_reply(consent))
    server.route(r"/consent\.yahoo\.com/v2/collectConsent", text_reply("<html>ok</html>"))
    server.route(r"/guce\.yahoo\.com/copyConsent", text_reply("<html>ok</html>"))
    server.route(r"/query[12]\.finance\.yahoo\.com/v10/finance/quoteSummary/.*", json_reply(
        {"quoteSummary": {"result": None, "error": {"code": "Not Found", "description": "Quote not found"}}}, status=404))
    server.route(r"/query[12]\.finance\.yahoo\.com/v7/finance/quote", json_reply({"quoteResponse": {"result": [], "error": None}}))


def make_bars(dates: Iterable[str | pd.Timestamp], *, start_price: float = 100.0, step: float = 1.0) -> pd.DataFrame:
    """Simple consistent daily bars on the given local session dates."""
    idx = pd.DatetimeIndex([pd.Timestamp(d) for d in dates])
    n = len(idx)
    close = [start_price + step * i for i in range(n)]
    return pd.DataFrame(
        {
            "open": [c - 0.5 for c in close],
            "high": [c + 1.0 for c in close],
            "low": [c - 1.0 for c in close],
            "close": close,
            "adjclose": [c * 0.98 for c in close],
            "volume": [1_000_000 + 1000 * i for i in range(n)],
        },
        index=idx,
    )


_EXCHANGES = {
    # tz: (exchangeName, fullExchangeName, open "HH:MM", close "HH:MM", currency)
    "America/New_York": ("NMS", "NasdaqGS", "09:30", "16:00", "USD"),
    "Australia/Sydney": ("ASX", "ASX", "10:00", "16:00", "AUD"),
    "UTC": ("CCC", "CCC", "00:00", "23:59", "USD"),
}


def _epoch(ts: pd.Timestamp) -> int:
    return int(ts.tz_convert("UTC").timestamp())


def _meta(symbol: str, tz: str, instrument: str, last: pd.Timestamp, granularity: str) -> dict:
    exch, full, open_t, close_t, currency = _EXCHANGES[tz]
    day = last.normalize()
    open_ts = pd.Timestamp(f"{day.date()} {open_t}").tz_localize(tz)
    close_ts = pd.Timestamp(f"{day.date()} {close_t}").tz_localize(tz)
    offset = int(open_ts.utcoffset().total_seconds())
    abbrev = open_ts.tzname()

    def period(a: pd.Timestamp, b: pd.Timestamp) -> dict:
        return {"timezone": abbrev, "start": _epoch(a), "end": _epoch(b), "gmtoffset": offset}

    return {
        "currency": currency,
        "symbol": symbol,
        "exchangeName": exch,
        "fullExchangeName": full,
        "instrumentType": instrument,
        "firstTradeDate": 345479400,
        "regularMarketTime": _epoch(close_ts),
        "hasPrePostMarketData": instrument == "EQUITY",
        "gmtoffset": offset,
        "timezone": abbrev,
        "exchangeTimezoneName": tz,
        "regularMarketPrice": 123.45,
        "longName": f"{symbol} (test)",
        "shortName": symbol,
        "chartPreviousClose": 120.0,
        "priceHint": 2,
        "currentTradingPeriod": {
            "pre": period(open_ts - pd.Timedelta(hours=5, minutes=30), open_ts),
            "regular": period(open_ts, close_ts),
            "post": period(close_ts, close_ts + pd.Timedelta(hours=4)),
        },
        "dataGranularity": granularity,
        "range": "",
        "validRanges": ["1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y", "ytd", "max"],
    }


def _session(day: pd.Timestamp, tz: str) -> dict:
    _, _, open_t, close_t, _ = _EXCHANGES[tz]
    start = pd.Timestamp(f"{day.date()} {open_t}").tz_localize(tz)
    end = pd.Timestamp(f"{day.date()} {close_t}").tz_localize(tz)
    return {"timezone": start.tzname(), "start": _epoch(start), "end": _epoch(end), "gmtoffset": int(start.utcoffset().total_seconds())}


def reset_yfinance(cache_dir: str) -> None:
    """Point yfinance's timezone/cookie caches at ``cache_dir`` and forget its cookie and crumb."""
    import yfinance as yf
    from yfinance import cache
    from yfinance.data import YfData

    yf.set_tz_cache_location(cache_dir)
    # the cache objects hold their database once opened: drop them so the new place is used
    cache._TzCacheManager._tz_cache = None
    cache._CookieCacheManager._Cookie_cache = None
    data = YfData()
    data._cookie, data._crumb, data._cookie_strategy = None, None, "basic"
    YfData.cache_get.cache_clear()


def chart_body(
    symbol: str,
    bars: pd.DataFrame,
    *,
    tz: str = "America/New_York",
    instrument: str = "EQUITY",
    granularity: str = "1d",
    adjclose: bool = True,
) -> dict:
    """A v8 chart answer for ``bars`` (index: local session dates; columns as :func:`make_bars`).

    Daily bars are stamped at the exchange's local opening time, converted to UTC seconds, as
    Yahoo does.
    """
    open_t = _EXCHANGES[tz][2]
    if granularity.endswith(("m", "h")):  # intraday: the index holds local bar start times
        stamps = [_epoch(pd.Timestamp(d).tz_localize(tz)) for d in bars.index]
    else:
        stamps = [_epoch(pd.Timestamp(f"{d.date()} {open_t}").tz_localize(tz)) for d in bars.index]
    quote = {col: [None if pd.isna(v) else float(v) for v in bars[col]] for col in ("open", "high", "low", "close")}
    quote["volume"] = [None if pd.isna(v) else int(v) for v in bars["volume"]]
    indicators: dict = {"quote": [quote]}
    if adjclose:
        indicators["adjclose"] = [{"adjclose": [float(v) for v in bars["adjclose"]]}]
    meta = _meta(symbol, tz, instrument, pd.Timestamp(bars.index[-1]), granularity)
    if granularity.endswith(("m", "h")):  # intraday answers list each day's regular session
        meta["tradingPeriods"] = [[_session(d, tz)] for d in sorted({pd.Timestamp(x).normalize() for x in bars.index})]
    result = {"meta": meta, "timestamp": stamps, "indicators": indicators}
    return {"chart": {"result": [result], "error": None}}


def empty_chart_body(symbol: str, *, tz: str = "America/New_York") -> dict:
    """What Yahoo answers for a range without bars: metadata, no ``timestamp``, empty quote."""
    meta = _meta(symbol, tz, "EQUITY", pd.Timestamp("2024-01-02"), "1d")
    return {"chart": {"result": [{"meta": meta, "indicators": {"quote": [{}], "adjclose": [{}]}}], "error": None}}


def not_found_body() -> dict:
    """Yahoo's answer (HTTP 404) for an unknown or delisted symbol."""
    return {"chart": {"result": None, "error": {"code": "Not Found", "description": "No data found, symbol may be delisted"}}}
