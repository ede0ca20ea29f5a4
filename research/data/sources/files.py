"""The user's own CSV or Parquet files.

Expected tree: one file per symbol in a directory, named ``<SYMBOL>.csv``, ``<SYMBOL>.csv.gz``
or ``<SYMBOL>.parquet``, with a date/time column (or a datetime index for Parquet) and OHLCV
columns. Column names are matched case-insensitively against common spellings (``Date``,
``Open``, ``Adj Close``, ``Vol``...); ``column_map`` maps anything else. Naive timestamps are
read in ``tz`` (UTC by default) and converted to UTC; daily bars keep their local date.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from research.data.calendars import CRYPTO, EQUITY, Calendar
from research.data.errors import SchemaError, SymbolNotFoundError
from research.data.sources.base import Source

__all__ = ["FilesSource"]

_ALIASES = {
    "timestamp": ["timestamp", "date", "datetime", "time", "day"],
    "open": ["open", "o"],
    "high": ["high", "h"],
    "low": ["low", "l"],
    "close": ["close", "c", "price", "last"],
    "adj_close": ["adj_close", "adj close", "adjclose", "adjusted_close", "adjusted close"],
    "volume": ["volume", "vol", "v"],
}
_SUFFIXES = (".parquet", ".csv", ".csv.gz")


class FilesSource(Source):
    """Bars from files in ``directory``.

    Parameters
    ----------
    directory : path
        Folder holding one file per symbol.
    column_map : dict, optional
        ``{"their column": "our column"}`` for names the aliases do not cover.
    tz : str
        Timezone of naive timestamps in the files.
    calendar : {"equity", "crypto"}, optional
        Calendar of every symbol; by default ``*-USD`` symbols are crypto, others equity.
    name : str
        Name of this source in the store (default ``"files"``).
    """

    name = "files"

    def __init__(
        self,
        directory: str | Path,
        *,
        column_map: dict[str, str] | None = None,
        tz: str = "UTC",
        calendar: str | None = None,
        name: str = "files",
    ) -> None:
        self.directory = Path(directory)
        self.column_map = dict(column_map or {})
        self.tz = tz
        self._calendar = calendar
        self.name = name

    def calendar(self, symbol: str) -> Calendar:
        if self._calendar:
            return {"equity": EQUITY, "crypto": CRYPTO}[self._calendar]
        return CRYPTO if symbol.endswith("-USD") else EQUITY

    def symbols(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        out = set()
        for p in self.directory.iterdir():
            for suffix in _SUFFIXES:
                if p.name.endswith(suffix):
                    out.add(p.name[: -len(suffix)])
        return sorted(out)

    def file_for(self, symbol: str) -> Path:
        """The file holding ``symbol``; raises naming the paths tried."""
        tried = [self.directory / f"{symbol}{s}" for s in _SUFFIXES]
        for path in tried:
            if path.is_file():
                return path
        raise SymbolNotFoundError(
            f"no file for symbol {symbol!r}: tried {', '.join(str(p) for p in tried)}"
        )

    def provenance(self, symbol: str) -> str:
        return f"files:{self.file_for(symbol)}"

    def fetch(self, symbol, start, end, interval="1d") -> pd.DataFrame:
        path = self.file_for(symbol)
        try:
            if path.suffix == ".parquet":
                raw = pd.read_parquet(path)
                if isinstance(raw.index, pd.DatetimeIndex):
                    raw = raw.reset_index()
            else:
                raw = pd.read_csv(path)
        except Exception as exc:  # pandas raises many types for unreadable files
            raise SchemaError(f"{path}: cannot be read as a table ({exc})") from exc
        frame = self._map_columns(raw, path)
        ts = pd.to_datetime(frame.pop("timestamp"), errors="coerce")
        if getattr(ts.dt, "tz", None) is None:
            ts = ts.dt.tz_localize(self.tz, ambiguous="NaT", nonexistent="NaT")
        if interval in ("1d", "1wk", "1mo") and self.tz != "UTC":
            ts = ts.dt.tz_localize(None).dt.normalize().dt.tz_localize("UTC")
        frame.index = pd.DatetimeIndex(ts.dt.tz_convert("UTC"), name="timestamp")
        if start is not None:
            frame = frame[~(frame.index < pd.Timestamp(start))]
        if end is not None:
            frame = frame[~(frame.index > pd.Timestamp(end))]
        return frame

    def _map_columns(self, raw: pd.DataFrame, path: Path) -> pd.DataFrame:
        lower = {str(c).strip().lower(): c for c in raw.columns}
        mapping: dict[str, str] = {}
        for theirs, ours in self.column_map.items():
            if theirs not in raw.columns:
                raise SchemaError(f"{path}: column_map names {theirs!r}, which the file lacks (it has {list(raw.columns)})")
            mapping[theirs] = ours
        for ours, aliases in _ALIASES.items():
            if ours in mapping.values():
                continue
            for alias in aliases:
                if alias in lower and lower[alias] not in mapping:
                    mapping[lower[alias]] = ours
                    break
        frame = raw.rename(columns=mapping)
        needed = ["timestamp", "open", "high", "low", "close", "volume"]
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise SchemaError(
                f"{path}: cannot find column(s) {missing} among {list(raw.columns)}; "
                "pass column_map={'their name': 'timestamp'|'open'|...}"
            )
        return frame[[c for c in [*needed, "adj_close"] if c in frame.columns]]
