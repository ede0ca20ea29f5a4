"""Sweeps split into chunks of symbols x parameter blocks, run in process or on a Dask client.

Used by :func:`research.backtest.sweep.sweep_ma_crossover` and
:func:`research.backtest.sweep.sweep` when they get ``client=`` (or ``cache=True``). Each
chunk is sized to run for about :data:`TASK_SECONDS` (Dask spends about a millisecond per
task), the price matrices are scattered to the workers once, and the finished chunks are
cached under ``<data_dir>/cache/sweeps/<key>/`` so an interrupted sweep resumes. The key
hashes the prices, the grid, every option, the chunk plan and the code version.

The table is assembled exactly as the in-process path builds it, so both give the same
numbers bit for bit (every row is computed by the same kernel on the same inputs; only
which rows share a task changes).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from research.backtest.tasks import ChunkCache, code_version, digest, run_tasks

__all__ = ["TASK_SECONDS", "plan_blocks", "run_fused", "run_engine", "fused_chunk", "engine_chunk"]

TASK_SECONDS = 0.25
"""Target run time of one task."""
_FUSED_PAIR_BARS_PER_S = 2.0e8  # one core, fused crossover kernel (measured about 3e8 here)
_ENGINE_CALL_S = 0.04  # one engine backtest call, plus per symbol-bar below
_ENGINE_SYMBOL_BAR_S = 4.0e-6  # measured about 0.2 s for 20 symbols x 2,148 bars
_ENGINE_SYMBOLS_PER_CALL = 50

Block = tuple[int, int, int, int]  # symbols [a, b), parameter sets [c, d)


def plan_blocks(n_symbols: int, n_params: int, *, units: float, chunk_size: int | None = None,
                max_symbols: int | None = None) -> list[Block]:
    """Tile symbols x parameter sets into tasks of about ``units`` (symbol, parameter) runs each.

    Parameters
    ----------
    n_symbols, n_params : int
        Grid shape.
    units : float
        Target symbol x parameter runs per task.
    chunk_size : int, optional
        Parameter sets per task (then one symbol block per task, as wide as ``max_symbols``).
    max_symbols : int, optional
        Most symbols in one task.

    Returns
    -------
    list of (sym_start, sym_stop, param_start, param_stop)
    """
    max_symbols = max_symbols or n_symbols
    if chunk_size is not None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1 parameter set, got {chunk_size!r}")
        per_par, per_sym = int(chunk_size), min(max_symbols, max(1, int(units // chunk_size)) if units else 1)
    elif n_params >= units:
        per_par, per_sym = _even(n_params, max(1, int(units))), 1
    else:
        per_par, per_sym = n_params, min(max_symbols, max(1, int(units // max(n_params, 1))))
    per_sym = _even(n_symbols, per_sym)
    return [(a, min(a + per_sym, n_symbols), c, min(c + per_par, n_params))
            for a in range(0, n_symbols, per_sym) for c in range(0, n_params, per_par)]


def _even(n: int, size: int) -> int:
    """Block size close to ``size`` that splits ``n`` into equal blocks."""
    size = max(1, min(size, n))
    return math.ceil(n / math.ceil(n / size))


def chunk_store(client: Any, cache: bool | None, n_tasks: int, key: str, meta: dict) -> tuple[Any, ChunkCache | None]:
    """The client to use (none for a single task) and the chunk cache (on by default with a client)."""
    if cache is None:
        cache = client is not None
    if n_tasks == 1:  # one task: shipping it costs more than it saves
        client = None
    return client, (ChunkCache(key, meta=meta) if cache else None)


def run_info(tasks: Sequence[Block], store: ChunkCache | None, client: Any) -> dict[str, Any]:
    """How a chunked run went: tasks, computed, cached, rejected (failed content checks), cache, where."""
    computed = store.computed if store is not None else len(tasks)
    return {"tasks": len(tasks), "computed": computed, "cached": len(tasks) - computed,
            "rejected": store.rejected if store is not None else 0,
            "cache": str(store.path) if store is not None else None, "on": "cluster" if client is not None else "process"}


# --------------------------------------------------------------------------- fused crossover

def fused_chunk(a: int, b: int, c: int, d: int, *, close: np.ndarray, exec_px: np.ndarray, pairs: np.ndarray,
                lo: np.ndarray, hi: np.ndarray, costs: tuple, many: bool) -> tuple[np.ndarray, ...]:
    """Fused rows of symbols ``[a, b)`` x pairs ``[c, d)``; symbol indices refer to all columns."""
    from research.backtest.fused import fused_parts

    sym, fast, slow, stats = fused_parts(np.asfortranarray(close[:, a:b]), np.asfortranarray(exec_px[:, a:b]),
                                          pairs[c:d], lo[a:b], hi[a:b], costs, many)
    return sym + a, fast, slow, stats


def _fused_to_frame(parts: tuple[np.ndarray, ...]) -> pd.DataFrame:
    sym, fast, slow, stats = parts
    frame = pd.DataFrame({"sym": sym.astype(np.int64), "fast": fast.astype(np.int64), "slow": slow.astype(np.int64)})
    for i in range(stats.shape[1]):
        frame[f"s{i}"] = stats[:, i]
    return frame


def _fused_from_frame(frame: pd.DataFrame) -> tuple[np.ndarray, ...]:
    stats = frame[[c for c in frame.columns if c.startswith("s") and c[1:].isdigit()]].to_numpy(dtype=np.float64)
    return frame["sym"].to_numpy(), frame["fast"].to_numpy(), frame["slow"].to_numpy(), stats


def run_fused(close: np.ndarray, exec_px: np.ndarray, symbols: Sequence[str], pairs: np.ndarray, lo: np.ndarray,
              hi: np.ndarray, costs: tuple, index: pd.Index, *, client: Any = None, cache: bool | None = None,
              chunk_size: int | None = None, progress: bool = True) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The fused sweep's table, chunked; and how it ran (tasks, computed, cached, cache folder)."""
    from research.backtest.fused import fused_frame

    many = len(pairs) < close.shape[1]  # the kernel the in-process path picks
    bars = max(1, int(np.max(hi - lo)) if len(lo) else 1)
    tasks = plan_blocks(close.shape[1], len(pairs), units=TASK_SECONDS * _FUSED_PAIR_BARS_PER_S / bars,
                        chunk_size=chunk_size)
    key = digest("fused", close, exec_px, list(symbols), index, pairs, lo, hi, costs, tasks, code_version())
    meta = {"kind": "ma_crossover (fused)", "symbols": len(symbols), "pairs": len(pairs), "tasks": len(tasks)}
    client, store = chunk_store(client, cache, len(tasks), key, meta)
    shared = {"close": close, "exec_px": exec_px, "pairs": pairs, "lo": lo, "hi": hi, "costs": costs, "many": many}
    parts = run_tasks(fused_chunk, tasks, client=client, shared=shared, desc="sweep ma_crossover",
                      progress=progress, cache=store, to_frame=_fused_to_frame, from_frame=_fused_from_frame)
    joined = tuple(np.concatenate([p[k] for p in parts]) for k in range(4))
    return fused_frame(symbols, joined), run_info(tasks, store, client)


