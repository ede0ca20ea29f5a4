"""Holdings and transactions in and out of the book as CSV files.

Transactions file (``<account>-transactions.csv``)::

    id,timestamp,type,symbol,qty,price,fees,amount
    t1,2018-01-03,buy,SPX,10,2700.5,2.7,
    t2,2018-02-01,deposit,,,,,5000
    t3,2018-03-05,sell,SPX,4,2750.0,1.1,

``type`` is ``buy``/``sell`` (``symbol, qty > 0, price > 0, fees >= 0``) or
``deposit``/``withdrawal`` (``amount > 0``). Every number is finite, and so is ``qty x price +
fees``. Holdings file (``<account>-holdings.csv``)::

    symbol,qty,price,timestamp
    SPX,10,2700.5,2018-01-03

A holding is booked as a transfer in: a fill at ``price`` without fees and a deposit of its
value, so cash is unchanged. An import is validated whole before anything is written: an
unknown symbol, a negative position on a long-only account, a duplicate id (in the file or
already in the ledger), an unparseable date or number, a date on or before the account's
last session (those sessions are sealed) or in the future, or an id too long for the ledger
is refused with the file's line number, and nothing is applied. A row dated after the account's
next session is applied as of its date: the sessions before it do not see it (each session
reads the book as of its own bar), the first session on or after it does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from research.data.csvsafe import to_csv
from research.paper import book
from research.paper.db import connect
from research.timeutil import to_utc

__all__ = ["export_csv", "import_csv", "import_transactions"]

_TX = ["id", "timestamp", "type", "symbol", "qty", "price", "fees", "amount"]
_HOLD = ["symbol", "qty", "price", "timestamp"]


def export_csv(name: str, folder: str | Path, *, url: str | None = None) -> dict[str, Path]:
    """Write ``<name>-transactions.csv`` and ``<name>-holdings.csv`` into ``folder``; return their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    f = book.fills(name, url=url)
    flows = book.cash_flows(name, url=url)
    trades = pd.DataFrame({"id": f["order_id"], "timestamp": f["timestamp"], "type": f["side"], "symbol": f["symbol"],
                           "qty": f["qty"], "price": f["price"], "fees": f["fees"], "amount": np.nan})
    cash = pd.DataFrame({"id": flows["flow_id"], "timestamp": flows["timestamp"],
                         "type": np.where(flows["amount"] >= 0, "deposit", "withdrawal"), "symbol": "",
                         "qty": np.nan, "price": np.nan, "fees": np.nan, "amount": flows["amount"].abs()})
    tx = pd.concat([d for d in (trades, cash) if len(d)] or [trades]).sort_values(["timestamp", "id"])
    held = book.positions(name, url=url)
    hold = pd.DataFrame([{"symbol": s, "qty": q, "price": _avg_cost(f, s), "timestamp": book.last_session(name, url=url)}
                         for s, q in sorted(held.items()) if q != 0], columns=_HOLD)
    paths = {"transactions": folder / f"{name}-transactions.csv", "holdings": folder / f"{name}-holdings.csv"}
    to_csv(tx[_TX], paths["transactions"], index=False, float_format="%.17g")
    to_csv(hold, paths["holdings"], index=False, float_format="%.17g")
    return paths


def _avg_cost(f: pd.DataFrame, symbol: str) -> float:
    g = f[f["symbol"] == symbol]
    pos, avg = 0.0, 0.0
    for r in g.itertuples():
        q = r.qty if r.side == "buy" else -r.qty
        if pos == 0 or np.sign(q) == np.sign(pos):
            avg = (avg * abs(pos) + r.price * abs(q)) / (abs(pos) + abs(q))
        elif abs(q) > abs(pos):
            avg = r.price
        pos += q
    return float(avg)


