"""Store faults: concurrent first ingests, bit flips, edited files, read-only folders,
re-ingested quarantine and orphan temporary files."""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from research.data import (
    CorruptDatasetError,
    StaleDataWarning,
    Store,
    StoreError,
    SymbolNotFoundError,
    load_prices,
)
from research.data.sources.files import FilesSource
from research.data.sources.synthetic import SyntheticSource, synthetic_ohlcv
from tests.data.store_worker import PartLive, part_frame

GROUP = "store"
WORKER = Path(__file__).parents[1] / "data" / "store_worker.py"
ROOT = Path(__file__).parents[2]


def _spawn(*args: object) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, str(WORKER), *map(str, args)], cwd=ROOT, env=env)


# ------------------------------------------------------------------ concurrent first ingests
def test_concurrent_first_ingests_keep_every_acknowledged_row(tmp_path, case):
    trials, workers = 4, 4
    acked = lost_commits = unaccounted = 0
    for trial in range(trials):
        root, go = tmp_path / f"t{trial}", tmp_path / f"go{trial}"
        outs = [tmp_path / f"t{trial}-w{w}.json" for w in range(workers)]
        procs = [_spawn("ingest", root, w, workers, go, out, "NEW") for w, out in enumerate(outs)]
        deadline = time.monotonic() + 120
        while not all(Path(str(o) + ".ready").exists() for o in outs):
            assert time.monotonic() < deadline, "ingest workers did not start"
            time.sleep(0.01)
        go.touch()
        assert [p.wait(timeout=120) for p in procs] == [0] * workers
        stored = set(Store(root).read("partlive", "1d", "NEW").index.map(pd.Timestamp.isoformat))
        for out in outs:
            result = json.loads(out.read_text())
            if not result["ack"]:
                continue
            acked += 1
            missing = set(result["rows"]) - stored
            lost_commits += bool(missing)
            unaccounted += len(missing)
    expected_rows = len(set().union(*(part_frame(w, workers).index for w in range(workers))))
    case(GROUP, "concurrent first ingests: lost commits", f"0 of {trials * workers}",
         f"{lost_commits} of {acked} acknowledged", lost_commits == 0 and acked == trials * workers)
    case(GROUP, "concurrent first ingests: rows unaccounted", 0, f"{unaccounted} (of {expected_rows} per trial)",
         unaccounted == 0)


def test_first_and_later_ingests_with_sigkill(tmp_path, case):
    """Six writers of one dataset start at once and two are SIGKILLed at random moments."""
    rng = random.Random(21)
    trials, workers, kills = 4, 6, 2
    acked = lost = unaccounted = torn = 0
    for trial in range(trials):
        root, go = tmp_path / f"k{trial}", tmp_path / f"kgo{trial}"
        later = trial % 2 == 1  # odd trials: the dataset exists before the writers start
        if later:
            Store(root).ingest(PartLive(0, workers), "KILL")
        first = 1 if later else 0
        outs = {w: tmp_path / f"k{trial}-w{w}.json" for w in range(first, workers)}
        procs = {w: _spawn("ingest", root, w, workers, go, out, "KILL") for w, out in outs.items()}
        deadline = time.monotonic() + 120
        while not all(Path(str(o) + ".ready").exists() for o in outs.values()):
            assert time.monotonic() < deadline, "ingest workers did not start"
            time.sleep(0.01)
        go.touch()
        victims = rng.sample(sorted(procs), kills)
        time.sleep(rng.uniform(0.0, 0.3))
        for w in victims:
            procs[w].send_signal(signal.SIGKILL)
        for p in procs.values():
            p.wait(timeout=120)
        try:
            stored = set(Store(root).read("partlive", "1d", "KILL").index.map(pd.Timestamp.isoformat))
        except SymbolNotFoundError:
            stored = set()
        except StoreError:
            torn += 1
            continue
        expect = [set(part_frame(0, workers).index.map(pd.Timestamp.isoformat))] if later else []
        for out in outs.values():
            if out.exists() and json.loads(out.read_text())["ack"]:
                expect.append(set(json.loads(out.read_text())["rows"]))
        acked += len(expect)
        for rows in expect:
            lost += bool(rows - stored)
            unaccounted += len(rows - stored)
    case(GROUP, "first and later ingests with SIGKILL: lost commits", 0,
         f"{lost} of {acked} acknowledged ({trials} trials x {workers} writers, {kills} killed each)", lost == 0)
    case(GROUP, "first and later ingests with SIGKILL: torn or unreadable", 0,
         f"{torn} torn, {unaccounted} rows unaccounted", torn == 0 and unaccounted == 0)


