"""``workbench news``: fetch, list and show headlines in the news store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Fetch, list and show news headlines with their sentiment (see news.example.yaml).",
                  no_args_is_help=True)

SourceOpt = Annotated[str, typer.Option("--source", "-s", help="synthetic (offline), files, rss or newsapi.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _source(source: str, path: Path | None, link: float | None):
    from research.news import get_news_source

    if source == "files":
        return get_news_source("files", path=path)
    if source == "synthetic" and link is not None:
        return get_news_source("synthetic", link=link)
    return get_news_source(source)


def _date(value: str | None, option: str) -> str | None:
    """``value`` checked as a date, or a one-line error naming the option."""
    if value is None:
        return None
    import pandas as pd

    from research.data.errors import InvalidRequestError

    try:
        pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise InvalidRequestError(f"{option} {value!r} is not a date ({exc}); expected YYYY-MM-DD") from None
    return value


def _echo_json(payload: object) -> None:
    typer.echo(json.dumps(payload, indent=2, default=str))


@app.command()
def fetch(
    symbols: Annotated[list[str] | None, typer.Argument(help="Symbols; default: the sample universe.")] = None,
    source: SourceOpt = "synthetic",
    start: Annotated[str | None, typer.Option(help="First publication date (inclusive).")] = None,
    end: Annotated[str | None, typer.Option(help="Last publication date (inclusive).")] = None,
    refresh: Annotated[bool, typer.Option(help="Fetch again even if the stored copy is fresh.")] = False,
    path: Annotated[Path | None, typer.Option(help="CSV or JSON-lines file for --source files.")] = None,
    link: Annotated[float | None, typer.Option(help="Synthetic only: share of items planted from the next return.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Fetch, normalise and store headlines about SYMBOLS; print counts and mean sentiment."""
    from research.data.sources.sample import SAMPLE_UNIVERSE
    from research.news import load_news

    start, end = _date(start, "--start"), _date(end, "--end")
    names = list(symbols or SAMPLE_UNIVERSE)
    news = load_news(names, source=_source(source, path, link), start=start, end=end, refresh=refresh)
    per = {s: {"items": int((news["symbol"] == s).sum()),
               "mean_sentiment": round(float(news.loc[news["symbol"] == s, "sentiment"].mean()), 4)
               if (news["symbol"] == s).any() else None} for s in names}
    summary = {"source": news.attrs["source"], "synthetic": news.attrs["synthetic"], "stale": news.attrs["stale"],
               "scorer": news.attrs["scorer"], "report": news.attrs["report"], "symbols": per}
    if as_json:
        _echo_json(summary)
        return
    label = " (SYNTHETIC: generated, not real headlines)" if summary["synthetic"] else ""
    typer.echo(f"news from {summary['source']}{label}{' [STALE: source failed, stored copy]' if summary['stale'] else ''}")
    report = summary["report"]
    if report:
        typer.echo(f"received {report['received']}, new {report['new']}, already stored {report['already_stored']}, "
                   f"duplicates {report['duplicates']}, quarantined {report['quarantined']} {report['reasons'] or ''}".rstrip())
    else:
        typer.echo("the stored copy is fresh; nothing fetched (use --refresh to fetch again)")
    for sym, row in per.items():
        mean = "-" if row["mean_sentiment"] is None else f"{row['mean_sentiment']:+.3f}"
        typer.echo(f"  {sym:<10} {row['items']:>7} items   mean sentiment {mean}")


@app.command("list")
def list_(as_json: JsonOpt = False) -> None:
    """List the stored news datasets (one per source) with their manifests."""
    from research.news import NewsStore

    store = NewsStore()
    table = store.list()
    if as_json:
        _echo_json(table.drop(columns=["sha256"]).to_dict("records"))
        return
    if table.empty:
        typer.echo(f"No news stored under {store.root}; run `workbench news fetch`.")
        return
    table = table.assign(symbols=table["symbols"].map(lambda s: ",".join(s) if isinstance(s, list) else s),
                         fetched_at=table["fetched_at"].astype(str).str[:19])
    typer.echo(table.drop(columns=["sha256"]).to_string(index=False))


@app.command()
def show(
    symbol: Annotated[str, typer.Argument(help="Symbol whose latest headlines to show.")],
    source: SourceOpt = "synthetic",
    rows: Annotated[int, typer.Option(min=1, help="Headlines from the latest.")] = 10,
    as_json: JsonOpt = False,
) -> None:
    """Show the latest stored headlines about SYMBOL: time, publisher, sentiment, title, link."""
    from research.news import NewsStore, get_scorer

    store = NewsStore()
    name = source if source in ("files", "rss", "newsapi") else _source(source, None, None).name
    items = store.read(name, symbols=[symbol])
    latest = items.sort_values("available").tail(rows).iloc[::-1]
    scores = get_scorer().score(latest["title"].tolist())
    shown = [{"available": t.isoformat(), "published": p.isoformat(), "publisher": pub, "sentiment": round(float(s), 4),
              "title": title, "url": url}
             for t, p, pub, s, title, url in zip(latest["available"], latest["published"], latest["publisher"], scores,
                                                 latest["title"], latest["url"], strict=True)]
    quarantined = len(store.read_quarantine(name))
    if as_json:
        _echo_json({"symbol": symbol.upper(), "source": name, "synthetic": items.attrs.get("synthetic"),
                    "items": len(items), "quarantined": quarantined, "latest": shown})
        return
    label = " (SYNTHETIC)" if items.attrs.get("synthetic") else ""
    typer.echo(f"{symbol.upper()}: {len(items)} items from {name}{label}; {quarantined} quarantined in this source")
    for row in shown:
        typer.echo(f"{row['available'][:16]}  {row['sentiment']:+.2f}  {row['publisher'][:16]:<16}  {row['title']}")
        if row["url"]:
            typer.echo(f"{'':>42}{row['url']}")


def register(root: typer.Typer) -> None:
    """Add the ``news`` command group to the root app."""
    root.add_typer(app, name="news")
