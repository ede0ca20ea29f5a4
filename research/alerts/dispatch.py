"""Delivery runs: every pending alert to every channel it routes to, bounded in time and honest.

:func:`deliver` routes recent alerts to the channels that take them, then works through each
channel's queue (most severe and oldest first) under the outbox's rules (see
:mod:`research.alerts.outbox` for the tables and the at-least-once argument):

* each attempt has one total deadline, the channel's ``timeout`` cut to what is left of the
  run's ``deadline`` (:mod:`research.alerts.transport`); no retry starts after the run's deadline;
* an e-mail records each recipient: accepted addresses are ``sent`` and never sent again, a
  temporary refusal (4xx) is retried for that address only, a permanent one (5xx) is ``failed``;
* a configuration error (unknown host, malformed URL, TLS required but not offered, an
  untrusted certificate, login refused, a secret not set) fails the delivery at once and the
  rest of the channel's queue with it, is recorded as the channel's problem, and raises one
  critical ``pipeline`` alert delivered on the other channels: once per problem, not per attempt;
  the problem clears when the channel delivers again or ``workbench alerts retry`` reopens it.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd
import sqlalchemy as sa

from research.alerts.channels import AlertsConfig, Channel, SendError, load_config
from research.alerts.outbox import (
    HEALTH_SOURCE,
    LEASE,
    alert_channel_problem,
    alert_delivery,
    alert_outbox,
    alert_recipient,
    decode_alert,
    enqueue,
    ledger,
    pending,
    table_time,
)
from research.paper.db import LedgerError
from research.timeutil import to_utc

__all__ = ["deliver", "DeliveryReport", "ChannelReport", "Outcome"]

log = logging.getLogger(__name__)


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
    misconfigured: int = 0
    refused: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass
class DeliveryReport:
    """The outcome of :func:`deliver`: one :class:`ChannelReport` per channel, new routes, problems."""

    channels: dict[str, ChannelReport] = field(default_factory=dict)
    routed: int = 0
    problems: dict[str, str] = field(default_factory=dict)
    raised: list[str] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return sum(c.sent for c in self.channels.values())

    @property
    def failed(self) -> int:
        return sum(c.failed + c.gave_up + c.misconfigured for c in self.channels.values())

    def summary(self) -> str:
        """One line per channel, e.g. ``ops: 3 sent, 1 held for quiet hours``."""
        if not self.channels:
            return "no alert channels configured (see alerts.example.yaml)"
        lines = []
        for c in self.channels.values():
            waits = [f"{n} {what}" for n, what in ((c.held_quiet, "held for quiet hours"),
                                                   (c.rate_limited, "over the rate limit"),
                                                   (c.failed, "failed, kept for the next run"),
                                                   (c.waiting, "not tried this run (channel down or out of time)"),
                                                   (c.gave_up, "given up (max_attempts or refused)"),
                                                   (c.misconfigured, "failed: channel misconfigured")) if n]
            line = f"{c.channel}: {', '.join([f'{c.sent} sent', *waits])}"
            if c.refused:
                line += f"; recipients refused: {'; '.join(c.refused)}"
            lines.append(line + (f" — {c.errors[-1]}" if c.errors else ""))
        for name, error in self.problems.items():
            lines.append(f"{name}: CONFIGURATION ERROR, not retried until fixed (then `workbench alerts retry "
                         f"--channel {name}`): {error}")
        return "\n".join(lines)


@dataclass
class Outcome:
    """What the attempts at one delivery came to.

    ``tries`` attempts made, the last ``error`` (None when the channel accepted it), and per
    recipient ``{address: (status, code, reply, tries)}`` with status ``sent``, ``pending`` or
    ``failed``.
    """

    tries: int = 0
    error: SendError | None = None
    recipients: dict[str, tuple[str, int | None, str, int]] = field(default_factory=dict)

    @property
    def waiting(self) -> list[str]:
        return [a for a, (s, *_) in self.recipients.items() if s == "pending"]

    @property
    def refused(self) -> list[str]:
        return [a for a, (s, *_) in self.recipients.items() if s == "failed"]

    def note(self, sent: Iterable[str], refused: dict[str, tuple[int, str]]) -> None:
        """Record one attempt's answer per recipient."""
        for addr in sent:
            self.recipients[addr] = ("sent", None, "", self._tries(addr) + 1)
        for addr, (code, reply) in refused.items():
            self.recipients[addr] = ("failed" if code >= 500 else "pending", code, reply[:300], self._tries(addr) + 1)

    def _tries(self, addr: str) -> int:
        return self.recipients[addr][3] if addr in self.recipients else 0

    def text(self, addrs: list[str]) -> str:
        return "; ".join(f"{a} {self.recipients[a][1]} {self.recipients[a][2]}".strip() for a in addrs)


