"""Alert channels (a signed webhook, e-mail over SMTP) and the file that configures them.

The channel file is YAML: ``WORKBENCH_ALERTS_CONFIG`` (environment or ``.env``) names it, else
``alerts.yaml`` at the project root; ``alerts.example.yaml`` shows every field. Without a file
no channel is configured and alerts wait in the outbox. Example::

    max_age: 72h                      # alerts older than this are not routed to a new channel
    channels:
      ops:
        type: webhook
        url: https://hooks.example.com/workbench     # or url_env: NAME when the URL holds a token
        secret_env: WORKBENCH_WEBHOOK_SECRET         # the NAME of the variable, never the secret
        kinds: [drawdown, paper_drift, pipeline]           # default: every kind
        min_severity: warning                        # info | warning | critical (or severities: [...])
        timeout: 10                                  # seconds per attempt in total (connect, TLS, send, answer)
        retries: 2                                   # extra attempts within one delivery run
        backoff: 1.0                                 # seconds, doubled after each attempt
        max_attempts: 50                             # over all runs; then the delivery is failed
        rate_limit: {count: 20, per: 1h}
        quiet_hours: {start: "22:00", end: "07:00", timezone: Europe/London, allow_critical: true}
      desk:
        type: email
        host: smtp.example.com
        port: 587
        starttls: true                               # or ssl: true for SMTPS (port 465)
        username: alerts@example.com                 # login is optional
        password_env: WORKBENCH_SMTP_PASSWORD
        from: alerts@example.com
        to: [desk@example.com]

Every call is bounded by the channel's ``timeout`` in total, and its errors have a kind
(:mod:`research.alerts.transport`); a configuration error (unknown host, malformed URL, STARTTLS
not offered, login refused, a secret not set) is not retried (see docs/alerts.md).

Secrets (``secret_env``, ``password_env``, ``url_env``) are names of environment variables read
from the process environment or the project's ``.env`` when a message is sent. They are never
pipeline parameters, and error messages name the variable, never its value.

Webhook request: a JSON ``POST`` of the alert (:func:`webhook_body`) with headers
``X-Workbench-Signature: sha256=<hex HMAC-SHA256 of the raw body keyed with the secret>``,
``X-Workbench-Timestamp`` (Unix seconds, also inside the signed body as ``sent_at``) and
``Idempotency-Key`` (the alert id, the same on every resend, so a receiver can drop repeats).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import smtplib
import ssl
import time
from dataclasses import dataclass, field
from datetime import datetime
from datetime import time as dtime
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from research.alerts import transport
from research.alerts.transport import SendError
from research.config import get_settings

__all__ = [
    "ConfigError", "SendError", "url_problem", "Channel", "WebhookChannel", "EmailChannel", "AlertsConfig", "QuietHours",
    "RateLimit", "load_config", "alerts_config_path", "parse_config", "webhook_body", "sign", "SEVERITIES",
    "SIGNATURE_HEADER", "TIMESTAMP_HEADER", "IDEMPOTENCY_HEADER",
]

SEVERITIES = ("info", "warning", "critical")
SIGNATURE_HEADER = "X-Workbench-Signature"
TIMESTAMP_HEADER = "X-Workbench-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class ConfigError(ValueError):
    """The channel file is invalid: the message names the channel and the field."""


def _secret(name: str) -> str | None:
    """The value of variable ``name`` from the environment, else from the project's ``.env`` (the settings')."""
    value = get_settings().secret(name) if name else None
    return value.get_secret_value() if value is not None else None


def duration_seconds(value: Any, *, where: str) -> float:
    """``30``, ``"30s"``, ``"15m"``, ``"1h"`` or ``"2d"`` as seconds."""
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a duration such as 30s, 15m, 1h or 2d, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ConfigError(f"{where}: expected a duration such as 30s, 15m, 1h or 2d, got {value!r}")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ConfigError(f"{where}: must be positive, got {value!r}")
    return seconds


@dataclass(frozen=True)
class QuietHours:
    """A daily window in local time when a channel holds its alerts (they stay pending)."""

    start: dtime
    end: dtime
    timezone: str = "UTC"
    allow_critical: bool = False

    def holds(self, severity: str, now: datetime) -> bool:
        """Whether an alert of ``severity`` waits at ``now`` (an aware datetime)."""
        if self.allow_critical and severity == "critical":
            return False
        local = now.astimezone(ZoneInfo(self.timezone)).time()
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


@dataclass(frozen=True)
class RateLimit:
    """At most ``count`` deliveries per ``per_seconds``; the rest stay pending."""

    count: int
    per_seconds: float


@dataclass
class Channel:
    """What every channel has: its name, routing, pacing and retry settings."""

    name: str
    kinds: frozenset[str] | None = None
    severities: frozenset[str] = frozenset(SEVERITIES)
    quiet_hours: QuietHours | None = None
    rate_limit: RateLimit | None = None
    timeout: float = 10.0
    retries: int = 2
    backoff: float = 1.0
    max_attempts: int = 50

    type = "channel"

    def accepts(self, kind: str, severity: str) -> bool:
        """Whether alerts of this kind and severity route to this channel."""
        return (self.kinds is None or kind in self.kinds) and severity in self.severities

    def recipients(self) -> tuple[str, ...]:
        """Addresses the channel delivers each alert to, recorded one by one (none for a webhook)."""
        return ()

    def send(self, alert: dict, *, recipients: tuple[str, ...] | None = None,
             timeout: float | None = None) -> dict[str, tuple[int, str]]:  # pragma: no cover - overridden
        """Deliver one alert within ``timeout`` seconds in total (default: the channel's ``timeout``).

        Returns the recipients refused while others accepted, ``{address: (code, reply)}``;
        raises :class:`SendError` when nothing arrived.
        """
        raise NotImplementedError

    def describe(self) -> str:
        """Where the channel delivers, without secrets."""
        return self.type


@dataclass
class WebhookChannel(Channel):
    """JSON POST with an HMAC-SHA256 signature of the body."""

    url: str | None = None
    url_env: str | None = None
    secret_env: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    type = "webhook"

    def _url(self) -> str:
        if self.url:
            return self.url
        value = _secret(self.url_env or "")
        if not value:
            raise SendError(f"url_env {self.url_env} is not set in the environment or .env",
                            retryable=False)
        return value

    def describe(self) -> str:
        if not self.url:
            return f"webhook (URL from ${self.url_env})"
        parts = urlsplit(self.url)
        host = parts.hostname or "?"
        host = f"[{host}]" if ":" in host else host
        return f"webhook {parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}"  # no user:password, path or query

    def send(self, alert: dict, *, recipients: tuple[str, ...] | None = None,
             timeout: float | None = None) -> dict[str, tuple[int, str]]:
        secret = _secret(self.secret_env)
        if not secret:
            raise SendError(f"secret_env {self.secret_env} is not set in the environment or .env",
                            kind="configuration")
        url = self._url()
        problem = url_problem(url)
        if problem:
            raise SendError(f"{self.describe()}: malformed webhook URL ({problem})", kind="configuration")
        stamp = str(int(time.time()))
        body = webhook_body(alert, channel=self.name, sent_at=stamp)
        headers = {**self.headers, "Content-Type": "application/json", "User-Agent": "workbench-alerts",
                   SIGNATURE_HEADER: f"sha256={sign(secret, body)}", TIMESTAMP_HEADER: stamp,
                   IDEMPOTENCY_HEADER: str(alert["id"]), "X-Workbench-Alert-Id": str(alert["id"])}
        resp = transport.post(url, data=body, headers=headers, timeout=timeout or self.timeout, where=self.describe())
        if 200 <= resp.status_code < 300:
            return {}
        raise transport.http_status_error(resp.status_code, self.describe(), _retry_after(resp.headers.get("Retry-After")))


def url_problem(url: str) -> str | None:
    """What is wrong with a webhook URL (scheme, host, port), or None when it can be used."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return str(exc)
    if parts.scheme not in {"http", "https"}:
        return f"scheme {parts.scheme or 'missing'!r}, expected http or https"
    if not parts.hostname:
        return "no host"
    if port == 0:
        return "port 0"
    if any(c.isspace() for c in url):
        return "white space in the URL"
    return None


def _retry_after(value: str | None) -> float | None:
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None


@dataclass
class EmailChannel(Channel):
    """A plain-text e-mail over SMTP (STARTTLS, SMTPS and login optional)."""

    host: str = ""
    port: int = 25
    sender: str = ""
    to: tuple[str, ...] = ()
    starttls: bool = False
    use_ssl: bool = False
    username: str | None = None
    password_env: str | None = None
    ca_file: str | None = None

    type = "email"

    def describe(self) -> str:
        return f"email via {self.host}:{self.port} to {', '.join(self.to)}"

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)

    def message(self, alert: dict) -> EmailMessage:
        """The e-mail of one alert (its Message-ID is derived from the alert id)."""
        msg = EmailMessage()
        msg["Subject"] = f"[workbench] {str(alert['severity']).upper()} {alert['kind']}: {alert['subject']}"
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = f"<{alert['id']}.{re.sub(r'[^A-Za-z0-9-]', '-', self.name)}@workbench>"
        msg["X-Workbench-Alert-Id"] = str(alert["id"])
        payload = json.dumps(alert.get("payload") or {}, indent=2, sort_keys=True, default=str)
        msg.set_content(f"{alert['message']}\n\nkind: {alert['kind']}\nseverity: {alert['severity']}\n"
                        f"subject: {alert['subject']}\nas of: {alert.get('as_of') or ''}\nalert id: {alert['id']}\n\n"
                        f"details:\n{payload}\n")
        return msg

    def recipients(self) -> tuple[str, ...]:
        return tuple(self.to)

    def send(self, alert: dict, *, recipients: tuple[str, ...] | None = None,
             timeout: float | None = None) -> dict[str, tuple[int, str]]:
        password = None
        if self.username:
            password = _secret(self.password_env or "")
            if not password:
                raise SendError(f"password_env {self.password_env} is not set in the environment "
                                "or .env", kind="configuration")
        to = list(self.to if recipients is None else recipients)
        limit = timeout or self.timeout
        with transport.Watchdog(limit) as dog:
            try:
                return self._session(alert, to, password, dog)
            except (smtplib.SMTPException, OSError) as exc:
                raise transport.smtp_error(exc, where=self.describe(), host=self.host, port=self.port,
                                           sender=self.sender, fired=dog.fired, limit=limit) from None

    def _session(self, alert: dict, to: list[str], password: str | None,
                 dog: transport.Watchdog) -> dict[str, tuple[int, str]]:
        """One SMTP session under the watchdog: connect, STARTTLS, login, send; the refused recipients."""
        kw = {"timeout": min(self.timeout, dog.remaining()), "watchdog": dog}
        if self.use_ssl:
            smtp: smtplib.SMTP = transport.BoundedSMTPSSL(self.host, self.port, context=self._tls(), **kw)
        else:
            smtp = transport.BoundedSMTP(self.host, self.port, **kw)
        try:
            if self.starttls:
                smtp.starttls(context=self._tls())
            if self.username:
                smtp.login(self.username, password)
            refused = smtp.send_message(self.message(alert), from_addr=self.sender, to_addrs=to)
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):  # the message was accepted: a failed goodbye changes nothing
                pass
        finally:
            smtp.close()
        return {str(addr): (int(code), transport.reply_text(text)) for addr, (code, text) in refused.items()}