def import_csv(name: str, path: str | Path, *, url: str | None = None) -> dict[str, int]:
    """Import a transactions or holdings CSV (recognised by its header) into account ``name``.

    Returns
    -------
    dict
        ``fills`` and ``flows`` written.

    Raises
    ------
    AccountError
        Naming the file and line of the first invalid row; nothing is written then.
    """
    path = Path(path)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise book.AccountError(f"{path}: not a readable CSV file ({exc})") from None
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    if "type" in raw.columns:
        return import_transactions(name, raw, source=str(path), url=url)
    if {"symbol", "qty", "price"} <= set(raw.columns):
        return import_transactions(name, _holdings_as_transactions(raw, path), source=str(path), url=url)
    raise book.AccountError(f"{path}: expected a transactions file ({', '.join(_TX)}) or a holdings file "
                            f"({', '.join(_HOLD)}); got columns {list(raw.columns)}")


def _holdings_as_transactions(raw: pd.DataFrame, path: Path) -> pd.DataFrame:
    ts = raw["timestamp"] if "timestamp" in raw.columns else pd.Series("", index=raw.index)
    buys = pd.DataFrame({"id": [f"holding-{path.stem}-{i + 2}" for i in range(len(raw))], "timestamp": ts,
                         "type": "transfer", "symbol": raw["symbol"], "qty": raw["qty"], "price": raw["price"],
                         "fees": "0", "amount": ""})
    return buys


def _fail(source: str, line: int, what: str) -> book.AccountError:
    return book.AccountError(f"{source}: line {line}: {what}; nothing was imported")


def _number(source: str, line: int, field: str, text: str, *, positive: bool = True, optional: bool = False) -> float:
    text = str(text).strip()
    if optional and text == "":
        return 0.0
    try:
        value = float(text)
    except ValueError:
        raise _fail(source, line, f"{field} {text!r} is not a number") from None
    if not np.isfinite(value) or (value <= 0 if positive else value < 0):
        raise _fail(source, line, f"{field} must be {'> 0' if positive else '>= 0'}, got {text!r}")
    return value


def _parse(name: str, raw: pd.DataFrame, source: str, account: book.Account, last, known_ids: set[str]) -> list[dict]:
    missing = [c for c in ("id", "timestamp", "type") if c not in raw.columns]
    if missing:
        raise book.AccountError(f"{source}: missing columns {missing}; expected {', '.join(_TX)}")
    rows, seen, now = [], set(), pd.Timestamp.now(tz="UTC")
    text = raw["timestamp"].astype(str).str.strip()
    stamps = pd.to_datetime(text, errors="coerce", utc=True)
    for i, r in enumerate(raw.to_dict(orient="records")):
        line = i + 2
        rid = str(r.get("id", "")).strip()
        if not rid:
            raise _fail(source, line, "id is empty")
        if rid in seen or f"{name}:import:{rid}" in known_ids:
            raise _fail(source, line, f"duplicate id {rid!r}")
        seen.add(rid)
        ts = stamps.iloc[i]
        if pd.isna(ts):
            try:
                ts = pd.Timestamp(text.iloc[i])
            except (ValueError, TypeError):
                ts = pd.NaT
        if pd.isna(ts):
            raise _fail(source, line, f"timestamp {r.get('timestamp')!r} is not a date")
        ts = to_utc(ts)
        if last is not None and ts <= last:
            raise _fail(source, line, f"timestamp {ts:%Y-%m-%d %H:%M} is not after the account's last session "
                                      f"({last:%Y-%m-%d %H:%M}); sessions already written are sealed")
        if ts > now:
            raise _fail(source, line, f"timestamp {ts:%Y-%m-%d %H:%M} is in the future (now {now:%Y-%m-%d %H:%M})")
        if len(f"{name}:import:{rid}:value") > book.flows_t.c.flow_id.type.length:
            raise _fail(source, line, f"id {rid[:20]!r}... is too long: with the account name it must fit "
                                      f"{book.flows_t.c.flow_id.type.length} characters")
        kind = str(r.get("type", "")).strip().lower()
        row = {"id": rid, "timestamp": ts, "type": kind, "line": line}
        if kind in ("buy", "sell", "transfer"):
            sym = str(r.get("symbol", "")).strip()
            if sym not in account.symbols:
                raise _fail(source, line, f"unknown symbol {sym!r}; the account trades {', '.join(account.symbols)}")
            row.update(symbol=sym, qty=_number(source, line, "qty", r.get("qty", "")),
                       price=_number(source, line, "price", r.get("price", "")),
                       fees=_number(source, line, "fees", r.get("fees", ""), positive=False, optional=True))
            value = row["qty"] * row["price"] + row["fees"]
            if not np.isfinite(value):
                raise _fail(source, line, f"qty x price + fees overflows ({row['qty']:g} x {row['price']:g} + "
                                          f"{row['fees']:g} is {value}); check the units")
        elif kind in ("deposit", "withdrawal"):
            row["amount"] = _number(source, line, "amount", r.get("amount", ""))
        else:
            raise _fail(source, line, f"type {kind!r} must be buy, sell, deposit or withdrawal")
        rows.append(row)
    return sorted(rows, key=lambda x: (x["timestamp"], x["line"]))


