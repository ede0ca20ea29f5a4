"""``workbench alerts``: the alert outbox and its channels (``deliver``, ``list``, ``retry``, ``test``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Alerts: deliver what is pending, list the outbox, retry failed deliveries, test a channel "
                       "(see alerts.example.yaml and docs/alerts.md).",
                  no_args_is_help=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", dir_okay=False,
                                                help="Channel file (default: $WORKBENCH_ALERTS_CONFIG, else ./alerts.yaml).")]


def _config(path: Path | None):
    from research.alerts.channels import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@app.command("deliver")
def deliver(
    config: ConfigOpt = None,
    channel: Annotated[list[str] | None, typer.Option("--channel", help="Only this channel (repeatable).")] = None,
    deadline: Annotated[float | None, typer.Option(min=0, help="Seconds to spend; what is left waits for the next delivery.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Deliver every pending alert to the channels it routes to (each at most once).

    Quiet hours hold alerts and rate limits pace them; a receiver that is down keeps its alerts
    pending for the next delivery. Exits 1 when a delivery failed in this run.
    """
    from dataclasses import asdict

    from research.alerts import dispatch, outbox
    from research.alerts.channels import ConfigError

    cfg = _config(config)
    try:
        report = dispatch.deliver(cfg, channels=channel, deadline=deadline)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(json.dumps({"routed": report.routed, "sent": report.sent, "failed": report.failed,
                               "channels": {k: asdict(v) for k, v in report.channels.items()},
                               "misconfigured": report.problems}, indent=2))
    else:
        typer.echo(report.summary())
        left = outbox.outbox_summary()
        typer.echo(f"outbox: {left['pending']} pending, {left['sent']} sent, {left['failed']} failed, "
                   f"{left['unrouted']} not routed to any channel")
    if report.failed:
        raise typer.Exit(1)


@app.command("list")
def list_alerts(
    pending: Annotated[bool, typer.Option("--pending", help="Only alerts with a delivery still pending.")] = False,
    limit: Annotated[int, typer.Option(min=1, help="Newest N alerts.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON records.")] = False,
) -> None:
    """The newest alerts in the outbox with their delivery status per channel."""
    from research.alerts import outbox

    frame = outbox.alerts_frame(limit=limit, only_pending=pending)
    if as_json:
        out = frame.astype(object).where(frame.notna(), None)
        for col in ("created", "delivered_at"):
            out[col] = [None if v is None else str(v) for v in out[col]]
        typer.echo(json.dumps(out.to_dict("records"), indent=2, default=str))
        return
    for problem in outbox.channel_problems().itertuples(index=False):
        typer.echo(f"CONFIGURATION ERROR on channel {problem.channel} since {str(problem.since)[:16]} (not retried): "
                   f"{problem.error}\n{'':18}fix the channel file or its secret, then: workbench alerts retry "
                   f"--channel {problem.channel}")
    if frame.empty:
        typer.echo("no pending alerts" if pending else "the outbox is empty")
        return
    for row in frame.itertuples(index=False):
        where = row.channels or "no channel"
        typer.echo(f"{str(row.created)[:16]}  {row.severity:<8} {row.kind:<9} {row.subject:<10} {row.status:<8} "
                   f"[{where}]  {row.message}")
        for error in row.errors if row.status in {"pending", "failed", "partial"} else ():
            typer.echo(f"{'':18}last error on {error}")
        if row.recipients and row.status != "sent":
            typer.echo(f"{'':18}recipients: {row.recipients}")


@app.command("retry")
def retry(
    channel: Annotated[list[str] | None, typer.Option("--channel", help="Only this channel (repeatable).")] = None,
) -> None:
    """Make failed deliveries pending again, after fixing a channel; `workbench alerts deliver` sends them.

    Recipients an e-mail already reached are not sent to again. The channel's configuration
    problem is cleared (it is raised again, once, if the next delivery still fails).
    """
    from research.alerts import outbox

    names = channel or [None]
    n = sum(outbox.reopen(channel=name) for name in names)
    typer.echo(f"{n} failed deliveries pending again" + (f" on {', '.join(channel)}" if channel else "")
               + "; run `workbench alerts deliver` to send them")


@app.command("test")
def test_channel(
    name: Annotated[str, typer.Argument(help="Channel name in the channel file.")],
    config: ConfigOpt = None,
) -> None:
    """Send one test alert through channel NAME, now (quiet hours and rate limits do not apply).

    Nothing is written to the outbox. Exits 1 when the channel did not accept it.
    """
    import datetime as dt
    import secrets

    from research.alerts.channels import ConfigError, SendError

    cfg = _config(config)
    try:
        channel = cfg.channel(name)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    alert = {"id": f"test-{secrets.token_hex(8)}", "kind": "test", "severity": "info", "subject": name,
             "message": f"test alert from the workbench to channel {name!r}", "as_of": now.date().isoformat(),
             "source": "cli", "created": now.isoformat(), "payload": {"test": True}}
    try:
        channel.send(alert)
    except SendError as exc:
        typer.echo(f"error: channel {name!r} ({channel.describe()}) did not accept the test alert: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"sent a test alert to {name!r} ({channel.describe()}); id {alert['id']}")


def register(root: typer.Typer) -> None:
    """Add the ``alerts`` command group to the root app."""
    root.add_typer(app, name="alerts")