@dataclass
class AlertsConfig:
    """The parsed channel file."""

    channels: dict[str, Channel] = field(default_factory=dict)
    max_age_seconds: float = 72 * 3600.0
    path: Path | None = None

    def channel(self, name: str) -> Channel:
        """The channel called ``name``."""
        try:
            return self.channels[name]
        except KeyError:
            where = self.path or "the channel file"
            raise ConfigError(f"no channel {name!r} in {where} (channels: {sorted(self.channels) or 'none'})") from None


# ---------------------------------------------------------------- signing and payload
def sign(secret: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``body`` keyed with ``secret`` (what the signature header carries)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_body(alert: dict, *, channel: str, sent_at: str) -> bytes:
    """The JSON body of a webhook delivery (UTF-8, keys sorted).

    Fields: ``id``, ``kind``, ``severity``, ``subject``, ``message``, ``as_of``, ``source``,
    ``created``, ``payload`` (the alert's details), ``channel``, ``sent_at``.
    """
    doc = {k: alert.get(k) for k in ("id", "kind", "severity", "subject", "message", "as_of", "source", "created")}
    doc.update(payload=alert.get("payload") or {}, channel=channel, sent_at=sent_at)
    return json.dumps(doc, sort_keys=True, default=str).encode()


# ---------------------------------------------------------------- parsing
_COMMON = {"type", "kinds", "severities", "min_severity", "quiet_hours", "rate_limit", "timeout", "retries",
           "backoff", "max_attempts"}
_WEBHOOK = _COMMON | {"url", "url_env", "secret_env", "headers"}
_EMAIL = _COMMON | {"host", "port", "from", "to", "starttls", "ssl", "username", "password_env", "ca_file"}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _str(spec: dict, key: str, where: str, *, required: bool = False) -> str | None:
    value = spec.get(key)
    if value is None or value == "":
        if required:
            raise ConfigError(f"{where}: field {key!r} is required")
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{where}: field {key!r} must be a string, got {type(value).__name__}")
    return value


def _env_name(spec: dict, key: str, where: str, *, required: bool = False) -> str | None:
    value = _str(spec, key, where, required=required)
    if value is not None and not _ENV_NAME.match(value):
        raise ConfigError(f"{where}: field {key!r} must be the NAME of an environment variable (e.g. "
                          "WORKBENCH_WEBHOOK_SECRET), not the secret itself")
    return value


def _number(spec: dict, key: str, where: str, default: float, *, integer: bool = False, minimum: float = 0) -> Any:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not float(value).is_integer()):
        raise ConfigError(f"{where}: field {key!r} must be {'an integer' if integer else 'a number'}, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{where}: field {key!r} must be at least {minimum}, got {value!r}")
    return int(value) if integer else float(value)


