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
* an ingest that fails leaves the stored copy untouched;
* an ingest takes the dataset's ingest lock, then reads what is stored *now* and merges its
  rows into it, so concurrent ingests of the same dataset (even its first) all keep their rows;
* every read checks the content against the sha256 of the manifest (see
  :mod:`research.data.integrity`): a damaged file raises :class:`CorruptDatasetError`;
* temporary files of writers killed mid-write are removed by the next write of the dataset;
* a read-only data folder can still be read; writing to it raises :class:`StoreError`.

Quarantined rows are keyed by timestamp, values and reason: ingesting the same bad row again
(``refresh=True``, or the refetched last bar of a live source) does not add it twice, and the
manifest's ``quarantined`` is the number of rows in the quarantine file.

Live sources are refetched when the copy is older than the freshness TTL, and only for the
missing range (the last stored bar is refetched, since it may have been partial). Bars a live
source marks as still forming (``frame.attrs["partial"]``: today's bar before the session
closes) are never stored as final: they are left out and listed in the manifest's
``partial_excluded``, and the next fetch brings them once complete. When a live source fails, the stored copy is returned with ``attrs["stale"] = True`` and a warning saying
how old it is. What an ingest fetches and records, apart from the files, is in
:mod:`research.data.ingest`.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, unquote

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from filelock import FileLock, Timeout

from research.atomic import PLAIN_FILE_MODE, atomic_write, remove_orphans
from research.config import get_settings
from research.data.errors import (
    CorruptDatasetError,
    InvalidRequestError,
    SchemaError,
    SourceError,
    StoreError,
    SymbolNotFoundError,
)
from research.data.ingest import (
    IngestResult,
    StaleDataWarning,
    age_text,
    fetch_for_ingest,
    ingest_meta,
)
from research.data.integrity import (
    check_digest,
    column_hashes,
    content_sha256,
    decode_manifest,
    encode_manifest,
    parquet_bytes,
    read_parquet,
    read_verified,
    table_with_digest,
    verify_columns,
    verify_frame,
)
from research.data.schema import ValidationResult, validate_ohlcv
from research.data.sources.base import INTERVALS, Source
from research.timeutil import to_utc, to_utc_index

__all__ = ["Store", "IngestResult", "StaleDataWarning", "content_sha256"]

log = logging.getLogger(__name__)
_READ_ONLY = {errno.EROFS, errno.EACCES, errno.EPERM}


