"""The user's own CSV or Parquet files.

Expected tree: one file per symbol in a directory, named ``<SYMBOL>.csv``, ``<SYMBOL>.csv.gz``
or ``<SYMBOL>.parquet``, with a date/time column (or a datetime index for Parquet) and OHLCV
columns. Column names are matched case-insensitively against common spellings (``Date``,
``Open``, ``Adj Close``, ``Vol``...); ``column_map`` maps anything else. Naive timestamps are
read in ``tz`` (UTC by default) and converted to UTC; daily bars keep their local date.
Timestamps with explicit UTC offsets are read as written, even when the offset changes within
the column (an ``America/New_York`` export has ``-05:00`` in winter and ``-04:00`` in summer):
daily, weekly and monthly bars take the date as written (the exchange's session date), hourly
bars their instant in UTC.

CSV files may start with a byte-order mark and use ``;`` (with decimal commas), tab or ``|``
as separator. Dates written day first (``31/01/2024``) are read day first when reading them
month first would leave some unparsed.

A file that cannot be read as bars (empty, binary, not a table, missing or repeated columns)
raises :class:`~research.data.errors.SchemaError` naming the file, what was found and what is
expected; no other exception leaves :meth:`FilesSource.fetch`.
"""

from __future__ import annotations

import gzip
import re
import warnings
from pathlib import Path

import pandas as pd

