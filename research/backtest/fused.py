"""The fused crossover sweep's building blocks, shared by the in-process and the chunked paths.

:mod:`research.backtest.sweep` runs them in one go; :mod:`research.backtest.chunked` runs them
per block of symbols x pairs (on a Dask client or here) and caches finished blocks.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from research.backtest.kernels import STATS, ma_grid, ma_many, ma_table_nb
from research.risk.metrics import compact_stats


def live_spans(close: np.ndarray, rows: slice) -> tuple[np.ndarray, np.ndarray]:
    """Per symbol, the simulated bars: the requested range cut to its first..last priced bar.

    A symbol lives from its first to its last bar with a close; bars before a listing or after
    the data ends are not periods of its life (the engine's statistics follow the same rule).
    """
    valid = ~np.isnan(close)
    n = close.shape[0]
    first = valid.argmax(axis=0)
    last = n - valid[::-1].argmax(axis=0)
    lo = np.maximum(first, rows.start).astype(np.int64)
    hi = np.minimum(last, rows.stop).astype(np.int64)
    return lo, np.maximum(hi, lo)


def window_rows(fast: np.ndarray, slow: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct windows of a grid and, per pair, the row of its fast and of its slow window."""
    windows = np.unique(np.concatenate([fast, slow])).astype(np.int64)
    frow = np.searchsorted(windows, fast).astype(np.int64)
    srow = np.searchsorted(windows, slow).astype(np.int64)
    return windows, frow, srow


def usable_symbols(close: pd.DataFrame, exec_prices: pd.DataFrame, *, stacklevel: int = 3) -> tuple[np.ndarray, list[str]]:
    """Which symbols a sweep can trade: a close somewhere and a positive execution price somewhere.

    Returns the mask of unusable columns and their names; warns once per excluded symbol (at the
    sweep's caller) and raises ``ValueError`` when no symbol is left.
    """
    bad = np.isnan(close.to_numpy(dtype=np.float64)).all(axis=0) | ~(exec_prices.to_numpy(dtype=np.float64) > 0).any(axis=0)
    empty = [str(c) for c, b in zip(close.columns, bad, strict=True) if b]
    for sym in empty:
        warnings.warn(f"{sym}: no valid prices; excluded from the sweep", stacklevel=stacklevel + 1)
    if bad.all():
        raise ValueError("no symbol has valid prices")
    return bad, empty


def check_options(*, timing: str, metric: str, fees: float, slippage: float, init_cash: float) -> None:
    """The fused sweeps' common option checks: a ValueError naming the bad option."""
    if timing not in ("next_open", "next_close"):
        raise ValueError(f"the fused sweep supports timing 'next_open' or 'next_close', got {timing!r}")
    if metric not in STATS:
        raise ValueError(f"metric must be one of {STATS}, got {metric!r}")
    for name, value in (("fees", fees), ("slippage", slippage)):
        if not (np.isfinite(value) and 0 <= value < 1):
            raise ValueError(f"{name} must be a fraction in [0, 1), got {value!r}")
    if not init_cash > 0:
        raise ValueError(f"init_cash must be positive, got {init_cash!r}")


FusedParts = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # symbol index, fast, slow, stats


def fused_parts(close: np.ndarray, exec_px: np.ndarray, pairs: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                 costs: tuple, many: bool | None = None) -> FusedParts:
    """Statistics of every pair on every column: ``(symbol index, fast, slow, stats)`` rows.

    ``many`` picks the kernel (True: one pair on all symbols at once; False: a grid per
    symbol; None: by shape). Every row's numbers are the same either way it is grouped.
    """
    if many is None:
        many = len(pairs) < close.shape[1]
    n_sym = close.shape[1]
    parts = []
    if many:  # few parameter sets, many symbols: parallel over symbols
        for f, s in pairs:
            stats = ma_many(exec_px, close, int(f), int(s), lo, hi, *costs)
            parts.append((np.arange(n_sym), np.full(n_sym, f), np.full(n_sym, s), stats))
    else:  # a grid per symbol: parallel over parameter sets
        windows, frow, srow = window_rows(pairs[:, 0], pairs[:, 1])
        for j in range(n_sym):
            c = np.ascontiguousarray(close[:, j])
            o = np.ascontiguousarray(exec_px[:, j])
            stats, _ = ma_grid(o, c, ma_table_nb(c, windows), frow, srow, int(lo[j]), int(hi[j]), *costs, False)
            parts.append((np.full(len(pairs), j), pairs[:, 0], pairs[:, 1], stats))
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(4))  # type: ignore[return-value]


def fused_frame(symbols: Sequence[str], parts: FusedParts) -> pd.DataFrame:
    """The tidy table of fused rows, sorted by symbol (in ``symbols`` order), fast, slow."""
    sym_idx, fast, slow, stats = parts
    columns = {
        "symbol": np.asarray(symbols, dtype=object)[sym_idx],
        "fast": fast.astype(np.int64),
        "slow": slow.astype(np.int64),
    }
    columns.update({name: stats[:, i] for i, name in enumerate(STATS)})
    columns["trades"] = columns["trades"].astype(np.int64)
    table = pd.DataFrame(columns)
    order = np.lexsort((table["slow"].to_numpy(), table["fast"].to_numpy(), sym_idx))
    if (order != np.arange(len(order))).any():
        table = table.iloc[order].reset_index(drop=True)
    return table


def fused_table(close: np.ndarray, exec_px: np.ndarray, symbols: Sequence[str], pairs: np.ndarray,
                 lo: np.ndarray, hi: np.ndarray, costs: tuple) -> pd.DataFrame:
    return fused_frame(symbols, fused_parts(close, exec_px, pairs, lo, hi, costs))


def stats_row(s: pd.Series, final_value: float) -> dict[str, float]:
    """A summary as one row of a sweep table (the glossary: :data:`research.risk.metrics.COMPACT_KEYS`)."""
    return {**compact_stats(s), "final_value": final_value}