def _route(conn: sa.Connection, cfg: AlertsConfig, now: datetime) -> int:
    """Create pending deliveries for recent alerts a channel takes and has no row for.

    An alert about a misconfigured channel (source :data:`HEALTH_SOURCE`, subject the channel)
    is never routed to that channel.
    """
    since = now - timedelta(seconds=cfg.max_age_seconds)
    o = alert_outbox.c
    recent = conn.execute(sa.select(o.id, o.kind, o.severity, o.source, o.subject).where(o.created >= since)).all()
    if not recent:
        return 0
    have = set(conn.execute(sa.select(alert_delivery.c.alert_id, alert_delivery.c.channel)
                            .where(alert_delivery.c.alert_id.in_(sa.select(o.id).where(o.created >= since)))).all())
    rows = [{"alert_id": a.id, "channel": name, "status": "pending", "attempts": 0}
            for a in recent for name, ch in cfg.channels.items()
            if (a.id, name) not in have and ch.accepts(a.kind, a.severity)
            and not (a.source == HEALTH_SOURCE and a.subject == name)]
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


def _record(engine: sa.Engine, alert: str, channel: str, token: str, values: dict,
            recipients: dict[str, tuple[str, int | None, str, int]] | None = None, now: datetime | None = None) -> None:
    """Release the claim with ``values``; per-recipient rows (added tries) in the same transaction."""
    d, r = alert_delivery.c, alert_recipient.c
    with engine.begin() as conn:
        res = conn.execute(alert_delivery.update().where(d.alert_id == alert, d.channel == channel, d.claim == token)
                           .values(claim=None, claimed_until=None, **values))
        if res.rowcount != 1 or not recipients:
            return
        before = {row.recipient: row.attempts for row in conn.execute(
            sa.select(r.recipient, r.attempts).where(r.alert_id == alert, r.channel == channel))}
        conn.execute(alert_recipient.delete().where(r.alert_id == alert, r.channel == channel,
                                                    r.recipient.in_(list(recipients))))
        conn.execute(alert_recipient.insert(), [
            {"alert_id": alert, "channel": channel, "recipient": addr, "status": status, "code": code,
             "reply": reply or None, "attempts": before.get(addr, 0) + tries, "updated_at": now}
            for addr, (status, code, reply, tries) in recipients.items()])


def _mark_sent(engine: sa.Engine, alert: str, channel: str, token: str, tries: int, now: datetime,
               recipients: dict | None = None) -> None:
    """Record a delivery the channel accepted (after the send: see the outbox's docstring)."""
    _record(engine, alert, channel, token, {"status": "sent", "delivered_at": now, "last_error": None,
                                            "error_kind": None, "attempts": alert_delivery.c.attempts + tries},
            recipients, now)


def _todo(engine: sa.Engine, ch: Channel, alert: str) -> tuple[tuple[str, ...], dict[str, tuple[int | None, str]]]:
    """The channel's recipients not yet settled for ``alert``, and those refused for good earlier."""
    every = ch.recipients()
    if not every:
        return (), {}
    r = alert_recipient.c
    with engine.connect() as conn:
        settled = {row.recipient: row for row in conn.execute(
            sa.select(r.recipient, r.status, r.code, r.reply)
            .where(r.alert_id == alert, r.channel == ch.name, r.status.in_(("sent", "failed"))))}
    refused = {a: (row.code, row.reply or "") for a, row in settled.items() if row.status == "failed" and a in every}
    return tuple(a for a in every if a not in settled), refused


def _send(ch: Channel, alert: dict, todo: tuple[str, ...], sleep: Callable[[float], None], stop_at: float) -> Outcome:
    """Up to ``1 + retries`` attempts with exponential backoff, none started after ``stop_at``."""
    out = Outcome()
    for attempt in range(ch.retries + 1):
        if attempt:
            delay = ch.backoff * 2 ** (attempt - 1)
            if out.error is not None and out.error.retry_after is not None:
                delay = max(delay, min(out.error.retry_after, 60.0))
            if time.monotonic() + delay >= stop_at:
                break
            sleep(delay)
        left = stop_at - time.monotonic()
        if left <= 0:
            break
        out.tries += 1
        try:
            refused = ch.send(alert, recipients=todo or None, timeout=min(ch.timeout, left))
        except SendError as exc:
            out.error = exc
            if exc.refused:
                out.note((), exc.refused)
                todo = tuple(out.waiting)
            if not exc.retryable or (exc.refused and not todo):
                break
            continue
        out.note([a for a in todo if a not in refused], refused)
        todo = tuple(out.waiting)
        if not todo:
            out.error = None
            break
        out.error = SendError(f"{ch.describe()}: recipients refused for now: {out.text(list(todo))}",
                              kind="unavailable", refused={a: refused[a] for a in todo if a in refused})
    return out


