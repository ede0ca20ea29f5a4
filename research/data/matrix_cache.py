"""A columnar cache of wide matrices (one field of many symbols) read from the store.

Reading one field of 500 symbols costs one Parquet file per symbol (open, footer, decode,
hash). The wide matrix those reads build is kept, per universe, as one uncompressed Arrow IPC
(Feather v2) file that is memory-mapped on the next read::

    cache/matrix/<source>/<interval>/<field>.<universe>.arrow

``<universe>`` is a hash of the sorted symbol list, so any order of the same symbols shares one
file. The file holds ``timestamp`` (int64 ns, UTC) and one float64 column per symbol, sorted,
with NaN where a symbol has no bar, exactly as :func:`~research.data.loader.close_matrix`
aligns them; its schema metadata holds the cache key:

* per symbol, the dataset's content ``sha256`` (from its manifest) and the file signature
  ``(inode, size, mtime_ns, ctime_ns)`` taken *before* the dataset was read and verified
  against that sha256 when the cache was built;
* ``key_sha256``, the sha256 of the sorted ``(symbol, sha256)`` list; the content hashes of
  the matrix: ``timestamp_sha256`` (the index's int64 bytes) and, per symbol,
  ``column_sha256`` (its float64 bytes); ``body_sha256``, the sha256 of those digests in
  order; and the sha256 of the key block itself.

What a cached read verifies (the fast path, :meth:`MatrixCache.read`)
---------------------------------------------------------------------
1. The key block matches its own sha256, names the same source, interval, field and symbols,
   and its ``key_sha256`` matches its ``(symbol, sha256)`` list.
2. Every dataset file's signature ``(inode, size, mtime_ns, ctime_ns)`` equals the one
   recorded when its content was verified: a re-ingest (an atomic rename: a new inode), an
   edit or a corruption in place (a new ``ctime``, which no file API can set back) all
   differ, and the read falls back to the per-symbol path, which verifies every dataset again
   against its manifest and raises :class:`~research.data.errors.CorruptDatasetError` on a
   damaged one, then rebuilds the cache. Because the signature is taken before the read it
   belongs to, a write racing the build can only make the recorded signature older than the
   content, which the next read treats as a change: a cache is served only for the exact
   content hashes it was built from. File times have the kernel's clock tick as resolution,
   so a dataset written less than ``RACY_SECONDS`` before the build is marked *racy* (as git
   does for its index): while it is, each cached read also reads that dataset (verified
   against its manifest) and compares its sha256 with the key; once the tick has long passed
   the mark is cleared and the cache file rewritten.
3. Arrow's structural checks of the IPC file (footer, buffer offsets and lengths within the
   file) and the table's shape against the key.
4. The content: every column served is hashed (sha256, on the copy that is served) as it is
   copied out of the memory map, and compared with its ``column_sha256``, as is the index
   with ``timestamp_sha256``. A cache file edited in place, even with its size and times kept,
   is reported (a :class:`MatrixCacheWarning` and a log line naming the file and the columns
   that differ), ignored, and rebuilt from the store. sha256 is the fastest of hashlib's
   hashes on CPUs with SHA extensions (about 4x blake2b's speed there); the check keeps the
   cached read within 2x of reading the same matrix from one Parquet file
   (``benchmarks/bench_store.py``).

Not verified on the fast path: the datasets' Parquet footers (re-reading them costs about as
much as the whole cached read). The cache is written only by the workbench, atomically
(temporary file, fsync, rename), so a reader sees a whole old or a whole new file;
:func:`verify_cache_file` checks a cache file in full, and ``close_matrix(..., cache=False)``
bypasses it. A data folder that cannot be written is still read: the matrix is then served by
the per-symbol path and nothing is cached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from filelock import FileLock, Timeout

from research.atomic import atomic_path
from research.data.errors import CorruptDatasetError
from research.data.store import Store, dataset_file_name
from research.timeutil import to_utc_index

__all__ = ["MatrixCache", "CachedMatrix", "Signatures", "file_signature", "verify_cache_file", "RACY_SECONDS",
           "MatrixCacheWarning"]

log = logging.getLogger(__name__)
KEY = b"workbench.matrix"
KEY_SHA = b"workbench.matrix.sha256"
VERSION = 2
#: A dataset written this recently before a cache build is re-verified on each cached read.
RACY_SECONDS = 2.0
Signature = tuple[int, int, int, int]


class Signatures(dict):
    """``{symbol: file signature or None}`` plus ``taken_ns``, when they were taken."""

    def __init__(self, items: dict[str, Signature | None], taken_ns: int) -> None:
        super().__init__(items)
        self.taken_ns = taken_ns


def file_signature(path: str | os.PathLike) -> Signature | None:
    """``(inode, size, mtime_ns, ctime_ns)`` of a file, or ``None`` when it does not exist."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _key_sha256(datasets: dict[str, dict]) -> str:
    pairs = sorted((sym, d["sha256"]) for sym, d in datasets.items())
    return hashlib.sha256(json.dumps(pairs).encode()).hexdigest()