def _flag(spec: dict, key: str, where: str) -> bool:
    value = spec.get(key, False)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: field {key!r} must be true or false, got {value!r}")
    return value


def _list(spec: dict, key: str, where: str) -> list[str] | None:
    value = spec.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value) or not value:
        raise ConfigError(f"{where}: field {key!r} must be a non-empty list of strings, got {value!r}")
    return value


def _clock(value: Any, where: str) -> dtime:
    if isinstance(value, int) and 0 <= value < 24 * 60:  # YAML reads 22:00 unquoted as minutes (sexagesimal)
        return dtime(value // 60, value % 60)
    try:
        return dtime.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(f"{where}: expected a time such as \"22:00\", got {value!r}") from None


def _quiet_hours(value: Any, where: str) -> QuietHours | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not {"start", "end"} <= set(value):
        raise ConfigError(f"{where}: expected {{start: \"22:00\", end: \"07:00\", timezone: UTC}}, got {value!r}")
    unknown = set(value) - {"start", "end", "timezone", "allow_critical"}
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}")
    tz = str(value.get("timezone") or "UTC")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{where}.timezone: unknown time zone {tz!r}") from None
    return QuietHours(_clock(value["start"], f"{where}.start"), _clock(value["end"], f"{where}.end"), tz,
                      _flag(value, "allow_critical", where))


