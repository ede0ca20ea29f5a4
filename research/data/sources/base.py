"""The interface every market-data source implements.

A source turns ``(symbol, start, end, interval)`` into a frame in the workbench's OHLCV schema
(see :mod:`research.types`), *before* validation: the store validates every ingest. A source
raises the typed errors of :mod:`research.data.errors`, never returns an empty frame as data.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import pandas as pd

from research.data.calendars import Calendar

__all__ = ["Source", "INTERVALS"]

#: Intervals the workbench understands, with their bar length.
INTERVALS: dict[str, pd.Timedelta] = {
    "1h": pd.Timedelta(hours=1),
    "1d": pd.Timedelta(days=1),
    "1wk": pd.Timedelta(weeks=1),
    "1mo": pd.Timedelta(days=30),
}


class Source(ABC):
    """A market-data source.

    Attributes
    ----------
    name : str
        Short name used in the store's paths and in ``load_prices(source=...)``.
    live : bool
        ``True`` when fetching needs the network (the store then applies freshness TTLs and
        falls back to the stored copy, marked stale, when the source fails).
    synthetic : bool
        ``True`` when the data is generated, not observed; shown wherever the data appears.
    """

    name: ClassVar[str]
    live: ClassVar[bool] = False
    synthetic: ClassVar[bool] = False

    @abstractmethod
    def fetch(
        self,
        symbol: str,
        start: pd.Timestamp | None,
        end: pd.Timestamp | None,
        interval: str = "1d",
    ) -> pd.DataFrame:
        """Download bars for ``symbol`` with ``start <= timestamp <= end`` (either may be open).

        Returns
        -------
        pandas.DataFrame
            Raw bars in the OHLCV schema (not yet validated; may hold bad rows).
        """

    @abstractmethod
    def calendar(self, symbol: str) -> Calendar:
        """The trading calendar of ``symbol`` (equity sessions or 24/7 crypto)."""

    def symbols(self) -> list[str]:
        """Symbols the source can list without the network (empty when it cannot)."""
        return []

    def probe(self, symbols: list[str], *, interval: str = "1d", timeout: float = 5.0) -> None:
        """Check, quickly, that the source can serve ``symbols`` at ``interval``; raise if not.

        Offline sources always can. A live source overrides this with one cheap request
        bounded by ``timeout`` seconds, raising the typed errors of :mod:`research.data.errors`.
        """
        if interval not in INTERVALS:
            raise ValueError(f"unknown interval {interval!r}; expected one of {list(INTERVALS)}")

    def provenance(self, symbol: str) -> str:
        """One line saying where the data comes from."""
        return f"{self.name}:{symbol}"
