"""Plain-text summaries of ingests, for the CLI and ``make run``."""

from __future__ import annotations

import pandas as pd

from research.data.errors import InvalidRequestError
from research.data.sources import Source
from research.data.store import IngestResult

__all__ = ["default_universe", "ingest_summary", "print_ingest_summary", "print_table"]


def default_universe(source: Source, interval: str) -> tuple[list[str], str]:
    """The symbols a bare ``fetch`` takes: the sample's daily universe, or a few synthetic ones."""
    if source.name == "sample":
        return [s for s in source.symbols() if s != "BTC-USD"], "1d"
    if source.synthetic:
        return ["SYN0000", "SYN0001", "BTC-USD", "ETH-USD"], interval
    raise InvalidRequestError(
        f"name the symbols to fetch from {source.name}, e.g. `workbench data fetch AAPL MSFT --source {source.name}`"
    )


def ingest_summary(results: dict[str, IngestResult]) -> pd.DataFrame:
    """One row per symbol: rows, range, quarantined, flags, gaps, synthetic, stale."""
    rows = []
    for sym, res in results.items():
        m = res.manifest
        rows.append(
            {
                "symbol": sym,
                "source": m["source"],
                "interval": m["interval"],
                "rows": m["rows"],
                "first": str(m["first"])[:10],
                "last": str(m["last"])[:10],
                "quarantined": m.get("quarantined", 0),
                "flagged": m.get("flags", 0),
                "gaps": m.get("gaps", 0),
                "synthetic": "yes" if m.get("synthetic") else "no",
                "status": ("stale" if res.stale else ("ingested" if res.fetched else "cached"))
                + (f" ({len(m['partial_excluded'])} forming bar left out)" if m.get("partial_excluded") else ""),
            }
        )
    return pd.DataFrame(rows)


def print_table(frame: pd.DataFrame) -> None:
    """Print a frame as an aligned table (rich when available)."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover - rich comes with typer
        print(frame.to_string(index=False))
        return
    table = Table(show_lines=False)
    for col in frame.columns:
        table.add_column(str(col), justify="right" if pd.api.types.is_numeric_dtype(frame[col]) else "left")
    for row in frame.itertuples(index=False):
        table.add_row(*[f"{v:,}" if isinstance(v, int) else str(v) for v in row])
    Console(width=160).print(table)


def print_ingest_summary(results: dict[str, IngestResult]) -> None:
    """Print :func:`ingest_summary` and where the store is."""
    from research.config import get_settings

    frame = ingest_summary(results)
    print_table(frame)
    s = get_settings()
    print(f"store: {s.store_dir}   quarantine: {s.quarantine_dir}")
