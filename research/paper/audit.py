"""Verification of the book: every session rebuilt from its flows and fills, every seal checked.

:func:`verify` (``workbench paper check``) reads an account whole and reports

* the row rules of :data:`RULES` (small functions of the account's rows: each fill has an order
  that agrees with it in symbol, side and quantity, one fill per order, no filled order without
  its fill, only the account's symbols, finite values);
* at every session, cash and each position rebuilt from the initial cash, the flows and the
  fills up to it and compared with what the session recorded (and no negative position on a
  long-only account);
* every session's seal (:mod:`research.paper.seal`): an edit anywhere is named by session,
  table, row and column.

Inside every write the same rules run incrementally (:func:`before_write`, :func:`after_write`):
the last seal is checked against its rows, the new session is rebuilt from the previous
session's recorded cash and positions plus the rows since, and then sealed. The cost of a write
depends on the size of one session, not of the book.

A ledger written before seals existed has none: :func:`verify` says so, and :func:`rehash`
(``workbench paper check NAME --rehash``, or the first write to the account) records each
filled order's executed side and quantity (older ledgers kept the quantity asked), verifies
every session's cash and positions, and seals the book only if that verification passes.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from research.paper import seal, tables
from research.paper.db import LedgerError, connect
from research.timeutil import naive_utc_now

__all__ = ["Rows", "Verification", "RULES", "verify", "rehash", "before_write", "after_write", "after_import"]

log = logging.getLogger(__name__)


@dataclass
class Rows:
    """An account's rows (or those of one window of it), as plain dicts."""

    account: dict[str, Any]
    sessions: list[dict[str, Any]] = field(default_factory=list)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    fills: list[dict[str, Any]] = field(default_factory=list)
    flows: list[dict[str, Any]] = field(default_factory=list)
    executed: bool = True
    """Orders record their executed side and quantity (False for a ledger written before seals)."""


@dataclass
class Verification:
    """What :func:`verify` found: ``problems`` (empty when the book is sound) and ``notes``."""

    account: str
    problems: list[str]
    notes: list[str]
    sessions: int
    fills: int
    sealed: int
    head: str | None


def _num(value: Any) -> float:
    """A cell as a float; NaN for what is not a number (an edited cell must not stop the check)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _positions(value: Any) -> dict[str, float]:
    return {str(k): _num(v) for k, v in value.items()} if isinstance(value, Mapping) else {"?": math.nan}


def _when(t: datetime | None) -> str:
    return "-" if t is None else f"{t:%Y-%m-%d %H:%M}"


REBUILD_TOLERANCE = 1e-9
"""Relative tolerance of a rebuilt cash or position against the recorded one (sums in another order)."""


def _close(a: float, b: float) -> bool:
    scale = max(1.0, abs(a), abs(b))
    return abs(a - b) <= REBUILD_TOLERANCE * scale


# --------------------------------------------------------------------------- row rules

def rule_fills_have_orders(rows: Rows) -> list[str]:
    """Every fill belongs to an order of the account."""
    return [f"fill {f['fill_id']} has no order" for f in rows.fills if f["order_id"] not in rows.orders]


def rule_one_fill_per_order(rows: Rows) -> list[str]:
    """No order has two fills."""
    return [f"order {o} has {n} fills" for o, n in Counter(f["order_id"] for f in rows.fills).items() if n > 1]


def rule_filled_orders_have_fills(rows: Rows) -> list[str]:
    """An order marked filled has its fill."""
    filled = {f["order_id"] for f in rows.fills}
    return [f"order {o} is marked filled but has no fill" for o, r in rows.orders.items()
            if r["status"] == "filled" and o not in filled]


def rule_fills_agree_with_orders(rows: Rows) -> list[str]:
    """A fill's order is marked filled and agrees with it in symbol, side and quantity."""
    out = []
    for f in rows.fills:
        o = rows.orders.get(f["order_id"])
        if o is None:
            continue
        if o["status"] != "filled":
            out.append(f"order {f['order_id']} has a fill but is marked {o['status']}")
        if o["symbol"] != f["symbol"] or (rows.executed and o["side"] != f["side"]):
            out.append(f"order {f['order_id']} is a {o['side']} of {o['symbol']} but its fill is a {f['side']} "
                       f"of {f['symbol']}")
        elif rows.executed and not _close(_num(o["qty"]), _num(f["qty"])):
            out.append(f"order {f['order_id']} is for {o['qty']:g} but its fill is for {f['qty']:g}")
    return out