def _note(source: str) -> str:
    """The note of an imported flow: the file's name, cut to the column's width."""
    return f"import {Path(source).name}"[:book.flows_t.c.note.type.length]


def _check_long_only(rows: list[dict], held: dict[str, float], source: str) -> None:
    pos = dict(held)
    for r in rows:
        if r["type"] in ("buy", "sell", "transfer"):
            q = -r["qty"] if r["type"] == "sell" else r["qty"]
            pos[r["symbol"]] = pos.get(r["symbol"], 0.0) + q
            if pos[r["symbol"]] < -book.TOLERANCE:
                raise _fail(source, r["line"], f"selling {r['qty']:g} {r['symbol']} leaves a negative position "
                                               f"({pos[r['symbol']]:g}) on a long-only account")


def import_transactions(name: str, raw: pd.DataFrame, *, source: str = "transactions", url: str | None = None
                        ) -> dict[str, int]:
    """Validate and apply transaction rows (the columns of the transactions CSV, as text) in one transaction."""
    import sqlalchemy as sa

    from research.paper import audit

    with connect(url).begin() as conn:
        account = book.get_account(name, conn=conn)
        tip = audit.before_write(conn, name)
        last = book.last_session(name, conn=conn)
        known = {r[0] for r in conn.execute(sa.select(book.orders_t.c.order_id).where(book.orders_t.c.account == name))}
        known |= {r[0] for r in conn.execute(sa.select(book.flows_t.c.flow_id).where(book.flows_t.c.account == name))}
        rows = _parse(name, raw, source, account, last, known)
        if account.long_only:
            _check_long_only(rows, book.positions(name, conn=conn), source)
        orders, fills, flows = [], [], 0
        for r in rows:
            oid = f"{name}:import:{r['id']}"
            if r["type"] in ("deposit", "withdrawal"):
                sign = 1.0 if r["type"] == "deposit" else -1.0
                book.insert_flow(conn, name, oid, sign * r["amount"], r["timestamp"], _note(source))
                flows += 1
                continue
            side = "sell" if r["type"] == "sell" else "buy"
            orders.append(book.OrderRow(oid, r["symbol"], side, r["qty"], r["timestamp"], r["timestamp"], "filled",
                                        "import" if r["type"] != "transfer" else "transfer in"))
            fills.append(book.FillRow(oid, r["symbol"], side, r["qty"], r["price"], r["price"], r["fees"],
                                      r["timestamp"]))
            if r["type"] == "transfer":
                book.insert_flow(conn, name, f"{oid}:value", r["qty"] * r["price"], r["timestamp"], "transfer in")
                flows += 1
        book.insert_orders(conn, name, orders)
        book.insert_fills(conn, name, fills)
        audit.after_import(conn, name, tip)
    return {"fills": len(fills), "flows": flows}
