"""The matrix cache behind close_matrix: exact, rebuilt on change, never serving a corrupt or torn read."""

from __future__ import annotations

import errno
import os
import tempfile
import threading
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from research.data import CorruptDatasetError, close_matrix
from research.data import matrix_cache as mc
from research.data.integrity import content_sha256
from research.data.sources.synthetic import SyntheticSource

SYMBOLS = ["SYN0003", "SYN0001", "SYN0002", "SYN0000"]


@pytest.fixture
def src():
    return SyntheticSource(bars=300)


@pytest.fixture
def settled(monkeypatch):
    """Datasets count as settled at once (no racy re-checks), so a hit reads no dataset."""
    monkeypatch.setattr(mc, "RACY_SECONDS", 0.0)


def _no_dataset_reads(store, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a dataset was read on a cached read")

    monkeypatch.setattr(store, "read_field", refuse)


def _cache_files(store):
    return sorted((store.root / "cache" / "matrix").rglob("*.arrow"))


@pytest.mark.parametrize("case", ["synthetic (one calendar)", "sample (ranges outer-joined)"])
def test_cached_matrix_equals_the_per_symbol_path_exactly(store, src, settled, monkeypatch, case):
    if case.startswith("synthetic"):
        names, source = SYMBOLS, src
    else:
        names, source = ["SPX", "GOOG", "MSFT"], "sample"
    want = close_matrix(names, source=source, store=store, cache=False)
    assert _cache_files(store) == []  # cache=False writes nothing
    built = close_matrix(names, source=source, store=store)
    assert len(_cache_files(store)) == 1
    _no_dataset_reads(store, monkeypatch)
    for got in (built, close_matrix(names, source=source, store=store)):
        pd.testing.assert_frame_equal(got, want, check_exact=True)
        assert got.attrs == want.attrs
    permuted = names[::-1]
    got = close_matrix(permuted, source=source, store=store)
    pd.testing.assert_frame_equal(got, want[permuted], check_exact=True)
    ranged = close_matrix(names, start="2000-03-01", end="2000-06-30", source=source, store=store)
    pd.testing.assert_frame_equal(ranged, want.loc["2000-03-01":"2000-06-30"], check_exact=True)
    assert len(_cache_files(store)) == 1  # one file per universe, whatever the order or range


def test_a_new_ingest_of_one_dataset_rebuilds_the_cache(store, src, settled):
    close_matrix(SYMBOLS, source=src, store=store)
    frame = store.read(src.name, "1d", "SYN0002")
    changed = frame.assign(close=frame["close"] * 1.5)
    manifest = store.write(src.name, "1d", "SYN0002", changed)
    got = close_matrix(SYMBOLS, source=src, store=store)
    pd.testing.assert_frame_equal(got, close_matrix(SYMBOLS, source=src, store=store, cache=False), check_exact=True)
    np.testing.assert_array_equal(got["SYN0002"].to_numpy(), changed["close"].to_numpy())
    assert got.attrs["sha256"]["SYN0002"] == manifest["sha256"]
    key = mc.verify_cache_file(_cache_files(store)[0])
    assert key["datasets"]["SYN0002"]["sha256"] == manifest["sha256"]


def _edit_value(path):
    table = pq.read_table(path)
    frame = table.to_pandas()
    frame.iloc[100, frame.columns.get_loc("close")] *= 1.01
    edited = pa.Table.from_pandas(frame, preserve_index=True).replace_schema_metadata(table.schema.metadata)
    pq.write_table(edited, path)


def _flip_keeping_times(path):
    st = os.stat(path)
    meta = pq.ParquetFile(path).metadata.row_group(0)
    chunk = next(meta.column(i) for i in range(meta.num_columns) if meta.column(i).path_in_schema == "close")
    data = bytearray(path.read_bytes())
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    data[start + chunk.total_compressed_size // 2] ^= 0x10  # inside the close column
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size and mtime: only ctime tells


@pytest.mark.parametrize("damage", [_edit_value, _flip_keeping_times], ids=["edited value", "bit flip, mtime kept"])
def test_a_corrupted_dataset_is_refused_not_served_from_the_cache(store, src, settled, damage):
    close_matrix(SYMBOLS, source=src, store=store)
    path = store.path(src.name, "1d", "SYN0001")
    damage(path)
    with pytest.raises(CorruptDatasetError) as err:
        close_matrix(SYMBOLS, source=src, store=store)
    assert str(path) in str(err.value)


def test_a_damaged_cache_file_is_ignored_and_rebuilt(store, src, settled):
    want = close_matrix(SYMBOLS, source=src, store=store, cache=False)
    close_matrix(SYMBOLS, source=src, store=store)
    path = _cache_files(store)[0]
    for damage in (lambda b: b[: len(b) // 2], lambda b: b.replace(b"SYN0001", b"SYN0009", 1)):
        path.write_bytes(damage(path.read_bytes()))
        pd.testing.assert_frame_equal(close_matrix(SYMBOLS, source=src, store=store), want, check_exact=True)
        mc.verify_cache_file(path)  # rebuilt whole


def _edit_in_place(path, old: float, new: float) -> None:
    """Overwrite one cached value in the file itself, keeping its size and times."""
    st = os.stat(path)
    data = path.read_bytes()
    at = data.find(np.float64(old).tobytes())
    assert at > 0 and data.count(np.float64(old).tobytes()) == 1
    with open(path, "r+b") as fh:
        fh.seek(at)
        fh.write(np.float64(new).tobytes())
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_size == st.st_size and os.stat(path).st_mtime_ns == st.st_mtime_ns


def test_a_full_check_finds_an_edited_cached_value(store, src):
    want = close_matrix(SYMBOLS, source=src, store=store)
    path = _cache_files(store)[0]
    _edit_in_place(path, want["SYN0002"].iloc[123], 1234.5)
    with pytest.raises(CorruptDatasetError):
        mc.verify_cache_file(path)


def test_a_cached_matrix_edited_in_place_is_detected_recomputed_and_reported(store, src, settled, caplog):
    want = close_matrix(SYMBOLS, source=src, store=store, cache=False)
    close_matrix(SYMBOLS, source=src, store=store)
    path = _cache_files(store)[0]
    for sym, row in [("SYN0002", 123), ("SYN0000", 0), ("SYN0003", 299)]:
        _edit_in_place(path, want[sym].iloc[row], want[sym].iloc[row] * 1.01)
        with pytest.warns(mc.MatrixCacheWarning, match=rf"does not match its content hash .*{sym}"):
            got = close_matrix(SYMBOLS, source=src, store=store)
        pd.testing.assert_frame_equal(got, want, check_exact=True)  # recomputed, not the edited value
        assert "changed in place" in caplog.text
        mc.verify_cache_file(path)  # rebuilt whole
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rebuilt cache is served quietly
        pd.testing.assert_frame_equal(close_matrix(SYMBOLS, source=src, store=store), want, check_exact=True)


def test_an_edited_index_is_detected(store, src, settled):
    want = close_matrix(SYMBOLS, source=src, store=store, cache=False)
    close_matrix(SYMBOLS, source=src, store=store)
    path = _cache_files(store)[0]
    st = os.stat(path)
    data = bytearray(path.read_bytes())
    stamp = np.int64(want.index[10].value).tobytes()
    at = data.find(stamp)
    data[at:at + 8] = np.int64(want.index[10].value + 3_600_000_000_000).tobytes()  # one hour later
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.warns(mc.MatrixCacheWarning, match="timestamp"):
        got = close_matrix(SYMBOLS, source=src, store=store)
    pd.testing.assert_frame_equal(got, want, check_exact=True)


def test_racy_datasets_are_rechecked_until_their_write_is_old(store, src, monkeypatch):
    monkeypatch.setattr(mc, "RACY_SECONDS", 30.0)
    close_matrix(SYMBOLS, source=src, store=store)  # every dataset was written just now: racy
    path = _cache_files(store)[0]
    assert all(d.get("racy") for d in mc.verify_cache_file(path)["datasets"].values())
    # A rewrite the file times cannot tell apart (same inode, size and times within one clock tick)
    recorded = {s: tuple(d["signature"]) for s, d in mc.verify_cache_file(path)["datasets"].items()}
    frame = store.read(src.name, "1d", "SYN0000")
    store.write(src.name, "1d", "SYN0000", frame.assign(close=frame["close"] + 1.0))
    real = mc.file_signature
    monkeypatch.setattr(mc, "file_signature", lambda p: recorded.get(os.path.basename(p)[:-8]) or real(p))
    got = close_matrix(SYMBOLS, source=src, store=store)
    np.testing.assert_array_equal(got["SYN0000"].to_numpy(), frame["close"].to_numpy() + 1.0)
    monkeypatch.setattr(mc, "file_signature", real)
    close_matrix(SYMBOLS, source=src, store=store)  # rebuilt on the real signatures, still racy
    assert any(d.get("racy") for d in mc.verify_cache_file(path)["datasets"].values())
    monkeypatch.setattr(mc, "RACY_SECONDS", 0.0)  # now the writes are old: a checked read clears the marks
    pd.testing.assert_frame_equal(close_matrix(SYMBOLS, source=src, store=store), got, check_exact=True)
    assert not any(d.get("racy") for d in mc.verify_cache_file(path)["datasets"].values())
    _no_dataset_reads(store, monkeypatch)
    close_matrix(SYMBOLS, source=src, store=store)


def test_an_unwritable_folder_serves_the_matrix_without_caching(store, src, monkeypatch):
    want = close_matrix(SYMBOLS, source=src, store=store, cache=False)

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    pd.testing.assert_frame_equal(close_matrix(SYMBOLS, source=src, store=store), want, check_exact=True)
    assert _cache_files(store) == []


@pytest.mark.parametrize("racy", [0.0, 30.0], ids=["file signatures", "racy re-checks"])
def test_concurrent_writers_and_readers_never_see_a_torn_or_mixed_matrix(store, src, monkeypatch, racy):
    monkeypatch.setattr(mc, "RACY_SECONDS", racy)
    base = close_matrix(SYMBOLS, source=src, store=store, cache=False)
    frames = {s: store.read(src.name, "1d", s) for s in ("SYN0001", "SYN0002")}
    versions = {s: [f.assign(close=f["close"] * (1 + v / 100)) for v in range(12)] for s, f in frames.items()}
    shas = {s: [content_sha256(f) for f in fs] for s, fs in versions.items()}
    stop, problems, reads = threading.Event(), [], [0]

    def write(sym):
        for k in range(600):  # until the readers have raced enough writes
            store.write(src.name, "1d", sym, versions[sym][k % 12])
            if reads[0] >= 40 and k >= 24:
                break
        stop.set()

    def read():
        while not stop.is_set():
            got = close_matrix(SYMBOLS, source=src, store=store)
            reads[0] += 1
            for sym in SYMBOLS:
                col = got[sym].to_numpy()
                if sym not in versions:
                    ok = np.array_equal(col, base[sym].to_numpy())
                else:
                    v = int(round((col[0] / base[sym].iloc[0] - 1) * 100))
                    ok = (0 <= v < 12 and np.array_equal(col, versions[sym][v]["close"].to_numpy())
                          and got.attrs["sha256"][sym] == shas[sym][v])
                if not ok:
                    problems.append(sym)

    threads = [threading.Thread(target=write, args=(s,)) for s in versions]
    threads += [threading.Thread(target=read) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert reads[0] >= 40 and problems == []
    final = close_matrix(SYMBOLS, source=src, store=store)
    pd.testing.assert_frame_equal(final, close_matrix(SYMBOLS, source=src, store=store, cache=False), check_exact=True)