# --------------------------------------------------------------------------- engine strategies

def engine_chunk(a: int, b: int, c: int, d: int, *, fields: Mapping[str, pd.DataFrame], symbols: Sequence[str],
                 split: bool, strategy: str, keys: Sequence[str], combos: Sequence[tuple],
                 kwargs: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
    """Engine rows of parameter sets ``[c, d)`` on symbols ``[a, b)`` (all symbols unless ``split``).

    Returns the rows (``_combo`` and ``_pos`` give their place in the in-process order) and
    the parameter sets the engine refused, with the reason.
    """
    from research.backtest.engine import backtest
    from research.backtest.families import engine_call
    from research.backtest.fused import stats_row

    names = list(symbols[a:b])
    sub = {k: v[names] for k, v in fields.items()} if split else fields
    position = {s: i for i, s in enumerate(symbols)}
    rows: list[dict[str, Any]] = []
    skipped: list[tuple[int, str]] = []
    for ci in range(c, d):
        params = dict(zip(keys, combos[ci], strict=True))
        try:
            res = backtest(sub, strategy, **engine_call(params, kwargs))
        except ValueError as exc:
            skipped.append((ci, str(exc)))
            continue
        for book in res.books:
            stats = stats_row(res.summary(book), float(res.equity[book].iloc[-1]))
            rows.append({"_combo": ci, "_pos": position.get(book, 0), "symbol": book, **params, **stats})
    return rows, skipped


def _engine_to_frame(result: tuple[list[dict[str, Any]], list[tuple[int, str]]]) -> pd.DataFrame:
    rows, skipped = result
    frame = pd.DataFrame(rows)
    frame.attrs["skipped"] = [[int(i), str(m)] for i, m in skipped]
    return frame


def _engine_from_frame(frame: pd.DataFrame) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
    return frame.to_dict(orient="records"), [(int(i), str(m)) for i, m in frame.attrs.get("skipped", [])]


def run_engine(fields: Mapping[str, pd.DataFrame], strategy: str, keys: Sequence[str], combos: Sequence[tuple],
               kwargs: Mapping[str, Any], *, client: Any = None, cache: bool | None = None,
               chunk_size: int | None = None, progress: bool = True) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows of an engine sweep in the in-process order (parameter set, then symbol); how it ran."""
    from research.strategies.catalog import get_strategy

    symbols = [str(s) for s in fields["close"].columns]
    split = not kwargs.get("shared_cash", False) and get_strategy(strategy).input == "close"
    per_call = len(symbols) if not split else min(len(symbols), _ENGINE_SYMBOLS_PER_CALL)
    run_s = _ENGINE_CALL_S + _ENGINE_SYMBOL_BAR_S * per_call * len(fields["close"].index)
    per_task = max(1, round(TASK_SECONDS / run_s))  # engine calls per task, each on a wide symbol block
    tasks = plan_blocks(len(symbols), len(combos), units=per_call * per_task, chunk_size=chunk_size or per_task,
                        max_symbols=per_call)
    key = digest("engine", dict(fields), strategy, list(keys), [list(c) for c in combos], dict(kwargs), tasks,
                 code_version())
    meta = {"kind": f"{strategy} (engine)", "symbols": len(symbols), "parameter_sets": len(combos), "tasks": len(tasks)}
    client, store = chunk_store(client, cache, len(tasks), key, meta)
    shared = {"fields": dict(fields), "symbols": symbols, "split": split, "strategy": strategy, "keys": list(keys),
              "combos": list(combos), "kwargs": dict(kwargs)}
    parts = run_tasks(engine_chunk, tasks, client=client, shared=shared, desc=f"sweep {strategy}",
                      progress=progress, cache=store, to_frame=_engine_to_frame, from_frame=_engine_from_frame)
    refused = {i: m for p in parts for i, m in p[1]}
    # a parameter set refused on any symbol block is dropped whole, as one engine call would be
    rows = [r for p in parts for r in p[0] if r["_combo"] not in refused]
    rows.sort(key=lambda r: (r["_combo"], r["_pos"]))
    for i in sorted(refused):
        warnings.warn(f"{strategy} {dict(zip(keys, combos[i], strict=True))}: skipped ({refused[i]})", stacklevel=3)
    return [{k: v for k, v in r.items() if k not in ("_combo", "_pos")} for r in rows], run_info(tasks, store, client)
