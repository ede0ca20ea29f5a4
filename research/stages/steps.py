"""The stage functions the pipeline notebooks call: each reads the store and earlier outputs,
computes, and writes its outputs with :func:`research.workflow.results.write_output`.

=============  ==========================================  ==================================
stage          function                                    writes
=============  ==========================================  ==================================
ingest         :func:`ingest_stage`                        ``data_report``, ``prices``
features       :func:`features_stage`                      ``features``
model          :func:`model_stage`                         ``predictions``, ``model_eval``
backtest       :func:`backtest_stage`                      ``backtests``, ``equity``, ``trades``,
                                                           ``positions``, ``sweep``,
                                                           ``sweep_summary``,
                                                           ``sweep_returns``, ``sweep_bars``
risk           :func:`risk_stage`                          ``risk``
signals        :func:`signals_stage`                       ``signals``, ``alerts``
summary        :func:`summary_stage`                       ``summary``
=============  ==========================================  ==================================

Stages share nothing in memory: bars come from the store (``load_prices`` up to ``as_of``,
which the ingest stage filled), everything else from the run's ``outputs/`` folder. Defaults
are the daily pipeline's (``research.defaults.PIPELINES["daily"]``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from research.data import ingest_many, load_prices
from research.data.asof import AsOf
from research.defaults import PIPELINES
from research.risk.metrics import equal_weight_returns
from research.workflow.results import read_output, write_output

_DAILY = PIPELINES["daily"]

__all__ = [
    "ingest_stage", "features_stage", "model_stage", "backtest_stage", "risk_stage", "signals_stage",
    "summary_stage", "as_of_end",
]


def as_of_end(as_of: object) -> pd.Timestamp:
    """The last instant a run may use: :attr:`AsOf.end <research.data.asof.AsOf.end>` (a date is its
    whole session, every bar stamped that day included; a time is that instant)."""
    return AsOf.parse(as_of).end


def _start(start: str | None) -> pd.Timestamp | None:
    if start in (None, ""):
        return None
    a = AsOf.parse(start)
    return a.day if a.is_date else a.end


def _has(output_dir: str, name: str) -> bool:
    try:
        read_output(output_dir, name)
    except KeyError:
        return False
    return True


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/Inf become None, numpy scalars plain numbers, timestamps strings."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


# ---------------------------------------------------------------- ingest and features
def ingest_stage(
    output_dir: str, *, symbols: list[str], as_of: str, source: str = "sample", interval: str = "1d",
    start: str | None = None, refresh: bool = False, min_rows: int = 50, source_note: str = "",
) -> pd.DataFrame:
    """Ingest and validate ``symbols`` up to ``as_of``; write ``data_report`` and ``prices``.

    ``source_note`` (which source the run took and why, when it was chosen for the run) is kept
    in the report's ``source_note`` column.

    Raises
    ------
    ValueError
        A symbol has fewer than ``min_rows`` valid bars up to ``as_of``.
    """
    end, start = as_of_end(as_of), _start(start)
    results = ingest_many(symbols, start=start, end=end, interval=interval, source=source, refresh=refresh, progress=False)
    prices = load_prices(symbols, start=start, end=end, interval=interval, source=source, progress=False)
    close = prices["close"]
    rows = []
    for sym, res in results.items():
        m, bars = res.manifest, close[sym].dropna()
        rows.append({
            "symbol": sym, "source": m["source"], "interval": interval, "rows": int(len(bars)),
            "first": bars.index.min(), "last": bars.index.max(), "quarantined": int(m.get("quarantined", 0)),
            "flagged": int(m.get("flags", 0)), "gaps": int(m.get("gaps", 0)), "synthetic": bool(m.get("synthetic")),
            "stale": bool(res.stale), "sha256": m["sha256"], "fetched_at": m.get("fetched_at"), "provenance": m.get("provenance", ""),
            "source_note": source_note or f"source {m['source']}",
        })
    report = pd.DataFrame(rows)
    short = report.loc[report["rows"] < min_rows, ["symbol", "rows"]]
    write_output(output_dir, "data_report", report)
    if not short.empty:
        raise ValueError(f"symbols with fewer than {min_rows} bars up to {as_of}: {dict(short.itertuples(index=False))}")
    close.attrs = {}
    write_output(output_dir, "prices", close)
    return report


def _bars(symbols: list[str], as_of: str, source: str, interval: str, start: str | None = None) -> pd.DataFrame:
    return load_prices(symbols, start=_start(start), end=as_of_end(as_of), interval=interval, source=source, progress=False)


def features_stage(
    output_dir: str, *, symbols: list[str], as_of: str, source: str = "sample", interval: str = "1d",
    start: str | None = None, feature_set_name: str = "lstm",
) -> pd.DataFrame:
    """Build the named feature set per symbol (warm-up rows dropped); write ``features`` (long)."""
    from research.features.sets import drop_warmup, feature_set

    prices = _bars(symbols, as_of, source, interval, start)
    parts = []
    for sym in symbols:
        ohlcv = prices.xs(sym, axis=1, level="symbol").dropna(subset=["close"])
        feats = drop_warmup(feature_set(ohlcv, feature_set_name))
        parts.append(feats.assign(symbol=sym).reset_index())
    long = pd.concat(parts, ignore_index=True)
    long = long[["timestamp", "symbol", *[c for c in long.columns if c not in ("timestamp", "symbol")]]]
    write_output(output_dir, "features", long)
    return long


# ---------------------------------------------------------------- model
def model_stage(
    output_dir: str, *, symbols: list[str], as_of: str, source: str = "sample", interval: str = "1d",
    retrain: bool = False, retrain_every_days: float = 7.0, preset: str = "pipeline",
    overrides: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Train on schedule or predict with the champion (:mod:`research.stages.modeling`);
    write ``predictions`` and ``model_eval``; returns ``model_eval``."""
    from research.stages.modeling import train_or_predict

    preds, evals = train_or_predict(symbols, as_of=as_of, source=source, interval=interval, retrain=retrain,
                                    retrain_every_days=retrain_every_days, preset=preset, overrides=overrides)
    write_output(output_dir, "predictions", preds)
    write_output(output_dir, "model_eval", evals)
    return evals


