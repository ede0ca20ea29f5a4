"""The backtest stage's sweep record: the grid of every swept strategy family, how likely each
family's best cell is luck, and the bars it ran on (so a dashboard can re-run any one cell exactly).

:func:`sweep_record` returns the outputs the backtest stage writes, in long format (one table
for every family, told apart by a ``family`` column):

================  ===========================================================================
output            contents
================  ===========================================================================
``sweep``         one row per (family, symbol, parameter set) of every grid: ``family``,
                  ``symbol``, the union of the families' parameter columns (empty where a
                  family has no such parameter), :data:`STATS` (decimal fractions; ``sharpe``
                  annualised)
``sweep_summary`` one row per (family, symbol): the grid (``grid``, ``param_names``), costs and
                  dates of the sweep; the best cell by Sharpe (its parameters as columns and as
                  JSON in ``params``); its deflated Sharpe ratio over *every* cell of the
                  family's grid (``dsr_trials``); the PBO by CSCV over a regular sub-grid
                  (``pbo_trials`` cells, ``pbo_grid``, ``pbo_splits`` blocks,
                  ``pbo_combinations`` splits)
``sweep_returns`` per-bar returns of a coarse sub-grid (at most 16 cells) of each family on one
                  symbol: columns ``family|cell`` (``ma_crossover|5/20``,
                  ``rsi_reversion|window=2,lower=10,exit_level=45``) and ``symbol``
``sweep_bars``    the bars each symbol was swept on (``open|SYM``, ``close|SYM``; ``high|SYM``,
                  ``low|SYM`` too when a family reads whole bars or a grid has risk levels)
================  ===========================================================================

Long format keeps one output name per record whatever families run, and lets the explorer and
the risk stage read a family by filtering one column.

The deflated Sharpe needs only the number of trials and the variance of their Sharpe ratios
(both from the full table) and the selected cell's own returns; the PBO needs every trial's
returns, so it runs on a sub-grid of at most :data:`PBO_MAX_TRIALS` cells (every k-th value of
each parameter) with :data:`PBO_COMBINATIONS` of the C(16, 8) splits (seeded), which keeps the
stage within a second or two per family however large the grid.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from research.backtest.kernels import STATS
from research.backtest.simulate import RISK_FIELDS
from research.backtest.sweep import ma_pairs, sweep
from research.risk.overfitting import sweep_overfitting
from research.stages.sweep_grids import family_grids, grid_label

__all__ = ["sweep_record", "wf_windows", "pbo_subgrid", "pbo_grid", "coarse", "coarse_grid", "grid_text",
           "cell_label", "empty_record", "PBO_MAX_TRIALS", "PBO_SPLITS", "PBO_COMBINATIONS", "STATS"]

logger = logging.getLogger(__name__)

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


def pbo_grid(grid: Mapping[str, Sequence[Any]], *, max_trials: int = PBO_MAX_TRIALS) -> dict[str, list[Any]]:
    """Every k-th value of each parameter, the smallest k leaving at most ``max_trials`` sets (the
    crossover: :func:`pbo_subgrid`, which counts only ``fast < slow`` pairs)."""
    if set(grid) == {"fast", "slow"}:
        f, s = pbo_subgrid(grid["fast"], grid["slow"], max_trials=max_trials)
        return {"fast": f, "slow": s}
    longest = max(len(v) for v in grid.values())
    for k in range(1, longest + 1):
        sub = {name: list(values)[::k] for name, values in grid.items()}
        if math.prod(len(v) for v in sub.values()) <= max_trials:
            return sub
    return {name: list(values)[:1] for name, values in grid.items()}


def coarse_grid(grid: Mapping[str, Sequence[Any]], cells: int = 16) -> dict[str, list[Any]]:
    """At most ``cells`` sets spread over the grid: :func:`coarse` of each parameter (4 x 4 for two)."""
    k = max(1, int(math.floor(cells ** (1.0 / max(1, len(grid))) + 1e-9)))
    out = {name: coarse(list(values), k) for name, values in grid.items()}
    if set(out) == {"fast", "slow"}:  # keep pairs with fast < slow
        out["slow"] = coarse([w for w in grid["slow"] if w > min(grid["fast"])], k) or out["slow"]
    return out


def cell_label(family: str, cell: Mapping[str, Any]) -> str:
    """A parameter set as text: ``"5/20"`` for the crossover, else ``"window=2,lower=10"``."""
    if family == "ma_crossover" and set(cell) == {"fast", "slow"}:
        return f"{_plain(cell['fast'])}/{_plain(cell['slow'])}"
    return ",".join(f"{k}={_plain(v)}" for k, v in cell.items())


def _plain(v: Any) -> Any:
    v = v.item() if hasattr(v, "item") else v
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _bars(prices: Any, symbols: Sequence[str], exec_field: str, *, whole: bool) -> pd.DataFrame:
    from research.backtest.engine import as_fields

    fields = as_fields(prices)
    wanted = [exec_field, "close", *(("open", "high", "low") if whole else ())]
    cols = {}
    for field in dict.fromkeys(f for f in wanted if f in fields):
        for sym in symbols:
            cols[f"{field}|{sym}"] = fields[field][sym].astype("float64")
    out = pd.DataFrame(cols)
    out.index.name = "timestamp"
    return out.dropna(how="all")


def _family_sweep(prices: Any, family: str, grid: Mapping[str, list[Any]],
                  costs: Mapping[str, Any]) -> tuple[pd.DataFrame, list[dict[str, Any]], Any]:
    """One family's table (with its ``family`` column), its summary rows and its sweep result."""
    sw = sweep(prices, family, grid, progress=False, **costs)
    names = list(sw.param_names)
    sub_grid = pbo_grid(grid)
    n_sub = math.prod(map(len, sub_grid.values()))
    if n_sub == math.prod(map(len, grid.values())):  # the whole grid is small enough
        sub = sw
    else:
        sub = sweep(prices, family, sub_grid, progress=False, **costs) if n_sub >= 2 else None
    rows = []
    for sym in dict.fromkeys(sw.table["symbol"]):
        row = sweep_overfitting(sw, sym, pbo_sweep=sub, n_splits=PBO_SPLITS, max_combinations=PBO_COMBINATIONS, seed=0)
        cell = {k: _plain(row[k]) for k in names if k in row}
        row.update(family=family, param_names=",".join(names), params=json.dumps(cell, default=str),
                   grid=grid_label(grid), pbo_grid=grid_label(sub_grid),
                   **{k: sw.params[k] for k in ("fees", "slippage", "init_cash", "timing", "periods_per_year")},
                   start=str(sw.params["start"]), end=str(sw.params["end"]), seconds=round(sw.elapsed, 3))
        rows.append(row)
    table = sw.table.reset_index(drop=True)
    table.insert(0, "family", family)
    return table, rows, sw


