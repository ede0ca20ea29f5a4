"""A small recorded run of the daily pipeline, computed from synthetic data, for dashboard tests.

Every output of the results contract is written with ``write_output`` and the run is published
with ``publish``, exactly as the pipeline runner does, so dashboards read it through
``research.workflow.results.latest``. The numbers come from real computations on seeded synthetic
prices (moving-average crossovers, the pipeline's sweep record of a 785-pair grid with its deflated
Sharpe and PBO, naive and rolling-mean forecasts, risk metrics, scored synthetic headlines for
the news panel), kept small so the whole run is
written in a few seconds. A second, FAILED run is
recorded too (never published) so the pipeline-health page has a failure to show.

One symbol, :data:`STALE_SYMBOL`, is stale: its data ends at least :data:`STALE_DAYS` days
before the run's as-of date. The run treats it as the pipeline does: the signals mark it
``stale`` with no target position, its alerts carry its last bar, and the book (``positions``,
the risk document) holds it only up to its last bar.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from research.data.asof import AsOf
from research.data.calendars import calendar_of
from research.data.freshness import is_stale
from research.data.sources.synthetic import synthetic_ohlcv
from research.risk import metrics
from research.risk.report import headline_document
from research.stages.sweep_outputs import sweep_record
from research.workflow.results import PublishedRun, latest, publish, write_output

SYMBOLS = ("SYN0001", "SYN0002", "SYN0003", "BTC-USD")
STALE_SYMBOL = "BTC-USD"  # first in sorted symbol pickers: a page would open on it but for the rule
STALE_DAYS = 90
PARAMS = ((10, 50), (20, 100))
GRID_FAST = "2:40"  # the sweep: every fast < slow pair (785 per symbol)
GRID_SLOW = "10:120:5"
#: The other swept families (the backtest stage's long sweep record): RSI over 8 x 4 x 3 sets, momentum 20 x 3.
FAMILY_GRIDS = {"rsi_reversion": {"window": list(range(2, 31, 4)), "lower": [20, 25, 30, 35], "exit_level": [45, 50, 55]},
                "time_series_momentum": {"lookback": list(range(10, 201, 10)), "threshold": [0.0, 0.02, 0.05]}}
COSTS = {"fees": 0.001, "slippage": 0.0005}


def _digest(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def _closes(bars: int, seed: int) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Close matrix and frames; :data:`STALE_SYMBOL`'s data ends :data:`STALE_DAYS` days or more
    before the last bar of the others (the as-of date)."""
    frames = {s: synthetic_ohlcv(s, bars=bars, seed=seed, start="2022-01-03") for s in SYMBOLS}
    as_of = max(f.index[-1] for s, f in frames.items() if s != STALE_SYMBOL)
    frames[STALE_SYMBOL] = frames[STALE_SYMBOL].loc[: as_of - pd.Timedelta(days=STALE_DAYS)]
    close = pd.DataFrame({s: f["close"] for s, f in frames.items()}).sort_index()
    close.index.name = "timestamp"
    return close, frames


def _crossover(close: pd.Series, fast: int, slow: int) -> tuple[pd.Series, pd.Series]:
    """Position (0/1 held from the bar after the signal) and strategy returns."""
    signal = (close.rolling(fast).mean() > close.rolling(slow).mean()).astype(float)
    position = signal.shift(1).fillna(0.0)  # close-of-t signal fills next bar
    returns = close.pct_change().fillna(0.0) * position
    return position, returns


def _trades(close: pd.Series, position: pd.Series, *, strategy: str, symbol: str, params: str) -> list[dict]:
    out, entry = [], None
    change = position.diff().fillna(position)
    for ts, step in change.items():
        if step > 0:
            entry = ts
        elif step < 0 and entry is not None:
            p0, p1 = float(close.shift(1)[entry]), float(close.shift(1)[ts])
            out.append({"strategy": strategy, "symbol": symbol, "params": params, "entry_time": entry,
                        "exit_time": ts, "entry_price": p0, "exit_price": p1, "size": 1.0,
                        "pnl": p1 - p0, "return": p1 / p0 - 1})
            entry = None
    return out


