"""Alerts at the end of a pipeline run: the signals stage's alerts and failures reach a channel."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest

from research.alerts import outbox
from research.alerts.delivery import after_run, failure_alert
from research.alerts.rules import ALERT_COLUMNS
from research.paper.db import dispose
from research.workflow.results import write_output
from research.workflow.runner import run_pipeline

SECRET = "run-hook-secret-31f0"
ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("wb_alert_receivers", ROOT / "tests" / "alerts" / "receivers.py")
receivers = sys.modules.setdefault("wb_alert_receivers", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(receivers)


@pytest.fixture
def ledger(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    monkeypatch.setenv("WORKBENCH_LEDGER_URL", url)
    yield url
    dispose(url)


@pytest.fixture
def hook(tmp_path, monkeypatch):
    receiver = receivers.WebhookReceiver(SECRET).start()
    cfg = tmp_path / "alerts.yaml"
    cfg.write_text(f"channels:\n  ops:\n    type: webhook\n    url: {receiver.url}\n"
                   "    secret_env: WORKBENCH_WEBHOOK_SECRET\n    retries: 0\n")
    monkeypatch.setenv("WORKBENCH_ALERTS_CONFIG", str(cfg))
    monkeypatch.setenv("WORKBENCH_WEBHOOK_SECRET", SECRET)
    yield receiver
    receiver.stop()


def _alerts(as_of: str = "2018-12-31") -> pd.DataFrame:
    return pd.DataFrame([
        {"symbol": "SPX", "kind": "drawdown", "severity": "critical", "message": "SPX is 19.8% below its 252-bar high",
         "value": -0.198, "threshold": -0.2, "as_of": as_of, "bar_time": pd.Timestamp(as_of, tz="UTC")},
        {"symbol": "GOOG", "kind": "technical", "severity": "info", "message": "GOOG RSI(14) 28: oversold",
         "value": 28.0, "threshold": 30.0, "as_of": as_of, "bar_time": pd.Timestamp(as_of, tz="UTC")},
    ], columns=ALERT_COLUMNS)


def test_a_completed_run_enqueues_its_signal_alerts_and_delivers_them_once(tmp_path, ledger, hook):
    run_dir = tmp_path / "run"
    write_output(run_dir / "outputs", "alerts", _alerts())
    record = {"pipeline": "daily", "run_id": "r1", "as_of": "2018-12-31", "status": "COMPLETED"}
    lines: list[str] = []
    after_run(record, run_dir, echo=lines.append)
    after_run({**record, "run_id": "r2"}, run_dir, echo=lines.append)  # a forced re-run of the same day
    assert sorted(r.json["subject"] for r in hook.requests) == ["GOOG", "SPX"]
    assert all(r.signature_ok for r in hook.requests)
    assert lines[0].startswith("alerts: 2 new; ops: 2 sent") and lines[1].startswith("alerts: 0 new")
    assert set(outbox.alerts_frame(url=ledger)["source"]) == {"signals"}


@pytest.mark.slow
def test_a_failed_pipeline_run_sends_a_critical_alert(tmp_path, ledger, hook, toys):
    spec = toys.two_stage_spec(tmp_path, "toy-alert", hooks={"after_run": ["research.alerts.delivery:after_run"]})
    marker = tmp_path / "break-total"
    marker.touch()
    lines: list[str] = []
    result = run_pipeline(spec, ["as_of=2020-01-03", f"fail_if_exists={marker}"], echo=lines.append)
    assert result.status == "FAILED"
    (req,) = hook.requests
    body = req.json
    assert body["kind"] == "pipeline" and body["severity"] == "critical" and body["subject"] == "toy-alert"
    assert "stage 'total' failed" in body["message"] and f"workbench pipeline resume {result.run_id}" in body["message"]
    assert body["payload"]["stage"] == "total" and body["payload"]["run_id"] == result.run_id
    assert any(line.startswith("alerts: 1 new; ops: 1 sent") for line in lines)
    # the secret never reaches the run's record, notebooks or parameters
    for path in result.run_dir.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path


def test_receiver_down_at_the_end_of_a_run_leaves_the_failure_pending(tmp_path, ledger, monkeypatch):
    port = receivers.free_port()
    cfg = tmp_path / "alerts.yaml"
    cfg.write_text(f"channels:\n  ops:\n    type: webhook\n    url: http://127.0.0.1:{port}/hook\n"
                   "    secret_env: WORKBENCH_WEBHOOK_SECRET\n    retries: 0\n")
    monkeypatch.setenv("WORKBENCH_ALERTS_CONFIG", str(cfg))
    monkeypatch.setenv("WORKBENCH_WEBHOOK_SECRET", SECRET)
    record = {"pipeline": "daily", "run_id": "r9", "as_of": "2018-12-31", "status": "TIMEOUT",
              "error": {"stage": "model", "message": "stage 'model' timed out in cell 3"}}
    lines: list[str] = []
    after_run(record, tmp_path, echo=lines.append)
    assert "1 failed, kept for the next run" in lines[0] and SECRET not in lines[0]
    assert list(outbox.pending(url=ledger)["kind"]) == ["pipeline"]
    receiver = receivers.WebhookReceiver(SECRET, port=port).start()
    try:
        after_run({**record, "status": "COMPLETED"}, tmp_path / "nothing", echo=lines.append)
    finally:
        receiver.stop()
    assert [r.json["kind"] for r in receiver.requests] == ["pipeline"] and outbox.pending(url=ledger).empty


def test_interrupted_runs_only_enqueue_and_bad_channel_files_never_fail_a_run(tmp_path, ledger, monkeypatch):
    record = {"pipeline": "daily", "run_id": "r3", "as_of": "2018-12-31", "status": "INTERRUPTED",
              "error": {"stage": None, "message": "run interrupted: KeyboardInterrupt"}}
    lines: list[str] = []
    after_run(record, tmp_path, echo=lines.append)
    assert "1 new in the outbox; delivery left to the next run" in lines[0]
    bad = tmp_path / "alerts.yaml"
    bad.write_text("channels:\n  ops:\n    type: pager\n")
    monkeypatch.setenv("WORKBENCH_ALERTS_CONFIG", str(bad))
    after_run({**record, "run_id": "r4", "status": "FAILED"}, tmp_path, echo=lines.append)
    assert "not delivered" in lines[1] and "channel 'ops': field 'type'" in lines[1]
    assert failure_alert(record)["key"] == "r3:?:INTERRUPTED"
    assert len(outbox.pending(url=ledger)) == 0 and outbox.outbox_summary(url=ledger)["unrouted"] == 2


def test_paper_drift_alerts_of_the_run_date_are_enqueued(tmp_path, ledger, hook, monkeypatch):
    from research.paper import book, monitor

    account = book.Account(name="demo", strategy="ma_crossover", symbols=["SPX"], pipeline="daily")
    monkeypatch.setattr(book, "list_accounts", lambda **kw: [account] if kw.get("pipeline") == "daily" else [])

    seen: list[dict] = []

    def drift(name, **kw):
        seen.append(kw)
        return [{"id": f"paper-drift:{name}:{day}T00:00", "kind": "paper_drift", "account": name,
                 "as_of": f"{day}T00:00:00+00:00", "tracking_error": 0.03, "band": 0.01, "window": 20,
                 "severity": "warning", "message": f"paper account {name} drifted from its backtest as of {day}"}
                for day in ("2018-06-01", "2018-12-31")]

    monkeypatch.setattr(monitor, "drift_alerts", drift)
    record = {"pipeline": "daily", "run_id": "r5", "as_of": "2018-12-31", "status": "COMPLETED",
              "stage_parameters": {"paper": {"drift_window": 10, "drift_band": 0.02}}}
    after_run(record, tmp_path / "no-outputs", echo=lambda line: None)
    assert (seen[0]["window"], seen[0]["band"]) == (10, 0.02)  # the run's own drift settings
    (req,) = hook.requests  # the crossing of June, seen in a replay, is history: not sent now
    body = req.json
    assert (body["kind"], body["subject"], body["source"]) == ("paper_drift", "demo", "paper")
    assert body["payload"]["tracking_error"] == 0.03


def test_a_channel_secret_is_refused_as_a_pipeline_parameter(tmp_path, hook, toys):
    from research.workflow.spec import SpecError

    spec = toys.two_stage_spec(tmp_path, "toy-secret")
    with pytest.raises(SpecError, match="equals a secret from the environment"):
        run_pipeline(spec, ["as_of=2020-01-03", f"fail_if_exists={SECRET}"])
    assert hook.requests == []
