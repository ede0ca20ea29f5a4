"""The store with live sources: incremental range, freshness TTL, stale fallback, circuit breaker.

Two kinds of live source are used: a controllable fake (synthetic bars behind a real
:class:`Guard`, with the store's clock patched so ages are exact), and the real Yahoo and
CoinGecko sources against the local fake server, where every fault class is checked both with
a stored copy (served stale, with a warning) and without one (a typed error).
"""

from __future__ import annotations

import re
import warnings

import pandas as pd
import pytest

import research.data.store as store_module
from research.data import StaleDataWarning, Store
from research.data.calendars import CRYPTO
from research.data.errors import (
    BadResponseError,
    CircuitOpenError,
    EmptyResultError,
    RateLimitError,
    SourceError,
    SourceUnavailableError,
)
from research.data.resilience import CircuitBreaker, Guard, RetryPolicy, describe_request
from research.data.sources.base import Source
from research.data.sources.coingecko import CoinGeckoSource
from research.data.sources.synthetic import synthetic_ohlcv
from research.data.sources.yahoo import YahooSource
from tests.data.fakes.coingecko import API, market_chart_body, rate_limit_body, today
from tests.data.fakes.server import FakeServer, Reply, json_reply, text_reply
from tests.data.fakes.yahoo import (
    CHART,
    chart_body,
    empty_chart_body,
    install_yahoo_basics,
    make_bars,
    reset_yfinance,
    yahoo_session,
)

DAY = pd.Timedelta(days=1)
FAULTS = [RateLimitError, SourceUnavailableError, BadResponseError, EmptyResultError, CircuitOpenError]


class Clock:
    """The time seen by the store and the fake source."""

    def __init__(self, start: str) -> None:
        self.t = pd.Timestamp(start, tz="UTC")

    def __call__(self) -> pd.Timestamp:
        return self.t

    def advance(self, **kw: float) -> None:
        self.t += pd.Timedelta(**kw)


class FakeLiveSource(Source):
    """Synthetic crypto bars up to "today"; today's bar is partial (its close moves)."""

    name = "fakelive"
    live = True

    def __init__(self, clock: Clock, guard: Guard | None = None) -> None:
        self.clock = clock
        self.calls: list[tuple[str, pd.Timestamp | None, pd.Timestamp | None]] = []
        self.hits = 0
        self.fault: type[SourceError] | None = None
        self.guard = guard or Guard("fakelive", policy=RetryPolicy(attempts=1), sleep=lambda s: None)

    def calendar(self, symbol: str):
        return CRYPTO

    def fetch(self, symbol, start, end, interval="1d"):
        self.calls.append((symbol, start, end))
        return self.guard.call(lambda a: self._answer(symbol, start, end), symbol=symbol,
                               what=describe_request(symbol, start, end, interval))

    def _answer(self, symbol, start, end):
        self.hits += 1
        if self.fault is not None:
            raise self.fault(f"fakelive {symbol}: injected {self.fault.__name__}", source="fakelive", symbol=symbol)
        full = synthetic_ohlcv(symbol, bars=400, start="2024-01-01", calendar=CRYPTO)
        day = self.clock().normalize()
        hi = day if end is None else min(end, day)
        frame = full.loc[start:hi].copy() if start is not None else full.loc[:hi].copy()
        if frame.index[-1] == day:  # the day is not over: close is provisional
            frame.iloc[-1, frame.columns.get_loc("close")] = (frame["open"].iloc[-1] + frame["close"].iloc[-1]) / 2
        return frame


@pytest.fixture
def clock(monkeypatch):
    c = Clock("2024-03-01 12:00")
    monkeypatch.setattr(store_module, "_now", c)
    return c


@pytest.fixture
def live(clock):
    return FakeLiveSource(clock)


def full_bars(symbol: str) -> pd.DataFrame:
    return synthetic_ohlcv(symbol, bars=400, start="2024-01-01", calendar=CRYPTO)


# ------------------------------------------------------------------------ incremental and TTL
def test_incremental_update_fetches_only_the_missing_range(tmp_path, clock, live):
    store = Store(tmp_path, freshness_ttl=3600)
    first = store.ingest(live, "FAKE-USD", start="2024-01-01")
    assert live.calls == [("FAKE-USD", pd.Timestamp("2024-01-01", tz="UTC"), None)]  # live: open end
    assert first.frame.index[-1] == pd.Timestamp("2024-03-01", tz="UTC") and first.fetched

    clock.advance(days=2, hours=3)
    second = store.ingest(live, "FAKE-USD", start="2024-01-01")
    assert live.calls[-1] == ("FAKE-USD", pd.Timestamp("2024-03-01", tz="UTC"), None)  # from the last stored bar
    assert second.report.received == 3  # 1 March (refetched) .. 3 March, not the 60 days before
    frame = store.read("fakelive", "1d", "FAKE-USD")
    assert frame.index.is_unique and frame.index.is_monotonic_increasing
    assert list(frame.index) == list(pd.date_range("2024-01-01", "2024-03-03", freq="D", tz="UTC"))
    full = full_bars("FAKE-USD")
    # the provisional close of 1 March was replaced by the final one
    assert frame.loc["2024-03-01", "close"].item() == full.loc["2024-03-01", "close"].item()
    pd.testing.assert_frame_equal(frame.loc[:"2024-03-02"], full.loc[:"2024-03-02"], check_freq=False, check_like=True)
    report = second.report
    assert report.received == report.stored + report.quarantined + report.duplicates


