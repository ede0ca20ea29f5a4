"""Walk-forward optimisation of any fused strategy family (:mod:`research.backtest.walkforward`).

In each fold :func:`~research.backtest.family_sweep.sweep_family` runs the grid on the training
window, given only the bars up to its last one (earlier bars warm the indicators up); the best
set (``SweepResult.best``: highest metric, first on ties) trades the following test window.

The stitched book
-----------------
One engine backtest from the first test bar to the last bar, of:

* **direction**: the decision at the close of bar ``t`` is that of the set chosen for the fold
  whose test window holds the fill bar ``t + 1``, computed by the catalog strategy as if that set
  had run over the whole history up to ``t`` (its indicators, hysteresis and hold counts
  included). At a fold boundary the book therefore moves to the new set's current direction at
  the open (a trade only if it differs from what the book holds).
* **stops** (``stop_loss``, ``take_profit``, ``trailing_stop`` swept or given as ``risk``): the
  levels of each test window are its chosen set's, from the window's first bar
  (:class:`~research.strategies.stops.RiskSchedule`). The stop state is the book's own: a
  position carried over a boundary keeps its entry price and best price since entry, now
  measured against the new levels, and after a stop exit the book waits for a fresh signal of
  whichever set is trading. A fixed ``max_drawdown`` halt (``risk=``) acts on the stitched book;
  ``drawdown_halt`` cannot be a walk-forward grid dimension (a halt ends the book for good).

Costs, fills, sizing (all in, one book per symbol) are the engine's.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from research.backtest.engine import BacktestResult, backtest
from research.backtest.families import fused_family
from research.backtest.family_sweep import family_sets, sweep_family
from research.backtest.simulate import RISK_FIELDS
from research.backtest.tasks import run_tasks
from research.strategies.catalog import get_strategy
from research.strategies.signals import Signals
from research.strategies.stops import RiskRules, RiskSchedule

__all__ = ["family_walk_forward", "family_fold_choices", "check_family_grid"]

logger = logging.getLogger(__name__)

_STOPS = ("stop_loss", "take_profit", "trailing_stop")
Choice = tuple[dict[str, Any] | None, float]  # (chosen set, in-sample score); None: nothing traded in-sample


def check_family_grid(strategy: str, grid: Mapping[str, Sequence[Any]], risk: Any) -> list[str]:
    """The grid's parameter names, after checking the family, the names and the values (errors name them)."""
    family = fused_family(strategy)
    if not grid:
        raise ValueError(f"the walk-forward of {strategy} needs a grid of at least one parameter")
    if "drawdown_halt" in grid:
        raise ValueError("drawdown_halt cannot be a walk-forward grid dimension (a halt ends the book for good): "
                         "give one level as risk={'max_drawdown': ...}")
    return list(family_sets(family, grid, risk).keys)  # refuses unknown names and invalid values


def family_walk_forward(fields: dict[str, pd.DataFrame], strategy: str, grid: Mapping[str, Sequence[Any]], *,
                        bounds: list[tuple[int, int, int, int]], metric: str, costs: dict[str, Any],
                        whole_shares: bool, risk: Mapping[str, float | None] | None, client: Any,
                        progress: bool) -> tuple[list[dict[str, Any]], BacktestResult]:
    """The folds' rows (without out-of-sample figures) and the stitched out-of-sample backtest."""
    names = check_family_grid(strategy, grid, risk)
    rules = RiskRules(**dict(risk or {}))
    shared = {"fields": fields, "bounds": bounds, "strategy": strategy, "grid": {k: list(v) for k, v in grid.items()},
              "metric": metric, "costs": costs, "whole_shares": whole_shares, "risk": rules.to_dict()}
    tasks = [(j, k, k + 1) for j in range(fields["close"].shape[1]) for k in range(len(bounds))]  # one per fold
    picks = run_tasks(family_fold_choices, tasks, client=client, shared=shared, desc="walk-forward folds",
                      progress=progress)
    chosen = {(j, k0 + i): pick for (j, k0, _), block in zip(tasks, picks, strict=True) for i, pick in enumerate(block)}
    direction, schedule, rows = _stitch(fields, strategy, bounds, chosen, names, rules, metric)
    signals = Signals(direction, name=f"{strategy}_walk_forward", params={"metric": metric, "grid": shared["grid"]})
    result = backtest(fields, signals, risk=schedule, start=fields["close"].index[bounds[0][2]],
                      whole_shares=whole_shares, **costs)
    return rows, result


