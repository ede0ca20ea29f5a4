"""The result of a parameter sweep: its tidy table, how it ran, and its trials' returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from research.backtest.fused import window_rows
from research.backtest.kernels import ma_grid, ma_table_nb

__all__ = ["SweepResult"]


@dataclass
class SweepResult:
    """A sweep's tidy table and how it was run.

    Attributes
    ----------
    table : DataFrame
        One row per (symbol, parameter set): ``symbol``, parameters, :data:`STATS`.
    strategy : str
        Strategy swept.
    param_names : list of str
        The parameter columns of ``table``.
    metric : str
        The column :meth:`best` maximises.
    params : dict
        Costs, timing, periods per year, date range, engine (``"fused"`` or ``"engine"``).
    elapsed : float
        Seconds spent running the grid.
    """

    table: pd.DataFrame
    strategy: str
    param_names: list[str]
    metric: str
    params: dict[str, Any]
    elapsed: float
    _inputs: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def n_trials(self) -> int:
        """Parameter sets per symbol."""
        return int(self.table.groupby("symbol").size().max())

    def best(self, symbol: str | None = None, *, metric: str | None = None) -> pd.Series:
        """Row of the best parameter set (max ``metric``, NaN skipped; first on ties)."""
        metric = metric or self.metric
        t = self._rows(symbol)
        if t[metric].notna().sum() == 0:
            raise ValueError(f"no parameter set has a finite {metric!r}")
        return t.loc[t[metric].idxmax()]

    def _rows(self, symbol: str | None) -> pd.DataFrame:
        symbols = list(self.table["symbol"].unique())
        if symbol is None:
            if len(symbols) != 1:
                raise ValueError(f"several symbols {symbols[:5]}: name one")
            symbol = symbols[0]
        t = self.table[self.table["symbol"] == symbol]
        if t.empty:
            raise KeyError(f"no rows for symbol {symbol!r}; symbols are {symbols[:10]}")
        return t

    def trial_returns(self, symbol: str | None = None) -> pd.DataFrame:
        """Per-bar returns of every parameter set on one symbol (bars x trials), for PBO/DSR.

        Recomputed by the fused kernel (about ``8 * bars * trials`` bytes: 340 MB for 19,701
        pairs on 2,148 bars). Only for fused sweeps; columns are the parameter sets in table
        order (a MultiIndex of the swept parameters).
        """
        if self.params.get("engine") != "fused":
            raise ValueError("trial returns are kept for fused sweeps only")
        rows = self._rows(symbol)
        sym = rows["symbol"].iloc[0]
        inp = self._inputs
        if "trial_returns" in inp:  # a fused family sweep: its own recomputation
            return inp["trial_returns"](inp, sym, rows, self.param_names)
        j = inp["symbols"].index(sym)
        c = np.ascontiguousarray(inp["close"][:, j])
        o = np.ascontiguousarray(inp["exec"][:, j])
        fast, slow = rows["fast"].to_numpy(), rows["slow"].to_numpy()
        windows, frow, srow = window_rows(fast, slow)
        lo, hi = int(inp["lo"][j]), int(inp["hi"][j])
        _, rets = ma_grid(o, c, ma_table_nb(c, windows), frow, srow, lo, hi, *inp["costs"], True)
        cols = pd.MultiIndex.from_arrays([fast, slow], names=["fast", "slow"])
        return pd.DataFrame(rets.T, index=inp["index"][lo:hi], columns=cols)

    def cell_returns(self, symbol: str, **params: int) -> pd.Series:
        """Per-bar returns of one parameter set on one symbol (e.g. ``cell_returns("SPX", fast=5, slow=20)``).

        Recomputed by the fused kernel from this sweep's own inputs, as :meth:`trial_returns`.
        """
        rows = self._rows(symbol)
        for name, value in params.items():
            if name not in self.param_names:
                raise KeyError(f"{name!r} is not a parameter of this sweep; parameters are {self.param_names}")
            rows = rows[rows[name] == value]
        if len(rows) != 1:
            raise KeyError(f"{len(rows)} parameter sets of {symbol!r} match {params}; name exactly one")
        one = SweepResult(rows, self.strategy, self.param_names, self.metric, self.params, 0.0, self._inputs)
        return one.trial_returns(symbol).iloc[:, 0]
