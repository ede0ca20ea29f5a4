"""Paper trading speed: a year's replay of three strategies, and bulk writes to the ledger.

Prints:

* the replay of 252 sessions (2018-01-02 onwards, then into 2017 to make 252) of the four
  sample symbols for each of three strategies, with the agreement of each account with its
  backtest (returns correlation, tracking error, largest equity difference);
* the time to write 10,000 fills (one transaction, invariants checked) into a fresh account.

Targets: the three replays together under 60 s; 10,000 fills under 2 s. Uses a temporary
SQLite ledger (``--url`` for another database, e.g. a PostgreSQL URL).

    nice -n 10 .venv/bin/python benchmarks/bench_paper.py
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings

import numpy as np
import pandas as pd

SYMBOLS = ["SPX", "IXIC", "GOOG", "MSFT"]
STRATEGIES = ["ma_crossover", "rsi_reversion", "bollinger_breakout"]


def bench_replay(url: str) -> float:
    from research.paper import book
    from research.paper.monitor import reconcile
    from research.paper.replay import replay
    from research.paper.trading import load_fields

    total = total_cpu = 0.0
    for strategy in STRATEGIES:
        account = book.create_account(book.Account(f"bench-{strategy}", strategy, SYMBOLS, fees=0.001,
                                                   slippage=0.0005, whole_shares=True), url=url)
        fields = load_fields(account)
        bars = fields["close"].index
        start, end = bars[-252], bars[-1]
        t0, c0 = time.perf_counter(), time.process_time()
        out = replay(account.name, start, end, fields=fields, url=url, progress=False)
        took, cpu = time.perf_counter() - t0, time.process_time() - c0
        total_cpu += cpu
        total += took
        s = reconcile(account.name, fields=fields, url=url).summary
        print(f"replay {strategy:<20} {out['sessions']} sessions in {took:6.2f} s ({cpu:5.2f} CPU s) "
              f"({out['sessions'] / took:5.1f} sessions/s); vs backtest: correlation {s['returns_correlation']:.9f}, "
              f"tracking error {s['tracking_error']:.1e}, max equity difference {s['max_equity_difference']:.1e}")
    print(f"replay total: {total:.1f} s ({total_cpu:.1f} CPU s) for {len(STRATEGIES)} strategies x {len(SYMBOLS)} symbols x 252 sessions "
          f"(target < 60 s)")
    return total


def bench_fills(url: str, n: int = 10_000) -> float:
    from research.paper import book
    from research.paper.transfer import import_transactions

    book.create_account(book.Account("bench-fills", "ma_crossover", ["SPX"], initial_cash=1e12), url=url)
    ts = pd.date_range("2019-01-01", periods=n, freq="min", tz="UTC")
    side = np.where(np.arange(n) % 2 == 0, "buy", "sell")
    raw = pd.DataFrame({"id": [f"f{i}" for i in range(n)], "timestamp": ts.astype(str), "type": side,
                        "symbol": "SPX", "qty": "10", "price": "2500.5", "fees": "1.25", "amount": ""})
    t0, c0 = time.perf_counter(), time.process_time()
    out = import_transactions("bench-fills", raw, url=url)
    took, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert out["fills"] == n and book.check("bench-fills", url=url) == []
    print(f"ledger: {n:,} fills written in {took:.2f} s ({cpu:.2f} CPU s; {n / took:,.0f} fills/s, one transaction, invariants "
          f"checked; target < 2 s)")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="ledger URL (default: a temporary SQLite file)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    url = args.url or f"sqlite:///{tempfile.mkdtemp(prefix='bench-paper-')}/ledger.db"
    from research.backtest.plan import execute_bar

    execute_bar(1.0, np.zeros(1), np.full(1, np.nan), np.ones(1), np.ones(1))  # compile outside the timings
    bench_replay(url)
    bench_fills(url)


if __name__ == "__main__":
    main()
