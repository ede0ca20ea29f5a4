"""Integrity of stored datasets: content hashes, the manifest's own hash, safe decoding.

Every dataset file carries its manifest in the Parquet schema metadata (key ``workbench``)
and, next to it, the sha256 of the manifest's bytes (key ``workbench.sha256``). The manifest
records

* ``sha256``: the content hash of the whole frame (:func:`content_sha256`);
* ``column_sha256``: one hash for the index and one per column (:func:`column_hashes`), so a
  read of a few columns is verified without reading the others.

Data pages are written with Parquet page checksums and read with checksum verification, and
the footer holds ``workbench.integrity``: the sha256 of every byte before the footer (pages and
their headers) and of the footer's own content (schema, row-group metadata, statistics, the
other key-value entries). A file is written twice in memory to compute it (the bytes it covers
do not depend on its value), so a single flipped bit anywhere in the file is noticed, even
where it would not change the decoded data. A read that cannot decode the file, or whose
bytes, content or manifest do not match their hashes, raises
:class:`~research.data.errors.CorruptDatasetError` naming the file and the remedy (ingest again
with ``refresh=True``); corrupt bytes never come back as data.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from research.data.errors import CorruptDatasetError

__all__ = [
    "META_KEY",
    "META_SHA_KEY",
    "content_sha256",
    "column_hashes",
    "encode_manifest",
    "decode_manifest",
    "read_verified",
    "verify_frame",
    "remove_orphans",
    "WRITE_OPTIONS",
    "table_with_digest",
    "check_digest",
    "verify_columns",
    "parquet_bytes",
    "read_parquet",
]

META_KEY = b"workbench"
META_SHA_KEY = b"workbench.sha256"
DIGEST_KEY = b"workbench.digest"
INTEGRITY_KEY = "workbench.integrity"
INDEX_KEY = "__index__"
#: Options of every Parquet write of the store.
WRITE_OPTIONS = {"compression": "zstd", "write_page_checksum": True}


def content_sha256(frame: pd.DataFrame) -> str:
    """sha256 of a frame's content: index (int64 ns) and each column's float64 bytes, in order."""
    h = hashlib.sha256()
    h.update(",".join(map(str, frame.columns)).encode())
    h.update(np.ascontiguousarray(frame.index.asi8).tobytes())
    for col in frame.columns:
        h.update(np.ascontiguousarray(frame[col].to_numpy(dtype="float64")).tobytes())
    return h.hexdigest()


def _index_hash(ns: np.ndarray) -> str:
    return hashlib.sha256(b"index:" + np.ascontiguousarray(ns, dtype="int64").tobytes()).hexdigest()


def _column_hash(name: str, values: np.ndarray) -> str:
    data = np.ascontiguousarray(values, dtype="float64").tobytes()
    return hashlib.sha256(f"column:{name}:".encode() + data).hexdigest()


def column_hashes(frame: pd.DataFrame) -> dict[str, str]:
    """``{"__index__": sha256, column: sha256, ...}`` of a frame with a DatetimeIndex."""
    out = {INDEX_KEY: _index_hash(frame.index.asi8)}
    for col in frame.columns:
        out[str(col)] = _column_hash(str(col), frame[col].to_numpy(dtype="float64"))
    return out


def encode_manifest(manifest: dict) -> dict[bytes, bytes]:
    """The schema-metadata entries holding ``manifest`` and the sha256 of its bytes."""
    raw = json.dumps(manifest).encode()
    return {META_KEY: raw, META_SHA_KEY: hashlib.sha256(raw).hexdigest().encode()}


def _corrupt(path: Path, detail: str, dataset: str) -> CorruptDatasetError:
    return CorruptDatasetError(
        f"stored dataset {dataset} is corrupt: {path} {detail}; its data is not served. Ingest it "
        f"again with refresh (load_prices(..., refresh=True) or `workbench data fetch ... --refresh`)",
        path=str(path),
    )


def decode_manifest(metadata: dict | None, path: Path, dataset: str) -> dict | None:
    """The manifest stored in a file's schema metadata, checked against its own hash."""
    meta = metadata or {}
    if META_KEY not in meta:
        return None
    raw = meta[META_KEY]
    expected = meta.get(META_SHA_KEY)
    if expected is not None and hashlib.sha256(raw).hexdigest().encode() != expected:
        raise _corrupt(path, "has a manifest that does not match its sha256", dataset)
    try:
        manifest = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise _corrupt(path, f"has an unreadable manifest ({exc})", dataset) from None
    if not isinstance(manifest, dict) or "sha256" not in manifest:
        raise _corrupt(path, "has a manifest without its content sha256", dataset)
    return manifest