def rule_symbols_in_account(rows: Rows) -> list[str]:
    """Fills only for the account's symbols."""
    unknown = sorted({f["symbol"] for f in rows.fills} - set(rows.account["symbols"]))
    return [f"fills for symbols outside the account: {unknown}"] if unknown else []


def rule_finite_values(rows: Rows) -> list[str]:
    """Quantities, prices, fees, amounts, cash and equity are finite numbers."""
    out = []
    for f in rows.fills:
        bad = [c for c in ("qty", "price", "fees") if not math.isfinite(_num(f[c]))]
        out += [f"fill {f['fill_id']}: {c} is {f[c]!r}" for c in bad]
    out += [f"flow {f['flow_id']}: amount is {f['amount']!r}" for f in rows.flows if not math.isfinite(_num(f["amount"]))]
    for s in rows.sessions:
        out += [f"session {_when(s['as_of'])}: {c} is {s[c]!r}" for c in ("cash", "equity")
                if not math.isfinite(_num(s[c]))]
    return out


RULES: list[Callable[[Rows], list[str]]] = [
    rule_fills_have_orders, rule_one_fill_per_order, rule_filled_orders_have_fills, rule_fills_agree_with_orders,
    rule_symbols_in_account, rule_finite_values,
]
"""The row rules, each a small function of an account's rows returning its problems."""


# --------------------------------------------------------------------------- rebuild

@dataclass
class _State:
    cash: float
    positions: dict[str, float] = field(default_factory=dict)

    def apply(self, fills: Iterable[Mapping[str, Any]], flows: Iterable[Mapping[str, Any]]) -> None:
        for f in fills:
            signed = _num(f["qty"]) if f["side"] == "buy" else -_num(f["qty"])
            self.positions[f["symbol"]] = self.positions.get(f["symbol"], 0.0) + signed
            self.cash += -signed * _num(f["price"]) - _num(f["fees"])
        for f in flows:
            self.cash += _num(f["amount"])


def _compare(state: _State, session: Mapping[str, Any], long_only: bool) -> list[str]:
    when, out = _when(session["as_of"]), []
    recorded = _positions(session["positions"] or {})
    for sym in sorted(set(state.positions) | set(recorded)):
        a, b = state.positions.get(sym, 0.0), recorded.get(sym, 0.0)
        if not _close(a, b):
            out.append(f"session {when}: position {sym} is {b:g} but its fills sum to {a:g}")
        if long_only and a < -tables.TOLERANCE:
            out.append(f"session {when}: negative position {a:g} in {sym} on a long-only account")
    rec_cash = _num(session["cash"])
    if not math.isfinite(state.cash) or not _close(state.cash, rec_cash):
        out.append(f"session {when}: cash is {rec_cash:.6f} but initial cash + flows - fees - net purchases "
                   f"up to it is {state.cash:.6f}")
    return out


def _windows(rows: Rows) -> tuple[list[datetime], Callable[[datetime], int]]:
    stamps = [s["as_of"] for s in rows.sessions]
    return stamps, lambda t: bisect.bisect_left(stamps, t)


def rebuild_problems(rows: Rows) -> list[str]:
    """Cash and positions rebuilt at every session and compared with what it recorded."""
    stamps, where = _windows(rows)
    fills = _group(rows.fills, "timestamp", where, len(stamps))
    flows = _group(rows.flows, "timestamp", where, len(stamps))
    state, out = _State(_num(rows.account["initial_cash"])), []
    for i, s in enumerate(rows.sessions):
        state.apply(fills[i], flows[i])
        out += _compare(state, s, rows.account["long_only"])
    return out


def _group(items: Iterable[Mapping[str, Any]], col: str, where: Callable[[datetime], int], n: int) -> list[list]:
    """Rows per session window (index ``n``: after the last session)."""
    out: list[list] = [[] for _ in range(n + 1)]
    for r in items:
        out[where(r[col])].append(r)
    return out


# --------------------------------------------------------------------------- loading

def _plain(row: Mapping[str, Any]) -> dict[str, Any]:
    return dict(row)


