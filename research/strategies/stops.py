"""Risk rules: stop-loss, take-profit, trailing stop and a max-drawdown halt.

:class:`RiskRules` holds the levels (decimal fractions). :func:`plan_fills` turns the
direction each bar's fill should reach (already aligned to the execution bar by the backtest)
into the direction actually held after each bar, the fill price and the reason for each fill.

Rules, per symbol
-----------------
* Fills happen at the execution price of the bar (the open under the default timing). A bar
  whose execution price is missing or not positive gets no fill; the wanted change waits for
  the next bar with a valid price.
* Stops are resting orders armed from the bar *after* the entry fill, at levels set from the
  entry's execution price (before slippage): ``stop_loss`` below it (long), ``take_profit``
  above it, ``trailing_stop`` below the highest high since entry (the entry bar's high counts
  when the entry filled at its open). Shorts mirror this. Stop fills pay slippage like any fill.
* A bar that opens beyond a level fills at the open (gap). Otherwise, if the bar's range
  reaches both the stop and the take-profit, the **adverse** one is assumed to have come first:
  the stop fills. A trailing stop and a stop-loss share one level, the tighter of the two.
* After a stop exit the position stays flat until the strategy's direction leaves the stopped
  side (a fresh signal is needed to re-enter).
* Levels may change over time (:class:`RiskSchedule`): each bar's stops act with that bar's levels.
* ``max_drawdown``: once the book's equity closes ``max_drawdown`` below its running peak, every
  position is closed at the next fill and nothing opens again (applied by the backtest).
"""

from __future__ import annotations

from collections.abc import Sized
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from numba import njit

from research.kernel_cache import configure_kernel_cache

configure_kernel_cache()  # before the @njit(cache=True) decorators below

__all__ = ["RiskRules", "RiskSchedule", "plan_fills", "REASONS"]

REASONS = ("", "signal", "stop_loss", "take_profit", "trailing_stop", "halt")
_SIGNAL, _SL, _TP, _TRAIL, _HALT = 1, 2, 3, 4, 5
_LEVELS = ("stop_loss", "take_profit", "trailing_stop")  # the price stops, in the order plan_fills takes them


