"""``workbench alerts deliver | list | test`` against a local webhook receiver."""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from research.alerts import outbox
from research.cli import app
from research.paper.db import dispose

SECRET = "cli-secret-a04c"
ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("wb_alert_receivers", ROOT / "tests" / "alerts" / "receivers.py")
receivers = sys.modules.setdefault("wb_alert_receivers", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(receivers)
runner = CliRunner()


@pytest.fixture
def setup(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    monkeypatch.setenv("WORKBENCH_LEDGER_URL", url)
    monkeypatch.setenv("WORKBENCH_WEBHOOK_SECRET", SECRET)
    hook = receivers.WebhookReceiver(SECRET).start()
    down = receivers.free_port()
    cfg = tmp_path / "alerts.yaml"
    cfg.write_text(f"channels:\n  ops:\n    type: webhook\n    url: {hook.url}\n    secret_env: WORKBENCH_WEBHOOK_SECRET\n"
                   f"  dead:\n    type: webhook\n    url: http://127.0.0.1:{down}/hook\n"
                   "    secret_env: WORKBENCH_WEBHOOK_SECRET\n    retries: 0\n    kinds: [drawdown]\n")
    monkeypatch.setenv("WORKBENCH_ALERTS_CONFIG", str(cfg))
    yield url, hook
    hook.stop()
    dispose(url)


def test_deliver_list_and_test(setup, caplog):
    url, hook = setup
    outbox.enqueue([{"symbol": "SPX", "kind": "drawdown", "severity": "critical", "message": "SPX is 21% below its high",
                     "as_of": "2018-12-31"},
                    {"symbol": "GOOG", "kind": "volume", "severity": "warning", "message": "GOOG volume 3.4 sd",
                     "as_of": "2018-12-31"}], url=url, source="signals")
    with caplog.at_level(logging.DEBUG):
        res = runner.invoke(app, ["alerts", "deliver"])
    assert res.exit_code == 1, res.output  # the dead channel failed: kept for the next run
    assert "ops: 2 sent" in res.output and "dead: 0 sent, 1 failed, kept for the next run" in res.output
    assert "outbox: 1 pending, 2 sent, 0 failed" in res.output
    assert len(hook.requests) == 2

    res = runner.invoke(app, ["alerts", "list", "--pending", "--json"])
    assert res.exit_code == 0, res.output
    (row,) = json.loads(res.output)
    assert row["subject"] == "SPX" and row["status"] == "pending" and "dead: pending" in row["channels"]
    res = runner.invoke(app, ["alerts", "list"])
    assert "GOOG" in res.output and "ops: sent" in res.output and "last error on dead (unavailable):" in res.output

    res = runner.invoke(app, ["alerts", "test", "ops"])
    assert res.exit_code == 0 and "sent a test alert to 'ops'" in res.output
    assert hook.requests[-1].json["kind"] == "test" and hook.requests[-1].signature_ok
    assert outbox.outbox_summary(url=url)["alerts"] == 2  # a test alert is not kept
    res = runner.invoke(app, ["alerts", "test", "dead"])
    assert res.exit_code == 1 and "did not accept the test alert" in res.output
    res = runner.invoke(app, ["alerts", "test", "nope"])
    assert res.exit_code == 2 and "no channel 'nope'" in res.output
    everything = res.output + caplog.text + json.dumps([dict(r.headers) for r in hook.requests])
    assert SECRET not in everything


def test_an_invalid_channel_file_is_a_clear_error(tmp_path, monkeypatch):
    bad = tmp_path / "alerts.yaml"
    bad.write_text("channels:\n  ops:\n    type: webhook\n    url: http://127.0.0.1/x\n    secret: plain-text\n")
    res = runner.invoke(app, ["alerts", "deliver", "--config", str(bad)])
    assert res.exit_code == 2
    assert "channel 'ops': unknown field(s) ['secret']" in res.output and "plain-text" not in res.output
