"""Sweep throughput and memory: the fused kernels against vectorbt's grid path and backtesting.py.

One run, side by side, on the same data and costs (fees 0.1%, slippage 0.05%, next-open fills):

0. every strategy family (RSI long-only and long-short, Bollinger breakout, time-series
   momentum, crossover x stop-loss) on GOOG with grids of 5,000 to 12,544 sets: the public
   ``sweep()`` (signal kernel + shared simulation) against vectorbt ``Portfolio.from_signals``
   with the same entry/exit rules, interleaved family by family, each path in its own process
   (peak memory; numba's cache is primed first, so no measured process compiles); the fused
   per-set cost against the crossover kernel's (the two grids alternate in one process); and a
   slice of each grid on 100 synthetic symbols x 2,500 bars. Targets, each printed PASS/MISS
   per family with the load average beside every figure: >= 100x vectorbt's backtests/s,
   within 2x of the crossover kernel's per-set cost, peak memory <= 1/5 of vectorbt's;

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
    .venv/bin/python benchmarks/bench_sweep.py --part families --quick  # the families only, vectorbt sampled
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


# --------------------------------------------------------------------------- every family

FAMILY_GRIDS = {  # >= 5,000 sets each on GOOG; the side-by-side sizes
    "rsi_long": ("rsi_reversion", {"window": list(range(2, 51)), "lower": list(range(10, 41, 2)),
                                   "exit_level": list(range(50, 65, 2))}),
    "rsi_long_short": ("rsi_reversion", {"window": list(range(2, 51)), "lower": list(range(10, 41, 2)),
                                         "exit_level": list(range(50, 65, 2)), "upper": [70, 80],
                                         "direction": ["both"]}),
    "bollinger": ("bollinger_breakout", {"window": list(range(5, 89)), "k": [round(0.5 + 0.05 * i, 2) for i in range(84)]}),
    "momentum": ("time_series_momentum", {"lookback": list(range(1, 251)), "threshold": [round(0.01 * i, 2) for i in range(21)],
                                          "direction": ["long", "both"]}),
    "crossover_stops": ("ma_crossover", {"fast": list(range(2, 41, 2)), "slow": list(range(20, 201, 10)),
                                         "stop_loss": [round(0.01 * i, 2) for i in range(1, 21)]}),
    "candlestick": ("candlestick", {"bullish": ["engulfing", "hammer", "morning_star", "doji",
                                                "engulfing+hammer+morning_star"],
                                    "bearish": ["engulfing", "shooting_star", "evening_star",
                                                "engulfing+shooting_star+evening_star"],
                                    "hold": list(range(1, 26)), "take_profit": [0.0, 0.02, 0.04, 0.06, 0.08, 0.1,
                                                                                 0.12, 0.15, 0.2, 0.25, 0.3, 0.4]}),
}
NO_VECTORBT = {"candlestick"}  # a hold-bars exit has no stateless entry/exit form for from_signals


def _family_sets(key: str):
    """The grid's valid sets as parameter rows (the fused sweep's table order)."""
    from research.backtest.families import expand_grid, fused_family
    from research.strategies.catalog import get_strategy

    family, grid = FAMILY_GRIDS[key]
    return expand_grid(fused_family(family), grid, defaults=get_strategy(family).defaults)


def _load() -> float:
    """The 1-minute load average now (printed beside each figure it was measured under)."""
    return round(os.getloadavg()[0], 1)


def worker_prime(quick: bool) -> dict:
    """Compile (or load) every fused kernel once, so no measured process pays numba's compiler in its peak."""
    from research.backtest.sweep import sweep, sweep_ma_crossover

    df = _goog()
    kw = {"fees": FEES, "slippage": SLIP, "init_cash": CASH}
    for family, grid in FAMILY_GRIDS.values():
        sweep(df, family, {k: v[:2] for k, v in grid.items()}, **kw)
    sweep_ma_crossover(df, fast=[5, 6], slow=[20], **kw)
    return {"rss_peak": _rss_mib()}