def _rate_limit(value: Any, where: str) -> RateLimit | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"count", "per"}:
        raise ConfigError(f"{where}: expected {{count: 20, per: 1h}}, got {value!r}")
    count = _number(value, "count", where, 1, integer=True, minimum=1)
    return RateLimit(count, duration_seconds(value["per"], where=f"{where}.per"))


def _severities(spec: dict, where: str) -> frozenset[str]:
    listed, minimum = _list(spec, "severities", where), spec.get("min_severity")
    if listed is not None and minimum is not None:
        raise ConfigError(f"{where}: give either 'severities' or 'min_severity', not both")
    if minimum is not None:
        if minimum not in SEVERITIES:
            raise ConfigError(f"{where}: field 'min_severity' must be one of {list(SEVERITIES)}, got {minimum!r}")
        return frozenset(SEVERITIES[SEVERITIES.index(minimum):])
    bad = sorted(set(listed or ()) - set(SEVERITIES))
    if bad:
        raise ConfigError(f"{where}: field 'severities' has unknown value(s) {bad} (known: {list(SEVERITIES)})")
    return frozenset(listed or SEVERITIES)


def _channel(name: str, spec: Any) -> Channel:
    where = f"channel {name!r}"
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a mapping of fields, got {type(spec).__name__}")
    kind = spec.get("type")
    allowed = {"webhook": _WEBHOOK, "email": _EMAIL}.get(kind)
    if allowed is None:
        raise ConfigError(f"{where}: field 'type' must be 'webhook' or 'email', got {kind!r}")
    unknown = sorted(set(spec) - allowed)
    if unknown:
        hint = " (secrets go in environment variables named by *_env fields)" if {"secret", "password"} & set(unknown) else ""
        raise ConfigError(f"{where}: unknown field(s) {unknown}{hint}")
    kinds = _list(spec, "kinds", where)
    common = dict(
        name=name, kinds=frozenset(kinds) if kinds else None, severities=_severities(spec, where),
        quiet_hours=_quiet_hours(spec.get("quiet_hours"), f"{where} quiet_hours"),
        rate_limit=_rate_limit(spec.get("rate_limit"), f"{where} rate_limit"),
        timeout=_number(spec, "timeout", where, 10.0, minimum=0.1),
        retries=_number(spec, "retries", where, 2, integer=True),
        backoff=_number(spec, "backoff", where, 1.0),
        max_attempts=_number(spec, "max_attempts", where, 50, integer=True, minimum=1),
    )
    if kind == "webhook":
        url, url_env = _str(spec, "url", where), _env_name(spec, "url_env", where)
        if bool(url) == bool(url_env):
            raise ConfigError(f"{where}: give exactly one of 'url' or 'url_env'")
        if url and url_problem(url):
            raise ConfigError(f"{where}: field 'url' must be an http(s) URL with a host, got {url!r} "
                              f"({url_problem(url)})")
        headers = spec.get("headers") or {}
        if not isinstance(headers, dict):
            raise ConfigError(f"{where}: field 'headers' must be a mapping")
        return WebhookChannel(**common, url=url, url_env=url_env, secret_env=_env_name(spec, "secret_env", where, required=True),
                              headers={str(k): str(v) for k, v in headers.items()})
    to = _list(spec, "to", where)
    if not to:
        raise ConfigError(f"{where}: field 'to' is required (one address or a list)")
    username = _str(spec, "username", where)
    password_env = _env_name(spec, "password_env", where)
    if username and not password_env:
        raise ConfigError(f"{where}: field 'password_env' is required with 'username'")
    use_ssl, starttls = _flag(spec, "ssl", where), _flag(spec, "starttls", where)
    if use_ssl and starttls:
        raise ConfigError(f"{where}: give either 'ssl' (SMTPS) or 'starttls', not both")
    return EmailChannel(**common, host=_str(spec, "host", where, required=True),
                        port=_number(spec, "port", where, 465 if use_ssl else 25, integer=True, minimum=1),
                        sender=_str(spec, "from", where, required=True), to=tuple(to), starttls=starttls,
                        use_ssl=use_ssl, username=username, password_env=password_env,
                        ca_file=_str(spec, "ca_file", where))


