"""The engine's rules one bar at a time, for a book carried forward (paper trading).

:func:`order_plan` runs the same signal, sizing, stop and cap rules as
:func:`~research.backtest.engine.backtest` over a window of bars and returns, per bar, the
target weight each symbol's order asks for and its fill price. :func:`execute_bar` executes one
bar of such orders against a given book (cash and positions) with vectorbt's own order
functions, in the order the engine's shared book uses (sells first), so a book that is stepped
bar by bar ends where the backtest of the same period ends.

Example
-------
>>> plan = order_plan(fields, "ma_crossover", first=fields["close"].index[-30])   # doctest: +SKIP
>>> row = plan.size.iloc[0]                          # target weights (NaN = no order)
>>> res = execute_bar(100_000.0, np.zeros(4), row.to_numpy(), plan.price.iloc[0].to_numpy(),
...                   plan.price.iloc[0].to_numpy(), fees=0.001)   # doctest: +SKIP
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from research.backtest.engine import (
    Plan,
    build_plan,
    drop_empty,
    infer_periods_per_year,
    rebalance_mask,
    resolve_signals,
    sizing_options,
)
from research.data.freshness import STALE_BARS, stale_frame
from research.strategies.sizing import position_magnitude
from research.strategies.stops import REASONS, RiskRules

__all__ = ["OrderPlan", "order_plan", "BarFill", "execute_bar", "ledger_terms", "affordable_buy"]

_DUST = 1e-9
"""Cash at most this fraction of the book's value is not spent (the executor's own relative
tolerance: the engine's book rounds such a remainder to zero, the ledger keeps it)."""
_CLIPPED = 1e-6
"""A buy filled this far (relative, beyond a whole share's rounding) below the shares its target
asked for was clipped to the cash."""


@dataclass
class OrderPlan:
    """Per-bar orders of a window (one column per symbol; the last row may be the next bar).

    Attributes
    ----------
    size : DataFrame
        Target weight of the book each order asks for at that bar; NaN where no order is sent.
    price : DataFrame
        Fill price before slippage (the open, or a stop's level); NaN where the bar has no
        valid execution price.
    reason : DataFrame
        Why each order is sent: ``signal``, ``stop_loss``, ``take_profit``, ``trailing_stop``,
        ``halt`` or ``rebalance``; empty where no order.
    held : DataFrame
        Direction held after each bar (-1, 0, 1).
    excluded : list of str
        Symbols with no valid price at all (left out, as in the backtest).
    """

    size: pd.DataFrame
    price: pd.DataFrame
    reason: pd.DataFrame
    held: pd.DataFrame
    excluded: list[str]


def order_plan(
    fields: Mapping[str, pd.DataFrame],
    strategy: str,
    *,
    first: pd.Timestamp,
    params: Mapping[str, Any] | None = None,
    sizing: str = "all_in",
    sizing_params: Mapping[str, Any] | None = None,
    risk: RiskRules | None = None,
    halt_from: pd.Timestamp | None = None,
    rebalance: str | int | None = None,
    max_position: float | None = None,
    max_gross: float | None = None,
    next_bar: pd.Timestamp | None = None,
    periods_per_year: float | None = None,
    stale_bars: int | None = STALE_BARS,
) -> OrderPlan:
    """The engine's order plan for the bars from ``first`` on (shared-cash book, next-open fills).

    Parameters
    ----------
    fields : mapping of str to DataFrame
        Wide ``open, high, low, close`` frames holding only the bars known so far; earlier bars
        warm the strategy up.
    strategy : str
        Registered strategy name.
    first : Timestamp
        First bar that can trade (the book is flat before it), like ``backtest(start=...)``.
    params, sizing, sizing_params, risk, rebalance, max_position, max_gross
        As in :func:`~research.backtest.engine.backtest`.
    halt_from : Timestamp, optional
        First bar from which the drawdown halt keeps the book flat.
    next_bar : Timestamp, optional
        Add a row for the bar after the last one: the orders decided at the last close, priced
        at that close as an estimate (no stop can fire on a bar not yet seen).
    periods_per_year : float, optional
        Annualisation for ``vol_target`` sizing; inferred from the index by default.
    stale_bars : int, optional
        As in the backtest: a symbol stale at the deciding close gets no target and no order.
    """
    fields, excluded = _priced_fields(fields)
    ppy = float(periods_per_year or infer_periods_per_year(fields["close"].index))
    sig = resolve_signals(strategy, fields, params or {})
    magnitude = position_magnitude(sig, fields, sizing, sizing_options(sizing, sizing_params, ppy))
    window, dir_exec, mag_exec, stale = _decisions_at_fills(fields, sig.direction, magnitude, first=first,
                                                            next_bar=next_bar, stale_bars=stale_bars)
    idx = window["close"].index
    halt = None
    if halt_from is not None:
        halt = np.full(len(window["close"].columns), int(idx.searchsorted(halt_from, side="left")))
    rb = rebalance_mask(idx, rebalance)
    plan = build_plan(window, dir_exec, mag_exec, window["open"].to_numpy(), risk or RiskRules(), True, halt, rb,
                      (max_position, max_gross), True, stale)
    return _as_order_plan(plan, idx, window["close"].columns, excluded)


