"""Ledger verification cost: the check inside every write, and ``paper check`` of a whole book.

Builds a book of ``--sessions`` sessions with ``--symbols`` fills each (10,000 fills by default:
500 sessions x 20 symbols), written one session at a time with :func:`research.paper.book.
write_session` as trading writes them (each session fills the orders the previous one decided
and decides new ones). Prints:

* the median time of one session write (identity check, the last seal checked against its
  rows, the new session rebuilt from the previous one and sealed) over the first and the last
  50 sessions: it should not grow with the book;
* the time of :func:`research.paper.audit.verify` (every session rebuilt, every seal checked)
  on the whole book.

Uses a temporary SQLite ledger (``--url`` for another database).

    nice -n 10 .venv/bin/python benchmarks/bench_ledger_check.py
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import pandas as pd


def build(url: str, sessions: int, symbols: int) -> list[float]:
    """Write the book; return the time of each session write."""
    from research.paper import book

    syms = [f"S{i:02d}" for i in range(symbols)]
    book.create_account(book.Account("bench", "ma_crossover", syms, initial_cash=1e9), url=url)
    bars = pd.bdate_range("2000-01-03", periods=sessions, tz="UTC")
    cash, held, pending, times = 1e9, dict.fromkeys(syms, 0.0), {}, []
    for i, t in enumerate(bars):
        out = book.SessionWrite(t, cash, cash, {}, {"weights": {}})
        for s in syms:
            if s in pending:
                qty, price, fees = 1.0 + (i % 3), 100.0 + (i % 7) * 0.25, 0.01
                out.updates[pending[s]] = ("filled", "signal")
                out.fills.append(book.FillRow(pending[s], s, "buy", qty, price, price, fees, t))
                cash -= qty * price + fees
                held[s] += qty
            pending[s] = f"bench:{s}:{t:%Y%m%d}"
            out.orders.append(book.OrderRow(pending[s], s, "buy", 1.0, t, bars[min(i + 1, len(bars) - 1)],
                                            "pending", "signal", 0.1))
        out.cash, out.equity, out.positions = cash, cash, dict(held)
        t0 = time.perf_counter()
        book.write_session("bench", out, url=url)
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="ledger URL (default: a temporary SQLite file)")
    parser.add_argument("--sessions", type=int, default=501)
    parser.add_argument("--symbols", type=int, default=20)
    args = parser.parse_args()
    from research.paper import audit, book

    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{tmp}/ledger.db"
        t0 = time.perf_counter()
        times = build(url, args.sessions, args.symbols)
        built = time.perf_counter() - t0
        fills = len(book.fills("bench", url=url))
        print(f"book: {args.sessions} sessions, {fills} fills, written in {built:.1f} s")
        first, last = statistics.median(times[1:51]), statistics.median(times[-50:])
        print(f"one session write (checked and sealed): median {first * 1e3:.1f} ms over sessions 2-51, "
              f"{last * 1e3:.1f} ms over the last 50")
        t0 = time.perf_counter()
        v = audit.verify("bench", url=url)
        took = time.perf_counter() - t0
        print(f"paper check (every session rebuilt, every seal checked): {took:.2f} s; problems {len(v.problems)}, "
              f"sealed {v.sealed} (head {v.head[:16]}...)")


if __name__ == "__main__":
    main()