def test_freshness_ttl_decides_when_to_refetch(tmp_path, clock, live):
    store = Store(tmp_path, freshness_ttl=3600)
    store.ingest(live, "TTL-USD", start="2024-02-01")
    clock.advance(minutes=50)
    fresh = store.ingest(live, "TTL-USD", start="2024-02-01")
    assert not fresh.fetched and len(live.calls) == 1
    clock.advance(minutes=20)
    assert store.ingest(live, "TTL-USD", start="2024-02-01").fetched and len(live.calls) == 2
    # a start well before the stored first bar is refetched even while fresh
    assert store.ingest(live, "TTL-USD", start="2024-01-01").fetched
    assert live.calls[-1][1] == pd.Timestamp("2024-01-01", tz="UTC")


# --------------------------------------------------------------------------- stale fallback
@pytest.mark.parametrize("fault", FAULTS)
def test_failing_source_serves_the_stored_copy_marked_stale(tmp_path, clock, live, fault):
    store = Store(tmp_path, freshness_ttl=3600)
    stored = store.ingest(live, "STALE-USD", start="2024-02-01").frame
    clock.advance(hours=3)
    live.fault = fault
    with pytest.warns(StaleDataWarning) as caught:
        result = store.ingest(live, "STALE-USD", start="2024-02-01")
    message = str(caught[0].message)
    assert "fakelive failed for STALE-USD" in message and "fetched 3.0 h ago" in message
    assert f"injected {fault.__name__}" in message and "last bar 2024-03-01" in message
    assert result.stale and not result.fetched
    assert result.frame.attrs["stale"] is True and result.frame.attrs["stale_age_s"] == pytest.approx(3 * 3600)
    pd.testing.assert_frame_equal(result.frame, stored, check_freq=False)


@pytest.mark.parametrize("fault", FAULTS)
def test_failing_source_without_a_stored_copy_raises_the_typed_error(tmp_path, clock, live, fault):
    live.fault = fault
    with warnings.catch_warnings():
        warnings.simplefilter("error", StaleDataWarning)
        with pytest.raises(fault, match="STALE2-USD"):
            Store(tmp_path).ingest(live, "STALE2-USD", start="2024-02-01")


def test_circuit_breaker_stops_hammering_a_dead_source(tmp_path, clock):
    fake_time = [0.0]
    guard = Guard(
        "fakelive",
        policy=RetryPolicy(attempts=2, base_delay=1.0, deadline=60.0),
        breaker=CircuitBreaker(failure_threshold=3, cooldown=300.0, clock=lambda: fake_time[0]),
        clock=lambda: fake_time[0],
        sleep=lambda s: fake_time.__setitem__(0, fake_time[0] + s),
    )
    live = FakeLiveSource(clock, guard)
    store = Store(tmp_path, freshness_ttl=3600)
    symbols = [f"C{i}-USD" for i in range(10)]
    for sym in symbols:
        store.ingest(live, sym, start="2024-02-20")
    assert live.hits == 10
    clock.advance(hours=2)
    live.fault = SourceUnavailableError
    live.hits = 0
    with pytest.warns(StaleDataWarning) as caught:
        results = [store.ingest(live, sym, start="2024-02-20") for sym in symbols]
    assert all(r.stale for r in results) and len(caught) == 10
    assert live.hits == 3  # 2 attempts for the first symbol, 1 for the second, then the circuit opened
    assert sum("circuit open after 3 consecutive failures" in str(w.message) for w in caught) == 8
    fake_time[0] += 300.0  # cool-down over: one probe, the source is back
    live.fault = None
    assert store.ingest(live, "C0-USD", start="2024-02-20").fetched and guard.breaker.state == "closed"


# ---------------------------------------------------------- real sources on the fake server
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    reset_yfinance(str(tmp_path_factory.mktemp("yf-cache-live")))
    with FakeServer() as srv:
        install_yahoo_basics(srv)
        yield srv


def _guard(name: str) -> Guard:
    return Guard(name, policy=RetryPolicy(attempts=2, base_delay=0.1, deadline=5.0, timeout=0.3),
                 breaker=CircuitBreaker(failure_threshold=50), sleep=lambda s: None)


def _yahoo_fault(kind: str) -> Reply:
    return {
        "rate_limit": text_reply("Too Many Requests\r\n", status=429, content_type="text/plain", **{"Retry-After": "600"}),
        "http_5xx": text_reply("<html>503</html>", status=503),
        "stall": Reply(200, b"{}", delay=2.0),
        "dropped": Reply(200, b'{"chart": {}}' * 40, {"Content-Type": "application/json"}, cut_after=25),
        "html": text_reply("<html><body>consent</body></html>"),
        "truncated_json": Reply(200, b'{"chart": {"result": [{"meta": {"curr', {"Content-Type": "application/json"}),
        "empty": json_reply(empty_chart_body("X")),
    }[kind]


