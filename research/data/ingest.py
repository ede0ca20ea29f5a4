"""An ingest's parts that touch no file: what it fetches, what it records, what it returns.

:meth:`research.data.store.Store.ingest` brings a dataset up to date: it asks
:func:`fetch_for_ingest` what to fetch from the source given the stored copy, records
:func:`ingest_meta` in the manifest of what it stores, returns an :class:`IngestResult`, and
warns with :class:`StaleDataWarning` (the copy's age in :func:`age_text`) when it serves the
stored copy because the source failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata as importlib_metadata

import pandas as pd

from research.data.schema import ValidationReport, ValidationResult
from research.data.sources.base import Source

__all__ = ["IngestResult", "StaleDataWarning", "fetch_for_ingest", "ingest_meta", "library_versions", "age_text"]


class StaleDataWarning(UserWarning):
    """A live source failed and the stored copy was served instead."""


@dataclass
class IngestResult:
    """What :meth:`research.data.store.Store.ingest` did for one symbol."""

    frame: pd.DataFrame
    manifest: dict
    report: ValidationReport | None
    fetched: bool
    stale: bool = False


def fetch_for_ingest(
    source: Source, symbol: str, start: pd.Timestamp | None, end: pd.Timestamp | None, interval: str,
    m: dict | None, refresh: bool,
) -> pd.DataFrame:
    """What an ingest fetches, given the stored copy's manifest ``m`` (``None``: not stored).

    A live source fetches from the requested or last stored bar up to now; a source that
    makes any range (synthetic) fetches the requested bars together with the stored ones,
    so the stored copy stays one unbroken range; any other static source is stored whole
    and sliced on read, so one ingest serves every range.
    """
    stored = m is not None and m["rows"] > 0 and not refresh
    if source.live:
        if stored and (start is None or start >= pd.Timestamp(m["first"])):  # type: ignore[index]
            start = pd.Timestamp(m["last"])  # type: ignore[index]
        return source.fetch(symbol, start, None, interval)
    if getattr(source, "unbounded", False):
        if stored:
            start = min(start, pd.Timestamp(m["first"]))  # type: ignore[index, type-var]
            end = max(end, pd.Timestamp(m["last"]))  # type: ignore[index, type-var]
        return source.fetch(symbol, start, end, interval)
    return source.fetch(symbol, None, None, interval)


def ingest_meta(source: Source, symbol: str, result: ValidationResult, partial: pd.DatetimeIndex,
                quarantined: int) -> dict:
    """The manifest fields an ingest records: provenance, libraries, and what validation found."""
    return {
        "provenance": source.provenance(symbol),
        "synthetic": source.synthetic,
        "calendar": source.calendar(symbol).name,
        "versions": library_versions(getattr(source, "libraries", [])),
        "quarantined": quarantined,
        "flags": int(sum(result.report.flags.values())),
        "gaps": result.report.gaps,
        "partial_excluded": [t.isoformat() for t in partial],
        "last_report": result.report.to_dict(),
    }


def library_versions(extra: list[str]) -> dict[str, str]:
    """Installed versions of the workbench, pandas, pyarrow, numpy and ``extra`` (those not installed are left out)."""
    out = {}
    for name in ["quant-workbench", "pandas", "pyarrow", "numpy", *extra]:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return out


def age_text(delta: pd.Timedelta) -> str:
    """``delta`` in words for a stale-copy warning: minutes, hours under two days, else days."""
    secs = delta.total_seconds()
    if secs < 3600:
        return f"{secs / 60:.0f} min"
    if secs < 86400 * 2:
        return f"{secs / 3600:.1f} h"
    return f"{secs / 86400:.1f} days"
