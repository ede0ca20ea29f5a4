"""CoinGeckoSource through the real pycoingecko client, against hand-built answers on 127.0.0.1."""

from __future__ import annotations

import logging
import time
import traceback

import numpy as np
import pandas as pd
import pytest

from research.data.errors import (
    BadResponseError,
    EmptyResultError,
    InvalidRequestError,
    RateLimitError,
    SourceError,
    SourceUnavailableError,
    SymbolNotFoundError,
)
from research.data.resilience import CircuitBreaker, Guard, RetryPolicy, reset_guards
from research.data.sources import get_source
from research.data.sources.coingecko import (
    CoinGeckoSource,
    align_market_chart,
    ohlc_daily_bars,
    resolve_coin,
)
from tests.data.fakes.coingecko import (
    API,
    bad_key_body,
    coin_not_found_body,
    market_chart_body,
    ohlc_body,
    plan_limit_body,
    price_on,
    rate_limit_body,
    today,
)
from tests.data.fakes.server import FakeServer, Reply, json_reply, text_reply

KEY = "CG-t3st-K3Y-do-not-leak-4242"
DAY = pd.Timedelta(days=1)


@pytest.fixture(scope="module")
def server():
    with FakeServer() as srv:
        yield srv


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def make(server, sleeps):
    """Build a source pointed at the fake server, with a fast guard."""

    def build(bars="close", *, api_key=None, demo_api_key=KEY, attempts=3, timeout=2.0, deadline=20.0):
        guard = Guard(
            "coingecko",
            policy=RetryPolicy(attempts=attempts, base_delay=0.5, max_delay=5.0, deadline=deadline, timeout=timeout),
            breaker=CircuitBreaker(failure_threshold=50, cooldown=60.0),
            sleep=sleeps.append,
            seed=5,
        )
        src = CoinGeckoSource(bars=bars, api_key=api_key, demo_api_key=demo_api_key, guard=guard)
        src.client.api_base_url = server.url + API
        return src

    return build


def chart_route(coin: str) -> str:
    return rf"{API}coins/{coin}/market_chart"


def ohlc_route(coin: str) -> str:
    return rf"{API}coins/{coin}/ohlc"


# ---------------------------------------------------------------------- close-only bars
def test_close_only_bars_from_market_chart(server, make):
    server.route(chart_route("bitcoin"), json_reply(market_chart_body(30)))
    src = make()
    start = today() - 10 * DAY
    frame = src.fetch("BTC-USD", start, None)
    days = pd.date_range(start, today() - DAY, freq="D", tz="UTC")
    assert list(frame.index) == list(days)  # today's bar (no close yet) and the "now" point dropped
    for day, row in frame.iterrows():
        o, c = price_on(day), price_on(day + DAY)
        assert (row["open"], row["close"], row["high"], row["low"]) == (o, c, max(o, c), min(o, c))
    # volume of day D is the 24 h volume reported at D+1 00:00 (index i+1 in the answer)
    first_i = 30 - 10
    assert frame["volume"].tolist() == [2.0e10 + 1.0e8 * (first_i + k + 1) for k in range(10)]
    assert frame.attrs["bars"] == "close-only" and frame.attrs["partial_points_dropped"] == 1
    assert src.name == "coingecko-close" and "close-only" in src.provenance("BTC-USD")
    query = server.hits(chart_route("bitcoin"))[-1].query
    assert query["interval"] == ["daily"] and query["vs_currency"] == ["usd"] and query["days"] == ["11"]
    assert not (frame["high"] == frame["low"]).all()  # not the silent open=high=low=close


def test_unequal_arrays_are_aligned_by_timestamp(server, make):
    body = market_chart_body(20, drop_volume_days=(15,), drop_cap_days=(3, 10))
    assert len({len(body[k]) for k in ("prices", "market_caps", "total_volumes")}) == 3
    server.route(chart_route("ethereum"), json_reply(body))
    frame = make().fetch("ETH-USD", today() - 8 * DAY, None)
    missing_day = today() - 20 * DAY + 14 * DAY  # its close-time volume (point 15) is absent
    assert np.isnan(frame.loc[missing_day, "volume"])
    assert frame["volume"].isna().sum() == 1
    assert frame.loc[missing_day + DAY, "volume"] == 2.0e10 + 1.0e8 * 16  # not shifted by position
    assert frame.loc[missing_day - DAY, "volume"] == 2.0e10 + 1.0e8 * 14