class MatrixCacheWarning(UserWarning):
    """A cached matrix did not match its content hash; it was recomputed from the store."""


class _ContentMismatch(ValueError):
    """A cached matrix's bytes differ from the hashes in its key (the columns named)."""


def _sha256(values: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(values)).hexdigest()


def _body_sha256(timestamp_sha: str, column_shas: list[str]) -> str:
    """The digest of the content digests, index first, then the columns in key order."""
    return hashlib.sha256("\n".join([timestamp_sha, *column_shas]).encode()).hexdigest()


@dataclass
class CachedMatrix:
    """A matrix served from the cache, with the manifest fields its datasets were cached with."""

    frame: pd.DataFrame
    manifests: dict[str, dict]
    path: Path


class MatrixCache:
    """Wide matrices of one store, cached per ``(source, interval, field, universe)``.

    Parameters
    ----------
    store : Store
        The store whose datasets are cached; files go under ``<store.root>/cache/matrix``.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.root = Path(store.root) / "cache" / "matrix"

    def path(self, source: str, interval: str, field: str, symbols: list[str]) -> Path:
        """The cache file of one universe (any order of the same symbols)."""
        universe = hashlib.sha256("\n".join(sorted(symbols)).encode()).hexdigest()[:24]
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in source)
        return self.root / safe / interval / f"{field}.{universe}.arrow"

    def signatures(self, source: str, interval: str, symbols: list[str]) -> Signatures:
        """The current file signature of each dataset (take it *before* reading the dataset)."""
        taken = time.time_ns()
        folder = os.fspath(self.store.path(source, interval, "_").parent)
        return Signatures({s: file_signature(os.path.join(folder, dataset_file_name(s))) for s in symbols}, taken)

    # ------------------------------------------------------------------- read
    def read(self, source: str, interval: str, field: str, symbols: list[str]) -> CachedMatrix | None:
        """The cached matrix, columns in the order of ``symbols``, or ``None`` when it is stale.

        ``None`` means: no cache file, a dataset changed or is missing since the cache was
        built, or the cache file is damaged (then it is ignored and rebuilt). See the module
        docstring for exactly what is verified.
        """
        path = self.path(source, interval, field, symbols)
        try:
            with pa.memory_map(str(path), "r") as mm:
                reader = pa.ipc.open_file(mm)
                meta = self._key(reader.schema.metadata, path)
                if meta is None or not self._current(meta, source, interval, field, symbols):
                    return None
                racy = [s for s in meta["symbols"] if meta["datasets"][s].get("racy")]
                if racy and not self._unchanged(source, interval, field, racy, meta):
                    return None
                table = reader.read_all()
                frame = self._frame(table, meta, symbols, path)
                if racy:
                    self._settle(path, table, meta)
        except FileNotFoundError:
            return None
        except _ContentMismatch as exc:
            message = (f"matrix cache {path} does not match its content hash ({exc}): it was changed in place; "
                       "the matrix is recomputed from the store and the cache rebuilt")
            log.warning(message)
            warnings.warn(message, MatrixCacheWarning, stacklevel=3)
            return None
        except (pa.ArrowException, OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring a damaged matrix cache %s (%s); it is rebuilt", path, exc)
            return None
        manifests = {s: {k: v for k, v in meta["datasets"][s].items() if k != "signature"} for s in symbols}
        return CachedMatrix(frame, manifests, path)

    @staticmethod
    def _key(metadata: dict | None, path: Path) -> dict | None:
        raw = (metadata or {}).get(KEY)
        if raw is None or hashlib.sha256(raw).hexdigest().encode() != metadata.get(KEY_SHA):
            log.warning("matrix cache %s has a missing or damaged key; it is rebuilt", path)
            return None
        meta = json.loads(raw)
        if meta.get("version") != VERSION or meta.get("key_sha256") != _key_sha256(meta["datasets"]):
            return None
        return meta

    def _current(self, meta: dict, source: str, interval: str, field: str, symbols: list[str]) -> bool:
        if (meta["source"], meta["interval"], meta["field"]) != (source, interval, field):
            return False
        datasets = meta["datasets"]
        if len(datasets) != len(symbols) or any(s not in datasets for s in symbols):
            return False
        now = self.signatures(source, interval, symbols)
        return all(now[s] is not None and list(now[s]) == datasets[s]["signature"] for s in symbols)

    def _unchanged(self, source: str, interval: str, field: str, racy: list[str], meta: dict) -> bool:
        """Read the racy datasets (verified; a corrupt one raises) and compare their sha256."""
        _, manifests = self.store.read_field(source, interval, racy, field)
        return all(manifests.get(s, {}).get("sha256") == meta["datasets"][s]["sha256"] for s in racy)

    @staticmethod
    def _settle(path: Path, table: pa.Table, meta: dict) -> None:
        """Clear racy marks older than the clock's resolution can confuse; rewrite the key."""
        old = time.time_ns() - int(RACY_SECONDS * 1e9)
        settled = [d for d in meta["datasets"].values() if d.get("racy") and d["signature"][3] < old]
        if not settled:
            return
        for d in settled:
            d.pop("racy")
        raw = json.dumps(meta).encode()
        try:
            with FileLock(str(path) + ".lock", timeout=0):
                _write_atomic(path, table.replace_schema_metadata(
                    {KEY: raw, KEY_SHA: hashlib.sha256(raw).hexdigest().encode()}))
        except (Timeout, OSError):
            pass  # another process is rewriting it, or the folder is read-only: marks stay

    @staticmethod
    def _frame(table: pa.Table, meta: dict, symbols: list[str], path: Path) -> pd.DataFrame:
        if table.num_rows != meta["rows"] or table.column_names != ["timestamp", *meta["symbols"]]:
            raise ValueError(f"shape {table.num_rows} x {table.num_columns} does not match its key")
        stamps = table.column("timestamp").to_numpy().astype("datetime64[ns]")  # a copy, off the map
        changed = [] if _sha256(stamps.view("int64")) == meta["timestamp_sha256"] else ["timestamp"]
        index = pd.DatetimeIndex(stamps, name="timestamp")
        values = np.empty((len(symbols), table.num_rows), dtype="float64")  # [symbol, time]: one block
        shas = meta["column_sha256"]
        for i, sym in enumerate(symbols):
            values[i] = table.column(sym).to_numpy()
            if _sha256(values[i]) != shas[sym]:  # what is served is what was hashed
                changed.append(sym)
        if changed:
            raise _ContentMismatch(f"{len(changed)} column(s) differ: {', '.join(changed[:5])}"
                                   + (" ..." if len(changed) > 5 else ""))
        return pd.DataFrame(values.T, index=to_utc_index(index), columns=pd.Index(symbols, name="symbol"),
                            copy=False)

    # ------------------------------------------------------------------ write
    def write(
        self, source: str, interval: str, field: str, frame: pd.DataFrame,
        manifests: dict[str, dict], signatures: Signatures,
    ) -> Path | None:
        """Cache ``frame`` (index = time, one column per symbol) built from verified reads.

        ``signatures`` must have been taken before the datasets were read. Returns the cache
        file, or ``None`` when it was not written (a dataset vanished meanwhile, another
        process is writing the same cache, or the folder is not writable).
        """
        symbols = sorted(map(str, frame.columns))
        if any(signatures.get(s) is None or s not in manifests for s in symbols):
            return None
        datasets = {
            s: {"sha256": manifests[s]["sha256"], "signature": list(signatures[s]),
                "first": manifests[s].get("first"), "last": manifests[s].get("last"), "rows": manifests[s].get("rows"),
                "fetched_at": manifests[s].get("fetched_at"),
                "synthetic": bool(manifests[s].get("synthetic", False))}
            for s in symbols
        }
        recent = signatures.taken_ns - int(RACY_SECONDS * 1e9)
        for s in symbols:
            if signatures[s][3] >= recent:
                datasets[s]["racy"] = True
        index_ns = frame.index.as_unit("ns").asi8
        columns = [frame[s].to_numpy(dtype="float64") for s in symbols]
        ts_sha, col_shas = _sha256(index_ns.astype("int64")), [_sha256(c) for c in columns]
        meta = {"version": VERSION, "source": source, "interval": interval, "field": field,
                "rows": len(frame), "symbols": symbols, "datasets": datasets,
                "key_sha256": _key_sha256(datasets), "timestamp_sha256": ts_sha,
                "column_sha256": dict(zip(symbols, col_shas, strict=True)), "body_sha256": _body_sha256(ts_sha, col_shas)}
        raw = json.dumps(meta).encode()
        table = pa.Table.from_arrays(
            [pa.array(index_ns, type=pa.int64()), *(pa.array(c, type=pa.float64()) for c in columns)],
            names=["timestamp", *symbols],
        ).replace_schema_metadata({KEY: raw, KEY_SHA: hashlib.sha256(raw).hexdigest().encode()})
        path = self.path(source, interval, field, symbols)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            lock = FileLock(str(path) + ".lock", timeout=0)
            with lock:
                _write_atomic(path, table)
        except Timeout:
            return None  # another process is writing the same universe
        except OSError as exc:
            log.info("matrix cache not written (%s); the store is read per symbol", exc)
            return None
        return path