def _now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC")


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
        return self.root / kind / source / interval / dataset_file_name(symbol)

    # ------------------------------------------------------------- low level
    def _dataset(self, source: str, interval: str, symbol: str) -> str:
        return f"{source}/{interval}/{symbol}"

    def _unwritable(self, where: Path, exc: OSError, what: str) -> StoreError:
        reason = exc.strerror or str(exc)
        if exc.errno in _READ_ONLY:
            return StoreError(
                f"cannot {what}: the data folder {self.root} is not writable ({reason} at {where}); make it "
                "writable or point WORKBENCH_DATA_DIR at a writable folder (stored data can still be read)"
            )
        return StoreError(f"cannot {what}: {reason} at {where}")

    def _write_atomic(self, path: Path, table: pa.Table) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._unwritable(path.parent, exc, f"create {path.parent}") from exc
        try:
            atomic_write(path, parquet_bytes(table), mode=PLAIN_FILE_MODE, mkdir=False)
        except OSError as exc:
            if exc.errno in _READ_ONLY:
                raise self._unwritable(path.parent, exc, f"write {path.name}") from exc
            raise StoreError(f"writing {path} failed ({exc}); the previous version is intact") from exc

    def _lock(self, path: Path) -> FileLock:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._unwritable(path.parent, exc, f"create {path.parent}") from exc
        return FileLock(str(path) + ".lock", timeout=self.lock_timeout)

    @contextmanager
    def _locked(self, path: Path, what: str) -> Iterator[None]:
        """Hold ``path``'s lock; a timeout or an unwritable folder raises :class:`StoreError`."""
        lock = self._lock(path)
        try:
            lock.acquire()
        except Timeout as exc:
            raise StoreError(
                f"cannot {what}: another writer has held {lock.lock_file} for more than {self.lock_timeout:g} s; "
                "try again, or remove the lock file if no workbench process is running"
            ) from exc
        except OSError as exc:
            raise self._unwritable(Path(lock.lock_file), exc, what) from exc
        try:
            yield
        finally:
            lock.release()

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
            "column_sha256": column_hashes(frame),
            "integrity": True,
            "fetched_at": _now().isoformat(),
            **(meta or {}),
        }
        table = pa.Table.from_pandas(frame, preserve_index=True)
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **encode_manifest(manifest)})
        with self._locked(path, f"store {self._dataset(source, interval, symbol)}"):
            removed = remove_orphans(path)
            if removed:
                log.info("removed %d temporary file(s) of killed writers of %s", removed, path)
            self._write_atomic(path, table)
        return manifest

    def manifest(self, source: str, interval: str, symbol: str) -> dict | None:
        """The manifest of a dataset, or ``None`` when it is not stored."""
        path = self.path(source, interval, symbol)
        dataset = self._dataset(source, interval, symbol)
        try:
            with open(path, "rb") as fh:
                meta = pq.read_schema(fh).metadata or {}
        except FileNotFoundError:
            return None
        except PermissionError as exc:
            raise StoreError(f"cannot read {path}: {exc.strerror}") from exc
        except Exception as exc:  # undecodable footer
            raise CorruptDatasetError(
                f"stored dataset {dataset} is corrupt: {path} cannot be decoded ({type(exc).__name__}); ingest "
                "it again with refresh (load_prices(..., refresh=True) or `workbench data fetch ... --refresh`)",
                path=str(path),
            ) from None
        return decode_manifest(meta, path, dataset)

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
        """Read a stored dataset (optionally a time range and some columns), checked against its sha256.

        Raises
        ------
        SymbolNotFoundError
            The dataset is not stored.
        CorruptDatasetError
            The file cannot be decoded or does not match its manifest.
        """
        path = self.path(source, interval, symbol)
        dataset = self._dataset(source, interval, symbol)
        try:
            table, m = read_verified(path, None, dataset)
        except FileNotFoundError:
            raise SymbolNotFoundError(
                f"no stored dataset for {symbol!r} ({source}, {interval}) under {self.root}; "
                f"fetch it with load_prices or `workbench data fetch {symbol} --source {source}`"
            ) from None
        except PermissionError as exc:
            raise StoreError(f"cannot read {path}: {exc.strerror}") from exc
        try:
            frame = table.to_pandas()
        except Exception as exc:
            raise CorruptDatasetError(
                f"stored dataset {dataset} is corrupt: {path} cannot be turned into a frame ({type(exc).__name__}); "
                "ingest it again with refresh", path=str(path),
            ) from None
        verify_frame(frame, m, path, dataset)
        frame.attrs = {}
        if m is not None:
            frame.attrs.update(
                source=source, symbol=symbol, interval=interval, synthetic=m.get("synthetic", False),
                sha256=m["sha256"], provenance=m.get("provenance", ""),
            )
        if columns is not None:
            frame = frame[list(columns)]
        s, e = to_utc(start), to_utc(end)
        if s is not None or e is not None:
            frame = frame.loc[s:e]
        return frame

    def read_field(
        self, source: str, interval: str, symbols: list[str], field: str = "close"
    ) -> tuple[dict[str, pd.Series], dict[str, dict]]:
        """One column of many stored datasets, with their manifests, in one read per file.

        Symbols not stored are left out of both dicts (the caller ingests them). Each column
        read is checked against the manifest's per-column sha256.
        """
        series: dict[str, pd.Series] = {}
        manifests: dict[str, dict] = {}
        for sym in symbols:
            path = self.path(source, interval, sym)
            dataset = self._dataset(source, interval, sym)
            try:
                table, m = read_verified(path, ["timestamp", field], dataset)
            except FileNotFoundError:
                continue
            except PermissionError as exc:
                raise StoreError(f"cannot read {path}: {exc.strerror}") from exc
            if field not in table.column_names:
                raise StoreError(f"cannot read {field!r} from {path}: the dataset has {table.column_names}")
            if not verify_columns(table, [field], m, path, dataset):
                full = self.read(source, interval, sym)  # an older manifest: verify the whole file
                series[sym] = full[field].rename(sym)
                manifests[sym] = m or {}
                continue
            manifests[sym] = m or {}
            values = table.column(field).to_numpy()
            index = to_utc_index(pd.DatetimeIndex(table.column("timestamp").to_numpy(), name="timestamp"))
            series[sym] = pd.Series(values, index=index, name=sym)
        return series, manifests

    def read_quarantine(self, source: str, interval: str, symbol: str) -> pd.DataFrame:
        """Rows quarantined so far for a dataset (empty frame when none)."""
        path = self.path(source, interval, symbol, kind="quarantine")
        if not path.exists():
            return pd.DataFrame(columns=["open", "high", "low", "close", "volume", "reason", "detail", "ingested_at"])
        what = f"quarantine of {self._dataset(source, interval, symbol)}"
        try:
            table, _ = read_parquet(path, None, what)
            check_digest(table, path, what)
            return table.to_pandas()
        except PermissionError as exc:
            raise StoreError(f"cannot read {path}: {exc.strerror}") from exc
        except CorruptDatasetError:
            raise
        except Exception as exc:
            raise CorruptDatasetError(
                f"stored {what} is corrupt: {path} cannot be decoded ({type(exc).__name__}); ingest {symbol} "
                "again with refresh (load_prices(..., refresh=True) or `workbench data fetch ... --refresh`)",
                path=str(path),
            ) from None

    def _append_quarantine(
        self, source: str, interval: str, symbol: str, rows: pd.DataFrame, *, replace_corrupt: bool = False
    ) -> int:
        """Add quarantined rows not already recorded; returns the rows in the quarantine file.

        A corrupt quarantine file raises :class:`CorruptDatasetError`, or is started afresh
        with ``replace_corrupt=True`` (an ingest with ``refresh=True``).
        """
        path = self.path(source, interval, symbol, kind="quarantine")
        if rows.empty and not path.exists():
            return 0
        rows = rows.assign(ingested_at=_now().isoformat())
        with self._locked(path, f"quarantine rows of {self._dataset(source, interval, symbol)}"):
            try:
                old = self.read_quarantine(source, interval, symbol) if path.exists() else rows.iloc[:0]
            except CorruptDatasetError as exc:
                if not replace_corrupt:
                    raise
                log.warning("replacing a corrupt quarantine file: %s", exc)
                old, rows = rows.iloc[:0], rows
                if rows.empty:
                    path.unlink(missing_ok=True)
                    return 0
            if rows.empty:
                return len(old)
            seen = set(_quarantine_keys(old))
            keys = _quarantine_keys(rows)
            fresh = rows[[k not in seen for k in keys]]
            fresh = fresh[~pd.Index(_quarantine_keys(fresh)).duplicated()]
            if fresh.empty:
                return len(old)
            both = pd.concat([old, fresh]) if len(old) else fresh
            remove_orphans(path)
            self._write_atomic(path, table_with_digest(both))
            return len(both)

    def list(self) -> pd.DataFrame:
        """One row per stored dataset with its manifest fields; ``status`` says ``ok`` or ``corrupt``.

        Only manifests are checked here (the content is verified when a dataset is read).
        """
        rows = []
        base = self.root / "store"
        for path in sorted(base.glob("*/*/*.parquet")) if base.exists() else []:
            source, interval = path.parent.parent.name, path.parent.name
            symbol = unquote(path.stem)
            try:
                m = self.manifest(source, interval, symbol)
            except CorruptDatasetError:
                m = {"source": source, "interval": interval, "symbol": symbol, "sha256": "",
                     "status": "corrupt: ingest again with refresh"}
            if m:
                rows.append({"status": "ok", **m})
        cols = ["source", "interval", "symbol", "rows", "first", "last", "quarantined", "flags", "synthetic",
                "fetched_at", "sha256", "status"]
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

        The fetched rows are merged, under the dataset's ingest lock, into what is stored at
        that moment (fetched rows win on equal timestamps), so concurrent ingests never drop
        each other's rows. ``refresh=True`` replaces the version it saw when it started
        (rows committed by a concurrent ingest since then are kept). A corrupt stored copy is
        replaced by ``refresh=True`` and raises :class:`CorruptDatasetError` otherwise. When the
        update cannot be stored (read-only folder, disk full), a live source's stored copy is
        served marked stale, as when the source fails; otherwise :class:`StoreError` is raised.
        """
        start, end = to_utc(start), to_utc(end)
        if start is not None and end is not None and start > end:
            raise InvalidRequestError(f"{symbol}: start {start.date()} is after end {end.date()}")
        if interval not in INTERVALS:
            raise InvalidRequestError(f"unknown interval {interval!r}; expected one of {list(INTERVALS)}")
        unbounded = getattr(source, "unbounded", False)
        if unbounded:  # the bars the request covers (open ends filled in); an empty range raises here
            start, end = source.window(symbol, start, end, interval)  # type: ignore[attr-defined]
        m = self._manifest_for_ingest(source.name, interval, symbol, refresh)
        if m is not None and not refresh and self._fresh(source, m, start, end):
            return IngestResult(self.read(source.name, interval, symbol, start=start, end=end), m, None, False)
        try:
            raw = fetch_for_ingest(source, symbol, start, end, interval, m, refresh)
        except SourceError as exc:
            if m is None:
                raise
            return self._serve_stale(source, symbol, interval, m, exc, start, end)
        partial = _partial_index(raw)
        result = validate_ohlcv(
            raw, symbol=symbol, source=source.name, interval=interval, calendar=source.calendar(symbol)
        )
        try:
            manifest = self._commit(source, symbol, interval, result, partial, seen=m, refresh=refresh)
        except StoreError as exc:
            if m is None or not source.live or isinstance(exc, CorruptDatasetError):
                raise
            return self._serve_stale(source, symbol, interval, m, exc, start, end)  # as when the source fails
        frame = self.read(source.name, interval, symbol, start=start, end=end)
        return IngestResult(frame, manifest, result.report, True)

    def _commit(
        self, source: Source, symbol: str, interval: str, result: ValidationResult, partial: pd.DatetimeIndex, *,
        seen: dict | None, refresh: bool,
    ) -> dict:
        """Store the validated rows (less the source's partial bars) under the dataset's ingest lock,
        merged into what is stored at that moment (fetched rows win on equal timestamps;
        ``refresh`` replaces only the version ``seen`` when the ingest started), and append the
        quarantined rows. Returns the new manifest."""
        clean = result.clean
        if len(partial):
            clean = clean[~clean.index.isin(partial)]
        path = self.path(source.name, interval, symbol)
        with self._locked(path.with_suffix(".ingest"), f"ingest {self._dataset(source.name, interval, symbol)}"):
            current = self._manifest_for_ingest(source.name, interval, symbol, refresh)
            if current is not None and current["rows"] > 0:
                # refresh replaces only the version it saw; rows committed since are kept
                if not refresh or seen is None or current["sha256"] != seen["sha256"]:
                    old = self.read(source.name, interval, symbol)
                    clean = pd.concat([old[~old.index.isin(clean.index)], clean]).sort_index()
            if clean.empty and result.clean.empty and result.report.received:
                reasons = ", ".join(f"{k} {v}" for k, v in result.report.reasons.items()) or "none valid"
                raise SchemaError(
                    f"{source.name} {symbol}: none of the {result.report.received} rows received is a valid bar "
                    f"({reasons}); nothing stored. Check the input (`workbench data validate FILE` lists each row's reason)"
                )
            quarantined = self._append_quarantine(
                source.name, interval, symbol, result.quarantine, replace_corrupt=refresh
            )
            meta = ingest_meta(source, symbol, result, partial, quarantined)
            return self.write(source.name, interval, symbol, clean, meta=meta)

    def _manifest_for_ingest(self, source: str, interval: str, symbol: str, refresh: bool) -> dict | None:
        try:
            return self.manifest(source, interval, symbol)
        except CorruptDatasetError as exc:
            if not refresh:
                raise
            log.warning("replacing a corrupt stored dataset: %s", exc)
            return None

    def _serve_stale(
        self, source: Source, symbol: str, interval: str, m: dict, exc: Exception,
        start: pd.Timestamp | None, end: pd.Timestamp | None,
    ) -> IngestResult:
        """The stored copy, marked stale, after a failed fetch or a failed write."""
        age = _now() - pd.Timestamp(m["fetched_at"])
        what = f"{source.name} failed for {symbol}" if isinstance(exc, SourceError) else f"the update of {symbol} was not stored"
        warnings.warn(
            f"{what} ({exc}); serving the stored copy fetched {age_text(age)} ago (last bar {m['last']})",
            StaleDataWarning,
            stacklevel=3,
        )
        frame = self.read(source.name, interval, symbol, start=start, end=end)
        frame.attrs.update(stale=True, stale_age_s=age.total_seconds())
        return IngestResult(frame, m, None, False, stale=True)

    def is_fresh(self, source: Source, m: dict, start: object = None, end: object = None) -> bool:
        """Whether a stored dataset (its manifest ``m``) can be served without fetching."""
        start, end = to_utc(start), to_utc(end)
        if getattr(source, "unbounded", False):
            start, end = source.window(m["symbol"], start, end, m["interval"])  # type: ignore[attr-defined]
        return self._fresh(source, m, start, end)

    def _fresh(self, source: Source, m: dict, start: pd.Timestamp | None, end: pd.Timestamp | None = None) -> bool:
        if getattr(source, "unbounded", False):  # start and end are the request's first and last bar
            if not m.get("rows") or m.get("first") is None or m.get("last") is None:
                return False
            return pd.Timestamp(m["first"]) <= start <= end <= pd.Timestamp(m["last"])
        if not source.live:
            return True
        if start is not None and m["first"] is not None and start < pd.Timestamp(m["first"]) - pd.Timedelta(days=7):
            return False
        age = (_now() - pd.Timestamp(m["fetched_at"])).total_seconds()
        return age < self.freshness_ttl


def dataset_file_name(symbol: str) -> str:
    """The file name of a symbol's dataset (characters unsafe in file names percent-encoded)."""
    return f"{quote(symbol, safe='^=.-_')}.parquet"


def _partial_index(raw: pd.DataFrame) -> pd.DatetimeIndex:
    """Bars a live source marked as still forming (``raw.attrs["partial"]``), in UTC."""
    marked = raw.attrs.get("partial") if isinstance(raw, pd.DataFrame) else None
    if not marked:
        return pd.DatetimeIndex([], tz="UTC", name="timestamp")
    return pd.DatetimeIndex([to_utc(t) for t in marked], name="timestamp").as_unit("ns")


def _quarantine_keys(rows: pd.DataFrame) -> list[str]:
    """One key per quarantined row: timestamp, reason and raw values (not the ingest time)."""
    cols = [c for c in rows.columns if c not in ("detail", "ingested_at")]
    index = [str(t) for t in rows.index]
    values = rows[cols].astype(str).to_numpy().tolist() if cols else [[] for _ in index]
    return [hashlib.sha256(json.dumps([t, v]).encode()).hexdigest() for t, v in zip(index, values, strict=True)]
