"""Signal kernels of the strategy families, and the fused grid kernel that feeds them to one simulation.

A family's indicator is computed once per distinct window (with the strategy's own indicator
code, so every value is the one the engine sees); each parameter set then runs its family's
signal rule over that indicator into a small direction buffer, and the shared simulation
(:func:`research.backtest.simulate.simulate_nb`) trades it. No signal matrix of the grid is
ever built.

==========================  =====================================  ================================
family                      indicator table (one row per window)   rule per parameter set
==========================  =====================================  ================================
``ma_crossover``            SMA per window                         crossing rule of two rows
``rsi_reversion``           Wilder RSI per window                  hysteresis lower/exit/upper
``bollinger_breakout``      rolling mean and std (ddof 0)          %b = (close - lower) / width
``time_series_momentum``    lookback return per lookback           sign beyond the threshold
``candlestick``             bullish/bearish flags per pattern list  enter on a pattern, out after hold
==========================  =====================================  ================================
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numba import njit, prange

from research.backtest.indicator_tables import (
    bollinger_tables,
    ma_tables,
    momentum_tables,
    pattern_tables,
    rsi_tables,
)
from research.backtest.kernels import STATS
from research.backtest.simulate import N_RISK, RISK_FIELDS, simulate_nb
from research.kernel_cache import configure_kernel_cache
from research.strategies._nb import cross_step_nb, hysteresis_step_nb

configure_kernel_cache()  # before the @njit(cache=True) decorators below

__all__ = ["engine_call", "FAMILIES", "Family", "GridSets", "expand_grid", "family_tables", "family_grid_nb", "states_nb",
           "fused_family", "signal_groups", "block_bounds_nb", "bollinger_bounds_nb", "bollinger_states_nb",
           "rsi_states_nb", "BLOCK", "RUN", "interleave_nb"]

_CROSS, _RSI, _BOLL, _MOM, _PAT = 0, 1, 2, 3, 4
_N_STATS = len(STATS)
_SIDES = {"long": 1, "short": -1, "both": 0}


# --------------------------------------------------------------------------- numba

@njit(cache=True, inline="always")
def _bollinger_step_nb(c, mid, sdev, k, st, allow_long, allow_short):
    """One bar of the Bollinger rule: %b of :func:`research.features.indicators.bollinger` (same float
    operations), then the breakout hysteresis (long above 1, out below 0.5; short below 0, out above 0.5)."""
    upper = mid + k * sdev
    lower = mid - k * sdev
    width = upper - lower
    pct = (c - lower) / width if width > 0 else np.nan
    return hysteresis_step_nb(pct, st, 1.0, 0.5, 0.0, 0.5, True, allow_long, allow_short)


@njit(cache=True)
def states_nb(family, tables, j, close, rows, levels, side, out):
    """Direction after each bar's close for one parameter set of ``family`` on symbol ``j``.

    ``tables`` is ``(rows, symbols, bars)``; ``rows``/``levels`` are the set's table rows and
    levels; ``side`` is 1 (long), -1 (short) or 0 (both).
    """
    allow_long = side >= 0
    allow_short = side <= 0
    n = out.shape[0]
    st = 0
    if family == _CROSS:
        f = tables[rows[0], j]
        s = tables[rows[1], j]
        sd = 0
        for t in range(n):
            sd, st = cross_step_nb(f[t], s[t], sd, st, allow_short)
            out[t] = st if (allow_long or st < 0) else 0
    elif family == _RSI:
        x = tables[rows[0], j]
        lower, exit_level, upper = levels[0], levels[1], levels[2]
        for t in range(n):
            st = hysteresis_step_nb(x[t], st, lower, exit_level, upper, exit_level, False, allow_long, allow_short)
            out[t] = st
    elif family == _BOLL:
        mid = tables[rows[0], j]
        sdev = tables[rows[1], j]
        k = levels[0]
        for t in range(n):
            st = _bollinger_step_nb(close[t], mid[t], sdev[t], k, st, allow_long, allow_short)
            out[t] = st
    elif family == _PAT:
        bull = tables[rows[0], j]
        bear = tables[rows[1], j]
        hold = levels[0]
        age = 0
        for t in range(n):
            if np.isnan(bull[t]):  # an incomplete bar: the position is carried, the hold count waits
                out[t] = st
                continue
            up = bull[t] > 0
            down = bear[t] > 0
            expired = hold > 0 and age >= hold
            if (st == 1 and (down or expired)) or (st == -1 and (up or expired)):
                st = 0
            if up and not down and allow_long:
                st = 1
                age = 0
            elif down and not up and allow_short:
                st = -1
                age = 0
            out[t] = st
            age = age + 1 if st != 0 else 0
    else:
        r = tables[rows[0], j]
        thr = levels[0]
        for t in range(n):
            v = 0
            if allow_long and r[t] > thr:
                v = 1
            if allow_short and r[t] < -thr:
                v -= 1
            out[t] = v


#: Bars per block of :func:`block_bounds_nb` (a block whose range cannot change the state is filled at once).
BLOCK = 16


@njit(cache=True)
def block_bounds_nb(tables):
    """Per table row and symbol, the least and greatest value of each block of :data:`BLOCK` bars, NaN ignored.

    ``(mins, maxs)``, each ``(rows, symbols, bars // BLOCK)``; a block of NaN only has ``(+inf, -inf)``.
    """
    r, m, n = tables.shape
    nb = n // BLOCK
    mins = np.full((r, m, nb), np.inf)
    maxs = np.full((r, m, nb), -np.inf)
    for i in range(r):
        for j in range(m):
            for b in range(nb):
                lo_v = np.inf
                hi_v = -np.inf
                for t in range(b * BLOCK, (b + 1) * BLOCK):
                    v = tables[i, j, t]
                    if v < lo_v:
                        lo_v = v
                    if v > hi_v:
                        hi_v = v
                mins[i, j, b] = lo_v
                maxs[i, j, b] = hi_v
    return mins, maxs


@njit(cache=True)
def rsi_states_nb(x, bmin, bmax, lower, exit_level, upper, allow_long, allow_short, out):
    """The RSI rule of :func:`states_nb` (same states), skipping blocks where no bar can change the state.

    In a state, only a value beyond one of two thresholds can change it (flat: below ``lower``
    or above ``upper``; long: above ``exit_level``; short: below it). A block whose least and
    greatest values (``bmin``/``bmax`` from :func:`block_bounds_nb`) stay within them keeps the
    state throughout; the other blocks run bar by bar.
    """
    n = out.shape[0]
    st = 0
    t = 0
    for b in range(bmin.shape[0]):
        if st == 0:
            a = lower if allow_long else -np.inf
            c = upper if allow_short else np.inf
        elif st == 1:
            a = -np.inf
            c = exit_level
        else:
            a = exit_level
            c = np.inf
        if bmin[b] >= a and bmax[b] <= c:
            for u in range(t, t + BLOCK):
                out[u] = st
        else:
            for u in range(t, t + BLOCK):
                st = hysteresis_step_nb(x[u], st, lower, exit_level, upper, exit_level, False, allow_long, allow_short)
                out[u] = st
        t += BLOCK
    for u in range(t, n):
        st = hysteresis_step_nb(x[u], st, lower, exit_level, upper, exit_level, False, allow_long, allow_short)
        out[u] = st


#: Relative margin of the Bollinger block test (far above the few units in the last place by which %b
#: computed from the bands can differ from the band position computed from the standardised close).
_BOLL_TOL = 1e-12


@njit(cache=True)
def bollinger_bounds_nb(tables, close):
    """Per window and symbol, the Bollinger rule's block bounds: ``(zlo, zhi, gmax)``, each ``(windows, symbols,
    bars // BLOCK)``.

    ``z = (close - mean) / std`` places the close in the bands (%b is ``0.5 + z / (2 k)`` in exact
    arithmetic); ``g = (|close| + |mean|) / std`` scales its rounding error. Per block: the least
    ``z - 1e-12 g``, the greatest ``z + 1e-12 g`` and the greatest ``g``. A bar with a missing
    value or a zero std has no %b (it never changes the state) and is left out; a bar whose
    ``z`` or ``g`` is not finite makes ``gmax`` infinite (its block always runs bar by bar).
    """
    r, m, n = tables.shape
    nb = n // BLOCK
    zlo = np.full((r // 2, m, nb), np.inf)
    zhi = np.full((r // 2, m, nb), -np.inf)
    gmax = np.zeros((r // 2, m, nb))
    for i in range(r // 2):
        for j in range(m):
            mid = tables[2 * i, j]
            sdev = tables[2 * i + 1, j]
            c = close[j]
            for b in range(nb):
                lo_v = np.inf
                hi_v = -np.inf
                g_v = 0.0
                for t in range(b * BLOCK, (b + 1) * BLOCK):
                    s = sdev[t]
                    if np.isnan(c[t]) or np.isnan(mid[t]) or np.isnan(s) or s == 0.0:
                        continue
                    z = (c[t] - mid[t]) / s
                    g = (abs(c[t]) + abs(mid[t])) / s
                    if not (np.isfinite(z) and np.isfinite(g)):
                        g_v = np.inf
                        continue
                    lo_v = min(lo_v, z - _BOLL_TOL * g)
                    hi_v = max(hi_v, z + _BOLL_TOL * g)
                    g_v = max(g_v, g)
                zlo[i, j, b] = lo_v
                zhi[i, j, b] = hi_v
                gmax[i, j, b] = g_v
    return zlo, zhi, gmax


@njit(cache=True)
def bollinger_states_nb(close, mid, sdev, zlo, zhi, gmax, k, allow_long, allow_short, out):
    """The Bollinger rule of :func:`states_nb` (same states), skipping blocks where no bar can change the state.

    In a state only %b beyond one level can change it (flat: above 1 or below 0; long: below
    0.5; short: above 0.5), i.e. ``z`` beyond ``k``, ``-k`` or 0. With ``k > 1e-10 gmax`` the %b
    of every bar of the block differs from ``0.5 + z / (2 k)`` by far less than the block's margin
    (a few units in the last place of ``g``), so a block whose ``z`` bounds (:func:`bollinger_bounds_nb`)
    stay clear of the levels by ``1e-12 (g + k)`` keeps the state throughout; the other blocks
    run bar by bar with the rule's own arithmetic.
    """
    n = out.shape[0]
    st = 0
    t = 0
    k_in = k * (1.0 - _BOLL_TOL)
    mid_tol = _BOLL_TOL * k
    for b in range(zlo.shape[0]):
        skip = False
        if k > 1e-10 * gmax[b]:
            if st == 0:
                skip = (not allow_long or zhi[b] < k_in) and (not allow_short or zlo[b] > -k_in)
            elif st == 1:
                skip = zlo[b] > mid_tol
            else:
                skip = zhi[b] < -mid_tol
        if skip:
            for u in range(t, t + BLOCK):
                out[u] = st
        else:
            for u in range(t, t + BLOCK):
                st = _bollinger_step_nb(close[u], mid[u], sdev[u], k, st, allow_long, allow_short)
                out[u] = st
        t += BLOCK
    for u in range(t, n):
        st = _bollinger_step_nb(close[u], mid[u], sdev[u], k, st, allow_long, allow_short)
        out[u] = st


#: Consecutive (symbol, group) items of :func:`family_grid_nb` that one thread takes in turn.
RUN = 8


@njit(cache=True, inline="always")
def interleave_nb(it, per, ways):
    """The item that iteration ``it`` of :func:`family_grid_nb`'s parallel loop computes.

    The loop runs ``ways * per * RUN`` iterations and each thread takes a contiguous share of
    them (static scheduling). Iterations are mapped so that the ``i``-th share takes runs
    ``i, i + ways, i + 2 ways, ...`` of :data:`RUN` consecutive items: every item once (those
    ``>= total`` are skipped), and costs that grow along the sorted groups (a bullish pattern
    that fires more often, a longer lookback) fall on every thread alike.
    """
    run = it // RUN
    return ((run % per) * ways + run // per) * RUN + it % RUN


@njit(cache=True, parallel=True)
def family_grid_nb(family, tables, close, exec_px, open_, high, low, close_ff, r_close, lo, hi, rows, levels, sides,
                   risk, fees, slip, init_cash, ppy, whole, fill_at_open, keep_returns, order, starts, bmin, bmax, bscale,
                   ways):
    """Statistics of every parameter set on every symbol: ``(symbols * sets, STATS)``, symbol-major.

    Price arrays are ``(symbols, bars)``; ``close_ff``/``r_close`` from
    :func:`~research.backtest.kernels.prepare_nb`; ``lo``/``hi`` the simulated bars per symbol. With
    ``keep_returns`` also the per-bar returns ``(symbols * sets, max(hi - lo))`` (zeros past a
    symbol's span), else ``(symbols * sets, 0)``. ``order``/``starts`` group the sets that share
    one signal (:func:`signal_groups`): each group's directions are computed once per symbol and
    simulated under each of its sets' risk levels. ``bmin``/``bmax`` are the tables' block bounds
    for the rule's block skipping (RSI: :func:`block_bounds_nb`; Bollinger: with ``bscale``, from
    :func:`bollinger_bounds_nb`), or empty. ``ways`` is numba's thread count (:func:`interleave_nb`).
    """
    m, n = close.shape
    ns = rows.shape[0]
    ng = starts.shape[0] - 1
    out = np.empty((m * ns, _N_STATS))
    span = np.int64(np.max(hi - lo)) if keep_returns and m > 0 else np.int64(0)
    rets = np.zeros((m * ns, span))
    # each thread's contiguous share of the loop takes every ways-th run of items (interleave_nb)
    ways = max(1, ways)
    total = m * ng
    per = ((total + RUN - 1) // RUN + ways - 1) // ways
    for it in prange(ways * per * RUN):
        g = interleave_nb(it, per, ways)
        if g >= total:
            continue
        j = g // ng
        grp = g % ng
        st = np.empty(n, dtype=np.int8)
        first = order[starts[grp]]
        if family == _RSI and bmin.shape[0] > 0:
            lv = levels[first]
            rsi_states_nb(tables[rows[first, 0], j], bmin[rows[first, 0], j], bmax[rows[first, 0], j], lv[0], lv[1],
                          lv[2], sides[first] >= 0, sides[first] <= 0, st)
        elif family == _BOLL and bmin.shape[0] > 0:
            w = rows[first, 0]
            bollinger_states_nb(close[j], tables[w, j], tables[rows[first, 1], j], bmin[w // 2, j], bmax[w // 2, j],
                                bscale[w // 2, j], levels[first, 0], sides[first] >= 0, sides[first] <= 0, st)
        else:
            states_nb(family, tables, j, close[j], rows[first], levels[first], sides[first], st)
        for i in range(starts[grp], starts[grp + 1]):
            k = order[i]
            q = j * ns + k
            ret = rets[q, : hi[j] - lo[j]] if keep_returns else rets[q]
            simulate_nb(st, exec_px[j], open_[j], high[j], low[j], close[j], close_ff[j], r_close[j], lo[j], hi[j],
                        fees, slip, init_cash, ppy, whole, risk[k], fill_at_open, out[q], ret)
    return out, rets


def signal_groups(rows: np.ndarray, levels: np.ndarray, sides: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sets that share one signal (same table rows, levels and side; risk levels may differ).

    Returns ``(order, starts)``: the set indices grouped (ascending within a group) and the
    group boundaries in ``order`` (``len(groups) + 1`` entries).
    """
    ns = rows.shape[0]
    if ns == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(1, dtype=np.int64)
    key = np.column_stack([rows.astype(np.float64), levels + 0.0, sides.astype(np.float64)])  # + 0.0: -0.0 == 0.0
    order = np.lexsort(key.T[::-1]).astype(np.int64)
    ordered = key[order]
    new = np.ones(ns, dtype=bool)
    new[1:] = (ordered[1:] != ordered[:-1]).any(axis=1)
    starts = np.append(np.flatnonzero(new), ns).astype(np.int64)
    return order, starts


# --------------------------------------------------------------------------- families

def _pattern_check(p: Mapping[str, np.ndarray]) -> Refusals:
    """The candlestick strategy's own option checks (:func:`~research.strategies.signals.candlestick_options`),
    run once per distinct setting."""
    from research.strategies.signals import candlestick_options

    keys = ("bullish", "bearish", "hold", "direction")
    # any hold >= 1 is refused or accepted alike: check 0, 1 and the invalid values only
    raw = np.asarray(p["hold"], dtype=object)
    hold = np.where(_int_at_least(np.asarray(raw, dtype=np.float64), 1), 1, raw).tolist()
    combos = list(zip(p["bullish"].tolist(), p["bearish"].tolist(), hold, p["direction"].tolist(), strict=True))
    reasons: dict[tuple, str] = {}
    for combo in dict.fromkeys(combos):
        try:
            candlestick_options(**dict(zip(keys, combo, strict=True)))
        except (ValueError, TypeError) as exc:
            reasons[combo] = str(exc)
    out = []
    for why in dict.fromkeys(reasons.values()):
        out.append((np.array([reasons.get(c) == why for c in combos], dtype=bool), why))
    return out


Refusals = list[tuple[np.ndarray, str]]  # (mask of refused sets, reason)


def _ma_check(p: Mapping[str, np.ndarray]) -> Refusals:
    return [(~(_int_at_least(p["fast"], 1) & _int_at_least(p["slow"], 2)),
             "fast must be an integer >= 1 and slow an integer >= 2"),
            (~(p["fast"] < p["slow"]), "fast must be smaller than slow")]


def _rsi_check(p: Mapping[str, np.ndarray]) -> Refusals:
    lo, ex, up = p["lower"], p["exit_level"], p["upper"]
    return [(~_int_at_least(p["window"], 2), "window must be an integer >= 2"),
            (~((lo >= 0) & (lo <= ex) & (ex <= up) & (up <= 100)), "need 0 <= lower <= exit_level <= upper <= 100")]


def _bollinger_check(p: Mapping[str, np.ndarray]) -> Refusals:
    return [(~_int_at_least(p["window"], 2), "window must be an integer >= 2"), (~(p["k"] > 0), "k must be positive")]


def _momentum_check(p: Mapping[str, np.ndarray]) -> Refusals:
    return [(~_int_at_least(p["lookback"], 1), "lookback must be an integer >= 1"),
            (~(p["threshold"] >= 0), "threshold must be >= 0")]


def _int_at_least(value: np.ndarray, minimum: int) -> np.ndarray:
    v = np.asarray(value, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.isfinite(v) & (v == np.round(v)) & (v >= minimum)


@dataclass(frozen=True)
class Family:
    """A strategy family of the fused sweep.

    Attributes
    ----------
    name : str
        The catalog strategy it reproduces.
    code : int
        Its rule in :func:`states_nb`.
    windows : tuple of str
        Parameters that pick indicator table rows (each distinct value computed once).
    levels : tuple of str
        Parameters the rule reads per set (up to three).
    rows_per_window : int
        Table rows per window (Bollinger keeps mean and standard deviation).
    tables : callable
        ``(price frames by field, windows) -> list of (symbols, bars) arrays``, ``rows_per_window``
        per window (or those rows as one ``(rows, symbols, bars)`` array).
    check : callable
        The strategy's own validation over arrays of parameter values: a list of
        ``(mask of refused sets, reason)``.
    string_windows : bool
        The table is keyed by text values (the candlestick family's pattern lists): each value
        has two rows, its bullish flags and its bearish flags.
    """

    name: str
    code: int
    windows: tuple[str, ...]
    levels: tuple[str, ...]
    rows_per_window: int
    tables: Callable[[Mapping[str, pd.DataFrame], np.ndarray], list[np.ndarray] | np.ndarray]
    check: Callable[[Mapping[str, np.ndarray]], Refusals]
    string_windows: bool = False


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("ma_crossover", _CROSS, ("fast", "slow"), (), 1, ma_tables, _ma_check),
    Family("rsi_reversion", _RSI, ("window",), ("lower", "exit_level", "upper"), 1, rsi_tables, _rsi_check),
    Family("bollinger_breakout", _BOLL, ("window",), ("k",), 2, bollinger_tables, _bollinger_check),
    Family("time_series_momentum", _MOM, ("lookback",), ("threshold",), 1, momentum_tables, _momentum_check),
    Family("candlestick", _PAT, ("bullish", "bearish"), ("hold",), 2, pattern_tables, _pattern_check, True),
)}


