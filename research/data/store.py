"""The market-data store: validated Parquet datasets with a manifest.

Layout under the data directory (``WORKBENCH_DATA_DIR``, default ``data/``)::

    store/<source>/<interval>/<SYMBOL>.parquet       validated bars (the schema of research.types)
    quarantine/<source>/<interval>/<SYMBOL>.parquet  rejected rows with reason codes, appended

Each dataset's manifest travels *inside* its Parquet file (key ``workbench`` of the schema
metadata): rows, first and last bar, fetched at, library versions, provenance and the sha256 of
the content. One file holds data and manifest, so a single atomic rename publishes both:

* writes go to a temporary file in the same directory, are fsynced, then ``os.replace``-d over
  the old file while a per-dataset lock (``filelock``) is held; readers need no lock and see
  either the whole old or the whole new version, even when a writer is killed mid-write;
* an ingest that fails leaves the stored copy untouched.

Live sources are refetched when the copy is older than the freshness TTL, and only for the
missing range (the last stored bar is refetched, since it may have been partial). When a live
source fails, the stored copy is returned with ``attrs["stale"] = True`` and a warning saying
how old it is.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from urllib.parse import quote, unquote

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from filelock import FileLock, Timeout

from research.config import get_settings
from research.data.errors import InvalidRequestError, SourceError, StoreError, SymbolNotFoundError
from research.data.schema import ValidationReport, validate_ohlcv
from research.data.sources.base import INTERVALS, Source

__all__ = ["Store", "IngestResult", "StaleDataWarning", "content_sha256"]

log = logging.getLogger(__name__)
_META_KEY = b"workbench"
_UMASK = os.umask(0o022)
os.umask(_UMASK)


class StaleDataWarning(UserWarning):
    """A live source failed and the stored copy was served instead."""


@dataclass
class IngestResult:
    """What :meth:`Store.ingest` did for one symbol."""

    frame: pd.DataFrame
    manifest: dict
    report: ValidationReport | None
    fetched: bool
    stale: bool = False


def content_sha256(frame: pd.DataFrame) -> str:
    """sha256 of a frame's content: index (int64 ns) and each column's float64 bytes, in order."""
    h = hashlib.sha256()
    h.update(",".join(map(str, frame.columns)).encode())
    h.update(np.ascontiguousarray(frame.index.asi8).tobytes())
    for col in frame.columns:
        h.update(np.ascontiguousarray(frame[col].to_numpy(dtype="float64")).tobytes())
    return h.hexdigest()


def _versions(extra: list[str]) -> dict[str, str]:
    out = {}
    for name in ["quant-workbench", "pandas", "pyarrow", "numpy", *extra]:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return out


def _now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC")


def _utc(ts: object) -> pd.Timestamp | None:
    if ts is None:
        return None
    t = pd.Timestamp(ts)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


class Store:
    """Validated, cached market data on disk.

    Parameters
    ----------
    root : path, optional
        The data directory; defaults to ``Settings.data_dir``.
    lock_timeout : float
        Seconds to wait for another writer of the same dataset.
    freshness_ttl : float, optional
        Seconds a live dataset stays fresh; defaults to ``Settings.freshness_ttl``.
    """

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        *,
        lock_timeout: float = 120.0,
        freshness_ttl: float | None = None,
    ) -> None:
        settings = get_settings()
        self.root = Path(root) if root is not None else settings.data_dir
        self.lock_timeout = lock_timeout
        self.freshness_ttl = settings.freshness_ttl if freshness_ttl is None else freshness_ttl

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    # ----------------------------------------------------------------- paths
    def path(self, source: str, interval: str, symbol: str, *, kind: str = "store") -> Path:
        """File of one dataset (``kind`` is ``"store"`` or ``"quarantine"``)."""
        if interval not in INTERVALS:
            raise InvalidRequestError(f"unknown interval {interval!r}; expected one of {list(INTERVALS)}")
        return self.root / kind / source / interval / f"{quote(symbol, safe='^=.-_')}.parquet"

    # ------------------------------------------------------------- low level
    def _write_atomic(self, path: Path, table: pa.Table) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.fchmod(fd, 0o666 & ~_UMASK)
        except OSError as exc:
            raise StoreError(f"cannot write to the store at {path.parent}: {exc}") from exc
        try:
            with os.fdopen(fd, "wb") as fh:
                pq.write_table(table, fh, compression="zstd")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except BaseException as exc:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise StoreError(f"writing {path} failed ({exc}); the previous version is intact") from exc
            raise

    def _lock(self, path: Path) -> FileLock:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create {path.parent}: {exc}") from exc
        return FileLock(str(path) + ".lock", timeout=self.lock_timeout)

    def write(
        self, source: str, interval: str, symbol: str, frame: pd.DataFrame, *, meta: dict | None = None
    ) -> dict:
        """Atomically replace a dataset with ``frame`` (already validated) and return its manifest."""
        path = self.path(source, interval, symbol)
        manifest = {
            "source": source,
            "interval": interval,
            "symbol": symbol,
            "rows": int(len(frame)),
            "first": frame.index[0].isoformat() if len(frame) else None,
            "last": frame.index[-1].isoformat() if len(frame) else None,
            "columns": list(frame.columns),
            "sha256": content_sha256(frame),
            "fetched_at": _now().isoformat(),
            **(meta or {}),
        }
        table = pa.Table.from_pandas(frame, preserve_index=True)
        table = table.replace_schema_metadata(
            {**(table.schema.metadata or {}), _META_KEY: json.dumps(manifest).encode()}
        )
        try:
            with self._lock(path):
                self._write_atomic(path, table)
        except Timeout as exc:
            raise StoreError(f"{source}/{interval}/{symbol}: another writer holds the lock") from exc
        return manifest

    def manifest(self, source: str, interval: str, symbol: str) -> dict | None:
        """The manifest of a dataset, or ``None`` when it is not stored."""
        path = self.path(source, interval, symbol)
        try:
            with open(path, "rb") as fh:
                meta = pq.read_schema(fh).metadata or {}
        except FileNotFoundError:
            return None
        except (OSError, pa.ArrowInvalid) as exc:
            raise StoreError(f"cannot read {path}: {exc}") from exc
        return json.loads(meta[_META_KEY]) if _META_KEY in meta else None

    def read(
        self,
        source: str,
        interval: str,
        symbol: str,
        *,
        start: object = None,
        end: object = None,
        columns: list[str] | None = None,
    ) -> pd.DataFrame:
        """Read a stored dataset (optionally a time range and some columns)."""
        path = self.path(source, interval, symbol)
        try:
            table = _read_table(path, columns)
        except FileNotFoundError:
            raise SymbolNotFoundError(
                f"no stored dataset for {symbol!r} ({source}, {interval}) under {self.root}; "
                f"fetch it with load_prices or `workbench data fetch {symbol} --source {source}`"
            ) from None
        except (OSError, pa.ArrowInvalid) as exc:
            raise StoreError(f"cannot read {path}: {exc}") from exc
        frame = table.to_pandas()
        meta = table.schema.metadata or {}
        frame.attrs = {}
        if _META_KEY in meta:
            m = json.loads(meta[_META_KEY])
            frame.attrs.update(
                source=source, symbol=symbol, interval=interval, synthetic=m.get("synthetic", False),
                sha256=m["sha256"], provenance=m.get("provenance", ""),
            )
        s, e = _utc(start), _utc(end)
        if s is not None or e is not None:
            frame = frame.loc[s:e]
        return frame

    def read_field(
        self, source: str, interval: str, symbols: list[str], field: str = "close"
    ) -> tuple[dict[str, pd.Series], dict[str, dict]]:
        """One column of many stored datasets, with their manifests, in one read per file.

        Symbols not stored are left out of both dicts (the caller ingests them).
        """
        series: dict[str, pd.Series] = {}
        manifests: dict[str, dict] = {}
        for sym in symbols:
            path = self.path(source, interval, sym)
            try:
                table = _read_table(path, ["timestamp", field])
            except FileNotFoundError:
                continue
            except (OSError, pa.ArrowInvalid, KeyError) as exc:
                raise StoreError(f"cannot read {field!r} from {path}: {exc}") from exc
            meta = table.schema.metadata or {}
            manifests[sym] = json.loads(meta[_META_KEY]) if _META_KEY in meta else {}
            values = table.column(field).to_numpy()
            index = pd.DatetimeIndex(table.column("timestamp").to_numpy(), name="timestamp").tz_localize("UTC")
            series[sym] = pd.Series(values, index=index, name=sym)
        return series, manifests

    def read_quarantine(self, source: str, interval: str, symbol: str) -> pd.DataFrame:
        """Rows quarantined so far for a dataset (empty frame when none)."""
        path = self.path(source, interval, symbol, kind="quarantine")
        if not path.exists():
            return pd.DataFrame(columns=["open", "high", "low", "close", "volume", "reason", "detail", "ingested_at"])
        return pq.read_table(path).to_pandas()

    def _append_quarantine(self, source: str, interval: str, symbol: str, rows: pd.DataFrame) -> None:
        if rows.empty:
            return
        path = self.path(source, interval, symbol, kind="quarantine")
        rows = rows.assign(ingested_at=_now().isoformat())
        with self._lock(path):
            if path.exists():
                old = pq.read_table(path).to_pandas()
                rows = pd.concat([old, rows])
            self._write_atomic(path, pa.Table.from_pandas(rows, preserve_index=True))

    def list(self) -> pd.DataFrame:
        """One row per stored dataset with its manifest fields."""
        rows = []
        base = self.root / "store"
        for path in sorted(base.glob("*/*/*.parquet")) if base.exists() else []:
            source, interval = path.parent.parent.name, path.parent.name
            m = self.manifest(source, interval, unquote(path.stem))
            if m:
                rows.append(m)
        cols = ["source", "interval", "symbol", "rows", "first", "last", "quarantined", "flags", "synthetic", "fetched_at", "sha256"]
        return pd.DataFrame(rows).reindex(columns=cols) if rows else pd.DataFrame(columns=cols)

    # ---------------------------------------------------------------- ingest
    def ingest(
        self,
        source: Source,
        symbol: str,
        *,
        start: object = None,
        end: object = None,
        interval: str = "1d",
        refresh: bool = False,
    ) -> IngestResult:
        """Bring a dataset up to date and return the requested range.

        A static source (sample, synthetic, files) is ingested once and re-read afterwards;
        ``refresh=True`` ingests again. A live source is refetched when the stored copy is older
        than the freshness TTL or does not cover ``start``; only the missing range is fetched.
        """
        start, end = _utc(start), _utc(end)
        if start is not None and end is not None and start > end:
            raise InvalidRequestError(f"{symbol}: start {start.date()} is after end {end.date()}")
        if interval not in INTERVALS:
            raise InvalidRequestError(f"unknown interval {interval!r}; expected one of {list(INTERVALS)}")
        m = self.manifest(source.name, interval, symbol)
        if m is not None and not refresh and self._fresh(source, m, start):
            return IngestResult(self.read(source.name, interval, symbol, start=start, end=end), m, None, False)

        fetch_start = start
        incremental = m is not None and m["rows"] > 0 and source.live and not refresh
        if incremental and (start is None or start >= pd.Timestamp(m["first"])):
            fetch_start = pd.Timestamp(m["last"])
        try:
            # A static source is stored whole and sliced on read, so one ingest serves every range;
            # a live one fetches from the requested or last stored bar up to now.
            raw = source.fetch(symbol, fetch_start, None, interval) if source.live else source.fetch(symbol, None, None, interval)
        except SourceError as exc:
            if m is None:
                raise
            age = _now() - pd.Timestamp(m["fetched_at"])
            warnings.warn(
                f"{source.name} failed for {symbol} ({exc}); serving the stored copy fetched "
                f"{_age(age)} ago (last bar {m['last']})",
                StaleDataWarning,
                stacklevel=2,
            )
            frame = self.read(source.name, interval, symbol, start=start, end=end)
            frame.attrs.update(stale=True, stale_age_s=age.total_seconds())
            return IngestResult(frame, m, None, False, stale=True)
        result = validate_ohlcv(
            raw, symbol=symbol, source=source.name, interval=interval, calendar=source.calendar(symbol)
        )
        clean = result.clean
        path = self.path(source.name, interval, symbol)
        with self._lock(path.with_suffix(".ingest")):
            if incremental:
                old = self.read(source.name, interval, symbol)
                clean = pd.concat([old[~old.index.isin(clean.index)], clean]).sort_index()
            meta = {
                "provenance": source.provenance(symbol),
                "synthetic": source.synthetic,
                "calendar": source.calendar(symbol).name,
                "versions": _versions(getattr(source, "libraries", [])),
                "quarantined": (m or {}).get("quarantined", 0) * incremental + result.report.quarantined,
                "flags": int(sum(result.report.flags.values())),
                "gaps": result.report.gaps,
                "last_report": result.report.to_dict(),
            }
            self._append_quarantine(source.name, interval, symbol, result.quarantine)
            manifest = self.write(source.name, interval, symbol, clean, meta=meta)
        frame = self.read(source.name, interval, symbol, start=start, end=end)
        return IngestResult(frame, manifest, result.report, True)

    def is_fresh(self, source: Source, m: dict, start: pd.Timestamp | None = None) -> bool:
        """Whether a stored dataset (its manifest ``m``) can be served without fetching."""
        return self._fresh(source, m, _utc(start))

    def _fresh(self, source: Source, m: dict, start: pd.Timestamp | None) -> bool:
        if not source.live:
            return True
        if start is not None and m["first"] is not None and start < pd.Timestamp(m["first"]) - pd.Timedelta(days=7):
            return False
        age = (_now() - pd.Timestamp(m["fetched_at"])).total_seconds()
        return age < self.freshness_ttl


def _read_table(path: Path, columns: list[str] | None) -> pa.Table:
    # One open file handle for footer and data: a concurrent rename cannot mix two versions.
    with open(path, "rb") as fh:
        return pq.read_table(fh, columns=columns)


def _age(delta: pd.Timedelta) -> str:
    secs = delta.total_seconds()
    if secs < 3600:
        return f"{secs / 60:.0f} min"
    if secs < 86400 * 2:
        return f"{secs / 3600:.1f} h"
    return f"{secs / 86400:.1f} days"
