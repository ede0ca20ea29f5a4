"""Recorded results: what a pipeline run writes and what dashboards read.

A run keeps everything under ``<runs_dir>/<pipeline>/<run_id>/``::

    notebooks/NN-<stage>.ipynb   executed stage notebooks (kept on failure too)
    outputs/<name>.parquet       tables written by stages with :func:`write_output`
    outputs/<name>.json          documents written by stages with :func:`write_output`
    run.json                     the run's record (status, stages, times, parameters)
    spec.yaml                    the pipeline spec as it was when the run started
    kernels.log                  the stage kernels' own stdout/stderr (start-up, C-level logs)

Only a run that finished every stage is *published*: the runner then atomically replaces
``<runs_dir>/<pipeline>/published.json`` with a pointer to it. Readers (dashboards, reports)
call :func:`latest` and never see a partial run. The pointer never goes back in time: a run
completed for an as-of date older than the published one is kept and listed, but the
pointer stays on the newer date (the runner records ``superseded_by`` in the older run).

Output names used by the daily pipeline (the contract with ``research.viz``); the stage that
writes each is in brackets (see ``pipelines/daily.yaml`` and :mod:`research.stages.steps`):

==================  =======  ==============================================================
name                kind     content
==================  =======  ==============================================================
``prices``          table    wide close matrix of the universe (index timestamp) [ingest]
``data_report``     table    one row per symbol: source, interval, rows, first, last,
                             quarantined, flagged, gaps, synthetic, stale, sha256,
                             fetched_at, provenance [ingest]
``features``        table    the default feature set, long (timestamp, symbol, features...),
                             warm-up rows dropped [features]
``predictions``     table    timestamp, symbol, model, predicted, actual, kind, fold, seed,
                             version; ``kind`` is ``walk_forward`` (out-of-sample evaluation)
                             or ``forecast`` (the deployed LSTM on bars after its training
                             data; the last row per symbol is today's forecast, actual NaN)
                             [model]
``model_eval``      table    symbol, model, rmse, mae, directional_accuracy, ic, rank_ic,
                             beats_naive, champion, mlflow_run_id, mode (trained/predicted),
                             version, reason [model]
``backtests``       table    strategy, symbol, params (JSON string), stats columns of
                             ``research.risk.metrics.summary`` [backtest]
``equity``          table    timestamp index, one column per "strategy|symbol" equity curve;
                             optional extra curves "strategy|symbol|params" (params as in
                             ``backtests``), "buy_and_hold|symbol", "portfolio|<name>"; the
                             daily pipeline writes "buy_and_hold|symbol" and
                             "portfolio|ma_crossover" (the equal-weight book) [backtest]
``trades``          table    strategy, symbol, params, entry_time, exit_time, size,
                             entry_price, exit_price, pnl, return (optional; the daily
                             pipeline adds book, direction, fees, status, exit_reason)
                             [backtest]
``positions``       table    timestamp index, one column per symbol: portfolio weight
                             (fraction of equity; optional; the daily pipeline records the
                             equal-weight ma_crossover book) [backtest]
``sweep``           table    tidy grid: symbol, parameters, metrics... (the daily pipeline: a
                             long table over every swept family, a ``family`` column and the
                             union of the families' parameter columns, stats as float32;
                             readers treat a table without ``family`` as ma_crossover)
                             [backtest]
``sweep_summary``   table    optional; per family and symbol: grid, param_names, costs, timing,
                             periods_per_year, the best cell by Sharpe (its parameters as
                             columns and as JSON in ``params``; sharpe), its deflated_sharpe
                             over dsr_trials cells, pbo over pbo_trials cells of pbo_grid
                             (pbo_splits, pbo_combinations) [backtest]
``sweep_returns``   table    per-bar returns of sweep cells on one symbol (column ``symbol``);
                             the daily pipeline: a coarse sub-grid of each family, columns
                             "family|cell" ("ma_crossover|5/20") [backtest]
``sweep_bars``      table    optional; timestamp index, "open|symbol" and "close|symbol" (and
                             "high|symbol", "low|symbol" when a family reads whole bars):
                             the bars the sweep ran on (to re-run one cell) [backtest]
``risk``            json     as_of, strategy, book, periods_per_year, start, end, summary
                             (unit-suffixed keys), nan_reasons, var, drawdown {max, current},
                             benchmark, per_symbol, overfitting {symbol, selected, n_trials,
                             deflated_sharpe, pbo_pct, pbo_trials, grid} [risk]
``signals``         table    symbol, strategy, as_of, bar_time, signal, previous_signal,
                             changed, target_position, close, stale, params, synthetic
                             [signals]
``alerts``          table    symbol, kind, severity, message, value, threshold, as_of,
                             bar_time; kinds price, technical, volume, drawdown, data, model;
                             severities info, warning, critical [signals]
``paper``           table    one row per paper account following the pipeline: account,
                             strategy, symbols, as_of, sessions_written, sessions,
                             last_session, cash, equity, return_pct, fills, pending_orders,
                             returns_correlation, tracking_error, drift_alerts,
                             drift_message, checks, error [paper]
``summary``         json     pipeline, run_id, as_of, created_at, synthetic, data {symbols,
                             sources, synthetic, rows, quarantined, last_bar, sha256},
                             headline {models, best_strategy, signals, alerts, risk}, outputs
                             [summary]
==================  =======  ==============================================================

The ``hourly`` pipeline (synthetic crypto by default) writes ``data_report``, ``prices``, ``paper``,
``signals``, ``alerts`` and ``summary`` with the same columns; read it with
``latest("hourly")``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from research.atomic import atomic_path, atomic_write
from research.config import get_settings
from research.timeutil import to_naive_utc

__all__ = ["PublishedRun", "write_output", "read_output", "publish", "latest", "pipeline_dir"]


def write_output(output_dir: str | os.PathLike, name: str, value: pd.DataFrame | dict) -> Path:
    """Write one named output atomically: a DataFrame as Parquet, a dict as JSON."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(value, pd.DataFrame):
        path = out / f"{name}.parquet"
        frame = value.copy()
        frame.columns = [str(c) for c in frame.columns]
        with atomic_path(path) as tmp:
            frame.to_parquet(tmp)
        return path
    if isinstance(value, dict):
        path = out / f"{name}.json"
        atomic_write(path, json.dumps(value, indent=2, default=str))
        return path
    raise TypeError(f"output {name!r} must be a DataFrame or a dict, not {type(value).__name__}")


