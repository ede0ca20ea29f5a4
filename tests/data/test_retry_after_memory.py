"""Rate limits remembered across calls and processes.

After a 429 with ``Retry-After: N`` the next fetch's first request, in the same process or in
another one, goes out no earlier than N seconds after the 429; a remembered instant beyond the
call's deadline fails at once with a typed error naming the source and when to retry.
"""

from __future__ import annotations

import subprocess
import sys
import time
import warnings
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from research.data import StaleDataWarning, Store
from research.data.errors import RateLimitError, SourceUnavailableError
from research.data.resilience import (
    CircuitBreaker,
    Guard,
    RequestBudget,
    RetryPolicy,
    SharedRequestBudget,
)
from research.data.retry_after import RetryAfterMemory, SharedRetryAfterMemory
from research.data.sources.coingecko import CoinGeckoSource
from research.data.sources.yahoo import YahooSource
from tests.data.fakes.coingecko import API, market_chart_body, rate_limit_body, today
from tests.data.fakes.server import FakeServer, json_reply, text_reply
from tests.data.fakes.yahoo import (
    CHART,
    chart_body,
    install_yahoo_basics,
    make_bars,
    reset_yfinance,
    yahoo_session,
)
from tests.data.test_resilience import FakeClock

WORKER = Path(__file__).with_name("retry_after_worker.py")
DAY = pd.Timedelta(days=1)


def guard_on(clock: FakeClock, *, memory=None, attempts=1, deadline=60.0, budget=None) -> Guard:
    return Guard("src", policy=RetryPolicy(attempts=attempts, base_delay=1.0, max_delay=30.0, deadline=deadline,
                                           timeout=10.0),
                 budget=budget, breaker=CircuitBreaker(failure_threshold=1000, cooldown=30.0, clock=clock),
                 memory=memory, clock=clock, sleep=clock.sleep, seed=1)


def sender(clock: FakeClock, sent: list[float], answers: list):
    """fn for Guard.call: record the send time, then raise or return the next answer."""

    def fn(attempt):
        sent.append(clock.now)
        answer = answers.pop(0) if answers else "ok"
        if isinstance(answer, Exception):
            raise answer
        return answer

    return fn


# ------------------------------------------------------------------------ one process
def test_next_call_waits_for_a_retry_after_that_ended_the_previous_call():
    clock = FakeClock()
    guard = guard_on(clock)  # one attempt: the 429 ends the call
    sent: list[float] = []
    with pytest.raises(RateLimitError):
        guard.call(sender(clock, sent, [RateLimitError("429", retry_after=7.0)]), symbol="A", what="A x")
    clock.advance(0.17)  # the next fetch comes along a moment later
    assert guard.call(sender(clock, sent, ["ok"]), symbol="A", what="A x") == "ok"
    assert sent[1] - sent[0] == pytest.approx(7.0)  # was 0.17 s: the wait was forgotten
    assert clock.sleeps == [pytest.approx(6.83)]


def test_retry_after_within_one_call_is_not_waited_twice():
    clock = FakeClock()
    guard = guard_on(clock, attempts=3)
    sent: list[float] = []
    fn = sender(clock, sent, [RateLimitError("429", retry_after=12.0), "ok"])
    assert guard.call(fn, symbol="A", what="A x") == "ok"
    assert clock.sleeps == [12.0] and sent[1] - sent[0] == 12.0


def test_remembered_instant_beyond_the_deadline_fails_fast_naming_source_and_instant():
    clock = FakeClock()
    guard = guard_on(clock, deadline=30.0)
    sent: list[float] = []
    with pytest.raises(RateLimitError):
        guard.call(sender(clock, sent, [RateLimitError("429", retry_after=600.0)]), symbol="A", what="A x")
    before = time.time()
    with pytest.raises(RateLimitError) as info:
        guard.call(sender(clock, sent, ["ok"]), symbol="B", what="B 2024-01-02..latest 1d")
    assert len(sent) == 1 and clock.sleeps == []  # no request, no sleep
    err = info.value
    assert (err.source, err.symbol) == ("src", "B")
    assert err.retry_after == pytest.approx(600.0)
    assert before + 599 <= err.retry_at <= time.time() + 601
    msg = str(err)
    assert msg.startswith("src B 2024-01-02..latest 1d: src asked not to be called before ")
    assert "no request sent, retry after 20" in msg and "30 s deadline" in msg
    assert guard.breaker.state == "closed" and guard.breaker.failures == 1  # only the real 429 counted


def test_the_later_instant_wins():
    clock = FakeClock()
    memory = RetryAfterMemory(clock=clock)
    memory.remember(30.0)
    memory.remember(5.0)
    assert memory.pending() == (30.0, clock.now + 30.0)
    clock.advance(31.0)
    assert memory.pending()[0] == 0.0


