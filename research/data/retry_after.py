"""Rate limits remembered across calls and processes: the instant a source may next be asked.

When a source answers HTTP 429 with ``Retry-After: N``, it has said *when* it will answer
again. That instant outlives the call that received it: the next fetch of the same source,
in this process or in another one, must not send its first request before it. A
:class:`~research.data.resilience.Guard` records every ``Retry-After`` it sees in its
*retry-after memory* and, before each request, waits until the remembered instant, or fails
fast with a :class:`~research.data.errors.RateLimitError` naming the source and the instant
when that wait would pass the call's deadline (the store then serves its stored copy, marked
stale, as for any source failure).

Two memories with one interface:

* :class:`RetryAfterMemory` keeps the instant in this process (on the guard's clock);
* :class:`SharedRetryAfterMemory` keeps it in a small JSON file next to the source's shared
  request budget (``<data dir>/.budget/<source>.retry-after.json``), in wall-clock seconds, so
  every process on the machine sees it. Writes take a file lock and keep the later of the
  stored and the new instant (two processes rate limited at once both wait for the later
  one); reads need no lock (the file is replaced atomically). When the file cannot be used,
  the memory falls back to this process and says so once in the log.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from research.atomic import atomic_write, remove_orphans

__all__ = ["RetryAfterMemory", "SharedRetryAfterMemory", "format_instant"]

log = logging.getLogger(__name__)
Clock = Callable[[], float]


def format_instant(wall_seconds: float) -> str:
    """A wall-clock instant (seconds since the epoch) as ``2026-12-07T09:00:07Z``."""
    return pd.Timestamp(wall_seconds, unit="s", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


class RetryAfterMemory:
    """The instant (on ``clock``) before which the source must not be asked, in this process.

    Parameters
    ----------
    clock : callable
        The clock the instants are read on (the guard's monotonic clock by default).
    """

    def __init__(self, *, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self._until: float | None = None
        self._lock = threading.Lock()

    def until(self) -> float | None:
        """The remembered instant, or ``None`` when the source never asked to wait."""
        with self._lock:
            return self._until

    def remember(self, seconds: float) -> float:
        """Record a ``Retry-After`` of ``seconds`` received now; return the instant kept.

        The later of the stored and the new instant is kept.
        """
        with self._lock:
            instant = self.clock() + max(0.0, float(seconds))
            self._until = instant if self._until is None else max(self._until, instant)
            return self._until

    def pending(self) -> tuple[float, float | None]:
        """``(seconds still to wait, the instant)``; ``(0.0, instant or None)`` when none."""
        until = self.until()
        if until is None:
            return 0.0, None
        return max(0.0, until - self.clock()), until

    def __repr__(self) -> str:
        return f"RetryAfterMemory(until={self._until})"


class SharedRetryAfterMemory:
    """A :class:`RetryAfterMemory` shared by every process that uses the same ``path``.

    Parameters
    ----------
    path : path
        The state file (its folder is created when missing).
    clock : callable
        Wall-clock seconds (``time.time``): the same clock in every process.
    """

    def __init__(self, path: str | os.PathLike, *, clock: Clock = time.time) -> None:
        self.path = Path(path)
        self.clock = clock
        self._local: RetryAfterMemory | None = None
        self._lock = threading.Lock()

    def _fallback(self, exc: BaseException) -> RetryAfterMemory:
        if self._local is None:
            log.warning("retry-after memory %s cannot be shared between processes (%s); remembering in this "
                        "process only", self.path, exc)
            self._local = RetryAfterMemory(clock=self.clock)
        return self._local

    def _read(self) -> float | None:
        try:
            state = json.loads(self.path.read_text())
            return float(state["until"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):  # a damaged file says nothing
            return None

    def until(self) -> float | None:
        """The remembered wall-clock instant, or ``None``."""
        with self._lock:
            if self._local is not None:
                return self._local.until()
        return self._read()

    def remember(self, seconds: float) -> float:
        """Record a ``Retry-After`` of ``seconds`` received now (the later instant wins)."""
        from filelock import FileLock

        with self._lock:
            if self._local is None:
                try:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    with FileLock(str(self.path) + ".lock", timeout=10):
                        now = self.clock()
                        instant = now + max(0.0, float(seconds))
                        stored = self._read()
                        if stored is not None and stored > instant:
                            return stored
                        remove_orphans(self.path)  # of a writer killed mid-write
                        atomic_write(self.path, json.dumps({"until": instant, "until_utc": format_instant(instant),
                                                            "retry_after": float(seconds), "recorded": now}),
                                     durable=False, mkdir=False)
                        return instant
                except Exception as exc:  # noqa: BLE001 - any failure of the file falls back
                    self._fallback(exc)
            return self._local.remember(seconds)  # type: ignore[union-attr]

    def pending(self) -> tuple[float, float | None]:
        """``(seconds still to wait, the instant)``; ``(0.0, instant or None)`` when none."""
        until = self.until()
        if until is None:
            return 0.0, None
        return max(0.0, until - self.clock()), until

    def __repr__(self) -> str:
        return f"SharedRetryAfterMemory(file={str(self.path)!r})"
