"""Team tracking: MLflow's server on PostgreSQL with proxied artifacts, written to at once.

The server is started the way ``workbench mlflow --backend-store-uri ... --artifacts-destination
...`` starts it, in its own process group (killed whole at teardown). PostgreSQL comes from the
session's ``postgres_url`` fixture (skipped only where it is not installed and CI is not set).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from research.cli.models import server_command

WRITERS, THREADS, METRICS = 4, 8, 50


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str, proc: subprocess.Popen, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as resp:  # noqa: S310 - loopback
                if resp.status == 200:
                    return True
        except OSError:
            time.sleep(0.3)
    return False


def _kill_group(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
            os.killpg(proc.pid, 0)  # workers may outlive the parent
        except (subprocess.TimeoutExpired, ProcessLookupError):
            continue


@pytest.fixture(scope="module")
def team_server(postgres_url, tmp_path_factory):
    """``(url, artifacts folder)`` of an MLflow server over a fresh PostgreSQL database."""
    import psycopg2
    from sqlalchemy.engine import make_url

    pg = make_url(postgres_url)
    conn = psycopg2.connect(host=pg.host, port=pg.port, user=pg.username, dbname=pg.database)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE mlflow_team")
    conn.close()
    backend = f"postgresql://{pg.username}@{pg.host}:{pg.port}/mlflow_team"
    root = tmp_path_factory.mktemp("team-tracking")
    artifacts, port = root / "artifacts", _free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    log = (root / "server.log").open("wb")
    proc = subprocess.Popen(server_command(backend, str(artifacts), "127.0.0.1", port), env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        if not _healthy(url, proc, timeout=240):
            pytest.fail(f"the MLflow server did not answer /health:\n{(root / 'server.log').read_text()[-3000:]}")
        yield url, artifacts
    finally:
        _kill_group(proc)
        log.close()


def test_concurrent_writers_persist_every_metric(team_server):
    from mlflow.tracking import MlflowClient

    url, _ = team_server
    client = MlflowClient(url)
    exp = client.create_experiment("concurrency")
    writer = Path(__file__).with_name("server_writer.py")
    procs = [subprocess.Popen([sys.executable, str(writer), url, exp, f"w{w}", str(THREADS), str(METRICS)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for w in range(WRITERS)]
    outs = [p.communicate(timeout=600) for p in procs]
    reports = []
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
        reports.append(json.loads(out.strip().splitlines()[-1]))
    assert [r["errors"] for r in reports] == [[]] * WRITERS
    runs = [rid for r in reports for rid in r["runs"]]
    assert len(set(runs)) == WRITERS * THREADS
    persisted = 0
    for rid in runs:
        run = client.get_run(rid)
        assert run.info.status == "FINISHED"
        assert run.data.metrics == {f"m{i}": float(i) for i in range(METRICS)}
        persisted += len(run.data.metrics)
    assert persisted == WRITERS * THREADS * METRICS  # 100%


class _Double:
    """A tiny pyfunc model: doubles its input."""

    def predict(self, context, model_input, params=None):
        return model_input * 2


def test_registry_and_champion_alias_through_the_server(team_server):
    import mlflow
    import mlflow.pyfunc
    from mlflow.tracking import MlflowClient

    from research.tracking.store import configure, ensure_experiment

    url, artifacts = team_server
    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    try:
        store = configure(tracking_uri=url)
        exp = ensure_experiment("team-models", store)
        client = MlflowClient(url)
        assert client.get_experiment(exp).artifact_location.startswith("mlflow-artifacts:")
        model = type("Double", (mlflow.pyfunc.PythonModel,), {"predict": _Double.predict})()
        with mlflow.start_run(experiment_id=exp):
            info = mlflow.pyfunc.log_model(name="model", python_model=model, pip_requirements=["mlflow"])
        version = mlflow.register_model(info.model_uri, "team-double")
        client.set_registered_model_alias("team-double", "champion", version.version)
        assert client.get_model_version_by_alias("team-double", "champion").version == version.version
        loaded = mlflow.pyfunc.load_model("models:/team-double@champion")
        out = loaded.predict(pd.DataFrame({"x": [1.0, 2.5]}))
        assert list(out["x"]) == [2.0, 5.0]
        assert list(artifacts.rglob("MLmodel")), "artifacts were not stored by the server"
    finally:
        mlflow.set_tracking_uri(before[0])
        mlflow.set_registry_uri(before[1])


def test_server_command_proxies_artifacts(tmp_path):
    cmd = server_command("postgresql://u@db:5432/mlflow", str(tmp_path / "art"), "127.0.0.1", 5001)
    assert cmd[cmd.index("--backend-store-uri") + 1].startswith("postgresql")
    assert "--serve-artifacts" in cmd and cmd[cmd.index("--artifacts-destination") + 1] == (tmp_path / "art").as_uri()
    s3 = server_command("sqlite:///x.db", "s3://bucket/mlflow", "127.0.0.1", 5001)
    assert s3[s3.index("--artifacts-destination") + 1] == "s3://bucket/mlflow"
