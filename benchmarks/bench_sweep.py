"""Sweep throughput and memory: the fused kernel against vectorbt's grid path and backtesting.py.

One run, side by side, on the same data and costs (fees 0.1%, slippage 0.05%, next-open fills):

1. the moving-average crossover grid ``2 <= fast < slow <= 200`` (19,701 pairs) on GOOG's
   2,148 daily bars through
   * the fused numba kernel (:func:`research.backtest.sweep.sweep_ma_crossover`),
   * vectorbt's usual grid path (``MA.run_combs`` + ``crossed_above/below`` + one
     ``Portfolio.from_signals`` over every column); ``--quick`` runs a random sample of the
     columns and extrapolates (labelled),
   * a sample of the grid through backtesting.py's ``Backtest.optimize`` (its own execution:
     whole shares; throughput only);
2. one parameter set (20/50) on 500 synthetic symbols x 5,000 bars: fused against vectorbt
   ``from_signals``.

Each path runs in its own subprocess, so the peak memory (``ru_maxrss``) is its own; the
table also shows the resident memory before the timed part (imports and data) so the growth
is visible. Times exclude numba compilation (a warm-up call runs first); the fast fused paths
report the best of several runs (medians in the notes), vectorbt's slow paths one run. Results
are checked for identity: total returns and trade counts of every pair vectorbt ran.

Targets: fused >= 100x vectorbt's grid throughput with identical results, < 1 GiB peak for
the full grid, the 500 x 5,000 crossover in < 30 ms.

    nice -n 10 .venv/bin/python benchmarks/bench_sweep.py          # full (vectorbt grid ~3 GB, ~1 min)
    nice -n 10 .venv/bin/python benchmarks/bench_sweep.py --quick  # vectorbt and backtesting.py sampled
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FEES, SLIP, CASH = 0.001, 0.0005, 100_000.0
WINDOWS = range(2, 201)


class _Timer:
    """Wall and CPU (all threads of this process) seconds of a block."""

    def __enter__(self):
        self.w, self.c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.w, time.process_time() - self.c


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _current_rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _goog():
    from research.data.sources.sample import SampleSource

    df = SampleSource().fetch("GOOG", None, None, "1d")
    return df


def _pairs() -> np.ndarray:
    fs, ss = np.triu_indices(201, 1)
    keep = fs >= 2
    return np.column_stack([fs[keep], ss[keep]])


def _many(n_symbols: int, n_bars: int):
    import pandas as pd

    from research.data.sources.synthetic import synthetic_ohlcv

    frames = {f"SYN{i:04d}": synthetic_ohlcv(f"SYN{i:04d}", bars=n_bars) for i in range(n_symbols)}
    return {f: pd.DataFrame({k: v[f] for k, v in frames.items()}) for f in ("open", "close")}


# --------------------------------------------------------------------------- workers

def worker_fused_grid(quick: bool) -> dict:
    from research.backtest.sweep import sweep_ma_crossover

    df = _goog()
    sweep_ma_crossover(df, fast=[5, 6], slow=[20], fees=FEES, slippage=SLIP, init_cash=CASH)  # warm-up / cache load
    before = _current_rss_mib()
    runs = []
    for _ in range(15):
        with _Timer() as tm:
            res = sweep_ma_crossover(df, fees=FEES, slippage=SLIP, init_cash=CASH)
        runs.append((tm.wall, tm.cpu))
    t = res.table
    best = min(runs)
    out = {"backtests": len(t), "seconds": best[0], "cpu": best[1], "rss_before": before, "rss_peak": _rss_mib(),
           "total_return": t["total_return"].tolist(), "trades": t["trades"].tolist(),
           "note": f"best of 15 (median {np.median([r[0] for r in runs]):.3f} s), table included"}
    return out


def worker_vectorbt_grid(quick: bool, sample: int) -> dict:
    import pandas as pd
    import vectorbt as vbt

    df = _goog()
    close, open_ = df["close"], df["open"]

    def run(pairs: np.ndarray | None):
        if pairs is None:
            fast, slow = vbt.MA.run_combs(close, window=list(WINDOWS), r=2, short_names=["fast", "slow"])
        else:
            fast = vbt.MA.run(close, window=list(pairs[:, 0]), short_name="fast")
            slow = vbt.MA.run(close, window=list(pairs[:, 1]), short_name="slow")
        entries = fast.ma_crossed_above(slow).shift(1, fill_value=False).astype(bool)
        exits = fast.ma_crossed_below(slow).shift(1, fill_value=False).astype(bool)
        pf = vbt.Portfolio.from_signals(close, entries, exits, price=open_, fees=FEES, slippage=SLIP, init_cash=CASH)
        return pf.total_return().to_numpy(), pf.trades.count().to_numpy()

    all_pairs = _pairs()
    run(all_pairs[:4])  # compile outside the timing
    before = _current_rss_mib()
    if quick:
        idx = np.sort(np.random.default_rng(0).choice(len(all_pairs), sample, replace=False))
        with _Timer() as tm:
            tr, nt = run(all_pairs[idx])
        note = f"sample of {sample:,} columns, time extrapolated x{len(all_pairs) / sample:.1f}; memory of the sample"
        return {"backtests": sample, "seconds": tm.wall, "cpu": tm.cpu, "rss_before": before, "rss_peak": _rss_mib(),
                "pairs_idx": idx.tolist(), "total_return": tr.tolist(), "trades": nt.tolist(), "note": note,
                "extrapolate": len(all_pairs) / sample}
    with _Timer() as tm:
        tr, nt = run(None)
    # run_combs orders pairs as itertools.combinations(windows, 2): the same order as ours
    assert len(tr) == len(all_pairs)
    _ = pd  # (pandas imported for vectorbt's accessors)
    return {"backtests": len(tr), "seconds": tm.wall, "cpu": tm.cpu, "rss_before": before, "rss_peak": _rss_mib(),
            "pairs_idx": list(range(len(all_pairs))), "total_return": tr.tolist(), "trades": nt.tolist(),
            "note": "full grid"}


def worker_backtesting_py(quick: bool) -> dict:
    import warnings

    from backtesting import Backtest, Strategy
    from backtesting.lib import crossover
    from backtesting.test import SMA

    warnings.filterwarnings("ignore")
    df = _goog()
    data = df.rename(columns=str.capitalize)[["Open", "High", "Low", "Close", "Volume"]]
    data.index = data.index.tz_localize(None)

    class SmaCross(Strategy):
        n1 = 10
        n2 = 20

        def init(self):
            self.sma1 = self.I(SMA, self.data.Close, self.n1)
            self.sma2 = self.I(SMA, self.data.Close, self.n2)

        def next(self):
            if crossover(self.sma1, self.sma2):
                self.position.close()
                self.buy()
            elif crossover(self.sma2, self.sma1):
                self.position.close()

    # optimize() pickles the class for its process pool: make it findable at module level
    SmaCross.__qualname__ = "SmaCross"
    globals()["SmaCross"] = SmaCross
    bt = Backtest(data, SmaCross, cash=CASH * 100, commission=FEES, finalize_trades=True)
    bt.run()
    step = 20 if quick else 10
    n1, n2 = list(range(2, 200, step)), list(range(3, 201, step))
    count = sum(a < b for a in n1 for b in n2)
    before = _current_rss_mib()
    with _Timer() as tm:
        bt.optimize(n1=n1, n2=n2, constraint=lambda p: p.n1 < p.n2, maximize="Sharpe Ratio")
    return {"backtests": count, "seconds": tm.wall, "cpu": float("nan"), "rss_before": before, "rss_peak": _rss_mib(),
            "note": f"sample: fast/slow every {step} bars; whole shares, its own fills (throughput only); "
                    "optimize runs a process pool, whose memory is not counted"}


def worker_fused_many(quick: bool) -> dict:
    from research.backtest.kernels import ma_many
    from research.backtest.sweep import sweep_ma_crossover

    fields = _many(500, 5000)
    o = fields["open"].to_numpy()
    c = fields["close"].to_numpy()
    lo, hi = np.zeros(500, dtype=np.int64), np.full(500, 5000, dtype=np.int64)
    ma_many(o[:, :2], c[:, :2], 20, 50, lo[:2], hi[:2], FEES, SLIP, CASH, 252.0)  # warm-up / cache load
    sweep_ma_crossover({k: v.iloc[:, :2] for k, v in fields.items()}, fast=[20], slow=[50])
    before = _current_rss_mib()
    kernel = []
    for _ in range(15):
        with _Timer() as tm:
            stats = ma_many(o, c, 20, 50, lo, hi, FEES, SLIP, CASH, 252.0)
        kernel.append((tm.wall, tm.cpu))
    end_to_end = []
    for _ in range(5):
        t0 = time.perf_counter()
        res = sweep_ma_crossover(fields, fast=[20], slow=[50], fees=FEES, slippage=SLIP, init_cash=CASH)
        end_to_end.append(time.perf_counter() - t0)
    best = min(kernel)
    return {"backtests": 500, "seconds": best[0], "cpu": best[1], "rss_before": before, "rss_peak": _rss_mib(),
            "total_return": stats[:, 0].tolist(), "trades": stats[:, 5].tolist(),
            "table_total_return": res.table.set_index("symbol").loc[list(fields["close"].columns), "total_return"].tolist(),
            "note": f"kernel on arrays, best of 15 (median {np.median([k[0] for k in kernel]) * 1e3:.1f} ms); "
                    f"sweep_ma_crossover "
                    f"from DataFrames to table: best {min(end_to_end) * 1e3:.1f} ms, median "
                    f"{np.median(end_to_end) * 1e3:.1f} ms"}


def worker_vectorbt_many(quick: bool) -> dict:
    import vectorbt as vbt

    fields = _many(500, 5000)
    close, open_ = fields["close"], fields["open"]

    def run(cl, op):
        fast = vbt.MA.run(cl, 20)
        slow = vbt.MA.run(cl, 50)
        entries = fast.ma_crossed_above(slow).shift(1, fill_value=False).astype(bool)
        exits = fast.ma_crossed_below(slow).shift(1, fill_value=False).astype(bool)
        return vbt.Portfolio.from_signals(cl, entries, exits, price=op, fees=FEES, slippage=SLIP, init_cash=CASH)

    run(close.iloc[:, :3], open_.iloc[:, :3])  # compile
    before = _current_rss_mib()
    with _Timer() as tm:
        pf = run(close, open_)
    t1 = time.perf_counter()
    tr = pf.total_return().to_numpy()
    nt = pf.trades.count().to_numpy()
    stats_dt = time.perf_counter() - t1
    return {"backtests": 500, "seconds": tm.wall, "cpu": tm.cpu, "rss_before": before, "rss_peak": _rss_mib(),
            "total_return": tr.tolist(), "trades": nt.tolist(),
            "note": f"MA.run + crossed + from_signals; total_return and trade counts another {stats_dt * 1e3:.0f} ms"}


WORKERS = {
    "fused_grid": worker_fused_grid, "vectorbt_grid": worker_vectorbt_grid, "backtesting_py": worker_backtesting_py,
    "fused_many": worker_fused_many, "vectorbt_many": worker_vectorbt_many,
}


# --------------------------------------------------------------------------- driver

def _spawn(name: str, quick: bool, sample: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", name, "--sample", str(sample)] + (["--quick"] if quick else [])
    env = {**os.environ, "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR", str(Path.home() / ".cache" / "workbench-numba"))}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=1800)
    if out.returncode != 0:
        raise SystemExit(f"{name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _identical(a: dict, b: dict, idx: list[int] | None = None) -> str:
    ta, tb = np.asarray(a["total_return"]), np.asarray(b["total_return"])
    na, nb = np.asarray(a["trades"]), np.asarray(b["trades"])
    if idx is not None:
        ta, na = ta[idx], na[idx]
    diff = float(np.max(np.abs(ta - tb) / np.maximum(1.0, np.abs(tb))))
    same_trades = int((na == nb).sum())
    return f"{same_trades:,}/{len(nb):,} trade counts equal; max |dTR| {diff:.1e}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="sample vectorbt's grid and backtesting.py's optimize")
    ap.add_argument("--sample", type=int, default=2000, help="vectorbt grid columns with --quick")
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        kwargs = {"sample": args.sample} if args.worker == "vectorbt_grid" else {}
        print(json.dumps(WORKERS[args.worker](args.quick, **kwargs)))
        return

    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; mode: {'quick' if args.quick else 'full'}",
          flush=True)
    res = {}
    for name in WORKERS:
        t0 = time.perf_counter()
        res[name] = _spawn(name, args.quick, args.sample)
        print(f"  {name:<15} done in {time.perf_counter() - t0:.1f} s (process)", flush=True)

    fg, vg, bp, fm, vm = (res[k] for k in WORKERS)
    vg_rate = vg["backtests"] / vg["seconds"]
    vg_seconds_full = vg["seconds"] * vg.get("extrapolate", 1.0)
    bp_rate = bp["backtests"] / bp["seconds"]
    rows = [
        ("grid 19,701 x 2,148: fused kernel", fg, fg["seconds"], _identical(fg, vg, vg["pairs_idx"])),
        ("grid: vectorbt run_combs+from_signals" + (" (sample)" if "extrapolate" in vg else ""), vg,
         vg_seconds_full, "reference"),
        ("grid: backtesting.py optimize (sample)", bp, 19_701 / bp_rate, "own fills (not compared)"),
        ("500 sym x 5,000 bars, 20/50: fused", fm, fm["seconds"], _identical(fm, vm)),
        ("500 sym x 5,000 bars: vectorbt from_signals", vm, vm["seconds"], "reference"),
    ]
    head = (f"{'path':<46} {'run':>7} {'time [s]':>9} {'cpu [s]':>8} {'all [s]':>9} {'backtests/s':>12} "
            f"{'RSS before':>11} {'peak RSS':>9}  check")
    print("\n" + head + "\n" + "-" * len(head))
    for label, r, full, check in rows:
        rate = r["backtests"] / r["seconds"]
        print(f"{label:<46} {r['backtests']:>7,} {r['seconds']:>9.3f} {r['cpu']:>8.3f} {full:>9.3f} {rate:>12,.0f} "
              f"{r['rss_before']:>7,.0f} MiB {r['rss_peak']:>5,.0f} MiB  {check}")
    print("  run = backtests actually run; cpu = CPU seconds of all threads; all = time for the whole grid "
          "(extrapolated from the sample when sampled)")
    print("\nnotes:")
    for label, r, *_ in rows:
        print(f"  {label}: {r['note']}")
    speedup = (fg["backtests"] / fg["seconds"]) / vg_rate
    many_ms = fm["seconds"] * 1e3
    print("\ntargets:")
    print(f"  fused vs vectorbt grid throughput: {speedup:,.0f}x (target >= 100x)")
    print(f"  fused full-grid peak memory: {fg['rss_peak']:,.0f} MiB (target < 1,024 MiB)")
    print(f"  500 x 5,000 crossover: {many_ms:.1f} ms kernel, best run (target < 30 ms); vectorbt "
          f"{vm['seconds'] * 1e3:,.0f} ms")
    print(f"  fused table vs kernel (500 symbols): max |dTR| "
          f"{np.max(np.abs(np.asarray(fm['table_total_return']) - np.asarray(fm['total_return']))):.1e}")


if __name__ == "__main__":
    main()
