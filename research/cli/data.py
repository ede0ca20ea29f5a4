"""``workbench data``: fetch, list, show and validate market data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from research.cli.options import check_range, date_option

app = typer.Typer(help="Fetch, list, show and validate market data in the store.", no_args_is_help=True)

SourceOpt = Annotated[str, typer.Option("--source", "-s", help="sample, synthetic, files, yahoo, coingecko or ccxt (ccxt:<exchange>).")]
IntervalOpt = Annotated[str, typer.Option("--interval", "-i", help="Bar length: 1d, 1h, 1wk or 1mo.")]


def _source(source: str, directory: Path | None):
    from research.data import get_source

    return get_source(source, directory=directory) if source == "files" else get_source(source)



@app.command()
def fetch(
    symbols: Annotated[list[str] | None, typer.Argument(help="Symbols; default: the sample universe.")] = None,
    source: SourceOpt = "sample",
    interval: IntervalOpt = "1d",
    start: Annotated[str | None, typer.Option(help="First date (inclusive).", callback=date_option)] = None,
    end: Annotated[str | None, typer.Option(help="Last date (inclusive).", callback=date_option)] = None,
    refresh: Annotated[bool, typer.Option(help="Ingest again even if the stored copy is fresh.")] = False,
    directory: Annotated[Path | None, typer.Option(help="Folder of files for --source files.")] = None,
) -> None:
    """Fetch, validate and store SYMBOLS, then print what was stored and quarantined."""
    check_range(start, end, start_option="--start", end_option="--end")
    from research.data import ingest_many
    from research.data.summary import default_universe, print_ingest_summary

    src = _source(source, directory)
    if not symbols:
        symbols, interval = default_universe(src, interval)
    results = ingest_many(symbols, start=start, end=end, interval=interval, source=src, refresh=refresh, progress=True)
    print_ingest_summary(results)


@app.command("list")
def list_() -> None:
    """List the stored datasets with their manifests."""
    from research.data import Store
    from research.data.summary import print_table

    store = Store()
    table = store.list()
    if table.empty:
        typer.echo(f"The store at {store.root} is empty; run `workbench data fetch`.")
        return
    print_table(table.drop(columns=["sha256"]).assign(fetched_at=table["fetched_at"].str[:19]))
    typer.echo(f"store: {store.root}")


@app.command()
def show(
    symbol: Annotated[str, typer.Argument(help="Symbol to show.")],
    source: SourceOpt = "sample",
    interval: IntervalOpt = "1d",
    rows: Annotated[int, typer.Option(help="Rows from the end.")] = 10,
) -> None:
    """Show a stored dataset's manifest, last rows and quarantined rows."""
    import json

    from research.data import Store

    store = Store()
    manifest = store.manifest(source, interval, symbol)
    if manifest is None:
        typer.echo(f"error: {symbol} ({source}, {interval}) is not stored; run `workbench data fetch {symbol} --source {source}`", err=True)
        raise typer.Exit(2)
    typer.echo(json.dumps({k: v for k, v in manifest.items() if k != "last_report"}, indent=2))
    typer.echo(store.read(source, interval, symbol).tail(rows).to_string())
    q = store.read_quarantine(source, interval, symbol)
    typer.echo(f"quarantined rows: {len(q)}")
    if len(q):
        typer.echo(q.tail(rows).to_string())


@app.command()
def validate(
    path: Annotated[Path, typer.Argument(help="A CSV or Parquet file of bars.", exists=True, dir_okay=False)],
    interval: IntervalOpt = "1d",
    calendar: Annotated[str, typer.Option(help="equity or crypto.")] = "equity",
) -> None:
    """Validate a file of bars without storing it; exit 1 if any row would be quarantined."""
    from research.data.schema import validate_ohlcv
    from research.data.sources.files import FilesSource

    name = path.name.removesuffix(".gz").removesuffix(".csv").removesuffix(".parquet")
    src = FilesSource(path.parent, calendar=calendar)
    result = validate_ohlcv(src.fetch(name, None, None, interval), symbol=name, source="files", interval=interval, calendar=src.calendar(name))
    rep = result.report
    typer.echo(
        f"{path}: received {rep.received}, stored {rep.stored}, quarantined {rep.quarantined}, "
        f"duplicates {rep.duplicates}, gaps {rep.gaps}"
    )
    for code, count in {**rep.reasons, **rep.flags}.items():
        typer.echo(f"  {code}: {count}")
    if len(result.quarantine):
        typer.echo(result.quarantine.head(20).to_string())
        raise typer.Exit(1)


def register(root: typer.Typer) -> None:
    """Add the ``data`` group to the root ``workbench`` command."""
    root.add_typer(app, name="data")