def test_disk_full_keeps_the_previous_version(store, monkeypatch, case):
    old = load_prices("FULL", source="synthetic", store=store)

    def full(fd):  # the bytes are written, then flushing them to disk fails
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    try:
        load_prices("FULL", source="synthetic", refresh=True, store=store)
        observed = "no error"
    except StoreError as exc:
        observed = f"StoreError: {exc}"
    monkeypatch.undo()
    folder = store.path("synthetic", "1d", "FULL").parent
    leftovers = [p.name for p in folder.iterdir() if p.suffix == ".tmp"]
    intact = store.read("synthetic", "1d", "FULL").equals(old)
    case(GROUP, "disk full during a refresh", "StoreError; previous version intact; no temp file",
         f"{observed[:60]}; intact={intact}; temp files {leftovers}",
         observed.startswith("StoreError") and "No space" in observed and intact and not leftovers)


def test_a_later_ingest_keeps_rows_committed_meanwhile(store):
    """An ingest merges into what is stored when it takes the lock, not what it saw before fetching."""
    store.ingest(PartLive(0, 2), "MID")

    class Racing(PartLive):
        def fetch(self, symbol, start, end, interval="1d"):
            store.ingest(PartLive(1, 2), "MID", refresh=True)  # commits while this fetch runs
            return part_frame(self.w, self.n)

    store.ingest(Racing(0, 2), "MID", refresh=True)
    stored = store.read("partlive", "1d", "MID")
    assert stored.index.equals(part_frame(0, 2).index.union(part_frame(1, 2).index))


# ------------------------------------------------------------------------------- bit flips
def _flip(path: Path, original: bytes, offset: int, bit: int) -> None:
    data = bytearray(original)
    data[offset] ^= 1 << bit
    path.write_bytes(bytes(data))


def test_single_bit_flips_never_come_back_as_data(store, case):
    bars = synthetic_ohlcv("FLIP", bars=400)
    bars["adj_close"] = bars["close"] * 0.99
    manifest = store.write("synthetic", "1d", "FLIP", bars)
    path = store.path("synthetic", "1d", "FLIP")
    original = path.read_bytes()
    rng = random.Random(12)
    flips = 120
    detected = harmless = silent = untyped = 0
    for _ in range(flips):
        _flip(path, original, rng.randrange(len(original)), rng.randrange(8))
        outcomes = []
        for read in (lambda: store.read("synthetic", "1d", "FLIP"),
                     lambda: store.read_field("synthetic", "1d", ["FLIP"], "close")[0]["FLIP"]):
            try:
                got = read()
            except StoreError:
                outcomes.append("detected")
                continue
            except Exception:
                outcomes.append("untyped")
                continue
            want = bars if isinstance(got, pd.DataFrame) else bars["close"].rename("FLIP")
            try:
                same = (got.index.equals(want.index) and got.to_numpy().tobytes() == want.to_numpy().tobytes()
                        and store.manifest("synthetic", "1d", "FLIP")["sha256"] == manifest["sha256"])
            except StoreError:
                same = True  # the manifest read noticed
            outcomes.append("harmless" if same else "silent")
        detected += "detected" in outcomes and "silent" not in outcomes and "untyped" not in outcomes
        harmless += set(outcomes) == {"harmless"}
        silent += "silent" in outcomes
        untyped += "untyped" in outcomes
    path.write_bytes(original)
    print(f"\nbit flips: {detected}/{flips} detected, {harmless} served unchanged, {silent} served changed")
    case(GROUP, "single-bit flips detected", f"{flips}/{flips} (0 served as data)",
         f"{detected}/{flips}; {silent} served changed, {harmless} served unchanged, {untyped} untyped errors",
         detected == flips and silent == 0 and untyped == 0)