def worker_family_fused(quick: bool, key: str) -> dict:
    """The family's public sweep; its peak memory before the crossover kernel is loaded; then the family and
    the crossover grid alternately (the per-set cost ratio, both under the same load)."""
    from research.backtest.sweep import sweep, sweep_ma_crossover

    family, grid = FAMILY_GRIDS[key]
    df = _goog()
    kw = {"fees": FEES, "slippage": SLIP, "init_cash": CASH}
    sweep(df, family, {k: v[:2] for k, v in grid.items()}, **kw)  # warm-up / cache load
    before = _current_rss_mib()
    load = _load()
    runs, cross = [], []
    with _Timer() as tm:
        res = sweep(df, family, grid, **kw)
    runs.append((tm.wall, tm.cpu))
    peak = _rss_mib()  # the family sweep alone
    sweep_ma_crossover(df, fast=[5, 6], slow=[20], **kw)
    for _ in range(3 if quick else 7):
        with _Timer() as tm:
            res = sweep(df, family, grid, **kw)
        runs.append((tm.wall, tm.cpu))
        with _Timer() as tc:
            crossed = sweep_ma_crossover(df, **kw)
        cross.append(tc.wall / len(crossed.table))
    t = res.table
    best = min(runs)
    return {"backtests": len(t), "seconds": best[0], "cpu": min(r[1] for r in runs), "rss_before": before,
            "rss_peak": peak,
            "total_return": t["total_return"].tolist(), "trades": t["trades"].tolist(), "load": load,
            "crossover_per_set": min(cross), "load_end": _load(),
            "note": f"public sweep(), best of {len(runs)} (median {np.median([r[0] for r in runs]):.3f} s), "
                    f"alternating with the crossover grid"}


def _vbt_signals(key: str, sets, close):
    """Entry/exit matrices of every set with the strategies' rules, from the same indicator tables."""
    import pandas as pd

    from research.backtest.families import family_tables, fused_family

    family, _ = FAMILY_GRIDS[key]
    fam = fused_family(family)
    table = family_tables(fam, {"close": close.to_frame()}, sets.windows)[:, 0, :].T  # bars x rows
    c = close.to_numpy()[:, None]
    a, lv = table[:, sets.rows[:, 0]], sets.levels
    with np.errstate(invalid="ignore", divide="ignore"):
        if family == "rsi_reversion":
            out = (a < lv[:, 0], a > lv[:, 1], a > lv[:, 2], a < lv[:, 1])
        elif family == "bollinger_breakout":
            sd, k = table[:, sets.rows[:, 1]], lv[:, 0]
            upper, lower = a + k * sd, a - k * sd
            pct = np.where(upper - lower > 0, (c - lower) / (upper - lower), np.nan)
            out = (pct > 1.0, pct < 0.5, pct < 0.0, pct > 0.5)
        elif family == "time_series_momentum":
            out = (a > lv[:, 0], ~(a > lv[:, 0]), a < -lv[:, 0], ~(a < -lv[:, 0]))
        else:
            f, s = a, table[:, sets.rows[:, 1]]
            above, below = f > s, f < s
            prev_above = np.vstack([np.zeros((1, f.shape[1]), bool), above[:-1]])
            prev_below = np.vstack([np.zeros((1, f.shape[1]), bool), below[:-1]])
            out = (above & prev_below, below & prev_above, np.zeros_like(above), np.zeros_like(above))
    short = sets.sides == 0
    frames = []
    for i, m in enumerate(out):
        m = m if i < 2 else m & short[None, :]
        frames.append(pd.DataFrame(np.vstack([np.zeros((1, m.shape[1]), bool), m[:-1]]), index=close.index))
    return frames


