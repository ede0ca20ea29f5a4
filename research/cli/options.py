"""Checks of command-line values shared by the commands: dates and date ranges.

They run while the arguments are parsed, before a command imports its libraries, so a wrong
value is refused at once with a one-line usage error (exit 2) naming the option.
"""

from __future__ import annotations

from datetime import datetime

import typer

__all__ = ["date_option", "check_range", "parse_date"]


def parse_date(value: str, option: str) -> datetime:
    """``value`` as an ISO 8601 date or date-time.

    Raises
    ------
    typer.BadParameter
        Naming ``option``, the value and the expected form.
    """
    try:
        return datetime.fromisoformat(value.strip())
    except (ValueError, AttributeError) as exc:
        raise typer.BadParameter(f"{value!r} is not a date ({exc}); expected YYYY-MM-DD or an ISO date-time",
                                 param_hint=f"'{option}'") from None


def date_option(ctx: typer.Context, param: typer.CallbackParam, value: str | None) -> str | None:
    """Typer callback: refuse an option value that is not a date (``None`` passes)."""
    if value is None:
        return None
    option = max(param.opts, key=len) if param.opts else (param.name or "date")
    parse_date(value, option)
    return value


def check_range(start: str | None, end: str | None, *, start_option: str, end_option: str) -> None:
    """Refuse ``start`` later than ``end`` (both dates; either may be None)."""
    if start is None or end is None:
        return
    lo, hi = parse_date(start, start_option), parse_date(end, end_option)
    if (lo.tzinfo is None) != (hi.tzinfo is None):
        lo, hi = lo.replace(tzinfo=None), hi.replace(tzinfo=None)
    if lo > hi:
        raise typer.BadParameter(f"{start_option} {start} is after {end_option} {end}; the range is empty")
