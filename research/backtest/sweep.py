"""Parameter sweeps: a tidy table of statistics for every parameter set (and symbol).

The moving-average crossover family runs through the fused numba kernels of
:mod:`research.backtest.kernels` (19,701 fast/slow pairs on 2,148 bars in a fraction of a
second, with the engine's execution model, fees and slippage). Other strategies, and options
the kernels do not cover (sizers other than ``all_in``, stops, shared cash...), run one
:func:`~research.backtest.engine.backtest` per parameter set.

Table columns: ``symbol``, the parameters, then :data:`STATS` (decimal fractions:
``total_return`` 0.12 = +12%). Figures: :func:`research.viz.backtest.sweep_heatmap`.
Overfitting: feed :meth:`SweepResult.trial_returns` to :mod:`research.risk.overfitting`.

Example
-------
>>> res = sweep_ma_crossover(load_prices("GOOG"), fees=0.001)
>>> res.best()[["fast", "slow", "sharpe"]]              # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from research.backtest.engine import TIMINGS, as_fields, backtest
from research.backtest.engine import bar_span as span_of
from research.backtest.families import engine_call
from research.backtest.fused import (
    check_options,
    fused_table,
    live_spans,
    stats_row,
    usable_symbols,
)
from research.backtest.kernels import STATS
from research.backtest.sweep_result import SweepResult
from research.data import calendars
from research.data.freshness import STALE_BARS, stale_frame
from research.defaults import BACKTEST

__all__ = ["SweepResult", "sweep_ma_crossover", "sweep", "ma_pairs", "parse_windows", "STATS"]

_FUSED_OK = {"fees", "slippage", "init_cash", "timing", "start", "end", "periods_per_year"}


# --------------------------------------------------------------------------- fused path

def ma_pairs(fast: Iterable[int], slow: Iterable[int]) -> np.ndarray:
    """All ``(fast, slow)`` pairs with ``fast < slow`` (int64, shape ``(n, 2)``), sorted."""
    f = np.unique(np.asarray(list(fast), dtype=np.int64))
    s = np.unique(np.asarray(list(slow), dtype=np.int64))
    if f.size == 0 or s.size == 0:
        raise ValueError("fast and slow need at least one window each")
    if f.min() < 1 or s.min() < 2:
        raise ValueError(f"windows must be >= 1 (fast) and >= 2 (slow); got fast min {f.min()}, slow min {s.min()}")
    ff, ss = np.meshgrid(f, s, indexing="ij")
    keep = ff < ss
    pairs = np.column_stack([ff[keep], ss[keep]])
    if len(pairs) == 0:
        raise ValueError("no pair with fast < slow in the grid")
    return pairs


def _crossover_inputs(prices: Any, timing: str, start: object, end: object, costs: tuple[float, float, float],
                      periods_per_year: float | None) -> dict[str, Any]:
    """The crossover kernel's inputs: close and execution prices of the symbols with valid prices, spans, costs."""
    fields = as_fields(prices)
    exec_field = TIMINGS[timing][1]
    if exec_field not in fields:
        raise ValueError(f"timing {timing!r} needs {exec_field!r} prices; got fields {sorted(fields)}")
    close_df = fields["close"]
    close_all = close_df.to_numpy(dtype=np.float64)
    exec_all = fields[exec_field].to_numpy(dtype=np.float64)
    bad, empty = usable_symbols(close_df, fields[exec_field])
    rows = span_of(close_df.index, start, end)
    close = np.asfortranarray(close_all[:, ~bad]) if bad.any() else close_all
    exec_px = np.asfortranarray(exec_all[:, ~bad]) if bad.any() else exec_all
    lo, hi = live_spans(close, rows)
    ppy = calendars.periods_per_year(close_df, override=periods_per_year or None)
    return {"close": close, "exec": exec_px, "symbols": [str(c) for c, b in zip(close_df.columns, bad, strict=True)
                                                          if not b],
            "lo": lo, "hi": hi, "costs": (*map(float, costs), ppy), "index": close_df.index, "rows": rows,
            "excluded": empty}