@dataclass(frozen=True)
class RiskRules:
    """Risk rules of a backtest (decimal fractions; ``None`` disables a rule).

    Attributes
    ----------
    stop_loss : float, optional
        Exit when price moves this fraction against the entry fill (0.05 = 5%).
    take_profit : float, optional
        Exit when price moves this fraction in favour of the entry fill.
    trailing_stop : float, optional
        Exit when price falls this fraction below the best price since entry (rises above the
        lowest, for shorts).
    max_drawdown : float, optional
        Halt: close everything and stop trading once equity is this fraction below its peak.
    """

    stop_loss: float | None = None
    take_profit: float | None = None
    trailing_stop: float | None = None
    max_drawdown: float | None = None

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value is not None and not (0 < value and (name == "take_profit" or value < 1)):
                limit = "> 0" if name == "take_profit" else "in (0, 1)"
                raise ValueError(f"{name} must be {limit} or None, got {value!r}")

    @property
    def has_stops(self) -> bool:
        """Whether any price stop (loss, profit or trailing) is set."""
        return any(v is not None for v in (self.stop_loss, self.take_profit, self.trailing_stop))

    def to_dict(self) -> dict[str, float | None]:
        """The rules as a plain dict (recorded with a backtest)."""
        return asdict(self)

    def levels_on(self, index: Sized, columns: Sized) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Stop-loss, take-profit and trailing-stop levels on these bars and symbols (0 = off), the same on
        every bar (:meth:`RiskSchedule.levels_on` for levels that change)."""
        return tuple(np.full((len(index), len(columns)), float(getattr(self, name) or 0.0)) for name in _LEVELS)


@dataclass(frozen=True, eq=False)
class RiskSchedule:
    """Stop levels that change over time, per bar and symbol (a walk-forward's folds each trading
    their own levels); pass it as a backtest's ``risk``.

    A position keeps its entry price, best price since entry and the wait for a fresh signal after
    a stop whatever the levels do: on each bar the stops act with that bar's levels.

    Attributes
    ----------
    stop_loss, take_profit, trailing_stop : DataFrame, optional
        Level per bar (index: the price bars, the bar a stop fills on) and symbol (columns);
        0 or NaN = off on that bar; a bar or symbol the frame does not hold is off.
    max_drawdown : float, optional
        The drawdown halt, one level for the whole backtest (as in :class:`RiskRules`).
    """

    stop_loss: pd.DataFrame | None = None
    take_profit: pd.DataFrame | None = None
    trailing_stop: pd.DataFrame | None = None
    max_drawdown: float | None = None

    def __post_init__(self) -> None:
        RiskRules(max_drawdown=self.max_drawdown)
        for name in _LEVELS:
            frame = getattr(self, name)
            if frame is None:
                continue
            v = frame.to_numpy(dtype=np.float64)
            bad = ~(np.isnan(v) | (v == 0) | ((v > 0) & ((v < 1) | (name == "take_profit"))))
            if bad.any():
                limit = "> 0" if name == "take_profit" else "in (0, 1)"
                raise ValueError(f"{name} levels must be 0 (off) or {limit}; got {float(v[bad][0])!r}")

    def to_dict(self) -> dict[str, object]:
        """The distinct levels of each rule (what a backtest records of its risk)."""
        out: dict[str, object] = {}
        for name in _LEVELS:
            frame = getattr(self, name)
            vals = [] if frame is None else sorted(set(np.unique(frame.fillna(0.0).to_numpy()).tolist()) - {0.0})
            out[name] = f"per bar: {vals}" if vals else None
        out["max_drawdown"] = self.max_drawdown
        return out

    def levels_on(self, index: pd.Index, columns: pd.Index) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Stop-loss, take-profit and trailing-stop levels on these bars and symbols (0 = off)."""
        return tuple(np.zeros((len(index), len(columns))) if getattr(self, name) is None else
                     getattr(self, name).reindex(index=index, columns=columns).fillna(0.0).to_numpy(dtype=np.float64)
                     for name in _LEVELS)



@njit(cache=True, inline="always")
def whole_bar_nb(o: float, hi: float, lo: float, c: float) -> tuple[float, float, float]:
    """A bar's open, high and low with gaps filled from what it has: a missing open is the close,
    a missing high or low the larger or smaller of open and close."""
    if np.isnan(o):
        o = c
    if np.isnan(hi):
        hi = max(o, c)
    if np.isnan(lo):
        lo = min(o, c)
    return o, hi, lo


@njit(cache=True)
def _stop_exit_nb(pos, o, hi, lo, entry, peak, sl, tp, trail):
    """Exit price and reason for one bar (NaN, 0 if no stop fires)."""
    if pos > 0:
        sl_level = entry * (1.0 - sl) if sl > 0 else -np.inf
        tr_level = peak * (1.0 - trail) if trail > 0 else -np.inf
        stop = max(sl_level, tr_level)
        why = _SL if sl_level >= tr_level else _TRAIL
        tp_level = entry * (1.0 + tp) if tp > 0 else np.inf
        if o <= stop:
            return o, why
        if o >= tp_level:
            return o, _TP
        if lo <= stop:
            return stop, why
        if hi >= tp_level:
            return tp_level, _TP
    else:
        sl_level = entry * (1.0 + sl) if sl > 0 else np.inf
        tr_level = peak * (1.0 + trail) if trail > 0 else np.inf
        stop = min(sl_level, tr_level)
        why = _SL if sl_level <= tr_level else _TRAIL
        tp_level = entry * (1.0 - tp) if tp > 0 else -np.inf
        if o >= stop:
            return o, why
        if o <= tp_level:
            return o, _TP
        if hi >= stop:
            return stop, why
        if lo <= tp_level:
            return tp_level, _TP
    return np.nan, 0


#: The stop decision of one bar, shared with the fused sweep's simulation.
stop_exit_nb = _stop_exit_nb


