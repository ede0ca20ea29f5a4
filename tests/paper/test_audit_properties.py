"""Properties of the ledger's verification: every valid book passes; every edit of a sealed cell is found.

A sealed cell is any cell of the account row, a session row, an order (its state once a
session closed it), a fill, a cash flow or a seal. The state of an order still pending at the
last session is the live book, sealed by the session that closes it, so it is not edited here.
"""

from __future__ import annotations

import datetime as dt
import shutil
import uuid

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, reject, settings
from hypothesis import strategies as st

from research.paper import audit, book, seal
from research.paper.db import connect, dispose
from tests.paper.books import SYMBOLS, demo_sessions, write_book

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])

trade = st.tuples(st.sampled_from(SYMBOLS), st.floats(-500, 500).filter(lambda q: abs(q) > 1e-3),
                  st.floats(0.01, 1e5), st.floats(0, 10))
session = st.lists(trade, max_size=3, unique_by=lambda t: t[0])
flow = st.fixed_dictionaries({"type": st.sampled_from(["deposit", "withdrawal"]),
                              "amount": st.floats(0.01, 1e4)})


@FAST
@given(sessions=st.lists(session, min_size=1, max_size=6), flows=st.dictionaries(st.integers(0, 5), flow, max_size=2))
def test_every_valid_book_verifies(tmp_path, sessions, flows):
    url = f"sqlite:///{tmp_path / uuid.uuid4().hex}.db"
    imports = {i: [{"id": f"f{i}", "timestamp": "", "type": f["type"], "symbol": "", "qty": "", "price": "",
                    "fees": "", "amount": repr(f["amount"])}] for i, f in flows.items() if i < len(sessions)}
    bars = write_book(url, "prop", sessions, imports=_dated(imports, len(sessions)))
    v = audit.verify("prop", url=url)
    dispose(url)
    assert v.problems == [] and v.sealed == len(bars) + 1


def _dated(imports: dict[int, list[dict]], n: int) -> dict[int, list[dict]]:
    import pandas as pd

    bars = pd.bdate_range("2020-01-06", periods=n + 1, tz="UTC")
    return {i: [{**r, "timestamp": str(bars[i] + pd.Timedelta(hours=12))} for r in rows] for i, rows in imports.items()}


# --------------------------------------------------------------------------- edits

TABLES = {"paper_accounts": book.accounts_t, "paper_sessions": book.sessions_t, "paper_orders": book.orders_t,
          "paper_fills": book.fills_t, "paper_flows": book.flows_t, "paper_seals": seal.seals_t}
EDITABLE = {
    "paper_accounts": list(seal.COLUMNS["paper_accounts"]),
    "paper_sessions": ["as_of", *seal.COLUMNS["paper_sessions"]],
    "paper_orders": [*seal.COLUMNS["paper_orders"], *seal.COLUMNS[seal.STATUS]],
    "paper_fills": list(seal.COLUMNS["paper_fills"]),
    "paper_flows": list(seal.COLUMNS["paper_flows"]),
    "paper_seals": ["digest", "cells", "as_of"],
}


@pytest.fixture(scope="module")
def base_book(tmp_path_factory):
    """A sealed book of 12 sessions with imported cash flows (copied for each edit)."""
    path = tmp_path_factory.mktemp("audit") / "base.db"
    url = f"sqlite:///{path}"
    imports = {i: [{"id": f"d{i}", "timestamp": "", "type": "deposit", "symbol": "", "qty": "", "price": "",
                    "fees": "", "amount": str(100.0 + i)}] for i in (2, 7)}
    write_book(url, "edit", demo_sessions(), imports=_dated(imports, 12))
    assert audit.verify("edit", url=url).problems == []
    dispose(url)
    return path


def _changed(value, pick: int, kind: sa.types.TypeEngine):
    """A value different from ``value`` of the column's type (``pick`` chooses among a few)."""
    if value is None:
        return {sa.DateTime: dt.datetime(2020, 1, 8, 12), sa.Float: 0.5}.get(type(kind), "x")
    if isinstance(value, bool):
        return not value
    if isinstance(value, float | int):
        return [value + 1e-7 * max(1.0, abs(value)), -value - 1.0, value * 2 + 3, float("nan")][pick % 4]
    if isinstance(value, dt.datetime):
        return value + [dt.timedelta(seconds=1), dt.timedelta(days=-1), dt.timedelta(hours=5)][pick % 3]
    if isinstance(value, dict):
        return {**value, "zz": 1.0} if pick % 2 else {k: (v * 2 + 1 if isinstance(v, float) else v)
                                                      for k, v in value.items()} | {"yy": [1]}
    if isinstance(value, list):
        return [*value, "ZZZ"]
    if value in ("buy", "sell"):
        return "sell" if value == "buy" else "buy"
    return str(value) + "x"


@FAST
@example(table="paper_sessions", row=5, col=2, pick=0)
@example(table="paper_fills", row=3, col=4, pick=0)
@example(table="paper_accounts", row=0, col=6, pick=3)  # NaN into a NOT NULL column: refused by SQLite
@example(table="paper_seals", row=0, col=92, pick=0)  # a date given to the account's own seal
@given(table=st.sampled_from(sorted(TABLES)), row=st.integers(0, 10_000), col=st.integers(0, 100),
       pick=st.integers(0, 11))
def test_every_edit_of_a_sealed_cell_is_found(base_book, tmp_path, table, row, col, pick):
    path = tmp_path / f"{uuid.uuid4().hex}.db"
    shutil.copy(base_book, path)
    url = f"sqlite:///{path}"
    t = TABLES[table]
    pk = list(t.primary_key.columns)
    with connect(url).begin() as conn:
        q = sa.select(t)
        if table == "paper_orders":  # the live state of orders still pending is not sealed
            q = q.where(t.c.status != "pending")
        rows = conn.execute(q.order_by(*pk)).mappings().all()
        target = rows[row % len(rows)]
        cols = [c for c in EDITABLE[table] if c in t.c]
        column = cols[col % len(cols)]
        new = _changed(target[column], pick, t.c[column].type)
    try:
        with connect(url).begin() as conn:
            conn.execute(t.update().where(*[c == target[c.name] for c in pk]).values({column: new}))
    except sa.exc.IntegrityError:  # the database refuses this edit itself (SQLite stores NaN as NULL)
        dispose(url)
        reject()
    problems = audit.verify("edit", url=url).problems
    dispose(url)
    assert problems, f"edit of {table}.{column} ({target[column]!r} -> {new!r}) was not found"
