"""The alert outbox: every alert is kept in the ledger database until each channel has it.

Two tables on :data:`research.paper.db.metadata`:

``alert_outbox`` (one row per alert; its ``id`` is a hash of kind, subject, as-of and rule, so
enqueuing the same alert again changes nothing)::

    id (sha256 hex)  kind      severity  subject  message                                  as_of       source   payload (JSON)  created
    5c1e...          drawdown  critical  SPX      SPX is 19.8% below its 252-bar high       2018-12-31  signals  {"value": ...}  2026-12-05 06:30:00

``alert_delivery`` (one row per alert and channel it routes to)::

    alert_id  channel  status   attempts  last_error                 last_attempt_at      delivered_at         claimed_until
    5c1e...   ops      sent     2         NULL                       2026-12-05 06:30:02  2026-12-05 06:30:02  NULL
    5c1e...   desk     pending  3         email via ...: SMTP 451    2026-12-05 06:30:05  NULL                 NULL

Statuses: ``pending`` (waiting: not yet tried, receiver down, quiet hours, rate limit), ``sent``
(delivered; never sent again) and ``failed`` (gave up after the channel's ``max_attempts``).
Times are naive UTC.

Delivery semantics (:func:`deliver`): a delivery is recorded as sent only after the channel
accepted it, so nothing is lost when a receiver is down or the process dies; the price is
that a crash *between* the receiver accepting and the row being written sends that alert again
on the next run (at-least-once). Each row is claimed before sending (a conditional update with a
lease), so two delivery runs at once never send the same row twice, and every webhook carries
``Idempotency-Key: <alert id>`` (e-mails a Message-ID derived from it) so the receiver can
drop the rare repeat: exactly once as seen by a receiver that deduplicates on the key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa

from research.alerts.channels import (
    SEVERITIES,
    AlertsConfig,
    Channel,
    ConfigError,
    SendError,
    load_config,
)
from research.paper.db import LedgerError, connect, metadata

__all__ = [
    "alert_outbox", "alert_delivery", "alert_id", "enqueue", "pending", "alerts_frame", "deliver", "outbox_summary",
    "DeliveryReport", "ChannelReport", "ALERT_FIELDS", "LEASE", "ConfigError",
]

log = logging.getLogger(__name__)

alert_outbox = sa.Table(
    "alert_outbox", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("as_of", sa.String(40), nullable=False, server_default=""),
    sa.Column("source", sa.String(40), nullable=False, server_default=""),
    sa.Column("payload", sa.Text, nullable=False, server_default="{}"),
    sa.Column("created", sa.DateTime, nullable=False),
    sa.Index("ix_alert_outbox_created", "created"),
)
alert_delivery = sa.Table(
    "alert_delivery", metadata,
    sa.Column("alert_id", sa.String(64), sa.ForeignKey("alert_outbox.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("channel", sa.String(100), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text),
    sa.Column("last_attempt_at", sa.DateTime),
    sa.Column("delivered_at", sa.DateTime),
    sa.Column("claim", sa.String(32)),
    sa.Column("claimed_until", sa.DateTime),
    sa.Index("ix_alert_delivery_channel_status", "channel", "status"),
)

#: Fields of an alert as :func:`enqueue` takes it (``symbol`` is accepted for ``subject``).
ALERT_FIELDS = ("kind", "severity", "subject", "message", "as_of", "source", "payload", "key")
#: How long a claimed delivery is at least reserved for the run that claimed it (longer when the
#: channel's attempts, timeouts and backoff could take longer).
LEASE = timedelta(minutes=10)
_NUMBERS = re.compile(r"[-+]?\d[\d.,]*%?")
_RANK = {s: i for i, s in enumerate(reversed(SEVERITIES))}  # critical 0, warning 1, info 2


def _utc(now: datetime | pd.Timestamp | None) -> datetime:
    """``now`` (default: the clock) as a naive UTC datetime, the form the tables store."""
    if now is None:
        return datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    ts = pd.Timestamp(now)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.tz_localize(None).to_pydatetime()


def alert_id(kind: str, subject: str, as_of: str, rule: str) -> str:
    """The deterministic id of an alert: sha256 of kind, subject, as-of and rule.

    ``rule`` names the condition; by default it is the message with its numbers removed, so the
    same condition on the same as-of date is one alert even if a re-run moves a value slightly.
    """
    return hashlib.sha256("\x1f".join((kind, subject, as_of, rule)).encode()).hexdigest()


def _clean(value: Any) -> Any:
    """JSON-safe: NaN and NaT become None, numpy scalars plain values, times ISO strings."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, (pd.Timestamp, datetime)):
        return value.isoformat()
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return _clean(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _normalise(alert: Mapping[str, Any], *, source: str, created: datetime) -> dict:
    """One alert row from a mapping (a signals ``alerts`` row, a drift or pipeline alert)."""
    row = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in dict(alert).items()}
    subject = row.pop("subject", None) or row.pop("symbol", None)
    kind, severity, message = row.pop("kind", None), str(row.pop("severity", "") or "").lower(), row.pop("message", None)
    missing = [name for name, v in (("kind", kind), ("subject", subject), ("message", message)) if not v]
    if missing:
        raise ValueError(f"an alert needs kind, subject (or symbol) and message; missing {missing} in {dict(alert)!r}")
    severity = {"warn": "warning", "error": "critical"}.get(severity, severity)
    if severity not in SEVERITIES:
        raise ValueError(f"alert severity must be one of {list(SEVERITIES)}, got {severity!r} ({kind} on {subject})")
    as_of = row.pop("as_of", None)
    as_of = "" if as_of is None or (not isinstance(as_of, str) and pd.isna(as_of)) else str(_clean(as_of))
    rule = str(row.pop("key", None) or _NUMBERS.sub("#", str(message)))
    src = str(row.pop("source", None) or source)
    payload = row.pop("payload", None) or {}
    payload = {**_clean(row), **_clean(payload if isinstance(payload, Mapping) else json.loads(payload))}
    return {"id": alert_id(str(kind), str(subject), as_of, rule), "kind": str(kind), "severity": severity,
            "subject": str(subject)[:200], "message": str(message), "as_of": as_of, "source": src,
            "payload": json.dumps(payload, sort_keys=True, default=str), "created": created}


