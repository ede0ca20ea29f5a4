"""Paper trading: step an account through sessions with the backtest engine's rules.

A session ``t`` runs after the close of bar ``t`` and sees only bars ``<= t``:

1. **Fill.** The orders decided at the previous session fill at bar ``t``'s open, and resting
   stops fire inside bar ``t``, with the engine's rules (:mod:`research.backtest.plan`): target
   weights of the book's equity valued at the fill price, slippage and fees, whole shares, a
   partial fill when cash is short, sells before buys. Cash and positions come from the
   ledger (:mod:`research.paper.book`), which is the book's source of truth.
2. **Decide.** The strategy runs on bars ``<= t``; where a symbol's target weight changes, a
   pending order for the next bar is written. The drawdown halt is read from the equity the
   ledger recorded at each session.

Everything a session writes is one transaction. The first session of an account only decides
(the book is flat until the next bar), so an account first stepped as of ``S`` reconciles with
``backtest(..., shared_cash=True, start=<bar after S>)``.

Example
-------
>>> create_account(Account("demo", "ma_crossover", ["SPX", "IXIC"]))   # doctest: +SKIP
>>> step("demo", as_of="2018-06-29")                                   # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from research.backtest.engine import as_fields
from research.backtest.plan import OrderPlan, execute_bar, order_plan
from research.data.asof import AsOf
from research.data.freshness import STALE_BARS, bar_age, bars_behind, symbol_calendar
from research.paper import book
from research.paper.db import LedgerError, connect
from research.strategies.stops import RiskRules
from research.timeutil import on_clock_of

__all__ = ["load_fields", "next_bar", "session", "step", "run_sessions", "pending_bars", "risk_rules", "account_periods_per_year",
           "stale_bars", "stale_account_symbols", "bound"]

log = logging.getLogger(__name__)
CLIPPED = "; clipped to cash"
"""Appended to the reason of an order whose buy the cash could not cover in full (the backtest's
partial fill); the session records the share of the book it bought (``targets["clipped"]``)."""
_RULES = ("stop_loss", "take_profit", "trailing_stop", "max_drawdown")


def risk_rules(account: book.Account) -> RiskRules:
    """The account's stop and drawdown rules."""
    return RiskRules(**{k: account.risk.get(k) for k in _RULES})


def stale_bars(account: book.Account) -> int | None:
    """Bars a symbol may lag before the account stops trading it (``risk["stale_bars"]``, default 3)."""
    return account.risk.get("stale_bars", STALE_BARS)


def stale_account_symbols(account: book.Account, close: pd.DataFrame, t: pd.Timestamp) -> dict[str, dict[str, Any]]:
    """The account's symbols that are stale at bar ``t`` (:mod:`research.data.freshness`), with their age.

    Returns symbol -> ``{"last_bar", "bars_behind", "age_days"}`` (``last_bar`` None: no bar yet).
    """
    limit = stale_bars(account)
    out: dict[str, dict[str, Any]] = {}
    if limit is None:
        return out
    for sym in close.columns:
        last = close[sym].loc[:t].last_valid_index()
        if last is None:
            out[str(sym)] = {"last_bar": None, "bars_behind": None, "age_days": None}
            continue
        behind = bars_behind(symbol_calendar(close, str(sym)), account.interval, last, t)
        if behind > limit:
            out[str(sym)] = {"last_bar": str(last), "bars_behind": behind,
                             "age_days": round(bar_age(last, t) / pd.Timedelta(days=1), 4)}
    return out


def account_periods_per_year(account: book.Account) -> float:
    """Sessions per year from the account's calendar and interval (252 or 365 a year for days)."""
    from research.data.calendars import get_calendar

    try:
        return float(get_calendar(account.calendar).periods(account.interval))
    except KeyError:
        return 252.0