def test_shared_memory_is_read_by_another_guard_on_the_same_file(tmp_path):
    clock = FakeClock()
    clock.now = time.time()
    path = tmp_path / "src.retry-after.json"
    first = guard_on(clock, memory=SharedRetryAfterMemory(path, clock=clock))
    second = guard_on(clock, memory=SharedRetryAfterMemory(path, clock=clock))
    sent: list[float] = []
    with pytest.raises(RateLimitError):
        first.call(sender(clock, sent, [RateLimitError("429", retry_after=9.0)]), symbol="A", what="A x")
    second.call(sender(clock, sent, ["ok"]), symbol="A", what="A x")
    assert sent[1] - sent[0] == pytest.approx(9.0)


def test_a_shared_budget_brings_a_shared_memory_next_to_it(tmp_path):
    budget = SharedRequestBudget(tmp_path / ".budget" / "yahoo.json", rate=1.0, burst=4)
    guard = Guard("yahoo", budget=budget)
    assert isinstance(guard.memory, SharedRetryAfterMemory)
    assert guard.memory.path == tmp_path / ".budget" / "yahoo.retry-after.json"
    assert isinstance(Guard("x", budget=RequestBudget(1.0)).memory, RetryAfterMemory)


def test_unusable_memory_file_falls_back_to_this_process(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    memory = SharedRetryAfterMemory(blocker / "sub" / "m.json")
    instant = memory.remember(5.0)
    assert memory.pending()[1] == instant and "cannot be shared" in caplog.text


# ------------------------------------------------------------- the real sources, in process
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    reset_yfinance(str(tmp_path_factory.mktemp("yf-cache-ra")))
    with FakeServer() as srv:
        install_yahoo_basics(srv)
        yield srv


def _recording_sleep(count, log: list[tuple[float, int]]):
    """A sleep that records (seconds, ``count()`` at that moment) and does not wait."""
    return lambda s: log.append((s, count()))


def test_yahoo_next_fetch_waits_for_the_retry_after(server):
    path = CHART.format(sym="RAYH")
    bars = make_bars(["2024-01-02", "2024-01-03"])
    server.route(path, text_reply("Too Many Requests\r\n", status=429, content_type="text/plain",
                                  **{"Retry-After": "7"}), json_reply(chart_body("RAYH", bars)))
    server.route(path, json_reply(chart_body("RAYH", bars.iloc[-1:])), query={"range": "1d"})
    log: list[tuple[float, int]] = []

    def history() -> int:
        return sum(1 for r in server.hits(path) if "period1" in r.query)

    guard = Guard("yahoo", policy=RetryPolicy(attempts=1, deadline=20.0, timeout=2.0),
                  breaker=CircuitBreaker(failure_threshold=50), sleep=_recording_sleep(history, log))
    source = YahooSource(session=yahoo_session(server), guard=guard)
    start, end = pd.Timestamp("2024-01-02", tz="UTC"), pd.Timestamp("2024-01-03", tz="UTC")
    with pytest.raises(RateLimitError):
        source.fetch("RAYH", start, end)
    assert history() == 1
    assert len(source.fetch("RAYH", start, end)) == 2 and history() == 2
    # before the second history request went out (1 seen so far), the guard slept ~7 s (was 0.17 s later)
    assert [(round(s), hits) for s, hits in log] == [(7, 1)]


def test_coingecko_next_fetch_waits_for_the_retry_after(server):
    route = rf"{API}coins/ragecoin/market_chart"
    server.route(route, json_reply(rate_limit_body(), status=429, **{"Retry-After": "7"}),
                 json_reply(market_chart_body(10)))
    log: list[tuple[float, int]] = []
    guard = Guard("coingecko", policy=RetryPolicy(attempts=1, deadline=20.0, timeout=2.0),
                  breaker=CircuitBreaker(failure_threshold=50), sleep=_recording_sleep(lambda: len(server.hits(route)), log))
    source = CoinGeckoSource(demo_api_key="k", guard=guard)
    source.client.api_base_url = server.url + API
    with pytest.raises(RateLimitError):
        source.fetch("ragecoin", today() - 5 * DAY, None)
    assert source.fetch("ragecoin", today() - 5 * DAY, None).shape[0] == 5
    # before the second request went out (1 request seen so far), the guard slept ~7 s
    assert [(round(s), hits) for s, hits in log] == [(7, 1)]


def test_store_serves_stale_when_the_remembered_wait_passes_the_deadline(server, tmp_path):
    route = rf"{API}coins/stalecoin/market_chart"
    server.route(route, json_reply(market_chart_body(10)),
                 json_reply(rate_limit_body(), status=429, **{"Retry-After": "600"}))
    guard = Guard("coingecko", policy=RetryPolicy(attempts=1, deadline=20.0, timeout=2.0),
                  breaker=CircuitBreaker(failure_threshold=50), sleep=lambda s: None)
    source = CoinGeckoSource(demo_api_key="k", guard=guard)
    source.client.api_base_url = server.url + API
    store = Store(tmp_path / "data", freshness_ttl=0.0)
    store.ingest(source, "stalecoin", start=today() - 5 * DAY)
    with pytest.warns(StaleDataWarning):  # the 429 itself
        store.ingest(source, "stalecoin", start=today() - 5 * DAY)
    hits = len(server.hits(route))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = store.ingest(source, "stalecoin", start=today() - 5 * DAY)
    assert result.stale and len(server.hits(route)) == hits  # served stale, nothing sent
    assert "asked not to be called before" in str(caught[0].message)


# ----------------------------------------------------------------------- two processes
def test_another_process_waits_for_the_retry_after(server, tmp_path):
    route = rf"{API}coins/twoproc/market_chart"
    server.route(route, json_reply(rate_limit_body(), status=429, **{"Retry-After": "2"}),
                 json_reply(market_chart_body(10)))
    data = tmp_path / "data"
    worker = subprocess.Popen(
        [sys.executable, str(WORKER), server.url + API, "twoproc"], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**__import__("os").environ, "WORKBENCH_DATA_DIR": str(data), "PYTHONPATH": str(Path.cwd())},
        cwd=Path(__file__).parents[2],
    )
    try:
        assert worker.stdout.readline().strip() == "ready"  # imports done, source built
        budget = SharedRequestBudget(data / ".budget" / "coingecko-demo.json", rate=100.0, burst=100)
        guard = Guard("coingecko", policy=RetryPolicy(attempts=1, deadline=20.0, timeout=2.0), budget=budget,
                      breaker=CircuitBreaker(failure_threshold=50))
        source = CoinGeckoSource(demo_api_key="k", guard=guard)
        source.client.api_base_url = server.url + API
        with pytest.raises(RateLimitError):
            source.fetch("twoproc", today() - 5 * DAY, None)
        worker.stdin.write("go\n")
        worker.stdin.flush()
        out, err = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, err
    assert out.strip() == "rows 5"
    first, second = server.hits(route)[-2:]
    assert second.at - first.at >= 2.0 - 0.05, (second.at - first.at)


