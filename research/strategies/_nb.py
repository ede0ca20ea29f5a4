"""Numba primitives shared by the strategies and the fused backtest kernels.

Every engine in the workbench (the vectorbt-backed engine, the fused sweep kernels and the
reference loops in the tests) builds moving-average crossovers from these functions, so they
agree bit for bit.

Moving average
--------------
:func:`rolling_mean_1d_nb` uses the running-sum formula of vectorbt's ``MA`` indicator
(``(cumsum[t] - cumsum[t - w]) / w``), NaN until ``window`` valid values are in the window.
Using the same arithmetic as vectorbt keeps exact ties exact in every engine.

Crossing rule (ties)
--------------------
The fast average *crosses above* the slow one at bar ``t`` when ``fast[t] > slow[t]`` and, at
the most recent earlier bar where the two differed, ``fast < slow``. Bars where the two are
exactly equal are skipped: they neither cross nor reset (a cross *through* a tie counts, a
touch that returns to the same side does not). A missing value (NaN) in either average forgets
the side, so a cross needs a strict "below" after the gap. *Crossing below* is the mirror.
The position follows the last cross: long after a cross above; flat (long-only) or short
(long-short) after a cross below; flat before the first cross.

This is the position vectorbt's ``crossed_above``/``crossed_below`` produce through
``Portfolio.from_signals``; vectorbt also flags a second "cross above" when the averages touch
and separate again while already above, which changes nothing for a position already held.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from research.kernel_cache import configure_kernel_cache

configure_kernel_cache()  # before the @njit(cache=True) decorators below

__all__ = [
    "rolling_mean_1d_nb", "cross_state_1d_nb", "hysteresis_state_1d_nb", "hysteresis_step_nb", "cross_step_nb",
]


@njit(cache=True)
def rolling_mean_1d_nb(a: np.ndarray, window: int) -> np.ndarray:
    """Rolling mean over ``window`` bars, NaN until ``window`` valid values fill the window."""
    n = a.shape[0]
    out = np.empty(n, dtype=np.float64)
    cumsum_arr = np.zeros(n, dtype=np.float64)
    nancnt_arr = np.zeros(n, dtype=np.float64)
    cumsum = 0.0
    nancnt = 0.0
    for i in range(n):
        if np.isnan(a[i]):
            nancnt = nancnt + 1
        else:
            cumsum = cumsum + a[i]
        nancnt_arr[i] = nancnt
        cumsum_arr[i] = cumsum
        if i < window:
            window_len = i + 1 - nancnt
            window_cumsum = cumsum
        else:
            window_len = window - (nancnt - nancnt_arr[i - window])
            window_cumsum = cumsum - cumsum_arr[i - window]
        if window_len < window:
            out[i] = np.nan
        else:
            out[i] = window_cumsum / window_len
    return out


@njit(cache=True, inline="always")
def cross_step_nb(fast: float, slow: float, side: int, state: int, short: bool) -> tuple[int, int]:
    """One bar of the crossing rule: returns the new ``(side, state)``.

    ``side`` is the sign of the last bar where the averages differed (0 after a gap);
    ``state`` is the position direction (+1 long, 0 flat, -1 short).
    """
    if np.isnan(fast) or np.isnan(slow):
        return 0, state
    if fast > slow:
        if side == -1:
            state = 1
        return 1, state
    if fast < slow:
        if side == 1:
            state = -1 if short else 0
        return -1, state
    return side, state


@njit(cache=True)
def cross_state_1d_nb(fast: np.ndarray, slow: np.ndarray, short: bool) -> np.ndarray:
    """Position direction after each bar's close under the crossing rule (int8: -1, 0, 1)."""
    n = fast.shape[0]
    out = np.zeros(n, dtype=np.int8)
    side = 0
    state = 0
    for i in range(n):
        side, state = cross_step_nb(fast[i], slow[i], side, state, short)
        out[i] = state
    return out


@njit(cache=True, inline="always")
def hysteresis_step_nb(
    v: float,
    state: int,
    long_enter: float,
    long_exit: float,
    short_enter: float,
    short_exit: float,
    long_above: bool,
    allow_long: bool,
    allow_short: bool,
) -> int:
    """One bar of :func:`hysteresis_state_1d_nb`: the new state after value ``v``."""
    if np.isnan(v):
        return state
    if long_above:
        go_long = v > long_enter
        leave_long = v < long_exit
        go_short = v < short_enter
        leave_short = v > short_exit
    else:
        go_long = v < long_enter
        leave_long = v > long_exit
        go_short = v > short_enter
        leave_short = v < short_exit
    if state == 1 and leave_long:
        state = 0
    elif state == -1 and leave_short:
        state = 0
    if state != 1 and allow_long and go_long:
        state = 1
    elif state != -1 and allow_short and go_short:
        state = -1
    return state


@njit(cache=True)
def hysteresis_state_1d_nb(
    x: np.ndarray,
    long_enter: float,
    long_exit: float,
    short_enter: float,
    short_exit: float,
    long_above: bool,
    allow_long: bool,
    allow_short: bool,
) -> np.ndarray:
    """Position direction from a band rule with separate entry and exit levels.

    With ``long_above`` a long opens when ``x > long_enter`` and closes when ``x < long_exit``
    (breakout style); otherwise a long opens when ``x < long_enter`` and closes when
    ``x > long_exit`` (mean-reversion style). Shorts mirror longs. NaN keeps the current state.
    """
    n = x.shape[0]
    out = np.zeros(n, dtype=np.int8)
    state = 0
    for i in range(n):
        state = hysteresis_step_nb(x[i], state, long_enter, long_exit, short_enter, short_exit, long_above,
                                   allow_long, allow_short)
        out[i] = state
    return out
