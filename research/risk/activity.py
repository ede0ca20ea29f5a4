"""Trading activity: win rate and profit factor of a trade list, exposure and turnover of a book.

Part of :mod:`research.risk.metrics` (which re-exports every name here) and, like it, imports
nothing from ``research``. The data contracts for ``trades`` and ``positions`` are those of
:mod:`research.risk.metrics`: a trade table with a ``pnl`` and/or ``return`` column (matched
case-insensitively) or a Series of either; weights per asset per bar, or currency values with a
``cash`` column (converted to weights by each row's total).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["win_rate", "profit_factor", "exposure", "turnover", "trade_values"]


def trade_values(trades: pd.DataFrame | pd.Series) -> pd.Series:
    """The per-trade pnl (or return) of ``trades`` as floats, NaN dropped; a clear error otherwise."""
    if isinstance(trades, pd.Series):
        return trades.astype("float64").dropna()
    if not isinstance(trades, pd.DataFrame):
        raise TypeError(f"trades must be a DataFrame with a 'pnl' or 'return' column, not {type(trades).__name__}")
    lower = {str(c).lower(): c for c in trades.columns}
    for name in ("pnl", "return"):
        if name in lower:
            return trades[lower[name]].astype("float64").dropna()
    raise ValueError(f"trades must have a 'pnl' or 'return' column; got columns {list(trades.columns)}")


def win_rate(trades: pd.DataFrame | pd.Series) -> float:
    """Fraction of trades with a positive pnl (or return); NaN when there are no trades."""
    v = trade_values(trades)
    return float((v > 0).mean()) if len(v) else float("nan")


def profit_factor(trades: pd.DataFrame | pd.Series) -> float:
    """Gross profit over gross loss; NaN when there is no losing trade (or no trade)."""
    v = trade_values(trades)
    gain, loss = float(v[v > 0].sum()), float(-v[v < 0].sum())
    return gain / loss if np.isfinite(loss) and loss > 0 and np.isfinite(gain) else float("nan")


def _weights(positions: pd.DataFrame | pd.Series) -> pd.DataFrame:
    if isinstance(positions, pd.Series):
        return positions.astype("float64").to_frame()
    if not isinstance(positions, pd.DataFrame):
        raise TypeError(f"positions must be a DataFrame or Series, not {type(positions).__name__}")
    pos = positions.astype("float64")
    lower = {str(c).lower(): c for c in pos.columns}
    if "cash" in lower:
        total = pos.sum(axis=1)
        pos = pos.drop(columns=lower["cash"]).div(total.where(total != 0), axis=0)
    return pos


def exposure(positions: pd.DataFrame | pd.Series) -> float:
    """Fraction of bars with any non-zero position (a ``cash`` column is ignored)."""
    w = _weights(positions)
    return float((w.fillna(0.0) != 0).any(axis=1).mean()) if len(w) else float("nan")


def turnover(positions: pd.DataFrame | pd.Series, *, periods_per_year: float | None = 252) -> float:
    """Traded notional as a fraction of equity: mean over bars of ``sum_i |w_i,t - w_i,t-1|``.

    The first bar is measured from no position, so entering 100% once counts 1.0. Multiplied
    by ``periods_per_year`` (annual turnover; 2.0 = trading twice the equity a year) unless it
    is ``None``.
    """
    w = _weights(positions).fillna(0.0)
    if w.empty:
        return float("nan")
    traded = w.diff().fillna(w).abs().sum(axis=1).mean()
    return float(traded * (periods_per_year if periods_per_year is not None else 1.0))
