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
(delivered; never sent again) and ``failed`` (gave up after the channel's ``max_attempts``, a
recipient refused for good, or the channel is misconfigured). ``error_kind`` names the last
error's kind (``timeout``, ``unavailable``, ``rejected``, ``configuration``; see
:mod:`research.alerts.transport`). Times are naive UTC.

``alert_recipient`` (one row per alert, e-mail channel and address): ``status`` (``sent``,
``pending`` after a temporary 4xx refusal, ``failed`` after a permanent 5xx one), the server's
``code`` and ``reply``, ``attempts``. A resend goes only to the addresses not yet sent.

``alert_channel_problem`` (one row per channel that failed on a configuration error, until it
delivers again or :func:`reopen` clears it): the error, since when, and the id of the
``pipeline`` alert raised about it on the other channels (once per problem, not per attempt).

Delivery semantics (:func:`research.alerts.dispatch.deliver`): a delivery is recorded as sent only after the channel
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
import threading
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa

from research.alerts.channels import SEVERITIES, ConfigError
from research.paper.db import connect, metadata
from research.timeutil import naive_utc_now, to_naive_utc

__all__ = [
    "alert_outbox", "alert_delivery", "alert_recipient", "alert_channel_problem", "alert_id", "enqueue", "pending",
    "alerts_frame", "outbox_summary", "channel_problems", "recipients_frame", "reopen", "ledger",
    "ALERT_FIELDS", "LEASE", "ConfigError", "HEALTH_SOURCE",
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
    sa.Column("error_kind", sa.String(16)),
    sa.Index("ix_alert_delivery_channel_status", "channel", "status"),
)
alert_recipient = sa.Table(
    "alert_recipient", metadata,
    sa.Column("alert_id", sa.String(64), sa.ForeignKey("alert_outbox.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("channel", sa.String(100), primary_key=True),
    sa.Column("recipient", sa.String(320), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("code", sa.Integer),
    sa.Column("reply", sa.Text),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)
alert_channel_problem = sa.Table(
    "alert_channel_problem", metadata,
    sa.Column("channel", sa.String(100), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("since", sa.DateTime, nullable=False),
    sa.Column("last_seen", sa.DateTime, nullable=False),
    sa.Column("alert_id", sa.String(64)),
)

#: Fields of an alert as :func:`enqueue` takes it (``symbol`` is accepted for ``subject``).
ALERT_FIELDS = ("kind", "severity", "subject", "message", "as_of", "source", "payload", "key")
#: How long a claimed delivery is at least reserved for the run that claimed it (longer when the
#: channel's attempts, timeouts and backoff could take longer).
LEASE = timedelta(minutes=10)
#: ``source`` of the alerts raised about a misconfigured channel (never routed to that channel).
HEALTH_SOURCE = "alert-channel"
_NUMBERS = re.compile(r"[-+]?\d[\d.,]*%?")
_RANK = {s: i for i, s in enumerate(reversed(SEVERITIES))}  # critical 0, warning 1, info 2


_READY: set[tuple[str, int]] = set()
_READY_LOCK = threading.Lock()


def ledger(url: str | None = None) -> sa.Engine:
    """The ledger's engine with the outbox tables up to date (columns added since a ledger was made)."""
    engine = connect(url)
    key = (str(engine.url), id(engine))
    if key in _READY:
        return engine
    with _READY_LOCK:
        columns = {c["name"] for c in sa.inspect(engine).get_columns("alert_delivery")}
        if "error_kind" not in columns:
            try:
                with engine.begin() as conn:
                    conn.execute(sa.text("ALTER TABLE alert_delivery ADD COLUMN error_kind VARCHAR(16)"))
            except (sa.exc.OperationalError, sa.exc.ProgrammingError):  # another process added it meanwhile
                columns = {c["name"] for c in sa.inspect(engine).get_columns("alert_delivery")}
                if "error_kind" not in columns:
                    raise
        _READY.add(key)
    return engine


def table_time(now: datetime | pd.Timestamp | None) -> datetime:
    """``now`` (default: the clock) as a naive UTC datetime, the form the tables store."""
    if now is None:
        return naive_utc_now().replace(microsecond=0)
    return to_naive_utc(now).to_pydatetime()


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
    created = table_time(now)
    rows = alerts.to_dict("records") if isinstance(alerts, pd.DataFrame) else list(alerts)
    records = {r["id"]: r for r in (_normalise(a, source=source, created=created) for a in rows)}
    if not records:
        return []
    engine = ledger(url)
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


def decode_alert(row: Mapping[str, Any]) -> dict:
    out = dict(row)
    out["payload"] = json.loads(out.get("payload") or "{}")
    return out


def _rows(conn: sa.Connection, table: sa.Table, ids: list[str]) -> pd.DataFrame:
    """The rows of ``table`` for the alerts ``ids`` (read in chunks of 500)."""
    return pd.DataFrame([dict(r._mapping) for i in range(0, len(ids), 500)
                         for r in conn.execute(sa.select(table).where(table.c.alert_id.in_(ids[i:i + 500])))],
                        columns=[c.name for c in table.columns])


def _recipients_text(rows: pd.DataFrame) -> str:
    """``desk: a@x sent; b@x failed 550 no such user`` (one entry per address)."""
    parts = []
    for r in rows.sort_values(["channel", "recipient"]).itertuples(index=False):
        code = "" if r.code is None or pd.isna(r.code) else f" {int(r.code)}"
        reply = f" {r.reply}" if r.status != "sent" and r.reply else ""
        parts.append(f"{r.channel}: {r.recipient} {r.status}{code if r.status != 'sent' else ''}{reply}")
    return "; ".join(parts)


def _state(d: pd.DataFrame | None, recips: pd.DataFrame | None) -> dict:
    """The delivery columns of one alert from its delivery (and recipient) rows."""
    if d is None or d.empty:
        return {"status": "unrouted", "channels": "", "attempts": 0, "last_error": None, "error_kind": None,
                "errors": [], "recipients": "", "delivered_at": None}
    statuses = set(d["status"])
    state = statuses.pop() if len(statuses) == 1 else ("pending" if "pending" in statuses else "partial")
    errors = d[d["last_error"].notna()]
    return {"status": state, "channels": ", ".join(f"{c}: {s}" for c, s in zip(d["channel"], d["status"], strict=True)),
            "attempts": int(d["attempts"].sum()),
            "last_error": errors["last_error"].iloc[-1] if len(errors) else None,
            "error_kind": errors["error_kind"].iloc[-1] if len(errors) else None,
            "errors": [f"{r.channel} ({r.error_kind or 'unknown'}): {r.last_error}"
                       for r in errors.itertuples(index=False) if r.status != "sent"],
            "recipients": "" if recips is None or recips.empty else _recipients_text(recips),
            "delivered_at": d["delivered_at"].dropna().max() if d["delivered_at"].notna().any() else None}


def alerts_frame(*, url: str | None = None, limit: int | None = 200, only_pending: bool = False) -> pd.DataFrame:
    """Alerts, newest first, with their delivery state per channel.

    Columns: ``id``, ``created``, ``kind``, ``severity``, ``subject``, ``message``, ``as_of``,
    ``source``, ``status`` (``sent``, ``pending``, ``failed``, ``partial`` when channels differ,
    ``unrouted`` when no channel took it yet), ``channels`` (``name: status`` pairs),
    ``attempts``, ``last_error``, ``error_kind`` (``timeout``, ``unavailable``, ``rejected``,
    ``configuration``), ``errors`` (``channel (kind): error`` of each channel not sent), ``recipients`` (per e-mail address: ``channel: address status code
    reply``), ``delivered_at``.
    """
    engine = ledger(url)
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
        deliveries, recipients = _rows(conn, alert_delivery, ids), _rows(conn, alert_recipient, ids)
    columns = ["id", "created", "kind", "severity", "subject", "message", "as_of", "source", "status", "channels",
               "attempts", "last_error", "error_kind", "errors", "recipients", "delivered_at"]
    if alerts.empty:
        return pd.DataFrame(columns=columns)
    by_alert = dict(tuple(deliveries.groupby("alert_id")))
    by_recipient = dict(tuple(recipients.groupby("alert_id")))
    rows = [{**{k: rec[k] for k in columns if k in rec}, **_state(by_alert.get(rec["id"]), by_recipient.get(rec["id"]))}
            for rec in alerts.to_dict("records")]
    return pd.DataFrame(rows, columns=columns)


def recipients_frame(*, url: str | None = None, alert: str | None = None) -> pd.DataFrame:
    """Per-recipient delivery state of the e-mail channels (one row per alert, channel and address)."""
    engine = ledger(url)
    query = sa.select(alert_recipient).order_by(alert_recipient.c.alert_id, alert_recipient.c.channel,
                                                alert_recipient.c.recipient)
    if alert:
        query = query.where(alert_recipient.c.alert_id == alert)
    with engine.connect() as conn:
        return pd.DataFrame([dict(r._mapping) for r in conn.execute(query)],
                            columns=[c.name for c in alert_recipient.columns])


def channel_problems(*, url: str | None = None) -> pd.DataFrame:
    """Channels standing misconfigured: ``channel``, ``kind``, ``error``, ``since``, ``last_seen``, ``alert_id``."""
    engine = ledger(url)
    with engine.connect() as conn:
        return pd.DataFrame([dict(r._mapping) for r in conn.execute(
            sa.select(alert_channel_problem).order_by(alert_channel_problem.c.channel))],
            columns=[c.name for c in alert_channel_problem.columns])


def reopen(*, url: str | None = None, channel: str | None = None) -> int:
    """Make failed deliveries pending again (after fixing a channel); returns how many.

    Attempts start again from zero; recipients already sent to are not sent to again (their
    rows stay ``sent``), refused ones are tried again. The channel's standing problem is cleared.
    """
    d, r, p = alert_delivery.c, alert_recipient.c, alert_channel_problem.c
    with ledger(url).begin() as conn:
        where = [d.status == "failed"] + ([d.channel == channel] if channel else [])
        n = conn.execute(alert_delivery.update().where(*where).values(
            status="pending", attempts=0, claim=None, claimed_until=None)).rowcount
        conn.execute(alert_recipient.update().where(r.status == "failed", *([r.channel == channel] if channel else []))
                     .values(status="pending", attempts=0))
        conn.execute(alert_channel_problem.delete().where(*([p.channel == channel] if channel else [])))
    return int(n)


def pending(*, url: str | None = None, channel: str | None = None) -> pd.DataFrame:
    """Deliveries still waiting (``status == "pending"``), most severe and oldest first.

    Columns: ``alert_id``, ``channel``, ``kind``, ``severity``, ``subject``, ``message``,
    ``created``, ``attempts``, ``last_error``.
    """
    engine = ledger(url)
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
    """Counts for a health page: ``alerts``, ``pending``, ``sent``, ``failed`` deliveries, ``unrouted``
    alerts and ``misconfigured`` channels."""
    engine = ledger(url)
    with engine.connect() as conn:
        broken = conn.execute(sa.select(sa.func.count()).select_from(alert_channel_problem)).scalar_one()
        total = conn.execute(sa.select(sa.func.count()).select_from(alert_outbox)).scalar_one()
        counts = dict(conn.execute(sa.select(alert_delivery.c.status, sa.func.count()).group_by(alert_delivery.c.status)).all())
        routed = conn.execute(sa.select(sa.func.count(sa.distinct(alert_delivery.c.alert_id)))).scalar_one()
    return {"alerts": int(total), "pending": int(counts.get("pending", 0)), "sent": int(counts.get("sent", 0)),
            "failed": int(counts.get("failed", 0)), "unrouted": int(total - routed),
            "misconfigured": int(broken)}