@njit(cache=True)
def _plan_column_nb(target, price, open_, high, low, close, sl, tp, trail, fill_at_open, halt_from,
                    held, fill, reason):
    pos = 0
    blocked = 0
    entry = np.nan
    peak = np.nan
    armed_from = 0
    for i in range(target.shape[0]):
        want = target[i]
        halted = i >= halt_from
        if halted:
            want = 0
        if blocked != 0 and want != blocked:
            blocked = 0
        if blocked != 0:
            want = 0
        p = price[i]
        valid = np.isfinite(p) and p > 0
        o, hi, lo = whole_bar_nb(open_[i], high[i], low[i], close[i])
        if valid and want != pos:
            fill[i] = p
            reason[i] = _HALT if halted and pos != 0 else _SIGNAL
            pos = want
            entry = p
            if fill_at_open and np.isfinite(hi) and np.isfinite(lo):
                peak = max(p, hi) if pos > 0 else min(p, lo)
            else:
                peak = p
            armed_from = i + 1
        elif pos != 0 and i >= armed_from and np.isfinite(o):
            px, why = np.nan, 0
            if sl[i] > 0 or tp[i] > 0 or trail[i] > 0:  # levels may change over time (a walk-forward's folds)
                px, why = _stop_exit_nb(pos, o, hi, lo, entry, peak, sl[i], tp[i], trail[i])
            if why != 0:
                fill[i] = px
                reason[i] = why
                blocked = pos
                pos = 0
            elif pos > 0:
                peak = max(peak, hi)
            else:
                peak = min(peak, lo)
        held[i] = pos


@njit(cache=True)
def _plan_nb(target, price, open_, high, low, close, sl, tp, trail, fill_at_open, halt_from):
    n, m = target.shape
    held = np.zeros((n, m), dtype=np.int8)
    fill = np.full((n, m), np.nan)
    reason = np.zeros((n, m), dtype=np.int8)
    for j in range(m):
        _plan_column_nb(target[:, j], price[:, j], open_[:, j], high[:, j], low[:, j], close[:, j],
                        sl[:, j], tp[:, j], trail[:, j], fill_at_open, halt_from[j], held[:, j], fill[:, j],
                        reason[:, j])
    return held, fill, reason


def plan_fills(
    target: np.ndarray,
    price: np.ndarray,
    *,
    open: np.ndarray,  # noqa: A002 - the OHLC field name
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    rules: RiskRules | None = None,
    fill_at_open: bool = True,
    halt_from: np.ndarray | None = None,
    levels: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Direction held after each bar, fill prices and fill reasons (see the module rules).

    Parameters
    ----------
    target : ndarray of int (bars, symbols)
        Direction each bar's fill should reach (-1, 0, 1), aligned to the execution bar.
    price : ndarray (bars, symbols)
        Execution price of each bar (open or close, by timing).
    open, high, low, close : ndarray (bars, symbols)
        Bar ranges for the stops.
    rules : RiskRules, optional
        Stop levels; ``max_drawdown`` is not used here (see ``halt_from``).
    fill_at_open : bool
        Whether fills happen at the bar's open (then the entry bar's range counts for the
        trailing stop's best price).
    halt_from : ndarray of int (symbols,), optional
        First bar from which each symbol must be flat and stay flat.
    levels : tuple of three ndarray (bars, symbols), optional
        Stop-loss, take-profit and trailing-stop level of each bar (0 = off), instead of the
        constant levels of ``rules`` (see :class:`RiskSchedule`).

    Returns
    -------
    held : ndarray of int8
        Direction held after each bar.
    fill : ndarray of float
        Fill price where a fill happens, NaN elsewhere.
    reason : ndarray of int8
        Index into :data:`REASONS` (0 where no fill).
    """
    rules = rules or RiskRules()
    n, m = np.shape(target)
    halt = np.full(m, n + 1, dtype=np.int64) if halt_from is None else np.asarray(halt_from, dtype=np.int64)

    def arr(x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64).reshape(n, m)

    if levels is None:
        levels = rules.levels_on(range(n), range(m))
    sl, tp, trail = (np.nan_to_num(arr(v), nan=0.0) for v in levels)
    return _plan_nb(
        np.asarray(target, dtype=np.int8).reshape(n, m), arr(price), arr(open), arr(high), arr(low), arr(close),
        sl, tp, trail, bool(fill_at_open), halt,
    )
