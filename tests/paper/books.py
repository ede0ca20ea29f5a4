"""Valid books written the way trading writes them, for the verification tests and the reliability suite."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from research.paper import book

SYMBOLS = ("AAA", "BBB", "CCC")

Trade = tuple[str, float, float, float]
"""``(symbol, signed qty, price, fees)`` executed at a session."""


def write_book(url: str, name: str, sessions: Sequence[Sequence[Trade]], *, cash: float = 1e6,
               start: str = "2020-01-06", imports: dict[int, list[dict]] | None = None) -> list[pd.Timestamp]:
    """Create account ``name`` and write ``sessions`` one after the other; return their bars.

    Session ``i`` fills the orders session ``i - 1`` decided (pending, with an asked quantity
    that differs from the executed one) and cancels the others; session 0's trades are stops
    (orders created filled). ``imports[i]`` are transaction rows imported just after session ``i``.
    Sells are clamped to the position held (the account is long-only).
    """
    from research.paper.transfer import import_transactions

    book.create_account(book.Account(name, "ma_crossover", list(SYMBOLS), initial_cash=cash), url=url)
    bars = list(pd.bdate_range(start, periods=len(sessions) + 1, tz="UTC"))
    pending: dict[str, str] = {}
    for i, trades in enumerate(sessions):
        t = bars[i]
        cash = book.cash(name, url=url, until=t)
        held = {s: book.positions(name, url=url, until=t).get(s, 0.0) for s in SYMBOLS}
        out = book.SessionWrite(t, cash, cash, {}, {"weights": {}})
        for sym, qty, price, fees in trades:
            qty = max(qty, -held[sym])
            if qty == 0:
                continue
            side = "buy" if qty > 0 else "sell"
            oid = pending.pop(sym, None)
            if oid is None:
                oid = f"{name}:{sym}:{t:%Y%m%d}:stop_loss"
                out.orders.append(book.OrderRow(oid, sym, side, abs(qty), t, t, "filled", "stop_loss"))
            else:
                out.updates[oid] = ("filled", "signal")
            out.fills.append(book.FillRow(oid, sym, side, abs(qty), price, price * 0.999, fees, t))
            held[sym] += qty
            out.cash += -qty * price - fees
        for oid in pending.values():
            out.updates[oid] = ("cancelled", "no bar")
        pending = {}
        if i + 1 < len(sessions):
            for sym, qty, _price, _fees in sessions[i + 1]:
                pending[sym] = f"{name}:{sym}:{t:%Y%m%d}"
                out.orders.append(book.OrderRow(pending[sym], sym, "buy" if qty >= 0 else "sell", abs(qty) * 1.1 + 1,
                                                t, bars[i + 1], "pending", "signal", 0.2))
        out.equity, out.positions = out.cash, dict(held)
        book.write_session(name, out, url=url)
        for rows in (imports or {}).get(i, []):
            import_transactions(name, pd.DataFrame([rows]).astype(str), url=url)
    return bars[:len(sessions)]


def demo_sessions(n: int = 12) -> list[list[Trade]]:
    """A deterministic book: buys and sells of three symbols over ``n`` sessions."""
    out = []
    for i in range(n):
        out.append([(SYMBOLS[i % 3], 10.0 + i, 100.0 + i * 0.37, 0.25),
                    (SYMBOLS[(i + 1) % 3], -4.0 if i % 2 else 6.0, 50.5 - i * 0.11, 0.1)])
    return out