# ---------------------------------------------------------------- backtests
def _stats_rows(res: Any, strategy: str, params: Mapping[str, Any]) -> pd.DataFrame:
    stats = res.stats.copy()
    stats.insert(0, "params", json.dumps(dict(params), sort_keys=True, default=str))
    stats.insert(0, "symbol", stats.index.astype(str))
    stats.insert(0, "strategy", strategy)
    return stats.reset_index(drop=True)


def _prediction_signals(output_dir: str, prices: pd.DataFrame, model_name: str = "lstm"):
    """The prediction strategy's signals from the walk-forward forecasts (seed 0), or None."""
    from research.strategies import prediction_signals

    if not _has(output_dir, "predictions"):
        return None
    preds = read_output(output_dir, "predictions")
    wf = preds[(preds["kind"] == "walk_forward") & (preds["model"] == model_name) & (preds["seed"] == 0)]
    if wf.empty:
        return None
    wide = wf.pivot_table(index="timestamp", columns="symbol", values="predicted", aggfunc="last")
    wide = wide.reindex(index=prices.index, columns=prices["close"].columns)
    return prediction_signals(wide), wf["timestamp"].min()


def _hold_signals(prices: pd.DataFrame):
    from research.strategies import Signals

    close = prices["close"]
    return Signals((close.notna() * 1.0).astype("float64"), name="buy_and_hold", params={})


def _trades(res: Any, strategy: str, params: Mapping[str, Any]) -> pd.DataFrame:
    trades = res.trades.copy()
    trades.insert(0, "params", json.dumps(dict(params), sort_keys=True, default=str))
    trades.insert(0, "strategy", strategy)
    return trades