def _priced_fields(fields: Mapping[str, pd.DataFrame]) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """The ``open, high, low, close`` frames without the symbols that never price, and those symbols (not warned of)."""
    fields = {k: v for k, v in fields.items() if k in ("open", "high", "low", "close")}
    excluded: list[str] = []
    close, px = fields["close"].to_numpy(), fields["open"].to_numpy()
    if (np.isnan(close).all(axis=0) | ~(px > 0).any(axis=0)).any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fields, excluded = drop_empty(fields, "open")
    return fields, excluded


def _decisions_at_fills(
    fields: dict[str, pd.DataFrame], direction: pd.DataFrame, magnitude: pd.DataFrame, *,
    first: pd.Timestamp, next_bar: pd.Timestamp | None, stale_bars: int | None,
) -> tuple[dict[str, pd.DataFrame], np.ndarray, np.ndarray, np.ndarray]:
    """The bars from ``first`` on (and ``next_bar``), with each close's decision (direction, magnitude, staleness) on the bar after."""
    index = fields["close"].index
    lo = int(index.searchsorted(first, side="left"))
    d = direction.to_numpy()
    m = magnitude.to_numpy()
    st = stale_frame(fields["close"], stale_bars=stale_bars, since=index[max(lo - 1, 0)] if len(index) else None).to_numpy()
    zero = np.zeros((1, d.shape[1]))
    dir_exec = np.vstack([zero, d[:-1]])[lo:]
    mag_exec = np.vstack([zero, m[:-1]])[lo:]
    stale = np.vstack([zero.astype(bool), st[:-1]])[lo:]
    window = {k: v.iloc[lo:] for k, v in fields.items()}
    if next_bar is not None:
        window = _with_next_bar(window, fields["close"], next_bar)
        dir_exec = np.vstack([dir_exec, d[-1:]])
        mag_exec = np.vstack([mag_exec, m[-1:]])
        stale = np.vstack([stale, st[-1:]])
    return window, np.nan_to_num(dir_exec).astype(np.int8), np.nan_to_num(mag_exec), stale


def _as_order_plan(plan: Plan, index: pd.Index, columns: pd.Index, excluded: list[str]) -> OrderPlan:
    """The engine's plan as frames, each order with its reason (``rebalance`` where no rule fired)."""
    names = np.asarray(REASONS, dtype=object)[plan.reason]
    reason = np.where(np.isfinite(plan.size), np.where(names == "", "rebalance", names), "")
    return OrderPlan(
        size=pd.DataFrame(plan.size, index=index, columns=columns),
        price=pd.DataFrame(plan.price, index=index, columns=columns),
        reason=pd.DataFrame(reason, index=index, columns=columns),
        held=pd.DataFrame(plan.held, index=index, columns=columns),
        excluded=excluded,
    )


