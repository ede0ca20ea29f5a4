"""The shared portfolio simulation of the fused sweeps: one parameter set on one symbol.

Every strategy family's signal kernel (:mod:`research.backtest.families`) writes the direction
decided at each bar's close into a small buffer; :func:`simulate_nb` turns it into fills, a book
and statistics in one pass, with the rules of :func:`research.backtest.engine.backtest` for one
book per symbol and the ``all_in`` sizer.

Rules (the engine's, step by step)
----------------------------------
* The direction decided at the close of bar ``t - 1`` is what bar ``t``'s fill should reach
  (``next_open`` fills at the open, ``next_close`` at the close). A bar with a missing or
  non-positive execution price gets no fill; the change waits for the next valid bar.
* Stops follow :func:`research.strategies.stops.plan_fills` (the same numba code decides each
  stop): levels from the entry's execution price, armed from the bar after the entry, gaps fill
  at the open, a bar reaching both stop and take-profit takes the adverse one, after a stop the
  book stays flat until the direction leaves the stopped side. On a bar where the direction
  changes *and* a stop level is reached, the signal's fill at the open comes first (the stop is
  never looked at): the book exits at the open.
* ``drawdown_halt`` (the engine's ``max_drawdown`` rule): once the book closes that far below its running peak (the initial cash
  counts as a peak), every later bar wants to be flat (the engine's halt, applied in the same
  pass).
* Each fill is a target-percent order of the whole book (+1 long, -1 short, 0 flat) valued at
  the fill price, executed with vectorbt's order arithmetic (``buy_nb``/``sell_nb`` of
  ``Portfolio.from_orders``: slippage on the price, fees on the traded value, a buy that cash
  cannot cover is filled partially, whole shares round the size down, values within 1e-12 of
  zero become zero). A short is not limited by cash.
* The book is valued at each bar's close (the last valid close through gaps), from the order
  records exactly as vectorbt values them.

Statistics (:data:`research.backtest.kernels.STATS`) are folded from the per-bar returns of
the simulated span as in :mod:`research.backtest.kernels`; ``trades`` counts vectorbt's exit
trades (a reversal closes one trade and opens another; a trade still open at the end counts),
``win_rate`` is the share with a positive pnl after fees (an open trade valued at the last
close).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from research.backtest.kernels import add_nb as _add_exact
from research.backtest.kernels import is_close_nb as _is_close
from research.kernel_cache import configure_kernel_cache
from research.strategies.stops import stop_exit_nb as _stop_exit_nb
from research.strategies.stops import whole_bar_nb as _whole_bar_nb

configure_kernel_cache()  # before the @njit(cache=True) decorators below

__all__ = ["simulate_nb", "N_RISK", "RISK_FIELDS"]

#: Risk levels of a fused sweep, as grid dimensions; ``drawdown_halt`` is the engine's
#: ``RiskRules.max_drawdown`` (renamed: ``max_drawdown`` is a statistic of the table).
RISK_FIELDS = ("stop_loss", "take_profit", "trailing_stop", "drawdown_halt")
N_RISK = len(RISK_FIELDS)


@njit(cache=True, inline="always")
def _add(a: float, b: float) -> float:
    """vectorbt's ``add_nb`` (``a + b``, or zero when the two cancel to within tolerance), the sum first.

    A sum larger than both tolerances of a cancellation (1e-12 and 1e-9 of the larger operand) is
    what ``add_nb`` returns too; anything else (a near cancellation, NaN, inf) takes ``add_nb`` itself.
    """
    s = a + b
    if abs(s) > 1e-12 and abs(s) > 1e-9 * max(abs(a), abs(b)):
        return s
    return _add_exact(a, b)


@njit(cache=True, inline="always")
def _order_nb(w, price, cash, pos, fees, slip, whole):
    """A target-percent order ``w`` at ``price``: ``(filled, size, adj_price, fees_paid, new_cash, new_pos)``.

    ``size`` is signed (buy > 0). vectorbt's ``execute_order_nb`` with ``buy_nb``/``sell_nb``
    for one book without cash sharing, no fixed fees, no size limits, no cash locking.
    """
    if abs(cash) <= 1e-12:  # within 1e-12 of zero (vectorbt's is_close(x, 0); NaN and inf are not)
        cash = 0.0
    if abs(pos) <= 1e-12:
        pos = 0.0
    value = cash
    if pos != 0:
        value += pos * price
    if abs(value) <= 1e-12:
        value = 0.0
    if np.isnan(value) or value <= 0:
        return False, 0.0, 0.0, 0.0, cash, pos
    size = w * value / price - pos
    if size > 0:
        adj = price * (1.0 + slip)
        if cash == 0:
            return False, 0.0, 0.0, 0.0, cash, pos
        adj_size = size
        if whole:
            adj_size = adj_size // 1.0 * 1.0
        req_cash = adj_size * adj
        req_fees = req_cash * fees + 0.0
        total = req_cash + req_fees
        if _is_close(total, cash) or total < cash:
            final = adj_size
            paid = req_fees
            final_req = total
        else:
            max_req = _add(cash, -0.0) / (1.0 + fees)
            if max_req <= 0:
                return False, 0.0, 0.0, 0.0, cash, pos
            max_acq = max_req / adj
            if whole:
                final = max_acq // 1.0 * 1.0
                new_req = final * adj
                paid = new_req * fees + 0.0
                final_req = new_req + paid
            else:
                final = max_acq
                paid = cash - max_req
                final_req = cash
        if abs(adj_size) <= 1e-12 or final < -1e-12:  # below zero by more than 1e-12
            return False, 0.0, 0.0, 0.0, cash, pos
        return True, final, adj, paid, _add(cash, -final_req), _add(pos, final)
    adj = price * (1.0 - slip)
    limit = -size
    if whole:
        limit = limit // 1.0 * 1.0
    if limit <= 1e-12:  # close to zero or less
        return False, 0.0, 0.0, 0.0, cash, pos
    acq = limit * adj
    paid = acq * fees + 0.0
    net = _add(acq, -paid)
    if net < 0:
        return False, 0.0, 0.0, 0.0, cash, pos
    return True, -limit, adj, paid, cash + net, _add(pos, -limit)


@njit(cache=True, inline="always")
def _stop_levels(pos, entry, best, sl, tp, trail):
    """``(stop, take)``: the stop level (stop-loss or trailing, the nearer) and the take-profit level.

    The levels :func:`research.strategies.stops.stop_exit_nb` compares the bar's range with;
    a disabled rule is an infinite level.
    """
    if pos > 0:
        sl_level = entry * (1.0 - sl) if sl > 0 else -np.inf
        tr_level = best * (1.0 - trail) if trail > 0 else -np.inf
        return max(sl_level, tr_level), (entry * (1.0 + tp) if tp > 0 else np.inf)
    sl_level = entry * (1.0 + sl) if sl > 0 else np.inf
    tr_level = best * (1.0 + trail) if trail > 0 else np.inf
    return min(sl_level, tr_level), (entry * (1.0 - tp) if tp > 0 else -np.inf)


@njit(cache=True, inline="always")
def _pnl(direction: float, size: float, entry: float, exit_: float, fees: float) -> float:
    if direction > 0:
        return size * (exit_ - entry) - fees
    return size * (entry - exit_) - fees


@njit(cache=True)
def simulate_nb(states, exec_px, open_, high, low, close, close_ff, r_close, start, end, fees, slip, init_cash, ppy,
                whole, risk, fill_at_open, stats, ret_out):
    """Simulate one parameter set on one symbol over bars ``[start, end)``; fill ``stats``.

    Parameters
    ----------
    states : ndarray of int8
        Direction decided at each bar's close (-1, 0, 1), from a family's signal kernel.
    exec_px : ndarray
        Execution price of each bar (the open, or the close for ``next_close``).
    open_, high, low, close : ndarray
        Bar ranges for the stops (raw, NaN where missing).
    close_ff, r_close : ndarray
        The close forward-filled (valuation) and its bar-to-bar return
        (:func:`research.backtest.kernels.prepare_nb`).
    start, end : int
        Simulated bars; the book starts flat at ``start``.
    fees, slip, init_cash, ppy : float
        Costs, initial cash, periods per year.
    whole : bool
        Whole shares only.
    risk : ndarray (4,)
        ``stop_loss, take_profit, trailing_stop, drawdown_halt`` (0 disables a rule).
    fill_at_open : bool
        Fills happen at the open (the entry bar's range then counts for the trailing stop).
    stats : ndarray (len(STATS),)
        Receives the statistics.
    ret_out : ndarray
        Empty, or one slot per simulated bar for the exact per-bar returns.
    """
    sl, tp, trail, halt_dd = risk[0], risk[1], risk[2], risk[3]
    use_stops = sl > 0 or tp > 0 or trail > 0
    keep_returns = ret_out.shape[0] > 0
    # the plan (direction held, stops)
    pos_dir = 0
    blocked = 0
    entry = np.nan
    best = np.nan
    armed_from = 0
    halted = False
    hpeak = init_cash
    # the order engine's book, the valuation's book
    cash = init_cash
    pos = 0.0
    cash_v = init_cash
    pos_v = 0.0
    # statistics
    prev_v = init_cash
    peak = init_cash
    max_dd = 0.0
    s1 = 0.0
    s2 = 0.0
    held = 0
    n_closed = 0
    n_wins = 0
    t_dir = 0.0
    t_size = 0.0
    t_entry = 0.0
    t_fees = 0.0
    v = init_cash
    dd_k = 1.0 + 1e-12  # a value below peak * dd_k may be a new worst drawdown (then computed exactly)
    steady_ok = halt_dd <= 0 and not keep_returns
    force = False  # the general path must take this bar (a stop level may be reached)
    t = start
    while t < end:
        d = states[t - 1] if t > 0 else 0
        if steady_ok and not force and t > 0:
            if pos_dir == 0 and (d == 0 or d == blocked) and pos_v == 0.0 and cash_v == prev_v and \
                    abs(cash_v) > 1e-12:
                while True:  # flat and staying flat (or stopped out on this side): the book does not move
                    if d == 0:
                        blocked = 0  # a bar that wants flat releases a stopped side
                    t += 1
                    if t >= end:
                        break
                    d = states[t - 1]
                    if d != 0 and d != blocked:
                        break
                continue
            if pos_dir != 0 and d == pos_dir and abs(pos_v) > 1e-12 and (cash_v == 0.0 or abs(cash_v) > 1e-12) and prev_v > 0.0:
                all_in = cash_v == 0.0
                stop, take = _stop_levels(pos_dir, entry, best, sl, tp, trail)
                while True:  # holding: the book moves with the close
                    if use_stops and t >= armed_from:
                        # the levels of _stop_exit_nb, held while the position lasts (trailing: while best holds)
                        o, h, lw = open_[t], high[t], low[t]
                        if pos_dir > 0:
                            if not (o > stop and lw > stop and o < take and h < take):  # NaN: not clear
                                force = True
                                break
                            if trail > 0:  # the best price only moves a trailing stop
                                moved = max(best, h)
                                if moved != best:
                                    best = moved
                                    stop = max(entry * (1.0 - sl) if sl > 0 else -np.inf, best * (1.0 - trail))
                        else:
                            if not (o < stop and h < stop and o > take and lw > take):
                                force = True
                                break
                            if trail > 0:
                                moved = min(best, lw)
                                if moved != best:
                                    best = moved
                                    stop = min(entry * (1.0 + sl) if sl > 0 else np.inf, best * (1.0 + trail))
                    if all_in:
                        v = pos_v * close_ff[t]
                        r = r_close[t]
                    else:
                        v = cash_v + pos_v * close_ff[t]
                        r = (v - prev_v) / prev_v
                    s1 += r
                    s2 += r * r
                    held += 1
                    peak = max(peak, v)
                    if v < peak * dd_k:
                        max_dd = min(max_dd, v / peak - 1.0)
                        dd_k = (1.0 + max_dd) * (1.0 + 1e-12)
                    prev_v = v
                    t += 1
                    if t >= end or states[t - 1] != pos_dir or prev_v <= 0.0:
                        break
                continue
        force = False
        want = np.int64(states[t - 1]) if t > 0 else np.int64(0)
        if halted:
            want = 0
        if blocked != 0 and want != blocked:
            blocked = 0
        if blocked != 0:
            want = 0
        p = exec_px[t]
        valid = np.isfinite(p) and p > 0
        fill = np.nan
        if valid and want != pos_dir:
            fill = p
            pos_dir = want
            if use_stops and pos_dir != 0:  # the levels only stops read
                entry = p
                o, hi, lo = _whole_bar_nb(open_[t], high[t], low[t], close[t])
                if fill_at_open and np.isfinite(hi) and np.isfinite(lo):
                    best = max(p, hi) if pos_dir > 0 else min(p, lo)
                else:
                    best = p
                armed_from = t + 1
        elif use_stops and pos_dir != 0 and t >= armed_from:
            o, hi, lo = _whole_bar_nb(open_[t], high[t], low[t], close[t])
            if np.isfinite(o):
                px, why = _stop_exit_nb(pos_dir, o, hi, lo, entry, best, sl, tp, trail)
                if why != 0:
                    fill = px
                    blocked = pos_dir
                    pos_dir = 0
                elif pos_dir > 0:
                    best = max(best, hi)
                else:
                    best = min(best, lo)
        flow_c = 0.0
        flow_a = 0.0
        if np.isfinite(fill):
            ok, size, adj, paid, cash, pos = _order_nb(float(pos_dir), fill, cash, pos, fees, slip, whole)
            if ok:
                flow_c = -size * adj - paid  # _add(0.0, x): x, or 0.0 when within 1e-12 of zero
                if abs(flow_c) <= 1e-12:
                    flow_c = 0.0
                flow_a = size
                if abs(flow_a) <= 1e-12:
                    flow_a = 0.0
                # exit trades, as vectorbt splits an order that closes (part of) a position and opens another
                if t_size > 0 and (size > 0) != (t_dir > 0):
                    closed = min(abs(size), t_size)
                    efee = t_fees * closed / t_size
                    xfee = paid * closed / abs(size)
                    n_wins += _pnl(t_dir, closed, t_entry, adj, efee + xfee) > 0
                    n_closed += 1
                    t_fees -= efee
                    t_size -= closed
                    rest = abs(size) - closed
                    if t_size <= 1e-12:  # none left, or within 1e-12 of zero
                        t_size = 0.0
                        t_fees = 0.0
                    if rest > 1e-12:  # more than closes the trade: the rest opens one
                        t_dir = 1.0 if size > 0 else -1.0
                        t_size = rest
                        t_entry = adj
                        t_fees = paid - xfee
                elif abs(size) > 0:
                    if t_size == 0:
                        t_dir = 1.0 if size > 0 else -1.0
                        t_entry = adj
                        t_fees = paid
                        t_size = abs(size)
                    else:  # adding to the position: average entry
                        t_entry = (t_entry * t_size + adj * abs(size)) / (t_size + abs(size))
                        t_fees += paid
                        t_size += abs(size)
        if flow_c != 0.0 or flow_a != 0.0:
            cash_v = _add(cash_v, flow_c)
            pos_v = _add(pos_v, flow_a)
        else:
            if cash_v != 0.0 and abs(cash_v) <= 1e-12:
                cash_v = 0.0
            if pos_v != 0.0 and abs(pos_v) <= 1e-12:
                pos_v = 0.0
        if pos_v != 0.0:
            v = cash_v + pos_v * close_ff[t]
            held += 1
        else:
            v = cash_v
        if v != prev_v:
            if prev_v == 0.0:
                r = np.inf * np.sign(v)
            else:
                r = (v - prev_v) / prev_v
                if prev_v < 0:
                    r = -r
            s1 += r
            s2 += r * r
            if keep_returns:
                ret_out[t - start] = r
            peak = max(peak, v)
            if v < peak * dd_k:
                max_dd = min(max_dd, v / peak - 1.0)
                dd_k = (1.0 + max_dd) * (1.0 + 1e-12)
            prev_v = v
        if halt_dd > 0 and not halted and not np.isnan(v):
            hpeak = max(hpeak, v)
            if v / hpeak - 1.0 <= -halt_dd:
                halted = True
        t += 1
    count = end - start
    n_trades = n_closed
    if t_size > 0:
        n_trades += 1
        last = close_ff[end - 1] if end > 0 else np.nan
        if _pnl(t_dir, t_size, t_entry, last, t_fees) > 0:
            n_wins += 1
    total = v / init_cash - 1.0
    mean = s1 / count if count > 0 else np.nan
    var = (s2 - s1 * mean) / (count - 1) if count > 1 else np.nan
    std = np.sqrt(var) if var > 0 else 0.0 if count > 1 else np.nan
    stats[0] = total
    stats[1] = (1.0 + total) ** (ppy / count) - 1.0 if count > 0 and total > -1.0 else -1.0
    stats[2] = std * np.sqrt(ppy)
    stats[3] = mean / std * np.sqrt(ppy) if std > 0 else np.nan
    stats[4] = max_dd
    stats[5] = n_trades
    stats[6] = n_wins / n_trades if n_trades > 0 else np.nan
    stats[7] = held / count if count > 0 else np.nan
    stats[8] = v