def fused_family(name: str) -> Family:
    """The fused family of a catalog strategy (ValueError naming the families otherwise)."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"no fused sweep for {name!r}; fused families: {sorted(FAMILIES)}") from None


# --------------------------------------------------------------------------- grids

@dataclass
class GridSets:
    """The parameter sets of a family grid, as the kernel reads them.

    Attributes
    ----------
    keys : list of str
        Swept names, in grid order (strategy parameters, ``direction`` and risk levels).
    values : dict of str to ndarray
        Each swept name's value per set (the table's parameter columns).
    windows : ndarray of int64
        Distinct windows; table row ``i * rows_per_window (+1)`` belongs to ``windows[i]``.
    rows, levels, sides, risk : ndarray
        Per set: table rows ``(sets, 2)``, levels ``(sets, 3)``, side (1, -1, 0) and risk
        levels ``(sets, 4)`` (0 = off).
    """

    keys: list[str]
    values: dict[str, np.ndarray]
    windows: np.ndarray
    rows: np.ndarray
    levels: np.ndarray
    sides: np.ndarray
    risk: np.ndarray

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def take(self, sel: slice | np.ndarray, rows_per_window: int) -> GridSets:
        """The sets ``sel``, with only the windows they use (rows renumbered)."""
        rows = self.rows[sel]
        widx = rows // rows_per_window
        used = np.unique(widx)
        new_rows = np.searchsorted(used, widx) * rows_per_window + rows % rows_per_window
        return GridSets(self.keys, {k: v[sel] for k, v in self.values.items()}, self.windows[used],
                        new_rows.astype(np.int64), self.levels[sel], self.sides[sel], self.risk[sel])


def expand_grid(family: Family, grid: Mapping[str, Sequence[Any]], *, defaults: Mapping[str, Any],
                risk: Mapping[str, float | None] | None = None) -> GridSets:
    """Every parameter set of ``grid`` (Cartesian product, first key slowest) for ``family``.

    Unswept strategy parameters keep ``defaults``; unswept risk levels keep ``risk``. A risk
    level of 0 (or None) disables that rule. Sets the strategy refuses are dropped with one
    warning that counts them and gives the first reason.
    """
    allowed = [*defaults, *RISK_FIELDS]
    keys = list(grid)
    lists = {}
    for key in keys:
        if key not in allowed:
            raise ValueError(f"{family.name} has no parameter {key!r}; grid keys are {allowed}")
        lists[key] = list(grid[key])
        if not lists[key]:
            raise ValueError(f"the grid gives no value for {key!r}")
    shape = [len(lists[k]) for k in keys]
    n = int(np.prod(shape)) if keys else 1
    idx = np.indices(shape).reshape(len(keys), -1) if keys else np.zeros((0, 1), dtype=np.int64)
    values = {k: _column(lists[k])[idx[i]] for i, k in enumerate(keys)}
    base = {**dict(defaults), **{k: (v or 0.0) for k, v in dict(risk or {}).items()}}
    full = {k: values[k] if k in values else _column([base.get(k, 0.0)])[np.zeros(n, dtype=np.int64)]
            for k in [*defaults, *RISK_FIELDS] if k != "predictions"}
    refused = np.zeros(n, dtype=bool)
    first = ""
    for mask, why in [*_common_checks(full), *family.check(full)]:
        if mask.any() and not first:
            at = int(np.argmax(mask))
            first = f"e.g. {({k: getattr(values[k][at], 'item', lambda v=values[k][at]: v)() for k in keys})}: {why}"
        refused |= mask
    if refused.any():
        warnings.warn(f"{family.name}: {int(refused.sum()):,} of {n:,} parameter sets skipped ({first})",
                      stacklevel=3)
    if refused.all():
        raise ValueError(f"no valid parameter set of {family.name} in the grid {dict(grid)} ({first})")
    keep = ~refused
    return _encode(family, keys, {k: v[keep] for k, v in values.items()}, {k: v[keep] for k, v in full.items()})


def _column(values: list[Any]) -> np.ndarray:
    if all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in values):
        return np.asarray(values, dtype=np.int64)
    if all(isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool) for v in values):
        return np.asarray(values, dtype=np.float64)
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _common_checks(p: Mapping[str, np.ndarray]) -> Refusals:
    out = [(_side_codes(p["direction"]) == _NO_SIDE, f"direction must be one of {sorted(_SIDES)}")] \
        if "direction" in p else []
    for name in RISK_FIELDS:
        v = np.asarray(p[name], dtype=np.float64)
        ok = np.isfinite(v) & (v >= 0) & ((v < 1) | (name == "take_profit"))
        out.append((~ok, f"{name} must be 0 (off) or {'> 0' if name == 'take_profit' else 'in (0, 1)'}"))
    return out


_NO_SIDE = 2  # a direction that is none of _SIDES


def _side_codes(direction: np.ndarray) -> np.ndarray:
    """Each set's side (1 long, -1 short, 0 both; :data:`_NO_SIDE` for any other value), the distinct
    values looked up once."""
    codes, distinct = pd.factorize(np.asarray(direction, dtype=object))  # a missing value: code -1
    return np.array([*(_SIDES.get(str(v), _NO_SIDE) for v in distinct), _NO_SIDE], dtype=np.int8)[codes]


def _encode(family: Family, keys: list[str], values: dict[str, np.ndarray], full: dict[str, np.ndarray]) -> GridSets:
    ns = len(next(iter(full.values())))
    rows = np.zeros((ns, 2), dtype=np.int64)
    if family.string_windows:  # bullish list -> its bullish-flags row, bearish list -> its bearish-flags row
        text, ids = _text_ids([full[w] for w in family.windows])
        rows[:, 0] = 2 * ids[0]
        rows[:, 1] = 2 * ids[1] + 1
        windows = text.astype(object)
    else:
        wins = [np.asarray(full[w], dtype=np.float64).astype(np.int64) for w in family.windows]
        windows = np.unique(np.concatenate(wins))
        for c, w in enumerate(wins):
            rows[:, c] = np.searchsorted(windows, w)
        if family.rows_per_window == 2:
            rows[:, 0], rows[:, 1] = 2 * rows[:, 0], 2 * rows[:, 0] + 1
    levels = np.zeros((ns, 3), dtype=np.float64)
    for c, name in enumerate(family.levels):
        levels[:, c] = np.asarray(full[name], dtype=np.float64)
    sides = _side_codes(full["direction"]) if "direction" in full else np.ones(ns, dtype=np.int8)
    risk = np.column_stack([np.asarray(full[f], dtype=np.float64) for f in RISK_FIELDS]).reshape(ns, N_RISK)
    return GridSets(keys, values, windows, rows, levels, sides, np.ascontiguousarray(risk))


def _text_ids(columns: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """The sorted distinct texts of ``columns`` (each value as ``str``) and each column's positions in them.

    Hashes the values once (a grid column repeats a few texts thousands of times) and sorts only
    the distinct ones.
    """
    values = np.concatenate([np.asarray(c, dtype=object) for c in columns])
    codes, distinct = pd.factorize(values, use_na_sentinel=False)
    text, inverse = np.unique(np.array([str(v) for v in distinct], dtype=str), return_inverse=True)
    ids = inverse.reshape(-1)[codes]
    bounds = np.cumsum([0, *(len(c) for c in columns)])
    return text, [ids[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def family_tables(family: Family, fields: Mapping[str, pd.DataFrame], windows: np.ndarray) -> np.ndarray:
    """The indicator table of the price frames (bars x symbols): ``(rows, symbols, bars)``, C-contiguous."""
    close = fields["close"]
    parts = family.tables(fields, windows)
    if isinstance(parts, np.ndarray):  # already one (rows, symbols, bars) array
        return np.ascontiguousarray(parts)
    return np.ascontiguousarray(np.stack(parts)) if parts else np.zeros((0, close.shape[1], close.shape[0]))


def engine_call(params: Mapping[str, Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``backtest`` keyword arguments of one engine set: risk dimensions of the grid join ``risk``.

    A grid's ``drawdown_halt`` is the engine's ``max_drawdown`` rule; 0 turns a level off.
    """
    from research.strategies.stops import RiskRules

    strategy_params = {k: v for k, v in params.items() if k not in RISK_FIELDS}
    levels = {("max_drawdown" if k == "drawdown_halt" else k): (float(v) or None)
              for k, v in params.items() if k in RISK_FIELDS}
    out = dict(kwargs)
    if levels:
        base = kwargs.get("risk")
        base = base.to_dict() if isinstance(base, RiskRules) else dict(base or {})
        out["risk"] = {**base, **levels}
    return {"params": strategy_params, **out}
