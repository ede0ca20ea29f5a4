"""Retries, request budget and circuit breaker, on a fake clock (no real waiting)."""

from __future__ import annotations

import json
import random
import threading

import pandas as pd
import pytest
import requests

from research.data.errors import (
    BadResponseError,
    CircuitOpenError,
    EmptyResultError,
    InvalidRequestError,
    RateLimitError,
    SourceUnavailableError,
)
from research.data.resilience import (
    CircuitBreaker,
    Guard,
    RequestBudget,
    RetryPolicy,
    describe_request,
    guard_for,
    parse_retry_after,
    reset_guards,
    transport_error,
)


class FakeClock:
    """A monotonic clock that only moves when something sleeps (or the test advances it)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_guard(clock: FakeClock, *, attempts=4, deadline=60.0, timeout=10.0, threshold=3, cooldown=30.0, budget=None, base=1.0):
    return Guard(
        "src",
        policy=RetryPolicy(attempts=attempts, base_delay=base, max_delay=30.0, deadline=deadline, timeout=timeout),
        budget=budget,
        breaker=CircuitBreaker(failure_threshold=threshold, cooldown=cooldown, clock=clock),
        clock=clock,
        sleep=clock.sleep,
        seed=7,
    )


def failing(errors, result="ok", calls=None, cost=0.0, clock=None):
    """fn for Guard.call that raises ``errors`` in turn, then returns ``result``."""
    queue = list(errors)

    def fn(attempt):
        if calls is not None:
            calls.append(attempt)
        if clock is not None and cost:
            clock.advance(cost)
        if queue:
            raise queue.pop(0)
        return result

    return fn


WHAT = describe_request("AAPL", pd.Timestamp("2024-01-02", tz="UTC"), pd.Timestamp("2024-02-01", tz="UTC"), "1d")


# ----------------------------------------------------------------------------- retries
def test_backoff_is_exponential_with_bounded_jitter():
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0)
    rng = random.Random(1)
    for retry, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (6, 8.0)]:
        waits = [policy.backoff(retry, rng) for _ in range(200)]
        assert min(waits) >= ceiling / 2 and max(waits) <= ceiling
        assert len({round(w, 6) for w in waits}) > 100  # jittered, not constant


def test_retries_transient_failures_then_succeeds():
    clock = FakeClock()
    guard = make_guard(clock)
    calls = []
    fn = failing([SourceUnavailableError("HTTP 503"), SourceUnavailableError("timeout")], calls=calls)
    assert guard.call(fn, symbol="AAPL", what=WHAT) == "ok"
    assert [a.number for a in calls] == [1, 2, 3]
    assert len(clock.sleeps) == 2 and 0.5 <= clock.sleeps[0] <= 1.0 and 1.0 <= clock.sleeps[1] <= 2.0
    assert guard.breaker.state == "closed" and guard.breaker.failures == 0
    assert guard.stats.retries == 2 and guard.stats.attempts == 3


def test_backoff_restarts_for_each_call():
    clock = FakeClock()
    guard = make_guard(clock, threshold=100)
    for _ in range(3):
        guard.call(failing([SourceUnavailableError("503")]), symbol="AAPL", what=WHAT)
    assert all(0.5 <= s <= 1.0 for s in clock.sleeps) and len(clock.sleeps) == 3


@pytest.mark.parametrize("error", [BadResponseError("html"), EmptyResultError("no rows")])
def test_non_retryable_errors_fail_at_once(error):
    clock = FakeClock()
    guard = make_guard(clock)
    calls = []
    with pytest.raises(type(error)) as info:
        guard.call(failing([error], calls=calls), symbol="AAPL", what=WHAT)
    assert len(calls) == 1 and clock.sleeps == []
    assert str(info.value).startswith(f"src {WHAT}: ")


def test_retry_after_is_a_minimum_wait():
    clock = FakeClock()
    guard = make_guard(clock)
    fn = failing([RateLimitError("429", retry_after=12.0)])
    assert guard.call(fn, symbol="AAPL", what=WHAT) == "ok"
    assert clock.sleeps == [12.0]


def test_retry_after_beyond_the_deadline_gives_up_without_sleeping():
    clock = FakeClock()
    guard = make_guard(clock, deadline=20.0)
    calls = []
    with pytest.raises(RateLimitError) as info:
        guard.call(failing([RateLimitError("429", retry_after=300.0)], calls=calls), symbol="AAPL", what=WHAT)
    assert clock.sleeps == [] and len(calls) == 1
    assert info.value.retry_after == 300.0
    assert "Retry-After 300 s would pass the 20 s deadline" in str(info.value)


def test_deadline_bounds_total_time_and_each_timeout():
    clock = FakeClock()
    guard = make_guard(clock, attempts=50, deadline=30.0, timeout=10.0, threshold=100, base=2.0)
    calls = []
    fn = failing([SourceUnavailableError("timeout")] * 100, calls=calls, cost=0.0, clock=clock)

    def slow(attempt):  # every attempt uses its whole timeout
        clock.advance(attempt.timeout)
        return fn(attempt)

    start = clock.now
    with pytest.raises(SourceUnavailableError) as info:
        guard.call(slow, symbol="AAPL", what=WHAT)
    assert clock.now - start <= 30.0 + 1e-9
    assert all(a.timeout <= 10.0 for a in calls)
    assert "deadline" in str(info.value)


def test_attempts_are_capped_and_error_names_source_symbol_range():
    clock = FakeClock()
    guard = make_guard(clock, attempts=3, threshold=10)
    with pytest.raises(SourceUnavailableError) as info:
        guard.call(failing([SourceUnavailableError("HTTP 502")] * 5), symbol="AAPL", what=WHAT)
    msg = str(info.value)
    assert msg.startswith("src AAPL 2024-01-02..2024-02-01 1d: HTTP 502")
    assert "gave up after 3 attempts" in msg
    assert (info.value.source, info.value.symbol, info.value.attempts) == ("src", "AAPL", 3)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_other_exceptions_propagate_unchanged():
    clock = FakeClock()
    guard = make_guard(clock)

    def bug(attempt):
        raise KeyError("parser bug")

    with pytest.raises(KeyError):
        guard.call(bug, symbol="AAPL", what=WHAT)
    assert guard.breaker.failures == 0


# ------------------------------------------------------------------------------ budget
def test_budget_allows_a_burst_then_paces_at_its_rate():
    clock = FakeClock()
    budget = RequestBudget(rate=2.0, burst=3, clock=clock)
    waits = [budget.reserve() for _ in range(6)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3:] == pytest.approx([0.5, 1.0, 1.5])
    clock.advance(10.0)  # tokens refill up to the burst only
    assert [budget.reserve() for _ in range(4)] == pytest.approx([0.0, 0.0, 0.0, 0.5])


def test_minimum_interval_budget_spaces_calls_through_the_guard():
    clock = FakeClock()
    guard = make_guard(clock, budget=RequestBudget.every(6.0, clock=clock))
    stamps = []
    for _ in range(4):
        guard.call(lambda a: stamps.append(clock.now), symbol="BTC-USD", what="x")
    assert [b - a for a, b in zip(stamps, stamps[1:], strict=False)] == pytest.approx([6.0, 6.0, 6.0])


def test_budget_wait_longer_than_the_deadline_is_a_rate_limit_without_request():
    clock = FakeClock()
    budget = RequestBudget.every(100.0, clock=clock)
    guard = make_guard(clock, budget=budget, deadline=30.0)
    guard.call(lambda a: "first", symbol="X", what="x")
    calls = []
    with pytest.raises(RateLimitError) as info:
        guard.call(failing([], calls=calls), symbol="X", what="x")
    assert calls == [] and "request budget" in str(info.value)
    assert info.value.retry_after == pytest.approx(100.0)
    assert budget.reserve() == pytest.approx(100.0)  # the refused token was given back


def test_budget_is_thread_safe():
    budget = RequestBudget(rate=10.0, burst=1, clock=lambda: 0.0)  # time stands still
    waits = []
    lock = threading.Lock()

    def worker():
        w = [budget.reserve() for _ in range(25)]
        with lock:
            waits.extend(w)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 100 tokens at 10/s with no time passing: every caller gets its own slot 0.1 s apart
    assert sorted(round(w, 6) for w in waits) == [round(0.1 * k, 6) for k in range(100)]


# ----------------------------------------------------------------------------- breaker
def test_breaker_opens_after_consecutive_failures_and_fails_fast():
    clock = FakeClock()
    guard = make_guard(clock, attempts=1, threshold=3, cooldown=30.0)
    calls = []
    for _ in range(3):
        with pytest.raises(SourceUnavailableError):
            guard.call(failing([SourceUnavailableError("503")] * 9, calls=calls), symbol="A", what="A x")
    assert guard.breaker.state == "open"
    for _ in range(10):
        with pytest.raises(CircuitOpenError) as info:
            guard.call(failing([], calls=calls), symbol="B", what="B 2024-01-02..latest 1d")
    assert len(calls) == 3  # nothing reached the source while open
    assert "src B 2024-01-02..latest 1d: circuit open after 3 consecutive failures" in str(info.value)
    assert "last error: SourceUnavailableError" in str(info.value)
    assert guard.stats.fast_failures == 10


def test_breaker_half_open_lets_one_probe_through():
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, cooldown=30.0, clock=clock)
    breaker.failure()
    breaker.failure()
    assert breaker.allow() == pytest.approx(30.0)
    clock.advance(30.0)
    assert breaker.state == "half_open"
    assert breaker.allow() is None  # the probe
    assert breaker.allow() is not None  # a second caller waits for the probe's outcome
    breaker.failure()  # probe failed: open again for a full cool-down
    assert breaker.state == "open" and breaker.allow() == pytest.approx(30.0)
    clock.advance(30.0)
    assert breaker.allow() is None
    breaker.success()
    assert breaker.state == "closed" and breaker.allow() is None and breaker.times_opened == 2


def test_breaker_success_and_empty_results_reset_the_count():
    clock = FakeClock()
    guard = make_guard(clock, attempts=1, threshold=3)
    for _ in range(2):
        with pytest.raises(SourceUnavailableError):
            guard.call(failing([SourceUnavailableError("503")]), symbol="A", what="x")
    with pytest.raises(EmptyResultError):  # the source answered: it is alive
        guard.call(failing([EmptyResultError("none")]), symbol="A", what="x")
    assert guard.breaker.failures == 0
    for _ in range(2):
        with pytest.raises(BadResponseError):
            guard.call(failing([BadResponseError("html")]), symbol="A", what="x")
    assert guard.breaker.state == "closed"
    with pytest.raises(BadResponseError):
        guard.call(failing([BadResponseError("html")]), symbol="A", what="x")
    assert guard.breaker.state == "open"


def test_breaker_opening_mid_retry_stops_the_retries():
    clock = FakeClock()
    guard = make_guard(clock, attempts=10, threshold=2)
    calls = []
    with pytest.raises(SourceUnavailableError) as info:
        guard.call(failing([SourceUnavailableError("503")] * 10, calls=calls), symbol="A", what="x")
    assert len(calls) == 2 and "circuit opened" in str(info.value)


def test_probe_released_when_the_call_raises_a_non_source_error():
    clock = FakeClock()
    guard = make_guard(clock, attempts=1, threshold=1, cooldown=5.0)
    with pytest.raises(SourceUnavailableError):
        guard.call(failing([SourceUnavailableError("503")]), symbol="A", what="x")
    clock.advance(5.0)
    with pytest.raises(InvalidRequestError):
        guard.call(failing([InvalidRequestError("bad")]), symbol="A", what="x")
    assert guard.call(lambda a: "alive", symbol="A", what="x") == "alive"  # next caller may probe
    assert guard.breaker.state == "closed"


# ---------------------------------------------------------------------------- helpers
@pytest.mark.parametrize(
    ("value", "expected"),
    [("12", 12.0), ("0", 0.0), ("1.5", 1.5), ("-3", 0.0), (None, None), ("", None), ("soon", None),
     ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0)],
)
def test_parse_retry_after(value, expected):
    now = pd.Timestamp("2015-10-21 07:28:00", tz="UTC").timestamp()
    assert parse_retry_after(value, now=now) == expected


def _http_error(status: int, retry_after: str | None = None) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    if retry_after:
        response.headers["Retry-After"] = retry_after
    response.url = "https://api.example/x?x_cg_demo_api_key=SECRET"
    return requests.HTTPError(f"{status} Error for url: {response.url}", response=response)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (requests.exceptions.ReadTimeout("read timed out ?x_cg_demo_api_key=SECRET"), SourceUnavailableError),
        (requests.exceptions.ConnectionError("reset"), SourceUnavailableError),
        (requests.exceptions.ChunkedEncodingError("incomplete"), SourceUnavailableError),
        (TimeoutError(), SourceUnavailableError),
        (json.JSONDecodeError("Expecting value", "<html>", 0), BadResponseError),
        (requests.exceptions.JSONDecodeError("Expecting value", "<html>", 0), BadResponseError),
        (_http_error(503), SourceUnavailableError),
        (_http_error(429, "7"), RateLimitError),
        (_http_error(403), BadResponseError),
    ],
)
def test_transport_errors_are_typed_and_do_not_copy_the_client_text(exc, kind):
    mapped = transport_error(exc, source="src", symbol="AAPL", what=WHAT)
    assert type(mapped) is kind
    assert str(mapped).startswith(f"src {WHAT}: ") and "SECRET" not in str(mapped)
    if kind is RateLimitError:
        assert mapped.retry_after == 7.0


def test_transport_error_ignores_other_exceptions():
    assert transport_error(KeyError("x"), source="s", symbol="A", what="w") is None
    assert transport_error(ValueError("x"), source="s", symbol="A", what="w") is None


def test_describe_request():
    assert describe_request("BTC-USD", None, None, "1d") == "BTC-USD first..latest 1d"
    hour = describe_request("BTC-USD", pd.Timestamp("2024-01-02 05:00", tz="UTC"), None, "1h")
    assert hour == "BTC-USD 2024-01-02T05:00:00+00:00..latest 1h"


def test_guard_for_shares_one_guard_per_source():
    reset_guards()
    made = []

    def factory():
        made.append(1)
        return Guard("x")

    assert guard_for("x", factory) is guard_for("x", factory)
    assert len(made) == 1
    reset_guards()
    guard_for("x", factory)
    assert len(made) == 2
    reset_guards()


def test_policy_validation():
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(timeout=0)
    with pytest.raises(ValueError):
        RequestBudget(rate=0)
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=0)