def load(conn: Connection, name: str) -> Rows:
    """Every row of account ``name``."""
    acct = conn.execute(sa.select(tables.accounts_t).where(tables.accounts_t.c.name == name)).mappings().first()
    if acct is None:
        raise tables.AccountError(f"no paper account {name!r}")
    t = tables
    sessions = conn.execute(sa.select(t.sessions_t).where(t.sessions_t.c.account == name)
                            .order_by(t.sessions_t.c.as_of)).mappings().all()
    orders = conn.execute(sa.select(t.orders_t).where(t.orders_t.c.account == name)).mappings().all()
    fills = conn.execute(sa.select(t.fills_t).where(t.fills_t.c.account == name)
                         .order_by(t.fills_t.c.timestamp, t.fills_t.c.fill_id)).mappings().all()
    flows = conn.execute(sa.select(t.flows_t).where(t.flows_t.c.account == name)
                         .order_by(t.flows_t.c.timestamp, t.flows_t.c.flow_id)).mappings().all()
    return Rows(_plain(acct), [_plain(s) for s in sessions], {o["order_id"]: _plain(o) for o in orders},
                [_plain(f) for f in fills], [_plain(f) for f in flows])


def _seals(conn: Connection, name: str, *, last: int | None = None) -> list[dict[str, Any]]:
    q = sa.select(seal.seals_t).where(seal.seals_t.c.account == name).order_by(seal.seals_t.c.seq.desc())
    rows = conn.execute(q.limit(last) if last else q).mappings().all()
    return [_plain(r) for r in reversed(rows)]


# --------------------------------------------------------------------------- seals

def _session_cells(rows: Rows, session: Mapping[str, Any], decided: list[dict], closed: list[dict],
                   fills: list[dict], flows: list[dict]) -> dict[str, dict[str, list[str]]]:
    return seal.entries({"paper_sessions": [session], "paper_orders": decided, seal.STATUS: closed,
                         "paper_fills": fills, "paper_flows": flows})


def _genesis(rows: Rows) -> dict[str, dict[str, list[str]]]:
    return seal.entries({"paper_accounts": [rows.account]})


def _closed_in(rows: Rows, decided: list[dict], listed: Iterable[str]) -> list[dict]:
    """Orders whose final state a session seals: those listed, and those of ``decided`` closed now.

    At a write, ``decided`` is the session's orders (closed ones, e.g. stops and imports, are
    sealed at once); on verification it is empty and the seal's own list is used.
    """
    ids = {o["order_id"] for o in decided if o["status"] != "pending"} | set(listed)
    return [rows.orders.get(i) or {"order_id": i, "status": None, "reason": None, "side": None, "qty": None}
            for i in sorted(ids)]