def worker_family_vectorbt(quick: bool, key: str, sample: int) -> dict:
    import pandas as pd
    import vectorbt as vbt

    df = _goog()
    sets = _family_sets(key)
    idx = np.arange(len(sets))
    if quick:
        idx = np.sort(np.random.default_rng(0).choice(len(sets), min(sample, len(sets)), replace=False))
    sub = sets.take(idx, 2 if FAMILY_GRIDS[key][0] == "bollinger_breakout" else 1)
    close, open_ = df["close"], df["open"]

    def run(s):
        entries, exits, short_entries, short_exits = _vbt_signals(key, s, close)
        n = entries.shape[1]
        wide = lambda x: pd.DataFrame(np.repeat(x.to_numpy()[:, None], n, 1), index=close.index)  # noqa: E731
        kw = {}
        if (s.sides == 0).any():
            kw.update(short_entries=short_entries, short_exits=short_exits)
        if (s.risk[:, 0] > 0).any():
            kw.update(sl_stop=s.risk[:, 0][None, :], open=wide(df["open"]), high=wide(df["high"]), low=wide(df["low"]))
        pf = vbt.Portfolio.from_signals(wide(close), entries, exits, price=wide(open_), fees=FEES, slippage=SLIP,
                                        init_cash=CASH, **kw)
        return pf.total_return().to_numpy(), pf.trades.count().to_numpy()

    run(sub.take(np.arange(min(4, len(sub))), 2 if FAMILY_GRIDS[key][0] == "bollinger_breakout" else 1))  # compile
    before = _current_rss_mib()
    load = _load()
    with _Timer() as tm:
        tr, nt = run(sub)
    note = "full grid" if not quick else f"sample of {len(idx):,} of {len(sets):,} sets (memory of the sample)"
    return {"backtests": len(idx), "seconds": tm.wall, "cpu": tm.cpu, "rss_before": before, "rss_peak": _rss_mib(),
            "idx": idx.tolist(), "total_return": tr.tolist(), "trades": nt.tolist(), "note": note,
            "extrapolate": len(sets) / len(idx), "sampled": bool(quick and len(idx) < len(sets)), "load": load}


