"""Every alert ends delivered, failed with a reason, or pending with a next attempt, whatever receivers do.

A Hypothesis property drives the real outbox and delivery runs (SQLite) against scripted
receivers: a webhook-like channel and an e-mail-like one with two recipients, each answering
every call with a drawn behaviour (an HTTP-style status, a delay inside or beyond the call's
deadline, per-recipient SMTP codes, a configuration error). After every delivery run:

* no alert is lost: each has a delivery row per channel, ``sent``, ``failed`` with an error and
  its kind, or ``pending`` with attempts left and no claim held;
* no recipient is sent an alert twice after it accepted it, and a ``sent`` delivery reached every
  recipient exactly once.

A receiver that accepts a message but whose answer is lost (a crash, a cut after the final
byte) is the documented at-least-once case, tested with its idempotency key in
test_alert_delivery.py; the scripted receivers here answer or refuse whole calls.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from hypothesis import example, given, settings
from hypothesis import strategies as st

from research.alerts import dispatch, outbox
from research.alerts.channels import AlertsConfig, Channel, SendError
from research.alerts.transport import http_status_error
from research.paper.db import dispose

GROUP = "alert delivery"
NOW = datetime(2026, 12, 5, 12, 0)
TIMEOUT = 1.0
_FAST = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None  # a ledger per example

behaviour = st.one_of(
    st.tuples(st.just("status"), st.sampled_from([200, 202, 400, 401, 404, 408, 429, 500, 502, 503])),
    st.tuples(st.just("delay"), st.sampled_from([0.0, 0.5, 0.99, 1.01, 3.0])),
    st.tuples(st.just("refuse"), st.lists(st.sampled_from([250, 250, 450, 451, 550, 553]), min_size=2, max_size=2)),
    st.just(("config", 0)),
)


@dataclass
class Scripted(Channel):
    """A receiver answering each call with the next behaviour of its script (then accepting)."""

    script: list = field(default_factory=list)
    to: tuple[str, ...] = ()
    received: list[tuple[str, str]] = field(default_factory=list)

    type = "scripted"

    def recipients(self) -> tuple[str, ...]:
        return self.to

    def send(self, alert: dict, *, recipients: tuple[str, ...] | None = None,
             timeout: float | None = None) -> dict[str, tuple[int, str]]:
        what, arg = self.script.pop(0) if self.script else ("status", 200)
        who = tuple(recipients or self.to) or ("",)
        if what == "config":
            raise SendError(f"{self.name}: login refused (SMTP 535)", kind="configuration")
        if what == "delay" and arg > (timeout or self.timeout):
            raise SendError(f"{self.name}: no complete answer within {timeout} s", kind="timeout")
        if what == "status" and not 200 <= arg < 300:
            raise http_status_error(arg, self.name, None)
        codes = dict(zip(who, arg, strict=False)) if what == "refuse" and self.to else {}
        refused = {r: (c, "refused") for r, c in codes.items() if c >= 400}
        accepted = [r for r in who if r not in refused]
        if not accepted:
            permanent = all(c >= 500 for c, _ in refused.values())
            raise SendError(f"{self.name}: every recipient refused", kind="rejected" if permanent else "unavailable",
                            refused=refused)
        self.received += [(alert["id"], r) for r in accepted]
        return refused


def _check(url: str, channels: dict[str, Scripted], ids: list[str]) -> list[str]:
    """Every broken invariant, as a sentence (empty when all hold)."""
    d, r = outbox.alert_delivery.c, outbox.alert_recipient.c
    with outbox.ledger(url).connect() as conn:
        rows = {(x.alert_id, x.channel): x for x in conn.execute(sa.select(outbox.alert_delivery))}
        recips = {(x.alert_id, x.channel, x.recipient): x.status for x in conn.execute(sa.select(outbox.alert_recipient))}
        health = set(conn.execute(sa.select(outbox.alert_outbox.c.id)
                                  .where(outbox.alert_outbox.c.source == outbox.HEALTH_SOURCE)).scalars())
    del d, r
    broken = []
    for name, ch in channels.items():
        got = Counter((a, rc) for a, rc in ch.received)
        broken += [f"{name}: {a[:8]} to {rc!r} accepted {n} times" for (a, rc), n in got.items() if n > 1]
        for alert in ids + sorted(health):
            row = rows.get((alert, name))
            if row is None:
                if alert not in health:
                    broken.append(f"{name}: {alert[:8]} has no delivery (lost)")
                continue
            if row.status == "sent":
                missing = [rc for rc in (ch.to or ("",)) if got[(alert, rc)] != 1]
                broken += [f"{name}: {alert[:8]} sent but {missing} did not get it once"] if missing else []
            elif row.status == "failed":
                broken += [] if row.last_error and row.error_kind else [f"{name}: {alert[:8]} failed without a reason"]
            elif row.status == "pending":
                if row.attempts >= ch.max_attempts or row.claim is not None:
                    broken.append(f"{name}: {alert[:8]} pending with no next attempt ({row.attempts} attempts)")
            else:
                broken.append(f"{name}: {alert[:8]} has status {row.status!r}")
            for rc in ch.to:
                if recips.get((alert, name, rc)) == "sent" and got[(alert, rc)] != 1:
                    broken.append(f"{name}: {alert[:8]} recorded sent to {rc} but received {got[(alert, rc)]} times")
    return broken


STATS: Counter = Counter()


@settings(max_examples=40)
@given(hook_script=st.lists(behaviour, max_size=12), mail_script=st.lists(behaviour, max_size=12),
       n_alerts=st.integers(1, 4), runs=st.integers(1, 4), retries=st.integers(0, 2), max_attempts=st.integers(1, 4))
@example(hook_script=[("delay", 3.0)], mail_script=[("refuse", [250, 450]), ("refuse", [450, 250])],
         n_alerts=1, runs=3, retries=0, max_attempts=4)
@example(hook_script=[], mail_script=[("config", 0)], n_alerts=2, runs=2, retries=1, max_attempts=2)
@example(hook_script=[], mail_script=[("refuse", [450, 550])], n_alerts=1, runs=2, retries=0, max_attempts=2)
def check_outcomes(hook_script, mail_script, n_alerts, runs, retries, max_attempts) -> None:
    common = {"timeout": TIMEOUT, "retries": retries, "backoff": 0.0, "max_attempts": max_attempts}
    hook = Scripted("ops", script=list(hook_script), **common)
    mail = Scripted("desk", script=list(mail_script), to=("a@example.com", "b@example.com"), **common)
    with tempfile.TemporaryDirectory(dir=_FAST) as folder:
        url = f"sqlite:///{folder}/ledger.db"
        try:
            ids = outbox.enqueue([{"subject": f"S{i}", "kind": "drawdown", "severity": "warning",
                                   "message": f"S{i} below its high", "as_of": "2018-12-31"} for i in range(n_alerts)],
                                 url=url, now=NOW)
            cfg = AlertsConfig({"ops": hook, "desk": mail})
            for k in range(runs):
                dispatch.deliver(cfg, NOW + timedelta(hours=k), url=url, sleep=lambda s: None)
                broken = _check(url, {"ops": hook, "desk": mail}, ids)
                assert not broken, broken
            with outbox.ledger(url).connect() as conn:
                STATS.update(r.status for r in conn.execute(sa.select(outbox.alert_delivery.c.status)))
            STATS["examples"] += 1
        finally:
            dispose(url)


def test_every_alert_ends_delivered_failed_with_a_reason_or_pending(case):
    STATS.clear()
    check_outcomes()
    seen = ", ".join(f"{STATS[s]} {s}" for s in ("sent", "failed", "pending"))
    case(GROUP, "random receiver behaviours (property)", "0 lost, 0 sent twice, every failure with a reason",
         f"{STATS['examples']} examples, deliveries ended {seen}; 0 broken", STATS["examples"] > 0)
