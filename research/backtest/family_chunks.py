"""Fused family sweeps in chunks of symbols x parameter sets, in process or on a Dask client.

The chunked form of :func:`research.backtest.family_sweep.sweep_family` (``client=`` or
``cache=True``): each task runs one block of symbols against one block of parameter sets with
the same kernel, computing the indicator tables only for the windows its sets use; the price
arrays and the grid travel to the workers once; finished chunks are cached (content-checked,
see :class:`research.backtest.tasks.ChunkCache`) so an interrupted sweep resumes. Every row is
computed from the same inputs by the same code whichever task holds it, so the table equals the
in-process one bit for bit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from research.backtest.chunked import TASK_SECONDS, _chunking, _info, plan_blocks
from research.backtest.families import FAMILIES, Family, GridSets
from research.backtest.family_sweep import FamilyInputs, family_frame, family_rows
from research.backtest.tasks import code_version, digest, run_tasks

__all__ = ["run_family", "family_chunk"]

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
                 inputs.symbols, inputs.index, inputs.lo, inputs.hi, inputs.costs, inputs.whole, inputs.fill_at_open,
                 sets.keys, sets.windows, sets.rows, sets.levels, sets.sides, sets.risk, tasks, code_version())
    meta = {"kind": f"{family.name} (fused)", "symbols": m, "parameter_sets": len(sets), "tasks": len(tasks)}
    client, store = _chunking(client, cache, len(tasks), key, meta)
    shared = {"family": family.name, "sets": sets, "inputs": inputs}
    parts = run_tasks(family_chunk, tasks, client=client, shared=shared, desc=f"sweep {family.name}",
                      progress=progress, cache=store, to_frame=_to_frame, from_frame=_from_frame)
    sym, idx, stats = (np.concatenate([p[k] for p in parts]) for k in range(3))
    return family_frame(sets, inputs.symbols, sym, idx, stats), _info(tasks, store, client)