def read_output(output_dir: str | os.PathLike, name: str) -> pd.DataFrame | dict:
    """Read an output written by :func:`write_output`; ``KeyError`` names what is missing."""
    out = Path(output_dir)
    if (out / f"{name}.parquet").exists():
        return pd.read_parquet(out / f"{name}.parquet")
    if (out / f"{name}.json").exists():
        return json.loads((out / f"{name}.json").read_text(encoding="utf-8"))
    raise KeyError(f"no output {name!r} in {out}")


@dataclass
class PublishedRun:
    """A finished pipeline run as readers see it."""

    pipeline: str
    run_id: str
    path: Path
    record: dict = field(default_factory=dict)

    @property
    def outputs_dir(self) -> Path:
        return self.path / "outputs"

    @property
    def as_of(self) -> str | None:
        return self.record.get("as_of")

    @property
    def finished_at(self) -> str | None:
        return self.record.get("finished_at")

    def has(self, name: str) -> bool:
        return any((self.outputs_dir / f"{name}{ext}").exists() for ext in (".parquet", ".json"))

    def table(self, name: str) -> pd.DataFrame:
        value = read_output(self.outputs_dir, name)
        if not isinstance(value, pd.DataFrame):
            raise TypeError(f"output {name!r} of run {self.run_id} is a document, not a table")
        return value

    def document(self, name: str) -> dict:
        value = read_output(self.outputs_dir, name)
        if not isinstance(value, dict):
            raise TypeError(f"output {name!r} of run {self.run_id} is a table, not a document")
        return value


def pipeline_dir(pipeline: str, runs_dir: str | os.PathLike | None = None) -> Path:
    """A pipeline's folder of runs: ``runs_dir`` when given, else ``<Settings.runs_dir>/<pipeline>``."""
    return Path(runs_dir) if runs_dir is not None else get_settings().runs_dir / pipeline


def _as_of_key(value: object) -> pd.Timestamp | None:
    """Where an as-of label ends: a date is its whole day (as the market rooms read it), a time itself."""
    try:
        ts = pd.Timestamp(str(value))
    except (TypeError, ValueError):
        return None
    if ts is pd.NaT:
        return None
    ts = to_naive_utc(ts)
    return ts + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1) if len(str(value).strip()) == 10 else ts


def publish(run_dir: str | os.PathLike, *, pipeline: str, run_id: str, record: dict,
            only_newer: bool = False) -> Path | None:
    """Point ``published.json`` of ``pipeline`` at a finished run (atomic replace).

    With ``only_newer`` the pointer moves only when ``record["as_of"]`` is not older than the
    published run's as-of date (checked and replaced under a lock); otherwise nothing is
    written and ``None`` is returned.
    """
    from filelock import FileLock

    run_dir = Path(run_dir)
    pointer = run_dir.parent / "published.json"
    (run_dir.parent / ".locks").mkdir(parents=True, exist_ok=True)
    with FileLock(str(run_dir.parent / ".locks" / "publish.lock")):
        if only_newer and pointer.exists():
            try:
                current = json.loads(pointer.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                current = {}
            old, new = _as_of_key(current.get("as_of")), _as_of_key(record.get("as_of"))
            if old is not None and new is not None and new < old and current.get("run_id") != run_id:
                return None
        atomic_write(pointer, json.dumps({"pipeline": pipeline, "run_id": run_id, "path": str(run_dir), **record},
                                              indent=2, default=str))
    return pointer


def latest(pipeline: str = "daily", *, runs_dir: str | os.PathLike | None = None) -> PublishedRun | None:
    """The last published run of ``pipeline``, or ``None`` when nothing is published yet.

    ``runs_dir`` is the pipeline's folder (default ``<Settings.runs_dir>/<pipeline>``).
    """
    pointer = pipeline_dir(pipeline, runs_dir) / "published.json"
    if not pointer.exists():
        return None
    info = json.loads(pointer.read_text(encoding="utf-8"))
    return PublishedRun(pipeline=pipeline, run_id=info["run_id"], path=Path(info["path"]), record=info)