def parse_config(doc: Any, *, path: Path | None = None) -> AlertsConfig:
    """Validate a loaded channel document (see the module docstring for the fields).

    Raises
    ------
    ConfigError
        Naming the file, the channel and the field that is wrong.
    """
    prefix = f"{path}: " if path else ""
    if doc is None:
        return AlertsConfig(path=path)
    if not isinstance(doc, dict):
        raise ConfigError(f"{prefix}expected a mapping with 'channels', got {type(doc).__name__}")
    unknown = sorted(set(doc) - {"channels", "max_age"})
    if unknown:
        raise ConfigError(f"{prefix}unknown top-level field(s) {unknown} (known: channels, max_age)")
    channels = doc.get("channels") or {}
    if not isinstance(channels, dict):
        raise ConfigError(f"{prefix}'channels' must be a mapping of channel name -> fields")
    try:
        parsed = {str(name): _channel(str(name), spec) for name, spec in channels.items()}
        max_age = duration_seconds(doc.get("max_age", "72h"), where="max_age")
    except ConfigError as exc:
        raise ConfigError(f"{prefix}{exc}") from None
    return AlertsConfig(parsed, max_age, path)


def alerts_config_path() -> Path:
    """``WORKBENCH_ALERTS_CONFIG`` (environment or ``.env``), else ``<project root>/alerts.yaml``."""
    return get_settings().alerts_config


def load_config(path: str | os.PathLike | None = None) -> AlertsConfig:
    """Read and validate the channel file; a missing default file means no channels.

    Raises
    ------
    ConfigError
        The file is not valid YAML or a field is wrong; or ``path`` was given (or named by
        ``WORKBENCH_ALERTS_CONFIG``) and does not exist.
    """
    explicit = path is not None or get_settings().origin("alerts_config") != "default"
    p = Path(path) if path is not None else alerts_config_path()
    if not p.is_file():
        if explicit:
            raise ConfigError(f"alert channel file {p} does not exist (see alerts.example.yaml)")
        return AlertsConfig(path=None)
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML ({exc})") from None
    return parse_config(doc, path=p)