def _footer_start(data: bytes) -> int:
    if len(data) < 12 or data[:4] != b"PAR1" or data[-4:] != b"PAR1":
        raise ValueError("not a Parquet file (no PAR1 magic at both ends)")
    start = len(data) - 8 - int.from_bytes(data[-8:-4], "little")
    if start < 4:
        raise ValueError("footer length beyond the file")
    return start


def _integrity(data: bytes, metadata: pq.FileMetaData) -> str:
    """sha256 of the bytes before the footer and of the footer's content but this key."""
    h = hashlib.sha256(data[: _footer_start(data)])
    described = metadata.to_dict()
    described.pop("serialized_size", None)
    h.update(json.dumps(described, sort_keys=True, default=str).encode())
    schema = metadata.schema
    columns = [schema.column(i) for i in range(len(schema))]
    h.update(json.dumps([(c.path, c.physical_type, str(c.logical_type), c.converted_type, c.max_definition_level,
                          c.max_repetition_level) for c in columns], default=str).encode())
    for key, value in sorted((metadata.metadata or {}).items()):
        if key != INTEGRITY_KEY.encode():
            h.update(key + b"=" + value + b";")
    return h.hexdigest()


def parquet_bytes(table: pa.Table) -> bytes:
    """``table`` as a Parquet file whose footer carries its ``workbench.integrity`` hash."""

    def once(value: str) -> bytes:
        sink = pa.BufferOutputStream()
        with pq.ParquetWriter(sink, table.schema, **WRITE_OPTIONS) as writer:
            writer.write_table(table)
            writer.add_key_value_metadata({INTEGRITY_KEY: value})
        return sink.getvalue().to_pybytes()

    draft = once("0" * 64)
    return once(_integrity(draft, pq.read_metadata(pa.BufferReader(draft))))


def read_parquet(path: Path, columns: list[str] | None, what: str) -> pa.Table:
    """Read a Parquet file written by :func:`parquet_bytes`, checking its integrity hash.

    Files without the hash (written by earlier versions) are read with page checksums only.
    Raises ``FileNotFoundError``, ``PermissionError`` or :class:`CorruptDatasetError`.
    """
    with open(path, "rb") as fh:  # one read: a concurrent rename cannot mix two versions
        data = fh.read()
    try:
        buffer = pa.BufferReader(data)
        metadata = pq.read_metadata(buffer)
        expected = (metadata.metadata or {}).get(INTEGRITY_KEY.encode())
        if expected is not None and _integrity(data, metadata).encode() != expected:
            raise _corrupt(path, "does not match the integrity sha256 in its footer (bytes changed)", what)
        return pq.read_table(pa.BufferReader(data), columns=columns, page_checksum_verification=True)
    except CorruptDatasetError:
        raise
    except Exception as exc:  # pyarrow raises OSError, ArrowInvalid, ArrowException, ... on bad bytes
        raise _corrupt(path, f"cannot be decoded ({type(exc).__name__}: {str(exc)[:160]})", what) from None