def _book_weights(res: Any, symbols: list[str], equity: pd.DataFrame | None = None) -> pd.DataFrame:
    """Weights in the equal-weight portfolio of one-symbol books (each book 1/N of the active ones;
    a book is active where its curve, ``equity`` or the result's, has a value)."""
    curves = (res.equity if equity is None else equity).reindex(columns=symbols)
    w = res.weights.reindex(columns=symbols).astype("float64").where(curves.notna(), 0.0)
    active = curves.notna().sum(axis=1).clip(lower=1)
    return w.div(active, axis=0)


def until_last_bar(equity: pd.DataFrame, prices: pd.DataFrame) -> pd.DataFrame:
    """One-symbol equity curves ending at their symbol's last close: past it a book does not hold
    the symbol (a stale symbol's flat curve would otherwise sit in the equal-weight book and damp
    its volatility). ``prices`` has ``(field, symbol)`` columns with a ``close`` field."""
    out = equity.copy()
    for sym in out.columns:
        try:
            last = prices.xs(sym, axis=1, level="symbol")["close"].last_valid_index()
        except KeyError:
            continue
        if last is not None:
            out.loc[out.index > last, sym] = np.nan
    return out


def _sweep_choice(families: Any, grid: Any, strategies: Mapping[str, Any], fast: Any,
                  slow: Any) -> tuple[list[str], dict[str, dict[str, list[Any]]]]:
    """The families and grid overrides of the backtest stage's sweep, checked (ValueError) up front."""
    from research.stages.sweep_grids import family_grids, parse_sweep_grid, resolve_families

    chosen = resolve_families(families, strategies=list(strategies))
    overrides = parse_sweep_grid(grid)
    family_grids(chosen, fast=fast, slow=slow, overrides=overrides)
    return chosen, overrides


def backtest_stage(
    output_dir: str, *, symbols: list[str], as_of: str, source: str = "sample", interval: str = "1d",
    start: str | None = None, strategies: Mapping[str, Mapping[str, Any]] | None = None,
    fees: float = _DAILY["backtest"]["fees"], slippage: float = _DAILY["backtest"]["slippage"],
    sweep_fast: str | list[int] = _DAILY["backtest"]["sweep_fast"],
    sweep_slow: str | list[int] = _DAILY["backtest"]["sweep_slow"], sweep_symbol: str | None = None,
    sweep_families: str | list[str] = _DAILY["backtest"]["sweep_families"],
    sweep_grid: str | Mapping[str, Mapping[str, Any]] | None = _DAILY["backtest"]["sweep_grid"],
    primary: str = "ma_crossover",
) -> pd.DataFrame:
    """Backtest each strategy on each symbol, buy and hold, and the model's out-of-sample
    forecasts, and sweep every backtested strategy that has a fused sweep over its grid.

    Writes ``backtests``, ``equity`` (``strategy|symbol`` curves plus ``portfolio|<primary>``, the
    equal-weight book of the primary strategy), ``trades``, ``positions`` (the primary book's
    weights), and the sweep record of :func:`research.stages.sweep_outputs.sweep_record`:
    ``sweep``, ``sweep_summary`` (deflated Sharpe and PBO per family and symbol), ``sweep_returns``
    and ``sweep_bars``. Which families and grids: ``sweep_families`` and ``sweep_grid``
    (:mod:`research.stages.sweep_grids`); the crossover's windows are ``sweep_fast`` x
    ``sweep_slow`` (text ranges ``"2:100"``, ``"10:250:5"`` or lists; every ``fast < slow`` pair).
    Both are checked before anything runs.
    """
    from research.backtest import backtest
    from research.stages.sweep_outputs import empty_record, sweep_record
    from research.stages.todays_signals import DEFAULT_STRATEGIES

    strategies = dict(strategies or DEFAULT_STRATEGIES)
    families, grids = _sweep_choice(sweep_families, sweep_grid, strategies, sweep_fast, sweep_slow)
    prices = _bars(symbols, as_of, source, interval, start)
    costs = {"fees": fees, "slippage": slippage}
    runs = [(name, backtest(prices, name, params=params, **costs)) for name, params in strategies.items()]
    runs.append(("buy_and_hold", backtest(prices, _hold_signals(prices), **costs)))
    pred = _prediction_signals(output_dir, prices)
    if pred is not None:
        runs.append(("prediction", backtest(prices, pred[0], start=pred[1], **costs)))
    tables, curves, trades, positions = [], {}, [], None
    for name, res in runs:
        params = res.params.get("params", {}) if name != "prediction" else {"model": "lstm", "long_threshold": 0.0}
        tables.append(_stats_rows(res, name, params))
        trades.append(_trades(res, name, params))
        held = until_last_bar(res.equity, prices)
        curves.update({f"{name}|{book}": held[book] for book in held.columns})
        if name == primary:
            book = equal_weight_returns(held).fillna(0.0)
            curves[f"portfolio|{primary}"] = (1.0 + book).cumprod() * float(held.iloc[0].dropna().mean())
            positions = _book_weights(res, symbols, held)
    equity = pd.DataFrame(curves)
    equity.index.name = "timestamp"
    record = sweep_record(prices, fast=sweep_fast, slow=sweep_slow, target=sweep_symbol or symbols[0],
                          families=families, grids=grids, **costs) if families else empty_record()
    backtests = pd.concat(tables, ignore_index=True)
    write_output(output_dir, "backtests", backtests)
    write_output(output_dir, "equity", equity)
    write_output(output_dir, "trades", pd.concat(trades, ignore_index=True))
    if positions is not None:
        write_output(output_dir, "positions", positions)
    for name, table in record.items():
        write_output(output_dir, name, table)
    return backtests


