"""Request budgets: token buckets pacing the requests to one source, in a process or machine-wide.

:class:`RequestBudget` is a token bucket (``rate`` requests per second, ``burst`` at once)
shared by every request to a source in this process; :class:`SharedRequestBudget` keeps the
same bucket in a small file under the data directory (``.budget/<source>.json``, guarded by a
file lock), so every process on the machine draws from one budget per source. Both are used by
:class:`research.data.resilience.Guard`, which re-exports them.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from research.atomic import atomic_write, remove_orphans

__all__ = ["RequestBudget", "SharedRequestBudget", "shared_budget"]

log = logging.getLogger(__name__)
Clock = Callable[[], float]


class RequestBudget:
    """A token bucket: ``rate`` requests per second with bursts of up to ``burst``.

    Thread-safe: concurrent callers are queued, each waiting for its own token.
    """

    def __init__(self, rate: float, burst: int = 1, *, clock: Clock = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate must be > 0 and burst >= 1, got rate={rate}, burst={burst}")
        self.rate, self.burst, self.clock = float(rate), int(burst), clock
        self._tokens = float(burst)
        self._stamp = clock()
        self._lock = threading.Lock()

    @classmethod
    def every(cls, seconds: float, *, clock: Clock = time.monotonic) -> RequestBudget:
        """At most one request every ``seconds``."""
        return cls(1.0 / seconds, 1, clock=clock)

    def reserve(self) -> float:
        """Take a token and return how many seconds the caller must wait before using it."""
        with self._lock:
            now = self.clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def cancel(self) -> None:
        """Give back a token taken by :meth:`reserve` and not used."""
        with self._lock:
            self._tokens = min(self.burst, self._tokens + 1.0)

    def __repr__(self) -> str:
        return f"RequestBudget(rate={self.rate:g}/s, burst={self.burst})"


class SharedRequestBudget:
    """A :class:`RequestBudget` shared by every process that uses the same ``path``.

    The bucket's state (tokens and the wall-clock time they were counted at) lives in a JSON
    file guarded by a file lock; each reservation takes the lock, refills, takes a token and
    writes the state back. Waits are computed exactly as :class:`RequestBudget` does, so two
    processes together get ``rate`` requests per second with bursts of ``burst``, not twice
    that. When the file cannot be used (read-only folder, lock timeout), the budget falls
    back to a process-local bucket and says so once in the log.

    Parameters
    ----------
    path : path
        The state file (its folder is created when missing).
    rate, burst : float, int
        As for :class:`RequestBudget`.
    clock : callable
        Wall-clock seconds (``time.time``): the same clock in every process.
    """

    def __init__(self, path: str | os.PathLike, rate: float, burst: int = 1, *, clock: Clock = time.time) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate must be > 0 and burst >= 1, got rate={rate}, burst={burst}")
        self.path = Path(path)
        self.rate, self.burst, self.clock = float(rate), int(burst), clock
        self._local: RequestBudget | None = None
        self._lock = threading.Lock()

    def _fallback(self, exc: BaseException) -> RequestBudget:
        if self._local is None:
            log.warning("request budget %s cannot be shared between processes (%s); counting in this process only",
                        self.path, exc)
            self._local = RequestBudget(self.rate, self.burst, clock=time.monotonic)
        return self._local

    def _update(self, take: float) -> float:
        """Refill, add ``-take`` tokens, store; return the tokens left."""
        from filelock import FileLock

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.path) + ".lock", timeout=10):
            now = self.clock()
            try:
                state = json.loads(self.path.read_text())
                tokens, stamp = float(state["tokens"]), float(state["stamp"])
            except (OSError, ValueError, KeyError, TypeError):  # first use, or a damaged file
                tokens, stamp = float(self.burst), now
            tokens = min(float(self.burst), tokens + max(0.0, now - stamp) * self.rate) - take
            remove_orphans(self.path)  # of a writer killed mid-write
            state = {"tokens": tokens, "stamp": max(now, stamp), "rate": self.rate, "burst": self.burst}
            atomic_write(self.path, json.dumps(state), durable=False, mkdir=False)
            return tokens

    def reserve(self) -> float:
        """Take a token and return how many seconds the caller must wait before using it."""
        with self._lock:
            if self._local is None:
                try:
                    tokens = self._update(1.0)
                    return 0.0 if tokens >= 0 else -tokens / self.rate
                except Exception as exc:  # noqa: BLE001 - any failure of the file falls back
                    self._fallback(exc)
            return self._local.reserve()  # type: ignore[union-attr]

    def cancel(self) -> None:
        """Give back a token taken by :meth:`reserve` and not used."""
        with self._lock:
            if self._local is not None:
                self._local.cancel()
                return
            try:
                self._update(-1.0)
            except Exception as exc:  # noqa: BLE001
                self._fallback(exc)

    def __repr__(self) -> str:
        return f"SharedRequestBudget(rate={self.rate:g}/s, burst={self.burst}, file={str(self.path)!r})"


def shared_budget(source: str, rate: float, burst: int = 1) -> SharedRequestBudget:
    """The machine-wide budget of ``source``: ``<data dir>/.budget/<source>.json``."""
    from research.config import get_settings

    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in source)
    return SharedRequestBudget(get_settings().data_dir / ".budget" / f"{name}.json", rate, burst)
