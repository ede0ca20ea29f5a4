"""``workbench config``: every setting's effective value and where it came from."""

from __future__ import annotations

import json
from typing import Annotated

import typer

__all__ = ["config_command", "register"]


def config_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON: one object per setting.")] = False,
) -> None:
    """Print every setting's effective value and where it came from (secrets masked).

    The origin is `override`, `environment`, `.env` (the file at the project root) or `default`;
    the table of every setting is docs/configuration.md.
    """
    from research.config import describe_settings

    rows = describe_settings()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    width = max(len(r["variable"]) for r in rows)
    for row in rows:
        value = "(unset)" if row["value"] is None else row["value"]
        typer.echo(f"{row['variable']:<{width}}  {row['origin']:<11}  {value}")


def register(app: typer.Typer) -> None:
    """Add ``config`` to the root ``workbench`` command."""
    app.command("config")(config_command)