def sweep_record(
    prices: Any, *, fast: str | Iterable[int], slow: str | Iterable[int], fees: float, slippage: float,
    target: str | None = None, families: Sequence[str] = ("ma_crossover",),
    grids: Mapping[str, Mapping[str, list[Any]]] | None = None, **options: Any,
) -> dict[str, pd.DataFrame]:
    """Sweep each family's grid on every symbol and build the stage's sweep outputs.

    Parameters
    ----------
    prices : DataFrame or mapping
        OHLC as for :func:`~research.backtest.sweep.sweep`.
    fast, slow : str or iterable of int
        The crossover's windows, as text (``"2:100"``, ``"10:250:5"``, ``"5,10,20"``) or integers;
        every ``fast < slow`` pair is run.
    fees, slippage : float
        Costs, as for the backtests.
    target : str, optional
        Symbol whose coarse sub-grid returns become ``sweep_returns`` (default: the first).
    families : sequence of str
        Families of :data:`research.backtest.families.FAMILIES` to sweep (see
        :func:`research.stages.sweep_grids.resolve_families`).
    grids : mapping, optional
        Per family, parameters whose values replace the default grid's
        (:func:`research.stages.sweep_grids.family_grids`).
    **options
        More sweep options (``timing``, ``init_cash``...).

    Returns
    -------
    dict
        ``sweep``, ``sweep_summary``, ``sweep_returns`` and ``sweep_bars`` (see the module doc).

    Raises
    ------
    ValueError
        No family to sweep, or a grid or family the sweep refuses.
    """
    if not families:
        raise ValueError("no family to sweep (the stage writes empty_record() then)")
    all_grids = family_grids(list(families), fast=fast, slow=slow, overrides=grids)
    costs = {"fees": fees, "slippage": slippage, **options}
    tables, rows, trials, last = [], [], [], None
    for family, grid in all_grids.items():
        table, summary_rows, last = _family_sweep(prices, family, grid, costs)
        symbols = list(dict.fromkeys(table["symbol"]))
        if last.params.get("engine") == "fused":  # an engine sweep keeps no trial returns
            trials.append(_coarse_trials(prices, family, grid, costs, target if target in symbols else symbols[0]))
        logger.info("swept %s: %s sets x %s symbols in %.2f s", family, f"{last.n_trials:,}", len(symbols), last.elapsed)
        tables.append(table)
        rows += summary_rows
    whole = any(f == "candlestick" or set(g) & set(RISK_FIELDS) for f, g in all_grids.items())
    exec_field = "open" if last.params["timing"] == "next_open" else "close"
    return _combine(prices, tables, rows, trials, target, exec_field, whole=whole)