# ------------------------------------------------------------------------------ property
EVENT = st.tuples(
    st.sampled_from([200, 429, 503]),
    st.one_of(st.none(), st.floats(min_value=0.0, max_value=120.0, allow_nan=False)),
    st.floats(min_value=0.0, max_value=60.0, allow_nan=False),
)


def _run_events(events, attempts: int, deadline: float, shared_dir: Path | None) -> None:
    """Each event is one call: ``elapsed`` seconds after the previous one, every attempt answered ``status``."""
    clock = FakeClock()
    memory = SharedRetryAfterMemory(shared_dir / "m.json", clock=clock) if shared_dir else None
    guard = guard_on(clock, memory=memory, attempts=attempts, deadline=deadline)
    earliest = float("-inf")  # no request may go out before this instant
    for status, retry_after, elapsed in events:
        clock.advance(elapsed)

        def fn(attempt, status=status, retry_after=retry_after):
            nonlocal earliest
            assert clock.now >= earliest - 1e-9, f"request at {clock.now} before the Retry-After instant {earliest}"
            if status == 429:
                if retry_after is not None:
                    earliest = max(earliest, clock.now + retry_after)
                raise RateLimitError("429", retry_after=retry_after)
            if status == 503:
                raise SourceUnavailableError("503")
            return "ok"

        try:
            guard.call(fn, symbol="A", what="A x")
        except RateLimitError as exc:
            if exc.retry_at is not None and earliest > clock.now:  # a fast failure names the instant
                assert exc.retry_after is not None and exc.retry_after > 0
        except SourceUnavailableError:
            pass


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(EVENT, min_size=1, max_size=12), attempts=st.integers(1, 4),
       deadline=st.floats(min_value=5.0, max_value=90.0), shared=st.booleans())
@example(events=[(429, 7.0, 0.0), (200, None, 0.17)], attempts=1, deadline=60.0, shared=False)
@example(events=[(429, 7.0, 0.0), (200, None, 5.96)], attempts=1, deadline=60.0, shared=True)
@example(events=[(429, 600.0, 0.0), (200, None, 1.0)], attempts=2, deadline=30.0, shared=False)
def test_no_request_before_a_remembered_retry_after_instant(events, attempts, deadline, shared, tmp_path_factory):
    _run_events(events, attempts, deadline, tmp_path_factory.mktemp("ra") if shared else None)
