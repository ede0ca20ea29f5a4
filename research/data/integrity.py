"""Integrity of stored datasets: content hashes, the manifest's own hash, safe decoding.

Every dataset file carries its manifest in the Parquet schema metadata (key ``workbench``)
and, next to it, the sha256 of the manifest's bytes (key ``workbench.sha256``). The manifest
records

* ``sha256``: the content hash of the whole frame (:func:`content_sha256`);
* ``column_sha256``: one hash for the index and one per column (:func:`column_hashes`), so a
  read of a few columns is verified without reading the others.

Data pages are written with Parquet page checksums and read with checksum verification, and
the footer holds ``workbench.integrity``: the sha256 of the whole file with that value replaced
by a fixed placeholder (:func:`parquet_bytes`), so a single flipped bit anywhere in the file
(pages, page headers, schema, statistics, key-value entries) is noticed, even where it would
not change the decoded data; the manifest records ``"integrity": true`` so a file cannot
silently lose the key. A read that cannot decode the file, or whose
bytes, content or manifest do not match their hashes, raises
:class:`~research.data.errors.CorruptDatasetError` naming the file and the remedy (ingest again
with ``refresh=True``); corrupt bytes never come back as data.
"""

from __future__ import annotations

import hashlib
import json
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


_PLACEHOLDER = b"~" * 64


def _hash_with_placeholder(data: bytes, value: bytes) -> tuple[str, bytes] | None:
    """sha256 of ``data`` with ``value`` (in the footer) replaced by the placeholder."""
    start = _footer_start(data)
    at = data.rfind(value, start, len(data) - 8)
    if at < 0 or data.find(value, start, len(data) - 8) != at:
        return None
    filled = data[:at] + _PLACEHOLDER + data[at + len(value):]
    return hashlib.sha256(filled).hexdigest(), filled


def parquet_bytes(table: pa.Table) -> bytes:
    """``table`` as a Parquet file whose footer carries ``workbench.integrity``.

    The value is the sha256 of the whole file with the value itself replaced by a fixed
    placeholder of the same length, so it covers every other byte: pages, page headers,
    schema, statistics and the other key-value entries.
    """
    sink = pa.BufferOutputStream()
    with pq.ParquetWriter(sink, table.schema, **WRITE_OPTIONS) as writer:
        writer.write_table(table)
        writer.add_key_value_metadata({INTEGRITY_KEY: _PLACEHOLDER.decode()})
    draft = sink.getvalue().to_pybytes()
    found = _hash_with_placeholder(draft, _PLACEHOLDER)
    if found is None:  # pragma: no cover - the placeholder is not a run Parquet produces
        raise RuntimeError("cannot place the integrity hash in the Parquet footer")
    digest, filled = found
    at = filled.rfind(_PLACEHOLDER, _footer_start(filled), len(filled) - 8)
    return filled[:at] + digest.encode() + filled[at + len(_PLACEHOLDER):]


def read_parquet(path: Path, columns: list[str] | None, what: str) -> tuple[pa.Table, bool]:
    """Read a Parquet file, checking its ``workbench.integrity`` hash when it has one.

    Returns the table and whether the hash was checked (files written by earlier versions
    have none: they are read with page checksums only). Raises ``FileNotFoundError``,
    ``PermissionError`` or :class:`CorruptDatasetError`.
    """
    with open(path, "rb") as fh:  # one read: a concurrent rename cannot mix two versions
        data = fh.read()
    try:
        metadata = pq.read_metadata(pa.BufferReader(data))
        expected = (metadata.metadata or {}).get(INTEGRITY_KEY.encode())
        if expected is not None:
            found = _hash_with_placeholder(data, expected)
            if found is None or found[0].encode() != expected:
                raise _corrupt(path, "does not match the integrity sha256 in its footer (bytes changed)", what)
        table = pq.read_table(pa.BufferReader(data), columns=columns, page_checksum_verification=True)
        return table, expected is not None
    except CorruptDatasetError:
        raise
    except Exception as exc:  # pyarrow raises OSError, ArrowInvalid, ArrowException, ... on bad bytes
        raise _corrupt(path, f"cannot be decoded ({type(exc).__name__}: {str(exc)[:160]})", what) from None


def read_verified(
    path: Path, columns: list[str] | None, dataset: str
) -> tuple[pa.Table, dict | None]:
    """Read a dataset file (all columns, or ``timestamp`` plus ``columns``) and its manifest.

    A whole read checks the file's integrity hash; a read of some columns reads only those
    (their content is checked against the manifest's per-column hashes). Raises
    ``FileNotFoundError`` when the file does not exist and :class:`CorruptDatasetError` when
    it cannot be decoded, its bytes do not match their integrity hash, or a manifest that records one (``"integrity": true``) comes with a file
    that lacks it. The content is then compared with the manifest by :func:`verify_frame` or
    :func:`verify_columns`.
    """
    if columns is not None:  # a few columns: their content hashes are checked by verify_columns
        try:
            with open(path, "rb") as fh:  # one handle: a concurrent rename cannot mix two versions
                table = pq.read_table(fh, columns=columns, page_checksum_verification=True)
        except (FileNotFoundError, PermissionError):
            raise
        except Exception as exc:
            raise _corrupt(path, f"cannot be decoded ({type(exc).__name__}: {str(exc)[:160]})", dataset) from None
        return table, decode_manifest(table.schema.metadata, path, dataset)
    table, checked = read_parquet(path, None, dataset)
    manifest = decode_manifest(table.schema.metadata, path, dataset)
    if manifest is not None and manifest.get("integrity") and not checked:
        raise _corrupt(path, "has lost the integrity sha256 its manifest says it carries", dataset)
    return table, manifest


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