def _sent_since(engine: sa.Engine, channel: str, since: datetime) -> int:
    d = alert_delivery.c
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(alert_delivery)
                            .where(d.channel == channel, d.status == "sent", d.delivered_at > since)).scalar_one()


def _outcome_values(ch: Channel, out: Outcome, attempts: int, now: datetime) -> tuple[dict, str]:
    """The delivery row's new values after attempts that did not fully succeed, and its state."""
    error = out.error
    if error is not None and error.configuration:
        state = "misconfigured"
    elif out.waiting and attempts >= ch.max_attempts:
        out.recipients.update({a: ("failed", c, f"gave up after {attempts} attempts: {t}", n)
                               for a, (s, c, t, n) in out.recipients.items() if s == "pending"})
        state = "gave_up"
    elif error is None or (out.refused and not out.waiting):  # every address settled, some refused for good
        error = SendError(f"{ch.describe()}: recipients refused: {out.text(out.refused)}", kind="rejected")
        state = "gave_up"
    else:
        state = "gave_up" if attempts >= ch.max_attempts else "failed"
    status = "pending" if state == "failed" else "failed"
    return {"attempts": attempts, "last_error": str(error)[:500], "error_kind": error.kind, "status": status}, state


def _raise_problem(engine: sa.Engine, ch: Channel, error: SendError, now: datetime, url: str | None) -> str | None:
    """Record the channel's configuration problem; the first time, enqueue the alert about it (its id)."""
    p = alert_channel_problem.c
    try:
        with engine.begin() as conn:
            standing = conn.execute(sa.select(p.channel).where(p.channel == ch.name)).first()
            if standing is not None:
                conn.execute(alert_channel_problem.update().where(p.channel == ch.name)
                             .values(last_seen=now, error=str(error)[:1000]))
                return None
            conn.execute(alert_channel_problem.insert().values(channel=ch.name, kind=error.kind, error=str(error)[:1000],
                                                               since=now, last_seen=now))
    except sa.exc.IntegrityError:  # another delivery run recorded it at the same moment
        return None
    alert = {"kind": "pipeline", "severity": "critical", "subject": ch.name, "source": HEALTH_SOURCE,
             "message": f"alert channel {ch.name!r} is misconfigured and delivers nothing: {error}. "
                        f"Its alerts are marked failed; fix the channel, then run `workbench alerts retry "
                        f"--channel {ch.name}`.",
             "as_of": now.date().isoformat(), "key": f"misconfigured:{ch.name}:{now.isoformat()}",
             "payload": {"channel": ch.name, "error": str(error), "error_kind": error.kind}}
    ids = enqueue([alert], url=url, now=now)
    with engine.begin() as conn:
        conn.execute(alert_channel_problem.update().where(p.channel == ch.name).values(alert_id=ids[0] if ids else None))
    log.error("alert channel %s is misconfigured: %s", ch.name, error)
    return ids[0] if ids else None


def _clear_problem(engine: sa.Engine, channel: str) -> None:
    with engine.begin() as conn:
        if conn.execute(alert_channel_problem.delete().where(alert_channel_problem.c.channel == channel)).rowcount:
            log.info("alert channel %s delivers again; its configuration problem is cleared", channel)


@dataclass
class _Run:
    """What one channel's pass needs: the database, the time, the claim token and the limits."""

    engine: sa.Engine
    now: datetime
    token: str
    sleep: Callable[[float], None]
    url: str | None
    stop_at: float
    report: DeliveryReport


def _attempt(run: _Run, ch: Channel, rep: ChannelReport, item, alert: dict) -> SendError | None:
    """Send one claimed delivery and record its outcome; the error when it did not fully succeed."""
    todo, refused_before = _todo(run.engine, ch, item.alert_id)
    if ch.recipients() and not todo:  # every address settled earlier: nothing left to send to anyone
        out = Outcome(recipients={a: ("failed", c, t, 0) for a, (c, t) in refused_before.items()})
        if not refused_before:
            _mark_sent(run.engine, item.alert_id, ch.name, run.token, 0, run.now)
            rep.sent += 1
            return None
    else:
        out = _send(ch, alert, todo, run.sleep, run.stop_at)
    if out.tries == 0 and not out.recipients:  # the run's deadline passed before the first attempt: for the next run
        _record(run.engine, item.alert_id, ch.name, run.token, {})
        rep.waiting += 1
        return None
    for addr, (code, reply) in refused_before.items():  # refused for good in an earlier run: still not delivered
        out.recipients.setdefault(addr, ("failed", code, reply, 0))
    if out.error is None and not out.refused:
        _mark_sent(run.engine, item.alert_id, ch.name, run.token, out.tries, run.now, out.recipients)
        rep.sent += 1
        return None
    values, state = _outcome_values(ch, out, int(item.attempts) + out.tries, run.now)
    _record(run.engine, item.alert_id, ch.name, run.token, values, out.recipients, run.now)
    rep.refused += [f"{a} {out.recipients[a][1]}" for a in out.refused]
    rep.errors.append(values["last_error"])
    setattr(rep, state, getattr(rep, state) + 1)
    log.warning("alert %s to channel %s: %s", item.alert_id[:12], ch.name, values["last_error"])
    return out.error


