"""Verification of the whole book: every session rebuilt, every seal checked, edits named, on SQLite and PostgreSQL."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from research.paper import audit, book, seal
from research.paper.db import LedgerError, connect
from tests.paper.books import demo_sessions, write_book


def _sql(url, text, **params):
    with connect(url).begin() as conn:
        return conn.execute(sa.text(text), params)


def _edit_session(url, name, as_of, **values):
    with connect(url).begin() as conn:
        n = conn.execute(book.sessions_t.update().where(book.sessions_t.c.account == name,
                                                        book.sessions_t.c.as_of == as_of).values(**values)).rowcount
    assert n == 1


@pytest.fixture
def demo(ledger_url, name):
    bars = write_book(ledger_url, name, demo_sessions())
    assert book.check(name, url=ledger_url) == []
    return ledger_url, name, bars


def test_a_valid_book_verifies_and_is_sealed(demo):
    url, name, bars = demo
    v = audit.verify(name, url=url)
    assert v.problems == [] and v.notes == []
    assert (v.sessions, v.sealed) == (len(bars), len(bars) + 1) and len(v.head) == 64


def test_a_middle_session_cash_edit_is_found_and_named(demo):
    url, name, bars = demo
    mid = bars[5].tz_localize(None).to_pydatetime()
    _edit_session(url, name, mid, cash=book.sessions_t.c.cash + 0.5)
    problems = book.check(name, url=url)
    when = f"{mid:%Y-%m-%d %H:%M}"
    assert any(p.startswith(f"session {when}: cash is") for p in problems)
    assert f"session {when}: paper_sessions row {mid.isoformat()}: cash changed since it was sealed" in problems
    assert all(when in p for p in problems)  # only that session is named


def test_a_position_edit_is_found(demo):
    url, name, bars = demo
    mid = bars[4].tz_localize(None).to_pydatetime()
    with connect(url).begin() as conn:
        pos = conn.execute(sa.select(book.sessions_t.c.positions).where(
            book.sessions_t.c.account == name, book.sessions_t.c.as_of == mid)).scalar()
        conn.execute(book.sessions_t.update().where(book.sessions_t.c.account == name, book.sessions_t.c.as_of == mid)
                     .values(positions={**pos, "AAA": pos["AAA"] + 1}))
    problems = book.check(name, url=url)
    assert any("position AAA is" in p and "fills sum to" in p for p in problems)
    assert any("paper_sessions row" in p and "positions changed" in p for p in problems)


def test_a_fill_side_flip_is_found(demo):
    url, name, _ = demo
    oid = _sql(url, "SELECT order_id FROM paper_fills WHERE account = :a AND side = 'sell' ORDER BY timestamp",
               a=name).first()[0]
    _sql(url, "UPDATE paper_orders SET side = 'buy' WHERE order_id = :o", o=oid)
    problems = book.check(name, url=url)
    assert f"order {oid} is a buy of {oid.split(':')[1]} but its fill is a sell of {oid.split(':')[1]}" in problems
    assert any(f"paper_orders:state row {oid}: side changed" in p for p in problems)


@pytest.mark.parametrize("edit, found", [
    ("UPDATE paper_fills SET price = price * 1.01 WHERE fill_id = (SELECT MIN(fill_id) FROM paper_fills "
     "WHERE account = :a)", "price changed"),
    ("UPDATE paper_fills SET fees = fees + 1 WHERE fill_id = (SELECT MAX(fill_id) FROM paper_fills WHERE account = :a)",
     "fees changed"),
    ("UPDATE paper_accounts SET initial_cash = initial_cash + 1 WHERE name = :a", "paper_accounts row"),
    ("UPDATE paper_seals SET digest = 'x' WHERE account = :a AND seq = 3", "its seal was edited"),
    ("DELETE FROM paper_seals WHERE account = :a AND seq = 6", "no seal"),
    ("UPDATE paper_orders SET reason = 'manual' WHERE order_id = (SELECT MIN(order_id) FROM paper_orders "
     "WHERE account = :a AND status = 'cancelled')", "reason changed"),
])
def test_other_edits_are_found(demo, edit, found):
    url, name, _ = demo
    _sql(url, edit, a=name)
    problems = book.check(name, url=url)
    assert any(found in p for p in problems), problems


def test_a_removed_fill_is_found(demo):
    url, name, _ = demo
    fid, oid = _sql(url, "SELECT fill_id, order_id FROM paper_fills WHERE account = :a ORDER BY timestamp DESC",
                    a=name).first()
    _sql(url, "DELETE FROM paper_fills WHERE fill_id = :f", f=fid)
    problems = book.check(name, url=url)
    assert f"order {oid} is marked filled but has no fill" in problems
    assert any(f"paper_fills row {oid} was removed" in p for p in problems)


def test_a_write_after_an_edit_of_the_last_session_is_refused(demo):
    url, name, bars = demo
    last = bars[-1].tz_localize(None).to_pydatetime()
    _edit_session(url, name, last, equity=book.sessions_t.c.equity + 1)
    nxt = bars[-1] + pd.Timedelta(days=3)
    cash = book.cash(name, url=url)
    with pytest.raises(LedgerError, match="changed since it was sealed .*equity changed"):
        book.write_session(name, book.SessionWrite(nxt, cash, cash, book.positions(name, url=url), {}), url=url)


def test_sessions_are_appended_in_order(demo):
    url, name, bars = demo
    cash = book.cash(name, url=url)
    with pytest.raises(LedgerError, match="cannot follow the last one"):
        book.write_session(name, book.SessionWrite(bars[0] - pd.Timedelta(days=7), cash, cash, {}, {}), url=url)


def test_a_ledger_written_before_seals_is_sealed_by_rehash_or_its_next_write(demo):
    url, name, bars = demo
    _sql(url, "DELETE FROM paper_seals WHERE account = :a", a=name)
    fill = _sql(url, "SELECT order_id, qty FROM paper_fills WHERE account = :a AND order_id NOT LIKE '%stop_loss' "
                     "ORDER BY timestamp", a=name).first()
    _sql(url, "UPDATE paper_orders SET qty = :q WHERE order_id = :o", q=fill[1] + 3, o=fill[0])  # the asked qty
    v = audit.verify(name, url=url)
    assert v.problems == [] and v.sealed == 0 and "not sealed" in v.notes[0] and "asked" in v.notes[1]
    nxt = bars[-1] + pd.Timedelta(days=3)
    cash = book.cash(name, url=url)
    assert book.write_session(name, book.SessionWrite(nxt, cash, cash, book.positions(name, url=url), {}), url=url)
    v = audit.verify(name, url=url)
    assert v.problems == [] and v.notes == [] and v.sealed == len(bars) + 2
    assert audit.rehash(name, url=url) == len(bars) + 1


def test_rehash_refuses_a_book_that_does_not_verify(demo):
    url, name, bars = demo
    _sql(url, "UPDATE paper_sessions SET cash = cash + 1 WHERE account = :a", a=name)
    with pytest.raises(LedgerError, match="cannot be sealed"):
        audit.rehash(name, url=url)


@pytest.mark.parametrize("bad, message", [
    ("x" * 101, "101 characters long; the ledger allows at most 100"),
    ("=HYPERLINK(1)", "starts with a formula character"),
    ("+1", "formula"), ("-x", "formula"), ("@sum", "formula"), ("\tx", "formula"),
    ("a b", "not allowed"), ("a:b", "not allowed"), ("", "non-empty"),
])
def test_account_names_are_refused_alike_on_every_backend(ledger_url, bad, message):
    with pytest.raises(book.AccountError, match=message):
        book.create_account(book.Account(bad, "ma_crossover", ["SPX"]), url=ledger_url)
    assert bad not in [a.name for a in book.list_accounts(url=ledger_url)]


def test_the_longest_name_is_accepted_on_every_backend(ledger_url, name):
    long = (name + "x" * 100)[:100]
    book.create_account(book.Account(long, "ma_crossover", ["SPX"]), url=ledger_url)
    assert book.check(long, url=ledger_url) == []


def test_a_replaced_ledger_id_stops_writes(demo):
    url, name, bars = demo
    before = _sql(url, "SELECT ledger_id FROM paper_ledger").scalar()
    _sql(url, "UPDATE paper_ledger SET ledger_id = 'other'")
    cash = book.cash(name, url=url)
    try:
        with pytest.raises(LedgerError, match="was replaced while in use"):
            book.write_session(name, book.SessionWrite(bars[-1] + pd.Timedelta(days=3), cash, cash, {}, {}), url=url)
    finally:  # the PostgreSQL database is shared by the session's tests
        _sql(url, "UPDATE paper_ledger SET ledger_id = :i", i=before)


def test_a_deleted_ledger_file_stops_writes(sqlite_url, name):
    bars = write_book(sqlite_url, name, demo_sessions(3))
    path = sqlite_url.removeprefix("sqlite:///")
    import os

    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    with pytest.raises(LedgerError, match=f"the ledger file {path} was deleted while in use"):
        book.write_session(name, book.SessionWrite(bars[-1] + pd.Timedelta(days=3), 1.0, 1.0, {}, {}), url=sqlite_url)


def test_seal_canonical_form_is_exact():
    assert seal.canonical(0.1 + 0.2) == "0.30000000000000004"
    assert seal.canonical(float("nan")) == '"nan"' and seal.canonical(3) == seal.canonical(3.0)
    assert seal.canonical({"b": 1, "a": [1.5]}) == '{"a":[1.5],"b":1.0}'


def test_the_check_command_names_problems_and_rehash_seals(sqlite_url, name, monkeypatch):
    from typer.testing import CliRunner

    from research.cli import app

    monkeypatch.setenv("WORKBENCH_LEDGER_URL", sqlite_url)
    bars = write_book(sqlite_url, name, demo_sessions(5))
    runner = CliRunner()
    ok = runner.invoke(app, ["paper", "check", name])
    assert ok.exit_code == 0 and f"{name}: book verified (" in ok.output and "6 seals, head digest" in ok.output
    _sql(sqlite_url, "DELETE FROM paper_seals WHERE account = :a", a=name)
    legacy = runner.invoke(app, ["paper", "check", name])
    assert legacy.exit_code == 0 and "is not sealed" in legacy.output and "--rehash" in legacy.output
    sealed = runner.invoke(app, ["paper", "check", name, "--rehash"])
    assert sealed.exit_code == 0 and "verified and sealed 5 session(s)" in sealed.output
    _edit_session(sqlite_url, name, bars[2].tz_localize(None).to_pydatetime(), cash=book.sessions_t.c.cash + 7)
    bad = runner.invoke(app, ["paper", "check", name])
    assert bad.exit_code == 1 and f"session {bars[2]:%Y-%m-%d} 00:00: cash is" in bad.output
