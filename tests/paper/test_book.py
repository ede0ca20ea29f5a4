"""The book: accounts, sessions, invariants and idempotence, on SQLite and PostgreSQL."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from research.paper import book
from research.paper.db import LedgerError, connect

T0 = pd.Timestamp("2018-03-01", tz="UTC")
T1 = pd.Timestamp("2018-03-02", tz="UTC")


def _account(name, **kw):
    return book.Account(name, "ma_crossover", ["SPX", "IXIC"], initial_cash=10_000.0, **kw)


def _session(name, cash=10_000.0 - 100 * 50.0 - 5.0, pos=100.0):
    order = book.OrderRow(f"{name}:SPX:x", "SPX", "buy", 100.0, T0, T1, "filled", "signal", 0.5)
    fill = book.FillRow(order.order_id, "SPX", "buy", 100.0, 50.0, 49.9, 5.0, T1)
    pending = book.OrderRow(f"{name}:IXIC:y", "IXIC", "buy", 10.0, T1, None, "pending", "signal", 0.5)
    return book.SessionWrite(T1, cash, cash + pos * 51.0, {"SPX": pos}, {"weights": {"IXIC": 0.5}},
                             orders=[order, pending], fills=[fill])


def _counts(url, name):
    with connect(url).connect() as conn:
        return tuple(conn.execute(sa.select(sa.func.count()).select_from(t).where(t.c.account == name)).scalar()
                     for t in (book.orders_t, book.fills_t, book.sessions_t))


def test_session_round_trip_and_idempotence(ledger_url, name):
    book.create_account(_account(name), url=ledger_url)
    assert book.write_session(name, _session(name), url=ledger_url) is True
    assert book.positions(name, url=ledger_url) == {"SPX": 100.0}
    assert book.cash(name, url=ledger_url) == pytest.approx(4_995.0)
    assert book.check(name, url=ledger_url) == []
    before = _counts(ledger_url, name)
    assert book.write_session(name, _session(name), url=ledger_url) is False
    assert _counts(ledger_url, name) == before == (2, 1, 1)
    assert list(book.orders(name, url=ledger_url, status="pending")["symbol"]) == ["IXIC"]
    assert book.last_session(name, url=ledger_url) == T1
    assert name in [a.name for a in book.list_accounts(url=ledger_url)]


def test_a_broken_invariant_writes_nothing(ledger_url, name):
    book.create_account(_account(name), url=ledger_url)
    with pytest.raises(LedgerError, match="position SPX .* fills sum to 100"):
        book.write_session(name, _session(name, pos=90.0), url=ledger_url)
    with pytest.raises(LedgerError, match="cash .* net purchases"):
        book.write_session(name, _session(name, cash=6_000.0), url=ledger_url)
    assert _counts(ledger_url, name) == (0, 0, 0)


def test_one_fill_per_order_and_no_fill_without_order(ledger_url, name):
    book.create_account(_account(name), url=ledger_url)
    book.write_session(name, _session(name), url=ledger_url)
    extra = book.FillRow(f"{name}:SPX:x", "SPX", "buy", 1.0, 50.0, 50.0, 0.0, T1)
    with pytest.raises(sa.exc.IntegrityError), connect(ledger_url).begin() as conn:
        book.insert_fills(conn, name, [book.FillRow(**{**extra.__dict__, "order_id": f"{name}:SPX:x"})])
    with pytest.raises(sa.exc.IntegrityError), connect(ledger_url).begin() as conn:
        book.insert_fills(conn, name, [book.FillRow(**{**extra.__dict__, "order_id": "nope"})])
    assert book.check(name, url=ledger_url) == []


def test_accounts_are_validated(sqlite_url, name):
    book.create_account(_account(name), url=sqlite_url)
    with pytest.raises(LedgerError, match="already exists"):
        book.create_account(_account(name), url=sqlite_url)
    with pytest.raises(LedgerError, match="no paper account 'missing'"):
        book.get_account("missing", url=sqlite_url)
    with pytest.raises(LedgerError, match="initial cash must be positive"):
        book.create_account(book.Account("x2", "ma_crossover", ["SPX"], initial_cash=0), url=sqlite_url)
    book.delete_account(name, url=sqlite_url)
    assert book.list_accounts(url=sqlite_url) == []