def _deliver_channel(run: _Run, ch: Channel, only: set[str] | None = None) -> ChannelReport:
    rep = ChannelReport(ch.name)
    queue = pending(url=run.url, channel=ch.name)
    if only is not None:
        queue = queue[queue["alert_id"].isin(only)]
    if queue.empty:
        return rep
    aware = to_utc(run.now).to_pydatetime()
    budget = None
    if ch.rate_limit is not None:
        used = _sent_since(run.engine, ch.name, run.now - timedelta(seconds=ch.rate_limit.per_seconds))
        budget = max(ch.rate_limit.count - used, 0)
    with run.engine.connect() as conn:
        ids = list(queue["alert_id"])
        full = {r.id: decode_alert(r._mapping) for i in range(0, len(ids), 500)
                for r in conn.execute(sa.select(alert_outbox).where(alert_outbox.c.id.in_(ids[i:i + 500])))}
    with run.engine.connect() as conn:
        standing = conn.execute(sa.select(alert_channel_problem.c.channel)
                                .where(alert_channel_problem.c.channel == ch.name)).first() is not None
    down, broken = False, None
    for item in queue.itertuples(index=False):
        if ch.quiet_hours is not None and ch.quiet_hours.holds(item.severity, aware):
            rep.held_quiet += 1
        elif broken is None and (down or time.monotonic() >= run.stop_at):
            rep.waiting += 1
        elif broken is None and budget is not None and budget <= 0:
            rep.rate_limited += 1
        elif not _claim(run.engine, item.alert_id, ch.name, run.token, run.now, _lease(ch)):
            continue  # another delivery run has it
        elif broken is not None:  # the channel cannot deliver: fail the rest without sending
            _record(run.engine, item.alert_id, ch.name, run.token, {
                "status": "failed", "error_kind": "configuration",
                "last_error": f"not sent: channel {ch.name} is misconfigured: {broken}"[:500]})
            rep.misconfigured += 1
        else:
            sent_before = rep.sent
            error = _attempt(run, ch, rep, item, full[item.alert_id])
            if rep.sent > sent_before:
                budget = None if budget is None else budget - 1
                if standing:
                    _clear_problem(run.engine, ch.name)
                    standing = False
            elif error is not None and error.configuration:
                broken = error
                run.report.problems[ch.name] = str(error)
                raised = _raise_problem(run.engine, ch, error, run.now, run.url)
                run.report.raised += [raised] if raised else []
            elif error is not None and error.retryable and not error.refused:
                down = True  # a receiver that is down: leave the rest for the next run
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
    next run, and is not tried again in this one. A channel that fails on a configuration error
    fails its queue at once and the alert raised about it is delivered on the other channels
    before the run ends (see the module docstring).

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
        Seconds this run may spend. Every attempt is cut to what is left, and no attempt or retry
        starts after it: the run ends within the deadline plus the time to record the last
        attempt. What is left waits for the next run.
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
    moment = table_time(now)
    engine = ledger(url)
    report = DeliveryReport()
    if not wanted:
        return report
    _route_all(engine, cfg, moment, report)
    stop_at = math.inf if deadline is None else time.monotonic() + deadline
    run = _Run(engine, moment, secrets.token_hex(8), sleep, url, stop_at, report)
    for name in wanted:
        report.channels[name] = _deliver_channel(run, cfg.channels[name])
    if report.raised:  # tell the other channels about a misconfigured one, in this run
        _route_all(engine, cfg, moment, report)
        for name in wanted:
            if name not in report.problems:
                extra = _deliver_channel(run, cfg.channels[name], only=set(report.raised))
                _merge(report.channels[name], extra)
    return report


def _route_all(engine: sa.Engine, cfg: AlertsConfig, moment: datetime, report: DeliveryReport) -> None:
    try:
        with engine.begin() as conn:
            report.routed += _route(conn, cfg, moment)
    except sa.exc.IntegrityError:  # another run routed the same alerts at the same moment
        log.info("alert routes were created concurrently; continuing")
    except sa.exc.OperationalError as exc:
        raise LedgerError(f"cannot read the alert outbox: {exc.orig}") from exc


def _merge(into: ChannelReport, extra: ChannelReport) -> None:
    for name in ("sent", "failed", "gave_up", "held_quiet", "rate_limited", "waiting", "misconfigured"):
        setattr(into, name, getattr(into, name) + getattr(extra, name))
    into.refused += extra.refused
    into.errors += extra.errors