def sweep_ma_crossover(
    prices: pd.DataFrame | pd.Series | Mapping[str, pd.DataFrame], *, fast: Iterable[int] = range(2, 200),
    slow: Iterable[int] = range(3, 201), fees: float = BACKTEST["fees"], slippage: float = BACKTEST["slippage"],
    init_cash: float = BACKTEST["init_cash"], timing: str = BACKTEST["timing"], start: object = None,
    end: object = None, periods_per_year: float | None = None, metric: str = "sharpe", client: Any = None,
    cache: bool | None = None, chunk_size: int | None = None, progress: bool | None = None,
) -> SweepResult:
    """Every long-only SMA crossover ``fast < slow`` on every symbol, through the fused kernel.

    Same execution model, costs and statistics as ``backtest(prices, "ma_crossover",
    sizing="all_in")`` (see :mod:`research.backtest.kernels`).

    Parameters
    ----------
    prices : DataFrame, Series or mapping
        As for :func:`~research.backtest.engine.backtest`.
    fast, slow : iterable of int
        Windows; every pair with ``fast < slow`` is run (defaults: all 19,701 pairs with
        ``2 <= fast < slow <= 200``).
    fees, slippage, init_cash, timing, start, end, periods_per_year
        As for :func:`~research.backtest.engine.backtest` (``timing`` ``"next_open"`` or ``"next_close"``).
    metric : str
        Column :meth:`SweepResult.best` maximises (a :data:`STATS` name).
    client : distributed.Client, optional
        Run on this Dask client (from :func:`research.compute.get_client`) in symbols x pair
        blocks of about a quarter of a second each; the same table, bit for bit.
    cache : bool, optional
        Keep finished chunks under ``<data_dir>/cache/sweeps/`` and resume from them (default:
        on with a client). ``True`` without a client runs the chunks in process.
    chunk_size : int, optional
        Pairs per task instead of the automatic size.
    progress : bool, optional
        Progress bar over chunks (default: on with a client).

    Returns
    -------
    SweepResult
        With a client or a cache, ``params["chunks"]`` tells how many tasks ran and how many came from the cache.
    """
    check_options(timing=timing, metric=metric, fees=fees, slippage=slippage, init_cash=init_cash)
    pairs = ma_pairs(fast, slow)
    inp = _crossover_inputs(prices, timing, start, end, (fees, slippage, init_cash), periods_per_year)
    t0 = time.perf_counter()
    params = {"fees": fees, "slippage": slippage, "init_cash": init_cash, "timing": timing,
              "periods_per_year": inp["costs"][3], "start": str(inp["index"][inp["rows"].start]),
              "end": str(inp["index"][inp["rows"].stop - 1]), "engine": "fused", "excluded": inp["excluded"],
              "direction": "long", "sizing": "all_in"}
    if client is not None or cache:
        from research.backtest.chunked import run_fused

        table, params["chunks"] = run_fused(inp["close"], inp["exec"], inp["symbols"], pairs, inp["lo"], inp["hi"],
                                            inp["costs"], inp["index"], client=client, cache=cache,
                                            chunk_size=chunk_size, progress=progress is not False)
    else:
        table = fused_table(inp["close"], inp["exec"], inp["symbols"], pairs, inp["lo"], inp["hi"], inp["costs"])
    keep = {k: inp[k] for k in ("close", "exec", "symbols", "lo", "hi", "costs", "index")}
    return SweepResult(table, "ma_crossover", ["fast", "slow"], metric, params, time.perf_counter() - t0, keep)


# --------------------------------------------------------------------------- generic path

