"""Fused numba kernels for the moving-average crossover family.

One pass per parameter set computes the averages' crossings, the position and the portfolio
(cash, shares, equity, returns) and folds the statistics as it goes: no signal matrix is ever
materialised. Grids run in parallel over parameter sets (``prange``); many symbols run in
parallel over symbols.

Execution model and arithmetic
------------------------------
The same as :func:`research.backtest.engine.backtest` with ``timing="next_open"`` and the
``all_in`` sizer: the direction decided at the close of bar ``t`` (crossing rule of
:mod:`research.strategies._nb`) fills at the open of ``t + 1``, buying with all cash at
``open * (1 + slippage)`` and paying ``fees`` on the traded value; selling at
``open * (1 - slippage)``. A bar with a missing or non-positive open gets no fill (the change
waits for the next valid open). Equity is valued at the close (the last valid close when
missing). Long-only: a cross below goes flat (long-short sweeps run through the engine).
The order and rounding arithmetic reproduces vectorbt's ``Portfolio.from_signals`` step by
step (including its tolerance-based rounding to zero), so fills, equity and per-bar returns
agree with vectorbt bit for bit; the tests check this. On bars held all-in without a fill the
statistics fold the close's own return instead of dividing equities (same value within 1e-15).

Statistics (columns of :data:`STATS`) use the per-bar returns of the simulated span:
``sharpe = mean / std (ddof=1) * sqrt(periods_per_year)`` (NaN when the returns do not vary),
``max_drawdown`` = worst ``equity / running peak - 1`` with the initial cash as first peak,
``trades`` = positions opened (one still open at the end counts), ``win_rate`` = share of
trades with a positive pnl after fees (an open trade valued at the last close; NaN with no
trade), ``exposure`` = fraction of bars held.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, set_parallel_chunksize

from research.kernel_cache import configure_kernel_cache
from research.strategies._nb import cross_step_nb, rolling_mean_1d_nb

configure_kernel_cache()  # before the @njit(cache=True) decorators below

__all__ = [
    "STATS", "TRADE_FIELDS", "prepare_nb", "cross_states_nb", "ma_table_nb", "ma_grid_nb", "ma_many_nb",
    "ma_single_nb", "ma_grid", "ma_many",
]

STATS = (
    "total_return", "annual_return", "annual_volatility", "sharpe", "max_drawdown",
    "trades", "win_rate", "exposure", "final_value",
)
TRADE_FIELDS = ("entry_idx", "exit_idx", "size", "entry_price", "exit_price", "entry_fees", "exit_fees")
_N_STATS = len(STATS)
_REL_TOL = 1e-9
_ABS_TOL = 1e-12


@njit(cache=True, inline="always")
def _is_close(a: float, b: float) -> bool:
    if np.isnan(a) or np.isnan(b) or np.isinf(a) or np.isinf(b):
        return False
    if a == b:
        return True
    return abs(a - b) <= max(_REL_TOL * max(abs(a), abs(b)), _ABS_TOL)


@njit(cache=True, inline="always")
def _add(a: float, b: float) -> float:
    """Addition that rounds to exactly zero when the two cancel (vectorbt's ``add_nb``)."""
    if np.sign(a) != np.sign(b):
        zero = _is_close(abs(a), abs(b))
    else:
        zero = _is_close(a + b, 0.0)
    if zero:
        return 0.0
    return a + b


#: Public names of the tolerance arithmetic, for the other fused simulations.
is_close_nb = _is_close
add_nb = _add


@njit(cache=True, inline="always")
def _step_nb(ma_f, ma_s, state_in, use_state, t, side, state):
    if use_state:
        return side, np.int64(state_in[t])
    return cross_step_nb(ma_f[t], ma_s[t], side, state, False)


@njit(cache=True, inline="always")
def _dust(x: float) -> float:
    """``x`` rounded to exactly 0 when within 1e-12 of it: ``_add(0.0, x)`` and ``_add(x, 0.0)``."""
    return 0.0 if abs(x) <= _ABS_TOL else x


@njit(cache=True)
def _run_nb(open_, close_ff, r_close, ma_f, ma_s, state_in, start, end, fees, slip, init_cash, ppy,
            stats, value_out, ret_out, trades_out, record):
    """Simulate one parameter set on one symbol; fill ``stats`` (and the records if ``record``).

    ``close_ff`` is the close forward-filled and ``r_close`` its bar-to-bar return (from
    :func:`prepare_nb`, shared by every parameter set). The direction comes from the crossing
    rule on ``ma_f``/``ma_s``, or from ``state_in`` when it is not empty. ``ret_out`` (zeros,
    one slot per simulated bar, or empty) receives the exact per-bar returns.

    Runs of bars where nothing is traded take tight inner loops: flat, only the crossing rule
    advances; holding all-in, the book moves with the close (its return ``r_close``, no
    division). Every other bar takes the general path, which mirrors vectorbt's order code.
    """
    keep_returns = ret_out.shape[0] > 0
    use_state = state_in.shape[0] > 0
    steady_ok = not keep_returns and not record
    side = 0
    state = 0
    cash = init_cash          # cash as the order engine sees it
    pos = 0.0                 # shares as the order engine sees them
    cash_v = init_cash        # cash as the valuation sees it (from the order records)
    pos_v = 0.0
    prev_v = init_cash
    peak = init_cash
    max_dd = 0.0
    dd_k = 1.0 + 1e-12        # a bar below peak * dd_k may be a new worst drawdown (checked exactly)
    s1 = 0.0
    s2 = 0.0
    held = 0
    n_trades = 0
    n_closed = 0
    n_wins = 0
    cost = 0.0
    entry_i = -1
    entry_px = 0.0
    entry_fee = 0.0
    v = init_cash
    for t in range(start):  # warm-up: decisions only
        side, state = _step_nb(ma_f, ma_s, state_in, use_state, t, side, state)
    t = start
    while t < end:
        if steady_ok and state == 1 and pos > 0.0 and cash_v == 0.0 and abs(pos_v) > _ABS_TOL and prev_v > 0.0:
            while True:  # steady all-in holding until the direction changes
                v = pos_v * close_ff[t]
                r = r_close[t]
                s1 += r
                s2 += r * r
                held += 1
                peak = max(peak, v)
                if v < peak * dd_k:  # rarely true: maybe a new worst drawdown, computed exactly
                    max_dd = min(max_dd, v / peak - 1.0)
                    dd_k = (1.0 + max_dd) * (1.0 + 1e-12)
                prev_v = v
                side, state = _step_nb(ma_f, ma_s, state_in, use_state, t, side, state)
                t += 1
                if t >= end or state != 1:
                    break
            continue
        if steady_ok and state != 1 and pos == 0.0 and pos_v == 0.0 and cash_v == prev_v and abs(cash_v) > _ABS_TOL:
            while True:  # steady flat until the direction turns long
                side, state = _step_nb(ma_f, ma_s, state_in, use_state, t, side, state)
                t += 1
                if t >= end or state == 1:
                    break
            continue
        last_close = close_ff[t]
        flow_c = 0.0
        flow_a = 0.0
        p = open_[t]
        wants = (state == 1 and pos == 0.0) or (state != 1 and pos > 0.0)
        if wants and np.isfinite(p) and p > 0:
            if state == 1 and pos == 0.0:
                # vectorbt buy_nb with size=inf: spend all cash, fees included. The _add/_is_close
                # calls that provably reduce to a constant are written out (see _dust).
                cash0 = _dust(cash)
                adj = p * (1.0 + slip)
                req = cash0 / (1.0 + fees)
                if cash0 != 0.0 and req > 0:
                    size = req / adj
                    fee = cash0 - req
                    cash = 0.0
                    pos = _dust(size)
                    flow_c = _dust(-size * adj - fee)
                    flow_a = pos
                    n_trades += 1
                    cost = size * adj + fee
                    entry_i = t
                    entry_px = adj
                    entry_fee = fee
            else:
                adj = p * (1.0 - slip)
                size = pos
                acq = size * adj
                fee = acq * fees + 0.0
                net = _add(acq, -fee)
                if net >= 0:
                    cash = _dust(cash) + net
                    pos = 0.0
                    flow_c = _dust(size * adj - fee)
                    flow_a = _dust(-size)
                    n_closed += 1
                    if acq - fee - cost > 0:
                        n_wins += 1
                    if record:
                        k = n_closed - 1
                        trades_out[k, 0] = entry_i
                        trades_out[k, 1] = t
                        trades_out[k, 2] = size
                        trades_out[k, 3] = entry_px
                        trades_out[k, 4] = adj
                        trades_out[k, 5] = entry_fee
                        trades_out[k, 6] = fee
        if flow_c != 0.0 or flow_a != 0.0:
            cash_v = _add(cash_v, flow_c)
            pos_v = _add(pos_v, flow_a)
        else:  # adding a zero flow only rounds dust to zero
            if cash_v != 0.0 and abs(cash_v) <= _ABS_TOL:
                cash_v = 0.0
            if pos_v != 0.0 and abs(pos_v) <= _ABS_TOL:
                pos_v = 0.0
        if pos_v != 0.0:
            v = cash_v + pos_v * last_close
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
        if record:
            value_out[t] = v
        side, state = _step_nb(ma_f, ma_s, state_in, use_state, t, side, state)
        t += 1
    last_close = close_ff[end - 1] if end > 0 else np.nan
    count = end - start
    if record and pos > 0.0:
        k = n_closed
        trades_out[k, 0] = entry_i
        trades_out[k, 1] = -1
        trades_out[k, 2] = pos
        trades_out[k, 3] = entry_px
        trades_out[k, 4] = np.nan
        trades_out[k, 5] = entry_fee
        trades_out[k, 6] = 0.0
    n_rated = n_closed
    if pos > 0.0:  # a trade still open counts, valued at the last close (as in the trades table)
        n_rated += 1
        if pos * last_close - cost > 0:
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
    stats[6] = n_wins / n_rated if n_rated > 0 else np.nan
    stats[7] = held / count if count > 0 else np.nan
    stats[8] = v


@njit(cache=True)
def prepare_nb(close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The close forward-filled through gaps, and its bar-to-bar return (NaN where undefined)."""
    n = close.shape[0]
    ff = np.empty(n)
    r = np.full(n, np.nan)
    last = np.nan
    for t in range(n):
        if not np.isnan(close[t]):
            last = close[t]
        ff[t] = last
        if t > 0 and ff[t - 1] != 0.0:
            r[t] = (ff[t] - ff[t - 1]) / ff[t - 1]
    return ff, r


@njit(cache=True)
def cross_states_nb(close: np.ndarray, fast: int, slow: int, out: np.ndarray, scratch: np.ndarray) -> bool:
    """Crossing-rule states of the ``fast``/``slow`` SMAs of one symbol into ``out`` (int8).

    Identical to :func:`research.strategies._nb.cross_state_1d_nb` on
    :func:`~research.strategies._nb.rolling_mean_1d_nb` averages. Without missing values the
    sums are compared through ``sum_f * slow`` vs ``sum_s * fast`` and the two divisions are
    only carried out when the products are within 1e-12 of each other (a possible tie), so
    the outcome is the same as comparing the rounded averages. Returns whether ``close`` has
    missing values.
    """
    n = close.shape[0]
    has_nan = False
    for t in range(n):
        if np.isnan(close[t]):
            has_nan = True
            break
    if has_nan:
        fm = rolling_mean_1d_nb(close, fast)
        sm = rolling_mean_1d_nb(close, slow)
        side = 0
        state = 0
        for t in range(n):
            side, state = cross_step_nb(fm[t], sm[t], side, state, False)
            out[t] = state
        return True
    cum = 0.0
    side = 0
    state = 0
    f_f = float(fast)
    f_s = float(slow)
    for t in range(n):
        cum = cum + close[t]
        scratch[t] = cum
        if t < slow - 1:
            side = 0
            out[t] = state
            continue
        a = cum - scratch[t - fast] if t >= fast else cum
        b = cum - scratch[t - slow] if t >= slow else cum
        x = a * f_s
        y = b * f_f
        d = x - y
        tol = 1e-12 * (abs(x) + abs(y))
        if d > tol:
            sgn = 1
        elif d < -tol:
            sgn = -1
        else:
            fa = a / f_f
            sb = b / f_s
            sgn = 1 if fa > sb else (-1 if fa < sb else 0)
        if sgn > 0:
            if side == -1:
                state = 1
            side = 1
        elif sgn < 0:
            if side == 1:
                state = 0
            side = -1
        out[t] = state
    return False


@njit(cache=True)
def _simple_returns_nb(close: np.ndarray, out: np.ndarray) -> None:
    """``out[t] = (close[t] - close[t-1]) / close[t-1]`` for a gap-free close (NaN at 0)."""
    out[0] = np.nan
    for t in range(1, close.shape[0]):
        out[t] = (close[t] - close[t - 1]) / close[t - 1]


@njit(cache=True, parallel=True)
def ma_table_nb(close: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """Rolling means of ``close`` (1-D) for each window: shape ``(len(windows), len(close))``."""
    out = np.empty((windows.shape[0], close.shape[0]))
    for k in prange(windows.shape[0]):
        out[k] = rolling_mean_1d_nb(close, windows[k])
    return out


@njit(cache=True, parallel=True)
def ma_grid_nb(open_, close, table, fast_row, slow_row, start, end, fees, slip, init_cash, ppy, keep_returns):
    """Statistics of every ``(fast, slow)`` pair on one symbol, in parallel over pairs.

    ``table`` holds the averages (rows indexed by ``fast_row``/``slow_row``, from
    :func:`ma_table_nb`). Returns ``(stats, returns)``: ``(n_pairs, len(STATS))`` and, with
    ``keep_returns``, the exact per-bar returns ``(n_pairs, end - start)`` (else ``(n_pairs, 0)``).
    """
    n_pairs = fast_row.shape[0]
    out = np.empty((n_pairs, _N_STATS))
    rets = np.zeros((n_pairs, end - start if keep_returns else 0))
    ff, rc = prepare_nb(close)
    empty = np.empty(0)
    no_state = np.empty(0, dtype=np.int8)
    no_trades = np.empty((0, 7))
    for k in prange(n_pairs):
        _run_nb(open_, ff, rc, table[fast_row[k]], table[slow_row[k]], no_state, start, end, fees, slip,
                init_cash, ppy, out[k], empty, rets[k], no_trades, False)
    return out, rets


@njit(cache=True, parallel=True)
def ma_many_nb(open_, close, fast, slow, start, end, fees, slip, init_cash, ppy):
    """Statistics of one ``(fast, slow)`` pair on every column of ``close`` (bars x symbols).

    ``start`` and ``end`` are int64 arrays: the simulated bars of each column.
    """
    n, m = close.shape
    out = np.empty((m, _N_STATS))
    empty = np.empty(0)
    no_trades = np.empty((0, 7))
    for j in prange(m):
        c = np.ascontiguousarray(close[:, j])
        o = np.ascontiguousarray(open_[:, j])
        states = np.empty(n, dtype=np.int8)
        scratch = np.empty(n)
        if cross_states_nb(c, fast, slow, states, scratch):
            ff, rc = prepare_nb(c)
        else:  # no gaps: the close is its own forward fill; reuse the scratch for its returns
            ff, rc = c, scratch
            _simple_returns_nb(c, rc)
        _run_nb(o, ff, rc, empty, empty, states, start[j], end[j], fees, slip, init_cash, ppy, out[j], empty, empty,
                no_trades, False)
    return out


@njit(cache=True)
def ma_single_nb(open_, close, fast, slow, start, end, fees, slip, init_cash, ppy):
    """One pair on one symbol with records: ``(stats, equity, trades)``.

    ``equity`` is NaN before ``start``; ``trades`` rows follow :data:`TRADE_FIELDS` (an open
    trade has ``exit_idx = -1`` and NaN exit price).
    """
    stats = np.empty(_N_STATS)
    value = np.full(close.shape[0], np.nan)
    trades = np.full((close.shape[0] // 2 + 2, 7), np.nan)
    ff, rc = prepare_nb(close)
    _run_nb(open_, ff, rc, rolling_mean_1d_nb(close, fast), rolling_mean_1d_nb(close, slow),
            np.empty(0, dtype=np.int8), start, end, fees, slip, init_cash, ppy, stats, value, np.empty(0),
            trades, True)
    n = 0
    while n < trades.shape[0] and not np.isnan(trades[n, 0]):
        n += 1
    return stats, value, trades[:n]


def _chunked(kernel, chunk: int):
    def run(*args):
        old = set_parallel_chunksize(chunk)  # small chunks keep both threads busy on a shared machine
        try:
            return kernel(*args)
        finally:
            set_parallel_chunksize(old)

    run.__name__ = kernel.__name__.removesuffix("_nb")
    run.__doc__ = f"{kernel.__doc__}\n\n    Runs :func:`{kernel.__name__}` with parallel chunks of {chunk}."
    return run


ma_grid = _chunked(ma_grid_nb, 64)
ma_many = _chunked(ma_many_nb, 4)
