"""``workbench walk-forward``: choose a strategy family's parameters in-sample, trade them out of sample."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from research.cli.backtest import (
    CashOpt,
    ClusterOpt,
    FeesOpt,
    IntervalOpt,
    MetricOpt,
    SlipOpt,
    SourceOpt,
    SymbolOpt,
    TimingOpt,
    WholeOpt,
    parse_grid,
)
from research.defaults import BACKTEST

__all__ = ["register", "walk_forward_command", "FAMILY_NAMES"]

logger = logging.getLogger(__name__)

#: The families the command takes (kept here so a refusal needs no kernel import; a test holds it to FAMILIES).
FAMILY_NAMES = ("ma_crossover", "rsi_reversion", "bollinger_breakout", "time_series_momentum", "candlestick")
FamilyArg = Annotated[str, typer.Argument(metavar="FAMILY", help=f"Strategy family: {', '.join(FAMILY_NAMES)}.")]
TrainOpt = Annotated[int, typer.Option(min=2, help="Training window in bars (756: three years of sessions).")]
TestOpt = Annotated[int, typer.Option(min=2, help="Test window in bars; folds roll forward by it (126: half a year).")]
AnchoredOpt = Annotated[bool, typer.Option(help="Grow each training window from the first bar instead of rolling it.")]
HaltOpt = Annotated[float | None, typer.Option(
    help="Close all and stop trading once the stitched book is this fraction below its peak (also in-sample).")]
GridOpt = Annotated[list[str] | None, typer.Option(
    "--grid", "-g", help="Values of one parameter searched in every training window: KEY=START:STOP[:STEP] (both "
                         "ends included) or KEY=V1,V2; repeat. Besides the strategy's parameters: direction=long,both "
                         "and the stop levels stop_loss, take_profit, trailing_stop (fractions; 0 = off). Default: "
                         "the catalog's grid of the family (the crossover: fast from 5 to 100 in steps of 5, slow "
                         "from 20 to 200 in steps of 10).")]
OutOpt = Annotated[Path | None, typer.Option(help="Also write the folds (folds.csv) and the summary (summary.json) "
                                                  "to this folder.")]


def walk_forward_command(
    family: FamilyArg,
    symbol: SymbolOpt = ["GOOG"],  # noqa: B006 - typer needs the literal default
    grid: GridOpt = None,
    train: TrainOpt = 756,
    test: TestOpt = 126,
    anchored: AnchoredOpt = False,
    metric: MetricOpt = "sharpe",
    source: SourceOpt = "sample",
    interval: IntervalOpt = "1d",
    fees: FeesOpt = BACKTEST["fees"],
    slippage: SlipOpt = BACKTEST["slippage"],
    cash: CashOpt = BACKTEST["init_cash"],
    timing: TimingOpt = BACKTEST["timing"],
    whole_shares: WholeOpt = False,
    max_drawdown: HaltOpt = None,
    cluster: ClusterOpt = None,
    out: OutOpt = None,
) -> None:
    """Walk FAMILY forward: in each fold sweep --grid on the training window, trade the best set on the test window.

    Prints each fold's chosen set with its in-sample and out-of-sample figures, then the risk summary of the stitched out-of-sample book (one engine backtest over every test window).

    Example: workbench walk-forward rsi_reversion --symbol GOOG --grid window=5:30:5 --grid lower=20:40:5 --grid exit_level=50,60 --grid stop_loss=0,0.05 --train 756 --test 126

    On a cluster (the same folds and book): add --cluster local, or --cluster tcp://host:8786.
    """
    if family not in FAMILY_NAMES:
        raise typer.BadParameter(f"unknown family {family!r}; expected one of {', '.join(FAMILY_NAMES)}",
                                 param_hint="'FAMILY'")
    try:
        values = parse_grid(grid) or None
    except typer.BadParameter as exc:
        raise typer.BadParameter(str(exc), param_hint="'--grid'") from None
    if timing not in ("next_open", "next_close"):
        raise typer.BadParameter(f"must be next_open or next_close, got {timing!r}", param_hint="'--timing'")
    from research.backtest.walkforward_family import check_family_grid

    if values is not None:
        try:
            check_family_grid(family, values, None)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="'--grid'") from None
    from research.backtest.walkforward import walk_forward
    from research.cli.backtest import load_symbols, on_cluster

    prices = load_symbols(symbol, source, interval)
    t0 = time.perf_counter()
    import vectorbt  # noqa: F401 - the engine's simulator, loaded once here so the timing below is the walk's own

    loading, t0 = time.perf_counter() - t0, time.perf_counter()
    kwargs = {"train": train, "test": test, "anchored": anchored, "metric": metric, "fees": fees, "slippage": slippage,
              "init_cash": cash, "timing": timing, "whole_shares": whole_shares, "progress": True,
              "risk": {"max_drawdown": max_drawdown} if max_drawdown is not None else None}
    wf = on_cluster(cluster, lambda client: walk_forward(prices, family, values, client=client, **kwargs))
    _report(wf, family, source=source, interval=interval, seconds=time.perf_counter() - t0)
    typer.echo(f"(plus {loading:.2f} s loading the backtest engine)")
    if out is not None:
        _write(wf, out)


def _report(wf: Any, family: str, *, source: str, interval: str, seconds: float) -> None:
    """Print the folds table and the stitched book's summary of every symbol."""
    import pandas as pd

    p, folds = wf.params, wf.folds
    grid = p.get("grid") or {"fast": p["fast"], "slow": p["slow"]}
    n_sets = math.prod(len(v) for v in grid.values())
    names = wf.param_names
    typer.echo(f"{family} walk-forward on {', '.join(wf.result.params['symbols'])} ({source}, {interval}): "
               f"{folds['fold'].nunique()} folds of {p['train']} training and {p['test']} test bars "
               f"({'anchored' if p['anchored'] else 'rolling'}); best {wf.metric} in-sample of up to {n_sets:,} sets "
               f"({' x '.join(names)}); fees {p['fees']:g}, slippage {p['slippage']:g}, {p['timing']} fills")
    cols = ["symbol", "fold", "train_start", "test_start", "test_end", *names, f"is_{wf.metric}", "oos_sharpe",
            "oos_return"]
    shown = folds[cols].copy()
    for c in ("train_start", "test_start", "test_end"):
        shown[c] = pd.to_datetime(shown[c]).dt.strftime("%Y-%m-%d")
    with pd.option_context("display.float_format", "{:,.3f}".format, "display.width", 250,
                           "display.max_columns", 40, "display.max_rows", 500):
        typer.echo(shown.to_string(index=False))
        typer.echo(f"\nout of sample ({wf.result.params['start'][:10]} to {wf.result.params['end'][:10]}, "
                   "one stitched book per symbol):")
        typer.echo(wf.result.stats.T.to_string())
    typer.echo(f"\n{len(folds):,} folds in {seconds:.2f} s")


def _write(wf: Any, out: Path) -> None:
    """The folds as CSV and the summary as JSON in ``out``, each written whole or not at all."""
    from research.atomic import PLAIN_FILE_MODE, atomic_path, atomic_write
    from research.data.csvsafe import to_csv

    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "folds.csv", mode=PLAIN_FILE_MODE) as tmp:
        to_csv(wf.folds, tmp, index=False)
    payload = {"params": wf.params, "metric": wf.metric, "stats": json.loads(wf.result.stats.to_json(orient="index", double_precision=15))}
    atomic_write(out / "summary.json", json.dumps(payload, indent=2, default=str), mode=PLAIN_FILE_MODE)
    typer.echo(f"folds -> {out / 'folds.csv'}; summary -> {out / 'summary.json'}")


def register(app: typer.Typer) -> None:
    """Add ``walk-forward`` to the root command."""
    app.command("walk-forward")(walk_forward_command)
