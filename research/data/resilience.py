"""Resilience for live sources: retries with backoff, a request budget and a circuit breaker.

Every live request goes through a :class:`Guard`, one per source and process (see
:func:`guard_for`), which combines three mechanisms:

* **retries** (:class:`RetryPolicy`): retryable failures (:class:`RateLimitError`,
  :class:`SourceUnavailableError`) are retried with exponential backoff and "equal" jitter
  (half the delay fixed, half random) within an overall deadline; a ``Retry-After`` the
  source sent is honoured as a minimum wait, and when it would overrun the deadline the guard
  gives up at once instead of sleeping in vain. Each attempt gets a bounded timeout, never
  more than what is left of the deadline;
* a **request budget** (:class:`RequestBudget`): a token bucket (``rate`` requests per second,
  ``burst`` at once; :meth:`RequestBudget.every` gives a minimum interval) shared by every
  request to the source in this process; :class:`SharedRequestBudget` is the same bucket kept
  in a small file under the data directory (``.budget/<source>.json``, guarded by a file
  lock), so every process on the machine draws from one budget per source (the live sources'
  default guards use it);
* a **circuit breaker** (:class:`CircuitBreaker`): after ``failure_threshold`` consecutive
  failures of the source itself (rate limits, 5xx, timeouts, garbage answers) it opens and
  every call fails fast with :class:`CircuitOpenError`; after ``cooldown`` seconds one probe
  call is let through (half-open) and its outcome closes or re-opens the circuit;
* a **retry-after memory** (:mod:`research.data.retry_after`): every ``Retry-After`` the source
  sends is remembered as an instant, and no request of any later call (in this process, or in
  every process when the guard's budget is shared) goes out before it; a remembered instant
  beyond the call's deadline fails at once with a :class:`RateLimitError` naming the source
  and when it may be asked again.

Failures that say nothing about the source's health (an empty result for one symbol, a
request the source refuses as invalid) are neither retried nor counted by the breaker.

Every error that leaves the guard names the source, the symbol and the requested range. Time
is injectable (``clock`` and ``sleep``) so tests run without waiting.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import pandas as pd

from research.data.budget import RequestBudget, SharedRequestBudget, shared_budget
from research.data.errors import (
    BadResponseError,
    CircuitOpenError,
    RateLimitError,
    SourceError,
    SourceUnavailableError,
)
from research.data.retry_after import RetryAfterMemory, SharedRetryAfterMemory, format_instant

__all__ = [
    "RetryPolicy",
    "RequestBudget",
    "RetryAfterMemory",
    "SharedRetryAfterMemory",
    "SharedRequestBudget",
    "shared_budget",
    "CircuitBreaker",
    "Guard",
    "Attempt",
    "guard_for",
    "reset_guards",
    "describe_request",
    "parse_retry_after",
    "transport_error",
]

log = logging.getLogger(__name__)
T = TypeVar("T")
Clock = Callable[[], float]
Sleep = Callable[[float], None]


# --------------------------------------------------------------------------- descriptions
def describe_request(symbol: str, start: object, end: object, interval: str) -> str:
    """The ``symbol start..end interval`` text every error message carries."""

    def fmt(ts: object, open_text: str) -> str:
        if ts is None:
            return open_text
        t = pd.Timestamp(ts)
        return str(t.date()) if t == t.normalize() else t.isoformat()

    return f"{symbol} {fmt(start, 'first')}..{fmt(end, 'latest')} {interval}"


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if value is None:
        return None
    value = str(value).strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


_TRANSIENT_NAMES = {
    "Timeout", "TimeoutError", "ConnectTimeout", "ReadTimeout", "ConnectionError",
    "ChunkedEncodingError", "RemoteDisconnected", "ProtocolError", "IncompleteRead",
    "ConnectionResetError", "ConnectionRefusedError", "SSLError", "ProxyError",
}


def transport_error(exc: BaseException, *, source: str, symbol: str, what: str) -> SourceError | None:
    """Map an HTTP-client exception (requests, curl_cffi, urllib3, socket) to a typed error.

    Returns ``None`` when ``exc`` is not a transport failure. ``what`` is the
    :func:`describe_request` text. Timeouts, dropped connections and HTTP 5xx become
    :class:`SourceUnavailableError`, HTTP 429 :class:`RateLimitError`, other HTTP errors and
    an undecodable body :class:`BadResponseError`. The exception's own text is not copied
    (it may hold a URL with credentials).
    """
    names = {cls.__name__ for cls in type(exc).__mro__}
    kind = type(exc).__name__
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if "HTTPError" in names and isinstance(status, int):
        if status == 429:
            headers = getattr(exc.response, "headers", None) or {}  # type: ignore[attr-defined]
            return RateLimitError(
                f"{source} {what}: rate limited (HTTP 429)", source=source, symbol=symbol,
                retry_after=parse_retry_after(headers.get("Retry-After")),
            )
        if status >= 500:
            return SourceUnavailableError(f"{source} {what}: HTTP {status}", source=source, symbol=symbol)
        return BadResponseError(f"{source} {what}: HTTP {status}", source=source, symbol=symbol)
    if "JSONDecodeError" in names:
        return BadResponseError(
            f"{source} {what}: the answer is not valid JSON (HTML page or truncated body: {kind})",
            source=source, symbol=symbol,
        )
    if names & _TRANSIENT_NAMES or isinstance(exc, (TimeoutError, ConnectionError)):
        label = "timed out" if "Timeout" in kind or isinstance(exc, TimeoutError) else "connection failed"
        return SourceUnavailableError(f"{source} {what}: request {label} ({kind})", source=source, symbol=symbol)
    return None


# --------------------------------------------------------------------------------- policy
@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one logical request.

    Attributes
    ----------
    attempts : int
        Attempts in total (1 = no retry).
    base_delay, max_delay : float
        Backoff before retry ``n`` (1-based) is ``min(max_delay, base_delay * 2**(n-1))``, of
        which the upper half is random (equal jitter).
    deadline : float
        Seconds for all attempts and waits together.
    timeout : float
        Seconds one attempt may take (connect and read); also capped by the deadline.
    """

    attempts: int = 4
    base_delay: float = 1.0
    max_delay: float = 30.0
    deadline: float = 60.0
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {self.attempts}")
        if min(self.base_delay, self.max_delay, self.deadline, self.timeout) <= 0:
            raise ValueError("delays, deadline and timeout must be positive")

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Seconds to wait before retry number ``retry`` (1-based), jittered."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (retry - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