from research.data.calendars import Calendar, calendar_of, get_calendar
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
_DAILY_OR_LONGER = ("1d", "1wk", "1mo")
#: A trailing UTC offset (``Z``, ``+01:00``, ``-0500``) after a time of day.
_OFFSET = re.compile(r"(?<=\d)\s*(?:Z|UTC|GMT|[+-]\d{2}:?\d{2})$", re.IGNORECASE)
_EXPECTED = "a CSV or Parquet table with a header row: date, open, high, low, close, volume (adj close optional)"


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
            return get_calendar(self._calendar)
        return calendar_of(symbol)

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
        raw = self._read(path)
        try:
            frame = self._map_columns(raw, path)
            stamps = frame.pop("timestamp")
            frame.index = pd.DatetimeIndex(_in_range(self._to_utc(stamps, interval)), name="timestamp")
        except SchemaError:
            raise
        except Exception as exc:  # pandas raises many types on odd content
            raise SchemaError(f"{path}: cannot be read as bars ({type(exc).__name__}: {str(exc)[:160]}); expected {_EXPECTED}") from None
        if start is not None:
            frame = frame[~(frame.index < pd.Timestamp(start))]
        if end is not None:
            frame = frame[~(frame.index > pd.Timestamp(end))]
        return frame

    def _read(self, path: Path) -> pd.DataFrame:
        try:
            if path.stat().st_size == 0:
                raise SchemaError(f"{path}: the file is empty; expected {_EXPECTED}")
            if path.suffix != ".parquet" and _looks_binary(path):
                raise SchemaError(f"{path}: is not a text CSV file (binary or not UTF-8); expected {_EXPECTED}")
            if path.suffix == ".parquet":
                raw = pd.read_parquet(path)
                if isinstance(raw.index, pd.DatetimeIndex):
                    raw = raw.reset_index()
            else:
                raw = pd.read_csv(path, encoding="utf-8-sig")  # -sig: Excel's byte-order mark
                if raw.shape[1] == 1:  # another separator: ";" (with decimal commas), tab or "|"
                    head = str(raw.columns[0])
                    sep = next((c for c in (";", "\t", "|") if c in head), None)
                    if sep is not None:
                        raw = pd.read_csv(path, encoding="utf-8-sig", sep=sep, decimal="," if sep == ";" else ".")
        except SchemaError:
            raise
        except UnicodeDecodeError:
            raise SchemaError(f"{path}: is not a text CSV file (binary or not UTF-8); expected {_EXPECTED}") from None
        except Exception as exc:  # pandas raises many types for unreadable files
            raise SchemaError(f"{path}: cannot be read as a table ({str(exc)[:160]}); expected {_EXPECTED}") from None
        if raw.empty:
            raise SchemaError(f"{path}: holds no rows (columns {list(raw.columns)[:12]}); expected {_EXPECTED}")
        return raw

    def _to_utc(self, stamps: pd.Series, interval: str) -> pd.Series:
        """Timestamps in UTC; daily and longer bars at 00:00 UTC of the date as written."""
        daily = interval in _DAILY_OR_LONGER
        text = stamps.astype("string") if stamps.dtype == object or isinstance(stamps.dtype, pd.StringDtype) else None
        if daily and text is not None and text.str.strip().str.contains(_OFFSET).fillna(False).any():
            # the session date is the date written in the file, whatever the offset says
            wall = pd.to_datetime(text.str.strip().str.replace(_OFFSET, "", regex=True), errors="coerce", format="mixed")
            return wall.dt.normalize().dt.tz_localize("UTC")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Could not infer format", UserWarning)
            warnings.filterwarnings("ignore", "Parsing dates in", UserWarning)
            try:
                ts = pd.to_datetime(stamps, errors="coerce")
            except ValueError:  # offsets that change within the column (DST): each is a valid instant
                ts = pd.to_datetime(stamps, errors="coerce", utc=True)
            if text is not None and ts.isna().any() and text.str.contains("/", regex=False).fillna(False).any():
                # day-first dates (31/01/2024): month-first reading leaves days above 12 unparsed
                first = pd.to_datetime(stamps, errors="coerce", dayfirst=True)
                if first.isna().sum() < ts.isna().sum():
                    ts = first
        if not isinstance(ts.dtype, pd.DatetimeTZDtype) and not pd.api.types.is_datetime64_dtype(ts.dtype):
            ts = pd.to_datetime(ts, errors="coerce", utc=True)
        if getattr(ts.dt, "tz", None) is None:
            ts = ts.dt.tz_localize(self.tz, ambiguous="NaT", nonexistent="NaT")
            if daily and self.tz != "UTC":
                ts = ts.dt.tz_localize(None).dt.normalize().dt.tz_localize("UTC")
        elif daily:
            ts = ts.dt.tz_localize(None).dt.normalize().dt.tz_localize("UTC")
        return ts.dt.tz_convert("UTC")

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
                f"{path}: cannot find column(s) {missing} among {list(raw.columns)[:20]}; expected {_EXPECTED}, "
                "or pass column_map={'their name': 'timestamp'|'open'|...}"
            )
        wanted = [c for c in [*needed, "adj_close"] if c in frame.columns]
        twice = sorted({str(c) for c in frame.columns if c in wanted and list(frame.columns).count(c) > 1})
        if twice:
            raise SchemaError(f"{path}: more than one column maps to {twice} (columns {list(raw.columns)[:20]}); "
                              "rename or drop one, or pass column_map")
        return frame[wanted]


def _looks_binary(path: Path, size: int = 8192) -> bool:
    """``True`` when the start of a (possibly gzipped) CSV file is not UTF-8 text."""
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as fh:
                head = fh.read(size)
        else:
            with open(path, "rb") as fh:
                head = fh.read(size)
    except (OSError, EOFError):  # not a gzip file, or a truncated one
        return True
    if b"\x00" in head:
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start < len(head) - 4  # a character cut at the end of the chunk is fine
    return False


def _in_range(ts: pd.Series) -> pd.Series:
    """Timestamps outside what nanosecond precision holds (before 1678, after 2261) become NaT.

    They are then quarantined as ``BAD_TIMESTAMP`` like any other unreadable timestamp.
    """
    lo, hi = pd.Timestamp("1678-01-01", tz="UTC"), pd.Timestamp("2261-12-31", tz="UTC")
    return ts.where((ts >= lo) & (ts <= hi)).astype("datetime64[ns, UTC]")
