"""A run's recorded sweep, indexed for the sweep panel: families, their parameters and cells, the
best cell, its deflated Sharpe and PBO, and any cell re-run by the engine on the recorded bars.

The ``sweep`` output is long: a ``family`` column (absent in runs that swept only the moving
average crossover), ``symbol``, the union of the families' parameter columns and the statistics.
A cell is one parameter set of one family, a ``{name: value}`` mapping.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from research.viz.panels.labels import canonical_params, params_label
from research.viz.panels.labels import curve_index as _curve_index
from research.viz.panels.layout import require, run_record
from research.workflow.results import PublishedRun

__all__ = ["SweepData", "param_set_text", "value_text", "LOWER_BETTER", "NO_BEST", "AGGREGATES"]

logger = logging.getLogger(__name__)

LOWER_BETTER = {"annual_volatility"}
NO_BEST = {"trades", "exposure"}
#: How the heatmap folds the parameters neither on an axis nor fixed.
AGGREGATES = ("max", "median", "mean", "min")
_STATS = {"total_return", "annual_return", "annual_volatility", "sharpe", "max_drawdown", "trades", "win_rate",
          "exposure", "final_value"}
_DEFAULT_FAMILY = "ma_crossover"


def value_text(v: Any) -> str:
    """A parameter value as the page writes it: ``7``, ``0.05``, ``hammer+doji``."""
    v = v.item() if hasattr(v, "item") else v
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else f"{v:g}"
    return str(v)


def param_set_text(cell: Mapping[str, Any]) -> str:
    """``{"fast": 7, "slow": 60}`` -> ``"fast=7, slow=60"``."""
    return ", ".join(f"{k}={value_text(v)}" for k, v in cell.items())


def _missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _tidy(rows: pd.DataFrame, params: list[str]) -> pd.DataFrame:
    """A family's rows with only its parameter columns (integer-valued ones as integers)."""
    out = rows[["symbol", *params, *[c for c in rows.columns if c in _STATS]]].copy()
    for name in params:
        col = out[name]
        if pd.api.types.is_float_dtype(col) and col.notna().all() and np.all(np.mod(col.to_numpy(), 1) == 0):
            out[name] = col.astype(np.int64)
    return out


