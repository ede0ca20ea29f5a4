"""Alert channels: the channel file, the signed webhook and e-mail, against local receivers."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from research.alerts.channels import (
    ConfigError,
    EmailChannel,
    SendError,
    WebhookChannel,
    load_config,
    parse_config,
    sign,
)

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-hook-7d1e"
PASSWORD = "pw-smtp-42c9"
_spec = importlib.util.spec_from_file_location("wb_alert_receivers", Path(__file__).with_name("receivers.py"))
receivers = sys.modules.setdefault("wb_alert_receivers", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(receivers)

ALERT = {"id": "a" * 64, "kind": "drawdown", "severity": "critical", "subject": "SPX",
         "message": "SPX is 19.8% below its 252-bar high", "as_of": "2018-12-31", "source": "signals",
         "created": "2026-12-05T06:00:00", "payload": {"value": -0.198, "threshold": -0.15}}


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An isolated project root whose .env the channels read."""
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    for name in ("WORKBENCH_WEBHOOK_SECRET", "WORKBENCH_SMTP_PASSWORD", "WORKBENCH_ALERTS_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture
def hook():
    receiver = receivers.WebhookReceiver(SECRET).start()
    yield receiver
    receiver.stop()


# ---------------------------------------------------------------- configuration
def test_the_example_file_is_valid_and_names_secrets_only_by_variable():
    cfg = load_config(ROOT / "alerts.example.yaml")
    assert {c.type for c in cfg.channels.values()} == {"webhook", "email"}
    text = (ROOT / "alerts.example.yaml").read_text()
    assert "secret_env:" in text and "password_env:" in text
    web = next(c for c in cfg.channels.values() if c.type == "webhook")
    assert web.quiet_hours is not None and web.rate_limit is not None


@pytest.mark.parametrize(("spec", "expected"), [
    ({"type": "sms"}, "channel 'x': field 'type' must be 'webhook' or 'email'"),
    ({"type": "webhook", "secret_env": "S"}, "channel 'x': give exactly one of 'url' or 'url_env'"),
    ({"type": "webhook", "url": "ftp://h/", "secret_env": "S"}, "channel 'x': field 'url' must be an http(s) URL"),
    ({"type": "webhook", "url": "http://h/"}, "channel 'x': field 'secret_env' is required"),
    ({"type": "webhook", "url": "http://h/", "secret": "abc"}, "secrets go in environment variables"),
    ({"type": "webhook", "url": "http://h/", "secret_env": "not a name!"}, "field 'secret_env' must be the NAME"),
    ({"type": "webhook", "url": "http://h/", "secret_env": "S", "min_severity": "loud"}, "field 'min_severity' must be one of"),
    ({"type": "webhook", "url": "http://h/", "secret_env": "S", "severities": ["info", "bad"]}, "unknown value(s) ['bad']"),
    ({"type": "webhook", "url": "http://h/", "secret_env": "S", "retries": -1}, "field 'retries' must be at least 0"),
    ({"type": "webhook", "url": "http://h/", "secret_env": "S", "rate_limit": {"count": 0, "per": "1h"}},
     "channel 'x' rate_limit: field 'count' must be at least 1"),
    ({"type": "webhook", "url": "http://h/", "secret_env": "S", "rate_limit": {"count": 2, "per": "soon"}},
     "channel 'x' rate_limit.per: expected a duration"),
    ({"type": "webhook", "url": "http://h/", "secret_env": "S", "quiet_hours": {"start": "22:00", "end": "07:00",
                                                                                "timezone": "Mars/Base"}},
     "channel 'x' quiet_hours.timezone: unknown time zone 'Mars/Base'"),
    ({"type": "email", "host": "h", "from": "a@b"}, "channel 'x': field 'to' is required"),
    ({"type": "email", "to": "c@d", "from": "a@b"}, "channel 'x': field 'host' is required"),
    ({"type": "email", "host": "h", "from": "a@b", "to": "c@d", "username": "u"}, "field 'password_env' is required"),
    ({"type": "email", "host": "h", "from": "a@b", "to": "c@d", "password": "pw"}, "secrets go in environment variables"),
    ({"type": "email", "host": "h", "from": "a@b", "to": "c@d", "starttls": "no"}, "field 'starttls' must be true or false"),
    ({"type": "webhook", "url": "http://h/", "secret_env": "S", "quiet_hours": {"start": "22:00", "end": "07:00",
                                                                                "allow_critical": "yes"}},
     "channel 'x' quiet_hours: field 'allow_critical' must be true or false"),
])
def test_invalid_channels_are_refused_naming_channel_and_field(spec, expected):
    with pytest.raises(ConfigError) as err:
        parse_config({"channels": {"x": spec}})
    assert expected in str(err.value)
    assert "abc" not in str(err.value) and "pw" not in str(err.value).replace("password_env", "")


def test_config_file_location_and_quiet_hours_parsing(home, monkeypatch):
    assert load_config().channels == {}  # no alerts.yaml: nothing configured, not an error
    (home / "alerts.yaml").write_text(
        "channels:\n  ops:\n    type: webhook\n    url: http://127.0.0.1:9/hook\n    secret_env: WORKBENCH_WEBHOOK_SECRET\n"
        "    quiet_hours: {start: 22:00, end: \"07:00\", timezone: Europe/London}\n")
    cfg = load_config()
    qh = cfg.channel("ops").quiet_hours
    assert (qh.start.hour, qh.end.hour) == (22, 7)  # unquoted 22:00 (YAML sexagesimal) is understood
    assert qh.holds("critical", datetime(2026, 1, 5, 23, 30, tzinfo=UTC))
    assert not qh.holds("info", datetime(2026, 1, 5, 12, 0, tzinfo=UTC))
    with pytest.raises(ConfigError, match="no channel 'desk'"):
        cfg.channel("desk")
    monkeypatch.setenv("WORKBENCH_ALERTS_CONFIG", str(home / "elsewhere.yaml"))
    with pytest.raises(ConfigError, match="elsewhere.yaml does not exist"):
        load_config()
    (home / "elsewhere.yaml").write_text("channels: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config()


# ---------------------------------------------------------------- webhook
def test_webhook_posts_signed_json_with_timestamp_and_idempotency_key(home, hook, monkeypatch):
    monkeypatch.setenv("WORKBENCH_WEBHOOK_SECRET", SECRET)
    WebhookChannel("ops", url=hook.url, secret_env="WORKBENCH_WEBHOOK_SECRET").send(ALERT)
    (req,) = hook.requests
    assert req.signature_ok
    assert req.headers["X-Workbench-Signature"] == f"sha256={sign(SECRET, req.body)}"
    assert req.headers["Idempotency-Key"] == ALERT["id"]
    assert req.headers["Content-Type"] == "application/json"
    body = req.json
    assert body["sent_at"] == req.headers["X-Workbench-Timestamp"]  # the timestamp is signed too
    assert {k: body[k] for k in ("id", "kind", "severity", "subject", "message")} == {
        k: ALERT[k] for k in ("id", "kind", "severity", "subject", "message")}
    assert body["payload"] == ALERT["payload"] and body["channel"] == "ops"
    assert SECRET not in req.body.decode() and SECRET not in json.dumps(req.headers)


def test_webhook_secret_and_url_come_from_dotenv(home, hook):
    (home / ".env").write_text(f"WORKBENCH_WEBHOOK_SECRET={SECRET}\nWORKBENCH_HOOK_URL={hook.url}\n")
    WebhookChannel("ops", url_env="WORKBENCH_HOOK_URL", secret_env="WORKBENCH_WEBHOOK_SECRET").send(ALERT)
    assert hook.requests[0].signature_ok


def test_webhook_errors_name_the_variable_never_the_secret(home, hook, monkeypatch):
    channel = WebhookChannel("ops", url=hook.url, secret_env="WORKBENCH_WEBHOOK_SECRET", timeout=5)
    with pytest.raises(SendError) as err:
        channel.send(ALERT)
    assert "WORKBENCH_WEBHOOK_SECRET is not set" in str(err.value) and not err.value.retryable
    monkeypatch.setenv("WORKBENCH_WEBHOOK_SECRET", SECRET)
    hook.fail_with = [503, 401]
    with pytest.raises(SendError) as err:
        channel.send(ALERT)
    assert err.value.retryable and "HTTP 503" in str(err.value)
    with pytest.raises(SendError) as err:
        channel.send(ALERT)
    assert not err.value.retryable and "HTTP 401" in str(err.value)
    down = WebhookChannel("ops", url=f"http://127.0.0.1:{receivers.free_port()}/hook?token=tok-9f2",
                          secret_env="WORKBENCH_WEBHOOK_SECRET", timeout=5)
    with pytest.raises(SendError) as err:
        down.send(ALERT)
    assert err.value.retryable and "unreachable" in str(err.value)
    assert "tok-9f2" not in str(err.value) and SECRET not in str(err.value)  # a token in the URL stays out too
    creds = WebhookChannel("ops", url=f"http://user:pass-8e1@127.0.0.1:{receivers.free_port()}/h", secret_env="X")
    assert "pass-8e1" not in creds.describe() and creds.describe().startswith("webhook http://127.0.0.1:")


# ---------------------------------------------------------------- e-mail
def test_email_is_delivered_to_a_local_smtp_server(home):
    server = receivers.SmtpReceiver().start()
    try:
        EmailChannel("desk", host="127.0.0.1", port=server.port, sender="wb@example.com",
                     to=("desk@example.com", "ops@example.com"), timeout=10).send(ALERT)
    finally:
        server.stop()
    (msg,) = server.messages
    assert msg["from"] == "wb@example.com" and msg["to"] == ["desk@example.com", "ops@example.com"]
    assert "Subject: [workbench] CRITICAL drawdown: SPX" in msg["data"]
    assert f"Message-ID: <{ALERT['id']}.desk@workbench>" in msg["data"]
    assert ALERT["message"] in msg["data"]


def test_email_with_starttls_and_login_password_from_the_environment(home, tmp_path, monkeypatch):
    cert, key = receivers.self_signed(tmp_path)
    server = receivers.SmtpReceiver(users={"wb": PASSWORD}, tls_files=(cert, key)).start()
    channel = EmailChannel("desk", host="127.0.0.1", port=server.port, sender="wb@example.com", to=("d@example.com",),
                           starttls=True, username="wb", password_env="WORKBENCH_SMTP_PASSWORD", ca_file=str(cert))
    try:
        with pytest.raises(SendError, match="WORKBENCH_SMTP_PASSWORD is not set"):
            channel.send(ALERT)
        monkeypatch.setenv("WORKBENCH_SMTP_PASSWORD", "wrong")
        with pytest.raises(SendError, match="login refused") as err:
            channel.send(ALERT)
        assert "wrong" not in str(err.value)
        monkeypatch.setenv("WORKBENCH_SMTP_PASSWORD", PASSWORD)
        channel.send(ALERT)
    finally:
        server.stop()
    (msg,) = server.messages
    assert msg["tls"] and msg["authenticated"] and PASSWORD not in msg["data"]


def test_email_server_down_is_a_retryable_error(home):
    channel = EmailChannel("desk", host="127.0.0.1", port=receivers.free_port(), sender="a@b", to=("c@d",), timeout=5)
    with pytest.raises(SendError) as err:
        channel.send(ALERT)
    assert err.value.retryable


def test_the_documented_channel_example_is_valid():
    import re

    import yaml

    text = (ROOT / "docs" / "alerts.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(.*?)```", text, re.S).group(1)
    cfg = parse_config(yaml.safe_load(block))
    assert sorted(cfg.channels) == ["desk", "ops"] and cfg.channel("desk").starttls


def test_email_over_smtps_checks_the_certificate(home, tmp_path):
    cert, key = receivers.self_signed(tmp_path)
    server = receivers.SmtpReceiver(tls_files=(cert, key), implicit_tls=True).start()
    try:
        untrusted = EmailChannel("desk", host="127.0.0.1", port=server.port, sender="a@b", to=("c@d",), use_ssl=True,
                                 timeout=5)
        with pytest.raises(SendError):
            untrusted.send(ALERT)  # a self-signed certificate is refused unless named by ca_file
        EmailChannel("desk", host="127.0.0.1", port=server.port, sender="a@b", to=("c@d",), use_ssl=True,
                     ca_file=str(cert), timeout=5).send(ALERT)
    finally:
        server.stop()
    assert len(server.messages) == 1  # only the connection that verified the certificate got through


# ---------------------------------------------------------------- deadlines and error kinds
def test_a_trickling_webhook_is_cut_at_the_total_deadline(home, monkeypatch):
    monkeypatch.setenv("WORKBENCH_WEBHOOK_SECRET", SECRET)
    slow = receivers.Trickler(receivers.HTTP_OK, delay=0.5).start()  # 20 s for the whole answer
    try:
        channel = WebhookChannel("ops", url=slow.url, secret_env="WORKBENCH_WEBHOOK_SECRET", timeout=1.0)
        start = time.monotonic()
        with pytest.raises(SendError) as err:
            channel.send(ALERT)
        took = time.monotonic() - start
    finally:
        slow.stop()
    assert 1.0 <= took < 1.5, took  # each read came within the timeout; the call as a whole did not
    assert err.value.kind == "timeout" and err.value.retryable and "total deadline" in str(err.value)
    slow = receivers.Trickler(receivers.HTTP_OK, delay=0.5).start()
    try:  # a shorter deadline given by the caller (what is left of a delivery run) wins
        channel = WebhookChannel("ops", url=slow.url, secret_env="WORKBENCH_WEBHOOK_SECRET", timeout=1.0)
        start = time.monotonic()
        with pytest.raises(SendError) as err:
            channel.send(ALERT, timeout=0.3)
        took = time.monotonic() - start
    finally:
        slow.stop()
    assert took < 0.8 and err.value.kind == "timeout"


def test_a_trickling_smtp_server_is_cut_at_the_total_deadline(home):
    slow = receivers.Trickler(receivers.SMTP_GREETING, delay=0.5, http=False).start()
    try:
        channel = EmailChannel("desk", host="127.0.0.1", port=slow.port, sender="a@b", to=("c@d",), timeout=1.0)
        start = time.monotonic()
        with pytest.raises(SendError) as err:
            channel.send(ALERT)
        took = time.monotonic() - start
    finally:
        slow.stop()
    assert 1.0 <= took < 1.5, took
    assert err.value.kind == "timeout" and err.value.retryable


def test_email_reports_each_refused_recipient(home):
    server = receivers.SmtpReceiver().start()
    server.handler.refuse = {"gone@example.com": "550 5.1.1 no such user", "busy@example.com": "450 4.2.1 busy"}
    channel = EmailChannel("desk", host="127.0.0.1", port=server.port, sender="wb@example.com",
                           to=("desk@example.com", "gone@example.com", "busy@example.com"), timeout=5)
    try:
        refused = channel.send(ALERT)
        assert refused == {"gone@example.com": (550, "5.1.1 no such user"), "busy@example.com": (450, "4.2.1 busy")}
        assert server.messages[0]["to"] == ["desk@example.com"]
        with pytest.raises(SendError) as err:  # nobody accepted: an error that still names each address
            channel.send(ALERT, recipients=("gone@example.com",))
    finally:
        server.stop()
    assert err.value.kind == "rejected" and not err.value.retryable
    assert err.value.refused == {"gone@example.com": (550, "5.1.1 no such user")}


@pytest.mark.parametrize("case", ["starttls_missing", "login_refused", "unknown_host", "sender_refused"])
def test_smtp_configuration_errors_are_named_and_not_retryable(home, tmp_path, monkeypatch, case):
    cert, key = receivers.self_signed(tmp_path)
    server = receivers.SmtpReceiver(users={"wb": PASSWORD} if case == "login_refused" else None,
                                    tls_files=(cert, key) if case == "login_refused" else None).start()
    monkeypatch.setenv("WORKBENCH_SMTP_PASSWORD", "wrong-pw-1")
    opts = {"starttls_missing": {"starttls": True},
            "login_refused": {"starttls": True, "username": "wb", "password_env": "WORKBENCH_SMTP_PASSWORD",
                              "ca_file": str(cert)},
            "unknown_host": {"host": "wb-no-such-host.invalid"},
            "sender_refused": {}}[case]
    if case == "sender_refused":
        async def refuse_sender(server_, session, envelope, address, mail_options):
            return "553 5.7.1 sender not allowed"
        server.handler.handle_MAIL = refuse_sender
    channel = EmailChannel("desk", **{"host": "127.0.0.1", "port": server.port, "sender": "wb@example.com",
                                      "to": ("d@example.com",), "timeout": 5, **opts})
    try:
        with pytest.raises(SendError) as err:
            channel.send(ALERT)
    finally:
        server.stop()
    assert err.value.configuration and not err.value.retryable, str(err.value)
    expected = {"starttls_missing": "does not offer STARTTLS", "login_refused": "login refused (SMTP 535)",
                "unknown_host": "unknown host wb-no-such-host.invalid", "sender_refused": "sender wb@example.com refused"}
    assert expected[case] in str(err.value) and "wrong-pw-1" not in str(err.value)
    assert server.messages == []


def test_webhook_configuration_errors_are_named_and_not_retryable(home, hook, monkeypatch):
    monkeypatch.setenv("WORKBENCH_WEBHOOK_SECRET", SECRET)
    cases = {"http://wb-no-such-host.invalid/hook": "unknown host",
             "http://exa mple.com/hook": "malformed webhook URL", "http:///hook": "malformed webhook URL",
             "http://127.0.0.1:99999/hook": "malformed webhook URL", "mailto:x@y": "malformed webhook URL"}
    for target, expected in cases.items():
        monkeypatch.setenv("WORKBENCH_HOOK_URL", target)
        with pytest.raises(SendError) as err:
            WebhookChannel("ops", url_env="WORKBENCH_HOOK_URL", secret_env="WORKBENCH_WEBHOOK_SECRET", timeout=5).send(ALERT)
        assert err.value.configuration and expected in str(err.value), (target, str(err.value))
    hook.fail_with = [404, 401, 400]
    kinds = []
    for _ in range(3):
        with pytest.raises(SendError) as err:
            WebhookChannel("ops", url=hook.url, secret_env="WORKBENCH_WEBHOOK_SECRET", timeout=5).send(ALERT)
        kinds.append(err.value.kind)
    assert kinds == ["configuration", "configuration", "rejected"]
    with pytest.raises(ConfigError, match="with a host"):
        parse_config({"channels": {"x": {"type": "webhook", "url": "http:///hook", "secret_env": "S"}}})


def test_https_webhook_checks_the_certificate_and_a_stalled_handshake_is_cut(home, tmp_path, monkeypatch):
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    cert, key = receivers.self_signed(tmp_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert), str(key))
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("WORKBENCH_WEBHOOK_SECRET", SECRET)
    channel = WebhookChannel("ops", url=f"https://127.0.0.1:{server.server_address[1]}/hook",
                             secret_env="WORKBENCH_WEBHOOK_SECRET", timeout=5)
    stalled = receivers.Trickler(b"x" * 100, delay=0.5, http=False).start()  # never completes a handshake
    try:
        with pytest.raises(SendError) as err:
            channel.send(ALERT)
        assert err.value.configuration and "certificate not trusted" in str(err.value)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
        assert channel.send(ALERT) == {}
        slow = WebhookChannel("ops", url=f"https://127.0.0.1:{stalled.port}/hook", secret_env="WORKBENCH_WEBHOOK_SECRET",
                              timeout=1.0)
        start = time.monotonic()
        with pytest.raises(SendError) as err:
            slow.send(ALERT)
        assert err.value.kind == "timeout" and time.monotonic() - start < 1.5
    finally:
        stalled.stop()
        server.shutdown()
        server.server_close()