class CircuitBreaker:
    """Stops calls to a failing source for a while.

    States: ``closed`` (calls pass), ``open`` (calls fail fast until ``cooldown`` has passed),
    ``half_open`` (one probe call is in flight; others fail fast).
    """

    def __init__(self, *, failure_threshold: int = 5, cooldown: float = 60.0, clock: Clock = time.monotonic) -> None:
        if failure_threshold < 1 or cooldown <= 0:
            raise ValueError("failure_threshold must be >= 1 and cooldown > 0")
        self.failure_threshold, self.cooldown, self.clock = failure_threshold, cooldown, clock
        self.failures = 0
        self.opened_at: float | None = None
        self.times_opened = 0
        self._probe = False
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        with self._lock:
            return self._state()

    def _state(self) -> str:
        if self.opened_at is None:
            return "closed"
        if self._probe or self.clock() - self.opened_at >= self.cooldown:
            return "half_open"
        return "open"

    def allow(self) -> float | None:
        """``None`` when a call may go ahead, else the seconds until the next probe."""
        with self._lock:
            if self.opened_at is None:
                return None
            waited = self.clock() - self.opened_at
            if waited >= self.cooldown and not self._probe:
                self._probe = True  # this caller is the half-open probe
                return None
            return max(0.0, self.cooldown - waited)

    def success(self) -> None:
        with self._lock:
            self.failures, self.opened_at, self._probe = 0, None, False

    def failure(self) -> None:
        with self._lock:
            self.failures += 1
            if self._probe or (self.opened_at is None and self.failures >= self.failure_threshold):
                self.opened_at = self.clock()
                self.times_opened += 1
            self._probe = False

    def release(self) -> None:
        """Give back the probe slot of a call that never reached the source (or ended in a bug)."""
        with self._lock:
            self._probe = False

    def blocking(self) -> bool:
        """``True`` when the next call would be refused (no side effect)."""
        with self._lock:
            if self.opened_at is None:
                return False
            return self._probe or self.clock() - self.opened_at < self.cooldown

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.state}, failures={self.failures}/{self.failure_threshold})"


@dataclass
class Attempt:
    """What the guarded function is told about the attempt it runs."""

    number: int
    timeout: float


@dataclass
class GuardStats:
    """Counters of one guard (for reports and tests)."""

    calls: int = 0
    attempts: int = 0
    retries: int = 0
    failures: int = 0
    fast_failures: int = 0
    waited: float = 0.0
    last_error: str | None = None
    by_error: dict[str, int] = field(default_factory=dict)


def _n(attempts: int) -> str:
    return f"{attempts} attempt" + ("s" if attempts != 1 else "")


def _counts_against_source(exc: SourceError) -> bool:
    return isinstance(exc, (RateLimitError, SourceUnavailableError, BadResponseError))


