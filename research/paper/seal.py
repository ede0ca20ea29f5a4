"""Seals of the book: a chained digest of each session's rows, and the ledger's identity.

Each session of an account is sealed when it is written: its rows are serialised canonically
(floats by their exact ``repr``, times as ISO text, JSON with sorted keys), and
``sha256(previous digest + rows)`` is stored in ``paper_seals`` with a short hash of every
cell, so a later edit anywhere is found and named (session, table, row, column). The first seal
(``seq`` 0) covers the account row itself.

Which rows a session owns: orders decided, fills and cash flows dated after the previous session
and up to its bar; the session row; and the final state (``status, reason, side, qty``) of each
order the session closed (filled or cancelled). A pending order's state is sealed by the
session that closes it; rows dated after the last session (an import waiting for its session)
are sealed by the next session.

The ledger's identity: ``paper_ledger`` holds one random id per database. Every write checks
that the database it writes to is still the one it opened (same id and, for SQLite, the same
file: it still exists and has the same inode), so a ledger deleted or replaced under a running
replay stops it with an error instead of writing into a file nobody will see again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import uuid
import weakref
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from research.paper.db import LedgerError, metadata
from research.timeutil import naive_utc_now

__all__ = ["seals_t", "ledger_t", "COLUMNS", "STATUS", "canonical", "entries", "seal_digest", "cell_hashes",
           "differences", "check_identity"]

log = logging.getLogger(__name__)

seals_t = sa.Table(
    "paper_seals", metadata,
    sa.Column("account", sa.String(100), sa.ForeignKey("paper_accounts.name", ondelete="CASCADE"), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("as_of", sa.DateTime, nullable=True),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("cells", sa.JSON, nullable=False),
    sa.Column("created", sa.DateTime, nullable=False),
)
ledger_t = sa.Table(
    "paper_ledger", metadata,
    sa.Column("key", sa.String(20), primary_key=True),
    sa.Column("ledger_id", sa.String(36), nullable=False),
    sa.Column("created", sa.DateTime, nullable=False),
)

STATUS = "paper_orders:state"
"""Pseudo-table of the seal: an order's final state, sealed by the session that closed it."""

COLUMNS: dict[str, tuple[str, ...]] = {
    "paper_accounts": ("strategy", "params", "symbols", "sizing", "sizing_params", "risk", "fees", "slippage",
                       "whole_shares", "initial_cash", "calendar", "source", "interval", "pipeline", "long_only",
                       "created"),
    "paper_sessions": ("status", "cash", "equity", "positions", "targets", "created"),
    "paper_orders": ("symbol", "target_weight", "decided_at", "for_bar"),
    STATUS: ("status", "reason", "side", "qty"),
    "paper_fills": ("fill_id", "symbol", "side", "qty", "price", "quote", "fees", "timestamp"),
    "paper_flows": ("amount", "timestamp", "note"),
}
"""The columns each sealed table contributes (keys: order id, fill's order id, flow id, as-of)."""

_KEYS = {"paper_accounts": "name", "paper_sessions": "as_of", "paper_orders": "order_id", STATUS: "order_id",
         "paper_fills": "order_id", "paper_flows": "flow_id"}
_SHORT = 8


# --------------------------------------------------------------------------- canonical form

