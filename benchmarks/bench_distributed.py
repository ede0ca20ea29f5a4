"""Sweeps on Dask: strong scaling against the in-process path, per-task overhead, worker memory.

On the same synthetic data (``--symbols`` symbols x ``--bars`` daily bars, seeded):

1. the fused moving-average crossover grid ``2 <= fast < slow <= 200`` (19,701 pairs per
   symbol; 100 symbols is about 2 million backtests);
2. an RSI grid through the engine (one vectorbt backtest per parameter set and symbol block);

each in process (numba on every core for the fused kernel; one engine call at a time), then on
a LocalCluster of 1 and of 2 single-threaded workers (warmed up first: imports and numba
compilation are not timed). Every cluster table is checked equal to the in-process one, bit
for bit. Then the cost of one trivial task and the resident memory of each worker.

The machine's load average is printed before and after: on a shared machine the figures move.

    .venv/bin/python benchmarks/bench_distributed.py             # 100 symbols; a few minutes
    .venv/bin/python benchmarks/bench_distributed.py --quick     # 20 symbols, smaller RSI grid
"""

from __future__ import annotations

import argparse
import os
import time

import pandas as pd


def _prices(symbols: int, bars: int) -> dict[str, pd.DataFrame]:
    from research.data.sources.synthetic import synthetic_ohlcv

    frames = {f"S{i:03d}": synthetic_ohlcv(f"S{i:03d}", bars=bars, seed=i) for i in range(symbols)}
    return {f: pd.DataFrame({s: d[f] for s, d in frames.items()}) for f in ("open", "high", "low", "close", "volume")}


def _timed(fn, repeat: int = 1) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (cores: {os.cpu_count()})"


def _overhead(client, n: int = 400) -> float:
    """Milliseconds per trivial task, submitted and gathered in one batch."""
    client.gather(client.map(abs, range(n), pure=False))  # warm the path
    t0 = time.perf_counter()
    futures = client.map(abs, range(n, 2 * n), pure=False)
    client.gather(futures)
    return (time.perf_counter() - t0) / n * 1e3


def _rss(client) -> list[float]:
    def rss() -> float:
        import psutil

        return psutil.Process().memory_info().rss / 2**20

    return sorted(client.run(rss).values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=100)
    ap.add_argument("--bars", type=int, default=2148)
    ap.add_argument("--quick", action="store_true", help="20 symbols and a smaller RSI grid")
    args = ap.parse_args()
    symbols = 20 if args.quick else args.symbols
    rsi = {"window": [7, 14, 21] if args.quick else [7, 14, 21, 28],
           "lower": [20.0, 25.0, 30.0, 35.0]}

    from research.backtest.sweep import sweep, sweep_ma_crossover
    from research.compute import get_client

    print(f"load average before: {_load()}")
    prices = _prices(symbols, args.bars)
    n_rsi = len(rsi["window"]) * len(rsi["lower"])
    jobs = {
        f"fused crossover, {symbols} x 19,701 pairs": lambda c: sweep_ma_crossover(prices, client=c, cache=False,
                                                                                 progress=False),
        f"RSI engine grid, {symbols} x {n_rsi} sets": lambda c: sweep(prices, "rsi_reversion", rsi, client=c,
                                                                      cache=False, progress=False),
    }
    warm = _prices(4, 400)
    sweep_ma_crossover(warm, fast=[5, 10], slow=[20, 30])
    sweep(warm, "rsi_reversion", {"window": [14]}, progress=False)
    rows, tables = [], {}
    for name, job in jobs.items():
        seconds, res = _timed(lambda job=job: job(None))
        tables[name] = res.table
        rows.append({"sweep": name, "where": "in process", "seconds": seconds, "tasks": 1})
    overheads, memory = {}, {}
    for workers in (1, 2):
        with get_client("local", n_workers=workers, announce=False, dashboard_address=None) as client:
            client.run(lambda: sweep_ma_crossover(warm, fast=[5, 10], slow=[20, 30], cache=False) and None)
            client.run(lambda: sweep(warm, "rsi_reversion", {"window": [14]}, progress=False) and None)
            for name, job in jobs.items():
                seconds, res = _timed(lambda job=job, client=client: job(client))
                pd.testing.assert_frame_equal(tables[name], res.table, check_exact=True)
                rows.append({"sweep": name, "where": f"{workers} worker(s)", "seconds": seconds,
                             "tasks": res.params["chunks"]["tasks"]})
            overheads[workers] = _overhead(client)
            memory[workers] = _rss(client)
    table = pd.DataFrame(rows)
    base = table[table["where"] == "in process"].set_index("sweep")["seconds"]
    one = table[table["where"] == "1 worker(s)"].set_index("sweep")["seconds"]
    table["vs in process"] = [base[s] / t for s, t in zip(table["sweep"], table["seconds"], strict=True)]
    table["vs 1 worker"] = [one[s] / t for s, t in zip(table["sweep"], table["seconds"], strict=True)]
    with pd.option_context("display.float_format", "{:,.2f}".format, "display.width", 160):
        print(table.to_string(index=False))
    for workers in (1, 2):
        print(f"{workers} worker(s): {overheads[workers]:.2f} ms per trivial task; resident memory per worker "
              + ", ".join(f"{m:,.0f} MiB" for m in memory[workers]))
    print("every cluster table equals the in-process table bit for bit")
    print(f"load average after: {_load()}")


if __name__ == "__main__":
    main()
