"""``workbench paper``: follow a strategy in a paper account, replay it, and read its monitor.

Example::

    workbench paper start demo --strategy ma_crossover --symbols SPX --symbols IXIC --cash 100000
    workbench paper replay demo --from 2018-01-02 --to 2018-12-31
    workbench paper show demo
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from research.cli.options import check_range, date_option

__all__ = ["register", "app", "ensure_demo", "DEMO"]

app = typer.Typer(
    help="Paper trading: accounts that follow a strategy bar by bar in the ledger, replay through history, "
         "and a monitor that reconciles each account with its backtest.",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(help="Account name.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
DEMO = {"name": "demo", "strategy": "ma_crossover", "symbols": ["SPX", "IXIC", "GOOG", "MSFT"], "cash": 100_000.0,
        "fees": 0.001, "slippage": 0.0005, "start": "2018-01-02", "end": "2018-12-31"}


def _echo_json(payload: Any) -> None:
    from research.paper.book import to_json

    typer.echo(json.dumps(json.loads(to_json(payload)), indent=2))


def _params(items: list[str] | None) -> dict[str, str]:
    from research.cli.backtest import parse_params

    return parse_params(items)


@app.command("start")
def start_command(
    name: NameArg,
    strategy: Annotated[str, typer.Option(help="Strategy: ma_crossover, rsi_reversion, bollinger_breakout, "
                                               "time_series_momentum.")],
    symbols: Annotated[list[str], typer.Option("--symbols", "--symbol", "-y", help="Symbol to trade; repeat.")],
    cash: Annotated[float, typer.Option(help="Initial cash of the account.")] = 100_000.0,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="Strategy parameter KEY=VALUE; repeat.")] = None,
    sizing: Annotated[str, typer.Option(help="Sizer: all_in, fixed_fraction, vol_target, atr_risk or kelly.")] = "all_in",
    sizing_param: Annotated[list[str] | None, typer.Option(help="Sizer option KEY=VALUE; repeat.")] = None,
    fees: Annotated[float, typer.Option(help="Proportional fee on traded value (0.001 = 0.1%).")] = 0.0,
    slippage: Annotated[float, typer.Option(help="Adverse slippage on every fill price (0.0005 = 5 bp).")] = 0.0,
    whole_shares: Annotated[bool, typer.Option(help="Trade whole shares only.")] = False,
    stop_loss: Annotated[float | None, typer.Option(help="Stop-loss as a fraction of the entry price.")] = None,
    take_profit: Annotated[float | None, typer.Option(help="Take-profit as a fraction of the entry price.")] = None,
    trailing_stop: Annotated[float | None, typer.Option(help="Trailing stop as a fraction below the best price.")] = None,
    max_drawdown: Annotated[float | None, typer.Option(help="Close all and stop trading at this drawdown.")] = None,
    source: Annotated[str, typer.Option(help="Price source: sample, synthetic, yahoo, coingecko or ccxt.")] = "sample",
    interval: Annotated[str, typer.Option(help="Bar length: 1d or 1h.")] = "1d",
    calendar: Annotated[str | None, typer.Option(help="equity or crypto (default: crypto for coingecko, "
                                                      "else equity).")] = None,
    pipeline: Annotated[str | None, typer.Option(help="Pipeline whose paper stage steps the account: daily or "
                                                      "hourly.")] = None,
) -> None:
    """Create account NAME that follows STRATEGY on the symbols, in one shared-cash book.

    Example: workbench paper start demo --strategy ma_crossover --symbols SPX --symbols IXIC --cash 100000
    """
    from research.cli.backtest import parse_number
    from research.paper import book
    from research.strategies.catalog import get_strategy
    from research.strategies.sizing import SIZERS
    from research.strategies.stops import RiskRules

    spec = get_strategy(strategy)
    params = spec.coerce(_params(param))
    if sizing not in SIZERS:
        raise ValueError(f"unknown sizer {sizing!r}; expected one of {sorted(SIZERS)}")
    risk = {k: v for k, v in {"stop_loss": stop_loss, "take_profit": take_profit, "trailing_stop": trailing_stop,
                              "max_drawdown": max_drawdown}.items() if v is not None}
    RiskRules(**risk)
    for label, value in (("fees", fees), ("slippage", slippage)):
        if not 0 <= value < 1:
            raise ValueError(f"{label} must be a fraction in [0, 1), got {value!r}")
    account = book.Account(
        name, strategy, list(symbols), params=params, sizing=sizing,
        sizing_params={k: parse_number(v) for k, v in _params(sizing_param).items()}, risk=risk, fees=fees,
        slippage=slippage, whole_shares=whole_shares, initial_cash=cash,
        calendar=calendar or ("crypto" if source == "coingecko" or source.startswith("ccxt") or pipeline == "hourly" else "equity"),
        source=source, interval=interval, pipeline=pipeline, long_only=params.get("direction", "long") == "long")
    if source in ("sample", "synthetic"):  # offline: check the symbols have prices before creating
        from research.paper.trading import load_fields

        load_fields(account)
    acct = book.create_account(account)
    typer.echo(f"created paper account {acct.name}: {acct.strategy} {acct.params} on {', '.join(acct.symbols)}, "
               f"cash {acct.initial_cash:,.2f}")
    typer.echo(f"next: workbench paper replay {acct.name} --from 2018-01-02 --to 2018-12-31   "
               f"or   workbench paper step {acct.name}")


@app.command("step")
def step_command(
    name: NameArg,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Session date (default: the last bar).",
                                              callback=date_option)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Fill yesterday's orders at today's open and decide tomorrow's, catching up missed sessions."""
    from research.paper.trading import step

    out = step(name, as_of)
    if as_json:
        _echo_json(out)
    else:
        typer.echo(f"{name}: {out['sessions']} session(s) written, as of {out['as_of'][:16]}")


