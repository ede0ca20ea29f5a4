"""Hand-built CoinGecko API v3 answers (shapes as documented; prices made up).

``/coins/{id}/market_chart?interval=daily`` answers ``prices``, ``market_caps`` and
``total_volumes`` as ``[[ms, value], ...]``: one point per day at 00:00 UTC and a last point
at the current time (the partial "now" price). ``/coins/{id}/ohlc`` answers
``[[close_ms, open, high, low, close], ...]`` with 4-hour candles for 3-30 days (the
timestamp is the candle's close). Error bodies follow CoinGecko's ``{"status": {...}}`` and
``{"error": {"status": {...}}}`` forms. No API key appears anywhere in these bodies.
"""

from __future__ import annotations

import pandas as pd

__all__ = [
    "API",
    "today",
    "market_chart_body",
    "ohlc_body",
    "rate_limit_body",
    "plan_limit_body",
    "bad_key_body",
    "coin_not_found_body",
    "price_on",
]

#: Path prefix the tests point ``client.api_base_url`` at.
API = "/api/v3/"
DAY_MS = 86_400_000


def today() -> pd.Timestamp:
    """00:00 UTC today."""
    return pd.Timestamp.now(tz="UTC").normalize()


def _ms(ts: pd.Timestamp) -> int:
    return int(ts.value // 1_000_000)


def price_on(day: pd.Timestamp) -> float:
    """The made-up bitcoin price at 00:00 UTC of ``day`` (a deterministic zig-zag)."""
    n = int(day.value // (DAY_MS * 1_000_000))
    return 40_000.0 + 100.0 * (n % 17) - 37.5 * (n % 5)


def market_chart_body(
    days: int,
    *,
    now: pd.Timestamp | None = None,
    drop_volume_days: tuple[int, ...] = (),
    drop_cap_days: tuple[int, ...] = (),
    now_point: bool = True,
) -> dict:
    """Daily points for the last ``days`` days up to today 00:00, plus a "now" point.

    ``drop_volume_days`` / ``drop_cap_days`` remove points (0 = oldest) from those arrays
    only, making the three arrays unequal in length.
    """
    end = today()
    days_idx = pd.date_range(end - pd.Timedelta(days=days), end, freq="D")
    prices = [[_ms(d), price_on(d)] for d in days_idx]
    caps = [[_ms(d), price_on(d) * 19.5e6] for i, d in enumerate(days_idx) if i not in drop_cap_days]
    vols = [[_ms(d), 2.0e10 + 1.0e8 * i] for i, d in enumerate(days_idx) if i not in drop_volume_days]
    if now_point:
        now = now if now is not None else end + pd.Timedelta(hours=13, minutes=37, seconds=12)
        prices.append([_ms(now), price_on(end) + 55.5])
        caps.append([_ms(now), (price_on(end) + 55.5) * 19.5e6])
        vols.append([_ms(now), 1.7e10])
    return {"prices": prices, "market_caps": caps, "total_volumes": vols}


def ohlc_body(days: int, *, candle_hours: int = 4, now: pd.Timestamp | None = None, missing: tuple[int, ...] = ()) -> list:
    """Candles (close-time stamped) covering the last ``days`` days up to ``now``.

    The candle in progress is included, as CoinGecko does, so today's day is incomplete.
    ``missing`` removes candles by position.
    """
    now = now if now is not None else today() + pd.Timedelta(hours=13, minutes=37)
    step = pd.Timedelta(hours=candle_hours)
    first_close = today() - pd.Timedelta(days=days) + step
    closes = pd.date_range(first_close, now.ceil(f"{candle_hours}h"), freq=step)
    rows = []
    for i, close_t in enumerate(closes):
        if i in missing:
            continue
        o = price_on(close_t.normalize()) + 10.0 * (close_t.hour // candle_hours)
        c = o + 5.0
        rows.append([_ms(close_t), o, c + 20.0, o - 20.0, c])
    return rows


def rate_limit_body() -> dict:
    return {"status": {"error_code": 429, "error_message": "You've exceeded the Rate Limit. Please visit https://www.coingecko.com/en/api/pricing to subscribe to our API plans for higher rate limits."}}


def plan_limit_body() -> dict:
    return {"error": {"status": {"timestamp": "2024-06-10T12:00:00.000+00:00", "error_code": 10012, "error_message": "Your request exceeds the allowed time range. Public API users are limited to querying historical data within the past 365 days. Upgrade to a paid plan to enjoy full historical data access: https://www.coingecko.com/en/api/pricing. "}}}


def bad_key_body() -> dict:
    return {"status": {"error_code": 10002, "error_message": "API Key Missing"}}


def coin_not_found_body() -> dict:
    return {"error": "coin not found"}
