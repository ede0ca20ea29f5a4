"""`workbench train`, `workbench predict` and `workbench mlflow`."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from research.cli import app
from research.cli.models import group_members

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


def test_train_then_predict(tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("preset: tiny\nmax_bars: 400\ntest_size: 60\n")
    res = runner.invoke(app, ["train", "--symbol", "SYN0301", "--source", "synthetic", "--config", str(cfg),
                              "--epochs", "1", "--no-trade", "--experiment", "cli-test"])
    assert res.exit_code == 0, res.output
    for text in ("lstm", "naive", "ridge", "moving_average", "lstm-SYN0301 v1", "MLflow run", "/#/experiments/"):
        assert text in res.output
    client = MlflowClient()
    if any(a == "champion" for a in client.get_registered_model("lstm-SYN0301").aliases):
        client.delete_registered_model_alias("lstm-SYN0301", "champion")
    res = runner.invoke(app, ["predict", "--symbol", "SYN0301", "--source", "synthetic"])
    assert res.exit_code == 1 and "has no champion" in res.output and "--version" in res.output
    res = runner.invoke(app, ["predict", "--symbol", "SYN0301", "--source", "synthetic", "--version", "1"])
    assert res.exit_code == 0, res.output
    assert "SYN0301: forecast made at" in res.output and "for the next 1 bar(s)" in res.output


def test_mlflow_refuses_a_public_bind():
    res = runner.invoke(app, ["mlflow", "--host", "0.0.0.0"])
    assert res.exit_code == 2 and "no authentication" in res.output


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _read_available(proc: subprocess.Popen, seconds: float) -> str:
    """What the command wrote to stdout within ``seconds`` (stops early at end of file)."""
    out, deadline = b"", time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            out += chunk
    return out.decode(errors="replace")


def test_mlflow_ui_serves_on_loopback_and_ctrl_c_stops_its_whole_group():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Started with SIGINT ignored, as a script without job control starts a background command
    # (`workbench mlflow &`) and as some CI runners start the tests: Python then keeps SIGINT
    # ignored unless the command installs its own handler, and Ctrl-C did nothing.
    proc = subprocess.Popen([sys.executable, "-m", "research", "mlflow", "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    ui: list[int] = []
    try:
        deadline = time.monotonic() + 300  # generous: the server starts slowly on a loaded machine
        seen = ""
        while time.monotonic() < deadline and proc.poll() is None and "MLflow UI at" not in seen:
            ui = ui or _children(proc.pid)  # remembered so cleanup reaches them whatever happens
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if ready:
                seen += os.read(proc.stdout.fileno(), 65536).decode(errors="replace")
        assert "MLflow UI at http://127.0.0.1:" in seen, seen[-2000:]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=30) as r:
            assert r.status == 200
        ui = _children(proc.pid) or ui
        assert ui and all(os.getpgid(c) == c for c in ui)  # the UI runs in its own process group
        assert group_members(ui[0])  # the server (and its worker) are alive before Ctrl-C
        proc.send_signal(signal.SIGINT)  # what Ctrl-C delivers to the workbench command
        # the command stops the group (SIGTERM, SIGKILL after 5 s) before it exits; the bound
        # here is generous so a loaded machine cannot make the test flaky
        assert proc.wait(timeout=120) == 0
        assert "stopping the MLflow UI" in seen + _read_available(proc, 10)
        left = {c: group_members(c) for c in ui}
        assert not any(left.values()), f"processes of the UI's group outlived the command: {left}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        for c in set(ui) | set(_children(proc.pid)):
            try:
                os.killpg(c, signal.SIGKILL)
            except ProcessLookupError:
                pass