def load_fields(account: book.Account, *, end: object = None) -> dict[str, pd.DataFrame]:
    """Wide ``open, high, low, close`` frames of the account's symbols (bars up to ``end``)."""
    from research.data import load_prices

    end = None if end is None else AsOf.parse(end, interval=account.interval).end  # a date: its whole session
    prices = load_prices(list(account.symbols), source=account.source, interval=account.interval,
                         end=end, progress=False)
    fields = as_fields(prices)
    return {k: fields[k][list(account.symbols)] for k in ("open", "high", "low", "close") if k in fields}


def next_bar(account: book.Account, t: pd.Timestamp) -> pd.Timestamp:
    """The bar after ``t`` on the account's calendar (the next session, or ``t`` plus one bar)."""
    from research.data.calendars import get_calendar

    if account.interval == "1d":
        cal = get_calendar(account.calendar)
        return cal.sessions(t + pd.Timedelta(days=1), t + pd.Timedelta(days=15))[0]
    step = {"1h": pd.Timedelta(hours=1), "1wk": pd.Timedelta(weeks=1)}.get(account.interval)
    return t + step if step is not None else t + pd.DateOffset(months=1)


# --------------------------------------------------------------------------- one session

def _plan(account: book.Account, sub: Mapping[str, pd.DataFrame], first: pd.Timestamp, nxt: pd.Timestamp,
          halt_from: pd.Timestamp | None) -> OrderPlan:
    caps = {k: account.risk.get(k) for k in ("rebalance", "max_position", "max_gross")}
    return order_plan(sub, account.strategy, first=first, params=account.params, sizing=account.sizing,
                      sizing_params=account.sizing_params, risk=risk_rules(account), halt_from=halt_from,
                      next_bar=nxt, periods_per_year=account_periods_per_year(account), stale_bars=stale_bars(account),
                      **caps)


def _halt_from(account: book.Account, equity: pd.Series, index: pd.Index, nxt: pd.Timestamp) -> pd.Timestamp | None:
    """First bar of the drawdown halt: the bar after the first close ``max_drawdown`` below the peak."""
    max_dd = account.risk.get("max_drawdown")
    if not max_dd or equity.empty:
        return None
    peak = np.maximum(np.fmax.accumulate(equity.to_numpy()), account.initial_cash)
    hit = np.flatnonzero(equity.to_numpy() / peak - 1.0 <= -max_dd)
    if hit.size == 0:
        return None
    at = equity.index[hit[0]]
    later = index[index > at]
    return later[0] if len(later) else nxt


def _fill_bar(account: book.Account, plan: OrderPlan, t: pd.Timestamp, pending: dict[str, str],
              held: dict[str, float], cash: float) -> tuple[float, dict[str, float], book.SessionWrite]:
    cols = [str(c) for c in plan.size.columns]
    out = book.SessionWrite(as_of=t, cash=cash, equity=np.nan, positions={}, targets={})
    pend = dict(pending)
    if t in plan.size.index:
        res = execute_bar(cash, np.array([held.get(c, 0.0) for c in cols]), plan.size.loc[t].to_numpy(),
                          plan.price.loc[t].to_numpy(), plan.price.loc[:t].ffill().loc[t].to_numpy(),
                          fees=account.fees, slippage=account.slippage, whole_shares=account.whole_shares)
        cash = res.cash
        held = dict(held) | {c: float(res.positions[k]) for k, c in enumerate(cols)}
        quotes, reasons = plan.price.loc[t], plan.reason.loc[t]
        for f in res.fills:
            sym = cols[f.column]
            order_id = pend.pop(sym, None)
            if order_id is None:
                order_id = f"{account.name}:{sym}:{t:%Y%m%dT%H%M}:{reasons[sym]}"
                target = f.weight if f.clipped else float(plan.size.loc[t, sym])
                out.orders.append(book.OrderRow(order_id, sym, f.side, f.qty, t, t, "filled",
                                                reasons[sym] + (CLIPPED if f.clipped else ""), target))
            elif f.clipped:  # the order keeps the target it asked for; the session records the share bought
                out.updates[order_id] = ("filled", reasons[sym] + CLIPPED)
                out.targets.setdefault("clipped", {})[sym] = f.weight
            else:
                out.updates[order_id] = ("filled", reasons[sym])
            out.fills.append(book.FillRow(order_id, sym, f.side, f.qty, f.price, float(quotes[sym]), f.fees, t))
        for sym, order_id in pend.items():
            why = res.status.get(cols.index(sym)) if sym in cols else None
            out.updates[order_id] = ("cancelled", why or "no order at this bar (no valid open price)")
    else:
        for order_id in pend.values():
            out.updates[order_id] = ("cancelled", "no bar")
    out.cash = cash
    return cash, held, out