def _write_atomic(path: Path, table: pa.Table) -> None:
    with atomic_path(path) as tmp, pa.OSFile(str(tmp), "wb") as fh, pa.ipc.new_file(fh, table.schema) as writer:
        writer.write_table(table)


def verify_cache_file(path: str | os.PathLike) -> dict:
    """Check a cache file in full: key hash, shape, and the matrix bytes against ``body_sha256``.

    Returns the key; raises :class:`~research.data.errors.CorruptDatasetError` on a mismatch.
    Whether the cache is *current* (its datasets unchanged) is :meth:`MatrixCache.read`'s check.
    """
    p = Path(path)
    try:
        with pa.memory_map(str(p), "r") as mm:
            reader = pa.ipc.open_file(mm)
            meta = MatrixCache._key(reader.schema.metadata, p)
            table = reader.read_all()
            ok = meta is not None and table.column_names == ["timestamp", *meta["symbols"]] and (
                _body_sha256(_sha256(table.column("timestamp").to_numpy().view("int64")),
                             [_sha256(table.column(s).to_numpy()) for s in meta["symbols"]]) == meta["body_sha256"])
    except (pa.ArrowException, OSError, ValueError, KeyError, TypeError) as exc:
        raise CorruptDatasetError(f"matrix cache {p} cannot be decoded ({exc}); delete it", path=str(p)) from None
    if not ok:
        raise CorruptDatasetError(f"matrix cache {p} does not match its sha256; delete it", path=str(p))
    return meta