def family_fold_choices(j: int, k0: int, k1: int, *, fields: Mapping[str, pd.DataFrame],
                        bounds: list[tuple[int, ...]], strategy: str, grid: Mapping[str, list[Any]], metric: str,
                        costs: dict[str, Any], whole_shares: bool, risk: Mapping[str, float | None]) -> list[Choice]:
    """The in-sample choice ``(set, score)`` of symbol ``j`` in folds ``k0 .. k1 - 1``.

    Each fold's sweep sees the bars up to the end of its training window only. ``(None, nan)``
    when no set has a finite score in-sample (the fold stays flat).
    """
    sym = fields["close"].columns[j]
    one = {k: v[[sym]] for k, v in fields.items()}
    index = fields["close"].index
    out: list[Choice] = []
    for a, b, _, _ in bounds[k0:k1]:
        if one["close"][sym].iloc[a:b].notna().sum() < 2:
            out.append((None, float("nan")))
            continue
        seen = {k: v.iloc[:b] for k, v in one.items()}
        with warnings.catch_warnings():  # the grid's refused sets were reported once, before the folds
            warnings.filterwarnings("ignore", message=".*parameter sets skipped")
            res = sweep_family(seen, strategy, grid, start=index[a], end=index[b - 1], metric=metric,
                               whole_shares=whole_shares, risk=_engine_risk(risk), progress=False, **costs)
        t = res.table
        if t[metric].notna().any():
            best = res.best()
            out.append(({k: _plain(best[k]) for k in res.param_names}, float(best[metric])))
        else:
            out.append((None, float("nan")))
    return out


def _engine_risk(risk: Mapping[str, float | None]) -> dict[str, float | None]:
    return {k: v for k, v in risk.items() if v is not None}


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def _stitch(fields: Mapping[str, pd.DataFrame], strategy: str, bounds: list[tuple[int, int, int, int]],
            chosen: dict[tuple[int, int], Choice], names: list[str], rules: RiskRules,
            metric: str) -> tuple[pd.DataFrame, RiskSchedule, list[dict[str, Any]]]:
    """The stitched direction, the stop levels of each test window, and one row per (symbol, fold)."""
    close_df = fields["close"]
    index = close_df.index
    direction = pd.DataFrame(0.0, index=index, columns=close_df.columns)
    base = rules.to_dict()
    levels = {name: pd.DataFrame(float(base[name] or 0.0), index=index, columns=close_df.columns) for name in _STOPS}
    rows = []
    for j, sym in enumerate(close_df.columns):
        one = {k: v[[sym]] for k, v in fields.items()}
        memo: dict[tuple, np.ndarray] = {}
        for k, (a, b, c, d) in enumerate(bounds):
            params, score = chosen[(j, k)]
            if params is not None:
                stop = d if d == len(index) else d - 1  # decisions at closes c-1 .. d-2 fill at opens c .. d-1
                direction.iloc[c - 1:stop, j] = _direction(one, strategy, params, memo)[c - 1:stop]
                for name in _STOPS:
                    levels[name].iloc[c:d, j] = float(params.get(name, base[name]) or 0.0)
            rows.append({"symbol": str(sym), "fold": k, "train_start": index[a], "train_end": index[b - 1],
                         "test_start": index[c], "test_end": index[d - 1],
                         **{n: (params or {}).get(n) for n in names}, f"is_{metric}": score})
    return direction, RiskSchedule(**levels, max_drawdown=rules.max_drawdown), rows


def _direction(one: Mapping[str, pd.DataFrame], strategy: str, params: Mapping[str, Any],
               memo: dict[tuple, np.ndarray]) -> np.ndarray:
    """The catalog strategy's direction of one symbol under ``params`` (risk levels aside), over all bars."""
    call = {k: v for k, v in params.items() if k not in RISK_FIELDS}
    key = tuple(sorted((k, str(v)) for k, v in call.items()))
    if key not in memo:
        memo[key] = get_strategy(strategy).run(one, **call).direction.iloc[:, 0].to_numpy(dtype=np.float64)
    return memo[key]
