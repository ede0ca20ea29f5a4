"""Delivery runs under slow, refusing and misconfigured receivers: bounded in time, honest per recipient.

Receivers are local (tests/alerts/receivers.py); backoff waits are recorded, never slept.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from research.alerts import dispatch, outbox
from research.alerts.channels import AlertsConfig, EmailChannel, WebhookChannel
from research.paper.db import connect, dispose

SECRET = "dispatch-secret-91c2"
NOW = datetime(2026, 12, 5, 12, 0)
_spec = importlib.util.spec_from_file_location("wb_alert_receivers", Path(__file__).with_name("receivers.py"))
receivers = sys.modules.setdefault("wb_alert_receivers", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(receivers)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_WEBHOOK_SECRET", SECRET)
    if request.param == "sqlite":
        db = f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        db = request.getfixturevalue("postgres_url")
        with connect(db).begin() as conn:
            for table in (outbox.alert_recipient, outbox.alert_delivery, outbox.alert_channel_problem,
                          outbox.alert_outbox):
                conn.execute(table.delete())
    monkeypatch.setenv("WORKBENCH_LEDGER_URL", db)
    yield db
    if request.param == "sqlite":
        dispose(db)


@pytest.fixture
def smtp():
    server = receivers.SmtpReceiver().start()
    yield server
    server.stop()


@pytest.fixture
def hook():
    receiver = receivers.WebhookReceiver(SECRET).start()
    yield receiver
    receiver.stop()


def alerts(n: int, as_of: str = "2018-12-31") -> list[dict]:
    return [{"subject": f"S{i}", "kind": "drawdown", "severity": "warning", "message": f"S{i} below its high",
             "as_of": as_of} for i in range(n)]


def webhook(target: str, **kw) -> WebhookChannel:
    return WebhookChannel(kw.pop("name", "ops"), url=target, secret_env="WORKBENCH_WEBHOOK_SECRET",
                          timeout=kw.pop("timeout", 5), backoff=0.01, **kw)


def mail(port: int, to: tuple[str, ...] = ("desk@example.com",), **kw) -> EmailChannel:
    return EmailChannel(kw.pop("name", "desk"), host=kw.pop("host", "127.0.0.1"), port=port, sender="wb@example.com",
                        to=to, timeout=5, backoff=0.01, **kw)


def config(*channels) -> AlertsConfig:
    return AlertsConfig({c.name: c for c in channels})


def run(cfg: AlertsConfig, url: str, at: datetime = NOW, **kw) -> dispatch.DeliveryReport:
    return dispatch.deliver(cfg, at, url=url, sleep=lambda s: None, **kw)


# ---------------------------------------------------------------- deadlines
def test_a_trickling_receiver_holds_a_run_no_longer_than_its_deadline(url, hook):
    slow = receivers.Trickler(receivers.HTTP_OK, delay=1.0).start()
    outbox.enqueue(alerts(3), url=url, now=NOW)
    cfg = config(webhook(slow.url, timeout=3, retries=2))
    try:
        start = time.monotonic()
        report = run(cfg, url, deadline=2.0)
        took = time.monotonic() - start
    finally:
        slow.stop()
    assert took < 2.0 + 0.5, took  # 40 s at one byte a second before the total deadline
    rep = report.channels["ops"]
    assert (rep.sent, rep.failed, rep.waiting) == (0, 1, 2)  # one cut, the rest left: the receiver is down
    frame = outbox.alerts_frame(url=url)
    tried = frame[frame["attempts"] > 0].iloc[0]
    assert tried["status"] == "pending" and tried["error_kind"] == "timeout" and "total deadline" in tried["last_error"]
    report = run(config(webhook(hook.url)), url, NOW + timedelta(hours=1))  # retried later, once the receiver answers
    assert report.sent == 3 and outbox.pending(url=url).empty and len(hook.requests) == 3


def test_no_retry_starts_after_the_run_deadline(url):
    slow = receivers.Trickler(receivers.HTTP_OK, delay=1.0).start()
    outbox.enqueue(alerts(1), url=url, now=NOW)
    try:
        start = time.monotonic()
        dispatch.deliver(config(webhook(slow.url, timeout=1, retries=5)), NOW, url=url, deadline=1.5,
                         sleep=lambda s: None)
        took = time.monotonic() - start
    finally:
        slow.stop()
    assert took < 1.5 + 0.5 and slow.connections == 2  # 1 s, then a second attempt cut to the 0.5 s left


# ---------------------------------------------------------------- recipients
def test_a_partial_refusal_is_recorded_per_recipient_and_never_resent_to_the_others(url, smtp):
    smtp.handler.refuse = {"gone@example.com": "550 5.1.1 no such user"}
    cfg = config(mail(smtp.port, to=("desk@example.com", "gone@example.com")))
    outbox.enqueue(alerts(1), url=url, now=NOW)
    report = run(cfg, url)
    assert report.sent == 0 and report.channels["desk"].refused == ["gone@example.com 550"]
    row = outbox.alerts_frame(url=url).iloc[0]
    assert row["status"] == "failed" and row["error_kind"] == "rejected" and "gone@example.com 550" in row["last_error"]
    assert "desk: desk@example.com sent" in row["recipients"] and "gone@example.com failed 550" in row["recipients"]
    recips = outbox.recipients_frame(url=url).set_index("recipient")
    assert recips.loc["desk@example.com", "status"] == "sent" and recips.loc["gone@example.com", "code"] == 550
    assert outbox.reopen(url=url, channel="desk") == 1  # the refused address is dropped from the channel instead:
    only = config(mail(smtp.port, to=("desk@example.com",)))  # nothing is left to send, nothing is sent again
    assert run(only, url, NOW + timedelta(minutes=30)).sent == 1 and len(smtp.messages) == 1
    assert outbox.reopen(url=url, channel="desk") == 0
    with outbox.ledger(url).begin() as conn:  # or fixed on the server's side: reopened, the other is not resent
        conn.execute(outbox.alert_delivery.update().values(status="failed"))
    assert outbox.reopen(url=url, channel="desk") == 1
    smtp.handler.refuse = {}
    assert run(cfg, url, NOW + timedelta(hours=1)).sent == 1
    assert [m["to"] for m in smtp.messages] == [["desk@example.com"], ["gone@example.com"]]


def test_a_temporary_refusal_is_retried_for_that_recipient_only(url, smtp):
    smtp.handler.refuse = {"busy@example.com": ["450 4.2.1 mailbox busy"] * 3}
    cfg = config(mail(smtp.port, to=("desk@example.com", "busy@example.com"), retries=1))
    outbox.enqueue(alerts(1), url=url, now=NOW)
    report = run(cfg, url)  # two attempts: both refused for now
    assert report.channels["desk"].failed == 1 and len(outbox.pending(url=url)) == 1
    row = outbox.alerts_frame(url=url).iloc[0]
    assert row["status"] == "pending" and "busy@example.com pending 450" in row["recipients"]
    assert run(cfg, url, NOW + timedelta(hours=1)).sent == 1  # third refusal, then accepted on the retry
    assert [m["to"] for m in smtp.messages] == [["desk@example.com"], ["busy@example.com"]]
    recips = outbox.recipients_frame(url=url).set_index("recipient")
    assert dict(recips["status"]) == {"busy@example.com": "sent", "desk@example.com": "sent"}
    assert recips.loc["busy@example.com", "attempts"] == 4 and recips.loc["desk@example.com", "attempts"] == 1


# ---------------------------------------------------------------- configuration errors
def test_a_misconfigured_channel_fails_at_once_and_is_reported_once_on_another_channel(url, smtp, hook):
    cfg = config(mail(smtp.port, starttls=True), webhook(hook.url))  # the server offers no STARTTLS
    outbox.enqueue(alerts(3), url=url, now=NOW)
    report = run(cfg, url)
    desk = report.channels["desk"]
    assert (desk.sent, desk.failed, desk.misconfigured, desk.gave_up) == (0, 0, 3, 0)
    assert "does not offer STARTTLS" in report.problems["desk"] and "CONFIGURATION ERROR" in report.summary()
    health = [r.json for r in hook.requests if r.json["kind"] == "pipeline"]
    assert len(health) == 1 and health[0]["subject"] == "desk" and health[0]["severity"] == "critical"
    assert "does not offer STARTTLS" in health[0]["message"] and "workbench alerts retry --channel desk" in health[0]["message"]
    assert len(smtp.messages) == 0 and report.channels["ops"].sent == 4  # three alerts and the one about desk
    frame = outbox.alerts_frame(url=url)
    desk_rows = frame[frame["subject"] != "desk"]
    assert set(desk_rows["error_kind"]) == {"configuration"} and set(desk_rows["status"]) == {"partial"}
    assert "desk: failed" in desk_rows.iloc[0]["channels"] and "desk" not in frame[frame["subject"] == "desk"].iloc[0]["channels"]
    outbox.enqueue(alerts(2, as_of="2019-01-02"), url=url, now=NOW + timedelta(hours=1))
    report = run(cfg, url, NOW + timedelta(hours=1))  # the problem stands: no second alert about it
    assert report.channels["desk"].misconfigured == 2 and report.raised == []
    assert len([r for r in hook.requests if r.json["kind"] == "pipeline"]) == 1
    assert outbox.outbox_summary(url=url)["misconfigured"] == 1
    assert outbox.reopen(url=url, channel="desk") == 5  # fixed: reopened, delivered, problem cleared
    fixed = config(mail(smtp.port), webhook(hook.url))
    assert run(fixed, url, NOW + timedelta(hours=2)).sent == 5 and len(smtp.messages) == 5
    assert outbox.channel_problems(url=url).empty


def test_a_problem_that_clears_and_comes_back_is_reported_again(url, hook):
    dead = receivers.free_port()
    broken = config(webhook(f"http://127.0.0.1:{dead}/hook", name="pager"), webhook(hook.url))
    broken.channels["pager"].url_env, broken.channels["pager"].url = "WB_PAGER_URL", None  # URL from the environment
    outbox.enqueue(alerts(1), url=url, now=NOW)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WB_PAGER_URL", "http://wb-no-such-host.invalid/hook")
        run(broken, url)
        mp.setenv("WB_PAGER_URL", hook.url)
        outbox.enqueue(alerts(1, as_of="2019-01-02"), url=url, now=NOW + timedelta(hours=1))
        assert run(broken, url, NOW + timedelta(hours=1)).channels["pager"].sent == 1  # works again: cleared
        assert outbox.channel_problems(url=url).empty
        mp.setenv("WB_PAGER_URL", "http://wb-no-such-host.invalid/hook")
        outbox.enqueue(alerts(1, as_of="2019-01-03"), url=url, now=NOW + timedelta(hours=2))
        run(broken, url, NOW + timedelta(hours=2))
    about = [r.json for r in hook.requests if r.json["kind"] == "pipeline"]
    assert [a["subject"] for a in about] == ["pager", "pager"] and all("unknown host" in a["message"] for a in about)


def test_with_no_other_channel_the_problem_waits_in_the_outbox(url, smtp):
    cfg = config(mail(smtp.port, starttls=True))
    outbox.enqueue(alerts(1), url=url, now=NOW)
    report = run(cfg, url)
    frame = outbox.alerts_frame(url=url)
    about = frame[frame["source"] == outbox.HEALTH_SOURCE]
    assert len(report.raised) == 1 and list(about["status"]) == ["unrouted"] and list(about["subject"]) == ["desk"]


def test_workbench_alerts_list_and_retry_show_problems_and_recipients(url, smtp, hook):
    from research.cli import app

    smtp.handler.refuse = {"gone@example.com": "550 5.1.1 no such user"}
    outbox.enqueue(alerts(1), url=url, now=NOW)
    run(config(mail(smtp.port, to=("desk@example.com", "gone@example.com"))), url)
    outbox.enqueue(alerts(1, as_of="2019-01-02"), url=url, now=NOW)
    run(config(mail(smtp.port, starttls=True, name="tls"), webhook(hook.url)), url)
    runner = CliRunner()
    out = runner.invoke(app, ["alerts", "list"]).output
    assert "CONFIGURATION ERROR on channel tls" in out and "does not offer STARTTLS" in out
    assert "workbench alerts retry --channel tls" in out
    assert "last error on tls (configuration): email via" in out and "last error on desk (rejected): email via" in out
    assert "recipients: desk: desk@example.com sent; desk: gone@example.com failed 550 5.1.1 no such user" in out
    result = runner.invoke(app, ["alerts", "retry", "--channel", "tls"])
    assert result.exit_code == 0 and "pending again on tls" in result.output
    assert "CONFIGURATION ERROR" not in runner.invoke(app, ["alerts", "list"]).output


def test_a_ledger_made_before_error_kinds_gets_the_column(tmp_path, monkeypatch):
    import sqlalchemy as sa

    monkeypatch.setenv("WORKBENCH_WEBHOOK_SECRET", SECRET)
    db = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(db)
    with engine.begin() as conn:  # the outbox's delivery table as ledgers made before had it
        conn.execute(sa.text("CREATE TABLE alert_delivery (alert_id VARCHAR(64) NOT NULL, channel VARCHAR(100) NOT NULL, "
                             "status VARCHAR(16) DEFAULT 'pending' NOT NULL, attempts INTEGER DEFAULT '0' NOT NULL, "
                             "last_error TEXT, last_attempt_at DATETIME, delivered_at DATETIME, claim VARCHAR(32), "
                             "claimed_until DATETIME, PRIMARY KEY (alert_id, channel))"))
    engine.dispose()
    try:
        outbox.enqueue(alerts(1), url=db, now=NOW)
        assert "error_kind" in {c["name"] for c in sa.inspect(outbox.ledger(db)).get_columns("alert_delivery")}
        report = run(config(webhook(f"http://127.0.0.1:{receivers.free_port()}/hook", retries=0)), db)
        assert report.channels["ops"].failed == 1
        assert list(outbox.alerts_frame(url=db)["error_kind"]) == ["unavailable"]
    finally:
        dispose(db)
