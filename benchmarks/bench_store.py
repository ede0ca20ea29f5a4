"""Read the close matrix of a universe from the store: the matrix cache against the per-symbol path.

Two sizes: 500 synthetic symbols x 5,000 daily bars, and 5,000 symbols x 2,500 bars. On the
same files, in one run:

* ``cached``: ``close_matrix`` served from the matrix cache (warm: the cache file exists and
  every dataset is unchanged; its fast-path checks are listed in research.data.matrix_cache,
  the sha256 of every column served included);
* ``cached_unhashed``: the same read with the content hashes not computed (what the content
  check costs is the difference);
* ``per_symbol``: ``close_matrix(..., cache=False)``, one verified Parquet read per symbol
  (the workbench's path before the cache, kept as the baseline);
* ``build``: the first read after a change: the per-symbol path plus writing the cache file;
* ``pyarrow_files``: the same per-symbol files read directly with pyarrow, nothing verified;
* ``pyarrow_one_file``: the whole matrix read from one Parquet file with pyarrow (the floor).

Each method runs in its own subprocess (peak memory: the peak resident set during the timed
reads above the resident set before them, reset through /proc/self/clear_refs; it counts the
cache file's mapped pages the read touches), and the methods are interleaved
over several rounds since the machine may be shared; the figures are medians over all rounds.
Targets for 500 x 5,000: ``cached`` <= 100 ms and <= 2x ``pyarrow_one_file``.

Usage: python benchmarks/bench_store.py [--quick] [--rounds N] [--repeat N] [--no-large] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

METHODS = ["cached", "cached_unhashed", "per_symbol", "build", "pyarrow_files", "pyarrow_one_file"]
LARGE_METHODS = ["cached", "per_symbol", "build", "pyarrow_one_file"]
TARGET_MS = 100.0
TARGET_RATIO = 2.0


def _names(n: int) -> list[str]:
    return [f"SYN{i:04d}" for i in range(n)]


def _write_part(root: str, bars: int, names: list[str]) -> None:
    from research.data import Store
    from research.data.sources.synthetic import SyntheticSource, synthetic_ohlcv

    store, src = Store(root), SyntheticSource(bars=bars)
    for sym in names:
        if store.manifest(src.name, "1d", sym) is None:
            meta = {"synthetic": True, "provenance": src.provenance(sym), "calendar": src.calendar(sym).name}
            store.write(src.name, "1d", sym, synthetic_ohlcv(sym, bars=bars), meta=meta)


def _prepare(root: Path, n_symbols: int, n_bars: int) -> None:
    """Store the datasets (two writer processes), one Parquet file of the matrix, and the cache."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from research.data import Store, close_matrix
    from research.data.sources.synthetic import SyntheticSource

    names = _names(n_symbols)
    procs = [subprocess.Popen([sys.executable, __file__, "--write-part", str(root / "data"), str(n_bars),
                               ",".join(names[i::2])]) for i in range(2)]
    for p in procs:
        if p.wait() != 0:
            raise SystemExit("preparing the store failed")
    store, src = Store(root / "data"), SyntheticSource(bars=n_bars)
    matrix = close_matrix(names, source=src, store=store)  # builds the cache
    table = pa.Table.from_pandas(matrix.rename(columns=str), preserve_index=True)
    pq.write_table(table, root / f"close-{n_symbols}x{n_bars}.parquet")