def _decide(account: book.Account, plan: OrderPlan, t: pd.Timestamp, nxt: pd.Timestamp, held: dict[str, float],
            equity: float, close: pd.Series) -> tuple[list[book.OrderRow], dict[str, Any]]:
    row = plan.size.loc[nxt]
    orders, weights = [], {}
    for sym, w in row.items():
        if not np.isfinite(w):
            continue
        px = close.get(sym, np.nan)
        qty = (w * equity / px - held.get(sym, 0.0)) if px and np.isfinite(px) and px > 0 else 0.0
        weights[str(sym)] = float(w)
        orders.append(book.OrderRow(f"{account.name}:{sym}:{t:%Y%m%dT%H%M}", str(sym), "buy" if qty >= 0 else "sell",
                                    abs(float(qty)), t, nxt, "pending", str(plan.reason.loc[nxt, sym]), float(w)))
    targets = {"weights": weights, "held": {str(k): int(v) for k, v in plan.held.loc[nxt].items()}, "next_bar": str(nxt)}
    return orders, targets


def session(account: book.Account, fields: Mapping[str, pd.DataFrame], t: pd.Timestamp, *,
            url: str | None = None) -> book.SessionWrite | None:
    """Run (and write) the session ``t`` of ``account`` on ``fields`` cut at ``t``; None if already written."""
    sub = {k: v.loc[:t] for k, v in fields.items()}
    index = sub["close"].index
    nxt = next_bar(account, t)
    with connect(url).connect() as conn:
        equity_log = book.session_equity(account.name, conn=conn)
        if t in equity_log.index:
            return None
        held = book.positions(account.name, conn=conn, until=t)  # an import dated later applies at its date
        cash = book.cash(account.name, conn=conn, until=t)
        pending = book.pending_orders(account.name, conn=conn)
    first_session = equity_log.index[0] if len(equity_log) else t
    later = index[index > first_session]
    first = later[0] if len(later) else nxt
    traded = equity_log[equity_log.index > first_session]
    halt = _halt_from(account, traded, index, nxt)
    plan = _plan(account, sub, first, nxt, halt)
    cash, held, out = _fill_bar(account, plan, t, pending, held, cash)
    close = sub["close"].ffill().iloc[-1]
    equity = cash + sum(q * float(close.get(s, 0.0)) for s, q in held.items() if q != 0)
    if halt is None and account.risk.get("max_drawdown") and t > first_session:
        new_halt = _halt_from(account, pd.concat([traded, pd.Series([equity], index=[t])]), index, nxt)
        if new_halt is not None:
            plan = _plan(account, sub, first, nxt, new_halt)
    new_orders, targets = _decide(account, plan, t, nxt, held, equity, close)
    out.targets = targets | ({"clipped": out.targets["clipped"]} if "clipped" in out.targets else {})
    out.targets["stale"] = stale_account_symbols(account, sub["close"], t)  # flagged; held ones stay at their last close
    out.orders += new_orders
    out.equity, out.positions = float(equity), dict(held)
    book.write_session(account.name, out, url=url)
    return out


# --------------------------------------------------------------------------- many sessions