def enqueue(alerts: pd.DataFrame | Iterable[Mapping[str, Any]], *, url: str | None = None, source: str = "",
            now: datetime | pd.Timestamp | None = None) -> list[str]:
    """Add alerts to the outbox; an alert already there (same id) is left as it is.

    Parameters
    ----------
    alerts : DataFrame or iterable of mappings
        Rows with ``kind``, ``severity``, ``subject`` (or ``symbol``) and ``message``; optional
        ``as_of``, ``source``, ``key`` (the rule, part of the id) and ``payload``; any other
        column (``value``, ``threshold``, ``bar_time`` ...) goes into the payload.
    url : str, optional
        Ledger database URL (default :func:`research.paper.db.default_url`).
    source : str
        Where the alerts come from (``signals``, ``paper``, ``pipeline``), unless a row says.
    now : datetime, optional
        The creation time recorded (default: the clock).

    Returns
    -------
    list of str
        The ids of the alerts that were new.
    """
    created = _utc(now)
    rows = alerts.to_dict("records") if isinstance(alerts, pd.DataFrame) else list(alerts)
    records = {r["id"]: r for r in (_normalise(a, source=source, created=created) for a in rows)}
    if not records:
        return []
    engine = connect(url)
    try:
        return _insert_new(engine, records)
    except sa.exc.IntegrityError:  # another process enqueued some of them meanwhile: take the rest
        return _insert_new(engine, records)


def _insert_new(engine: sa.Engine, records: dict[str, dict]) -> list[str]:
    with engine.begin() as conn:
        known: set[str] = set()
        ids = list(records)
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            known |= set(conn.execute(sa.select(alert_outbox.c.id).where(alert_outbox.c.id.in_(chunk))).scalars())
        fresh = [r for k, r in records.items() if k not in known]
        if fresh:
            conn.execute(alert_outbox.insert(), fresh)
    return [r["id"] for r in fresh]


def _decode(row: Mapping[str, Any]) -> dict:
    out = dict(row)
    out["payload"] = json.loads(out.get("payload") or "{}")
    return out


