"""Fused sweeps of every strategy family: signal kernels feeding one shared simulation.

:func:`sweep_family` runs any family of :data:`research.backtest.families.FAMILIES` over a grid
whose dimensions may include ``direction`` and the risk levels ``stop_loss``, ``take_profit``,
``trailing_stop`` and ``max_drawdown`` (0 = off), with fees, slippage, whole or fractional
shares. The numbers are those of one :func:`~research.backtest.engine.backtest` per set with
``sizing="all_in"`` and one book per symbol (see :mod:`research.backtest.simulate`).

Memory stays bounded: symbols are processed in blocks whose indicator tables fit in
:data:`TABLE_BYTES`, and a chunked run (``client=`` or ``cache=True``) splits symbols x sets
into tasks (:mod:`research.backtest.plan`).

Example
-------
>>> res = sweep_family(load_prices("GOOG"), "rsi_reversion",
...                    {"window": range(2, 51), "lower": range(10, 41, 2), "stop_loss": [0, 0.05, 0.1]})
>>> res.best()                                           # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from research.backtest.chunked import TASK_SECONDS, chunk_store, plan_blocks, run_info
from research.backtest.engine import TIMINGS, as_fields
from research.backtest.engine import bar_span as span_of
from research.backtest.families import (
    FAMILIES,
    Family,
    GridSets,
    block_bounds_nb,
    bollinger_bounds_nb,
    expand_grid,
    family_grid_nb,
    family_tables,
    fused_family,
    signal_groups,
)
from research.backtest.fused import check_options, live_spans, usable_symbols
from research.backtest.kernels import STATS, prepare_nb
from research.backtest.sweep_result import SweepResult
from research.backtest.tasks import code_version, digest, run_tasks
from research.data import calendars

__all__ = ["sweep_family", "family_sets", "FamilyInputs", "family_rows", "family_chunk", "run_family", "TABLE_BYTES"]

logger = logging.getLogger(__name__)

#: Bytes of indicator tables held at once (symbols are processed in blocks under this). A block of
#: 64 MiB still holds dozens of symbols of a long grid, enough to keep every core busy.
TABLE_BYTES = 64 * 2**20
_NO_BOUNDS = np.zeros((0, 0, 0))  # no block bounds: the family's rule runs bar by bar


@dataclass
class FamilyInputs:
    """Prices of a fused family sweep as the kernel reads them (``(bars, symbols)`` arrays)."""

    close: np.ndarray
    exec_px: np.ndarray
    open_: np.ndarray
    high: np.ndarray
    low: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    symbols: list[str]
    index: pd.Index
    costs: tuple[float, float, float, float]
    whole: bool
    fill_at_open: bool
    raw_open: np.ndarray | None = None


def _prices(prices: Any, timing: str, start: object, end: object, costs: tuple[float, float, float],
            periods_per_year: float | None, whole: bool, ohlc: bool = False) -> tuple[FamilyInputs, list[str]]:
    if timing not in ("next_open", "next_close"):
        raise ValueError(f"the fused sweep supports timing 'next_open' or 'next_close', got {timing!r}")
    fields = as_fields(prices)
    exec_field = TIMINGS[timing][1]
    if exec_field not in fields:
        raise ValueError(f"timing {timing!r} needs {exec_field!r} prices; got fields {sorted(fields)}")
    missing = [f for f in ("open", "high", "low") if f not in fields] if ohlc else []
    if missing:
        raise ValueError(f"this strategy reads whole bars: the prices miss {missing} (got {sorted(fields)})")
    close_df = fields["close"]
    bad, empty = usable_symbols(close_df, fields[exec_field])
    keep = ~bad

    def arr(name: str) -> np.ndarray:
        frame = fields.get(name, close_df)
        return np.asfortranarray(frame.to_numpy(dtype=np.float64)[:, keep])

    rows = span_of(close_df.index, start, end)
    close = arr("close")
    lo, hi = live_spans(close, rows)
    ppy = calendars.periods_per_year(close_df, override=periods_per_year or None)
    symbols = [str(c) for c, k in zip(close_df.columns, keep, strict=True) if k]
    inputs = FamilyInputs(close, arr(exec_field), arr("open") if "open" in fields else close, arr("high"), arr("low"),
                          lo, hi, symbols, close_df.index, (*costs, float(ppy)), whole, exec_field == "open",
                          raw_open=arr("open") if "open" in fields else np.full_like(close, np.nan))
    return inputs, empty


def family_rows(family: Family, sets: GridSets, inp: FamilyInputs, a: int, b: int, *,
                keep_returns: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Statistics of every set on symbols ``[a, b)``: ``(stats (symbols * sets, STATS), returns)``.

    Symbols run in blocks whose indicator tables stay under :data:`TABLE_BYTES`.
    """
    n = inp.close.shape[0]
    per_symbol = max(1, len(sets.windows) * family.rows_per_window * n * 9)  # 8 bytes a value, 1/8 for block bounds
    block = max(1, TABLE_BYTES // per_symbol)
    stats, rets = [], []
    order, starts = signal_groups(sets.rows, sets.levels, sets.sides)  # directions computed once per group
    for s0 in range(a, b, block):
        s1 = min(b, s0 + block)

        def rows_of(x: np.ndarray, lo: int = s0, hi: int = s1) -> np.ndarray:
            return np.ascontiguousarray(x[:, lo:hi].T)

        close = rows_of(inp.close)
        fields = {"close": pd.DataFrame(close.T)}
        if family.string_windows:  # the candlestick family reads whole bars
            fields.update({k: pd.DataFrame(rows_of(getattr(inp, a)).T)
                           for k, a in (("open", "raw_open"), ("high", "high"), ("low", "low"))})
        tables = family_tables(family, fields, sets.windows)
        bmin, bmax, bscale = _bounds(family, tables, close)
        ff, rc = np.empty_like(close), np.empty_like(close)
        for j in range(close.shape[0]):
            ff[j], rc[j] = prepare_nb(close[j])
        fees, slip, cash, ppy = inp.costs
        out, r = _grid(family.code, tables, close, rows_of(inp.exec_px), rows_of(inp.open_),
                                rows_of(inp.high), rows_of(inp.low), ff, rc, inp.lo[s0:s1], inp.hi[s0:s1], sets.rows,
                                sets.levels, sets.sides, sets.risk, fees, slip, cash, ppy, inp.whole,
                                inp.fill_at_open, keep_returns, order, starts, bmin, bmax, bscale)
        stats.append(out)
        rets.append(r)
    return np.concatenate(stats), (np.concatenate(rets) if keep_returns else np.zeros((0, 0)))


def _bounds(family: Family, tables: np.ndarray, close: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The tables' block bounds for the family rule's block skipping (RSI, Bollinger), or empty arrays."""
    if family.name == "rsi_reversion":
        return (*block_bounds_nb(tables), _NO_BOUNDS)
    if family.name == "bollinger_breakout":
        return bollinger_bounds_nb(tables, close)
    return _NO_BOUNDS, _NO_BOUNDS, _NO_BOUNDS


def _grid(*args: Any) -> tuple[np.ndarray, np.ndarray]:
    from numba import get_num_threads, set_parallel_chunksize

    old = set_parallel_chunksize(16)
    try:
        return family_grid_nb(*args, get_num_threads())
    finally:
        set_parallel_chunksize(old)


def family_frame(sets: GridSets, symbols: Sequence[str], sym_idx: np.ndarray, set_idx: np.ndarray,
                 stats: np.ndarray) -> pd.DataFrame:
    """The tidy table: ``symbol``, the swept parameters, :data:`STATS`; by symbol, then set."""
    key = sym_idx.astype(np.int64) * (int(set_idx.max(initial=0)) + 1) + set_idx
    if (key[1:] < key[:-1]).any():  # chunks may arrive in any order
        order = np.argsort(key, kind="stable")
        sym_idx, set_idx, stats = sym_idx[order], set_idx[order], stats[order]
    columns: dict[str, Any] = {"symbol": np.asarray(symbols, dtype=object)[sym_idx]}
    for key_name in sets.keys:
        columns[key_name] = sets.values[key_name][set_idx]
    columns.update({name: stats[:, i] for i, name in enumerate(STATS)})
    columns["trades"] = stats[:, STATS.index("trades")].astype(np.int64)  # counts, held as floats by the kernel
    return pd.DataFrame(columns)


def sweep_family(
    prices: pd.DataFrame | pd.Series | Mapping[str, pd.DataFrame], strategy: str, grid: Mapping[str, Sequence[Any]],
    *, fees: float = 0.0, slippage: float = 0.0, init_cash: float = 100_000.0, timing: str = "next_open",
    start: object = None, end: object = None, periods_per_year: float | None = None, whole_shares: bool = False,
    risk: Mapping[str, float | None] | None = None, metric: str = "sharpe", client: Any = None,
    cache: bool | None = None, chunk_size: int | None = None, progress: bool | None = None,
):
    """Sweep a strategy family through the fused kernels (signal kernel + shared simulation).

    Parameters
    ----------
    prices : DataFrame, Series or mapping
        As for :func:`~research.backtest.engine.backtest`.
    strategy : str
        A family of :data:`~research.backtest.families.FAMILIES`.
    grid : mapping of str to sequence
        Values per swept name: the strategy's parameters, ``direction`` (``long``, ``short``,
        ``both``) and ``stop_loss``, ``take_profit``, ``trailing_stop``, ``drawdown_halt``
        (decimal fractions; 0 = off; ``drawdown_halt`` is the engine's ``max_drawdown`` rule).
        Unswept parameters keep the catalog defaults.
    fees, slippage, init_cash, timing, start, end, periods_per_year, whole_shares
        As for :func:`~research.backtest.engine.backtest` (timing ``next_open`` or ``next_close``).
    risk : mapping or RiskRules, optional
        Risk levels for every set, as for the engine (``max_drawdown`` there is the
        ``drawdown_halt`` dimension here); a grid dimension overrides.
    metric : str
        Column :meth:`SweepResult.best` maximises.
    client, cache, chunk_size, progress
        Chunked run on a Dask client and/or with resumable cached chunks, as for
        :func:`research.backtest.sweep.sweep`; the table is the same, bit for bit.

    Returns
    -------
    SweepResult
        ``params["engine"] == "fused"``.
    """
    family = fused_family(strategy)
    check_options(timing=timing, metric=metric, fees=fees, slippage=slippage, init_cash=init_cash)
    sets = family_sets(family, grid, risk)
    inp, empty = _prices(prices, timing, start, end, (float(fees), float(slippage), float(init_cash)),
                         periods_per_year, bool(whole_shares), ohlc=family.string_windows)
    t0 = time.perf_counter()
    rows = span_of(inp.index, start, end)
    params = {"fees": fees, "slippage": slippage, "init_cash": init_cash, "timing": timing,
              "periods_per_year": inp.costs[3], "start": str(inp.index[rows.start]),
              "end": str(inp.index[rows.stop - 1]), "engine": "fused", "excluded": empty, "sizing": "all_in",
              "whole_shares": bool(whole_shares), "risk": _grid_risk(risk)}
    if client is not None or cache:
        table, params["chunks"] = run_family(family, sets, inp, client=client, cache=cache, chunk_size=chunk_size,
                                             progress=progress is not False)
    else:
        stats, _ = family_rows(family, sets, inp, 0, len(inp.symbols))
        m, ns = len(inp.symbols), len(sets)
        table = family_frame(sets, inp.symbols, np.repeat(np.arange(m), ns), np.tile(np.arange(ns), m), stats)
    return SweepResult(table, strategy, list(sets.keys), metric, params, time.perf_counter() - t0,
                       {"family": family, "sets": sets, "fam_inputs": inp, "trial_returns": family_trial_returns})


def family_sets(family: Family, grid: Mapping[str, Sequence[Any]], risk: Any = None) -> GridSets:
    """The grid's valid parameter sets: values coerced as the strategy coerces them, risk levels as fractions."""
    from research.strategies.catalog import get_strategy

    spec = get_strategy(family.name)
    coerced = {k: [spec.coerce({k: v})[k] if k in spec.defaults else _risk_value(k, v) for v in vals]
               for k, vals in grid.items()}
    return expand_grid(family, coerced, defaults=spec.defaults, risk=_grid_risk(risk))


def _grid_risk(risk: Any) -> dict[str, float | None]:
    """Engine risk rules (a RiskRules or mapping) under the grid's names."""
    from research.strategies.stops import RiskRules

    rules = risk if isinstance(risk, RiskRules) else RiskRules(**dict(risk or {}))
    out = rules.to_dict()
    out["drawdown_halt"] = out.pop("max_drawdown")
    return out


def _risk_value(key: str, value: Any) -> float:
    try:
        return 0.0 if value is None or (isinstance(value, str) and value.lower() in ("", "none", "off")) \
            else float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} expects a decimal fraction (0 = off), got {value!r}") from None


def family_trial_returns(inputs: Mapping[str, Any], symbol: str, rows: pd.DataFrame,
                         param_names: Sequence[str]) -> pd.DataFrame:
    """Per-bar returns of the sets in ``rows`` (table rows of one symbol) of a fused family sweep."""
    family, sets, inp = inputs["family"], inputs["sets"], inputs["fam_inputs"]
    j = inp.symbols.index(symbol)
    chosen = rows.index.to_numpy() - j * len(sets)  # the table holds each symbol's sets in order
    sub = sets.take(chosen, family.rows_per_window)
    _, rets = family_rows(family, sub, inp, j, j + 1, keep_returns=True)
    lo, hi = int(inp.lo[j]), int(inp.hi[j])
    cols = pd.MultiIndex.from_arrays([sub.values[k] for k in param_names], names=list(param_names))
    return pd.DataFrame(rets[:, : hi - lo].T, index=inp.index[lo:hi], columns=cols)


# --------------------------------------------------------------------------- chunked (cluster, cache)

_SET_BARS_PER_S = 4.0e7  # one core: parameter sets x bars per second (measured 6e7 to 1e8 on GOOG)


def family_chunk(a: int, b: int, c: int, d: int, *, family: str, sets: GridSets,
                 inputs: FamilyInputs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of symbols ``[a, b)`` x sets ``[c, d)``: ``(symbol index, set index, stats)``."""
    fam = FAMILIES[family]
    stats, _ = family_rows(fam, sets.take(slice(c, d), fam.rows_per_window), inputs, a, b)
    ns = d - c
    return np.repeat(np.arange(a, b), ns), np.tile(np.arange(c, d), b - a), stats


def _to_frame(parts: tuple[np.ndarray, np.ndarray, np.ndarray]) -> pd.DataFrame:
    sym, idx, stats = parts
    frame = pd.DataFrame({"sym": sym.astype(np.int64), "set": idx.astype(np.int64)})
    for i in range(stats.shape[1]):
        frame[f"s{i}"] = stats[:, i]
    return frame


def _from_frame(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    stats = frame[[c for c in frame.columns if c.startswith("s") and c[1:].isdigit()]].to_numpy(dtype=np.float64)
    return frame["sym"].to_numpy(), frame["set"].to_numpy(), stats


def run_family(family: Family, sets: GridSets, inputs: FamilyInputs, *, client: Any = None,
               cache: bool | None = None, chunk_size: int | None = None,
               progress: bool = True) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The family sweep's table, chunked; and how it ran (tasks, computed, cached, rejected, cache folder)."""
    m = len(inputs.symbols)
    bars = max(1, int(np.max(inputs.hi - inputs.lo)) if m else 1)
    tasks = plan_blocks(m, len(sets), units=TASK_SECONDS * _SET_BARS_PER_S / bars, chunk_size=chunk_size)
    key = digest("family", family.name, inputs.close, inputs.exec_px, inputs.open_, inputs.high, inputs.low,
                 inputs.raw_open,
                 inputs.symbols, inputs.index, inputs.lo, inputs.hi, inputs.costs, inputs.whole, inputs.fill_at_open,
                 sets.keys, sets.windows, sets.rows, sets.levels, sets.sides, sets.risk, tasks, code_version())
    meta = {"kind": f"{family.name} (fused)", "symbols": m, "parameter_sets": len(sets), "tasks": len(tasks)}
    client, store = chunk_store(client, cache, len(tasks), key, meta)
    shared = {"family": family.name, "sets": sets, "inputs": inputs}
    parts = run_tasks(family_chunk, tasks, client=client, shared=shared, desc=f"sweep {family.name}",
                      progress=progress, cache=store, to_frame=_to_frame, from_frame=_from_frame)
    sym, idx, stats = (np.concatenate([p[k] for p in parts]) for k in range(3))
    return family_frame(sets, inputs.symbols, sym, idx, stats), run_info(tasks, store, client)