class SweepData:
    """A run's recorded sweep, indexed by family and symbol; re-runs cells on the recorded bars."""

    def __init__(self, run: PublishedRun) -> None:
        require(run, "sweep")
        self.run = run
        table = run.table("sweep")
        if "symbol" not in table.columns:
            raise ValueError(f"the sweep table needs a symbol column; columns: {list(table.columns)}")
        if "family" not in table.columns:  # runs that swept only the crossover
            table = table.assign(family=_DEFAULT_FAMILY)
        self.table = table.assign(symbol=table["symbol"].astype(str), family=table["family"].astype(str))
        self.summary = run.table("sweep_summary") if run.has("sweep_summary") else None
        if self.summary is not None and "family" not in self.summary.columns:
            self.summary = self.summary.assign(family=_DEFAULT_FAMILY)
        self.bars = run.table("sweep_bars") if run.has("sweep_bars") else None
        self._equity = run.table("equity") if run.has("equity") else None
        self._curves = _curve_index(self._equity) if self._equity is not None else {}
        self._backtests = run.table("backtests") if run.has("backtests") else None
        self._params = run_record(run).get("parameters") or {}
        self._families = {f: self._index(f, rows) for f, rows in self.table.groupby("family", sort=False)}
        self._cache: dict[tuple, Any] = {}

    def _index(self, family: str, rows: pd.DataFrame) -> tuple[list[str], dict[str, pd.DataFrame]]:
        params = self._param_names(family, rows)
        missing = [p for p in params if p not in rows.columns]
        if missing or not params:
            raise ValueError(f"the sweep table of {family} lacks its parameter columns {missing or '(none)'}")
        tidy = _tidy(rows, params)
        return params, dict(tuple(tidy.groupby("symbol", sort=False)))

    def _param_names(self, family: str, rows: pd.DataFrame) -> list[str]:
        if self.summary is not None and "param_names" in self.summary.columns:
            names = self.summary.loc[self.summary["family"].astype(str) == family, "param_names"].dropna()
            if len(names):
                return [n for n in str(names.iloc[0]).split(",") if n]
        skip = {"symbol", "family", "strategy", *_STATS}
        return [c for c in rows.columns if c not in skip and rows[c].notna().all()]

    # ------------------------------------------------------------ the grid
    def families(self) -> list[str]:
        return list(self._families)

    def params(self, family: str) -> list[str]:
        return list(self._families[family][0])

    def symbols(self, family: str | None = None) -> list[str]:
        return list(self._families[family or self.families()[0]][1])

    def metrics(self) -> list[str]:
        cols = [c for c in self.table.columns if c in _STATS and pd.api.types.is_numeric_dtype(self.table[c])]
        return sorted(cols, key=lambda c: c != "sharpe")

    def rows(self, family: str, symbol: str) -> pd.DataFrame:
        params, by_symbol = self._families[family]
        hit = by_symbol.get(symbol)
        return hit if hit is not None else next(iter(by_symbol.values())).iloc[:0]

    def values(self, family: str, symbol: str, name: str) -> list[Any]:
        """The sorted values of parameter ``name`` in the family's grid on ``symbol``."""
        return sorted(self.rows(family, symbol)[name].unique().tolist())

    def cell(self, family: str, symbol: str, cell: Mapping[str, Any]) -> pd.Series | None:
        rows = self.rows(family, symbol)
        mask = np.ones(len(rows), dtype=bool)
        for name in self.params(family):
            if name not in cell:
                return None
            mask &= (rows[name] == cell[name]).to_numpy()
        return rows[mask].iloc[0] if mask.any() else None

    def cell_of(self, family: str, row: pd.Series) -> dict[str, Any]:
        """The parameter set of a table row."""
        return {name: row[name].item() if hasattr(row[name], "item") else row[name] for name in self.params(family)}

    def best(self, family: str, symbol: str, metric: str) -> pd.Series | None:
        rows = self.rows(family, symbol)
        if metric in NO_BEST or metric not in rows or rows[metric].notna().sum() == 0:
            return None
        return rows.loc[rows[metric].idxmin() if metric in LOWER_BETTER else rows[metric].idxmax()]

    # ------------------------------------------------------------ the record
    def overfitting(self, family: str, symbol: str) -> Mapping[str, Any]:
        """The ``sweep_summary`` row of the family and symbol (missing values left out), with its
        best cell as ``cell``."""
        if self.summary is None:
            return {}
        s = self.summary
        rows = s[(s["symbol"].astype(str) == symbol) & (s["family"].astype(str) == family)]
        if rows.empty:
            return {}
        out = {k: v for k, v in rows.iloc[0].items() if not _missing(v)}
        if isinstance(out.get("params"), str):
            out["cell"] = json.loads(out["params"])
        elif all(p in out for p in self.params(family)):
            out["cell"] = {p: out[p] for p in self.params(family)}
        return out

    def costs(self, family: str, symbol: str) -> dict[str, Any]:
        """The sweep's costs and timing (``sweep_summary``, else the run's parameters)."""
        rec, params = self.overfitting(family, symbol), self._params
        out = {"fees": rec.get("fees", params.get("fees", 0.0)), "slippage": rec.get("slippage", params.get("slippage", 0.0))}
        for key in ("init_cash", "timing", "periods_per_year"):
            if key in rec:
                out[key] = rec[key]
        return out

    def rerun(self, family: str, symbol: str, cell: Mapping[str, Any]):
        """The engine's backtest of one cell on the recorded bars (``None`` without ``sweep_bars``)."""
        key = (family, symbol, tuple(sorted((k, value_text(v)) for k, v in cell.items())))
        if key in self._cache:
            return self._cache[key]
        fields = self.fields(symbol)
        if fields is None:
            return None
        from research.backtest import backtest
        from research.backtest.families import engine_call

        plain = {k: (v.item() if hasattr(v, "item") else v) for k, v in cell.items()}
        res = backtest(fields, family, **engine_call(plain, self.costs(family, symbol)))
        if len(self._cache) > 64:
            self._cache.clear()
        self._cache[key] = res
        return res

    def fields(self, symbol: str) -> dict[str, pd.DataFrame] | None:
        """The recorded bars of ``symbol`` over its own life (``None`` without ``sweep_bars``)."""
        if self.bars is None or f"close|{symbol}" not in self.bars:
            return None
        fields = {f: self.bars[[f"{f}|{symbol}"]].rename(columns=lambda c: symbol)
                  for f in ("open", "high", "low", "close") if f"{f}|{symbol}" in self.bars}
        alive = fields["close"][symbol].notna().to_numpy()
        return {f: v[alive] for f, v in fields.items()}

    def walk_forward(self, family: str, symbol: str):
        """The walk-forward of ``family`` on ``symbol``'s recorded bars and costs: in each training
        window the highest-Sharpe cell of a regular sub-grid of the family's recorded grid (at most
        800 cells), traded on the next test window (:func:`research.backtest.walkforward.walk_forward`);
        ``None`` without bars or without a sweep of the family on the symbol."""
        key = ("walk_forward", family, symbol)
        if key not in self._cache:
            fields = self.fields(symbol)
            if fields is None or family not in self._families or self.rows(family, symbol).empty:
                return None
            self._cache[key] = self._walk_forward(family, symbol, fields)
        return self._cache[key]

    def _walk_forward(self, family: str, symbol: str, fields: dict[str, pd.DataFrame]):
        from research.backtest.walkforward import walk_forward
        from research.stages.sweep_outputs import pbo_grid, wf_windows

        grid = pbo_grid({name: self.values(family, symbol, name) for name in self.params(family)})
        train, test = wf_windows(len(fields["close"]))
        with warnings.catch_warnings():  # the grid's sets the strategy refuses (it was swept as recorded)
            warnings.filterwarnings("ignore", message=".*parameter sets skipped")
            return walk_forward(fields, family, grid, train=train, test=test, **self.costs(family, symbol))

    def walk_forward_picks(self, family: str, symbol: str) -> pd.DataFrame | None:
        """The walk-forward's folds with each fold's pick as text (``pick``: ``7/60``, ``window=10, lower=30``,
        ``flat``; :meth:`~research.backtest.walkforward.WalkForwardResult.pick_label`)."""
        wf = self.walk_forward(family, symbol)
        if wf is None:
            return None
        folds = wf.folds.reset_index(drop=True)
        return folds.assign(pick=[wf.pick_label(row) for _, row in folds.iterrows()])

    # ------------------------------------------------------------ recorded strategies
    def recorded(self, symbol: str) -> list[tuple[str, str]]:
        """Recorded strategy curves of ``symbol`` (label, equity column) to compare with."""
        out = []
        for (strategy, sym, params), col in self._curves.items():
            if sym == symbol:
                out.append((strategy + (f" ({params_label(params)})" if params not in (None, "{}") else ""), col))
        return sorted(out)

    def recorded_curve(self, col: str) -> pd.Series:
        return self._equity[col].dropna()

    def recorded_stats(self, col: str) -> pd.Series | None:
        """The ``backtests`` row of a recorded curve (``strategy|symbol[|params]``), if any."""
        if self._backtests is None:
            return None
        parts = str(col).split("|", 2)
        bt = self._backtests
        hit = bt[(bt["strategy"].astype(str) == parts[0]) & (bt["symbol"].astype(str) == parts[1])]
        if len(parts) == 3 and "params" in hit:
            hit = hit[hit["params"].map(canonical_params) == canonical_params(parts[2])]
        return hit.iloc[0] if len(hit) else None
