"""``workbench backtest`` and ``workbench sweep``: run strategies on stored market data."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from research.atomic import PLAIN_FILE_MODE, atomic_path, atomic_write
from research.cli.options import check_range, date_option
from research.defaults import BACKTEST

__all__ = ["register", "parse_params", "parse_grid", "load_symbols", "on_cluster"]

SymbolOpt = Annotated[list[str], typer.Option("--symbol", "-y", help="Symbol to trade; repeat for several.")]
SourceOpt = Annotated[str, typer.Option("--source", "-s", help="Data source: sample, synthetic, files, yahoo, coingecko or ccxt (ccxt:<exchange>).")]
IntervalOpt = Annotated[str, typer.Option("--interval", "-i", help="Bar length: 1d, 1h, 1wk or 1mo.")]
StartOpt = Annotated[str | None, typer.Option(help="First bar to trade (earlier bars still warm indicators up).",
                                              callback=date_option)]
EndOpt = Annotated[str | None, typer.Option(help="Last bar to trade (inclusive).", callback=date_option)]
FeesOpt = Annotated[float, typer.Option(help="Proportional fee on traded value (0.001 = 0.1%).")]
SlipOpt = Annotated[float, typer.Option(help="Adverse slippage on every fill price (0.0005 = 5 bp).")]
CashOpt = Annotated[float, typer.Option("--cash", help="Initial cash of each book.")]
TimingOpt = Annotated[str, typer.Option(help="Fill timing: next_open (default: close-of-t signal fills at the "
                                             "open of t+1), next_close, or same_close.")]


def parse_number(text: str) -> Any:
    """``text`` as an int, else a float, else the text itself."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_params(items: list[str] | None) -> dict[str, str]:
    """``["fast=20", "slow=50"]`` -> ``{"fast": "20", "slow": "50"}`` (typed later by the registry)."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def parse_grid(items: list[str] | None) -> dict[str, list[Any]]:
    """``["fast=2:200", "slow=10,20,50", "k=1.5:2.5:0.5"]`` -> value lists (ranges include both ends)."""
    grid: dict[str, list[Any]] = {}
    for key, text in parse_params(items).items():
        if ":" in text:
            parts = [parse_number(p) for p in text.split(":")]
            if len(parts) not in (2, 3) or not all(isinstance(p, int | float) for p in parts):
                raise typer.BadParameter(f"range for {key!r} must be START:STOP[:STEP], got {text!r}")
            lo, hi = parts[0], parts[1]
            step = parts[2] if len(parts) == 3 else 1
            if step <= 0 or hi < lo:
                raise typer.BadParameter(f"range for {key!r} needs START <= STOP and STEP > 0, got {text!r}")
            count = int(round((hi - lo) / step)) + 1
            values = [lo + i * step for i in range(count)]
            grid[key] = [int(v) if all(isinstance(p, int) for p in parts) else round(float(v), 12) for v in values]
        else:
            grid[key] = [parse_number(v.strip()) for v in text.split(",") if v.strip()]
    return grid


def load_symbols(symbols: list[str], source: str, interval: str):
    """The stored prices of ``symbols`` (one symbol's frame, or several), refusing an empty list."""
    from research.data import load_prices

    if not symbols:
        raise typer.BadParameter("give at least one --symbol")
    return load_prices(symbols if len(symbols) > 1 else symbols[0], interval=interval, source=source)


def _risk(stop_loss, take_profit, trailing_stop, max_drawdown) -> dict[str, float]:
    values = {"stop_loss": stop_loss, "take_profit": take_profit, "trailing_stop": trailing_stop,
              "max_drawdown": max_drawdown}
    return {k: v for k, v in values.items() if v is not None}


def backtest_command(
    strategy: Annotated[str, typer.Argument(help="Strategy name: ma_crossover, rsi_reversion, bollinger_breakout, "
                                                 "time_series_momentum, candlestick.")],
    symbol: SymbolOpt = ["SPX"],  # noqa: B006 - typer needs the literal default
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="Strategy parameter KEY=VALUE; repeat.")] = None,
    source: SourceOpt = "sample",
    interval: IntervalOpt = "1d",
    start: StartOpt = None,
    end: EndOpt = None,
    fees: FeesOpt = BACKTEST["fees"],
    slippage: SlipOpt = BACKTEST["slippage"],
    cash: CashOpt = BACKTEST["init_cash"],
    timing: TimingOpt = BACKTEST["timing"],
    sizing: Annotated[str, typer.Option(help="Sizer: all_in, fixed_fraction, vol_target, atr_risk or kelly.")] = "all_in",
    sizing_param: Annotated[list[str] | None, typer.Option(help="Sizer option KEY=VALUE; repeat.")] = None,
    stop_loss: Annotated[float | None, typer.Option(help="Stop-loss as a fraction of the entry price.")] = None,
    take_profit: Annotated[float | None, typer.Option(help="Take-profit as a fraction of the entry price.")] = None,
    trailing_stop: Annotated[float | None, typer.Option(help="Trailing stop as a fraction below the best price.")] = None,
    max_drawdown: Annotated[float | None, typer.Option(help="Close all and stop trading at this drawdown.")] = None,
    shared_cash: Annotated[bool, typer.Option(help="One book for all symbols (default: one book per symbol).")] = False,
    trades: Annotated[int, typer.Option(help="Print the last N trades.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Backtest STRATEGY on stored data and print its risk summary.

    Example: workbench backtest ma_crossover --symbol SPX --param fast=20 --param slow=50 --fees 0.001
    """
    check_range(start, end, start_option="--start", end_option="--end")
    import pandas as pd

    from research.backtest import backtest
    from research.strategies.sizing import SIZERS

    if sizing not in SIZERS:
        raise typer.BadParameter(f"unknown sizer {sizing!r}; expected one of {sorted(SIZERS)}")
    prices = load_symbols(symbol, source, interval)
    sp = {k: parse_number(v) for k, v in parse_params(sizing_param).items()}
    res = backtest(prices, strategy, params=parse_params(param), sizing=sizing, sizing_params=sp,
                   risk=_risk(stop_loss, take_profit, trailing_stop, max_drawdown), fees=fees, slippage=slippage,
                   init_cash=cash, timing=timing, shared_cash=shared_cash, start=start, end=end)
    if as_json:
        payload = {"params": res.params, "stats": json.loads(res.stats.to_json(orient="index"))}
        typer.echo(json.dumps(payload, indent=2, default=str))
        return
    p = res.params
    typer.echo(f"{p['strategy']} {p['params']} on {', '.join(p['symbols'])} ({source}, {interval}) "
               f"{p['start'][:10]} to {p['end'][:10]}")
    typer.echo(f"fills: {p['timing']}; fees {fees:g}, slippage {slippage:g}; sizing {sizing}; "
               f"periods/year {p['periods_per_year']:g}")
    with pd.option_context("display.float_format", "{:,.3f}".format, "display.max_rows", 100):
        typer.echo(res.stats.T.to_string())
    if trades and len(res.trades):
        cols = ["symbol", "direction", "entry_time", "exit_time", "entry_price", "exit_price", "pnl", "exit_reason"]
        typer.echo(f"\nlast {min(trades, len(res.trades))} of {len(res.trades)} trades:")
        typer.echo(res.trades[cols].tail(trades).to_string(index=False))
    for sym in res.excluded:
        typer.echo(f"excluded (no prices): {sym}", err=True)


GridOpt = Annotated[list[str] | None, typer.Option(
    "--grid", "-g", help="Values of one parameter: KEY=START:STOP[:STEP] (both ends included) or KEY=V1,V2; "
                         "repeat. Besides the strategy's parameters: direction=long,both and the risk levels "
                         "stop_loss, take_profit, trailing_stop, drawdown_halt (fractions; 0 = off). "
                         "Default for ma_crossover: every pair 2 <= fast < slow <= 200.")]
OutOpt = Annotated[Path, typer.Option(help="Folder for the table and heatmaps.")]
FormatOpt = Annotated[str, typer.Option("--format", help="Table format: csv or parquet.")]
MetricOpt = Annotated[str, typer.Option(help="Metric to maximise and to colour the heatmap by.")]
XOpt = Annotated[str | None, typer.Option("--x", help="Heatmap x axis (default: the first swept parameter).")]
YOpt = Annotated[str | None, typer.Option("--y", help="Heatmap y axis (default: the second swept parameter).")]
FixOpt = Annotated[list[str] | None, typer.Option(
    "--fix", help="Hold another parameter at one value in the heatmap: KEY=VALUE; repeat.")]
AggOpt = Annotated[str, typer.Option(help="Fold the parameters neither shown nor fixed by: max, min, median or mean.")]
WholeOpt = Annotated[bool, typer.Option(help="Trade whole shares only.")]
OverfitOpt = Annotated[bool, typer.Option(help="Report the deflated Sharpe ratio and the probability of backtest "
                                               "overfitting of the best set (fused sweeps).")]
ClusterOpt = Annotated[str | None, typer.Option(
    help="Run on Dask: 'local' (a LocalCluster, one worker per core) or a scheduler address "
         "(tcp://host:8786). Default: in this process.")]
CacheOpt = Annotated[bool | None, typer.Option(
    "--cache/--no-cache", help="Keep finished chunks under <data dir>/cache/sweeps and resume from them "
                               "(default: on with --cluster).")]
SweepStrategy = Annotated[str, typer.Argument(help="Strategy name: ma_crossover (the default), rsi_reversion, "
                                                   "bollinger_breakout, time_series_momentum, candlestick (fused kernels).")]


def sweep_command(
    strategy: SweepStrategy = "ma_crossover",
    symbol: SymbolOpt = ["GOOG"],  # noqa: B006
    grid: GridOpt = None,
    out: OutOpt = Path("sweep-out"),
    fmt: FormatOpt = "csv",
    metric: MetricOpt = "sharpe",
    x: XOpt = None,
    y: YOpt = None,
    fix: FixOpt = None,
    agg: AggOpt = "max",
    source: SourceOpt = "sample",
    interval: IntervalOpt = "1d",
    start: StartOpt = None,
    end: EndOpt = None,
    fees: FeesOpt = BACKTEST["fees"],
    slippage: SlipOpt = BACKTEST["slippage"],
    cash: CashOpt = BACKTEST["init_cash"],
    timing: TimingOpt = BACKTEST["timing"],
    whole_shares: WholeOpt = False,
    overfitting: OverfitOpt = True,
    cluster: ClusterOpt = None,
    cache: CacheOpt = None,
) -> None:
    """Sweep STRATEGY (default ma_crossover) over a parameter grid; write the table and heatmaps to --out.

    Example: workbench sweep rsi_reversion --symbol GOOG --grid window=2:50 --grid lower=10:40:2
    --grid exit_level=50:64:2 --grid stop_loss=0:0.1:0.05

    On a cluster (same table, bit for bit): add --cluster local, or --cluster tcp://host:8786.
    """
    check_range(start, end, start_option="--start", end_option="--end")
    if fmt not in ("csv", "parquet"):
        raise typer.BadParameter(f"must be csv or parquet, got {fmt!r}", param_hint="'--format'")
    from research.backtest.sweep import sweep
    from research.strategies.catalog import get_strategy

    values = parse_grid(grid) or {k: list(v) for k, v in get_strategy(strategy).grid.items()}
    heat = {"x": x, "y": y, "fixed": {k: parse_number(v) for k, v in parse_params(fix).items()}, "agg": agg}
    kwargs = {"fees": fees, "slippage": slippage, "init_cash": cash, "timing": timing, "start": start, "end": end}
    if whole_shares:
        kwargs["whole_shares"] = True
    res = _run_sweep(sweep, load_symbols(symbol, source, interval), strategy, values, metric, kwargs,
                     cluster=cluster, cache=cache)
    out.mkdir(parents=True, exist_ok=True)
    _write_table(res, out, fmt)
    report = {"strategy": strategy, "metric": metric, "params": res.params,
              "best": _report_best(res, out, metric=metric, heat=heat, overfitting=overfitting)}
    atomic_write(out / "sweep.json", json.dumps(report, indent=2, default=str), mode=PLAIN_FILE_MODE)


def _write_table(res, out: Path, fmt: str) -> None:
    """The sweep table as CSV or parquet in ``out``; print how it ran and where it went."""
    table_path = out / f"sweep.{fmt}"
    with atomic_path(table_path, mode=PLAIN_FILE_MODE) as tmp:
        if fmt == "csv":
            from research.data.csvsafe import to_csv

            to_csv(res.table, tmp, index=False)
        else:
            res.table.to_parquet(tmp, index=False)
    typer.echo(f"{len(res.table):,} backtests ({res.params['engine']}) in {res.elapsed:.2f} s "
               f"-> {table_path}")
    if "chunks" in res.params:
        ch = res.params["chunks"]
        typer.echo(f"{ch['tasks']} chunk(s) in {ch['on']}: {ch['computed']} computed, {ch['cached']} from the cache"
                   + (f" ({ch['cache']})" if ch["cache"] else ""))
        if ch.get("rejected"):
            typer.echo(f"{ch['rejected']} cached chunk(s) failed their content check and were recomputed", err=True)


def _report_best(res, out: Path, *, metric: str, heat: dict, overfitting: bool) -> dict:
    """Per symbol: print the best set, write its heatmap, add the overfitting figures; the report's ``best``."""
    best_of = {}
    for sym in res.table["symbol"].unique():
        best = res.best(sym)
        best_of[sym] = {k: (v.item() if hasattr(v, "item") else v) for k, v in best.items()}
        typer.echo(f"best {sym}: " + ", ".join(f"{k}={best[k]}" for k in res.param_names)
                   + f"  {metric}={best[metric]:.3f}  total_return={best['total_return']:.2%}  trades={best['trades']}")
        if len(res.param_names) >= 2:
            _heatmap(res, sym, out, metric=metric, **heat)
        if overfitting and res.params.get("engine") == "fused" and res.n_trials >= 2:
            best_of[sym]["overfitting"] = _overfitting(res, sym, best)
    return best_of


def _heatmap(res, sym: str, out: Path, *, metric: str, x: str | None, y: str | None, fixed: dict, agg: str) -> None:
    """Write the heatmap (HTML) and its 2-D table (CSV) of one symbol; print both paths and the table."""
    import pandas as pd

    from research.backtest.slices import grid_slice
    from research.viz.backtest import sweep_heatmap

    x = x or res.param_names[0]
    y = y or res.param_names[1]
    try:
        frame = grid_slice(res, x=x, y=y, metric=metric, symbol=sym, fixed=fixed, agg=agg)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    path = out / f"heatmap_{sym}.html"
    figure = sweep_heatmap(res, metric=metric, symbol=sym, x=x, y=y, fixed=fixed, agg=agg)
    with atomic_path(path, mode=PLAIN_FILE_MODE) as tmp:  # plotly.js once per folder, beside it: opens offline
        figure.write_html(tmp, include_plotlyjs="directory")
    with atomic_path(out / f"heatmap_{sym}.csv", mode=PLAIN_FILE_MODE) as tmp:
        frame.to_csv(tmp)
    folded = frame.attrs["aggregated"]
    typer.echo(f"heatmap -> {path} ({y} x {x}, {metric}"
               + (f", {agg} over {', '.join(folded)}" if folded else "")
               + "".join(f", {k}={v}" for k, v in fixed.items()) + f"; table {out / f'heatmap_{sym}.csv'})")
    with pd.option_context("display.float_format", "{:,.2f}".format, "display.width", 250,
                           "display.max_columns", 30, "display.max_rows", 60):
        typer.echo(frame.to_string(max_cols=30, max_rows=60))


def _run_sweep(sweep, prices, strategy: str, values: dict, metric: str, kwargs: dict, *, cluster: str | None,
               cache: bool | None):
    """The sweep in process, or on a Dask client that is closed on the way out (Ctrl-C included)."""
    try:
        return on_cluster(cluster, lambda client: sweep(prices, strategy, values, metric=metric, progress=True,
                                                        client=client, cache=cache, **kwargs))
    except KeyboardInterrupt:
        if cluster or cache:
            typer.echo("interrupted: the finished chunks are kept; run the same command again to resume", err=True)
        raise typer.Exit(130) from None


def on_cluster(cluster: str | None, run: Callable[[Any], Any]) -> Any:
    """``run(None)`` in process without ``cluster``, else ``run(client)`` on a Dask client of ``cluster``
    (``local`` or a scheduler address) that is closed on the way out."""
    if not cluster:
        return run(None)
    from research.compute import get_client

    with get_client(cluster) as client:
        return run(client)


def _overfitting(res, sym: str, best) -> dict[str, float]:
    from research.risk.overfitting import deflated_sharpe_ratio, probability_of_backtest_overfitting

    trials = res.trial_returns(sym)
    chosen = trials.iloc[:, res.table.loc[res.table["symbol"] == sym].index.get_loc(best.name)]
    dsr = deflated_sharpe_ratio(chosen, trial_returns=trials)
    pbo = probability_of_backtest_overfitting(trials, n_splits=16, max_combinations=2000)
    typer.echo(f"  deflated Sharpe ratio {dsr.dsr:.1%} (the probability that the best Sharpe is not luck, "
               f"over {dsr.n_trials:,} trials; "
               f"luck threshold {dsr.expected_max_sharpe:.4f}/bar); PBO {pbo.pbo:.1%} "
               f"({pbo.n_combinations:,} CSCV splits)")
    return {"deflated_sharpe": dsr.dsr, "n_trials": dsr.n_trials, "pbo": pbo.pbo,
            "prob_oos_loss": pbo.prob_oos_loss}


def register(app: typer.Typer) -> None:
    """Add ``backtest`` and ``sweep`` to the root command."""
    app.command("backtest")(backtest_command)
    app.command("sweep")(sweep_command)