def worker_family_many(quick: bool, key: str) -> dict:
    """A 50-set slice of the family's grid on 100 synthetic symbols x 2,500 bars."""
    import pandas as pd

    from research.backtest.sweep import sweep
    from research.data.sources.synthetic import synthetic_ohlcv

    family, grid = FAMILY_GRIDS[key]
    frames = {f"SYN{i:03d}": synthetic_ohlcv(f"SYN{i:03d}", bars=2500, seed=i) for i in range(100)}
    fields = {f: pd.DataFrame({k: v[f] for k, v in frames.items()}) for f in ("open", "high", "low", "close")}
    small = dict(grid)
    first = next(iter(small))
    small[first] = small[first][::max(1, len(small[first]) // 10)][:10]
    second = list(small)[1]
    small[second] = small[second][:5]
    for k in list(small)[2:]:
        small[k] = small[k][:1]
    sweep({k: v.iloc[:, :2] for k, v in fields.items()}, family, small, fees=FEES, slippage=SLIP)  # warm-up
    before = _current_rss_mib()
    load = _load()
    runs = []
    for _ in range(1 if quick else 3):
        with _Timer() as tm:
            res = sweep(fields, family, small, fees=FEES, slippage=SLIP, init_cash=CASH)
        runs.append((tm.wall, tm.cpu))
    best = min(runs)
    return {"backtests": len(res.table), "seconds": best[0], "cpu": best[1], "rss_before": before,
            "rss_peak": _rss_mib(), "load": load,
            "note": f"{len(res.table) // 100} sets x 100 symbols, best of {len(runs)}"}


WORKERS = {
    "fused_grid": worker_fused_grid, "vectorbt_grid": worker_vectorbt_grid, "backtesting_py": worker_backtesting_py,
    "fused_many": worker_fused_many, "vectorbt_many": worker_vectorbt_many,
}
FAMILY_WORKERS = {"family_fused": worker_family_fused, "family_vectorbt": worker_family_vectorbt,
                  "family_many": worker_family_many, "prime": worker_prime}


# --------------------------------------------------------------------------- driver

def _spawn(name: str, quick: bool, sample: int, key: str | None = None) -> dict:
    cmd = [sys.executable, __file__, "--worker", name, "--sample", str(sample)] + (["--quick"] if quick else [])
    cmd += ["--family", key] if key else []
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
    ap.add_argument("--part", choices=["all", "crossover", "families"], default="all",
                    help="the crossover grid (against vectorbt and backtesting.py), every family, or both")
    ap.add_argument("--worker", choices=sorted({**WORKERS, **FAMILY_WORKERS}), help=argparse.SUPPRESS)
    ap.add_argument("--family", choices=sorted(FAMILY_GRIDS), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        kwargs = {"sample": args.sample} if args.worker in ("vectorbt_grid", "family_vectorbt") else {}
        if args.family:
            kwargs["key"] = args.family
        print(json.dumps({**WORKERS, **FAMILY_WORKERS}[args.worker](args.quick, **kwargs)))
        return
    if args.part in ("all", "families"):
        _families(args.quick, args.sample)
    if args.part in ("all", "crossover"):
        _crossover(args.quick, args.sample)


SPEED_X, COST_X, MEMORY_X = 100.0, 2.0, 5.0  # the targets: >= 100x vectorbt, <= 2x crossover cost, <= 1/5 memory


def _verdict(ok: bool, *, lower_bound: bool = False) -> str:
    """PASS/MISS; a MISS measured against vectorbt's sample (a lower bound of its full grid) is inconclusive."""
    return "PASS" if ok else ("MISS?" if lower_bound else "MISS")


def _family_rows(quick: bool, sample: int) -> list[tuple]:
    """Per family, interleaved: fused, vectorbt, the crossover kernel, then 100 symbols x 2,500 bars."""
    _spawn("prime", quick, sample)
    rows = []
    for key in FAMILY_GRIDS:
        fu = _spawn("family_fused", quick, sample, key)
        vb = None if key in NO_VECTORBT else _spawn("family_vectorbt", quick, sample, key)
        many = _spawn("family_many", quick, sample, key)
        cx = {"per_set": fu["crossover_per_set"], "load": fu["load_end"]}
        rows.append((key, fu, vb, cx, many))
        print(f"  {key} done (load {os.getloadavg()[0]:.1f})", flush=True)
    return rows


def _family_line(key: str, fu: dict, vb: dict | None, cx: dict, many: dict) -> tuple[str, list[tuple[str, str]]]:
    """One table line and its verdicts ``(target, PASS/MISS)``.

    Speed-ups are given per wall second and per CPU second (all threads): on a shared machine the
    wall figure depends on how many cores each process got; the CPU figure does not (it counts the
    fused path's second thread against it).
    """
    f_rate = fu["backtests"] / fu["seconds"]
    cost = fu["seconds"] / fu["backtests"] / cx["per_set"]
    many_rate = many["backtests"] / many["seconds"]
    verdicts = [("cost", _verdict(cost <= COST_X))]
    if vb is None:
        mem = "n/a"
        v_cols = f"{'n/a':>14} {'':>6} {'n/a':>9} {'':>6} {'n/a':>8} {'':>6} {'n/a':>10} {'':>9}"
    else:
        v_rate = vb["backtests"] / vb["seconds"]
        ratio, mratio = f_rate / v_rate, vb["rss_peak"] / fu["rss_peak"]
        cpu_ratio = (fu["backtests"] / fu["cpu"]) / (vb["backtests"] / vb["cpu"])
        speed = _verdict(ratio >= SPEED_X, lower_bound=vb["sampled"])
        cpu_speed = _verdict(cpu_ratio >= SPEED_X, lower_bound=vb["sampled"])
        mem = _verdict(mratio >= MEMORY_X, lower_bound=vb["sampled"])
        verdicts += [("speed", speed), ("cpu", cpu_speed), ("memory", mem)]
        v_cols = (f"{v_rate:>14,.0f} {vb['load']:>6.1f} {ratio:>8,.0f}x {speed:>6} {cpu_ratio:>7,.0f}x {cpu_speed:>6} "
                  f"{vb['rss_peak']:>6,.0f} MiB {mratio:>8.1f}x")
    line = (f"{key:<16} {fu['backtests']:>7,} {f_rate:>11,.0f} {fu['load']:>6.1f} {v_cols} {mem:>6} "
            f"{cost:>8.2f}x {_verdict(cost <= COST_X):>5} {cx['load']:>6.1f} {fu['rss_peak']:>7,.0f} MiB "
            f"{many_rate:>12,.0f} {many['load']:>6.1f}")
    return line, verdicts


def _families(quick: bool, sample: int) -> None:
    """Every family on GOOG against vectorbt with the same rules (interleaved), and on 100 x 2,500."""
    print(f"load average {os.getloadavg()[0]:.1f} / {os.getloadavg()[1]:.1f} (1 / 5 min) on {os.cpu_count()} cores; "
          f"families, mode: {'quick (vectorbt sampled)' if quick else 'full'}", flush=True)
    rows = _family_rows(quick, sample)
    head = (f"{'family (GOOG)':<16} {'sets':>7} {'fused bt/s':>11} {'load':>6} {'vectorbt bt/s':>14} {'load':>6} "
            f"{'speed-up':>9} {'>=100x':>6} {'per CPU':>8} {'>=100x':>6} {'vbt peak':>10} {'vbt/fused':>9} {'<=1/5':>6} {'x cross':>9} "
            f"{'<=2x':>5} {'load':>6} {'fused peak':>11} {'100x2,500 bt/s':>12} {'load':>6}")
    print("\n" + head + "\n" + "-" * len(head))
    tally: dict[str, list[tuple[str, str]]] = {"speed": [], "cpu": [], "cost": [], "memory": []}
    for key, fu, vb, cx, many in rows:
        line, verdicts = _family_line(key, fu, vb, cx, many)
        print(line)
        for target, v in verdicts:
            tally[target].append((key, v))
    print("  fused = the public sweep() from prices to table (best of several runs); vectorbt = Portfolio.from_signals "
          "with the same entry and exit rules (signals from the same indicator tables), one run; x cross = fused "
          "seconds per set / the crossover kernel's (19,701 pairs; the two grids alternate in one process, best of "
          "each); peak = "
          "ru_maxrss of each path's own process, imports included; load = 1-minute load average when each figure "
          "was measured" + ("; quick: vectorbt ran a sample, so its speed and memory are lower bounds of the full "
                            "grid's (a PASS holds, a MISS? is inconclusive)" if quick else ""))
    print("  trade counts differ where conventions do: short sizing with costs, reversals, and vectorbt's own "
          "stop rules (stops checked against the entry bar's close, exits at the stop level)")
    print("notes:")
    for key, fu, vb, _cx, many in rows:
        check = "vectorbt not run"
        if vb is not None:
            same = np.asarray(fu["trades"])[vb["idx"]] == np.asarray(vb["trades"])
            check = f"{int(same.sum()):,}/{len(same):,} trade counts equal vectorbt's; vectorbt {vb['note']}"
        print(f"  {key}: fused {fu['note']}, growth {fu['rss_peak'] - fu['rss_before']:,.0f} MiB; {check}; "
              f"100 symbols: {many['note']}, peak {many['rss_peak']:,.0f} MiB")
    print("targets:")
    names = {"speed": f">= {SPEED_X:.0f}x vectorbt's backtests/s", "cpu": f">= {SPEED_X:.0f}x vectorbt's "
             "backtests per CPU second", "cost": f"<= {COST_X:.0f}x the crossover "
             "kernel's per-set cost", "memory": f"peak memory <= 1/{MEMORY_X:.0f} of vectorbt's"}
    for target, verdicts in tally.items():
        missed = [f"{k} {v}" for k, v in verdicts if v != "PASS"]
        print(f"  {names[target]}: {'PASS' if not missed else 'MISS'} "
              f"({len(verdicts) - len(missed)}/{len(verdicts)} families{'; ' + ', '.join(missed) if missed else ''})")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


def _crossover(quick: bool, sample: int) -> None:
    """The crossover grid against vectorbt and backtesting.py; one set on 500 x 5,000."""
    args = argparse.Namespace(quick=quick, sample=sample)

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
