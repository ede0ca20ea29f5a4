"""Several processes write and read the same datasets while writers are killed mid-write."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from research.data import Store

WORKER = Path(__file__).with_name("store_worker.py")
WRITERS = 3
KILLS = 8


def _spawn(*args: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WORKER), *map(str, args)], cwd=WORKER.parent)


def _versions(log: Path, symbol: str) -> list[int]:
    if not log.exists():
        return []
    return [int(line.split()[2]) for line in log.read_text().splitlines() if line.startswith(f"{symbol} ")]


def _wait_for_progress(log: Path, symbol: str, seen: int, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while len(_versions(log, symbol)) <= seen:
        assert time.monotonic() < end, f"writer of {symbol} made no progress"
        time.sleep(0.02)


def test_no_torn_reads_and_no_lost_commits_with_kills(tmp_path):
    root = tmp_path / "data"
    rng = random.Random(7)
    logs = [tmp_path / f"w{w}.log" for w in range(WRITERS)]
    stop = tmp_path / "stop"
    procs = {w: _spawn("writer", root, w, 0, logs[w]) for w in range(WRITERS)}
    symbols = ",".join([*(f"W{w}" for w in range(WRITERS)), "SHARED"])
    readers = [_spawn("reader", root, symbols, stop, tmp_path / f"r{i}.json") for i in range(2)]
    try:
        for k in range(KILLS):
            w = k % WRITERS
            seen = len(_versions(logs[w], f"W{w}"))
            _wait_for_progress(logs[w], f"W{w}", seen)
            time.sleep(rng.uniform(0.0, 0.05))  # land somewhere inside a later write
            procs[w].send_signal(signal.SIGKILL)
            procs[w].wait()
            procs[w] = _spawn("writer", root, w, max(_versions(logs[w], f"W{w}")) + 2, logs[w])
        for w in range(WRITERS):
            _wait_for_progress(logs[w], f"W{w}", len(_versions(logs[w], f"W{w}")))
    finally:
        for p in procs.values():
            p.send_signal(signal.SIGKILL)
            p.wait()
        stop.touch()
    for r in readers:
        assert r.wait(timeout=60) == 0
    results = [json.loads((tmp_path / f"r{i}.json").read_text()) for i in range(2)]
    reads = sum(r["reads"] for r in results)
    torn = sum(r["torn"] for r in results)
    store = Store(root)
    lost = 0
    for w in range(WRITERS):
        last = max(_versions(logs[w], f"W{w}"))
        final = int(np.unique(store.read("test", "1d", f"W{w}")["volume"])[0]) % 1_000_000
        lost += final < last  # the stored version is the last committed one (or one written after it)
    print(f"\nstore concurrency: {reads} reads, {torn} torn, {KILLS} writer kills, {lost} lost commits")
    assert reads >= 20
    assert torn == 0 and lost == 0
