"""The alert outbox: every alert reaches every channel it routes to exactly once, across runs.

Runs on SQLite and, with the ``postgres_url`` fixture of tests/conftest.py, on PostgreSQL.
Receivers are local (a webhook thread and aiosmtpd on 127.0.0.1); backoff waits are recorded,
never slept.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from research.alerts import dispatch, outbox
from research.alerts.channels import (
    AlertsConfig,
    EmailChannel,
    QuietHours,
    RateLimit,
    WebhookChannel,
)
from research.paper.db import connect, dispose

SECRET = "outbox-secret-5b7a"
NOW = datetime(2026, 12, 4, 22, 30)  # naive UTC
_spec = importlib.util.spec_from_file_location("wb_alert_receivers", Path(__file__).with_name("receivers.py"))
receivers = sys.modules.setdefault("wb_alert_receivers", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(receivers)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        db = f"sqlite:///{tmp_path / 'ledger.db'}"
        yield db
        dispose(db)
        return
    try:
        db = request.getfixturevalue("postgres_url")
    except pytest.FixtureLookupError:
        pytest.skip("no postgres_url fixture in tests/conftest.py")
    engine = connect(db)
    with engine.begin() as conn:
        for table in (outbox.alert_recipient, outbox.alert_delivery, outbox.alert_channel_problem, outbox.alert_outbox):
            conn.execute(table.delete())
    yield db


@pytest.fixture(autouse=True)
def secret(monkeypatch):
    monkeypatch.setenv("WORKBENCH_WEBHOOK_SECRET", SECRET)


@pytest.fixture
def hook():
    receiver = receivers.WebhookReceiver(SECRET).start()
    yield receiver
    receiver.stop()


def webhook(url: str, **kw) -> WebhookChannel:
    return WebhookChannel(kw.pop("name", "ops"), url=url, secret_env="WORKBENCH_WEBHOOK_SECRET",
                          timeout=5, backoff=kw.pop("backoff", 0.5), **kw)


def config(*channels) -> AlertsConfig:
    return AlertsConfig({c.name: c for c in channels})


def signal_alerts(n: int = 3, as_of: str = "2018-12-31") -> pd.DataFrame:
    """Rows shaped like the signals stage's ``alerts`` output."""
    kinds = ["drawdown", "price", "volume", "technical"]
    return pd.DataFrame([{"symbol": f"SYM{i}", "kind": kinds[i % 4], "severity": ["critical", "warning", "info"][i % 3],
                          "message": f"SYM{i} moved {i + 1.5:+.2f}% on the last bar", "value": float(i), "threshold": 1.0,
                          "as_of": as_of, "bar_time": pd.Timestamp(as_of, tz="UTC")} for i in range(n)])


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


# ---------------------------------------------------------------- enqueue
def test_enqueue_is_idempotent_and_keeps_the_details(url):
    first = outbox.enqueue(signal_alerts(3), url=url, source="signals", now=NOW)
    assert len(first) == 3
    again = signal_alerts(3)
    again["message"] = again["message"].str.replace("+", "+0")  # a re-run moving a value: the same condition
    assert outbox.enqueue(again, url=url, source="signals", now=NOW + timedelta(hours=1)) == []
    frame = outbox.alerts_frame(url=url)
    assert len(frame) == 3 and set(frame["status"]) == {"unrouted"} and set(frame["source"]) == {"signals"}
    with connect(url).connect() as conn:
        payload = conn.execute(sa.select(outbox.alert_outbox.c.payload)).scalars().first()
    assert '"threshold": 1.0' in payload and '"bar_time": "2018-12-31T00:00:00+00:00"' in payload
    assert len(outbox.enqueue(signal_alerts(1, as_of="2019-01-02"), url=url, now=NOW)) == 1  # a new as-of date: new alert
    with pytest.raises(ValueError, match="severity must be one of"):
        outbox.enqueue([{"kind": "price", "subject": "X", "message": "m", "severity": "loud"}], url=url)