def alerts_frame(*, url: str | None = None, limit: int | None = 200, only_pending: bool = False) -> pd.DataFrame:
    """Alerts, newest first, with their delivery state per channel.

    Columns: ``id``, ``created``, ``kind``, ``severity``, ``subject``, ``message``, ``as_of``,
    ``source``, ``status`` (``sent``, ``pending``, ``failed``, ``partial`` when channels differ,
    ``unrouted`` when no channel took it yet), ``channels`` (``name: status`` pairs),
    ``attempts``, ``last_error``, ``delivered_at``.
    """
    engine = connect(url)
    query = sa.select(alert_outbox).order_by(alert_outbox.c.created.desc(), alert_outbox.c.id)
    if only_pending:
        query = query.where(alert_outbox.c.id.in_(
            sa.select(alert_delivery.c.alert_id).where(alert_delivery.c.status == "pending")))
    if limit:
        query = query.limit(limit)
    with engine.connect() as conn:
        alerts = pd.DataFrame([dict(r._mapping) for r in conn.execute(query)],
                              columns=[c.name for c in alert_outbox.columns])
        ids = list(alerts["id"])
        deliveries = pd.DataFrame(
            [dict(r._mapping) for i in range(0, len(ids), 500)
             for r in conn.execute(sa.select(alert_delivery).where(alert_delivery.c.alert_id.in_(ids[i:i + 500])))],
            columns=[c.name for c in alert_delivery.columns])
    columns = ["id", "created", "kind", "severity", "subject", "message", "as_of", "source", "status", "channels",
               "attempts", "last_error", "delivered_at"]
    if alerts.empty:
        return pd.DataFrame(columns=columns)
    by_alert = {k: g for k, g in deliveries.groupby("alert_id")}
    rows = []
    for rec in alerts.to_dict("records"):
        d = by_alert.get(rec["id"])
        if d is None or d.empty:
            state, chans, attempts, error, delivered = "unrouted", "", 0, None, None
        else:
            statuses = set(d["status"])
            state = statuses.pop() if len(statuses) == 1 else ("pending" if "pending" in statuses else "partial")
            chans = ", ".join(f"{c}: {s}" for c, s in zip(d["channel"], d["status"], strict=True))
            attempts = int(d["attempts"].sum())
            errors = d["last_error"].dropna()
            error = errors.iloc[-1] if len(errors) else None
            delivered = d["delivered_at"].dropna().max() if d["delivered_at"].notna().any() else None
        rows.append({**{k: rec[k] for k in columns if k in rec}, "status": state, "channels": chans,
                     "attempts": attempts, "last_error": error, "delivered_at": delivered})
    return pd.DataFrame(rows, columns=columns)


def pending(*, url: str | None = None, channel: str | None = None) -> pd.DataFrame:
    """Deliveries still waiting (``status == "pending"``), most severe and oldest first.

    Columns: ``alert_id``, ``channel``, ``kind``, ``severity``, ``subject``, ``message``,
    ``created``, ``attempts``, ``last_error``.
    """
    engine = connect(url)
    query = (sa.select(alert_delivery.c.alert_id, alert_delivery.c.channel, alert_outbox.c.kind,
                       alert_outbox.c.severity, alert_outbox.c.subject, alert_outbox.c.message,
                       alert_outbox.c.created, alert_delivery.c.attempts, alert_delivery.c.last_error)
             .join(alert_outbox, alert_outbox.c.id == alert_delivery.c.alert_id)
             .where(alert_delivery.c.status == "pending"))
    if channel:
        query = query.where(alert_delivery.c.channel == channel)
    with engine.connect() as conn:
        frame = pd.DataFrame([dict(r._mapping) for r in conn.execute(query)],
                             columns=["alert_id", "channel", "kind", "severity", "subject", "message", "created",
                                      "attempts", "last_error"])
    if frame.empty:
        return frame
    frame["_rank"] = frame["severity"].map(_RANK).fillna(3)
    return frame.sort_values(["_rank", "created", "alert_id"]).drop(columns="_rank").reset_index(drop=True)


def outbox_summary(*, url: str | None = None) -> dict[str, int]:
    """Counts for a health page: ``alerts``, ``pending``, ``sent``, ``failed`` deliveries and ``unrouted`` alerts."""
    engine = connect(url)
    with engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(alert_outbox)).scalar_one()
        counts = dict(conn.execute(sa.select(alert_delivery.c.status, sa.func.count()).group_by(alert_delivery.c.status)).all())
        routed = conn.execute(sa.select(sa.func.count(sa.distinct(alert_delivery.c.alert_id)))).scalar_one()
    return {"alerts": int(total), "pending": int(counts.get("pending", 0)), "sent": int(counts.get("sent", 0)),
            "failed": int(counts.get("failed", 0)), "unrouted": int(total - routed)}


# ---------------------------------------------------------------- delivery
@dataclass
class ChannelReport:
    """What one channel did in one delivery run."""

    channel: str
    sent: int = 0
    failed: int = 0
    gave_up: int = 0
    held_quiet: int = 0
    rate_limited: int = 0
    waiting: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass
class DeliveryReport:
    """The outcome of :func:`deliver`: one :class:`ChannelReport` per channel, and new routes."""

    channels: dict[str, ChannelReport] = field(default_factory=dict)
    routed: int = 0

    @property
    def sent(self) -> int:
        return sum(c.sent for c in self.channels.values())

    @property
    def failed(self) -> int:
        return sum(c.failed + c.gave_up for c in self.channels.values())

    def summary(self) -> str:
        """One line per channel, e.g. ``ops: 3 sent, 1 pending (held: quiet hours)``."""
        if not self.channels:
            return "no alert channels configured (see alerts.example.yaml)"
        lines = []
        for c in self.channels.values():
            parts = [f"{c.sent} sent"]
            waits = [f"{n} {what}" for n, what in ((c.held_quiet, "held for quiet hours"),
                                                   (c.rate_limited, "over the rate limit"),
                                                   (c.failed, "failed, kept for the next run"),
                                                   (c.waiting, "not tried this run (channel down or out of time)"),
                                                   (c.gave_up, "given up after max_attempts")) if n]
            lines.append(f"{c.channel}: {', '.join(parts + waits)}" + (f" — {c.errors[-1]}" if c.errors else ""))
        return "\n".join(lines)


def _route(conn: sa.Connection, cfg: AlertsConfig, now: datetime) -> int:
    """Create pending deliveries for recent alerts a channel takes and has no row for."""
    since = now - timedelta(seconds=cfg.max_age_seconds)
    recent = conn.execute(sa.select(alert_outbox.c.id, alert_outbox.c.kind, alert_outbox.c.severity)
                          .where(alert_outbox.c.created >= since)).all()
    if not recent:
        return 0
    have = set(conn.execute(sa.select(alert_delivery.c.alert_id, alert_delivery.c.channel)
                            .where(alert_delivery.c.alert_id.in_(
                                sa.select(alert_outbox.c.id).where(alert_outbox.c.created >= since)))).all())
    rows = [{"alert_id": a.id, "channel": name, "status": "pending", "attempts": 0}
            for a in recent for name, ch in cfg.channels.items()
            if (a.id, name) not in have and ch.accepts(a.kind, a.severity)]
    if rows:
        conn.execute(alert_delivery.insert(), rows)
    return len(rows)


def _lease(ch: Channel) -> timedelta:
    """A claim outlives the slowest send of the channel, so no other run can take it meanwhile."""
    worst = (ch.retries + 1) * ch.timeout + sum(max(ch.backoff * 2 ** i, 60.0) for i in range(ch.retries))
    return max(LEASE, timedelta(seconds=worst + 60.0))


def _claim(engine: sa.Engine, alert: str, channel: str, token: str, now: datetime, lease: timedelta) -> bool:
    d = alert_delivery.c
    with engine.begin() as conn:
        res = conn.execute(alert_delivery.update()
                           .where(d.alert_id == alert, d.channel == channel, d.status == "pending",
                                  sa.or_(d.claimed_until.is_(None), d.claimed_until < now))
                           .values(claim=token, claimed_until=now + lease, last_attempt_at=now))
        return res.rowcount == 1


def _record(engine: sa.Engine, alert: str, channel: str, token: str, values: dict) -> None:
    d = alert_delivery.c
    with engine.begin() as conn:
        conn.execute(alert_delivery.update().where(d.alert_id == alert, d.channel == channel, d.claim == token)
                     .values(claim=None, claimed_until=None, **values))


def _mark_sent(engine: sa.Engine, alert: str, channel: str, token: str, tries: int, now: datetime) -> None:
    """Record a delivery the channel accepted (after the send: see the module docstring)."""
    _record(engine, alert, channel, token, {"status": "sent", "delivered_at": now, "last_error": None,
                                            "attempts": alert_delivery.c.attempts + tries})


def _send(ch: Channel, alert: dict, sleep: Callable[[float], None]) -> tuple[int, SendError | None]:
    """Try up to ``1 + retries`` times with exponential backoff; (tries, last error or None)."""
    error: SendError | None = None
    for attempt in range(ch.retries + 1):
        if attempt:
            delay = ch.backoff * 2 ** (attempt - 1)
            if error is not None and error.retry_after is not None:
                delay = max(delay, min(error.retry_after, 60.0))
            sleep(delay)
        try:
            ch.send(alert)
            return attempt + 1, None
        except SendError as exc:
            error = exc
            if not exc.retryable:
                return attempt + 1, exc
    return ch.retries + 1, error


def _sent_since(engine: sa.Engine, channel: str, since: datetime) -> int:
    d = alert_delivery.c
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(alert_delivery)
                            .where(d.channel == channel, d.status == "sent", d.delivered_at > since)).scalar_one()