# ---------------------------------------------------------------- risk
def _sweep_overfitting(output_dir: str, strategy: str, ppy: float) -> dict | None:
    """The deflated Sharpe and PBO the backtest stage recorded for ``strategy``'s sweep on the
    ``sweep_returns`` symbol (``None`` when ``strategy`` was not swept); runs without a
    ``sweep_summary`` get both from the recorded trial returns."""
    from research.risk import risk_report
    from research.stages.sweep_outputs import cell_label

    if not _has(output_dir, "sweep_returns"):
        return None
    trials = read_output(output_dir, "sweep_returns")
    if trials.empty:
        return None
    symbol = str(trials.pop("symbol").iloc[0])
    if _has(output_dir, "sweep_summary"):  # computed over the whole grid
        summary = read_output(output_dir, "sweep_summary")
        if "family" in summary:
            summary = summary[summary["family"].astype(str) == strategy]
        rows = summary[summary["symbol"].astype(str) == symbol]
        if rows.empty:
            return None
        row = rows.iloc[0]
        names = str(row.get("param_names") or "fast,slow").split(",")
        cell = json.loads(row["params"]) if isinstance(row.get("params"), str) else {n: row[n] for n in names}
        return {"symbol": symbol, "selected": cell_label(strategy, cell), "selected_by": "sharpe",
                "n_trials": row.get("dsr_trials"), "deflated_sharpe": row.get("deflated_sharpe"),
                "pbo_pct": None if pd.isna(row.get("pbo")) else 100 * float(row["pbo"]),
                "pbo_trials": row.get("pbo_trials"), "pbo_grid": row.get("pbo_grid"), "grid": row.get("grid")}
    if any("|" in str(c) for c in trials.columns):  # one column group per family
        trials = trials[[c for c in trials.columns if str(c).startswith(f"{strategy}|")]]
    if trials.shape[1] < 2:
        return None
    sel = trials.mean().idxmax()
    rep_sel = risk_report(trials[sel].dropna(), periods_per_year=ppy, trial_returns=trials)
    return {"symbol": symbol, "selected": sel, "n_trials": trials.shape[1],
            "deflated_sharpe": rep_sel.summary.get("Deflated Sharpe Ratio"), "pbo_pct": rep_sel.summary.get("PBO [%]")}


