"""Walk-forward optimisation of any strategy family.

For each fold a sweep picks the best parameter set on the training window only; that set then
trades the following test window. Folds roll forward by the test length (``anchored=True``
grows the training window from the first bar instead). The reported result is the **stitched
out-of-sample** backtest: one continuous book over all test windows, run through the engine
with the usual execution model and costs.

The moving-average crossover over ``fast``/``slow`` chooses with the fused crossover kernel
(:func:`~research.backtest.sweep.sweep_ma_crossover`); every other grid (other families,
``direction``, stop levels) with :func:`~research.backtest.family_sweep.sweep_family`
(:mod:`research.backtest.walkforward_family`, where the stitching of stops is described).

How the pieces join
-------------------
The direction decided at the close of bar ``t`` comes from the parameters of the fold whose
test window contains the fill bar ``t + 1``, computed as if they had run over the whole history
up to ``t`` (warm-up, hysteresis and hold counts included), never with data after ``t``. When
the parameters change at a fold boundary the book moves to the new parameters' current position
at that open (a trade if it differs). In-sample scores are computed with the book starting flat
at the training window's start.

Example
-------
>>> wf = walk_forward(load_prices("SPX"), train=756, test=126, fees=0.001)
>>> wf.folds[["test_start", "fast", "slow", "is_sharpe", "oos_sharpe"]]   # doctest: +SKIP
>>> wf = walk_forward(load_prices("GOOG"), "rsi_reversion", {"window": [7, 14, 21], "lower": [20, 30]})
>>> wf.summary()["Sharpe Ratio"]                                           # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from research.backtest.engine import BacktestResult, PriceInput, as_fields, backtest
from research.backtest.kernels import STATS
from research.backtest.sweep import sweep_ma_crossover
from research.backtest.tasks import run_tasks
from research.backtest.walkforward_family import family_walk_forward
from research.data import calendars
from research.defaults import BACKTEST
from research.risk.metrics import sharpe_ratio, total_return
from research.strategies._nb import cross_state_1d_nb, rolling_mean_1d_nb
from research.strategies.signals import Signals

__all__ = ["WalkForwardResult", "walk_forward", "fold_bounds"]


@dataclass
class WalkForwardResult:
    """Folds and the stitched out-of-sample backtest.

    Attributes
    ----------
    folds : DataFrame
        One row per (symbol, fold): ``symbol, fold, train_start, train_end, test_start,
        test_end`` (timestamps, inclusive), the chosen ``fast, slow``, the in-sample score
        ``is_<metric>`` and the out-of-sample ``oos_sharpe`` and ``oos_return`` of the test window.
    result : BacktestResult
        The stitched out-of-sample backtest (from the first test bar to the last bar).
    metric : str
        The in-sample selection criterion.
    params : dict
        Fold lengths, grid, costs.
    """

    folds: pd.DataFrame
    result: BacktestResult
    metric: str
    params: dict[str, Any]

    def summary(self, symbol: str | None = None) -> pd.Series:
        """Risk summary of the stitched out-of-sample book."""
        return self.result.summary(symbol)

    @property
    def param_names(self) -> list[str]:
        """The columns of :attr:`folds` that hold the chosen parameters."""
        return list(self.params["grid"]) if "grid" in self.params else ["fast", "slow"]

    def pick_label(self, row: pd.Series) -> str:
        """A fold's chosen set as short text (``"20/50"`` for the crossover), ``"flat"`` when none was chosen."""
        values = [row[n] for n in self.param_names]
        if any(v is None or (isinstance(v, float) and np.isnan(v)) for v in values) or \
                ("grid" not in self.params and not row["fast"]):
            return "flat"
        if self.param_names == ["fast", "slow"]:
            return f"{row['fast']:.0f}/{row['slow']:.0f}"
        return ", ".join(f"{n}={v:g}" if isinstance(v, float) else f"{n}={v}" for n, v in zip(self.param_names, values,
                                                                                             strict=True))