def _backtests(close: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    rows, curves, trades, positions = [], {}, [], {}
    for symbol in close:
        c = close[symbol].dropna()
        ppy = 365 if symbol.endswith("-USD") else 252
        for fast, slow in PARAMS:
            params = json.dumps({"fast": fast, "slow": slow})
            pos, ret = _crossover(c, fast, slow)
            t = _trades(c, pos, strategy="sma_cross", symbol=symbol, params=params)
            stats = metrics.summary(ret, benchmark=c.pct_change().fillna(0.0), periods_per_year=ppy,
                                    trades=pd.DataFrame(t, columns=["pnl", "return"]), positions=pos)
            rows.append({"strategy": "sma_cross", "symbol": symbol, "params": params, **stats.to_dict()})
            curves[f"sma_cross|{symbol}|{params}"] = 10_000 * (1 + ret).cumprod()
            trades += t
            if (fast, slow) == PARAMS[0]:
                curves[f"sma_cross|{symbol}"] = curves[f"sma_cross|{symbol}|{params}"]
                positions[symbol] = pos
        bh = c.pct_change().fillna(0.0)
        stats = metrics.summary(bh, periods_per_year=ppy, positions=pd.Series(1.0, index=c.index))
        rows.append({"strategy": "buy_and_hold", "symbol": symbol, "params": "{}", **stats.to_dict()})
        curves[f"buy_and_hold|{symbol}"] = 10_000 * (1 + bh).cumprod()
    equity = pd.DataFrame(curves).sort_index()
    equity.index.name = "timestamp"
    trade_frame = pd.DataFrame(trades)
    return pd.DataFrame(rows), equity, trade_frame, _book_positions(pd.DataFrame(positions).sort_index())


def _book_positions(held: pd.DataFrame) -> pd.DataFrame:
    """Weights in the equal-weight book of one-symbol books: each book 1/N of those active (from a
    symbol's first to its last bar); a symbol is not held past its last bar (weight 0)."""
    held = held.ffill(limit_area="inside")  # a closed market inside a symbol's life keeps its position
    active = held.notna().sum(axis=1).clip(lower=1)
    pos_frame = held.div(active, axis=0).fillna(0.0)
    pos_frame.index.name = "timestamp"
    return pos_frame


def _sweep(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The backtest stage's sweep record (``research.stages.sweep_outputs.sweep_record``) of every
    ``fast < slow`` pair of :data:`GRID_FAST` x :data:`GRID_SLOW` and of :data:`FAMILY_GRIDS`, one
    symbol at a time (each on its own calendar)."""
    parts = [sweep_record(frames[s], fast=GRID_FAST, slow=GRID_SLOW, families=["ma_crossover", *FAMILY_GRIDS],
                          grids=FAMILY_GRIDS, **COSTS) for s in SYMBOLS]
    out = {name: pd.concat([p[name] for p in parts], ignore_index=True)
           for name in ("sweep", "sweep_summary")}
    out["sweep_bars"] = pd.concat([p["sweep_bars"] for p in parts], axis=1).sort_index()
    out["sweep_returns"] = parts[0]["sweep_returns"]
    return out


def _predictions(close: pd.DataFrame, tail: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Out-of-sample one-step forecasts of next-bar returns from past data only."""
    rows, evals = [], []
    for symbol in close:
        r = close[symbol].dropna().pct_change().dropna()
        actual = r.shift(-1)  # the return of the next bar
        forecasts = {"naive": r, "mean_20": r.rolling(20).mean(), "momentum_60": r.rolling(60).mean() * 2}
        for model, pred in forecasts.items():
            frame = pd.DataFrame({"predicted": pred, "actual": actual}).dropna().tail(tail)
            rows.append(frame.assign(symbol=symbol, model=model, kind="walk_forward", seed=0).reset_index())
            rows.append(pd.DataFrame({"timestamp": [r.index[-1]], "symbol": symbol, "model": model, "predicted":
                                      [float(pred.iloc[-1])], "actual": [np.nan], "kind": "forecast", "seed": 0}))
            hit = float((np.sign(frame.predicted) == np.sign(frame.actual)).mean())
            err = frame.predicted - frame.actual
            evals.append({"symbol": symbol, "model": model, "rmse": float(np.sqrt((err**2).mean())),
                          "mae": float(err.abs().mean()), "directional_accuracy": hit,
                          "ic": float(frame.predicted.corr(frame.actual)),
                          "rank_ic": float(frame.predicted.rank().corr(frame.actual.rank())),
                          "mlflow_run_id": _digest(symbol, model)[:32]})
    ev = pd.DataFrame(evals)
    naive = ev[ev.model == "naive"].set_index("symbol")["rmse"]
    ev["beats_naive"] = ev.apply(lambda x: x.model != "naive" and x.rmse < naive[x.symbol], axis=1)
    best = ev[ev.beats_naive].sort_values("rmse").groupby("symbol").head(1).index
    ev["champion"] = ev.index.isin(best)
    preds = pd.concat(rows, ignore_index=True)[["timestamp", "symbol", "model", "predicted", "actual", "kind", "seed"]]
    return preds, ev


def _risk_document(book: pd.Series, positions: pd.DataFrame, close: pd.DataFrame) -> dict:
    """The risk document as the pipeline writes it: a summary in percent, a VaR table in decimals,
    the headline figures of the book and of equal-weight buy and hold of its symbols."""
    summary = metrics.summary(book, periods_per_year=252, positions=positions)
    headline = headline_document(book, metrics.equal_weight_returns(close), periods_per_year=252, subject={
        "strategy": "sma_cross", "book": "equal-weight across symbols, daily rebalanced", "symbols": list(close)})
    headline["subject"].update(start=str(headline["subject"]["start"].date()), end=str(headline["subject"]["end"].date()))

    def clean(v: float) -> float | None:
        return None if pd.isna(v) else float(v)

    var = {method: {f"{kind} {level:.0%}": clean(fn(book, level=level, method=method))
                    for level in (0.95, 0.99)
                    for kind, fn in (("VaR", metrics.value_at_risk), ("CVaR", metrics.conditional_value_at_risk))}
           for method in metrics.VAR_METHODS}
    return {"strategy": "sma_cross", "book": "equal-weight across symbols, daily rebalanced",
            "summary": {k: clean(v) for k, v in summary.items()}, "var": var,
            "nan_reasons": summary.attrs.get("nan_reasons", {}),
            "drawdown": {"max": clean(metrics.max_drawdown(book)), "current": clean(float(
                (1 + book).cumprod().iloc[-1] / (1 + book).cumprod().max() - 1))},
            "start": headline["subject"]["start"], "end": headline["subject"]["end"], "headline": headline}


def _signals_alerts(close: pd.DataFrame, as_of: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Today's signals and alerts as the pipeline writes them: each computed at the symbol's last
    bar (``bar_time``); a stale symbol (the library's rule) keeps its signal but gets no target
    position, and a ``data`` alert says how old its last bar is."""
    sig, alerts = [], []
    when = AsOf.parse(str(as_of.date()), interval="1d")
    label = str(as_of.date())
    stale_of = {s: is_stale(calendar_of(s), "1d", close[s].last_valid_index(), when) for s in close}
    fresh = max(1, sum(not v for v in stale_of.values()))  # the book's members at the as-of date
    for symbol in close:
        c = close[symbol].dropna()
        bar, stale = c.index[-1], stale_of[symbol]
        signal = int(c.rolling(PARAMS[0][0]).mean().iloc[-1] > c.rolling(PARAMS[0][1]).mean().iloc[-1])
        sig.append({"symbol": symbol, "strategy": "sma_cross", "as_of": as_of, "bar_time": bar, "signal": signal,
                    "target_position": 0.0 if stale else signal / fresh, "close": float(c.iloc[-1]),
                    "stale": stale})
        move = float(c.pct_change().iloc[-1])
        dd = float(c.iloc[-1] / c.cummax().iloc[-1] - 1)
        at = {"as_of": label, "bar_time": bar}
        if stale:
            alerts.append({"symbol": symbol, "kind": "data", "severity": "warning", "value": (as_of - bar).days,
                           "message": f"{symbol}'s last bar ({bar:%Y-%m-%d}) is {(as_of - bar).days} days before "
                                      "the as-of time", "threshold": 3.0, **at})
        if abs(move) > 0.02:
            alerts.append({"symbol": symbol, "kind": "price_move", "severity": "warning",
                           "message": f"{symbol} moved {move:+.1%} on the last bar", "value": move, "threshold": 0.02,
                           **at})
        if dd < -0.15:
            alerts.append({"symbol": symbol, "kind": "drawdown", "severity": "critical",
                           "message": f"{symbol} is {-dd:.0%} below its peak", "value": dd, "threshold": -0.15, **at})
    last = close["SYN0002"].dropna().index[-1]
    alerts.append({"symbol": "SYN0002", "kind": "volume_spike", "severity": "info",
                   "message": "volume z-score above 3", "value": 3.4, "threshold": 3.0, "as_of": label, "bar_time": last})
    return pd.DataFrame(sig), pd.DataFrame(alerts)


def _data_report(frames: dict, fetched_at: str) -> pd.DataFrame:
    rows = []
    for symbol, f in frames.items():
        rows.append({"symbol": symbol, "source": "synthetic", "rows": len(f), "first": f.index[0],
                     "last": f.index[-1], "quarantined": 0, "flagged": 0, "gaps": 0, "synthetic": True,
                     "sha256": _digest(symbol), "fetched_at": fetched_at})
    return pd.DataFrame(rows)


def _stage(name: str, status: str, start: pd.Timestamp, seconds: float, run_dir: Path, index: int) -> dict:
    rec = {"name": name, "notebook_source": f"pipelines/daily/{index:02d}-{name}.ipynb", "status": status,
           "attempts": 1, "started_at": start.isoformat(), "finished_at": (start + pd.Timedelta(seconds=seconds)).isoformat(),
           "duration_s": seconds, "notebook": str(run_dir / "notebooks" / f"{index:02d}-{name}.ipynb")}
    if status != "COMPLETED":
        rec["error"] = {"cell": 4, "ename": "ValueError", "evalue": "training data contains NaN",
                        "source": "model.fit(x, y)", "message": f"stage {name!r} failed in cell 4",
                        "notebook": rec["notebook"]}
    return rec


STAGES = ("ingest", "features", "models", "backtests", "risk", "signals", "publish")


def _record(run_id: str, as_of: str, run_dir: Path, *, failed_at: str | None = None) -> dict:
    start = pd.Timestamp(as_of, tz="UTC") + pd.Timedelta(hours=22)
    stages, t, status = [], start, "COMPLETED"
    for i, name in enumerate(STAGES, start=1):
        if status != "COMPLETED":
            stages.append({"name": name, "status": "PENDING", "attempts": 0})
            continue
        st = "FAILED" if name == failed_at else "COMPLETED"
        stages.append(_stage(name, st, t, 3.0 + 2 * i, run_dir, i))
        t += pd.Timedelta(seconds=3.0 + 2 * i)
        status = st
    return {"pipeline": "daily", "run_id": run_id, "as_of": as_of, "status": status,
            "parameters": {"universe": list(SYMBOLS), "source": "synthetic"},
            "started_at": start.isoformat(), "finished_at": t.isoformat(),
            "duration_s": (t - start).total_seconds(), "mlflow_run_id": "0" * 32,
            "published": status == "COMPLETED", "stages": stages,
            "error": None if status == "COMPLETED" else {"stage": failed_at, "message": f"stage {failed_at!r} failed"}}


def _news(as_of: pd.Timestamp, store_dir: Path) -> pd.DataFrame:
    """The pipeline's ``news`` output: synthetic headlines known at the as-of date, scored
    (the news step's own functions, with the headline store kept inside the runs folder)."""
    from research.news import load_news
    from research.news.features import known_at
    from research.news.store import NewsStore
    from research.stages.news_step import NEWS_OUTPUT_COLUMNS

    when = pd.Timestamp(as_of).tz_localize("UTC") if pd.Timestamp(as_of).tzinfo is None else pd.Timestamp(as_of)
    news = load_news(list(SYMBOLS), source="synthetic", start=when - pd.Timedelta(days=60),
                     end=when + pd.Timedelta(days=1), store=NewsStore(store_dir))
    known = known_at(news, str(when.date()))
    return known[NEWS_OUTPUT_COLUMNS].sort_values("available", kind="stable").reset_index(drop=True)


def write_fixture_run(runs_dir: str | Path, *, bars: int = 400, seed: int = 7) -> PublishedRun:
    """Write and publish a small daily run under ``runs_dir/daily/`` and return it as readers see it."""
    pipeline_dir = Path(runs_dir) / "daily"
    close, frames = _closes(bars, seed)
    as_of = close.index[-1]
    run_id = f"{as_of:%Y%m%d}T220000-fixture"
    failed_run_id = f"{as_of - pd.Timedelta(days=1):%Y%m%d}T220000-fixture"
    failed_dir = pipeline_dir / failed_run_id
    failed_dir.mkdir(parents=True, exist_ok=True)
    failed = _record(failed_run_id, str((as_of - pd.Timedelta(days=1)).date()), failed_dir, failed_at="models")
    (failed_dir / "run.json").write_text(json.dumps(failed, indent=2), encoding="utf-8")

    run_dir = pipeline_dir / run_id
    out = run_dir / "outputs"
    backtests, equity, trades, positions = _backtests(close)
    preds, evals = _predictions(close, tail=120)
    signals, alerts = _signals_alerts(close, as_of)
    # the book: each symbol's curve from its first to its last bar (no price filled past it)
    book = metrics.equal_weight_returns(equity[[f"sma_cross|{s}" for s in SYMBOLS]].ffill(limit_area="inside")).dropna()
    risk = _risk_document(book, positions, close)
    outputs = {
        "prices": close, "data_report": _data_report(frames, (as_of + pd.Timedelta(hours=21)).isoformat()),
        "predictions": preds, "model_eval": evals, "backtests": backtests, "equity": equity,
        "trades": trades, "positions": positions, **_sweep(frames), "signals": signals, "alerts": alerts,
        "risk": risk, "news": _news(as_of, Path(runs_dir).parent / "news-store"),
        "summary": {"symbols": list(SYMBOLS), "source": "synthetic", "bars": bars},
    }
    for name, value in outputs.items():
        write_output(out, name, value)
    record = _record(run_id, str(as_of.date()), run_dir)
    record["outputs"] = sorted(outputs)
    (run_dir / "run.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    publish(run_dir, pipeline="daily", run_id=run_id, record={
        "as_of": record["as_of"], "status": "COMPLETED", "finished_at": record["finished_at"],
        "mlflow_run_id": record["mlflow_run_id"], "outputs": record["outputs"]})
    run = latest("daily", runs_dir=pipeline_dir)
    assert run is not None
    return run