@app.command("replay")
def replay_command(
    name: NameArg,
    start: Annotated[str, typer.Option("--from", help="First session (date).", callback=date_option)],
    end: Annotated[str, typer.Option("--to", help="Last session (date).", callback=date_option)],
    as_json: JsonOpt = False,
) -> None:
    """Step the account once per session from --from to --to, each session seeing only bars up to its date.

    Resumable: sessions already in the ledger are skipped.
    """
    check_range(start, end, start_option="--from", end_option="--to")
    from research.paper.replay import replay

    out = replay(name, start, end, progress=not as_json)
    if as_json:
        _echo_json(out)
        return
    typer.echo(f"{name}: {out['sessions']} session(s) replayed, {out['skipped']} already in the ledger "
               f"({out['first'][:10]} to {out['last'][:10]})")
    _headline(name)


def _headline(name: str) -> None:
    from research.paper.monitor import report

    r = report(name, trades=0)
    rec = r["reconciliation"]
    perf = r["performance"]
    typer.echo(f"{name}: equity {r['final_equity']:,.2f} ({perf['Return [%]']:+.2f}%), {r['fills']} fills over "
               f"{r['sessions']} sessions")
    if rec.get("returns_correlation") is not None:
        typer.echo(f"vs backtest: returns correlation {rec['returns_correlation']:.6f}, tracking error "
                   f"{rec['tracking_error']:.2e}, total-return difference {rec['total_return_difference']:+.2e}, "
                   f"{rec['differences']} fill difference(s)")


@app.command("list")
def list_command(as_json: JsonOpt = False) -> None:
    """List the paper accounts with their last session and equity."""
    from research.paper import book

    rows = []
    for a in book.list_accounts():
        s = book.sessions(a.name)
        rows.append({"name": a.name, "strategy": a.strategy, "symbols": a.symbols, "pipeline": a.pipeline,
                     "sessions": len(s), "last_session": str(s["as_of"].iloc[-1]) if len(s) else None,
                     "equity": float(s["equity"].iloc[-1]) if len(s) else a.initial_cash})
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        typer.echo("no paper accounts; create one with `workbench paper start NAME --strategy ... --symbols ...`")
    for r in rows:
        last = (r["last_session"] or "never")[:16]
        typer.echo(f"{r['name']:<16} {r['strategy']:<22} {','.join(r['symbols']):<24} sessions {r['sessions']:>5}  "
                   f"last {last:<16} equity {r['equity']:>14,.2f}")


@app.command("show")
def show_command(name: NameArg, as_json: JsonOpt = False,
                 trades: Annotated[int, typer.Option(help="Recent fills and differences to list.")] = 10) -> None:
    """Performance, positions, recent fills and the reconciliation against the backtest."""
    from research.paper.monitor import report

    r = report(name, trades=trades)
    if as_json:
        _echo_json(r)
        return
    a = r["account"]
    typer.echo(f"{a['name']}: {a['strategy']} {a['params']} on {', '.join(a['symbols'])}; fees {a['fees']:g}, "
               f"slippage {a['slippage']:g}, whole shares {a['whole_shares']}, risk {a['risk'] or 'none'}")
    typer.echo(f"last session {r['last_session'][:16]}; cash {r['cash']:,.2f}; positions {r['positions'] or 'none'}")
    typer.echo(f"stale exposure {r['stale_exposure']:.2%} of equity")
    for p in r["stale_positions"]:
        typer.secho(f"  stale: {p['symbol']} {p['qty']:g} held at its last close {p['last_close']:,.2f} of "
                    f"{p['last_bar'][:16]} ({p['age_days']:g} days, {p['bars_behind']} bars behind)",
                    fg=typer.colors.YELLOW)
    for key, value in r["performance"].items():
        typer.echo(f"  {key:<18} {value:>16,.4f}" if isinstance(value, float) else f"  {key:<18} {value:>16}")
    rec = r["reconciliation"]
    if rec.get("returns_correlation") is not None:
        typer.echo(f"reconciliation with backtest {rec['start'][:10]} to {rec['end'][:10]}: correlation "
                   f"{rec['returns_correlation']:.6f}, tracking error {rec['tracking_error']:.2e}, total return "
                   f"{rec['total_return_paper']:+.4%} vs {rec['total_return_backtest']:+.4%}, "
                   f"{rec['differences']} fill difference(s)")
    for d in r["differences"]:
        typer.echo(f"  {str(d['timestamp'])[:10]} {d['symbol']}: {d['cause']}")
    for alert in r["drift_alerts"]:
        typer.echo(f"drift: {alert['message']}")
    for problem in r["checks"]:
        typer.secho(f"invariant: {problem}", fg=typer.colors.RED)


