"""CcxtSource through the real ccxt client (Binance), against hand-built answers on 127.0.0.1."""

from __future__ import annotations

import json
import time
import warnings

import pandas as pd
import pytest

from research.config import get_settings
from research.data import StaleDataWarning, Store, load_prices
from research.data.errors import (
    BadResponseError,
    EmptyResultError,
    InvalidRequestError,
    RateLimitError,
    SourceUnavailableError,
    SymbolNotFoundError,
)
from research.data.resilience import CircuitBreaker, Guard, RetryPolicy
from research.data.sources import first_reachable, get_source
from research.data.sources.ccxt_source import CcxtSource, market_for
from tests.data.fakes.binance import (
    API,
    DAY_MS,
    HOUR_MS,
    bad_symbol_reply,
    exchange_info,
    kline_rows,
    klines_reply,
    now_ms,
)
from tests.data.fakes.server import FakeServer, Reply, json_reply, text_reply

KLINES = API + "/klines"
NOW_HOUR = 0  # this hour's start (ms), read as each test starts


@pytest.fixture(autouse=True)
def _this_hour():
    """The hour each test runs in, read when it starts (not when the module is collected: a suite
    can pass an hour boundary between the two); a test that would start in the last 15 s of an
    hour waits for the next one, so the source's clock and the fake exchange's hour agree."""
    global NOW_HOUR
    left = HOUR_MS - now_ms() % HOUR_MS
    if left < 15_000:
        time.sleep(left / 1000 + 0.2)
    NOW_HOUR = now_ms() // HOUR_MS * HOUR_MS


@pytest.fixture
def server():
    with FakeServer() as srv:
        srv.route(API + "/exchangeInfo", json_reply(exchange_info()))
        yield srv


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def make(server, sleeps):
    def build(*, attempts=3, timeout=2.0, deadline=20.0, page_limit=1000, threshold=50):
        guard = Guard("ccxt-binance", policy=RetryPolicy(attempts=attempts, base_delay=0.5, max_delay=5.0,
                                                         deadline=deadline, timeout=timeout),
                      breaker=CircuitBreaker(failure_threshold=threshold, cooldown=60.0), sleep=sleeps.append, seed=2)
        return CcxtSource(exchange="binance", api_url=server.url, page_limit=page_limit, guard=guard)

    return build


def kline_requests(server):
    return [r for r in server.hits(KLINES)]


def ago(**kw) -> pd.Timestamp:
    return pd.Timestamp(NOW_HOUR, unit="ms", tz="UTC") - pd.Timedelta(**kw)


# ------------------------------------------------------------------------- normal path
def test_hourly_bars_are_paged_with_since_and_limit(server, make):
    server.route(KLINES, klines_reply(interval="1h", end_ms=NOW_HOUR))
    src = make(page_limit=500)
    frame = src.fetch("BTC-USD", ago(hours=1199), None, "1h")
    assert len(frame) == 1200 and frame.index.is_monotonic_increasing
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert all(str(t) == "float64" for t in frame.dtypes) and str(frame.index.tz) == "UTC"
    assert (frame.index[1:] - frame.index[:-1] == pd.Timedelta(hours=1)).all()
    reqs = kline_requests(server)
    assert len(reqs) == 3  # 500 + 500 + 200
    starts = [int(r.query["startTime"][0]) for r in reqs]
    assert starts == [NOW_HOUR - 1199 * HOUR_MS, NOW_HOUR - 699 * HOUR_MS, NOW_HOUR - 199 * HOUR_MS]
    assert all(r.query["symbol"] == ["BTCUSDT"] and r.query["limit"] == ["500"] for r in reqs)
    assert frame.attrs["market"] == "BTC/USDT" and frame.attrs["partial"] == [frame.index[-1].isoformat()]
    assert "binance pair BTC/USDT" in src.provenance("BTC-USD")