def read_verified(
    path: Path, columns: list[str] | None, dataset: str
) -> tuple[pa.Table, dict | None]:
    """Read a dataset file (all columns, or ``timestamp`` plus ``columns``) and its manifest.

    Raises ``FileNotFoundError`` when the file does not exist and
    :class:`CorruptDatasetError` when it cannot be decoded. The content is not yet compared
    with the manifest: see :func:`verify_frame` and :func:`verify_columns`.
    """
    table = read_parquet(path, columns, dataset)
    return table, decode_manifest(table.schema.metadata, path, dataset)


def verify_frame(frame: pd.DataFrame, manifest: dict | None, path: Path, dataset: str) -> None:
    """Compare a whole frame read from ``path`` with its manifest's content hash."""
    if manifest is None:
        return
    try:
        ok = (
            isinstance(frame.index, pd.DatetimeIndex)
            and frame.index.name == "timestamp"
            and str(frame.index.tz) == "UTC"
            and content_sha256(frame) == manifest["sha256"]
            and len(frame) == manifest.get("rows", len(frame))
        )
    except Exception:  # a damaged schema can leave a frame no hash applies to
        ok = False
    if not ok:
        raise _corrupt(path, f"does not match the sha256 recorded in its manifest ({manifest['sha256'][:12]}...)", dataset)


def verify_columns(table: pa.Table, fields: list[str], manifest: dict | None, path: Path, dataset: str) -> bool:
    """Check the index and ``fields`` of a partial read against ``column_sha256``.

    Returns ``False`` when the manifest has no per-column hashes (the caller then verifies a
    full read instead).
    """
    if manifest is None:
        return True
    hashes = manifest.get("column_sha256")
    if not hashes:
        return False
    try:
        ns = table.column("timestamp").to_numpy().astype("datetime64[ns]").view("int64")
        ok = _index_hash(ns) == hashes[INDEX_KEY] and len(ns) == manifest.get("rows", len(ns))
        for name in fields:
            ok = ok and _column_hash(name, table.column(name).to_numpy()) == hashes[name]
    except Exception:
        ok = False
    if not ok:
        raise _corrupt(path, f"does not match the column sha256 recorded in its manifest (columns {fields})", dataset)
    return True


def _tmp_pattern(name: str) -> re.Pattern[str]:
    # tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp"): 8 random characters in between
    return re.compile(rf"\.{re.escape(name)}\.[a-z0-9_]{{8}}\.tmp")


def remove_orphans(path: Path, *, older_than: float = 0.0) -> int:
    """Remove temporary files a killed writer of ``path`` left behind; returns how many.

    Call it while holding ``path``'s write lock: every writer of ``path`` holds that lock while
    its temporary file exists, so any other temporary file of ``path`` is an orphan.
    """
    pattern = _tmp_pattern(path.name)
    removed = 0
    now = time.time()
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return 0
    for entry in entries:
        if not pattern.fullmatch(entry.name):
            continue
        try:
            if now - entry.stat().st_mtime >= older_than:
                os.unlink(entry.path)
                removed += 1
        except OSError:
            continue
    return removed


def _digest(table: pa.Table) -> str:
    frame = table.to_pandas()
    h = hashlib.sha256(json.dumps([str(c) for c in frame.columns]).encode())
    h.update(np.ascontiguousarray(pd.util.hash_pandas_object(frame, index=True).to_numpy()).tobytes())
    return h.hexdigest()


def table_with_digest(frame: pd.DataFrame) -> pa.Table:
    """``frame`` as an Arrow table carrying the sha256 of its content (for files without a manifest)."""
    table = pa.Table.from_pandas(frame, preserve_index=True)
    return table.replace_schema_metadata({**(table.schema.metadata or {}), DIGEST_KEY: _digest(table).encode()})


def check_digest(table: pa.Table, path: Path, what: str) -> None:
    """Raise :class:`CorruptDatasetError` when a table written by :func:`table_with_digest` changed."""
    expected = (table.schema.metadata or {}).get(DIGEST_KEY)
    if expected is None:
        return
    try:
        ok = _digest(table).encode() == expected
    except Exception:
        ok = False
    if not ok:
        raise _corrupt(path, "does not match the sha256 recorded in it", what)
