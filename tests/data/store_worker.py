"""A process that hammers the store, for the concurrency test (run as a script)."""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
import pandas as pd

from research.data import Store, SymbolNotFoundError
from research.data.calendars import CRYPTO
from research.data.sources.base import Source
from research.data.store import content_sha256


def frame_for(writer: int, version: int) -> pd.DataFrame:
    n = 200 + version % 50
    idx = pd.date_range("2001-01-01", periods=n, freq="D", tz="UTC", name="timestamp").as_unit("ns")
    base = 100 + np.arange(n, dtype=float)
    return pd.DataFrame(
        {"open": base, "high": base + 1, "low": base - 1, "close": base, "volume": np.full(n, writer * 1e6 + version)},
        index=idx,
    )


def check(frame: pd.DataFrame) -> bool:
    tags = np.unique(frame["volume"].to_numpy())
    if len(tags) != 1:
        return False
    version = int(tags[0]) % 1_000_000
    return len(frame) == 200 + version % 50 and frame.attrs.get("sha256") == content_sha256(frame)


def writer(root: str, w: int, start: int, log: str) -> None:
    store = Store(root)
    v = start
    with open(log, "a") as fh:
        while True:
            for sym in (f"W{w}", "SHARED"):
                store.write("test", "1d", sym, frame_for(w, v))
                fh.write(f"{sym} {w} {v}\n")
                fh.flush()
                os.fsync(fh.fileno())
            v += 1


def reader(root: str, symbols: list[str], stop_file: str, out: str) -> None:
    store = Store(root)
    reads = torn = 0
    deadline = time.monotonic() + 300
    while not os.path.exists(stop_file) and time.monotonic() < deadline:
        for sym in symbols:
            try:
                frame = store.read("test", "1d", sym)
            except SymbolNotFoundError:  # not written yet
                continue
            except Exception:  # a half-written file counts as torn
                reads += 1
                torn += 1
                continue
            reads += 1
            torn += not check(frame)
    with open(out, "w") as fh:
        json.dump({"reads": reads, "torn": torn}, fh)


class PartLive(Source):
    """A live source whose answer for worker ``w`` of ``n`` is its own share of the days, plus a
    few days every worker gets with the same values (overlap)."""

    name = "partlive"
    live = True

    def __init__(self, w: int, n: int) -> None:
        self.w, self.n = w, n

    def calendar(self, symbol: str):
        return CRYPTO

    def fetch(self, symbol, start, end, interval="1d"):
        return part_frame(self.w, self.n)


def part_frame(w: int, n: int, days: int = 120, overlap: int = 5) -> pd.DataFrame:
    idx = pd.date_range("2020-01-01", periods=days, freq="D", tz="UTC", name="timestamp").as_unit("ns")
    base = 100 + np.arange(days, dtype=float)
    frame = pd.DataFrame({"open": base, "high": base + 1, "low": base - 1, "close": base + 0.5,
                          "volume": np.full(days, 1000.0)}, index=idx)
    mine = (np.arange(days) % n == w) | (np.arange(days) < overlap)
    return frame[mine]


def ingester(root: str, w: int, n: int, go_file: str, out: str, symbol: str) -> None:
    """Wait for ``go_file``, ingest this worker's rows of ``symbol``, report what was acknowledged."""
    store = Store(root, freshness_ttl=0)  # a stored copy never stops this worker from ingesting
    open(out + ".ready", "w").close()
    deadline = time.monotonic() + 120
    while not os.path.exists(go_file) and time.monotonic() < deadline:
        time.sleep(0.001)
    res = store.ingest(PartLive(w, n), symbol)
    # the report appears whole or not at all: a worker SIGKILLed while writing it acknowledged nothing
    with open(out + ".tmp", "w") as fh:
        json.dump({"ack": bool(res.fetched), "rows": [t.isoformat() for t in part_frame(w, n).index]}, fh)
    os.replace(out + ".tmp", out)


if __name__ == "__main__":
    role = sys.argv[1]
    if role == "ingest":
        ingester(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6], sys.argv[7])
    elif role == "writer":
        writer(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    else:
        reader(sys.argv[2], sys.argv[3].split(","), sys.argv[4], sys.argv[5])