def fold_bounds(n: int, *, train: int, test: int, anchored: bool = False) -> list[tuple[int, int, int, int]]:
    """``(train_start, train_end, test_start, test_end)`` row positions (ends exclusive)."""
    for name, value in (("train", train), ("test", test)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 2:
            raise ValueError(f"{name} must be an integer >= 2 bars, got {value!r}")
    if train + test > n:
        raise ValueError(f"need train + test <= bars (train: {train}; test: {test}; bars: {n})")
    out = []
    for test_start in range(train, n, test):
        test_end = min(test_start + test, n)
        if test_end - test_start < 2:
            break
        out.append((0 if anchored else test_start - train, test_start, test_start, test_end))
    return out


def _states(close: np.ndarray, fast: int, slow: int) -> np.ndarray:
    return cross_state_1d_nb(rolling_mean_1d_nb(close, fast), rolling_mean_1d_nb(close, slow), False)


def walk_forward(
    prices: PriceInput, strategy: str = "ma_crossover", grid: Mapping[str, Sequence[Any]] | None = None, *,
    fast: Iterable[int] | None = None, slow: Iterable[int] | None = None, train: int = 756, test: int = 126,
    anchored: bool = False, metric: str = "sharpe", fees: float = BACKTEST["fees"],
    slippage: float = BACKTEST["slippage"], init_cash: float = BACKTEST["init_cash"], timing: str = BACKTEST["timing"],
    periods_per_year: float | None = None, whole_shares: bool = False, risk: Mapping[str, float | None] | None = None,
    client: Any = None, progress: bool = False,
) -> WalkForwardResult:
    """Choose a strategy's parameters in-sample, trade them out of sample, roll forward.

    Parameters
    ----------
    prices : DataFrame, Series or mapping
        As for :func:`~research.backtest.engine.backtest`; each symbol has its own folds, sets and book.
    strategy : str
        A family of :data:`research.backtest.families.FAMILIES`.
    grid : mapping of str to sequence, optional
        Values per swept name, as for :func:`~research.backtest.family_sweep.sweep_family`
        (parameters, ``direction``, stop levels); default: the catalog's grid of the strategy.
    fast, slow : iterable of int, optional
        The crossover's windows instead of ``grid`` (default ``range(5, 105, 5)``, ``range(20, 210, 10)``).
    train, test : int
        Training and test window lengths in bars (756 and 126: three years, half a year).
    anchored : bool
        Grow the training window from the first bar instead of rolling it.
    metric : str
        In-sample criterion (a :data:`~research.backtest.kernels.STATS` column; maximised).
    fees, slippage, init_cash, timing, periods_per_year, whole_shares
        As for :func:`~research.backtest.engine.backtest` (timing ``next_open`` or ``next_close``).
    risk : mapping, optional
        Risk levels of every set and of the stitched book (``max_drawdown`` too); a grid dimension overrides.
    client : distributed.Client, optional
        Choose the folds' parameters on this Dask client (one task per symbol and block of folds);
        the same folds and stitched backtest as without it.
    progress : bool
        Progress bar over those tasks.

    Returns
    -------
    WalkForwardResult
        ``folds`` holds the chosen parameters in columns named after them (empty in a fold left flat).
    """
    if metric not in STATS:
        raise ValueError(f"metric must be one of {STATS}, got {metric!r}")
    grid = _resolve_grid(strategy, grid, fast, slow)
    fields = as_fields(prices)
    ppy = calendars.periods_per_year(fields["close"], override=periods_per_year or None)
    bounds = fold_bounds(len(fields["close"]), train=train, test=test, anchored=anchored)
    costs = {"fees": fees, "slippage": slippage, "init_cash": init_cash, "timing": timing, "periods_per_year": ppy}
    folds_params = {"train": train, "test": test, "anchored": anchored, "metric": metric}
    if strategy == "ma_crossover" and set(grid) <= {"fast", "slow"} and not whole_shares and not risk:
        rows, result, params = _crossover(fields, grid, bounds, folds_params, costs, client=client, progress=progress)
    else:
        rows, result = family_walk_forward(fields, strategy, grid, bounds=bounds, metric=metric, costs=costs,
                                           whole_shares=whole_shares, risk=risk, client=client, progress=progress)
        params = {**folds_params, "strategy": strategy, "grid": {k: list(v) for k, v in grid.items()},
                  "whole_shares": whole_shares, "risk": dict(risk or {}), **costs}
    return WalkForwardResult(_folds_with_out_of_sample(rows, result, ppy), result, metric, params)


_FAST, _SLOW = range(5, 105, 5), range(20, 210, 10)


def _crossover(fields: dict[str, pd.DataFrame], grid: Mapping[str, Sequence[int]], bounds: list[tuple[int, int, int, int]],
               folds_params: dict[str, Any], costs: dict[str, Any], *, client: Any,
               progress: bool) -> tuple[list[dict[str, Any]], BacktestResult, dict[str, Any]]:
    """The crossover's walk-forward through the fused crossover kernel: the folds' rows, the stitched book, its params."""
    fast, slow = list(grid.get("fast", _FAST)), list(grid.get("slow", _SLOW))
    metric = folds_params["metric"]
    shared = {"fields": fields, "bounds": bounds, "fast": fast, "slow": slow, "metric": metric, "costs": costs}
    chosen = _choose_all(shared, train=folds_params["train"], client=client, progress=progress)
    direction, rows = _chosen_direction(fields["close"], bounds, chosen, metric)
    signals = Signals(direction, name="ma_crossover_walk_forward", params=folds_params)
    result = backtest(fields, signals, start=fields["close"].index[bounds[0][2]], **costs)
    return rows, result, {**folds_params, "strategy": "ma_crossover", "fast": fast, "slow": slow, **costs}


def _resolve_grid(strategy: str, grid: Mapping[str, Sequence[Any]] | None, fast: Iterable[int] | None,
                  slow: Iterable[int] | None) -> dict[str, list[Any]]:
    """The grid searched in each training window: ``grid``, the crossover's ``fast``/``slow``, or the catalog's."""
    from research.backtest.families import fused_family

    fused_family(strategy)  # a ValueError naming the families otherwise
    if fast is not None or slow is not None:
        if strategy != "ma_crossover" or grid is not None:
            raise ValueError("fast= and slow= are the crossover's windows: give other strategies' values in grid=")
        return {"fast": list(_FAST if fast is None else fast), "slow": list(_SLOW if slow is None else slow)}
    if grid is None:
        if strategy == "ma_crossover":
            return {"fast": list(_FAST), "slow": list(_SLOW)}
        from research.strategies.catalog import get_strategy

        return {k: list(v) for k, v in get_strategy(strategy).grid.items()}
    if not isinstance(grid, Mapping):
        raise TypeError(f"grid must be a mapping of parameter name to values, not {type(grid).__name__}")
    return {str(k): list(v) for k, v in grid.items()}


def _choose_all(shared: dict[str, Any], *, train: int, client: Any, progress: bool) -> dict[tuple[int, int], tuple[int, int, float]]:
    """Every symbol's in-sample choice per fold, ``{(symbol position, fold): (fast, slow, score)}``.

    :func:`fold_choices` runs as tasks (locally or on ``client``) of one symbol and a block of
    folds sized to take about a quarter of a second each; ``shared`` holds its keyword arguments.
    """
    bounds, n_grid = shared["bounds"], len(shared["fast"]) * len(shared["slow"])
    per_task = 1 if progress else max(1, int(0.25 / (0.005 + n_grid * train / 2e8)))  # a bar over folds, or ~0.25 s
    tasks = [(j, k, min(k + per_task, len(bounds))) for j in range(shared["fields"]["close"].shape[1])
             for k in range(0, len(bounds), per_task)]
    picks = run_tasks(fold_choices, tasks, client=client, shared=shared, desc="walk-forward folds", progress=progress)
    return {(j, k0 + i): pick for (j, k0, _), block in zip(tasks, picks, strict=True) for i, pick in enumerate(block)}


def _chosen_direction(close_df: pd.DataFrame, bounds: list[tuple[int, int, int, int]],
                      chosen: dict[tuple[int, int], tuple[int, int, float]], metric: str) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """The direction each test window trades with its chosen windows (flat elsewhere), and one row per (symbol, fold)."""
    index = close_df.index
    direction = pd.DataFrame(0.0, index=index, columns=close_df.columns)
    rows = []
    for j, sym in enumerate(close_df.columns):
        close = np.ascontiguousarray(close_df[sym].to_numpy(dtype=np.float64))
        for k, (a, b, c, d) in enumerate(bounds):
            f, s, score = chosen[(j, k)]
            if f:
                # decisions at closes c-1 .. d-2 fill at opens c .. d-1 (and the last close, at the end)
                stop = d if d == len(index) else d - 1
                direction.iloc[c - 1:stop, direction.columns.get_loc(sym)] = _states(close, f, s)[c - 1:stop]
            rows.append({"symbol": str(sym), "fold": k, "train_start": index[a], "train_end": index[b - 1],
                         "test_start": index[c], "test_end": index[d - 1], "fast": f, "slow": s,
                         f"is_{metric}": score})
    return direction, rows


def _folds_with_out_of_sample(rows: list[dict[str, Any]], result: BacktestResult, ppy: float) -> pd.DataFrame:
    """The folds' table: ``rows`` and each test window's ``oos_sharpe`` and ``oos_return`` in the stitched backtest."""
    folds = pd.DataFrame(rows)
    oos = [_oos(result, r["symbol"], r["test_start"], r["test_end"], ppy) for r in rows]
    folds["oos_sharpe"] = [o[0] for o in oos]
    folds["oos_return"] = [o[1] for o in oos]
    return folds


def fold_choices(j: int, k0: int, k1: int, *, fields: Mapping[str, pd.DataFrame], bounds: list[tuple[int, ...]],
                 fast: list[int], slow: list[int], metric: str, costs: dict[str, Any]) -> list[tuple[int, int, float]]:
    """The in-sample choice ``(fast, slow, score)`` of symbol ``j`` in folds ``k0 .. k1 - 1``.

    ``(0, 0, nan)`` when nothing traded in-sample (the fold stays flat).
    """
    sym = fields["close"].columns[j]
    one = {k: v[[sym]] for k, v in fields.items()}
    index = fields["close"].index
    out = []
    for a, b, _, _ in bounds[k0:k1]:
        t = sweep_ma_crossover(one, fast=fast, slow=slow, start=index[a], end=index[b - 1], metric=metric,
                               **costs).table
        if t[metric].notna().any():
            best = t.loc[t[metric].idxmax()]
            out.append((int(best["fast"]), int(best["slow"]), float(best[metric])))
        else:
            out.append((0, 0, float("nan")))
    return out


def _oos(result: BacktestResult, symbol: str, lo: pd.Timestamp, hi: pd.Timestamp, ppy: float) -> tuple[float, float]:
    """Sharpe ratio and total return of ``symbol``'s book from ``lo`` to ``hi`` (inclusive)."""
    r = result.returns[symbol].loc[lo:hi]
    return sharpe_ratio(r, periods_per_year=ppy), total_return(r)
