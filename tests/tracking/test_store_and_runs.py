"""The tracking store and the run context: WAL, fail-fast, what a run records, parallel writers."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow.tracking import MlflowClient

from research.config import get_settings
from research.data import load_prices
from research.tracking.runs import MAX_PARAM_CHARS, flatten_config, run
from research.tracking.store import (
    TrackingUnavailableError,
    configure,
    ensure_experiment,
    sqlite_path,
)


def test_sqlite_store_in_wal_mode_with_artifacts_under_the_root():
    store = configure()
    db = sqlite_path(store.tracking_uri)
    assert db is not None and db.exists()
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    exp_id = ensure_experiment("store-test")
    location = MlflowClient().get_experiment(exp_id).artifact_location
    assert location == (get_settings().artifact_root / "store-test").resolve().as_uri()
    assert ensure_experiment("store-test") == exp_id


def test_unavailable_stores_fail_fast(monkeypatch, tmp_path):
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    t0 = time.perf_counter()
    with pytest.raises(TrackingUnavailableError, match=f"server at http://127.0.0.1:{port} is unavailable"):
        with run("never", {"a": 1}):
            pytest.fail("the block must not run")
    assert time.perf_counter() - t0 < 10
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{locked}/mlflow.db")
    if os.access(locked, os.W_OK):  # root ignores permissions: use a path under a file instead
        (tmp_path / "file").write_text("x")
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'file'}/sub/mlflow.db")
    with pytest.raises(TrackingUnavailableError, match="tracking"):
        configure()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "file:./mlruns")
    with pytest.raises(TrackingUnavailableError, match="file store"):
        configure()


def test_flatten_config():
    assert flatten_config({"a": 1, "b": {"c": [1, 2], "d": {"e": "x"}}, "f": {}}) == {
        "a": 1, "b.c": [1, 2], "b.d.e": "x", "f": {}}


def test_a_run_records_config_tags_data_and_nan_reasons():
    prices = load_prices("SPX", start="2018-01-01")
    config = {"lookback": 20, "model": {"units": 8, "note": "x" * (MAX_PARAM_CHARS + 50)}}
    with run("runs-test", config, data=prices, run_name="unit", tags={"purpose": "test"}) as r:
        r.log_metrics({"oos/lstm/rmse": 0.01, "oos/naive/ic": float("nan")},
                      reasons={"oos/naive/ic": "the forecast is constant"})
    client = MlflowClient()
    got = client.get_run(r.run_id)
    assert got.info.status == "FINISHED"
    assert got.data.params["lookback"] == "20" and got.data.params["model.units"] == "8"
    assert got.data.params["model.note"].startswith("<300 chars: see artifact params/model.note.txt>")
    tags = got.data.tags
    assert tags["data.sha256"] == prices.attrs["sha256"]["SPX"]
    assert tags["data.source"] == "sample" and tags["data.symbol"] == "SPX" and tags["purpose"] == "test"
    assert len(tags["git.commit"]) == 40 or tags["git.commit"] == "unknown"
    assert tags["nan_reason.oos/naive/ic"] == "the forecast is constant"
    ds = got.inputs.dataset_inputs[0].dataset
    assert ds.digest == prices.attrs["sha256"]["SPX"][:32] and ds.name == "sample/1d/SPX"
    files = {f.path for f in client.list_artifacts(r.run_id)} | {f.path for f in client.list_artifacts(r.run_id, "params")}
    assert {"config.yaml", "params/model.note.txt"} <= files
    text = mlflow.artifacts.load_text(f"{got.info.artifact_uri}/config.yaml")
    assert yaml.safe_load(text) == config  # the run can be re-created from what it recorded
    assert got.info.artifact_uri.startswith(get_settings().artifact_root.resolve().as_uri())


def test_an_exception_ends_the_run_failed_and_propagates():
    with pytest.raises(ZeroDivisionError):
        with run("runs-test", {"a": 1}) as r:
            1 / 0  # noqa: B018
    got = MlflowClient().get_run(r.run_id)
    assert got.info.status == "FAILED"
    assert got.data.tags["error"].startswith("ZeroDivisionError")
    assert mlflow.active_run() is None


WORKER = textwrap.dedent("""
    import sys
    from research.tracking.runs import run
    k = int(sys.argv[1])
    with run("parallel-test", {"worker": k}, run_name=f"w{k}") as r:
        for step in range(40):
            r.log_metrics({"loss": 1.0 / (step + 1), "worker": float(k)}, step=step)
        r.log_dict({"worker": k}, "done.json")
    print(r.run_id)
""")


def test_parallel_processes_lose_nothing(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    procs = [subprocess.Popen([sys.executable, str(script), str(k)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd=Path(__file__).resolve().parents[2]) for k in range(3)]
    ids = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
        ids.append(out.strip().splitlines()[-1])
    client = MlflowClient()
    persisted = 0
    for k, run_id in enumerate(ids):
        got = client.get_run(run_id)
        assert got.info.status == "FINISHED" and got.data.params["worker"] == str(k)
        history = client.get_metric_history(run_id, "loss")
        persisted += len(history) + len(client.get_metric_history(run_id, "worker"))
        assert sorted(m.step for m in history) == list(range(40))
    assert persisted == 3 * 2 * 40  # metrics persisted / expected = 100%