# ---------------------------------------------------------------- delivery
def test_receiver_down_then_up_delivers_each_alert_exactly_once(url, monkeypatch):
    port = receivers.free_port()
    cfg = config(webhook(f"http://127.0.0.1:{port}/hook", retries=2))
    outbox.enqueue(signal_alerts(3), url=url, now=NOW)
    sleeps = Sleeps()
    report = dispatch.deliver(cfg, NOW, url=url, sleep=sleeps)
    ops = report.channels["ops"]
    assert (ops.sent, ops.failed, ops.waiting) == (0, 1, 2)  # the first alert tried 3 times, the rest wait
    assert sleeps == [0.5, 1.0]  # exponential backoff within the run
    assert len(outbox.pending(url=url)) == 3
    assert "unreachable" in outbox.pending(url=url)["last_error"].dropna().iloc[0]

    receiver = receivers.WebhookReceiver(SECRET, port=port).start()
    try:
        report = dispatch.deliver(cfg, NOW + timedelta(hours=1), url=url, sleep=Sleeps())
        assert report.channels["ops"].sent == 3 and outbox.pending(url=url).empty
        assert dispatch.deliver(cfg, NOW + timedelta(hours=2), url=url, sleep=Sleeps()).sent == 0
    finally:
        receiver.stop()
    assert len(receiver.requests) == 3 and len(set(receiver.keys)) == 3
    assert all(r.signature_ok for r in receiver.requests)
    assert [r.json["severity"] for r in receiver.requests] == ["critical", "warning", "info"]  # most severe first
    summary = outbox.outbox_summary(url=url)
    assert summary == {"alerts": 3, "pending": 0, "sent": 3, "failed": 0, "unrouted": 0, "misconfigured": 0}


def test_every_channel_gets_its_own_delivery_and_routing_follows_kinds_and_severities(url, hook):
    smtp = receivers.SmtpReceiver().start()
    try:
        mail = EmailChannel("desk", host="127.0.0.1", port=smtp.port, sender="wb@example.com", to=("d@example.com",),
                            kinds=frozenset({"drawdown", "pipeline"}), timeout=5)
        cfg = config(webhook(hook.url, severities=frozenset({"warning", "critical"})), mail)
        outbox.enqueue(signal_alerts(4), url=url, now=NOW)  # drawdown/critical, price/warning, volume/info, technical/critical
        report = dispatch.deliver(cfg, NOW, url=url, sleep=Sleeps())
    finally:
        smtp.stop()
    assert report.channels["ops"].sent == 3 and report.channels["desk"].sent == 1
    assert sorted(r.json["kind"] for r in hook.requests) == ["drawdown", "price", "technical"]
    assert len(smtp.messages) == 1 and "drawdown: SYM0" in smtp.messages[0]["data"]
    frame = outbox.alerts_frame(url=url)
    assert set(frame.loc[frame["kind"] == "volume", "status"]) == {"unrouted"}
    assert "desk: sent" in frame.loc[frame["kind"] == "drawdown", "channels"].iloc[0]


def test_quiet_hours_hold_alerts_without_dropping_them(url, hook):
    quiet = QuietHours(datetime.strptime("22:00", "%H:%M").time(), datetime.strptime("07:00", "%H:%M").time(),
                       "UTC", allow_critical=True)
    cfg = config(webhook(hook.url, quiet_hours=quiet))
    outbox.enqueue(signal_alerts(3), url=url, now=NOW)
    report = dispatch.deliver(cfg, NOW, url=url, sleep=Sleeps())  # 22:30 UTC: quiet
    assert (report.channels["ops"].sent, report.channels["ops"].held_quiet) == (1, 2)
    assert [r.json["severity"] for r in hook.requests] == ["critical"]
    report = dispatch.deliver(cfg, NOW + timedelta(hours=9), url=url, sleep=Sleeps())  # 07:30: quiet hours over
    assert report.channels["ops"].sent == 2 and len(hook.requests) == 3


def test_rate_limit_sends_at_most_n_per_window_and_the_rest_wait(url, hook):
    cfg = config(webhook(hook.url, rate_limit=RateLimit(2, 3600)))
    outbox.enqueue(signal_alerts(5), url=url, now=NOW)
    assert dispatch.deliver(cfg, NOW, url=url, sleep=Sleeps()).channels["ops"].rate_limited == 3
    assert dispatch.deliver(cfg, NOW + timedelta(minutes=30), url=url, sleep=Sleeps()).sent == 0  # same window
    assert dispatch.deliver(cfg, NOW + timedelta(minutes=61), url=url, sleep=Sleeps()).sent == 2
    assert dispatch.deliver(cfg, NOW + timedelta(minutes=122), url=url, sleep=Sleeps()).sent == 1
    assert len(hook.requests) == 5 and len(set(hook.keys)) == 5