def risk_stage(output_dir: str, *, as_of: str, strategy: str = "ma_crossover") -> dict:
    """Risk of the equal-weight book of ``strategy`` across symbols, against equal-weight buy and
    hold, with the sweep's overfitting statistics; write ``risk`` (JSON); returns it."""
    from research.data.calendars import periods_per_year
    from research.risk.report import risk_document

    equity = read_output(output_dir, "equity")
    prices = read_output(output_dir, "prices")
    cols = [c for c in equity.columns if c.startswith(f"{strategy}|")]
    if not cols:
        raise ValueError(f"no equity curves of strategy {strategy!r}; have {sorted({c.split('|')[0] for c in equity.columns})}")
    rets = equity[cols].pct_change(fill_method=None)
    book = equal_weight_returns(equity[cols]).dropna()
    bench = equal_weight_returns(prices).reindex(book.index)
    ppy = periods_per_year(book)
    overfit = _sweep_overfitting(output_dir, strategy, ppy)
    per_symbol = {c.split("|", 1)[1]: rets[c].dropna() for c in cols if rets[c].notna().sum() > 2}
    doc = {
        "as_of": as_of, "strategy": strategy, "book": "equal-weight across symbols, daily rebalanced",
        **risk_document(book, benchmark=bench, per_symbol=per_symbol, periods_per_year=ppy, meta={"strategy": strategy},
                        subject={"strategy": strategy, "book": "equal-weight across symbols, daily rebalanced",
                                 "symbols": [c.split("|", 1)[1] for c in cols]}),
        "overfitting": overfit,
    }
    doc = _clean(doc)
    write_output(output_dir, "risk", doc)
    return doc