def sweep(
    prices: pd.DataFrame | pd.Series | Mapping[str, pd.DataFrame], strategy: str, grid: Mapping[str, Sequence[Any]],
    *, metric: str = "sharpe", progress: bool | None = None, client: Any = None, cache: bool | None = None,
    chunk_size: int | None = None, **backtest_kwargs: Any,
) -> SweepResult:
    """Sweep any registered strategy over a parameter grid (Cartesian product).

    Moving-average crossover grids over ``fast``/``slow`` with only costs, timing and date
    range options run through the fused crossover kernel, the other fused families (and stop
    levels as grid dimensions) through :func:`~research.backtest.family_sweep.sweep_family`;
    everything else runs one backtest per parameter set (one book per symbol) through the engine.

    Parameters
    ----------
    prices : DataFrame, Series or mapping
        As for :func:`~research.backtest.engine.backtest`.
    strategy : str
        Registered strategy name.
    grid : mapping of str to sequence
        Values per parameter; unswept parameters keep their defaults.
    metric : str
        Column :meth:`SweepResult.best` maximises.
    progress : bool, optional
        Progress bar (default: on for more than 20 engine runs, and over chunks with a client).
    client : distributed.Client, optional
        Run on this Dask client (from :func:`research.compute.get_client`) in chunks of
        parameter sets x symbols; the prices are scattered to the workers once. Same table,
        bit for bit, as without it.
    cache : bool, optional
        Keep finished chunks under ``<data_dir>/cache/sweeps/`` and resume from them (default:
        on with a client). ``True`` without a client runs the chunks in process.
    chunk_size : int, optional
        Parameter sets per task instead of the automatic size.
    **backtest_kwargs
        Passed to :func:`~research.backtest.engine.backtest` (fees, slippage, sizing, risk...).
    """
    fields = as_fields(prices)  # once: the route's checks and the fused paths read the same frames
    route = sweep_route(fields, strategy, list(grid), backtest_kwargs)
    run = {"client": client, "cache": cache, "chunk_size": chunk_size, "progress": progress, "metric": metric}
    if route == "family":
        from research.backtest.family_sweep import sweep_family

        kwargs = {k: v for k, v in backtest_kwargs.items() if k not in ("sizing", "shared_cash")}
        return sweep_family(fields, strategy, grid, **run, **kwargs)
    if route == "crossover":
        from research.strategies.catalog import get_strategy

        d = get_strategy("ma_crossover").defaults
        return sweep_ma_crossover(fields, fast=grid.get("fast", [d["fast"]]), slow=grid.get("slow", [d["slow"]]),
                                  **run, **backtest_kwargs)
    if client is not None or cache:
        return _sweep_chunked(prices, strategy, grid, metric, backtest_kwargs, client=client, cache=cache,
                              chunk_size=chunk_size, progress=progress is not False)
    return _sweep_engine(prices, strategy, grid, metric, backtest_kwargs, progress=progress)


def sweep_route(prices: Any, strategy: str, keys: Sequence[str], backtest_kwargs: Mapping[str, Any]) -> str:
    """Which path :func:`sweep` takes: ``"crossover"`` (fused kernel), ``"family"`` (fused family) or ``"engine"``.

    The fused kernels have no staleness rule: a symbol that goes stale inside its own life (a
    gap of more than ``stale_bars`` bars) runs through the engine, so both paths agree everywhere.
    """
    engine_only = (backtest_kwargs.get("timing", "next_open") == "same_close"
                   or stale_inside_lives(prices, backtest_kwargs.get("stale_bars", STALE_BARS)))
    if engine_only:
        return "engine"
    if strategy == "ma_crossover" and set(keys) <= {"fast", "slow"} and set(backtest_kwargs) <= _FUSED_OK:
        return "crossover"
    return "family" if _family_fits(strategy, list(keys), backtest_kwargs) else "engine"


def _sweep_engine(prices: Any, strategy: str, grid: Mapping[str, Sequence[Any]], metric: str,
                  backtest_kwargs: dict[str, Any], *, progress: bool | None) -> SweepResult:
    """One engine backtest per parameter set, in process."""
    from tqdm.auto import tqdm

    keys = list(grid)
    combos = list(itertools.product(*[list(grid[k]) for k in keys]))
    show = len(combos) > 20 if progress is None else progress
    rows, t0 = [], time.perf_counter()
    for combo in tqdm(combos, desc=f"sweep {strategy}", disable=not show, leave=False):
        params = dict(zip(keys, combo, strict=True))
        try:
            res = backtest(prices, strategy, **engine_call(params, backtest_kwargs))
        except ValueError as exc:  # e.g. fast >= slow: skip, like the fused grid does
            warnings.warn(f"{strategy} {params}: skipped ({exc})", stacklevel=3)
            continue
        for book in res.books:
            rows.append({"symbol": book, **params, **stats_row(res.summary(book), float(res.equity[book].iloc[-1]))})
    return _engine_result(rows, strategy, grid, keys, metric, backtest_kwargs, t0)


def stale_inside_lives(prices: pd.DataFrame, stale_bars: int | None = STALE_BARS) -> bool:
    """Whether the staleness rule would mark a symbol stale between its first and last bar.

    The engine gives such a symbol no target while it is stale; the fused kernels, which
    trade each symbol over its own life, have no such rule, so those sweeps take the engine.
    Only a symbol with a missing close inside its life can be stale there (at a bar with a
    close, its last bar is that bar), so only those symbols are checked against their calendars.
    """
    if stale_bars is None:
        return False
    close = as_fields(prices)["close"]
    valid = close.notna().to_numpy()
    if not valid.any():
        return False
    rows = np.arange(len(close))[:, None]
    first = np.where(valid.any(axis=0), valid.argmax(axis=0), len(close))
    last = len(close) - 1 - valid[::-1].argmax(axis=0)
    alive = (rows >= first) & (rows <= last)
    gapped = (alive & ~valid).any(axis=0)
    if not gapped.any():
        return False
    stale = stale_frame(close.iloc[:, np.flatnonzero(gapped)], stale_bars=stale_bars).to_numpy()
    return bool((stale & alive[:, gapped]).any())