def _with_message(exc: SourceError, message: str) -> SourceError:
    """A copy of ``exc`` (same type and fields) with a new message."""
    if isinstance(exc, RateLimitError):
        new: SourceError = type(exc)(message, source=exc.source, symbol=exc.symbol, retry_after=exc.retry_after,
                                     retry_at=getattr(exc, "retry_at", None))
    else:
        try:
            new = type(exc)(message, source=exc.source, symbol=exc.symbol)
        except TypeError:
            new = SourceError(message, source=exc.source, symbol=exc.symbol)
    return new


class Guard:
    """Retries, request budget and circuit breaker around the requests to one source.

    Parameters
    ----------
    source : str
        The source's name (used in every error message).
    policy : RetryPolicy, optional
        Retry and timeout settings.
    budget : RequestBudget or SharedRequestBudget, optional
        Request budget shared by every call through this guard; ``None`` for no budget.
    breaker : CircuitBreaker, optional
        Defaults to 5 consecutive failures and a 60 s cool-down.
    memory : RetryAfterMemory or SharedRetryAfterMemory, optional
        Where ``Retry-After`` instants are remembered. Defaults to a file next to the budget's
        when the budget is shared between processes (so the memory is too), else to this
        guard alone (on ``clock``).
    clock, sleep : callables
        Monotonic clock and sleep function (inject fakes in tests).
    seed : int, optional
        Seed of the jitter.
    """

    def __init__(
        self,
        source: str,
        *,
        policy: RetryPolicy | None = None,
        budget: RequestBudget | SharedRequestBudget | None = None,
        breaker: CircuitBreaker | None = None,
        memory: RetryAfterMemory | SharedRetryAfterMemory | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        seed: int | None = None,
    ) -> None:
        self.source = source
        self.policy = policy or RetryPolicy()
        self.budget = budget
        self.breaker = breaker or CircuitBreaker(clock=clock)
        if memory is None:
            memory = (SharedRetryAfterMemory(budget.path.with_name(f"{budget.path.stem}.retry-after.json"))
                      if isinstance(budget, SharedRequestBudget) else RetryAfterMemory(clock=clock))
        self.memory = memory
        self.clock, self.sleep = clock, sleep
        self.rng = random.Random(seed)
        self.stats = GuardStats()

    def __repr__(self) -> str:
        return f"Guard({self.source!r}, {self.policy}, {self.budget}, {self.breaker})"

    def call(self, fn: Callable[[Attempt], T], *, symbol: str, what: str) -> T:
        """Run ``fn(attempt)`` with retries; ``what`` is the :func:`describe_request` text.

        ``fn`` must raise the typed errors of :mod:`research.data.errors`; other exceptions
        propagate unchanged (and do not count against the source).
        """
        began = self.clock()
        deadline = began + self.policy.deadline
        self.stats.calls += 1
        honoured: float | None = None  # the remembered instant this call has already waited for
        for number in range(1, self.policy.attempts + 1):
            self._admit(symbol, what, deadline, honoured)
            timeout = min(self.policy.timeout, deadline - self.clock())
            if timeout <= 0:
                self.breaker.release()
                raise SourceUnavailableError(
                    f"{self.source} {what}: no time left within the {self.policy.deadline:g} s deadline",
                    source=self.source, symbol=symbol,
                )
            self.stats.attempts += 1
            try:
                result = fn(Attempt(number, timeout))
            except SourceError as exc:
                pause = self._after_failure(exc, number)
                reason = self._give_up_reason(exc, number, pause, deadline)
                if reason is not None:
                    raise self._final(exc, symbol, what, number, began, reason) from None
                log.info("%s %s: attempt %d failed (%s); retrying in %.1f s", self.source, what, number, exc, pause)
                self.stats.retries += 1
                self.stats.waited += pause
                self.sleep(pause)
                honoured = getattr(exc, "_remembered", None)  # the pause covered the Retry-After
                continue
            except BaseException:
                self.breaker.release()
                raise
            self.breaker.success()
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ helpers
    def _admit(self, symbol: str, what: str, deadline: float, honoured: float | None = None) -> None:
        """Pass the circuit breaker, the remembered Retry-After and the request budget, or raise."""
        wait = self.breaker.allow()
        if wait is not None:
            self.stats.fast_failures += 1
            last = f"; last error: {self.stats.last_error}" if self.stats.last_error else ""
            raise CircuitOpenError(
                f"{self.source} {what}: circuit open after {self.breaker.failures} consecutive failures of "
                f"{self.source}; no request sent, next probe in {wait:.0f} s{last}",
                source=self.source, symbol=symbol,
            )
        self._await_retry_after(symbol, what, deadline, honoured)
        if self.budget is None:
            return
        delay = self.budget.reserve()
        left = deadline - self.clock()
        if delay > left:
            self.budget.cancel()
            self.breaker.release()
            raise RateLimitError(
                f"{self.source} {what}: the request budget ({self.budget}) needs a {delay:.1f} s wait, "
                f"more than the {max(left, 0):.1f} s left of the deadline",
                source=self.source, symbol=symbol, retry_after=delay,
            )
        if delay > 0:
            self.stats.waited += delay
            self.sleep(delay)

    def _await_retry_after(self, symbol: str, what: str, deadline: float, honoured: float | None) -> None:
        """Wait until the remembered ``Retry-After`` instant, or raise when it is past the deadline."""
        try:
            wait, until = self.memory.pending()
        except Exception:
            self.breaker.release()
            raise
        if wait <= 0 or (honoured is not None and until is not None and until <= honoured):
            return
        left = deadline - self.clock()
        if wait > left:
            self.breaker.release()
            self.stats.fast_failures += 1
            retry_at = time.time() + wait
            raise RateLimitError(
                f"{self.source} {what}: {self.source} asked not to be called before {format_instant(retry_at)} "
                f"(a Retry-After it sent earlier); that is {wait:.1f} s away, more than the {max(left, 0):.1f} s left "
                f"of the {self.policy.deadline:g} s deadline; no request sent, retry after {format_instant(retry_at)}",
                source=self.source, symbol=symbol, retry_after=wait, retry_at=retry_at,
            )
        log.info("%s %s: waiting %.1f s for the Retry-After %s sent earlier", self.source, what, wait, self.source)
        self.stats.waited += wait
        self.sleep(wait)

    def _after_failure(self, exc: SourceError, number: int) -> float:
        """Record a failure with the breaker and return the backoff before the next attempt."""
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        self.stats.by_error[type(exc).__name__] = self.stats.by_error.get(type(exc).__name__, 0) + 1
        if _counts_against_source(exc):
            self.stats.failures += 1
            self.breaker.failure()
        else:
            self.breaker.success()  # the source answered; the answer was just not data
        pause = self.policy.backoff(number, self.rng)
        if isinstance(exc, RateLimitError) and exc.retry_after is not None:
            exc._remembered = self.memory.remember(exc.retry_after)  # type: ignore[attr-defined]
            if exc.retry_at is None:
                exc.retry_at = time.time() + exc.retry_after
            pause = max(pause, exc.retry_after)
        return pause

    def _give_up_reason(self, exc: SourceError, number: int, pause: float, deadline: float) -> str | None:
        if not exc.retryable:
            return "" if number == 1 else f"not retryable, after {_n(number)}"
        if number >= self.policy.attempts:
            return f"gave up after {_n(number)}"
        if self.breaker.blocking():
            return f"gave up after {_n(number)}: circuit opened"
        if self.clock() + pause >= deadline:
            hint = f"Retry-After {exc.retry_after:g} s" if isinstance(exc, RateLimitError) and exc.retry_after else f"next wait {pause:.1f} s"
            again = f"; retry after {format_instant(exc.retry_at)}" if getattr(exc, "retry_at", None) else ""
            return f"gave up after {_n(number)}: {hint} would pass the {self.policy.deadline:g} s deadline{again}"
        return None

    def _final(self, exc: SourceError, symbol: str, what: str, number: int, began: float, reason: str) -> SourceError:
        exc.source, exc.symbol = exc.source or self.source, exc.symbol or symbol
        message = str(exc)
        prefix = f"{self.source} {what}"
        if not message.startswith(prefix):
            message = f"{prefix}: {message}"
        if reason:
            message += f" ({reason}; {self.clock() - began:.1f} s elapsed)"
        new = _with_message(exc, message)
        new.attempts = number  # type: ignore[attr-defined]
        return new


_GUARDS: dict[str, Guard] = {}
_GUARDS_LOCK = threading.Lock()


def guard_for(source: str, factory: Callable[[], Guard]) -> Guard:
    """The process-wide guard of ``source`` (created by ``factory`` on first use).

    Sharing one guard per source makes the budget and the breaker hold across every source
    object and every ``load_prices`` call in the process.
    """
    with _GUARDS_LOCK:
        guard = _GUARDS.get(source)
        if guard is None:
            guard = _GUARDS[source] = factory()
        return guard


def reset_guards() -> None:
    """Forget every process-wide guard (their budgets, breakers and counters)."""
    with _GUARDS_LOCK:
        _GUARDS.clear()
