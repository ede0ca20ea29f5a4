"""Candlestick patterns: time per pattern against TA-Lib's C functions, and equality.

Prints, for each pattern, the time to compute it on a wide frame of synthetic symbols (numba
kernels, one pass per symbol) next to TA-Lib called once per symbol on the same arrays, and
how many bars differ (0 expected). The load average is printed with the figures (the machine
may be shared). Compilation is excluded (one warm-up call each).

    .venv/bin/python benchmarks/bench_patterns.py --symbols 100 --bars 2500
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd
import talib

from research.data.sources.synthetic import synthetic_ohlcv
from research.features.patterns import PATTERNS

TALIB = {
    "engulfing": talib.CDLENGULFING, "hammer": talib.CDLHAMMER, "shooting_star": talib.CDLSHOOTINGSTAR,
    "doji": talib.CDLDOJI, "morning_star": talib.CDLMORNINGSTAR, "evening_star": talib.CDLEVENINGSTAR,
}
FIELDS = ("open", "high", "low", "close")


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=100)
    ap.add_argument("--bars", type=int, default=2500)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    bars = {f"SYN{i:04d}": synthetic_ohlcv(f"SYN{i:04d}", bars=args.bars, seed=i) for i in range(args.symbols)}
    wide = {f: pd.DataFrame({s: b[f].to_numpy() for s, b in bars.items()}) for f in FIELDS}
    arrays = {s: [b[f].to_numpy(dtype="float64") for f in FIELDS] for s, b in bars.items()}
    print(f"{args.symbols} symbols x {args.bars} bars; load average {os.getloadavg()[0]:.2f}")
    print(f"{'pattern':<14}{'workbench ms':>14}{'TA-Lib ms':>12}{'ratio':>8}{'found':>8}{'differ':>8}")
    for name, fn in PATTERNS.items():
        ours = fn(*(wide[f] for f in FIELDS))  # warm-up (compiles on first use)
        ref = np.column_stack([TALIB[name](*a) for a in arrays.values()])
        t_ours = _best(lambda fn=fn: fn(*(wide[f] for f in FIELDS)), args.repeat)
        t_ref = _best(lambda name=name: [TALIB[name](*a) for a in arrays.values()], args.repeat)
        differ = int((ours.to_numpy() != ref).sum())
        print(f"{name:<14}{t_ours * 1e3:>14.1f}{t_ref * 1e3:>12.1f}{t_ours / t_ref:>8.1f}"
              f"{int((ref != 0).sum()):>8}{differ:>8}")


if __name__ == "__main__":
    main()