def _family_fits(strategy: str, keys: list[str], kwargs: Mapping[str, Any]) -> bool:
    """Whether the fused family kernels cover this sweep (all_in sizing, one book per symbol)."""
    from research.backtest.families import FAMILIES
    from research.backtest.simulate import RISK_FIELDS

    if strategy not in FAMILIES:
        return False
    from research.strategies.catalog import get_strategy

    known = set(get_strategy(strategy).defaults) | set(RISK_FIELDS)
    options = _FUSED_OK | {"whole_shares", "risk", "sizing", "shared_cash"}
    return (set(keys) <= known and set(kwargs) <= options and kwargs.get("sizing", "all_in") == "all_in"
            and not kwargs.get("shared_cash", False))


def _engine_result(rows: list[dict], strategy: str, grid: Mapping[str, Sequence[Any]], keys: list[str], metric: str,
                   backtest_kwargs: Mapping[str, Any], t0: float, **extra: Any) -> SweepResult:
    """The engine path's table and record (in process or chunked), from its rows."""
    if not rows:
        raise ValueError(f"no parameter set of {strategy} ran; grid: {dict(grid)}")
    table = pd.DataFrame(rows)
    table["trades"] = table["trades"].astype(np.int64)
    params = {k: v for k, v in backtest_kwargs.items() if isinstance(v, str | int | float | bool | type(None))}
    params.update(engine="engine", **extra)
    return SweepResult(table, strategy, keys, metric, params, time.perf_counter() - t0)


def _sweep_chunked(prices: Any, strategy: str, grid: Mapping[str, Sequence[Any]], metric: str,
                   backtest_kwargs: dict[str, Any], *, client: Any, cache: bool | None, chunk_size: int | None,
                   progress: bool) -> SweepResult:
    from research.backtest.chunked import run_engine

    keys = list(grid)
    combos = list(itertools.product(*[list(grid[k]) for k in keys]))
    t0 = time.perf_counter()
    rows, chunks = run_engine(as_fields(prices), strategy, keys, combos, backtest_kwargs, client=client, cache=cache,
                              chunk_size=chunk_size, progress=progress)
    return _engine_result(rows, strategy, grid, keys, metric, backtest_kwargs, t0, chunks=chunks)


# --------------------------------------------------------------------------- grids as text

def parse_windows(spec: str | int | Iterable[int]) -> list[int]:
    """Windows from text: ``"2:100"`` (every window 2..100), ``"10:250:5"`` (a step), ``"5,10,20"``
    or a mix ``"2:20,25:100:5"``; ranges include both ends (as ``workbench sweep --grid``).

    Lists and single integers are returned as a sorted list of unique ints.

    Raises
    ------
    ValueError
        A part is not ``START:STOP[:STEP]`` of integers with ``START <= STOP`` and ``STEP > 0``,
        or no window is left.
    """
    if isinstance(spec, int | np.integer):
        return [int(spec)]
    if not isinstance(spec, str):
        out = sorted({int(v) for v in spec})
    else:
        values: set[int] = set()
        for part in (p.strip() for p in spec.split(",")):
            if not part:
                continue
            bits = part.split(":")
            try:
                nums = [int(b) for b in bits]
            except ValueError:
                raise ValueError(f"windows must be integers or START:STOP[:STEP] ranges, got {part!r} in {spec!r}") from None
            if len(nums) == 1:
                values.add(nums[0])
                continue
            if len(nums) not in (2, 3) or nums[1] < nums[0] or (len(nums) == 3 and nums[2] <= 0):
                raise ValueError(f"a range is START:STOP[:STEP] with START <= STOP and STEP > 0, got {part!r}")
            values.update(range(nums[0], nums[1] + 1, nums[2] if len(nums) == 3 else 1))
        out = sorted(values)
    if not out:
        raise ValueError(f"no window in {spec!r}")
    return out
