"""Hand-built Binance spot API answers, in the shapes its REST documentation gives.

``GET /api/v3/exchangeInfo`` (kept to three symbols: what ccxt's ``load_markets`` needs) and
``GET /api/v3/klines`` (``[[open time ms, "open", "high", "low", "close", "volume", close time
ms, "quote volume", trades, "taker base", "taker quote", "0"], ...]``, prices as strings,
oldest first, at most ``limit`` rows from ``startTime``). Error bodies follow Binance's
``{"code": -1121, "msg": "Invalid symbol."}``. Prices are made up.
"""

from __future__ import annotations

import json
import time

import pandas as pd

from tests.data.fakes.server import Recorded, Reply, json_reply

__all__ = ["API", "exchange_info", "kline_rows", "klines_reply", "HOUR_MS", "DAY_MS", "price_at"]

API = "/api/v3"
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
_STEP = {"1h": HOUR_MS, "1d": DAY_MS}


def _symbol(base: str, quote: str) -> dict:
    return {
        "symbol": f"{base}{quote}", "status": "TRADING", "baseAsset": base, "baseAssetPrecision": 8,
        "quoteAsset": quote, "quotePrecision": 8, "quoteAssetPrecision": 8, "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8, "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT",
                                                     "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True, "ocoAllowed": True, "otoAllowed": True, "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True, "cancelReplaceAllowed": True, "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": True,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.01000000", "maxPrice": "1000000.00000000",
             "tickSize": "0.01000000"},
            {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000", "stepSize": "0.00001000"},
            {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True,
             "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
        ],
        "permissions": [], "permissionSets": [["SPOT", "MARGIN"]], "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


def exchange_info() -> dict:
    """A small ``/api/v3/exchangeInfo`` answer: BTC/USDT, ETH/USDT and ETH/BTC."""
    return {
        "timezone": "UTC", "serverTime": int(time.time() * 1000),
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
            {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
        ],
        "exchangeFilters": [],
        "symbols": [_symbol("BTC", "USDT"), _symbol("ETH", "USDT"), _symbol("ETH", "BTC")],
    }


def price_at(ms: int) -> float:
    """The made-up price of the bar opening at ``ms`` (a deterministic zig-zag)."""
    n = ms // HOUR_MS
    return 40_000.0 + 10.0 * (n % 23) - 3.5 * (n % 7)


def kline_rows(first_ms: int, count: int, interval: str) -> list[list]:
    """``count`` klines from ``first_ms`` (aligned to ``interval``), as Binance sends them."""
    step = _STEP[interval]
    rows = []
    for i in range(count):
        t = first_ms + i * step
        o = price_at(t)
        c = price_at(t + step)
        rows.append([t, f"{o:.8f}", f"{max(o, c) + 5:.8f}", f"{min(o, c) - 5:.8f}", f"{c:.8f}", "12.50000000",
                     t + step - 1, f"{12.5 * c:.8f}", 100 + i, "6.00000000", f"{6 * c:.8f}", "0"])
    return rows


def klines_reply(*, interval: str, end_ms: int, page_limit: int = 1000, listed_ms: int | None = None):
    """A klines handler: bars from ``startTime`` (aligned up) to ``end_ms``, ``limit`` at most per answer.

    As Binance does, a ``startTime`` before the market was listed (``listed_ms``) answers from
    its first bar.
    """

    def reply(rec: Recorded) -> Reply:
        step = _STEP[interval]
        assert rec.query["interval"][0] == interval, rec.query
        start = int(rec.query.get("startTime", [end_ms - 499 * step])[0])
        first = max(-(-start // step) * step, listed_ms if listed_ms is not None else 0)
        limit = min(int(rec.query.get("limit", ["500"])[0]), page_limit)
        count = max(0, min(limit, (end_ms - first) // step + 1))
        return json_reply(kline_rows(first, count, interval))

    return reply


def bad_symbol_reply() -> Reply:
    return Reply(400, json.dumps({"code": -1121, "msg": "Invalid symbol."}).encode(),
                 {"Content-Type": "application/json"})


def now_ms() -> int:
    return int(pd.Timestamp.now(tz="UTC").value // 1_000_000)