def _deliver_channel(engine: sa.Engine, ch: Channel, now: datetime, token: str, sleep: Callable[[float], None],
                     url: str | None, stop_at: float) -> ChannelReport:
    rep = ChannelReport(ch.name)
    queue = pending(url=url, channel=ch.name)
    if queue.empty:
        return rep
    aware = now.replace(tzinfo=UTC)
    budget = None
    if ch.rate_limit is not None:
        used = _sent_since(engine, ch.name, now - timedelta(seconds=ch.rate_limit.per_seconds))
        budget = max(ch.rate_limit.count - used, 0)
    with engine.connect() as conn:
        ids = list(queue["alert_id"])
        full = {r.id: _decode(r._mapping) for i in range(0, len(ids), 500)
                for r in conn.execute(sa.select(alert_outbox).where(alert_outbox.c.id.in_(ids[i:i + 500])))}
    down = False
    for item in queue.itertuples(index=False):
        if ch.quiet_hours is not None and ch.quiet_hours.holds(item.severity, aware):
            rep.held_quiet += 1
            continue
        if down or time.monotonic() >= stop_at:
            rep.waiting += 1
            continue
        if budget is not None and budget <= 0:
            rep.rate_limited += 1
            continue
        if not _claim(engine, item.alert_id, ch.name, token, now, _lease(ch)):
            continue  # another delivery run has it
        tries, error = _send(ch, full[item.alert_id], sleep)
        if error is None:
            _mark_sent(engine, item.alert_id, ch.name, token, tries, now)
            rep.sent += 1
            if budget is not None:
                budget -= 1
            continue
        attempts = int(item.attempts) + tries
        give_up = attempts >= ch.max_attempts
        _record(engine, item.alert_id, ch.name, token, {"attempts": attempts, "last_error": str(error)[:500],
                                                        "status": "failed" if give_up else "pending"})
        rep.errors.append(str(error))
        if give_up:
            rep.gave_up += 1
        else:
            rep.failed += 1
        log.warning("alert %s to channel %s: %s", item.alert_id[:12], ch.name, error)
        down = down or error.retryable  # a receiver that is down: leave the rest for the next run
    return rep


def deliver(config: AlertsConfig | str | None = None, now: datetime | pd.Timestamp | None = None, *,
            url: str | None = None, channels: Iterable[str] | None = None, deadline: float | None = None,
            sleep: Callable[[float], None] = time.sleep) -> DeliveryReport:
    """Deliver every pending alert to every channel it routes to, at most once each.

    Alerts created within the config's ``max_age`` get a pending delivery for each channel that
    takes their kind and severity. Then, per channel, most severe and oldest first: alerts in the
    channel's quiet hours are held (critical ones pass when ``allow_critical``); at most
    ``rate_limit.count`` are sent per window (counted over earlier runs too), the rest wait; each
    send is retried ``retries`` times with exponential backoff; a delivery is marked sent only
    after the channel accepted it. A receiver that stays down keeps its alerts pending for the
    next run, and is not tried again in this one.

    Parameters
    ----------
    config : AlertsConfig or path, optional
        The channels (default: :func:`research.alerts.channels.load_config`).
    now : datetime, optional
        The time used for routing, quiet hours, rate limits and the records (default: the clock).
    url : str, optional
        Ledger database URL.
    channels : iterable of str, optional
        Deliver only to these channels.
    deadline : float, optional
        Seconds this run may spend; alerts not started by then wait for the next run (a send
        under way finishes within its channel's timeout and retries).
    sleep : callable
        Waits between retries (tests pass a no-op).

    Returns
    -------
    DeliveryReport
    """
    cfg = config if isinstance(config, AlertsConfig) else load_config(config)
    wanted = list(cfg.channels) if channels is None else list(channels)
    for name in wanted:
        cfg.channel(name)
    moment, token = _utc(now), secrets.token_hex(8)
    engine = connect(url)
    report = DeliveryReport()
    if not wanted:
        return report
    try:
        with engine.begin() as conn:
            report.routed = _route(conn, cfg, moment)
    except sa.exc.IntegrityError:  # another run routed the same alerts at the same moment
        log.info("alert routes were created concurrently; continuing")
    except sa.exc.OperationalError as exc:
        raise LedgerError(f"cannot read the alert outbox: {exc.orig}") from exc
    stop_at = math.inf if deadline is None else time.monotonic() + deadline
    for name in wanted:
        report.channels[name] = _deliver_channel(engine, cfg.channels[name], moment, token, sleep, url, stop_at)
    return report