def test_daily_bars_for_a_closed_range(server, make):
    end_day = NOW_HOUR // DAY_MS * DAY_MS - 10 * DAY_MS
    server.route(KLINES, klines_reply(interval="1d", end_ms=NOW_HOUR // DAY_MS * DAY_MS))
    start, end = pd.Timestamp(end_day - 29 * DAY_MS, unit="ms", tz="UTC"), pd.Timestamp(end_day, unit="ms", tz="UTC")
    frame = make().fetch("ETH-USD", start, end, "1d")
    assert len(frame) == 30 and frame.index[0] == start and frame.index[-1] == end
    assert (frame.index == frame.index.normalize()).all() and frame.attrs["partial"] == []
    assert frame["close"].iloc[0] == pytest.approx(float(kline_rows(end_day - 29 * DAY_MS, 1, "1d")[0][4]))


def test_ccxt_throttle_is_on_and_spaces_requests(server, make):
    server.route(KLINES, klines_reply(interval="1h", end_ms=NOW_HOUR))
    src = make(page_limit=50)
    assert src.client.enableRateLimit is True and src.client.rateLimit > 0
    throttled, original = [], src.client.throttle

    def throttle(cost=None):  # records when each request was let go
        original(cost)
        throttled.append((time.monotonic(), cost))

    src.client.throttle = throttle
    src.client.rateLimit = 300  # ms per unit of cost between requests (Binance's own is 50)
    src.fetch("BTC-USD", ago(hours=199), None, "1h")
    assert len(kline_requests(server)) == 4
    assert len(throttled) == 5  # every request (markets, four pages) went through ccxt's throttle
    gaps = [b[0] - a[0] for a, b in zip(throttled[1:], throttled[2:], strict=False)]
    assert all(gap >= 0.3 * cost * 0.9 for gap, (_, cost) in zip(gaps, throttled[2:], strict=True))


def test_store_resumes_from_its_last_bar_and_validates_on_the_24_7_calendar(server, make, tmp_path):
    rows = kline_rows(NOW_HOUR - 47 * HOUR_MS, 48, "1h")
    rows[5][2], rows[5][3] = rows[5][3], rows[5][2]  # high below low: quarantined
    del rows[10]  # a missing hour: a gap flagged, never filled
    server.route(KLINES, json_reply(rows))
    src = make()
    store = Store(tmp_path / "data", freshness_ttl=0.0)
    first = store.ingest(src, "BTC-USD", start=ago(hours=47), interval="1h")
    assert first.report.quarantined == 1 and first.report.gaps == 2  # the missing hour and the quarantined one
    assert store.manifest(src.name, "1h", "BTC-USD")["calendar"] == "crypto"
    assert len(store.read_quarantine(src.name, "1h", "BTC-USD")) == 1
    last = store.manifest(src.name, "1h", "BTC-USD")["last"]
    server.route(KLINES, klines_reply(interval="1h", end_ms=NOW_HOUR))
    store.ingest(src, "BTC-USD", start=ago(hours=47), interval="1h")
    resumed = kline_requests(server)[-1]
    assert int(resumed.query["startTime"][0]) == int(pd.Timestamp(last).value // 1_000_000)  # from the last stored bar


def test_load_prices_and_get_source_take_ccxt(server, make, tmp_path, monkeypatch):
    server.route(KLINES, klines_reply(interval="1d", end_ms=NOW_HOUR // DAY_MS * DAY_MS))
    frame = load_prices("BTC-USD", start=ago(days=20), source=make(), interval="1d", store=Store(tmp_path / "d"))
    assert frame.attrs["source"] == "ccxt-binance" and frame.attrs["calendar"] == "crypto"
    assert frame.attrs["periods_per_year"] == 365.0 and len(frame) >= 19
    monkeypatch.setenv("WORKBENCH_CCXT_EXCHANGE", "Kraken")
    assert get_settings().ccxt_exchange == "kraken"
    assert get_source("ccxt").name == "ccxt-kraken"
    assert get_source("ccxt:bitstamp").name == "ccxt-bitstamp"
    monkeypatch.delenv("WORKBENCH_CCXT_EXCHANGE")
    assert get_source("ccxt").name == "ccxt-binance"
    monkeypatch.setenv("WORKBENCH_CCXT_API_URL", "http://127.0.0.1:9")
    assert get_source("ccxt").client.urls["api"]["public"] == "http://127.0.0.1:9/api/v3"


# ------------------------------------------------------------------------------ faults
def test_rate_limit_with_retry_after_is_honoured_and_remembered(server, make, sleeps):
    limited = json_reply({"code": -1003, "msg": "Too many requests; current limit is 6000 request weight per 1 MINUTE."},
                         status=429, **{"Retry-After": "4"})
    server.route(KLINES, limited, klines_reply(interval="1h", end_ms=NOW_HOUR))
    src = make()
    frame = src.fetch("BTC-USD", ago(hours=9), None, "1h")
    assert len(frame) == 10 and sleeps and sleeps[0] >= 4.0
    server.route(KLINES, limited)
    with pytest.raises(RateLimitError) as info:
        make(attempts=1).fetch("BTC-USD", ago(hours=9), None, "1h")
    assert info.value.retry_after == 4.0 and "ccxt-binance BTC-USD" in str(info.value)


def test_retry_after_beyond_the_deadline_fails_fast(server, make, sleeps):
    server.route(KLINES, json_reply({"code": -1003, "msg": "banned"}, status=418, **{"Retry-After": "600"}))
    src = make(deadline=30.0)
    with pytest.raises(RateLimitError) as info:
        src.fetch("BTC-USD", ago(hours=9), None, "1h")
    assert sleeps == [] and len(kline_requests(server)) == 1 and "600 s would pass the 30 s deadline" in str(info.value)
    with pytest.raises(RateLimitError, match="asked not to be called before"):  # remembered: nothing sent
        src.fetch("ETH-USD", ago(hours=9), None, "1h")
    assert len(kline_requests(server)) == 1


def test_5xx_is_retried_then_reported(server, make, sleeps):
    server.route(KLINES, text_reply("<html>502 Bad Gateway</html>", status=502),
                 klines_reply(interval="1h", end_ms=NOW_HOUR))
    assert len(make().fetch("BTC-USD", ago(hours=4), None, "1h")) == 5 and len(sleeps) == 1
    server.route(KLINES, text_reply("<html>503</html>", status=503))
    with pytest.raises(SourceUnavailableError, match="gave up after 3 attempts"):
        make().fetch("BTC-USD", ago(hours=4), None, "1h")


@pytest.mark.parametrize(("reply", "hint"), [
    (Reply(200, b'[[1717200000000, "67000.1", "67', {"Content-Type": "application/json"}), "truncated or invalid JSON"),
    (text_reply("<html><body>Access denied</body></html>"), "HTML page"),
    (json_reply({"unexpected": "shape"}), "not a list of"),
    (json_reply([[1717200000000, "abc", "1", "1", "1", "1"]]), "not a number"),
    (json_reply([[1717200000000, "1", "2"]]), "not a list of"),
])
def test_malformed_and_truncated_bodies_are_bad_responses(server, make, reply, hint):
    server.route(KLINES, reply)
    with pytest.raises(BadResponseError, match=hint) as info:
        make(attempts=1).fetch("BTC-USD", ago(hours=4), None, "1h")
    assert str(info.value).startswith("ccxt-binance BTC-USD ")


def test_dropped_connection_is_unavailable(server, make):
    server.route(KLINES, Reply(200, json.dumps(kline_rows(NOW_HOUR, 3, "1h")).encode(),
                               {"Content-Type": "application/json"}, cut_after=20))
    with pytest.raises((SourceUnavailableError, BadResponseError)):
        make(attempts=1).fetch("BTC-USD", ago(hours=2), None, "1h")


def test_stall_times_out_within_bounds(server, make):
    server.route(KLINES, Reply(200, b"[]", delay=5.0))
    began = time.monotonic()
    with pytest.raises(SourceUnavailableError, match="timed out"):
        make(attempts=2, timeout=0.4).fetch("BTC-USD", ago(hours=2), None, "1h")
    assert time.monotonic() - began < 3.0


def test_unknown_symbols(server, make):
    src = make()
    with pytest.raises(SymbolNotFoundError, match=r"ccxt-binance DOGE-USD .*none of \['DOGE/USD', 'DOGE/USDT'"):
        src.fetch("DOGE-USD", ago(hours=2), None, "1h")
    assert kline_requests(server) == []  # refused from the markets, before any candle request
    with pytest.raises(SymbolNotFoundError, match="pairs of ETH it lists"):
        src.fetch("ETH-EUR", ago(hours=2), None, "1h")
    server.route(KLINES, bad_symbol_reply())  # listed, but the exchange refuses it
    with pytest.raises(SymbolNotFoundError, match="does not list this market"):
        src.fetch("ETH/BTC", ago(hours=2), None, "1h")


def test_invalid_requests_send_nothing(server, make):
    src = make()
    with pytest.raises(InvalidRequestError, match="not '1wk'"):
        src.fetch("BTC-USD", None, None, "1wk")
    with pytest.raises(InvalidRequestError, match="after end"):
        src.fetch("BTC-USD", ago(hours=1), ago(hours=5), "1h")
    with pytest.raises(InvalidRequestError, match="expected a symbol"):
        src.fetch("BTC_USD", ago(hours=5), None, "1h")
    with pytest.raises(ValueError, match="unknown ccxt exchange"):
        CcxtSource(exchange="no-such-exchange")
    assert server.requests == []


def test_empty_range_is_an_error(server, make):
    server.route(KLINES, json_reply([]))
    with pytest.raises(EmptyResultError, match="no BTC/USDT bar"):
        make().fetch("BTC-USD", ago(hours=5), None, "1h")


def test_store_serves_the_stored_copy_stale_when_the_exchange_fails(server, make, tmp_path):
    server.route(KLINES, klines_reply(interval="1h", end_ms=NOW_HOUR))
    src = make(attempts=1)
    store = Store(tmp_path / "data", freshness_ttl=0.0)
    store.ingest(src, "ETH-USD", start=ago(hours=20), interval="1h")
    server.route(KLINES, text_reply("<html>503</html>", status=503))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = store.ingest(src, "ETH-USD", start=ago(hours=20), interval="1h")
    assert result.stale and any(issubclass(w.category, StaleDataWarning) for w in caught)


def test_market_mapping():
    markets = {"BTC/USDT": {}, "BTC/USD": {}, "ETH/USDC": {}, "ETH/BTC": {}}
    assert market_for("BTC-USD", markets) == "BTC/USD"
    assert market_for("ETH-USD", markets) == "ETH/USDC"
    assert market_for("eth/btc", markets) == "ETH/BTC"
    assert market_for("ETH-BTC", markets) == "ETH/BTC"


# ------------------------------------------------------------------ choosing a source
def test_first_reachable_takes_the_exchange_when_it_answers(server, make):
    src, note = first_reachable([make(), "synthetic"], symbols=["BTC-USD", "ETH-USD"], interval="1h")
    assert src.name == "ccxt-binance" and note == "source ccxt-binance"
    assert len(server.hits(API + "/exchangeInfo")) == 1


def test_first_reachable_falls_back_and_says_why(make):
    with FakeServer() as down:
        url = down.url
    src_down = CcxtSource(exchange="binance", api_url=url, guard=make().guard)  # nothing listens there now
    began = time.monotonic()
    src, note = first_reachable([src_down, "synthetic"], symbols=["BTC-USD"], interval="1h", timeout=2.0)
    assert time.monotonic() - began < 5.0
    assert src.name == "synthetic"
    assert note.startswith("source synthetic; passed over: ccxt-binance not reachable (ccxt-binance binance markets: ")
    assert "unavailable" in note


def test_first_reachable_passes_over_an_exchange_without_the_pair(server, make):
    src, note = first_reachable([make(), "synthetic"], symbols=["DOGE-USD"], interval="1h")
    assert src.name == "synthetic" and "none of ['DOGE/USD'" in note
    with pytest.raises(ValueError, match="no source reachable"):
        first_reachable([make()], symbols=["DOGE-USD"], interval="1h")


def test_the_command_line_takes_source_ccxt(server, monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from research.cli import app
    from research.data.resilience import reset_guards

    server.route(KLINES, klines_reply(interval="1h", end_ms=NOW_HOUR))
    monkeypatch.setenv("WORKBENCH_CCXT_API_URL", server.url)  # the setting kernels and commands inherit
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "data"))
    reset_guards()
    start = ago(hours=30).strftime("%Y-%m-%dT%H:%M")
    result = CliRunner().invoke(app, ["data", "fetch", "BTC-USD", "--source", "ccxt", "--interval", "1h",
                                      "--start", start])
    reset_guards()
    assert result.exit_code == 0, result.output
    assert "ccxt-binance" in result.output and "BTC-USD" in result.output
    stored = Store(tmp_path / "data").read("ccxt-binance", "1h", "BTC-USD")
    assert len(stored) == 30  # the forming hour is left out


def test_resolve_source_auto_pins_the_exchange_or_falls_back(server, monkeypatch):
    from research.data.resilience import reset_guards
    from research.data.sources import choose_source

    assert choose_source("synthetic", symbols=["BTC-USD"]) == ("synthetic", "source synthetic")
    monkeypatch.setenv("WORKBENCH_CCXT_API_URL", server.url)
    reset_guards()
    name, note = choose_source("auto", symbols=["BTC-USD", "ETH-USD"], interval="1h")
    assert name == "ccxt:binance" and note.startswith("source ccxt-binance (auto: the first of ccxt, synthetic")
    with FakeServer() as down:
        url = down.url
    monkeypatch.setenv("WORKBENCH_CCXT_API_URL", url)
    reset_guards()
    name, note = choose_source("auto", symbols=["BTC-USD"], interval="1h", timeout=2.0)
    reset_guards()
    assert name == "synthetic" and "passed over: ccxt-binance not reachable" in note
