"""Labels: what a model is asked to predict, kept apart from the features.

Labels look forward by construction, so they live here and never in a feature set. The horizon
is an explicit argument, recorded in ``attrs["horizon"]``, and the last ``horizon`` rows are NaN
(their future is unknown). Walk-forward splits must keep an embargo of at least the horizon
between training and evaluation windows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["forward_returns", "direction"]

Frame = pd.DataFrame | pd.Series


def _check(close: Frame, horizon: int) -> None:
    if not isinstance(close, pd.DataFrame | pd.Series):
        raise TypeError(f"close must be a pandas DataFrame or Series, not {type(close).__name__}")
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
        raise ValueError(f"horizon must be an integer >= 1 (bars ahead), got {horizon!r}")


def forward_returns(close: Frame, *, horizon: int, log: bool = False) -> Frame:
    """Return from the close of ``t`` to the close of ``t + horizon``, stamped at ``t``.

    Parameters
    ----------
    close : DataFrame or Series
        Prices (wide or one symbol).
    horizon : int
        Bars ahead (>= 1).
    log : bool
        Log return instead of simple.

    Returns
    -------
    DataFrame or Series
        Same shape as ``close``; NaN for the last ``horizon`` rows and wherever either end is
        missing. ``attrs``: ``label="forward_return"``, ``horizon``, ``log``.
    """
    _check(close, horizon)
    close = close.astype("float64")
    ratio = close.shift(-int(horizon)) / close
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log(ratio.where(ratio > 0)) if log else ratio - 1.0
    out.attrs = {"label": "forward_return", "horizon": int(horizon), "log": bool(log)}
    return out


def direction(close: Frame, *, horizon: int, threshold: float = 0.0) -> Frame:
    """Binary direction label: 1.0 when the forward simple return exceeds ``threshold``, else 0.0.

    Parameters
    ----------
    close : DataFrame or Series
        Prices.
    horizon : int
        Bars ahead (>= 1).
    threshold : float
        Decimal return that counts as "up" only when strictly exceeded (e.g. 0.001 = 10 bp).

    Returns
    -------
    DataFrame or Series
        Float 1.0 / 0.0, NaN where the forward return is unknown (the last ``horizon`` rows and
        gaps). ``attrs``: ``label="direction"``, ``horizon``, ``threshold``.
    """
    fwd = forward_returns(close, horizon=horizon)
    out = (fwd > threshold).astype("float64").where(fwd.notna())
    out.attrs = {"label": "direction", "horizon": int(horizon), "threshold": float(threshold)}
    return out