@app.command("history")
def history_command(name: NameArg, as_json: JsonOpt = False,
                    limit: Annotated[int, typer.Option(help="Last N sessions (0 = all).")] = 20) -> None:
    """Sessions of the account: as-of, cash, equity, and the fills of each session."""
    from research.paper import book

    s = book.sessions(name)
    f = book.fills(name)
    counts = f.groupby("timestamp").size() if len(f) else {}
    rows = [{"as_of": str(r.as_of), "cash": r.cash, "equity": r.equity, "fills": int(counts.get(r.as_of, 0))
             if len(f) else 0, "targets": r.targets} for r in s.itertuples()]
    rows = rows[-limit:] if limit else rows
    if as_json:
        _echo_json(rows)
        return
    for r in rows:
        typer.echo(f"{r['as_of'][:16]}  cash {r['cash']:>14,.2f}  equity {r['equity']:>14,.2f}  fills {r['fills']}")


@app.command("check")
def check_command(
    name: NameArg,
    rehash: Annotated[bool, typer.Option("--rehash", help="Verify the book, then (re)seal every session as it is "
                                                           "now (a ledger written before seals, or one edited on "
                                                           "purpose).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Verify every session: cash and positions rebuilt from flows and fills, each session's seal, the row rules,
    and that no order was decided for a symbol whose data was stale at that bar.

    Exits 1 and names each problem (session, table, row, what differs) when the book does not verify.
    """
    from dataclasses import asdict

    from research.paper import audit, book

    if rehash:
        sealed = audit.rehash(name)
        typer.echo(f"{name}: verified and sealed {sealed} session(s)")
    from research.data.errors import DataError

    v = audit.verify(name)
    notes = list(v.notes)
    try:  # no order decided on stale data
        stale = book.stale_order_problems(book.get_account(name))
    except DataError as exc:
        stale, notes = [], [*notes, f"orders not checked against stale data: {exc}"]
    if as_json:
        _echo_json(asdict(v) | {"notes": notes, "stale_orders": stale})
    else:
        for note in notes:
            typer.echo(f"{name}: note: {note}")
        for p in [*v.problems, *stale]:
            typer.secho(f"{name}: {p}", err=True, fg=typer.colors.RED)
    if v.problems or stale:
        raise typer.Exit(1)
    if not as_json:
        head = f", head digest {v.head[:16]}" if v.head else ""
        typer.echo(f"{name}: book verified ({v.fills} fills, {v.sessions} sessions, {v.sealed} seals{head})")


@app.command("import")
def import_command(name: NameArg, file: Annotated[Path, typer.Argument(help="Transactions or holdings CSV.")]) -> None:
    """Import a transactions or holdings CSV (validated whole; nothing applied if a row is invalid)."""
    from research.paper.transfer import import_csv

    if not file.is_file():
        raise FileNotFoundError(2, "No such file", str(file))
    out = import_csv(name, file)
    typer.echo(f"{name}: imported {out['fills']} fill(s) and {out['flows']} cash flow(s) from {file}")


@app.command("export")
def export_command(name: NameArg, folder: Annotated[Path, typer.Argument(help="Folder for the CSV files.")]) -> None:
    """Export the account's transactions and holdings as CSV into FOLDER."""
    from research.paper.transfer import export_csv

    for kind, path in export_csv(name, folder).items():
        typer.echo(f"{kind}: {path}")


def ensure_demo(*, echo=typer.echo) -> dict[str, Any]:
    """Create the ``demo`` account if absent, replay the sample's last year, print its headline."""
    from research.paper import book
    from research.paper.replay import replay

    d = DEMO
    try:
        book.get_account(d["name"])
    except book.AccountError:
        book.create_account(book.Account(d["name"], d["strategy"], d["symbols"], initial_cash=d["cash"],
                                         fees=d["fees"], slippage=d["slippage"], pipeline="daily"))
    out = replay(d["name"], d["start"], d["end"], progress=True)
    _headline(d["name"])
    echo(f"see it: workbench paper show {d['name']}   (history: workbench paper history {d['name']})")
    return out


def register(root: typer.Typer) -> None:
    """Add ``paper`` to the root command."""
    root.add_typer(app, name="paper")
