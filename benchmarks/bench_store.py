"""Load the close matrix of 500 synthetic symbols x 5,000 daily bars from the store.

Compares, in one run on the same files: the workbench's ``close_matrix`` (store path), reading
the same Parquet files directly with pyarrow (the floor), and pandas reading the matrix as CSV.
Each method runs in its own subprocess so peak memory (max RSS above the post-import baseline)
is its own. Target: the store path within 1.5x of raw pyarrow.

Usage: python benchmarks/bench_store.py [--quick] [--symbols N] [--bars N] [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

METHODS = ["store", "pyarrow", "pandas_csv"]


def _prepare(root: Path, n_symbols: int, n_bars: int) -> None:
    from tqdm import tqdm

    from research.data import Store
    from research.data.sources.synthetic import SyntheticSource

    store = Store(root / "data")
    src = SyntheticSource(bars=n_bars)
    names = [f"SYN{i:04d}" for i in range(n_symbols)]
    for sym in tqdm(names, desc="ingesting synthetic symbols", unit="symbol"):
        store.ingest(src, sym)
    from research.data import close_matrix

    close_matrix(names, source=src, store=store).to_csv(root / "close.csv")


def _run(method: str, root: Path, n_symbols: int, n_bars: int, repeat: int) -> dict:
    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq

    from research.data import Store, close_matrix
    from research.data.sources.synthetic import SyntheticSource

    store = Store(root / "data")
    src = SyntheticSource(bars=n_bars)
    names = [f"SYN{i:04d}" for i in range(n_symbols)]
    paths = [store.path(src.name, "1d", s) for s in names]

    def via_store():
        return close_matrix(names, source=src, store=store)

    def via_pyarrow():
        tables = [pq.read_table(p, columns=["timestamp", "close"]) for p in paths]
        index = pd.DatetimeIndex(tables[0].column("timestamp").to_numpy()).tz_localize("UTC")
        return pd.DataFrame(np.column_stack([t.column("close").to_numpy() for t in tables]), index=index, columns=names)

    def via_csv():
        return pd.read_csv(root / "close.csv", index_col=0, parse_dates=True)

    fn = {"store": via_store, "pyarrow": via_pyarrow, "pandas_csv": via_csv}[method]
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fn()  # warm the page cache and imports
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
    return {"method": method, "median_ms": statistics.median(times) * 1e3, "min_ms": min(times) * 1e3,
            "peak_mib": peak / 1024, "shape": list(out.shape)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100 symbols x 2,000 bars, 3 repeats")
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--bars", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.symbols, args.bars, args.repeat = 100, 2000, 3
    if args.worker:
        method, root = args.worker
        print(json.dumps(_run(method, Path(root), args.symbols, args.bars, args.repeat)))
        return
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        _prepare(root, args.symbols, args.bars)
        print(f"prepared {args.symbols} symbols x {args.bars} bars in {time.perf_counter() - t0:.1f} s")
        rows = []
        for method in METHODS:
            cmd = [sys.executable, __file__, "--symbols", str(args.symbols), "--bars", str(args.bars),
                   "--repeat", str(args.repeat), "--worker", method, str(root)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    floor = next(r for r in rows if r["method"] == "pyarrow")["median_ms"]
    print(f"\nclose matrix {args.symbols} symbols x {args.bars} bars (median of {args.repeat})")
    print(f"{'method':<12}{'median ms':>11}{'min ms':>9}{'peak MiB':>10}{'vs pyarrow':>12}")
    for r in rows:
        print(f"{r['method']:<12}{r['median_ms']:>11.1f}{r['min_ms']:>9.1f}{r['peak_mib']:>10.1f}{r['median_ms'] / floor:>11.2f}x")
    ratio = rows[0]["median_ms"] / floor
    print(f"\nstore / pyarrow = {ratio:.2f}x (target <= 1.5x): {'met' if ratio <= 1.5 else 'NOT met'}")


if __name__ == "__main__":
    main()
