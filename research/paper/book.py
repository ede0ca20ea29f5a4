"""The book: paper accounts, their orders, fills, cash flows and sessions in the ledger database.

Tables (declared on :data:`research.paper.db.metadata` in :mod:`research.paper.tables`)
-------------------------------------------------------------------------------------
=============  ==============================================================================
table          one row per
=============  ==============================================================================
paper_accounts an account: strategy, params, symbols, sizing, risk rules, costs, initial cash
paper_orders   an order: ``order_id`` (deterministic, ``account:symbol:decided_at``), side and
               qty (asked while pending, executed once filled), target weight, bar decided at,
               bar it is for, status (``pending``/``filled``/``cancelled``) and reason
paper_fills    a fill: ``order_id`` is UNIQUE (one fill per order), qty, price (slippage
               included), quote (price before slippage), fees, timestamp
paper_flows    a cash flow (deposit > 0, withdrawal < 0), e.g. the value of imported holdings
paper_sessions a session of an account: as-of bar, cash, equity at the close, positions and the
               target weights decided for the next bar
paper_seals    a session's seal: the chained digest of its rows (:mod:`research.paper.seal`)
paper_ledger   the ledger's id, checked at every write
=============  ==============================================================================

Every business event (a session, an import) is one transaction, verified inside it before it
commits (:mod:`research.paper.audit`): the database is still the one opened, the last seal
matches its rows, the new session's cash and positions equal the previous session's plus the
flows and fills since, the row rules hold, and the session is sealed. :func:`check` verifies
the whole book: every session rebuilt, every seal checked. Sessions are appended in order;
writing a session that is already in the ledger changes nothing.

Times are stored as naive UTC and returned as UTC timestamps.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from research.paper import audit
from research.paper import seal as _seal
from research.paper.db import LedgerError, connect
from research.paper.tables import (
    TIME_INDEXES,
    TOLERANCE,
    AccountError,
    accounts_t,
    fills_t,
    flows_t,
    orders_t,
    sessions_t,
)
from research.strategies.sizing import check_sizing
from research.timeutil import naive_utc_now, to_naive_utc, to_utc, to_utc_index

log = logging.getLogger(__name__)

__all__ = [
    "Account", "SessionWrite", "OrderRow", "FillRow", "create_account", "get_account", "list_accounts",
    "delete_account", "write_session", "last_session", "session_equity", "pending_orders", "positions", "cash", "orders", "fills", "sessions",
    "cash_flows", "check", "TOLERANCE", "AccountError", "accounts_t", "orders_t", "fills_t", "flows_t", "sessions_t",
    "TIME_INDEXES", "validate_name",
]

@dataclass(frozen=True)
class Account:
    """A paper account: what it follows and how it trades.

    Attributes
    ----------
    name : str
        Unique name.
    strategy : str
        Registered strategy (:data:`research.strategies.STRATEGIES`).
    symbols : list of str
        Universe, sorted; one shared-cash book.
    params, sizing, sizing_params : as in :func:`research.backtest.backtest`.
    risk : dict
        ``stop_loss``, ``take_profit``, ``trailing_stop``, ``max_drawdown`` (fractions) and the
        caps ``max_position``, ``max_gross`` and ``rebalance``; absent keys are off.
    fees, slippage, whole_shares, initial_cash : as in the backtest.
    calendar : str
        ``"equity"`` (252 sessions a year) or ``"crypto"`` (365, 24/7).
    source, interval : str
        Where its prices come from (``load_prices``).
    pipeline : str, optional
        Pipeline whose ``paper`` stage steps it (e.g. ``"daily"``).
    long_only : bool
        Refuse negative positions (from the strategy's ``direction`` parameter).
    created : datetime
        When it was created (UTC).
    """

    name: str
    strategy: str
    symbols: list[str]
    params: dict[str, Any] = field(default_factory=dict)
    sizing: str = "all_in"
    sizing_params: dict[str, Any] = field(default_factory=dict)
    risk: dict[str, Any] = field(default_factory=dict)
    fees: float = 0.0
    slippage: float = 0.0
    whole_shares: bool = False
    initial_cash: float = 100_000.0
    calendar: str = "equity"
    source: str = "sample"
    interval: str = "1d"
    pipeline: str | None = None
    long_only: bool = True
    created: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly fields."""
        out = asdict(self)
        out["created"] = self.created.isoformat() if self.created else None
        return out


@dataclass
class OrderRow:
    """An order to write: ``side`` buy/sell, ``qty`` >= 0, ``status`` pending/filled/cancelled."""

    order_id: str
    symbol: str
    side: str
    qty: float
    decided_at: pd.Timestamp
    for_bar: pd.Timestamp | None
    status: str
    reason: str
    target_weight: float | None = None


@dataclass
class FillRow:
    """A fill to write: one per order; ``price`` includes slippage, ``quote`` does not."""

    order_id: str
    symbol: str
    side: str
    qty: float
    price: float
    quote: float
    fees: float
    timestamp: pd.Timestamp


@dataclass
class SessionWrite:
    """Everything one session writes in one transaction.

    Attributes
    ----------
    as_of : Timestamp
        The session's bar.
    cash, equity : float
        After the session's fills; equity at the bar's close.
    positions : dict
        Shares held per symbol after the fills (checked against the fills).
    targets : dict
        Target weights decided at this close for the next bar.
    updates : dict
        Existing pending orders: order id -> (new status, reason), optionally with a mapping of
        other columns; a filled order records the side and quantity it was filled with (it asked
        for a target weight; its side and quantity were estimated at the deciding close).
    orders, fills : list
        New orders (pending ones for the next bar, stops filled now) and this bar's fills.
    """

    as_of: pd.Timestamp
    cash: float
    equity: float
    positions: dict[str, float]
    targets: dict[str, Any]
    updates: dict[str, tuple] = field(default_factory=dict)
    orders: list[OrderRow] = field(default_factory=list)
    fills: list[FillRow] = field(default_factory=list)


# --------------------------------------------------------------------------- times

def naive_utc(ts: object) -> datetime:
    """A timestamp as a naive UTC datetime (how the ledger stores times)."""
    return to_naive_utc(ts).to_pydatetime()


# --------------------------------------------------------------------------- accounts

NAME_CHARACTERS = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
"""An account name: ASCII letters, digits, ``_``, ``.`` and ``-``, starting with a letter or digit."""


def validate_name(name: object) -> str:
    """``name`` if it is a valid account name, else an :class:`AccountError` saying why.

    The same limits on every database: at most as long as the ``name`` column (100), only the
    characters of :data:`NAME_CHARACTERS`, so no name starts with a character a spreadsheet
    reads as a formula (``= + - @``).
    """
    limit = accounts_t.c.name.type.length
    if not isinstance(name, str) or not name:
        raise AccountError(f"account name must be a non-empty string, got {name!r}")
    if len(name) > limit:
        raise AccountError(f"account name is {len(name)} characters long; the ledger allows at most {limit} "
                           f"(got {name[:20]!r}...)")
    if not NAME_CHARACTERS.fullmatch(name):
        first = " (it starts with a formula character)" if name[0] in "=+-@\t\r" else ""
        raise AccountError(f"account name {name!r} is not allowed{first}: use letters, digits, '_', '.' and '-', "
                           f"starting with a letter or digit")
    return name


def create_account(account: Account, *, url: str | None = None) -> Account:
    """Create ``account`` (and its first seal); an :class:`AccountError` if the name is invalid or taken."""
    validate_name(account.name)
    if not account.symbols:
        raise AccountError(f"account {account.name!r} needs at least one symbol")
    long = [s for s in account.symbols if not s or len(str(s)) > fills_t.c.symbol.type.length]
    if long:
        raise AccountError(f"symbols must be 1 to {fills_t.c.symbol.type.length} characters; got {long[:3]}")
    if not account.initial_cash > 0:
        raise AccountError(f"initial cash must be positive, got {account.initial_cash!r}")
    try:  # refused now rather than at every later step
        check_sizing(account.sizing, account.sizing_params)
    except ValueError as exc:
        raise AccountError(f"account {account.name!r}: {exc}") from None
    row = account.to_dict()
    row["symbols"] = sorted(dict.fromkeys(account.symbols))
    row["created"] = naive_utc_now()
    engine = connect(url)
    with engine.begin() as conn:
        if conn.execute(sa.select(accounts_t.c.name).where(accounts_t.c.name == account.name)).first():
            raise AccountError(f"account {account.name!r} already exists (see `workbench paper show {account.name}`)")
        _seal.check_identity(conn)
        conn.execute(accounts_t.insert().values(**row))
        audit.seal_account(conn, account.name)
    return get_account(account.name, url=url)


def _account(row: Mapping[str, Any]) -> Account:
    data = dict(row)
    return Account(**data)


def get_account(name: str, *, url: str | None = None, conn: Connection | None = None) -> Account:
    """The account called ``name``; a :class:`LedgerError` naming the known ones if absent."""
    if conn is None:
        with connect(url).connect() as c:
            return get_account(name, conn=c)
    row = conn.execute(sa.select(accounts_t).where(accounts_t.c.name == name)).mappings().first()
    if row is None:
        known = [r[0] for r in conn.execute(sa.select(accounts_t.c.name).order_by(accounts_t.c.name))]
        raise AccountError(f"no paper account {name!r}; accounts: {', '.join(known) or 'none'} "
                          f"(create one with `workbench paper start`)")
    return _account(row)


def list_accounts(*, url: str | None = None, pipeline: str | None = None) -> list[Account]:
    """All accounts (those stepped by ``pipeline`` only, when given), by name."""
    q = sa.select(accounts_t).order_by(accounts_t.c.name)
    if pipeline is not None:
        q = q.where(accounts_t.c.pipeline == pipeline)
    with connect(url).connect() as conn:
        return [_account(r) for r in conn.execute(q).mappings()]


def delete_account(name: str, *, url: str | None = None) -> None:
    """Remove an account and everything it recorded."""
    with connect(url).begin() as conn:
        get_account(name, conn=conn)
        order_ids = sa.select(orders_t.c.order_id).where(orders_t.c.account == name)
        conn.execute(fills_t.delete().where(fills_t.c.order_id.in_(order_ids)))
        for table in (orders_t, flows_t, sessions_t, _seal.seals_t):
            conn.execute(table.delete().where(table.c.account == name))
        conn.execute(accounts_t.delete().where(accounts_t.c.name == name))


# --------------------------------------------------------------------------- writes

def write_session(name: str, session: SessionWrite, *, url: str | None = None) -> bool:
    """Write one session in one transaction; ``False`` (and no change) if it is already there.

    Raises
    ------
    LedgerError
        If an invariant fails afterwards (nothing is written then).
    """
    as_of = naive_utc(session.as_of)
    try:
        return _write_session(name, session, as_of, url)
    except sa.exc.IntegrityError as exc:
        raise LedgerError(f"account {name!r}: the session of {as_of:%Y-%m-%d %H:%M} conflicts with rows already in "
                          f"the ledger (another process stepping the same account?): {exc.orig}") from None


def _write_session(name: str, session: SessionWrite, as_of: datetime, url: str | None) -> bool:
    with connect(url).begin() as conn:
        get_account(name, conn=conn)
        exists = conn.execute(sa.select(sessions_t.c.as_of).where(
            sessions_t.c.account == name, sessions_t.c.as_of == as_of)).first()
        if exists:
            return False
        tip = audit.before_write(conn, name)
        executed = {f.order_id: f for f in session.fills}
        for order_id, (status, reason, *changes) in session.updates.items():
            values: dict[str, Any] = {"status": status, "reason": reason}
            if status == "filled" and order_id in executed:  # the order records what was executed
                values |= {"side": executed[order_id].side, "qty": float(executed[order_id].qty)}
            values |= dict(changes[0]) if changes else {}  # e.g. the share a buy clipped to the cash got
            conn.execute(orders_t.update().where(orders_t.c.order_id == order_id, orders_t.c.account == name)
                         .values(**values))
        insert_orders(conn, name, session.orders)
        insert_fills(conn, name, session.fills)
        conn.execute(sessions_t.insert().values(
            account=name, as_of=as_of, status="done", cash=float(session.cash), equity=float(session.equity),
            positions={k: float(v) for k, v in session.positions.items()}, targets=_jsonable(session.targets),
            created=naive_utc_now()))
        audit.after_write(conn, name, tip, as_of, session.updates)
    return True


def insert_orders(conn: Connection, name: str, rows: Iterable[OrderRow]) -> None:
    """Insert orders of account ``name`` (inside the caller's transaction)."""
    values = [{"order_id": o.order_id, "account": name, "symbol": o.symbol, "side": o.side, "qty": float(o.qty),
               "target_weight": None if o.target_weight is None else float(o.target_weight),
               "decided_at": naive_utc(o.decided_at), "for_bar": None if o.for_bar is None else naive_utc(o.for_bar),
               "status": o.status, "reason": o.reason} for o in rows]
    if values:
        conn.execute(orders_t.insert(), values)


def insert_fills(conn: Connection, name: str, rows: Iterable[FillRow]) -> None:
    """Insert fills of account ``name`` (inside the caller's transaction)."""
    values = [{"fill_id": f"fill:{f.order_id}", "order_id": f.order_id, "account": name, "symbol": f.symbol,
               "side": f.side, "qty": float(f.qty), "price": float(f.price), "quote": float(f.quote),
               "fees": float(f.fees), "timestamp": naive_utc(f.timestamp)} for f in rows]
    if values:
        conn.execute(fills_t.insert(), values)


def insert_flow(conn: Connection, name: str, flow_id: str, amount: float, timestamp: object, note: str) -> None:
    """Insert one cash flow (inside the caller's transaction)."""
    conn.execute(flows_t.insert().values(flow_id=flow_id, account=name, amount=float(amount),
                                         timestamp=naive_utc(timestamp), note=note))


def _jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if hasattr(x, "item"):
        return _jsonable(x.item())
    return x


# --------------------------------------------------------------------------- reads

def _signed_qty():
    return sa.case((fills_t.c.side == "buy", fills_t.c.qty), else_=-fills_t.c.qty)


def positions(name: str, *, url: str | None = None, conn: Connection | None = None,
              until: object = None) -> dict[str, float]:
    """Shares held per symbol: the sum of the account's fills (up to ``until`` inclusive)."""
    if conn is None:
        with connect(url).connect() as c:
            return positions(name, conn=c, until=until)
    q = sa.select(fills_t.c.symbol, sa.func.sum(_signed_qty())).where(fills_t.c.account == name)
    if until is not None:
        q = q.where(fills_t.c.timestamp <= naive_utc(until))
    return {s: float(q_) for s, q_ in conn.execute(q.group_by(fills_t.c.symbol))}


def cash(name: str, *, url: str | None = None, conn: Connection | None = None, until: object = None,
         account: Account | None = None) -> float:
    """Cash: initial cash + flows - fees - net purchases (up to ``until`` inclusive).

    The exactly rounded sum (:func:`math.fsum`) of those amounts
    (:func:`research.backtest.plan.ledger_terms`), so the figure does not depend on the order
    in which the database returns the rows, and a book whose buys were clipped to its cash
    never shows a negative balance.
    """
    from research.backtest.plan import ledger_terms

    if conn is None:
        with connect(url).connect() as c:
            return cash(name, conn=c, until=until, account=account)
    acct = account or get_account(name, conn=conn)
    trade = sa.select(fills_t.c.side, fills_t.c.qty, fills_t.c.price, fills_t.c.fees).where(fills_t.c.account == name)
    flow = sa.select(flows_t.c.amount).where(flows_t.c.account == name)
    if until is not None:
        trade = trade.where(fills_t.c.timestamp <= naive_utc(until))
        flow = flow.where(flows_t.c.timestamp <= naive_utc(until))
    terms = [float(acct.initial_cash), *(float(a) for (a,) in conn.execute(flow))]
    for side, qty, price, fee in conn.execute(trade):
        terms += ledger_terms(side, float(qty), float(price), float(fee))
    return math.fsum(terms)


def _frame(conn: Connection, query, times: tuple[str, ...]) -> pd.DataFrame:
    res = conn.execute(query)
    df = pd.DataFrame([tuple(r) for r in res.fetchall()], columns=list(res.keys()))
    for col in times:
        if col in df:
            df[col] = pd.to_datetime(df[col], utc=True)
    return df


def orders(name: str, *, url: str | None = None, status: str | None = None) -> pd.DataFrame:
    """The account's orders (columns of ``paper_orders``), by decision time."""
    q = sa.select(orders_t).where(orders_t.c.account == name)
    if status is not None:
        q = q.where(orders_t.c.status == status)
    with connect(url).connect() as conn:
        get_account(name, conn=conn)
        return _frame(conn, q.order_by(orders_t.c.decided_at, orders_t.c.symbol), ("decided_at", "for_bar"))


def fills(name: str, *, url: str | None = None) -> pd.DataFrame:
    """The account's fills joined with their order's reason, by time."""
    q = (sa.select(fills_t, orders_t.c.reason).join(orders_t, orders_t.c.order_id == fills_t.c.order_id)
         .where(fills_t.c.account == name).order_by(fills_t.c.timestamp, fills_t.c.fill_id))
    with connect(url).connect() as conn:
        get_account(name, conn=conn)
        return _frame(conn, q, ("timestamp",))


def sessions(name: str, *, url: str | None = None) -> pd.DataFrame:
    """The account's sessions: ``as_of, status, cash, equity, positions, targets``, by time."""
    q = sa.select(sessions_t).where(sessions_t.c.account == name).order_by(sessions_t.c.as_of)
    with connect(url).connect() as conn:
        get_account(name, conn=conn)
        return _frame(conn, q, ("as_of", "created"))


def cash_flows(name: str, *, url: str | None = None) -> pd.DataFrame:
    """The account's cash flows, by time."""
    q = sa.select(flows_t).where(flows_t.c.account == name).order_by(flows_t.c.timestamp, flows_t.c.flow_id)
    with connect(url).connect() as conn:
        get_account(name, conn=conn)
        return _frame(conn, q, ("timestamp",))


def session_equity(name: str, *, url: str | None = None, conn: Connection | None = None) -> pd.Series:
    """Equity at each session's close (index: as-of bar, UTC), by time."""
    if conn is None:
        with connect(url).connect() as c:
            return session_equity(name, conn=c)
    rows = conn.execute(sa.select(sessions_t.c.as_of, sessions_t.c.equity).where(sessions_t.c.account == name)
                        .order_by(sessions_t.c.as_of)).all()
    index = to_utc_index(pd.DatetimeIndex([r[0] for r in rows], name="as_of"))
    return pd.Series([float(r[1]) for r in rows], index=index, name="equity", dtype="float64")


def pending_orders(name: str, *, url: str | None = None, conn: Connection | None = None) -> dict[str, str]:
    """The account's pending orders: symbol -> order id."""
    if conn is None:
        with connect(url).connect() as c:
            return pending_orders(name, conn=c)
    q = sa.select(orders_t.c.symbol, orders_t.c.order_id).where(orders_t.c.account == name,
                                                                 orders_t.c.status == "pending")
    return {s: o for s, o in conn.execute(q.order_by(orders_t.c.decided_at))}


def last_session(name: str, *, url: str | None = None, conn: Connection | None = None) -> pd.Timestamp | None:
    """The as-of bar of the account's latest session, or None."""
    if conn is None:
        with connect(url).connect() as c:
            return last_session(name, conn=c)
    value = conn.execute(sa.select(sa.func.max(sessions_t.c.as_of)).where(sessions_t.c.account == name)).scalar()
    return None if value is None else to_utc(value)


# --------------------------------------------------------------------------- invariants

def check(name: str, *, url: str | None = None, fields: Mapping[str, pd.DataFrame] | None = None,
          stale_bars: int | None = None) -> list[str]:
    """The account's problems: every session rebuilt and its seal checked (empty when the book is sound).

    See :func:`research.paper.audit.verify` for the rules, the notes and the seal's head digest.
    Besides, no order may have been decided for a symbol whose data was stale at that bar
    (:func:`stale_order_problems`; ``fields`` are the account's prices, loaded when not given;
    ``stale_bars`` defaults to the account's rule).
    """
    from research.data.errors import DataError

    problems = audit.verify(name, url=url).problems
    try:
        stale = stale_order_problems(get_account(name, url=url), fields=fields, url=url, stale_bars=stale_bars)
    except DataError as exc:  # no prices for the account's symbols: the rule cannot be checked, say so
        log.warning("account %s: orders not checked against stale data (%s)", name, exc)
        stale = []
    return problems + stale


def stale_order_problems(account: Account, *, fields: Mapping[str, pd.DataFrame] | None = None,
                         url: str | None = None, stale_bars: int | None = None) -> list[str]:
    """Orders decided at a bar where their symbol's data was stale (:mod:`research.data.freshness`)."""
    from research.data.freshness import STALE_BARS, is_stale, symbol_calendar

    limit = stale_bars if stale_bars is not None else account.risk.get("stale_bars", STALE_BARS)
    rows = orders(account.name, url=url)
    if limit is None or rows.empty:
        return []
    close = _closes(account, rows["decided_at"].max()) if fields is None else fields["close"]
    out = []
    for o in rows.itertuples():
        if o.symbol not in close.columns:
            out.append(f"order {o.order_id} is for {o.symbol}, which has no prices")
            continue
        last = close[o.symbol].loc[:o.decided_at].last_valid_index()
        if is_stale(symbol_calendar(close, o.symbol), account.interval, last, o.decided_at, stale_bars=limit):
            out.append(f"order {o.order_id} ({o.side} {o.symbol}) was decided at {o.decided_at:%Y-%m-%d %H:%M} on "
                       f"stale data (last bar {last if last is None else f'{last:%Y-%m-%d %H:%M}'})")
    return out


def _closes(account: Account, end: pd.Timestamp) -> pd.DataFrame:
    from research.data import load_prices

    prices = load_prices(list(account.symbols), source=account.source, interval=account.interval, end=end,
                         progress=False)
    close = (prices["close"] if isinstance(prices.columns, pd.MultiIndex)
             else prices[["close"]].set_axis(list(account.symbols)[:1], axis=1))
    close.attrs = {**prices.attrs, **close.attrs}
    return close


def to_json(x: Any) -> str:
    """JSON text of ledger values (timestamps as ISO strings, NaN as null)."""
    return json.dumps(_jsonable(x), default=str)