def test_align_market_chart_handles_repeats_and_nulls():
    payload = {
        "prices": [[0, 1.0], [DAY.value // 10**6, None], [DAY.value // 10**6 * 2, 3.0], [0, 1.5]],
        "market_caps": [[0, 10.0]],
        "total_volumes": [[DAY.value // 10**6 * 2, 7.0], [99, 8.0]],
    }
    out = align_market_chart(payload)
    assert out.index.tolist() == [0, DAY.value // 10**6 * 2]  # null price dropped, repeat: last wins
    assert out["price"].tolist() == [1.5, 3.0]
    assert out["volume"].isna().tolist() == [True, False] and out["market_cap"].isna().tolist() == [False, True]
    with pytest.raises(BadResponseError):
        align_market_chart({"total_volumes": []})
    with pytest.raises(BadResponseError):
        align_market_chart({"prices": [1, 2, 3]})


# ---------------------------------------------------------------------------- OHLC bars
def test_ohlc_bars_from_4h_candles_with_volume_merged(server, make):
    server.route(ohlc_route("solana"), json_reply(ohlc_body(14, missing=(20,))))
    server.route(chart_route("solana"), json_reply(market_chart_body(14)))
    src = make("ohlc")
    start = today() - 10 * DAY
    frame = src.fetch("SOL-USD", start, None)
    dropped = today() - 14 * DAY + 3 * DAY  # candle 20 closes on day 3 (6 per day): that day is incomplete
    expected_days = [d for d in pd.date_range(start, today() - DAY, freq="D", tz="UTC") if d != dropped]
    assert list(frame.index) == expected_days
    day = expected_days[2]
    opens = [price_on(day) + 10.0 * k for k in range(1, 6)] + [price_on(day + DAY)]  # closes at 04:00 ... 24:00
    assert frame.loc[day, "open"] == opens[0] and frame.loc[day, "close"] == opens[-1] + 5.0
    assert frame.loc[day, "high"] == max(opens) + 25.0 and frame.loc[day, "low"] == min(opens) - 20.0
    assert frame["volume"].notna().all() and frame.attrs["bars"] == "ohlc"
    assert frame.attrs["incomplete_days_dropped"] >= 2  # today and the day with a missing candle
    assert src.name == "coingecko-ohlc"
    assert server.hits(ohlc_route("solana"))[-1].query["days"] == ["14"]
    assert "interval" not in server.hits(ohlc_route("solana"))[-1].query  # daily candles need a paid plan


def test_ohlc_daily_candles_on_a_paid_plan(server, make):
    server.route(ohlc_route("cardano"), json_reply(ohlc_body(30, candle_hours=24)))
    server.route(chart_route("cardano"), json_reply(market_chart_body(30)))
    src = make("ohlc", api_key=KEY, demo_api_key=None)
    frame = src.fetch("ADA-USD", today() - 20 * DAY, today() - 2 * DAY)
    assert list(frame.index) == list(pd.date_range(today() - 20 * DAY, today() - 2 * DAY, freq="D", tz="UTC"))
    query = server.hits(ohlc_route("cardano"))[-1]
    assert query.query["interval"] == ["daily"] and query.query["days"] == ["30"]
    assert query.headers.get("x-cg-pro-api-key") == KEY and src.plan == "pro"


def test_candle_closing_at_midnight_belongs_to_the_day_before():
    t = int(pd.Timestamp("2024-03-02", tz="UTC").value // 10**6)
    bars = ohlc_daily_bars([[t, 1.0, 2.0, 0.5, 1.5]])
    assert list(bars.index) == [pd.Timestamp("2024-03-01", tz="UTC")]
    with pytest.raises(BadResponseError):
        ohlc_daily_bars([[t, 1.0], [t + 1, 2.0]])


# ---------------------------------------------------------------------------- plan limits
@pytest.mark.parametrize(
    ("bars", "keys", "start_days_ago", "text"),
    [
        ("close", {"demo_api_key": KEY}, 400, "demo plan serves market_chart history for the last 365 days"),
        ("close", {"demo_api_key": None}, 366, "public plan serves market_chart history for the last 365 days"),
        ("ohlc", {"demo_api_key": KEY}, 31, "OHLC candles for the last 30 days"),
        ("ohlc", {"api_key": KEY, "demo_api_key": None}, 181, "pro plan serves OHLC candles for the last 180 days"),
    ],
)
def test_plan_depth_limits_fail_before_any_request(server, make, bars, keys, start_days_ago, text):
    before = len(server.requests)
    with pytest.raises(InvalidRequestError, match=text):
        make(bars, **keys).fetch("BTC-USD", today() - start_days_ago * DAY, None)
    assert len(server.requests) == before


def test_open_start_asks_for_the_plan_depth(server, make):
    server.route(chart_route("litecoin"), json_reply(market_chart_body(40)))
    make(api_key=KEY, demo_api_key=None).fetch("LTC-USD", None, None)
    assert server.hits(chart_route("litecoin"))[-1].query["days"] == ["max"]
    make().fetch("LTC-USD", None, None)
    assert server.hits(chart_route("litecoin"))[-1].query["days"] == ["365"]


def test_server_side_plan_limit_is_a_clear_error(server, make):
    server.route(chart_route("polkadot"), json_reply(plan_limit_body(), status=401))
    with pytest.raises(InvalidRequestError, match="beyond the history the demo plan allows.*365 days"):
        make().fetch("DOT-USD", today() - 100 * DAY, None)


# ------------------------------------------------------------------------------- faults
@pytest.mark.parametrize(
    ("coin", "reply", "kind", "text", "attempts"),
    [
        ("f503", text_reply("<html><body>502 Bad Gateway (cloudflare)</body></html>", status=503), SourceUnavailableError, "HTTP 503", 3),
        ("fhtml", text_reply("<!DOCTYPE html><html>Just a moment...</html>"), BadResponseError, "not valid JSON", 1),
        ("ftrunc", Reply(200, b'{"prices": [[1717200000000, 67000.1], [17172', {"Content-Type": "application/json"}), BadResponseError, "not valid JSON", 1),
        ("fdrop", Reply(200, b'{"prices": []}' * 50, {"Content-Type": "application/json"}, cut_after=40), SourceUnavailableError, "connection failed", 3),
        ("fempty", json_reply({"prices": [], "market_caps": [], "total_volumes": []}), EmptyResultError, "no complete daily bar", 1),
        ("fshape", json_reply({"total_volumes": []}), BadResponseError, "no 'prices'", 1),
        ("ferror", json_reply({"error": "something else"}), BadResponseError, "error answer with HTTP 200", 1),
        ("fkey", json_reply(bad_key_body(), status=401), SourceError, "refused the request .*demo plan", 1),
    ],
)
def test_faults_are_typed(server, make, coin, reply, kind, text, attempts):
    server.route(chart_route(coin), reply)
    src = make()
    with pytest.raises(kind, match=text) as info:
        src.fetch(coin, today() - 5 * DAY, None)
    assert type(info.value) is kind
    assert str(info.value).startswith(f"coingecko {coin} {(today() - 5 * DAY).date()}..latest 1d: ")
    assert len(server.hits(chart_route(coin))) == attempts  # one request per attempt: no hidden retries


def test_unknown_coin_is_symbol_not_found(server, make):
    server.route(chart_route("no-such-coin"), json_reply(coin_not_found_body(), status=404))
    with pytest.raises(SymbolNotFoundError, match="does not know this coin"):
        make().fetch("no-such-coin", today() - 5 * DAY, None)


def test_rate_limit_json_body_with_retry_after_then_success(server, make, sleeps):
    server.route(chart_route("dogecoin"), json_reply(rate_limit_body(), status=429, **{"Retry-After": "4"}),
                 json_reply(market_chart_body(10)))
    frame = make().fetch("DOGE-USD", today() - 5 * DAY, None)
    assert len(frame) == 5 and sleeps and sleeps[0] >= 4.0


def test_rate_limit_body_with_http_200_is_a_rate_limit(server, make, sleeps):
    server.route(chart_route("tron"), json_reply(rate_limit_body()), json_reply(market_chart_body(10)))
    frame = make().fetch("TRX-USD", today() - 5 * DAY, None)
    assert len(frame) == 5 and len(sleeps) == 1 and len(server.hits(chart_route("tron"))) == 2


def test_rate_limit_past_the_deadline(server, make, sleeps):
    server.route(chart_route("stellar"), json_reply(rate_limit_body(), status=429, **{"Retry-After": "600"}))
    with pytest.raises(RateLimitError) as info:
        make(deadline=30.0).fetch("XLM-USD", today() - 5 * DAY, None)
    assert info.value.retry_after == 600.0 and sleeps == [] and "Rate Limit" in str(info.value)


def test_stall_times_out_within_bounds(server, make):
    server.route(chart_route("fstall"), Reply(200, b"{}", delay=5.0))
    began = time.monotonic()
    with pytest.raises(SourceUnavailableError, match="timed out"):
        make(attempts=2, timeout=0.4).fetch("fstall", today() - 5 * DAY, None)
    assert time.monotonic() - began < 2.5


def test_client_retries_are_replaced_by_ours(server, make):
    src = make()
    for url in ("https://api.coingecko.com/api/v3/ping", "http://127.0.0.1/"):
        assert src.client.session.get_adapter(url).max_retries.total == 0
    server.route(chart_route("chainlink"), text_reply("<html>down</html>", status=502), json_reply(market_chart_body(10)))
    frame = src.fetch("LINK-USD", today() - 3 * DAY, None)
    assert len(frame) == 3 and len(server.hits(chart_route("chainlink"))) == 2


# ------------------------------------------------------------------------------- secrets
def test_api_key_never_leaves_the_header(server, make, caplog):
    caplog.set_level(logging.DEBUG)
    scenarios = {
        "s429": json_reply(rate_limit_body(), status=429, **{"Retry-After": "1"}),
        "s503": text_reply("<html>x</html>", status=503),
        "s401": json_reply(bad_key_body(), status=401),
        "s404": json_reply(coin_not_found_body(), status=404),
        "shtml": text_reply("<html>x</html>"),
        "sstall": Reply(200, b"{}", delay=3.0),
        "splan": json_reply(plan_limit_body(), status=401),
    }
    texts = []
    for coin, reply in scenarios.items():
        server.route(chart_route(coin), reply)
        src = make(attempts=2, timeout=0.3)
        with pytest.raises(Exception) as info:
            src.fetch(coin, today() - 5 * DAY, None)
        texts += [str(info.value), repr(info.value), "".join(traceback.format_exception(info.value))]
        texts += [repr(src), src.provenance("BTC-USD"), repr(vars(src.guard.stats))]
    hits = [r for r in server.requests if r.path.startswith(API + "coins/s")]
    assert hits and all(r.headers.get("x-cg-demo-api-key") == KEY for r in hits)
    texts += [r.raw_path for r in hits] + [rec.getMessage() for rec in caplog.records]
    leaked = [t for t in texts if KEY in t or "x_cg_" in t]
    assert leaked == []


def test_keys_come_from_the_settings(monkeypatch):
    reset_guards()
    monkeypatch.setenv("COINGECKO_API_KEY", "")  # empty wins over a developer's .env
    monkeypatch.setenv("COINGECKO_DEMO_API_KEY", KEY)
    demo = CoinGeckoSource()
    assert demo.plan == "demo" and demo.client.session.headers["x-cg-demo-api-key"] == KEY
    assert demo.client.extra_params is None and "pro-api" not in demo.client.api_base_url
    monkeypatch.setenv("COINGECKO_API_KEY", KEY + "-pro")
    pro = CoinGeckoSource()
    assert pro.plan == "pro" and "pro-api.coingecko.com" in pro.client.api_base_url
    assert pro.client.session.headers["x-cg-pro-api-key"] == KEY + "-pro"
    monkeypatch.setenv("COINGECKO_API_KEY", "")
    monkeypatch.setenv("COINGECKO_DEMO_API_KEY", "")
    public = CoinGeckoSource()
    assert public.plan == "public" and not any(k.startswith("x-cg") for k in public.client.session.headers)
    assert pro.guard is not demo.guard is not public.guard  # one budget per plan
    reset_guards()


# ------------------------------------------------------------------------------ symbols
@pytest.mark.parametrize(
    ("symbol", "expected"),
    [("BTC-USD", ("bitcoin", "usd")), ("ETH-USD", ("ethereum", "usd")), ("ETH-EUR", ("ethereum", "eur")),
     ("bitcoin", ("bitcoin", "usd")), ("bitcoin/eur", ("bitcoin", "eur")), ("avalanche-2", ("avalanche-2", "usd")),
     ("shiba-inu", ("shiba-inu", "usd")), ("btc-usd", ("bitcoin", "usd"))],
)
def test_symbols_map_to_coin_ids(symbol, expected):
    assert resolve_coin(symbol) == expected


def test_unknown_tickers_and_bad_requests_fail_before_any_request(server, make):
    before = len(server.requests)
    src = make()
    with pytest.raises(SymbolNotFoundError, match="no coin id known for 'XYZ'"):
        src.fetch("XYZ-USD", None, None)
    assert resolve_coin("XYZ-USD", {"XYZ": "xyz-coin"}) == ("xyz-coin", "usd")
    for bad in ["", "bit coin", "bitcoin/us"]:
        with pytest.raises(InvalidRequestError):
            src.fetch(bad, None, None)
    with pytest.raises(InvalidRequestError, match="only daily bars"):
        src.fetch("BTC-USD", None, None, interval="1h")
    with pytest.raises(InvalidRequestError, match="after end"):
        src.fetch("BTC-USD", today() - DAY, today() - 3 * DAY)
    with pytest.raises(InvalidRequestError, match="future"):
        src.fetch("BTC-USD", today() + 3 * DAY, None)
    assert len(server.requests) == before


def test_get_source_names_the_kind_of_bars():
    assert get_source("coingecko").name == "coingecko-close"
    assert get_source("coingecko", bars="ohlc").name == "coingecko-ohlc"
    with pytest.raises(ValueError):
        CoinGeckoSource(bars="candles")
    reset_guards()