def _gecko_fault(kind: str) -> Reply:
    return {
        "rate_limit": json_reply(rate_limit_body(), status=429, **{"Retry-After": "600"}),
        "http_5xx": text_reply("<html>502 Bad Gateway</html>", status=502),
        "stall": Reply(200, b"{}", delay=2.0),
        "dropped": Reply(200, b'{"prices": []}' * 40, {"Content-Type": "application/json"}, cut_after=25),
        "html": text_reply("<html>Just a moment...</html>"),
        "truncated_json": Reply(200, b'{"prices": [[1717200000000, 6', {"Content-Type": "application/json"}),
        "empty": json_reply({"prices": [], "market_caps": [], "total_volumes": []}),
    }[kind]


KINDS = ["rate_limit", "http_5xx", "stall", "dropped", "html", "truncated_json", "empty"]
EXPECTED = {"rate_limit": RateLimitError, "http_5xx": SourceUnavailableError, "stall": SourceUnavailableError,
            "dropped": SourceUnavailableError, "html": BadResponseError, "truncated_json": BadResponseError,
            "empty": EmptyResultError}


def _survive(store: Store, source: Source, sym: str, start, kind: str, stored: bool) -> bool:
    """True when the store served a stale copy (stored) or raised the expected typed error (not stored)."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = store.ingest(source, sym, start=start)
    except SourceError as exc:
        return not stored and type(exc) is EXPECTED[kind] and sym in str(exc)
    stale = [w for w in caught if issubclass(w.category, StaleDataWarning)]
    return stored and result.stale and len(stale) == 1 and "ago" in str(stale[0].message) and len(result.frame) > 0


def _case(store: Store, server: FakeServer, kind: str, stored: bool) -> list[bool]:
    """One fault of class ``kind`` for Yahoo and for CoinGecko, with or without a stored copy."""
    tag = f"{KINDS.index(kind)}{'s' if stored else 'n'}"
    # Yahoo: the timezone probe answers normally, the history request meets the fault
    sym = f"LV{tag.upper()}"
    path = CHART.format(sym=re.escape(sym))
    bars = make_bars(["2024-01-02", "2024-01-03", "2024-01-04"])
    server.route(path, json_reply(chart_body(sym, bars)))
    yahoo = YahooSource(session=yahoo_session(server), guard=_guard("yahoo"))
    if stored:
        assert store.ingest(yahoo, sym, start="2024-01-02").fetched
    server.route(path, _yahoo_fault(kind))
    server.route(path, json_reply(chart_body(sym, bars.iloc[-1:])), query={"range": "1d"})
    outcomes = [_survive(store, yahoo, sym, "2024-01-02", kind, stored)]
    # CoinGecko
    coin = f"lv-{kind.replace('_', '-')}-{tag}"
    route = rf"{API}coins/{coin}/market_chart"
    gecko = CoinGeckoSource(demo_api_key="x", guard=_guard("coingecko"))
    gecko.client.api_base_url = server.url + API
    server.route(route, json_reply(market_chart_body(10)))
    if stored:
        assert store.ingest(gecko, coin, start=today() - 5 * DAY).fetched
    server.route(route, _gecko_fault(kind))
    outcomes.append(_survive(store, gecko, coin, today() - 5 * DAY, kind, stored))
    return outcomes


def test_every_fault_class_is_survived_by_both_live_sources(tmp_path, server, capsys):
    store = Store(tmp_path, freshness_ttl=0)  # always refetch
    tally = {}
    for kind in KINDS:
        outcomes = _case(store, server, kind, stored=True) + _case(store, server, kind, stored=False)
        tally[kind] = (sum(outcomes), len(outcomes))
    line = "faults survived per class: " + ", ".join(f"{k} {s}/{n}" for k, (s, n) in tally.items())
    with capsys.disabled():
        print("\n" + line)
    assert all(s == n for s, n in tally.values()), line


def test_breaker_stops_hammering_the_real_source(tmp_path, server):
    guard = Guard("coingecko", policy=RetryPolicy(attempts=2, base_delay=0.1, deadline=5.0, timeout=1.0),
                  breaker=CircuitBreaker(failure_threshold=3, cooldown=600.0), sleep=lambda s: None)
    coins = [f"dead-{i}" for i in range(12)]
    for coin in coins:
        server.route(rf"{API}coins/{coin}/market_chart", text_reply("<html>503</html>", status=503))
    store = Store(tmp_path)
    errors = []
    before = len(server.requests)
    for coin in coins:
        src = CoinGeckoSource(demo_api_key="x", guard=guard)
        src.client.api_base_url = server.url + API
        with pytest.raises(SourceError) as info:
            store.ingest(src, coin, start=today() - 3 * DAY)
        errors.append(type(info.value))
    assert len(server.requests) - before == 3  # then nothing more reached the server
    assert errors[:2] == [SourceUnavailableError, SourceUnavailableError]
    assert set(errors[2:]) == {CircuitOpenError}