def _run(method: str, root: Path, n_symbols: int, n_bars: int, repeat: int) -> dict:
    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq

    from research.data import Store, close_matrix
    from research.data.matrix_cache import MatrixCache
    from research.data.sources.synthetic import SyntheticSource

    store = Store(root / "data")
    src = SyntheticSource(bars=n_bars)
    names = _names(n_symbols)
    paths = [store.path(src.name, "1d", s) for s in names]
    cache_file = MatrixCache(store).path(src.name, "1d", "close", names)

    def cached():
        return close_matrix(names, source=src, store=store)

    def cached_unhashed():
        return close_matrix(names, source=src, store=store)

    if method == "cached_unhashed":  # the content check skipped: each column still copied off the map
        from research.data import matrix_cache as mc

        def frame_unhashed(table, meta, symbols, path):
            index = pd.DatetimeIndex(table.column("timestamp").to_numpy().astype("datetime64[ns]"), name="timestamp")
            values = np.empty((len(symbols), table.num_rows), dtype="float64")
            for i, sym in enumerate(symbols):
                values[i] = table.column(sym).to_numpy()
            return pd.DataFrame(values.T, index=index.tz_localize("UTC"), columns=pd.Index(symbols, name="symbol"),
                                copy=False)

        mc.MatrixCache._frame = staticmethod(frame_unhashed)

    def per_symbol():
        return close_matrix(names, source=src, store=store, cache=False)

    def build():
        cache_file.unlink(missing_ok=True)
        return close_matrix(names, source=src, store=store)

    def pyarrow_files():
        tables = [pq.read_table(p, columns=["timestamp", "close"]) for p in paths]
        index = pd.DatetimeIndex(tables[0].column("timestamp").to_numpy()).tz_localize("UTC")
        return pd.DataFrame(np.column_stack([t.column("close").to_numpy() for t in tables]), index=index, columns=names)

    def pyarrow_one_file():
        return pq.read_table(root / f"close-{n_symbols}x{n_bars}.parquet").to_pandas()

    fn = {"cached": cached, "cached_unhashed": cached_unhashed, "per_symbol": per_symbol, "build": build, "pyarrow_files": pyarrow_files,
          "pyarrow_one_file": pyarrow_one_file}[method]
    out = fn()  # warm the page cache and imports
    del out
    base = _reset_peak()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
        shape = list(out.shape)
        del out
    return {"method": method, "times_ms": [t * 1e3 for t in times], "peak_mib": (_peak_kib() - base) / 1024,
            "shape": shape}


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> int:
    """Reset the peak resident set (Linux) and return the current one, in KiB."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return _status_kib("VmRSS") or 0


def _peak_kib() -> int:
    return _status_kib("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _measure(root: Path, n_symbols: int, n_bars: int, methods: list[str], rounds: int, repeat: int) -> dict:
    """Interleave the methods over ``rounds``; medians over every repetition of every round."""
    times: dict[str, list[float]] = {m: [] for m in methods}
    peaks: dict[str, list[float]] = {m: [] for m in methods}
    shapes: dict[str, list] = {}
    for _ in range(rounds):
        for method in methods:
            reps = 1 if method in ("per_symbol", "build") and n_symbols > 1000 else repeat
            cmd = [sys.executable, __file__, "--symbols", str(n_symbols), "--bars", str(n_bars),
                   "--repeat", str(reps), "--worker", method, str(root)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            times[method] += row["times_ms"]
            peaks[method].append(row["peak_mib"])
            shapes[method] = row["shape"]
    return {m: {"median_ms": statistics.median(times[m]), "min_ms": min(times[m]), "n": len(times[m]),
                "peak_mib": max(peaks[m]), "shape": shapes[m]} for m in methods}


def _table(title: str, rows: dict, floor: str) -> None:
    print(f"\n{title}")
    print(f"{'method':<18}{'median ms':>11}{'min ms':>9}{'n':>4}{'peak MiB':>10}{'vs ' + floor:>22}")
    for name, r in rows.items():
        ratio = r["median_ms"] / rows[floor]["median_ms"]
        print(f"{name:<18}{r['median_ms']:>11.1f}{r['min_ms']:>9.1f}{r['n']:>4}{r['peak_mib']:>10.1f}{ratio:>21.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100 x 2,000 and 1,000 x 500; 1 round of 3")
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--bars", type=int, default=5000)
    parser.add_argument("--large", type=str, default="5000x2500", help="the second size, SYMBOLSxBARS")
    parser.add_argument("--no-large", action="store_true", help="measure the first size only")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", type=Path, default=None, help="prepare into (and reuse) this folder")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--write-part", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_part:
        root, bars, names = args.write_part
        _write_part(root, int(bars), names.split(","))
        return
    if args.quick:
        args.symbols, args.bars, args.large, args.rounds, args.repeat = 100, 2000, "1000x500", 1, 3
    if args.worker:
        method, root = args.worker
        print(json.dumps(_run(method, Path(root), args.symbols, args.bars, args.repeat)))
        return
    sizes = [(args.symbols, args.bars, METHODS)]
    if not args.no_large:
        n, b = (int(x) for x in args.large.split("x"))
        sizes.append((n, b, LARGE_METHODS))
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-store-"))
    load0 = os.getloadavg()
    print(f"{os.cpu_count()} cores, load average {load0[0]:.1f} {load0[1]:.1f} {load0[2]:.1f} at start")
    results = {}
    try:
        for n, b, methods in sizes:
            t0 = time.perf_counter()
            _prepare(root, n, b)
            print(f"prepared {n:,} symbols x {b:,} bars in {time.perf_counter() - t0:.1f} s")
            results[(n, b)] = _measure(root, n, b, methods, args.rounds, args.repeat)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    for (n, b), rows in results.items():
        _table(f"close matrix {n:,} symbols x {b:,} bars (medians over {args.rounds} interleaved rounds)",
               rows, "pyarrow_one_file")
    load1 = os.getloadavg()
    print(f"\nload average {load1[0]:.1f} {load1[1]:.1f} {load1[2]:.1f} at end ({os.cpu_count()} cores)")
    rows = results[(args.symbols, args.bars)]
    cached, floor = rows["cached"]["median_ms"], rows["pyarrow_one_file"]["median_ms"]
    speedup = rows["per_symbol"]["median_ms"] / cached
    ok_ms, ok_ratio = cached <= TARGET_MS, cached / floor <= TARGET_RATIO
    unhashed = rows.get("cached_unhashed", {}).get("median_ms")
    if unhashed:
        print(f"content check (sha256 of every column served): {cached - unhashed:.1f} ms "
              f"({cached:.1f} ms checked vs {unhashed:.1f} ms unchecked)")
    print(f"cached close matrix {args.symbols} x {args.bars}: {cached:.1f} ms (target <= {TARGET_MS:.0f} ms): "
          f"{'met' if ok_ms else 'NOT met'}; {cached / floor:.2f}x one-file pyarrow (target <= {TARGET_RATIO:.0f}x): "
          f"{'met' if ok_ratio else 'NOT met'}; {speedup:.1f}x faster than the per-symbol path")


if __name__ == "__main__":
    main()