def test_an_edited_value_in_a_valid_parquet_file_is_refused_then_refresh_repairs(store, case):
    load_prices("EDIT", source="synthetic", store=store)
    path = store.path("synthetic", "1d", "EDIT")
    table = pq.read_table(path)
    frame = table.to_pandas()
    frame.iloc[100, frame.columns.get_loc("close")] *= 1.01
    edited = pa.Table.from_pandas(frame, preserve_index=True).replace_schema_metadata(table.schema.metadata)
    pq.write_table(edited, path)
    try:
        load_prices("EDIT", source="synthetic", store=store)
        observed = "served as data"
    except CorruptDatasetError as exc:
        observed = str(exc)
    ok = observed != "served as data" and str(path) in observed and "refresh" in observed
    case(GROUP, "edited value in a valid Parquet file", "CorruptDatasetError naming the file and refresh",
         observed[:90], ok)
    repaired = load_prices("EDIT", source="synthetic", refresh=True, store=store)
    case(GROUP, "refresh replaces a corrupt dataset", "served again",
         f"{len(repaired)} rows", len(repaired) > 0)


# ------------------------------------------------------------------------- read-only folder
# (the read_only_fs fixture is in conftest.py)


def test_read_only_folder_writes_fail_clearly_and_reads_still_work(store, read_only_fs, case):
    stored = load_prices("RO", source="synthetic", store=store)
    read_only_fs()
    try:
        store.write("synthetic", "1d", "RO2", stored)
        observed = "no error"
    except StoreError as exc:
        observed = f"StoreError: {exc}"
    except OSError as exc:
        observed = f"raw {type(exc).__name__}: {exc}"
    case(GROUP, "read-only folder: write", "StoreError saying the folder is not writable",
         observed[:100], observed.startswith("StoreError") and "not writable" in observed)
    try:
        again = load_prices("RO", source="synthetic", store=store)
        observed = f"{len(again)} rows"
        ok = again.equals(stored)
    except Exception as exc:
        observed, ok = f"{type(exc).__name__}: {exc}", False
    case(GROUP, "read-only folder: read stored data", f"{len(stored)} rows", observed, ok)


def test_read_only_folder_serves_a_live_copy_stale(store, read_only_fs):
    store.ingest(PartLive(0, 1), "ROL")
    read_only_fs()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        res = store.ingest(PartLive(0, 1), "ROL", refresh=True)
    assert res.stale and len(res.frame) == len(part_frame(0, 1))
    assert any(issubclass(w.category, StaleDataWarning) and "not writable" in str(w.message) for w in seen)


