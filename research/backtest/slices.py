"""Two-dimensional slices of an n-dimensional sweep: the frame behind every sweep heatmap.

A sweep over ``window x lower x exit_level x stop_loss`` has four parameter axes; a heatmap
shows two. :func:`grid_slice` picks the two axes, fixes some of the others at given values
and aggregates over the rest (the best, median... value of the metric across them).

>>> res = sweep(load_prices("GOOG"), "rsi_reversion", {"window": range(2, 51), "lower": range(10, 41, 2),
...                                                   "exit_level": range(50, 65, 2)})
>>> grid_slice(res, x="window", y="lower", metric="sharpe", agg="median")   # doctest: +SKIP
>>> grid_slice(res, x="window", y="lower", fixed={"exit_level": 56})          # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from research.backtest.kernels import STATS

__all__ = ["grid_slice", "AGGREGATES", "param_columns"]

logger = logging.getLogger(__name__)

#: How the axes that are neither shown nor fixed are folded into one cell.
AGGREGATES = ("max", "min", "median", "mean")


def param_columns(table: pd.DataFrame) -> list[str]:
    """The parameter columns of a sweep table (everything but ``symbol`` and the statistics)."""
    return [c for c in table.columns if c != "symbol" and c not in STATS]


def _table_of(sweep: Any) -> tuple[pd.DataFrame, list[str]]:
    if isinstance(sweep, pd.DataFrame):
        return sweep, param_columns(sweep)
    return sweep.table, list(sweep.param_names)


def _select(t: pd.DataFrame, name: str, value: Any) -> pd.Series:
    col = t[name]
    if pd.api.types.is_float_dtype(col) and isinstance(value, int | float | np.number):
        return pd.Series(np.isclose(col.to_numpy(dtype=np.float64), float(value), rtol=0.0, atol=1e-12),
                         index=t.index)
    return col == value


def grid_slice(
    sweep: Any, *, x: str, y: str, metric: str = "sharpe", symbol: str | None = None,
    fixed: Mapping[str, Any] | None = None, agg: str = "max",
) -> pd.DataFrame:
    """The ``metric`` over two parameter axes of a sweep: a ``y x x`` frame.

    Parameters
    ----------
    sweep : SweepResult or DataFrame
        A sweep result or its tidy table (``symbol``, parameters, statistics).
    x, y : str
        The two parameter axes (columns of the frame: ``x``; rows: ``y``).
    metric : str
        Statistic to show (a column of the table).
    symbol : str, optional
        Which symbol (required when the table has several).
    fixed : mapping, optional
        Other parameters held at one value each (floats matched within 1e-12).
    agg : {"max", "min", "median", "mean"}
        How the remaining parameters are folded into each cell (NaN values skipped).

    Returns
    -------
    DataFrame
        Index: the ``y`` values, columns: the ``x`` values (sorted); NaN where no set exists.
        ``attrs`` record ``metric``, ``agg``, ``fixed``, ``aggregated`` (the folded axes) and
        ``symbol``.

    Raises
    ------
    ValueError
        An unknown axis, metric, symbol or aggregate; a fixed value the sweep does not hold.
    """
    table, params = _table_of(sweep)
    fixed = dict(fixed or {})
    _check_axes(table, params, x=x, y=y, metric=metric, fixed=fixed, agg=agg)
    symbol, t = _symbol_rows(table, symbol)
    for name, value in fixed.items():
        keep = _select(t, name, value)
        if not keep.any():
            raise ValueError(f"{name}={value!r} is not in the sweep; values: {sorted(pd.unique(t[name]))[:20]}")
        t = t[keep]
    folded = [p for p in params if p not in (x, y, *fixed)]
    out = t.groupby([y, x], sort=True)[metric].agg(agg).unstack(x)
    out.attrs = {"metric": metric, "agg": agg, "fixed": fixed, "aggregated": folded, "symbol": symbol}
    return out


def _check_axes(table: pd.DataFrame, params: list[str], *, x: str, y: str, metric: str, fixed: Mapping[str, Any],
                agg: str) -> None:
    """A ValueError naming what is wrong with the requested slice (metric, axes, fixed parameters, aggregate)."""
    if metric not in table.columns:
        raise ValueError(f"metric {metric!r} is not a column of the sweep table; columns: {list(table.columns)}")
    for name in (x, y, *fixed):
        if name not in params:
            raise ValueError(f"{name!r} is not a swept parameter; parameters: {params}")
    if x == y:
        raise ValueError(f"x and y must be two different parameters, both are {x!r}")
    if x in fixed or y in fixed:
        raise ValueError(f"an axis cannot also be fixed (axes {x!r}, {y!r}; fixed {sorted(fixed)})")
    if agg not in AGGREGATES:
        raise ValueError(f"agg must be one of {AGGREGATES}, got {agg!r}")


def _symbol_rows(table: pd.DataFrame, symbol: str | None) -> tuple[str, pd.DataFrame]:
    """The symbol (the only one when not given) and its rows of the table."""
    symbols = list(pd.unique(table["symbol"]))
    if symbol is None:
        if len(symbols) != 1:
            raise ValueError(f"the sweep covers several symbols {symbols[:5]}: pass symbol=")
        symbol = symbols[0]
    t = table[table["symbol"] == symbol]
    if t.empty:
        raise ValueError(f"no rows for symbol {symbol!r}; symbols: {symbols[:10]}")
    return symbol, t