def seal_problems(rows: Rows, seals: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Each seal checked against the rows it covers now: (problems, notes)."""
    name = rows.account["name"]
    if not seals:
        return [], [f"the book of {name!r} is not sealed ({len(rows.sessions)} sessions without a digest): "
                    f"`workbench paper check {name} --rehash` seals it after verifying it, as does its next write"]
    stamps, where = _windows(rows)
    n = len(stamps)
    fills, flows = _group(rows.fills, "timestamp", where, n), _group(rows.flows, "timestamp", where, n)
    decided = _group(rows.orders.values(), "decided_at", where, n)
    out: list[str] = []
    previous = ""
    for s in seals:
        seq = s["seq"]
        if seq == 0:
            cells, label = _genesis(rows), "the account"
            if s["as_of"] is not None:
                out.append(f"the account's seal has a session date ({_when(s['as_of'])}); it was edited")
        elif seq - 1 < n and stamps[seq - 1] == s["as_of"]:
            i = seq - 1
            listed = s["cells"].get(seal.STATUS, {})
            cells = _session_cells(rows, rows.sessions[i], decided[i], _closed_in(rows, [], listed),
                                   fills[i], flows[i])
            label = f"session {_when(stamps[i])}"
        else:
            out.append(f"seal {seq} is for a session of {_when(s['as_of'])} that is not in the ledger "
                       f"(a session was removed, or its date changed)")
            previous = s["digest"]
            continue
        if seal.seal_digest(previous, cells) != s["digest"]:
            what = seal.differences(s["cells"], seal.cell_hashes(cells)) or ["its seal was edited"]
            out += [f"{label}: {w} since it was sealed" for w in what]
        elif seal.cell_hashes(cells) != s["cells"]:
            out.append(f"{label}: the cell hashes of its seal were edited (the rows are intact)")
        previous = s["digest"]
    return out + _unsealed(rows, seals, stamps, fills, flows, decided), []


def _unsealed(rows: Rows, seals: list[dict], stamps: list[datetime], fills, flows, decided) -> list[str]:
    out = []
    if seals[0]["seq"] != 0:
        out.append("the account's own seal (seq 0) is missing")
    sealed_sessions = len(seals) - (seals[0]["seq"] == 0)
    if sealed_sessions < len(stamps):
        out.append(f"{len(stamps) - sealed_sessions} session(s) have no seal (from {_when(stamps[sealed_sessions])})")
    closed_listed = {k for s in seals for k in s["cells"].get(seal.STATUS, {})}
    tail = {o["order_id"] for o in decided[-1]}
    for oid, o in sorted(rows.orders.items()):
        if o["status"] != "pending" and oid not in closed_listed and oid not in tail:
            out.append(f"order {oid} is {o['status']} but no session closed it")
    return out


def verify(name: str, *, url: str | None = None) -> Verification:
    """Check account ``name`` whole: row rules, every session rebuilt, every seal."""
    with connect(url).connect() as conn:
        try:
            rows = load(conn, name)
            seals = _seals(conn, name)
        except (ValueError, TypeError) as exc:  # a cell its column's type cannot read back
            return Verification(name, [f"the ledger holds a value its column cannot hold ({exc}); the book cannot "
                                       f"be read"], [], 0, 0, 0, None)
    rows.executed = bool(seals)
    problems = [p for rule in RULES for p in rule(rows)] + rebuild_problems(rows)
    sealed, notes = seal_problems(rows, seals)
    if not seals:
        asked = [f for f in rows.fills if f["order_id"] in rows.orders
                 and (rows.orders[f["order_id"]]["side"], _num(rows.orders[f["order_id"]]["qty"]))
                 != (f["side"], _num(f["qty"]))]
        if asked:
            notes.append(f"{len(asked)} filled order(s) record the side and quantity asked rather than filled "
                         f"(a ledger written before seals); sealing records the executed ones")
    tail = sum(1 for f in rows.fills if rows.sessions and f["timestamp"] > rows.sessions[-1]["as_of"])
    if tail:
        notes.append(f"{tail} fill(s) dated after the last session wait for the next session's seal")
    return Verification(name, problems + sealed, notes, len(rows.sessions), len(rows.fills), len(seals),
                        seals[-1]["digest"] if seals else None)


# --------------------------------------------------------------------------- sealing

def _insert_seal(conn: Connection, name: str, seq: int, as_of: datetime | None, previous: str,
                 cells: dict[str, dict[str, list[str]]]) -> str:
    d = seal.seal_digest(previous, cells)
    conn.execute(seal.seals_t.insert().values(account=name, seq=seq, as_of=as_of, digest=d,
                                              cells=seal.cell_hashes(cells), created=naive_utc_now()))
    return d


def _conform_orders(conn: Connection, rows: Rows) -> int:
    """Record each filled order's executed side and quantity (ledgers before seals kept the asked ones)."""
    changed = 0
    for f in rows.fills:
        o = rows.orders.get(f["order_id"])
        if o is not None and o["status"] == "filled" and (o["side"], o["qty"]) != (f["side"], f["qty"]):
            conn.execute(tables.orders_t.update().where(tables.orders_t.c.order_id == o["order_id"])
                         .values(side=f["side"], qty=f["qty"]))
            o["side"], o["qty"] = f["side"], f["qty"]
            changed += 1
    return changed


def _legacy_closing(rows: Rows, stamps: list[datetime], where) -> list[list[dict]]:
    """Which session closed each order of a ledger written before seals: its fill's, else the next one."""
    fill_at = {f["order_id"]: f["timestamp"] for f in rows.fills}
    out: list[list[dict]] = [[] for _ in range(len(stamps) + 1)]
    for oid, o in sorted(rows.orders.items()):
        if o["status"] == "pending":
            continue
        i = where(fill_at[oid]) if oid in fill_at else bisect.bisect_right(stamps, o["decided_at"])
        out[min(i, len(stamps))].append(o)
    return out


def _seal_all(conn: Connection, rows: Rows) -> int:
    name = rows.account["name"]
    conn.execute(seal.seals_t.delete().where(seal.seals_t.c.account == name))
    stamps, where = _windows(rows)
    n = len(stamps)
    fills, flows = _group(rows.fills, "timestamp", where, n), _group(rows.flows, "timestamp", where, n)
    decided, closing = _group(rows.orders.values(), "decided_at", where, n), _legacy_closing(rows, stamps, where)
    previous = _insert_seal(conn, name, 0, None, "", _genesis(rows))
    for i, s in enumerate(rows.sessions):
        cells = _session_cells(rows, s, decided[i], closing[i], fills[i], flows[i])
        previous = _insert_seal(conn, name, i + 1, s["as_of"], previous, cells)
    return n


def seal_account(conn: Connection, name: str) -> None:
    """The first seal of a new account: its own row (inside the caller's transaction)."""
    _insert_seal(conn, name, 0, None, "", _genesis(Rows(_account_row(conn, name))))


def _rehash(conn: Connection, name: str) -> int:
    for index in tables.TIME_INDEXES:  # ledgers created before them lack them
        index.create(conn, checkfirst=True)
    rows = load(conn, name)
    conformed = 0 if _seals(conn, name, last=1) else _conform_orders(conn, rows)
    problems = [p for rule in RULES for p in rule(rows)] + rebuild_problems(rows)
    if problems:
        raise LedgerError(f"account {name!r} cannot be sealed, its book does not verify: " + "; ".join(problems[:5]))
    n = _seal_all(conn, rows)
    log.info("sealed %s: %d sessions (%d orders given their executed side and quantity)", name, n, conformed)
    return n


def rehash(name: str, *, url: str | None = None) -> int:
    """Verify account ``name`` and (re)seal every session as the ledger is now; return the sessions sealed.

    Raises
    ------
    LedgerError
        If the row rules or the rebuild of any session fail (nothing is sealed then).
    """
    with connect(url).begin() as conn:
        seal.check_identity(conn)
        return _rehash(conn, name)


# --------------------------------------------------------------------------- inside every write

@dataclass
class Tip:
    """The last seal of an account, checked, and the book it recorded (the base of the next write)."""

    seq: int
    digest: str
    as_of: datetime | None
    state: _State


def _between(col: sa.ColumnElement, lo: datetime | None, hi: datetime | None) -> list:
    return ([col > lo] if lo is not None else []) + ([col <= hi] if hi is not None else [])


def _window(conn: Connection, account: dict[str, Any], lo: datetime | None, hi: datetime | None,
            extra: Iterable[str] = ()) -> Rows:
    """The rows of one window ``(lo, hi]`` of an account, with the orders its fills and ``extra`` name."""
    t, name = tables, account["name"]
    rows = Rows(account)
    if hi is not None:
        rows.sessions = [_plain(r) for r in conn.execute(sa.select(t.sessions_t).where(
            t.sessions_t.c.account == name, t.sessions_t.c.as_of == hi)).mappings()]
    rows.fills = [_plain(r) for r in conn.execute(sa.select(t.fills_t).where(
        t.fills_t.c.account == name, *_between(t.fills_t.c.timestamp, lo, hi))
        .order_by(t.fills_t.c.timestamp, t.fills_t.c.fill_id)).mappings()]
    rows.flows = [_plain(r) for r in conn.execute(sa.select(t.flows_t).where(
        t.flows_t.c.account == name, *_between(t.flows_t.c.timestamp, lo, hi))).mappings()]
    ids = sorted({f["order_id"] for f in rows.fills} | set(extra))
    orders = conn.execute(sa.select(t.orders_t).where(t.orders_t.c.account == name,
                                                      *_between(t.orders_t.c.decided_at, lo, hi))).mappings().all()
    for chunk in range(0, len(ids), 500):
        orders += conn.execute(sa.select(t.orders_t).where(
            t.orders_t.c.order_id.in_(ids[chunk:chunk + 500]))).mappings().all()
    rows.orders = {o["order_id"]: _plain(o) for o in orders}
    return rows


def _decided(rows: Rows, lo: datetime | None, hi: datetime | None) -> list[dict]:
    return [o for o in rows.orders.values()
            if (lo is None or o["decided_at"] > lo) and (hi is None or o["decided_at"] <= hi)]


def _account_row(conn: Connection, name: str) -> dict[str, Any]:
    row = conn.execute(sa.select(tables.accounts_t).where(tables.accounts_t.c.name == name)).mappings().first()
    if row is None:
        raise tables.AccountError(f"no paper account {name!r}")
    return _plain(row)


def _check_tip(conn: Connection, account: dict[str, Any], seals: list[dict[str, Any]]) -> Tip:
    name, last = account["name"], seals[-1]
    if last["seq"] == 0:
        cells, state = _genesis(Rows(account)), _State(_num(account["initial_cash"]))
    else:
        lo = seals[-2]["as_of"] if len(seals) > 1 else None
        rows = _window(conn, account, lo, last["as_of"], last["cells"].get(seal.STATUS, {}))
        if not rows.sessions:
            raise LedgerError(f"account {name!r}: the session of {_when(last['as_of'])} was removed since it was "
                              f"sealed (run `workbench paper check {name}`)")
        decided = _decided(rows, lo, last["as_of"])
        cells = _session_cells(rows, rows.sessions[0], decided,
                               _closed_in(rows, [], last["cells"].get(seal.STATUS, {})), rows.fills, rows.flows)
        state = _State(_num(rows.sessions[0]["cash"]),
                       _positions(rows.sessions[0]["positions"] or {}))
    previous = seals[-2]["digest"] if len(seals) > 1 else ""
    if seal.seal_digest(previous, cells) != last["digest"]:
        label = "the account" if last["seq"] == 0 else f"the session of {_when(last['as_of'])}"
        what = seal.differences(last["cells"], seal.cell_hashes(cells)) or ["its seal was edited"]
        raise LedgerError(f"account {name!r}: {label} changed since it was sealed ({'; '.join(what[:3])}); "
                          f"nothing was written (run `workbench paper check {name}`)")
    return Tip(last["seq"], last["digest"], last["as_of"], state)


def before_write(conn: Connection, name: str) -> Tip:
    """Check the ledger's identity and the account's last seal (sealing a book written before seals).

    Raises
    ------
    LedgerError
        If the ledger was replaced, the last seal does not match its rows, or a session after it
        has no seal.
    """
    seal.check_identity(conn)
    account = _account_row(conn, name)
    seals = _seals(conn, name, last=2)
    if not seals:
        later = conn.execute(sa.select(sa.func.count()).select_from(tables.sessions_t)
                             .where(tables.sessions_t.c.account == name)).scalar()
        if later:
            _rehash(conn, name)
        else:
            seal_account(conn, name)
        seals = _seals(conn, name, last=2)
    tip = _check_tip(conn, account, seals)
    newer = conn.execute(sa.select(sa.func.min(tables.sessions_t.c.as_of)).where(
        tables.sessions_t.c.account == name, *_between(tables.sessions_t.c.as_of, tip.as_of, None))).scalar()
    if newer is not None:
        raise LedgerError(f"account {name!r}: the session of {_when(newer)} has no seal (written outside the "
                          f"workbench?); run `workbench paper check {name}`")
    return tip


def _raise(name: str, problems: list[str]) -> None:
    if problems:
        raise LedgerError(f"account {name!r}: " + "; ".join(problems[:5]))


def after_write(conn: Connection, name: str, tip: Tip, as_of: datetime, closed: Iterable[str]) -> None:
    """Verify the session ``as_of`` just written against the tip, then seal it (inside the write)."""
    account = _account_row(conn, name)
    if tip.as_of is not None and as_of <= tip.as_of:
        raise LedgerError(f"account {name!r}: a session of {_when(as_of)} cannot follow the last one "
                          f"({_when(tip.as_of)}); sessions are appended in order")
    closed = set(closed)
    rows = _window(conn, account, tip.as_of, as_of, closed)
    problems = [p for rule in RULES for p in rule(rows)]
    state = _State(tip.state.cash, dict(tip.state.positions))
    state.apply(rows.fills, rows.flows)
    problems += _compare(state, rows.sessions[0], account["long_only"])
    _raise(name, problems)
    decided = _decided(rows, tip.as_of, as_of)
    listed = [i for i in closed if rows.orders.get(i, {}).get("status") != "pending"]
    cells = _session_cells(rows, rows.sessions[0], decided, _closed_in(rows, decided, listed), rows.fills, rows.flows)
    _insert_seal(conn, name, tip.seq + 1, as_of, tip.digest, cells)


def after_import(conn: Connection, name: str, tip: Tip) -> None:
    """Verify the rows waiting after the last session (an import just written): rules, finite, long-only."""
    account = _account_row(conn, name)
    rows = _window(conn, account, tip.as_of, None)
    problems = [p for rule in RULES for p in rule(rows)]
    state = _State(tip.state.cash, dict(tip.state.positions))
    state.apply(rows.fills, rows.flows)
    if not math.isfinite(state.cash):
        problems.append(f"cash would become {state.cash!r}")
    problems += [f"position {s} would become {q!r}" for s, q in state.positions.items() if not math.isfinite(q)]
    if account["long_only"]:
        problems += [f"negative position {q:g} in {s} on a long-only account" for s, q in state.positions.items()
                     if q < -tables.TOLERANCE]
    _raise(name, problems)