def run_sessions(account: book.Account, fields: Mapping[str, pd.DataFrame], bars: Iterable[pd.Timestamp], *,
                 url: str | None = None, progress: bool = False) -> int:
    """Run the sessions ``bars`` in order (each cut at its own bar); return how many were written."""
    bars = list(bars)
    symbols = [s for s in account.symbols if s in fields["close"].columns]
    if list(fields["close"].columns) != symbols:  # the book's columns in the account's (name) order
        fields = {k: v[symbols] for k, v in fields.items()}
    done = 0
    bar_iter: Iterable[pd.Timestamp] = bars
    if progress and bars:
        from tqdm.auto import tqdm

        bar_iter = tqdm(bars, desc=f"paper {account.name}", unit="session")
    for t in bar_iter:
        if session(account, fields, t, url=url) is not None:
            done += 1
    return done


def pending_bars(account: book.Account, index: pd.Index, start: object, end: object, *,
                 url: str | None = None) -> list[pd.Timestamp]:
    """Bars of ``index`` in ``[start, end]`` not yet stepped, refusing to skip a bar after the last session."""
    equity_log = book.session_equity(account.name, url=url)
    last = equity_log.index[-1] if len(equity_log) else None
    lo = bound(start, index, interval=account.interval, side="start") if start is not None else None
    if lo is not None and last is not None and lo < equity_log.index[0]:
        raise book.AccountError(f"account {account.name!r} starts at {equity_log.index[0]:%Y-%m-%d %H:%M}; it cannot be "
                                f"replayed from {lo:%Y-%m-%d %H:%M} (create a new account for an earlier start)")
    hi = bound(end, index, interval=account.interval, side="end") if end is not None else index[-1]
    bars = index[(index <= hi) & ((index >= lo) if lo is not None else True)]
    if last is None:
        return list(bars)
    after = index[index > last]
    if lo is not None and len(after) and lo > after[0] and bars.size and bars[0] > after[0]:
        raise LedgerError(f"account {account.name!r} was last stepped as of {last:%Y-%m-%d %H:%M}; it must continue "
                          f"from {after[0]:%Y-%m-%d %H:%M}, not {lo:%Y-%m-%d %H:%M}")
    return list(index[(index > last) & (index <= hi)])


def bound(value: object, index: pd.Index, *, interval: str, side: str) -> pd.Timestamp:
    """A range bound on ``index``'s clock, read as an :class:`~research.data.asof.AsOf`.

    ``side="end"``: the as-of end (a date is its whole session); ``side="start"``: a date is its
    first instant, a time itself.
    """
    a = AsOf.parse(value, interval=interval)
    ts = (a.day if a.is_date else a.end) if side == "start" else a.end
    return on_clock_of(ts, index)


def step(name: str, as_of: object = None, *, fields: Mapping[str, pd.DataFrame] | None = None,
         url: str | None = None) -> dict[str, Any]:
    """Step account ``name`` up to ``as_of`` (default: the last bar), catching up any missed sessions.

    An account with no session starts with one session at ``as_of`` (it only decides). Returns
    ``{"account", "as_of", "sessions"}`` (sessions written now; 0 if it was up to date).
    """
    account = book.get_account(name, url=url)
    fields = fields if fields is not None else load_fields(account, end=as_of)
    index = fields["close"].index
    hi = bound(as_of, index, interval=account.interval, side="end") if as_of is not None else index[-1]
    upto = index[index <= hi]
    if not len(upto):
        raise LedgerError(f"no bar of {', '.join(account.symbols)} on or before {hi}")
    if book.last_session(name, url=url) is None:
        bars = [upto[-1]]
    else:
        bars = pending_bars(account, index, None, upto[-1], url=url)
    written = run_sessions(account, fields, bars, url=url, progress=len(bars) > 20)
    return {"account": name, "as_of": str(upto[-1]), "sessions": written}