def test_retries_recover_within_a_run_and_permanent_errors_give_up(url, hook):
    cfg = config(webhook(hook.url, retries=3, max_attempts=3))
    outbox.enqueue(signal_alerts(1), url=url, now=NOW)
    hook.fail_with = [503, 502]
    sleeps = Sleeps()
    assert dispatch.deliver(cfg, NOW, url=url, sleep=sleeps).sent == 1
    assert hook.answered == [503, 502, 200] and sleeps == [0.5, 1.0]

    outbox.enqueue(signal_alerts(1, as_of="2019-01-02"), url=url, now=NOW)
    hook.fail_with = [400] * 5
    for hour in range(4):  # a 400 is not retried within a run; after max_attempts the delivery is failed
        dispatch.deliver(cfg, NOW + timedelta(hours=hour), url=url, sleep=Sleeps())
    assert hook.answered[3:] == [400, 400, 400]
    frame = outbox.alerts_frame(url=url)
    failed = frame[frame["as_of"] == "2019-01-02"].iloc[0]
    assert failed["status"] == "failed" and failed["attempts"] == 3 and "HTTP 400" in failed["last_error"]
    assert outbox.outbox_summary(url=url)["failed"] == 1


def test_a_crash_between_send_and_record_resends_once_with_the_same_idempotency_key(url, hook, monkeypatch):
    """The trade-off: recording after the send means a crash in between sends again (at-least-once);
    the receiver sees the same Idempotency-Key and keeps one (exactly once after deduplication)."""
    cfg = config(webhook(hook.url))
    outbox.enqueue(signal_alerts(1), url=url, now=NOW)
    real = dispatch._mark_sent

    def crash(*args, **kwargs):
        raise SystemExit("killed after the receiver accepted, before the outbox recorded it")

    monkeypatch.setattr(dispatch, "_mark_sent", crash)
    with pytest.raises(SystemExit):
        dispatch.deliver(cfg, NOW, url=url, sleep=Sleeps())
    monkeypatch.setattr(dispatch, "_mark_sent", real)
    assert len(outbox.pending(url=url)) == 1
    # within the claim's lease another run leaves it alone; after it the next run sends again
    assert dispatch.deliver(cfg, NOW + timedelta(minutes=5), url=url, sleep=Sleeps()).sent == 0
    assert dispatch.deliver(cfg, NOW + outbox.LEASE + timedelta(seconds=1), url=url, sleep=Sleeps()).sent == 1
    assert len(hook.requests) == 2 and len(hook.unique) == 1
    assert outbox.pending(url=url).empty


def test_two_delivery_runs_at_once_never_send_the_same_alert_twice(url, hook):
    cfg = config(webhook(hook.url))
    outbox.enqueue(signal_alerts(12), url=url, now=NOW)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            dispatch.deliver(cfg, NOW, url=url, sleep=Sleeps())
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(hook.requests) == 12 and len(set(hook.keys)) == 12
    assert outbox.pending(url=url).empty


def test_old_alerts_are_not_routed_to_a_new_channel(url, hook):
    outbox.enqueue(signal_alerts(2), url=url, now=NOW - timedelta(days=10))
    outbox.enqueue(signal_alerts(1, as_of="2019-01-02"), url=url, now=NOW)
    cfg = config(webhook(hook.url))
    assert dispatch.deliver(cfg, NOW, url=url, sleep=Sleeps()).sent == 1
    assert list(outbox.alerts_frame(url=url)["status"].value_counts().sort_index().items()) == [("sent", 1), ("unrouted", 2)]


def test_no_channels_configured_leaves_alerts_waiting(url):
    outbox.enqueue(signal_alerts(2), url=url, now=NOW)
    report = dispatch.deliver(AlertsConfig(), NOW, url=url)
    assert report.sent == 0 and "no alert channels configured" in report.summary()
    assert outbox.outbox_summary(url=url)["unrouted"] == 2


def test_a_spent_deadline_leaves_the_rest_for_the_next_run(url, hook):
    cfg = config(webhook(hook.url))
    outbox.enqueue(signal_alerts(3), url=url, now=NOW)
    report = dispatch.deliver(cfg, NOW, url=url, deadline=0, sleep=Sleeps())
    assert (report.sent, report.channels["ops"].waiting) == (0, 3) and len(outbox.pending(url=url)) == 3
    assert dispatch.deliver(cfg, NOW, url=url, sleep=Sleeps()).sent == 3 and len(hook.requests) == 3
