"""How long a walk-forward takes: every family on GOOG's sample bars, grids of a few hundred sets.

Prints, per family, the grid size, the folds and the least wall time over ``--repeat`` runs of
:func:`research.backtest.walkforward.walk_forward` (12 folds of 756 training and 126 test bars on
2,148 daily bars), after one warm-up run (numba compilation, loading vectorbt), and the load
average (the machine may be shared). Target: a few seconds per family.

    .venv/bin/python benchmarks/bench_walkforward.py
    .venv/bin/python benchmarks/bench_walkforward.py --repeat 3 --family rsi_reversion
"""

from __future__ import annotations

import argparse
import math
import os
import time
import warnings

GRIDS = {
    "ma_crossover": {"fast": list(range(5, 105, 5)), "slow": list(range(20, 210, 10))},
    "rsi_reversion": {"window": list(range(5, 31, 5)), "lower": list(range(20, 41, 5)), "exit_level": [50, 55, 60],
                      "stop_loss": [0, 0.05, 0.1]},
    "bollinger_breakout": {"window": list(range(5, 61, 5)), "k": [1.0, 1.5, 2.0, 2.5, 3.0],
                           "direction": ["long", "both"], "trailing_stop": [0, 0.05, 0.1]},
    "time_series_momentum": {"lookback": list(range(10, 260, 10)), "threshold": [0, 0.01, 0.02, 0.05],
                             "take_profit": [0, 0.1, 0.2]},
    "candlestick": {"bullish": ["engulfing", "hammer", "morning_star", "engulfing+hammer+morning_star"],
                    "hold": list(range(1, 21)), "stop_loss": [0, 0.05, 0.1]},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--family", action="append", choices=sorted(GRIDS))
    args = parser.parse_args()
    from research.backtest.walkforward import walk_forward
    from research.data import load_prices

    prices = load_prices("GOOG")
    print(f"GOOG: {len(prices):,} bars; load average {os.getloadavg()[0]:.2f}")
    for family in args.family or list(GRIDS):
        grid = GRIDS[family]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wf = walk_forward(prices, family, grid, fees=0.001, slippage=0.0005)  # warm-up
            best = math.inf
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                walk_forward(prices, family, grid, fees=0.001, slippage=0.0005)
                best = min(best, time.perf_counter() - t0)
        n_sets = math.prod(len(v) for v in grid.values())
        print(f"{family:22s} {n_sets:5d} sets x {len(wf.folds):2d} folds: {best:6.2f} s "
              f"(out-of-sample Sharpe {wf.summary()['Sharpe Ratio']:.2f})")
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