# ---------------------------------------------------------------- signals and alerts
def signals_stage(
    output_dir: str, *, symbols: list[str], as_of: str, source: str = "sample", interval: str = "1d",
    strategies: Mapping[str, Mapping[str, Any]] | None = None, sizing: str = "vol_target",
    sizing_params: Mapping[str, Any] | None = None, rules: Mapping[str, Any] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Today's signals and target positions (plus the champion model's, when there is one) and
    the alerts; write ``signals`` and ``alerts``."""
    from research.alerts.rules import AlertRules, strategy_drawdown_alerts
    from research.stages import todays_signals as sg

    prices = _bars(symbols, as_of, source, interval)
    rules_obj = AlertRules(**dict(rules or {}))
    table = sg.todays_signals(prices, as_of=as_of, strategies=strategies, sizing=sizing,
                              sizing_params=sizing_params, stale_bars=rules_obj.stale_bars)
    alerts = [sg.market_alerts(prices, as_of=as_of, rules=rules_obj)]
    if _has(output_dir, "predictions") and _has(output_dir, "model_eval"):
        preds, ev = read_output(output_dir, "predictions"), read_output(output_dir, "model_eval")
        champs = set(ev.loc[(ev["model"] == "lstm") & ev["champion"].astype(bool), "symbol"])
        fc = preds[(preds["kind"] == "forecast") & preds["symbol"].isin(champs)]
        table = pd.concat([table, sg.prediction_signal_rows(prices, fc, as_of=as_of, sizing=sizing,
                                                             sizing_params=sizing_params, stale_bars=rules_obj.stale_bars)],
                          ignore_index=True)
        for sym in sorted(set(symbols) - champs):
            alerts.append(pd.DataFrame([{"symbol": sym, "kind": "model", "severity": "info",
                                         "message": f"no champion model for {sym}: the LSTM has not beaten the naive baseline, so its forecasts are not traded",
                                         "value": 0.0, "threshold": 1.0, "as_of": as_of, "bar_time": pd.NaT}]))
    if _has(output_dir, "equity"):
        alerts.append(strategy_drawdown_alerts(read_output(output_dir, "equity"), as_of=as_of, threshold=rules_obj.strategy_drawdown))
    if _has(output_dir, "news"):  # pipelines with a news step
        from research.news.alerts import news_alerts
        from research.stages.news_step import news_signal_columns

        news = read_output(output_dir, "news")
        table = news_signal_columns(table, news, as_of=as_of)
        alerts.append(news_alerts(news, as_of=as_of))
    alerts_frame = pd.concat([a for a in alerts if not a.empty] or [alerts[0]], ignore_index=True)
    alerts_frame["bar_time"] = pd.to_datetime(alerts_frame["bar_time"], utc=True)
    table["synthetic"] = bool(_synthetic(output_dir))
    write_output(output_dir, "signals", table)
    write_output(output_dir, "alerts", alerts_frame)
    return table, alerts_frame


def _synthetic(output_dir: str) -> bool:
    if not _has(output_dir, "data_report"):
        return False
    return bool(read_output(output_dir, "data_report")["synthetic"].any())


# ---------------------------------------------------------------- summary
def _headline(output_dir: str) -> dict:
    out: dict[str, Any] = {}
    if _has(output_dir, "model_eval"):
        ev = read_output(output_dir, "model_eval")
        lstm = ev[ev["model"] == "lstm"]
        out["models"] = {"symbols": int(lstm["symbol"].nunique()), "champions": sorted(lstm.loc[lstm["champion"].astype(bool), "symbol"]),
                         "beats_naive": sorted(lstm.loc[lstm["beats_naive"].astype(bool), "symbol"]),
                         "mode": dict(zip(lstm["symbol"], lstm.get("mode", pd.Series(["?"] * len(lstm))), strict=False))}
    if _has(output_dir, "backtests"):
        bt = read_output(output_dir, "backtests")
        if "Sharpe Ratio" in bt.columns and bt["Sharpe Ratio"].notna().any():
            best = bt.loc[bt.groupby("symbol")["Sharpe Ratio"].idxmax().dropna()]
            out["best_strategy"] = {row["symbol"]: {"strategy": row["strategy"], "Sharpe Ratio": row["Sharpe Ratio"]}
                                    for _, row in best.iterrows()}
    if _has(output_dir, "signals"):
        sig = read_output(output_dir, "signals")
        out["signals"] = {"rows": len(sig), "long": int((sig["signal"] > 0).sum()), "short": int((sig["signal"] < 0).sum()),
                          "changed": int(sig["changed"].sum()), "stale_symbols": sorted(sig.loc[sig["stale"], "symbol"].unique())}
    if _has(output_dir, "alerts"):
        al = read_output(output_dir, "alerts")
        out["alerts"] = {k: int(v) for k, v in al["severity"].value_counts().items()}
    if _has(output_dir, "risk"):
        risk = read_output(output_dir, "risk")
        s = risk.get("summary", {})
        out["risk"] = {"strategy": risk.get("strategy"), "Sharpe Ratio": s.get("Sharpe Ratio"),
                       "Max. Drawdown [%]": s.get("Max. Drawdown [%]"), "current_drawdown": risk.get("drawdown", {}).get("current")}
    return out


def summary_stage(output_dir: str, *, as_of: str, pipeline: str, run_id: str = "") -> dict:
    """What ran, on what data, and the headline figures; write ``summary`` (JSON); returns it."""
    data = {}
    if _has(output_dir, "data_report"):
        rep = read_output(output_dir, "data_report")
        data = {"symbols": list(rep["symbol"]), "sources": sorted(rep["source"].unique()), "synthetic": bool(rep["synthetic"].any()),
                "rows": int(rep["rows"].sum()), "quarantined": int(rep["quarantined"].sum()),
                "last_bar": {r.symbol: str(r.last) for r in rep.itertuples()}, "sha256": dict(zip(rep["symbol"], rep["sha256"], strict=True))}
        if "source_note" in rep:  # which source the run took, and why
            data["source_note"] = "; ".join(dict.fromkeys(rep["source_note"].astype(str)))
    import os

    outputs = sorted(os.path.splitext(f)[0] for f in os.listdir(output_dir) if f.endswith((".parquet", ".json")))
    doc = _clean({"pipeline": pipeline, "run_id": run_id, "as_of": as_of, "created_at": pd.Timestamp.now(tz="UTC"),
                  "synthetic": bool(data.get("synthetic", False)), "data": data, "headline": _headline(output_dir), "outputs": outputs + ["summary"]})
    write_output(output_dir, "summary", doc)
    return doc