def canonical(value: Any) -> str:
    """Exact, backend-independent text of one cell (floats by ``repr``, times as ISO text)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else json.dumps(str(value))
    if isinstance(value, int):
        return repr(float(value))
    if isinstance(value, datetime):
        return json.dumps(value.isoformat())
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"), allow_nan=True)
    return json.dumps(str(value))


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _key(table: str, row: Mapping[str, Any]) -> str:
    value = row[_KEYS[table]]
    return value.isoformat() if isinstance(value, datetime) else str(value)


def entries(tables: Mapping[str, Iterable[Mapping[str, Any]]]) -> dict[str, dict[str, list[str]]]:
    """The canonical cells of the rows a seal covers: table -> row key -> column texts."""
    out: dict[str, dict[str, list[str]]] = {}
    for table, rows in tables.items():
        cols = COLUMNS[table]
        out[table] = {_key(table, r): [canonical(r[c]) for c in cols] for r in rows}
    return out


def seal_digest(previous: str, cells: Mapping[str, Mapping[str, list[str]]]) -> str:
    """``sha256(previous + canonical JSON of cells)`` as hex."""
    text = json.dumps(cells, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256((previous + text).encode("utf-8")).hexdigest()


def cell_hashes(cells: Mapping[str, Mapping[str, list[str]]]) -> dict[str, dict[str, list[str]]]:
    """Short hashes of every cell: what a seal stores to name an edit (the digest detects it)."""
    return {table: {key: [hashlib.sha256(c.encode("utf-8")).hexdigest()[:_SHORT] for c in texts]
                    for key, texts in rows.items()} for table, rows in cells.items()}


def differences(sealed: Mapping[str, Mapping[str, list[str]]],
                now: Mapping[str, Mapping[str, list[str]]]) -> list[str]:
    """What differs between the cell hashes a seal stored and those of the rows now."""
    out = []
    for table in sorted(set(sealed) | set(now)):
        a, b = sealed.get(table, {}), now.get(table, {})
        for key in sorted(set(a) - set(b)):
            out.append(f"{table} row {key} was removed (or its date moved)")
        for key in sorted(set(b) - set(a)):
            out.append(f"{table} row {key} was added (or its date moved)")
        cols = COLUMNS.get(table, ())
        for key in sorted(set(a) & set(b)):
            changed = [cols[i] if i < len(cols) else str(i) for i, (x, y) in enumerate(zip(a[key], b[key], strict=False))
                       if x != y]
            if changed:
                out.append(f"{table} row {key}: {', '.join(changed)} changed")
    return out


# --------------------------------------------------------------------------- identity

_SEEN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _file_of(conn: Connection) -> str | None:
    url = conn.engine.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return url.database


def _ledger_id(conn: Connection, where: str) -> str | None:
    try:
        return conn.execute(sa.select(ledger_t.c.ledger_id).where(ledger_t.c.key == "ledger")).scalar()
    except sa.exc.DBAPIError as exc:
        raise LedgerError(f"the ledger at {where} has no paper_ledger table any more: it was replaced or emptied "
                          f"while in use ({exc.orig})") from None


def _create_id(engine: sa.Engine, where: str) -> str:
    """Give a new ledger its id (in its own transaction; a concurrent first writer's id wins)."""
    try:
        with engine.begin() as conn:
            conn.execute(ledger_t.insert().values(key="ledger", ledger_id=str(uuid.uuid4()),
                                                  created=naive_utc_now()))
    except sa.exc.IntegrityError:
        pass
    with engine.connect() as conn:
        return _ledger_id(conn, where)


def check_identity(conn: Connection) -> str:
    """The ledger's id, after checking it is the database (and file) this process opened.

    Raises
    ------
    LedgerError
        If the SQLite file was deleted or replaced, or the database's id changed, since this
        engine first wrote to it.
    """
    engine = conn.engine
    where = engine.url.render_as_string(hide_password=True)
    path = _file_of(conn)
    inode = None
    if path is not None:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise LedgerError(f"the ledger file {path} was deleted while in use; nothing more is written "
                              f"(restore it, or start again on a new ledger)") from None
        inode = (st.st_dev, st.st_ino)
    current = _ledger_id(conn, where)
    seen = _SEEN.get(engine)
    if current is None and seen is None:
        current = _create_id(engine, where)
    if seen is None:
        _SEEN[engine] = (current, inode)
        return current
    if path is not None and seen[1] != inode:
        raise LedgerError(f"the ledger file {path} was replaced by another file while in use (inode {seen[1][1]} "
                          f"is now {inode[1]}); nothing more is written")
    if seen[0] != current:
        raise LedgerError(f"the ledger at {where} was replaced while in use (ledger id {seen[0]} is now "
                          f"{current}); nothing more is written")
    return current
