"""The backtest stage's sweep record: the full moving-average grid, how likely its best cell is
luck, and the bars it ran on (so a dashboard can re-run any one cell exactly).

:func:`sweep_record` returns the outputs the backtest stage writes:

================  ===========================================================================
output            contents
================  ===========================================================================
``sweep``         one row per (symbol, fast, slow) of the whole grid: :data:`STATS`
                  (decimal fractions; ``sharpe`` annualised)
``sweep_summary`` one row per symbol: the grid, costs and dates of the sweep; the best cell by
                  Sharpe; its deflated Sharpe ratio over *every* cell of the grid
                  (``dsr_trials``); the PBO by CSCV over a regular sub-grid
                  (``pbo_trials`` cells, ``pbo_grid``, ``pbo_splits`` blocks,
                  ``pbo_combinations`` splits)
``sweep_returns`` per-bar returns of a coarse 4 x 4 sub-grid of one symbol (``fast/slow``
                  columns), for notebooks; bounded whatever the grid size
``sweep_bars``    the open and close each symbol was swept on (``open|SYM``, ``close|SYM``)
================  ===========================================================================

The deflated Sharpe needs only the number of trials and the variance of their Sharpe ratios
(both from the full table) and the selected cell's own returns; the PBO needs every trial's
returns, so it runs on a sub-grid of at most :data:`PBO_MAX_TRIALS` cells (every k-th fast and
slow window) with :data:`PBO_COMBINATIONS` of the C(16, 8) splits (seeded), which keeps the
stage within a second or two however large the grid.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from research.backtest.kernels import STATS
from research.backtest.sweep import ma_pairs, parse_windows, sweep_ma_crossover
from research.risk.overfitting import sweep_overfitting

__all__ = ["sweep_record", "wf_windows", "pbo_subgrid", "coarse", "grid_text", "PBO_MAX_TRIALS", "PBO_SPLITS",
           "PBO_COMBINATIONS", "STATS"]

#: Largest number of grid cells whose returns go into the PBO.
PBO_MAX_TRIALS = 800
#: CSCV blocks and the number of the C(16, 8) = 12,870 splits evaluated.
PBO_SPLITS = 16
PBO_COMBINATIONS = 2000


def wf_windows(bars: int) -> tuple[int, int]:
    """Walk-forward training and test lengths for a history of ``bars``: the workbench's
    three years and half a year of sessions (:func:`research.backtest.walkforward.walk_forward`)
    when at least four test windows follow the first training one, else half the bars and an eighth."""
    if bars >= 756 + 4 * 126:
        return 756, 126
    return max(bars // 2, 2), max(bars // 8, 2)


def grid_text(windows: Sequence[int]) -> str:
    """``[2, 3, ..., 100]`` -> ``"2:100"``; ``[10, 15, ..., 250]`` -> ``"10:250:5"``; else a comma list."""
    w = sorted(int(v) for v in windows)
    if len(w) > 2:
        steps = set(np.diff(w).tolist())
        if len(steps) == 1:
            step = steps.pop()
            return f"{w[0]}:{w[-1]}" + (f":{step}" if step != 1 else "")
    return ",".join(str(v) for v in w)


def coarse(windows: Sequence[int], k: int) -> list[int]:
    """At most ``k`` windows spread evenly over ``windows`` (first and last included)."""
    w = sorted(windows)
    if len(w) <= k:
        return list(w)
    return sorted({w[int(round(i))] for i in np.linspace(0, len(w) - 1, k)})


def pbo_subgrid(fast: Sequence[int], slow: Sequence[int], *, max_trials: int = PBO_MAX_TRIALS) -> tuple[list[int], list[int]]:
    """Every k-th fast and slow window, the smallest k leaving at most ``max_trials`` pairs."""
    fast, slow = sorted(fast), sorted(slow)
    for k in range(1, max(len(fast), len(slow)) + 1):
        f, s = fast[::k], slow[::k]
        try:
            if len(ma_pairs(f, s)) <= max_trials:
                return f, s
        except ValueError:
            continue
    return fast[:1], slow[-1:]


def _bars(prices: Any, symbols: Sequence[str], exec_field: str) -> pd.DataFrame:
    from research.backtest.engine import as_fields

    fields = as_fields(prices)
    cols = {}
    for field in dict.fromkeys((exec_field, "close")):
        for sym in symbols:
            cols[f"{field}|{sym}"] = fields[field][sym].astype("float64")
    out = pd.DataFrame(cols)
    out.index.name = "timestamp"
    return out.dropna(how="all")


def sweep_record(
    prices: Any, *, fast: str | Iterable[int], slow: str | Iterable[int], fees: float, slippage: float,
    target: str | None = None, **options: Any,
) -> dict[str, pd.DataFrame]:
    """Sweep every ``fast < slow`` pair on every symbol and build the stage's sweep outputs.

    Parameters
    ----------
    prices : DataFrame or mapping
        OHLC as for :func:`~research.backtest.sweep.sweep_ma_crossover`.
    fast, slow : str or iterable of int
        Windows, as text (``"2:100"``, ``"10:250:5"``, ``"5,10,20"``) or integers.
    fees, slippage : float
        Costs, as for the backtests.
    target : str, optional
        Symbol whose coarse sub-grid returns become ``sweep_returns`` (default: the first).
    **options
        More :func:`~research.backtest.sweep.sweep_ma_crossover` options (``timing``, ``init_cash``...).

    Returns
    -------
    dict
        ``sweep``, ``sweep_summary``, ``sweep_returns`` and ``sweep_bars`` (see the module doc).
    """
    fast_w, slow_w = parse_windows(fast), parse_windows(slow)
    costs = {"fees": fees, "slippage": slippage, **options}
    sw = sweep_ma_crossover(prices, fast=fast_w, slow=slow_w, **costs)
    pf, ps = pbo_subgrid(fast_w, slow_w)
    sub = sweep_ma_crossover(prices, fast=pf, slow=ps, **costs) if len(ma_pairs(pf, ps)) >= 2 else None
    symbols = list(dict.fromkeys(sw.table["symbol"]))
    rows = []
    for sym in symbols:
        row = sweep_overfitting(sw, sym, pbo_sweep=sub, n_splits=PBO_SPLITS, max_combinations=PBO_COMBINATIONS, seed=0)
        row.update(grid=f"fast {grid_text(fast_w)} x slow {grid_text(slow_w)}",
                   pbo_grid=f"fast {grid_text(pf)} x slow {grid_text(ps)}",
                   **{k: sw.params[k] for k in ("fees", "slippage", "init_cash", "timing", "periods_per_year")},
                   start=str(sw.params["start"]), end=str(sw.params["end"]),
                   seconds=round(sw.elapsed, 3))
        rows.append(row)
    summary = pd.DataFrame(rows)
    target = target if target in symbols else symbols[0]
    cf, cs = coarse(fast_w, 4), coarse([w for w in slow_w if w > min(fast_w)], 4)
    small = sweep_ma_crossover(prices, fast=cf, slow=cs, **costs)
    trials = small.trial_returns(target)
    trials.columns = [f"{f}/{s}" for f, s in trials.columns]
    exec_field = "open" if sw.params["timing"] == "next_open" else "close"
    table = sw.table.reset_index(drop=True)
    stats = [c for c in STATS if c in table and c != "trades"]
    table[stats] = table[stats].astype("float32")  # 7 significant digits; halves the file
    return {"sweep": table, "sweep_summary": summary,
            "sweep_returns": trials.assign(symbol=target), "sweep_bars": _bars(prices, symbols, exec_field)}
