"""The run lock of a pipeline and as-of date: one runner at a time, never a dead holder named.

A runner holds an exclusive ``flock`` on ``<runs_dir>/<pipeline>/.locks/<as-of>.lock`` (the
kernel releases it when the process dies, however it dies) and records itself next to it in
``<as-of>.owner.json``: run id, PID, the PID's start time, host and since when. A second start
gets :class:`RunLocked` naming the holder, after checking that the recorded holder is alive
(same PID *and* start time, so a reused PID does not count): when it is not, the lock is being
released or its new holder has not recorded itself yet, so the start waits a moment and then
either takes the lock over or names the live process that holds it (from /proc/locks).
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
from filelock import FileLock, Timeout

from research.atomic import atomic_write

__all__ = ["RunLocked", "run_lock", "record_owner", "holder_alive", "owner_alive", "process_start", "read_owner", "lock_holders"]

log = logging.getLogger(__name__)


class RunLocked(RuntimeError):
    """Another run of the same pipeline and as-of date holds the lock."""


def process_start(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot, from /proc), or ``None``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 and fields[0] != "Z" else None


def owner_alive(info: Mapping[str, Any]) -> bool:
    """Whether the process recorded as a lock's holder still runs (same PID and start time).

    A holder on another host cannot be checked and counts as alive.
    """
    if info.get("host") not in (None, socket.gethostname()):
        return True
    try:
        pid = int(info["pid"])
        os.kill(pid, 0)
    except (KeyError, TypeError, ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    started = process_start(pid)
    if Path("/proc/self/stat").exists() and started is None:
        return False  # a zombie
    return info.get("pid_start") in (None, started)


def lock_holders(path: Path) -> list[int]:
    """PIDs holding a flock on ``path`` according to /proc/locks (Linux; ``[]`` elsewhere)."""
    try:
        inode = path.stat().st_ino
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        parts = line.split()
        if len(parts) > 5 and parts[1] == "FLOCK" and parts[5].rsplit(":", 1)[-1] == str(inode):
            out.append(int(parts[4]))
    return out


def read_owner(owner: Path) -> dict:
    """The holder recorded in ``owner`` (``{}`` when missing or unreadable)."""
    try:
        info = json.loads(owner.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return info if isinstance(info, dict) else {}


def acquire(lock: FileLock, owner: Path, pipeline: str, as_of: str, *, grace: float = 3.0) -> dict:
    """Take the run lock or raise :class:`RunLocked` naming a live holder.

    Returns the record of a dead holder whose lock was taken over (empty when the lock was free).
    """
    try:
        lock.acquire(timeout=0)
        return {}
    except Timeout:
        pass
    info = read_owner(owner)
    if not info or not owner_alive(info):
        # the recorded holder is gone: its lock is being released, or the new holder has not
        # recorded itself yet; either way the answer comes within moments
        stale = info
        try:
            lock.acquire(timeout=grace)
            return stale or {"pid": None}
        except Timeout:
            info = read_owner(owner)
        if not info or not owner_alive(info):
            live = [p for p in lock_holders(Path(lock.lock_file)) if owner_alive({"pid": p})]
            who = f" (held by pid {', '.join(map(str, live))}, which has not recorded its run)" if live else ""
            raise RunLocked(f"pipeline {pipeline!r} for as-of {as_of} is already running{who}; "
                            "not starting a second run") from None
    who = f" (run {info.get('run_id')}, pid {info.get('pid')} on {info.get('host')}, since {info.get('since')})"
    raise RunLocked(f"pipeline {pipeline!r} for as-of {as_of} is already running{who}; not starting a second run") from None


@contextmanager
def run_lock(locks: Path, key: str, pipeline: str, as_of: str, run_id: str) -> Iterator[Path]:
    """Hold ``<locks>/<key>.lock`` for ``run_id`` (recorded in ``<key>.owner.json``, yielded)."""
    locks.mkdir(parents=True, exist_ok=True)
    owner = locks / f"{key}.owner.json"
    lock = FileLock(str(locks / f"{key}.lock"))
    stale = acquire(lock, owner, pipeline, as_of)
    if stale.get("pid"):
        log.warning("took over the lock of %s as of %s from pid %s (run %s), which is no longer running",
                    pipeline, as_of, stale.get("pid"), stale.get("run_id"))
    try:
        record_owner(owner, run_id)
        yield owner
    finally:
        owner.unlink(missing_ok=True)
        lock.release()


def record_owner(owner: Path, run_id: str) -> None:
    """Record this process as the holder of the lock next to ``owner``, running ``run_id``."""
    pid = os.getpid()
    atomic_write(owner, json.dumps({"run_id": run_id, "pid": pid, "pid_start": process_start(pid),
                                         "host": socket.gethostname(), "since": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds")}))




def holder_alive(lock_path: Path, owner: Path) -> bool:
    """Whether a live process holds ``lock_path`` (the recorded holder, else any flock holder)."""
    if not lock_path.exists():
        return False
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        info = read_owner(owner)
        return owner_alive(info) if info else bool(lock_holders(lock_path))
    lock.release()
    return False