def test_read_only_folder_real_chmod(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root ignores permission bits; the EROFS simulation above covers this path")
    store = Store(tmp_path / "data")
    frame = load_prices("CH", source="synthetic", store=store)
    for p in [store.root, *store.root.rglob("*")]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        with pytest.raises(StoreError, match="not writable"):
            store.write("synthetic", "1d", "CH2", frame)
        assert load_prices("CH", source="synthetic", store=store).equals(frame)
    finally:
        for p in [store.root, *store.root.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)


# ---------------------------------------------------------------------------- quarantine
def test_refresh_does_not_append_the_same_quarantined_rows_again(store, tmp_path, case):
    bars = synthetic_ohlcv("QR", bars=40).reset_index()
    bars.loc[5, "close"] = -3.0
    bars.loc[9, "volume"] = -1.0
    bars.to_csv(tmp_path / "QR.csv", index=False)
    sizes = []
    for refresh in (False, True, True):
        res = store.ingest(FilesSource(tmp_path), "QR", refresh=refresh)
        sizes.append((len(store.read_quarantine("files", "1d", "QR")), res.manifest["quarantined"]))
    case(GROUP, "refresh x2: quarantine file rows vs manifest", "[(2, 2), (2, 2), (2, 2)]", sizes,
         sizes == [(2, 2)] * 3)


# ---------------------------------------------------------------------------- orphan .tmp
def test_writers_killed_mid_write_leave_no_orphans_after_the_next_write(tmp_path, case):
    root = tmp_path / "data"
    log = tmp_path / "w.log"
    store = Store(root)
    folder = store.path("test", "1d", "W0").parent
    rng = random.Random(5)
    orphans_seen = 0
    for k in range(6):
        proc = _spawn("writer", root, 0, 1000 * k, log)
        deadline = time.monotonic() + 60
        while not log.exists() or f"W0 0 {1000 * k}" not in log.read_text():
            assert time.monotonic() < deadline, "writer made no progress"
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.05))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        orphans_seen += len(list(folder.glob(".*.tmp")))
    # one orphan per dataset for certain, as a writer killed between mkstemp and rename leaves it
    for name in ("W0", "SHARED"):
        (folder / f".{name}.parquet.k1ll3d00.tmp").write_bytes(b"PAR1 half a file")
    before = len(list(folder.glob(".*.tmp")))
    for name in ("W0", "SHARED"):
        store.write("test", "1d", name, synthetic_ohlcv(name, bars=10))
    after = len(list(folder.glob(".*.tmp")))
    case(GROUP, "orphan .tmp files after the next write", 0,
         f"{after} (were {before}; {orphans_seen} left by 6 SIGKILLed writers)", after == 0 and before >= 2)


def test_orphans_of_other_datasets_are_left_alone(store):
    store.write("synthetic", "1d", "A", synthetic_ohlcv("A", bars=5))
    folder = store.path("synthetic", "1d", "A").parent
    other = folder / ".A.parquet.parquet.abcdefgh.tmp"  # the temporary file of a symbol named "A.parquet"
    other.write_bytes(b"x")
    store.write("synthetic", "1d", "A", synthetic_ohlcv("A", bars=6))
    assert other.exists()


def test_static_ingest_of_a_stored_dataset_is_idempotent(store):
    a = store.ingest(SyntheticSource(), "IDEM2")
    b = store.ingest(SyntheticSource(), "IDEM2", refresh=True)
    assert a.manifest["sha256"] == b.manifest["sha256"]


def test_a_damaged_quarantine_file_is_refused_and_refresh_replaces_it(store, tmp_path, case):
    bars = synthetic_ohlcv("QC", bars=40).reset_index()
    bars.loc[5, "close"] = -3.0
    bars.to_csv(tmp_path / "QC.csv", index=False)
    store.ingest(FilesSource(tmp_path), "QC")
    path = store.path("files", "1d", "QC", kind="quarantine")
    table = pq.read_table(path)
    edited = table.to_pandas()
    edited.iloc[0, edited.columns.get_loc("close")] = 3.0  # a quarantined value rewritten in a valid file
    pq.write_table(pa.Table.from_pandas(edited, preserve_index=True).replace_schema_metadata(table.schema.metadata), path)
    try:
        store.read_quarantine("files", "1d", "QC")
        observed = "served"
    except CorruptDatasetError as exc:
        observed = str(exc)
    store.ingest(FilesSource(tmp_path), "QC", refresh=True)
    again = store.read_quarantine("files", "1d", "QC")
    ok = observed != "served" and "refresh" in observed and len(again) == 1 and again["close"].iloc[0] == -3.0
    case(GROUP, "edited quarantine file", "CorruptDatasetError; refresh rebuilds it",
         f"{observed[:60]}; after refresh {len(again)} row(s)", ok)
