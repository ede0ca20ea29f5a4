"""Backtests: the vectorbt-backed engine, fused parameter sweeps, and walk-forward optimisation.

* :func:`backtest` — one strategy on one or many symbols (execution model in
  :mod:`research.backtest.engine`).
* :func:`sweep_ma_crossover` / :func:`sweep` / :func:`sweep_family` — parameter grids: fused
  numba kernels for every catalog family (a signal kernel per family feeding one shared
  simulation, stops as grid dimensions); the engine loop for what they do not cover.
* :func:`grid_slice` — a 2-D slice of an n-D sweep (the frame behind a heatmap).
* :func:`walk_forward` — choose in-sample, trade out of sample, roll forward.

vectorbt is imported lazily (it takes seconds), so importing this package is fast.
"""

from research.backtest.engine import (
    TIMINGS,
    BacktestResult,
    as_fields,
    backtest,
    infer_periods_per_year,
)
from research.backtest.family_sweep import sweep_family
from research.backtest.slices import grid_slice
from research.backtest.sweep import SweepResult, sweep_ma_crossover
from research.backtest.walkforward import WalkForwardResult, walk_forward

# ``sweep`` (any strategy's grid) stays under its module's name, research.backtest.sweep.sweep,
# and is exported at the top as ``research.sweep``: re-exporting it here would hide the module.
__all__ = [
    "backtest", "BacktestResult", "TIMINGS", "as_fields", "infer_periods_per_year",
    "sweep_ma_crossover", "SweepResult", "walk_forward", "WalkForwardResult", "sweep_family", "grid_slice",
]
