"""Aliases for the shapes shared across the workbench.

Data contracts
--------------
``OHLCV``
    One symbol's bars: a ``DatetimeIndex`` named ``timestamp`` (``datetime64[ns, UTC]``; a daily
    bar is stamped at 00:00 UTC of its session date) and float64 columns ``open``, ``high``,
    ``low``, ``close``, ``volume`` plus ``adj_close`` where the source has it::

                                      open     high      low    close      volume
        timestamp
        1999-01-04 00:00:00+00:00  1229.23  1248.81  1219.10  1228.10  8.770000e+08

``Prices``
    A wide frame: the same index, one column per symbol (for example the close matrix).
``Returns``
    Decimal, non-cumulative simple returns, wide like ``Prices``; NaN where either bar is
    missing (gaps are never filled into 0% moves).
``Fields``
    Wide ``Prices`` per field name (``"open"``, ``"high"``, ``"low"``, ``"close"``...), all on
    one index and one set of columns: what :func:`research.backtest.as_fields` returns and the
    sizers take.
``Weights``
    Wide float frame of target weights (fraction of equity per symbol; negative is short).

A strategy's signals have their own class, :class:`research.strategies.signals.Signals`
(direction, entries and exits on the ``Prices`` grid).
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

OHLCV = pd.DataFrame
Prices = pd.DataFrame
Returns = pd.DataFrame
Fields = Mapping[str, Prices]
Weights = pd.DataFrame

__all__ = ["OHLCV", "Prices", "Returns", "Fields", "Weights"]