def _combine(prices: Any, tables: list[pd.DataFrame], rows: list[dict[str, Any]], trials: list[pd.DataFrame],
             target: str | None, exec_field: str, *, whole: bool) -> dict[str, pd.DataFrame]:
    """The record's four outputs from the families' tables, summary rows and coarse trial returns."""
    table = pd.concat(tables, ignore_index=True)
    symbols = list(dict.fromkeys(table["symbol"]))
    stats = [c for c in STATS if c in table and c != "trades"]
    table[stats] = table[stats].astype("float32")  # 7 significant digits; halves the file
    returns = pd.concat(trials, axis=1) if trials else pd.DataFrame(index=pd.Index([], name="timestamp"))
    target = target if target in symbols else symbols[0]
    return {"sweep": table, "sweep_summary": pd.DataFrame(rows), "sweep_returns": returns.assign(symbol=target),
            "sweep_bars": _bars(prices, symbols, exec_field, whole=whole)}


def _coarse_trials(prices: Any, family: str, grid: Mapping[str, list[Any]], costs: Mapping[str, Any],
                   target: str) -> pd.DataFrame:
    """Per-bar returns of :func:`coarse_grid`'s cells of one family on ``target``."""
    small = sweep(prices, family, coarse_grid(grid), progress=False, **costs)
    trials = small.trial_returns(target)
    names = list(small.param_names)
    trials.columns = [f"{family}|{cell_label(family, dict(zip(names, c if isinstance(c, tuple) else (c,), strict=True)))}"
                      for c in trials.columns]
    return trials


def empty_record() -> dict[str, pd.DataFrame]:
    """The sweep outputs of a run that sweeps nothing (``sweep_families=none``): empty tables."""
    index = pd.Index([], name="timestamp", dtype="datetime64[ns, UTC]")
    return {"sweep": pd.DataFrame(columns=["family", "symbol", *STATS]),
            "sweep_summary": pd.DataFrame(columns=["family", "symbol", "param_names", "params"]),
            "sweep_returns": pd.DataFrame({"symbol": pd.Series([], dtype=str)}, index=index),
            "sweep_bars": pd.DataFrame(index=index)}
