"""Backtests: the vectorbt-backed engine, fused parameter sweeps, and walk-forward optimisation.

* :func:`backtest` — one strategy on one or many symbols (execution model in
  :mod:`research.backtest.engine`).
* :func:`sweep_ma_crossover` / :func:`sweep` — parameter grids (fused numba kernel for the
  moving-average crossover; engine loop for the other strategies).
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
from research.backtest.sweep import SweepResult, sweep_ma_crossover
from research.backtest.walkforward import WalkForwardResult, walk_forward

# ``sweep`` (any strategy's grid) stays under its module's name, research.backtest.sweep.sweep,
# and is exported at the top as ``research.sweep``: re-exporting it here would hide the module.
__all__ = [
    "backtest", "BacktestResult", "TIMINGS", "as_fields", "infer_periods_per_year",
    "sweep_ma_crossover", "SweepResult", "walk_forward", "WalkForwardResult",
]
