"""Alert delivery under receiver faults: nothing lost, nothing delivered twice (after deduplication).

Each fault class runs a few delivery runs against local receivers on 127.0.0.1 and records, per
class, how many alerts the receiver kept (unique idempotency keys) against how many were due,
and how many raw repeats it saw. Figure: faults survived N/N; lost 0; duplicates after
deduplication 0.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from research.alerts import dispatch, outbox
from research.alerts.channels import AlertsConfig, EmailChannel, WebhookChannel
from research.paper.db import dispose

ROOT = Path(__file__).resolve().parents[2]
SECRET = "reliability-secret-0e9d"
NOW = datetime(2026, 12, 5, 12, 0)
GROUP = "alert delivery"
_spec = importlib.util.spec_from_file_location("wb_alert_receivers", ROOT / "tests" / "alerts" / "receivers.py")
receivers = sys.modules.setdefault("wb_alert_receivers", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(receivers)


@pytest.fixture
def url(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_WEBHOOK_SECRET", SECRET)
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    yield db
    dispose(db)


def _alerts(n: int) -> list[dict]:
    return [{"subject": f"S{i}", "kind": "drawdown", "severity": "warning", "message": f"S{i} below its high",
             "as_of": "2018-12-31"} for i in range(n)]


def _hook(endpoint: str, **kw) -> AlertsConfig:
    ch = WebhookChannel("ops", url=endpoint, secret_env="WORKBENCH_WEBHOOK_SECRET", timeout=kw.pop("timeout", 5),
                        backoff=0.01, **kw)
    return AlertsConfig({"ops": ch})


def _runs(cfg: AlertsConfig, url: str, n: int, start: datetime = NOW) -> None:
    for k in range(n):
        dispatch.deliver(cfg, start + timedelta(hours=k), url=url, sleep=lambda s: None)


def _accepted(receiver) -> list[str]:
    """Idempotency keys of the requests the receiver answered with 2xx (repeats included)."""
    return [key for key, code in zip(receiver.keys, receiver.answered, strict=True) if code < 300]


def _record(case, name: str, due: int, receiver, url: str) -> None:
    accepted = _accepted(receiver)
    kept, left = len(set(accepted)), len(outbox.pending(url=url))
    case(GROUP, name, f"{due} kept, 0 pending", f"{kept} kept, {left} pending, {len(receiver.requests)} requests, "
         f"{len(accepted) - kept} accepted twice", kept == due and left == 0)


def test_receiver_down_then_up(case, url):
    port = receivers.free_port()
    outbox.enqueue(_alerts(5), url=url, now=NOW)
    _runs(_hook(f"http://127.0.0.1:{port}/hook"), url, 2)
    receiver = receivers.WebhookReceiver(SECRET, port=port).start()
    try:
        _runs(_hook(receiver.url), url, 2, NOW + timedelta(hours=3))
    finally:
        receiver.stop()
    _record(case, "webhook down for two runs, then up", 5, receiver, url)


def test_flapping_5xx_and_429(case, url):
    receiver = receivers.WebhookReceiver(SECRET, fail_with=[503, 500, 429, 502, 503, 504, 503]).start()
    try:
        outbox.enqueue(_alerts(4), url=url, now=NOW)
        _runs(_hook(receiver.url, retries=1), url, 6)
    finally:
        receiver.stop()
    _record(case, "webhook answering 5xx/429 at random", 4, receiver, url)


def test_stalled_receiver_times_out_and_is_retried(case, url):
    stall, answered_late = threading.Event(), threading.Event()
    receiver = receivers.WebhookReceiver(SECRET).start()
    handler = receiver._server.RequestHandlerClass
    original = handler.do_POST

    def slow(self):
        if stall.is_set():
            return original(self)
        stall.set()
        time.sleep(1.5)  # longer than the channel's 0.5 s timeout: the sender gave up, the receiver did not
        try:
            original(self)  # records the request, then finds the sender gone
        finally:
            answered_late.set()

    handler.do_POST = slow
    try:
        outbox.enqueue(_alerts(2), url=url, now=NOW)
        _runs(_hook(receiver.url, timeout=0.5, retries=0), url, 3)
        answered_late.wait(10)
    finally:
        receiver.stop()
    _record(case, "webhook stalling past the timeout", 2, receiver, url)


def test_crash_after_send_before_record(case, url, monkeypatch):
    receiver = receivers.WebhookReceiver(SECRET).start()
    real = dispatch._mark_sent
    calls = {"n": 0}

    def crash_once(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise SystemExit("killed between the receiver's answer and the outbox's record")
        return real(*args, **kwargs)

    monkeypatch.setattr(dispatch, "_mark_sent", crash_once)
    try:
        outbox.enqueue(_alerts(3), url=url, now=NOW)
        with pytest.raises(SystemExit):
            _runs(_hook(receiver.url), url, 1)
        _runs(_hook(receiver.url), url, 1, NOW + outbox.LEASE + timedelta(seconds=1))
    finally:
        receiver.stop()
    _record(case, "process killed between send and record", 3, receiver, url)
    accepted = _accepted(receiver)
    case(GROUP, "resend after a crash carries the same Idempotency-Key", "1 key accepted twice",
         f"{len(accepted) - len(set(accepted))} accepted twice", len(accepted) - len(set(accepted)) == 1)


def test_concurrent_delivery_runs(case, url):
    receiver = receivers.WebhookReceiver(SECRET).start()
    try:
        outbox.enqueue(_alerts(20), url=url, now=NOW)
        threads = [threading.Thread(target=_runs, args=(_hook(receiver.url), url, 1)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        receiver.stop()
    _record(case, "four delivery runs at once", 20, receiver, url)
    case(GROUP, "raw requests with four concurrent runs", 20, len(receiver.requests), len(receiver.requests) == 20)


def test_smtp_down_then_up(case, url):
    port = receivers.free_port()
    mail = EmailChannel("desk", host="127.0.0.1", port=port, sender="wb@example.com", to=("d@example.com",),
                        timeout=5, retries=0)
    cfg = AlertsConfig({"desk": mail})
    outbox.enqueue(_alerts(3), url=url, now=NOW)
    _runs(cfg, url, 1)
    server = receivers.SmtpReceiver(port=port).start()
    try:
        _runs(cfg, url, 2, NOW + timedelta(hours=1))
    finally:
        server.stop()
    ids = {line for m in server.messages for line in m["data"].splitlines() if line.startswith("Message-ID:")}
    left = len(outbox.pending(url=url))
    case(GROUP, "SMTP server down, then up", "3 kept, 0 pending", f"{len(ids)} kept, {left} pending",
         len(ids) == 3 == len(server.messages) and left == 0)


# ---------------------------------------------------------------- bounded and honest delivery
def _bounded_run(cfg: AlertsConfig, url: str, deadline: float) -> float:
    start = time.monotonic()
    dispatch.deliver(cfg, NOW, url=url, deadline=deadline, sleep=lambda s: None)
    return time.monotonic() - start


def test_trickling_webhook_is_bounded_and_retried(case, url):
    slow = receivers.Trickler(receivers.HTTP_OK, delay=1.0).start()  # 40 s for the whole answer
    outbox.enqueue(_alerts(2), url=url, now=NOW)
    try:
        took = _bounded_run(_hook(slow.url, timeout=3, retries=1), url, deadline=3.0)
    finally:
        slow.stop()
    kinds = set(outbox.alerts_frame(url=url)["error_kind"].dropna())
    receiver = receivers.WebhookReceiver(SECRET).start()
    try:
        _runs(_hook(receiver.url), url, 1, NOW + timedelta(hours=1))
    finally:
        receiver.stop()
    ok = took < 3.5 and kinds == {"timeout"} and len(set(_accepted(receiver))) == 2
    case(GROUP, "webhook trickling its answer 1 byte/s (3 s deadline)", "run <= 3.5 s, timeout recorded, 2 kept later",
         f"run {took:.2f} s, {sorted(kinds)} recorded, {len(set(_accepted(receiver)))} kept later", ok)


def test_trickling_smtp_is_bounded_and_retried(case, url):
    slow = receivers.Trickler(receivers.SMTP_GREETING, delay=1.0, http=False).start()
    outbox.enqueue(_alerts(2), url=url, now=NOW)
    mail = EmailChannel("desk", host="127.0.0.1", port=slow.port, sender="wb@example.com", to=("d@example.com",),
                        timeout=3, retries=1, backoff=0.01)
    try:
        took = _bounded_run(AlertsConfig({"desk": mail}), url, deadline=3.0)
    finally:
        slow.stop()
    kinds = set(outbox.alerts_frame(url=url)["error_kind"].dropna())
    server = receivers.SmtpReceiver().start()
    try:
        mail.port = server.port
        _runs(AlertsConfig({"desk": mail}), url, 1, NOW + timedelta(hours=1))
    finally:
        server.stop()
    ok = took < 3.5 and kinds == {"timeout"} and len(server.messages) == 2
    case(GROUP, "SMTP server trickling its greeting 1 byte/s (3 s deadline)", "run <= 3.5 s, timeout recorded, 2 kept later",
         f"run {took:.2f} s, {sorted(kinds)} recorded, {len(server.messages)} kept later", ok)


def test_partial_recipient_refusal_is_recorded_and_reported(case, url):
    server = receivers.SmtpReceiver().start()
    server.handler.refuse = {"gone@example.com": "550 5.1.1 no such user"}
    mail = EmailChannel("desk", host="127.0.0.1", port=server.port, sender="wb@example.com",
                        to=("desk@example.com", "gone@example.com"), timeout=5, backoff=0.01)
    outbox.enqueue(_alerts(1), url=url, now=NOW)
    try:
        _runs(AlertsConfig({"desk": mail}), url, 3)
    finally:
        server.stop()
    row = outbox.alerts_frame(url=url).iloc[0]
    delivered = [tuple(m["to"]) for m in server.messages]
    ok = (row["status"] == "failed" and "gone@example.com failed 550" in row["recipients"]
          and delivered == [("desk@example.com",)])
    case(GROUP, "one of two recipients refused (550), three runs",
         "failed, refused address reported, the other got it once",
         f"{row['status']}, recipients [{row['recipients']}], deliveries {delivered}", ok)


def _config_case(case, url, name: str, broken, other):
    """A misconfigured channel over three runs: failed at once, tried once per alert, reported once elsewhere."""
    cfg = AlertsConfig({broken.name: broken, other.name: other})
    outbox.enqueue(_alerts(2), url=url, now=NOW)
    _runs(cfg, url, 3)
    frame = outbox.alerts_frame(url=url)
    about = frame[frame["source"] == outbox.HEALTH_SOURCE]
    d = outbox.alert_delivery.c
    with outbox.ledger(url).connect() as conn:
        rows = conn.execute(sa.select(d.status, d.error_kind, d.attempts).where(d.channel == broken.name)).all()
    statuses, kinds = sorted({r.status for r in rows}), sorted({str(r.error_kind) for r in rows})
    attempts = sum(r.attempts for r in rows)
    ok = statuses == ["failed"] and kinds == ["configuration"] and attempts == 1 and len(about) == 1
    case(GROUP, name, "2 failed as configuration, 1 attempt in 3 runs, 1 alert on the other channel",
         f"{len(rows)} {statuses} as {kinds}, {attempts} attempt(s), {len(about)} alert(s) about it", ok)
    return about


def test_starttls_not_offered_is_a_configuration_error(case, url):
    server = receivers.SmtpReceiver().start()
    hook = receivers.WebhookReceiver(SECRET).start()
    try:
        mail = EmailChannel("desk", host="127.0.0.1", port=server.port, sender="a@b", to=("c@d",), starttls=True,
                            timeout=5)
        _config_case(case, url, "SMTP server without STARTTLS (starttls: true)", mail, _hook(hook.url).channels["ops"])
    finally:
        server.stop()
        hook.stop()
    kept = [r.json["subject"] for r in hook.requests if r.json["kind"] == "pipeline"]
    case(GROUP, "the webhook is told the e-mail channel is misconfigured", "['desk'] once", f"{kept}", kept == ["desk"])


def test_login_refused_is_a_configuration_error(case, url, tmp_path, monkeypatch):
    cert, key = receivers.self_signed(tmp_path)
    server = receivers.SmtpReceiver(users={"wb": "right-pw"}, tls_files=(cert, key)).start()
    hook = receivers.WebhookReceiver(SECRET).start()
    monkeypatch.setenv("WB_SMTP_PW", "wrong-pw")
    try:
        mail = EmailChannel("desk", host="127.0.0.1", port=server.port, sender="a@b", to=("c@d",), starttls=True,
                            username="wb", password_env="WB_SMTP_PW", ca_file=str(cert), timeout=5)
        _config_case(case, url, "SMTP login refused (535)", mail, _hook(hook.url).channels["ops"])
    finally:
        server.stop()
        hook.stop()


def test_unknown_host_is_a_configuration_error(case, url):
    server = receivers.SmtpReceiver().start()
    try:
        mail = EmailChannel("desk", host="127.0.0.1", port=server.port, sender="a@b", to=("c@d",), timeout=5)
        about = _config_case(case, url, "webhook host that does not resolve",
                             _hook("http://wb-no-such-host.invalid/hook").channels["ops"], mail)
    finally:
        server.stop()
    told = [m for m in server.messages if "Subject: [workbench] CRITICAL pipeline: ops" in m["data"]]
    case(GROUP, "the e-mail channel is told the webhook is misconfigured", "1 e-mail", f"{len(told)} e-mail(s)",
         len(told) == 1 and len(about) == 1)