def _with_next_bar(window: dict[str, pd.DataFrame], full_close: pd.DataFrame,
                   next_bar: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """Append the next bar: its execution price is the last close, its range unknown (NaN)."""
    close = window["close"]
    ts = pd.DatetimeIndex([next_bar]) if isinstance(close.index, pd.DatetimeIndex) else pd.Index([next_bar])
    index = close.index.append(ts)
    nan_row = np.full((1, close.shape[1]), np.nan)
    last = full_close.ffill().to_numpy()[-1:]
    return {k: pd.DataFrame(np.vstack([v.to_numpy(), last if k == "open" else nan_row]), index=index,
                            columns=close.columns) for k, v in window.items()}


@dataclass
class BarFill:
    """One executed order of :func:`execute_bar`.

    Attributes
    ----------
    column : int
        Position of the symbol in the book's columns.
    side : str
        ``"buy"`` or ``"sell"``.
    qty : float
        Shares traded (> 0).
    price : float
        Fill price, slippage included.
    fees : float
        Fees paid.
    weight : float
        The position's share of the book after the fill (valued as the order was sized).
    clipped : bool
        A buy the cash could not cover in full, filled with all of it (``weight`` is then less
        than the order's target).
    """

    column: int
    side: str
    qty: float
    price: float
    fees: float
    weight: float = float("nan")
    clipped: bool = False


@dataclass
class BarResult:
    """Book after one bar: cash, positions, fills, and what happened to each order."""

    cash: float
    positions: np.ndarray
    fills: list[BarFill]
    status: dict[int, str]


def execute_bar(cash: float, positions: np.ndarray, size: np.ndarray, price: np.ndarray, val_price: np.ndarray, *,
                fees: float = 0.0, slippage: float = 0.0, whole_shares: bool = False) -> BarResult:
    """Execute one bar of target-weight orders on a shared-cash book, as the engine does.

    The book is valued once at each symbol's valuation price (this bar's fill price, else the
    last one); orders run in vectorbt's automatic call sequence (sells before buys) with
    ``size_type="targetpercent"``; buys fill partially when cash is short.

    Parameters
    ----------
    cash : float
        Cash before the bar.
    positions : ndarray
        Shares held per symbol before the bar.
    size : ndarray
        Target weight per symbol (NaN = no order).
    price : ndarray
        Fill price before slippage per symbol (NaN = no valid price).
    val_price : ndarray
        Valuation price per symbol (the fill price, else the last known fill price).
    fees, slippage : float
        Proportional fee and adverse slippage.
    whole_shares : bool
        Trade whole shares only.

    Returns
    -------
    BarResult
        ``status`` maps each column with an order to ``"filled"`` or the reason it was not.
    """
    if not (np.isfinite(cash) and cash >= 0):
        raise ValueError(f"the book's cash must be a finite amount >= 0 before a bar is executed, got {cash!r}")
    pos = np.asarray(positions, dtype=np.float64).copy()
    size = np.asarray(size, dtype=np.float64)
    price = np.asarray(price, dtype=np.float64)
    valp = np.asarray(val_price, dtype=np.float64)
    value = cash + float(sum(pos[k] * valp[k] for k in range(len(pos)) if pos[k] != 0))
    bar = _Bar(fees, slippage, whole_shares, value, math.ulp(float(cash)) if cash > 0 else 0.0)
    terms, fills, status = [float(cash)], [], {}
    for col in _call_sequence(size, pos, valp, cash, value):
        if not np.isfinite(size[col]):
            continue
        fill = _fill(int(col), size[col], price[col], valp[col], pos[col], cash, terms, bar)
        if isinstance(fill, str):
            status[int(col)] = fill
            continue
        terms += ledger_terms(fill.side, fill.qty, fill.price, fill.fees)
        cash = math.fsum(terms)
        pos[col] = pos[col] + (fill.qty if fill.side == "buy" else -fill.qty)
        fills.append(fill)
        status[int(col)] = "filled"
    return BarResult(float(cash), pos, fills, status)


@functools.cache
def _vbt() -> SimpleNamespace:
    """vectorbt's order functions and enums, imported on first use (vectorbt takes seconds to load)."""
    from vectorbt.portfolio import nb
    from vectorbt.portfolio.enums import (
        Direction,
        OrderStatus,
        OrderStatusInfo,
        ProcessOrderState,
        SizeType,
    )
    from vectorbt.utils.array_ import insert_argsort_nb

    return SimpleNamespace(nb=nb, Direction=Direction, OrderStatus=OrderStatus, OrderStatusInfo=OrderStatusInfo,
                           ProcessOrderState=ProcessOrderState, SizeType=SizeType, insert_argsort_nb=insert_argsort_nb)


@dataclass(frozen=True, slots=True)
class _Bar:
    """What every order of one bar shares: costs, share rounding, the book's value and its cash margin."""

    fees: float
    slippage: float
    whole_shares: bool
    value: float
    margin: float


def _call_sequence(size: np.ndarray, pos: np.ndarray, valp: np.ndarray, cash: float, value: float) -> np.ndarray:
    """The columns in vectorbt's automatic call sequence (by approximate order value: sells before buys)."""
    v = _vbt()
    n = len(pos)
    seq = np.arange(n, dtype=np.int64)
    if n > 1:
        approx = np.array([v.nb.approx_order_value_nb(size[k], v.SizeType.TargetPercent, v.Direction.Both, cash,
                                                      pos[k], cash, valp[k], value) for k in range(n)])
        v.insert_argsort_nb(approx, seq)
    return seq


def _fill(col: int, size: float, price: float, val_price: float, held: float, cash: float, terms: list[float],
          bar: _Bar) -> BarFill | str:
    """One target-weight order executed by vectorbt on the book and clipped to the ledger's cash; else why it was not filled."""
    v = _vbt()
    order = v.nb.order_nb(size=size, price=price, size_type=v.SizeType.TargetPercent, direction=v.Direction.Both,
                          fees=bar.fees, slippage=bar.slippage, size_granularity=1.0 if bar.whole_shares else np.nan)
    spendable = cash if cash > _DUST * abs(bar.value) else 0.0  # what clipping left is not spent again
    state = v.ProcessOrderState(cash=spendable, position=held, debt=0.0, free_cash=spendable, val_price=val_price,
                                value=bar.value, oidx=0, lidx=0)
    _, res = v.nb.execute_order_nb(state, order)
    if res.status != v.OrderStatus.Filled:
        return v.OrderStatusInfo._fields[res.status_info] if res.status_info >= 0 else "not filled"
    side = "buy" if res.side == 0 else "sell"
    qty, fee = float(res.size), float(res.fees)
    if side == "buy":
        qty, fee = affordable_buy(terms, qty, float(res.price), fee, margin=bar.margin, whole_shares=bar.whole_shares)
        if qty <= 0:
            return "NoCashLong"
    asked = size * bar.value / val_price - held  # shares the target weight asks for (targetpercent)
    clipped = side == "buy" and qty < asked * (1 - _CLIPPED) - (1.0 if bar.whole_shares else 0.0)
    after = held + (qty if side == "buy" else -qty)
    weight = after * val_price / bar.value if bar.value > 0 else float("nan")
    return BarFill(col, side, qty, float(res.price), fee, float(weight), bool(clipped))


def ledger_terms(side: str, qty: float, price: float, fees: float) -> list[float]:
    """The cash amounts a fill adds to the book, as the ledger sums them.

    The book's cash is the exactly rounded sum (:func:`math.fsum`) of the initial cash, the
    flows and these terms (``-qty * price`` for a buy, ``+qty * price`` for a sell, ``-fees``),
    so it does not depend on the order in which a database adds rows up.
    """
    amount = qty * price
    return [-amount if side == "buy" else amount, -fees]


def affordable_buy(terms: list[float], qty: float, price: float, fees: float, *, margin: float = 0.0,
                   whole_shares: bool = False) -> tuple[float, float]:
    """Clip a buy so that it never costs more than the cash (the book never goes below zero).

    The executor's partial fill (a buy the cash cannot cover spends all of it, fees included)
    works within a relative tolerance of 1e-9 and rounds its own cash to zero; the ledger adds
    the recorded ``qty * price`` and ``fees`` instead. This trims the buy until the ledger's
    cash after it, ``fsum(terms + ledger_terms(...))``, is at least ``margin`` (one unit in the
    last place of the cash before the bar, which covers the rounding of that figure): by the
    overdraft (a relative 1e-9 at most) and a unit in the last place of ``qty`` for fractional
    shares, by whole shares otherwise; fees stay proportional to the traded value.

    Parameters
    ----------
    terms : list of float
        The cash before this buy, as a list of amounts whose exact sum it is.
    qty, price, fees : float
        The buy as the executor filled it (``price`` includes slippage).
    margin : float
        Least cash to leave.
    whole_shares : bool
        Keep ``qty`` whole.

    Returns
    -------
    (float, float)
        The quantity and fees to record; ``qty`` is 0 when nothing can be bought.
    """
    rate = fees / (qty * price) if qty > 0 and price > 0 else 0.0
    for _ in range(64):
        left = math.fsum([*terms, *ledger_terms("buy", qty, price, fees)])
        if left >= margin or qty <= 0:
            return max(qty, 0.0), fees
        cut = (margin - left) / (price * (1.0 + rate))
        qty = qty - max(1.0, math.ceil(cut)) if whole_shares else math.nextafter(max(qty - cut, 0.0), 0.0)
        fees = qty * price * rate
    raise ValueError(f"cannot fit a buy of {qty!r} at {price!r} (fees {fees!r}) into the cash {math.fsum(terms)!r}")
