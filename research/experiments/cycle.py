"""The one-call training cycle: data -> features -> walk-forward LSTM vs baselines -> MLflow.

>>> result = train_and_evaluate("SPX", source="sample", config=TrainingConfig.preset("tiny"))
>>> result.comparison          # model x metrics, out of sample, mean ± std over seeds
>>> result.champion            # True only when the LSTM beat the naive baseline

Steps: check the tracking store (fail fast); load the bars with ``load_prices``; build the
feature set and the forward target; cut windows; evaluate the LSTM (every seed) and the
baselines on walk-forward folds with an embargo of at least the horizon; trade the
out-of-sample forecasts through the prediction strategy of the backtest layer (when that layer
is installed); log params, per-epoch and per-fold metrics, predictions, comparison, figures and
the model; and, once the run has FINISHED, register the model and promote it to ``champion``
only if it beat the naive baseline.

Champion rule
-------------
The primary metric (``rmse`` by default; ``mae`` or ``directional_accuracy`` by config) of
the LSTM, pooled over every fold's out-of-sample forecasts and averaged over seeds, must be
strictly better than the *best* naive variant evaluated (``naive``: the random walk's zero
return; ``naive_mean``: the training drift). RMSE against the random walk is the hardest
honest bar for daily returns; directional accuracy is compared against always predicting the
training drift's direction, not against the zero forecast that never says "up".
"""

from __future__ import annotations

import importlib.metadata
import logging
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from research.data import load_prices
from research.experiments.forecast_trading import trade_predictions
from research.experiments.training_config import TrainingConfig
from research.features.sets import feature_set
from research.models.baselines import make_baseline
from research.models.datasets import (
    WindowedDataset,
    forward_target,
    make_windows,
    walk_forward_folds,
)
from research.models.evaluate import (
    HIGHER_IS_BETTER,
    METRICS,
    beats_baseline,
    comparison_table,
    nan_reasons,
)
from research.models.folds import FoldEvaluation, evaluate_folds
from research.models.lstm import LSTMForecaster
from research.tracking import registry
from research.tracking.runs import TrackedRun, run
from research.tracking.store import configure

__all__ = ["TrainingResult", "train_and_evaluate", "DEFAULT_EXPERIMENT", "model_name_for"]

log = logging.getLogger(__name__)
DEFAULT_EXPERIMENT = "lstm-forecast"
NAIVE = ("naive", "naive_mean")
Figures = Callable[[pd.DataFrame], Mapping[str, Any]]


def model_name_for(symbol: str) -> str:
    """Registered model name of a symbol's LSTM (``lstm-SPX``)."""
    return "lstm-" + "".join(c if c.isalnum() or c in "-_." else "_" for c in symbol)


@dataclass
class TrainingResult:
    """What a training cycle produced and where it is recorded.

    Attributes
    ----------
    comparison : pandas.DataFrame
        Model x metric strings (``"mean ± std"`` over seeds), out of sample, LSTM first, plus
        the trading columns when the backtest layer ran.
    summary : pandas.DataFrame
        The same numbers as floats (``<metric>`` and ``<metric>_std``) with ``beats_naive``.
    predictions, fold_metrics, folds : pandas.DataFrame
        Out-of-sample forecasts, metrics per fold, and the folds' dates.
    trading : pandas.DataFrame or None
        Backtest stats of trading each model's forecasts (seed 0), or None when not run.
    model : LSTMForecaster
        The model that was logged (and registered).
    """

    symbol: str
    source: str
    config: TrainingConfig
    run_id: str
    experiment: str
    experiment_id: str
    tracking_uri: str
    comparison: pd.DataFrame
    summary: pd.DataFrame
    predictions: pd.DataFrame
    fold_metrics: pd.DataFrame
    folds: pd.DataFrame
    trading: pd.DataFrame | None
    model: LSTMForecaster
    model_name: str
    model_version: str | None
    beats_naive: bool
    champion: bool
    primary_metric: str
    data_sha256: str
    seconds: float

    def model_eval(self) -> pd.DataFrame:
        """One row per model in the daily pipeline's ``model_eval`` table contract."""
        s = self.summary
        return pd.DataFrame({
            "symbol": self.symbol, "model": s.index,
            **{m: s[m].to_numpy() for m in METRICS},
            "beats_naive": s["beats_naive"].to_numpy(),
            "champion": [bool(self.champion and m == "lstm") for m in s.index],
            "mlflow_run_id": self.run_id,
        })

    def ui_path(self) -> str:
        """Where the run is in the MLflow UI (append to the UI's address)."""
        return f"/#/experiments/{self.experiment_id}/runs/{self.run_id}"

    def verdict(self) -> str:
        """One line: the LSTM against the best naive baseline on the primary metric."""
        m = self.primary_metric
        naive = [n for n in NAIVE if n in self.summary.index]
        best = self.summary.loc[naive, m]
        name = best.idxmax() if m in HIGHER_IS_BETTER else best.idxmin()
        lstm, ref = float(self.summary.at["lstm", m]), float(best[name])
        rel = (lstm / ref - 1) if ref else float("nan")
        if self.champion:
            state = "champion"
        elif self.beats_naive:
            state = "beats naive (not registered)" if self.model_version is None else "beats naive"
        else:
            state = "not promoted: did not beat naive"
        return f"{m}: lstm {lstm:.6g} vs {name} {ref:.6g} ({rel:+.2%}) -> {state}"

    def __str__(self) -> str:
        version = f"v{self.model_version}" if self.model_version else "(not registered)"
        return (
            f"{self.symbol} ({self.source}) out of sample, {len(self.folds)} folds "
            f"({self.folds['test_start'].iloc[0][:10]} .. {self.folds['test_end'].iloc[-1][:10]}), "
            f"seeds {list(self.config.seeds)}:\n{self.comparison.to_string()}\n"
            f"{self.verdict()}; {self.model_name} {version}; MLflow run {self.run_id} "
            f"(experiment {self.experiment!r}, {self.tracking_uri})"
        )


def _prepare(ohlcv: pd.DataFrame, cfg: TrainingConfig) -> tuple[pd.DataFrame, pd.DataFrame, WindowedDataset]:
    if cfg.max_bars:
        attrs = ohlcv.attrs
        ohlcv = ohlcv.iloc[-int(cfg.max_bars):]
        ohlcv.attrs = attrs
    feats = feature_set(ohlcv, cfg.feature_set)
    target = forward_target(ohlcv["close"], horizon=cfg.horizon, kind=cfg.target)
    ds = make_windows(feats, target, lookback=cfg.lookback, horizon=cfg.horizon, kind=cfg.target)
    return ohlcv, feats, ds


def _factories(cfg: TrainingConfig) -> dict[str, Callable[[int], Any]]:
    lstm = cfg.lstm_params()
    params = {"moving_average": {"window": min(cfg.ma_window, cfg.lookback)},
              "ridge": {"alpha": cfg.ridge_alpha, "lags": cfg.ridge_lags}}
    out: dict[str, Callable[[int], Any]] = {"lstm": lambda seed: LSTMForecaster(**lstm, seed=seed)}
    for name in cfg.baselines:
        out[name] = lambda seed, n=name: make_baseline(n, lookback=cfg.lookback, **params.get(n, {}))
    return out


def _verdicts(summary: pd.DataFrame, metric: str) -> tuple[pd.Series, float]:
    naive = [n for n in NAIVE if n in summary.index]
    values = summary.loc[naive, metric]
    best = float(values.max() if metric in HIGHER_IS_BETTER else values.min())
    beats = pd.Series({m: beats_baseline(float(summary.at[m, metric]), best, metric=metric) for m in summary.index})
    beats[naive] = False
    return beats, best


def _log_evaluation(tr: TrackedRun, wf: FoldEvaluation, summary: pd.DataFrame) -> None:
    for (model, seed, fold), g in wf.predictions.groupby(["model", "seed", "fold"], sort=False):
        row = wf.fold_metrics[(wf.fold_metrics["model"] == model) & (wf.fold_metrics["seed"] == seed)
                              & (wf.fold_metrics["fold"] == fold)].iloc[0]
        key = f"fold/{model}/s{seed}"
        reasons = {f"{key}/{m}": r for m, r in nan_reasons(g["actual"], g["predicted"]).items()}
        tr.log_metrics({f"{key}/{m}": row[m] for m in METRICS}, step=int(fold), reasons=reasons)
    for model, g in wf.predictions.groupby("model", sort=False):
        reasons = nan_reasons(g["actual"], g["predicted"])
        vals = {f"oos/{model}/{m}": summary.at[model, m] for m in METRICS}
        vals.update({f"oos/{model}/{m}_std": summary.at[model, f"{m}_std"] for m in METRICS
                     if np.isfinite(summary.at[model, f"{m}_std"])})
        tr.log_metrics(vals, reasons={f"oos/{model}/{m}": r for m, r in reasons.items()})
    tr.log_frame(wf.predictions, "evaluation/predictions")
    tr.log_frame(wf.fold_metrics, "evaluation/fold_metrics")
    tr.log_frame(wf.folds, "evaluation/folds")
    tr.log_frame(summary.reset_index(), "evaluation/summary")


def _final_model(ds: WindowedDataset, wf: FoldEvaluation, cfg: TrainingConfig, tr: TrackedRun) -> LSTMForecaster:
    if not cfg.refit_final:
        return wf.last_models[("lstm", cfg.seeds[0])]

    def epoch(e: int, logs: dict[str, float]) -> None:
        tr.log_metrics({f"epoch/final/{k}": v for k, v in logs.items()}, step=e)

    return LSTMForecaster(**cfg.lstm_params(), seed=cfg.seeds[0]).fit(ds, on_epoch_end=epoch)


def _pip_requirements() -> list[str]:
    reqs = []
    for dist in ("keras", "tensorflow-cpu", "tensorflow", "mlflow", "numpy"):
        try:
            reqs.append(f"{dist}=={importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return reqs


def _log_model(tr: TrackedRun, model: LSTMForecaster, ds: WindowedDataset, tmp: Path) -> Any:
    import mlflow
    from mlflow.models import infer_signature

    path = model.save(tmp / "lstm.keras")
    tr.log_artifacts(path.parent, registry.FORECASTER_DIR)
    sample = ds.X[-2:]
    signature = infer_signature(sample, np.asarray(model.model.predict_on_batch(sample)))
    return mlflow.keras.log_model(model.model, name="model", signature=signature, pip_requirements=_pip_requirements())


def train_and_evaluate(
    symbol: str,
    *,
    source: str = "sample",
    config: TrainingConfig | Mapping[str, Any] | str | None = None,
    interval: str = "1d",
    experiment: str = DEFAULT_EXPERIMENT,
    model_name: str | None = None,
    register: bool = True,
    figures: Figures | None = None,
    parent_run_id: str | None = None,
    progress: bool = False,
) -> TrainingResult:
    """Train, evaluate against baselines, trade, log, register and maybe promote, in one call.

    Parameters
    ----------
    symbol : str
        One symbol of ``source`` (``"SPX"``; ``"SYN0001"`` with ``source="synthetic"``).
    source : str
        Data source for :func:`research.data.load_prices`.
    config : TrainingConfig, mapping, preset name or None
        ``None`` uses the ``pipeline`` preset; a string names a preset.
    interval : str
        Bar interval (``"1mo"`` for BTC-USD sample data).
    experiment : str
        MLflow experiment.
    model_name : str, optional
        Registered model name; default ``lstm-<symbol>``.
    register : bool
        Register the model (and promote it when it beats the naive baseline).
    figures : callable, optional
        ``figures(predictions) -> {name: figure}`` logged with the run, for example
        :func:`research.viz.models.evaluation_figures`.
    parent_run_id : str, optional
        Nest the run under a pipeline's run.

    Returns
    -------
    TrainingResult
    """
    t0 = time.perf_counter()
    cfg = _resolve_config(config)
    store = configure()  # fail fast, before loading data or training
    name = model_name or model_name_for(symbol)
    ohlcv = load_prices(symbol, start=cfg.start, end=cfg.end, interval=interval, source=source)
    cycle = _tracked_cycle(symbol, ohlcv, cfg, experiment=experiment, model_name=name, figures=figures,
                           parent_run_id=parent_run_id, progress=progress)
    version, champion = None, False
    if register:
        version, champion = _register(cycle, cfg, symbol=symbol, source=source, name=name)
    return TrainingResult(
        symbol=symbol, source=source, config=cfg, run_id=cycle.run_id, experiment=experiment,
        experiment_id=cycle.experiment_id, tracking_uri=store.tracking_uri, comparison=cycle.comparison,
        summary=cycle.summary, predictions=cycle.wf.predictions, fold_metrics=cycle.wf.fold_metrics,
        folds=cycle.wf.folds, trading=cycle.trading, model=cycle.model, model_name=name, model_version=version,
        beats_naive=cycle.beats_naive, champion=champion, primary_metric=cfg.primary_metric,
        data_sha256=_sha(cycle.ohlcv), seconds=round(time.perf_counter() - t0, 2),
    )


@dataclass
class _Cycle:
    """What the tracked run of a training cycle produced (the run is closed)."""

    ohlcv: pd.DataFrame  # the bars trained on (``max_bars`` applied)
    wf: FoldEvaluation
    summary: pd.DataFrame
    naive_value: float
    trading: pd.DataFrame | None
    comparison: pd.DataFrame
    model: LSTMForecaster
    beats_naive: bool
    model_uri: str
    run_id: str
    experiment_id: str


def _tracked_cycle(symbol: str, ohlcv: pd.DataFrame, cfg: TrainingConfig, *, experiment: str, model_name: str,
                   figures: Figures | None, parent_run_id: str | None, progress: bool) -> _Cycle:
    """One MLflow run: windows, walk-forward evaluation against the baselines, trading, the final
    model, all logged; the run ends (FINISHED or FAILED) before this returns."""
    tags = {"symbol": symbol, "model_name": model_name, "primary_metric": cfg.primary_metric}
    with run(experiment, cfg, run_name=f"{symbol} lstm h{cfg.horizon}", data=ohlcv, tags=tags,
             parent_run_id=parent_run_id) as tr:
        ohlcv, _, ds = _prepare(ohlcv, cfg)
        wf = _walk_forward(tr, ds, cfg, progress=progress)
        summary = wf.summary.copy()
        beats, naive_value = _verdicts(summary, cfg.primary_metric)
        summary["beats_naive"] = beats.reindex(summary.index).astype(bool)
        _log_evaluation(tr, wf, summary)
        trading = trade_predictions(ohlcv, wf.predictions, cfg) if cfg.trade else None
        comparison = _log_comparison(tr, summary, trading, wf.predictions, figures)
        final = _final_model(ds, wf, cfg, tr)
        lstm_beats = bool(summary.at["lstm", "beats_naive"])
        tr.set_tags({"beats_naive": str(lstm_beats).lower(), "naive_best_value": naive_value,
                     "weights_sha256": final.weights_sha256()})
        with tempfile.TemporaryDirectory() as tmp:
            info = _log_model(tr, final, ds, Path(tmp))
        return _Cycle(ohlcv=ohlcv, wf=wf, summary=summary, naive_value=naive_value, trading=trading,
                      comparison=comparison, model=final, beats_naive=lstm_beats, model_uri=info.model_uri,
                      run_id=tr.run_id, experiment_id=tr.experiment_id)


def _walk_forward(tr: TrackedRun, ds: WindowedDataset, cfg: TrainingConfig, *, progress: bool) -> FoldEvaluation:
    """The LSTM (every seed) and the baselines on walk-forward folds, per-epoch metrics logged."""
    folds = walk_forward_folds(len(ds), n_folds=cfg.n_folds, test_size=_test_size(cfg, len(ds)),
                               embargo=cfg.effective_embargo, mode=cfg.fold_mode,
                               train_size=cfg.train_size, min_train=max(50, cfg.batch_size))
    tr.set_tags({"windows": len(ds), "features": ",".join(ds.feature_names)})

    def on_epoch(model: str, seed: int, fold: int, epoch: int, logs: dict) -> None:
        tr.log_metrics({f"epoch/f{fold}/s{seed}/{k}": v for k, v in logs.items()}, step=epoch)

    return evaluate_folds(ds, folds, _factories(cfg), seeds=cfg.seeds, stochastic={"lstm"},
                          on_epoch=on_epoch, progress=progress)


def _log_comparison(tr: TrackedRun, summary: pd.DataFrame, trading: pd.DataFrame | None,
                    predictions: pd.DataFrame, figures: Figures | None) -> pd.DataFrame:
    """Log the trading stats, the comparison table and the figures; return the table."""
    if trading is not None:
        tr.log_frame(trading.reset_index(), "evaluation/trading")
    comparison = _comparison(summary, trading)
    tr.log_text(comparison.to_markdown() if _has_tabulate() else comparison.to_string(), "evaluation/comparison.md")
    if figures is not None:
        for fig_name, fig in figures(predictions).items():
            tr.log_figure(fig, f"figures/{fig_name}")
    return comparison


def _register(cycle: _Cycle, cfg: TrainingConfig, *, symbol: str, source: str, name: str) -> tuple[str, bool]:
    """Register the finished run's model as ``name``; promote it to champion only if it beat the
    naive baseline. Returns the version and whether it is the champion."""
    mv = registry.register_model(cycle.run_id, name=name, model_uri=cycle.model_uri, tags={
        "symbol": symbol, "source": source, "primary_metric": cfg.primary_metric,
        "primary_value": cycle.summary.at["lstm", cfg.primary_metric], "naive_value": cycle.naive_value,
        "data_sha256": _sha(cycle.ohlcv)})
    version = str(mv.version)
    champion = registry.promote(name, version, beats_naive=cycle.beats_naive)
    cycle.model.registry = {"name": name, "version": version, "run_id": cycle.run_id}
    return version, champion


def _resolve_config(config: TrainingConfig | Mapping[str, Any] | str | None) -> TrainingConfig:
    if config is None:
        return TrainingConfig.preset("pipeline")
    if isinstance(config, str):
        return TrainingConfig.preset(config)
    if isinstance(config, Mapping):
        return TrainingConfig.from_dict(dict(config))
    if isinstance(config, TrainingConfig):
        return config
    raise TypeError(f"config must be a TrainingConfig, mapping or preset name, not {type(config).__name__}")


def _test_size(cfg: TrainingConfig, n: int) -> int:
    return int(cfg.test_size) if cfg.test_size else max(1, min(252, n // (cfg.n_folds + 2)))


def _sha(ohlcv: pd.DataFrame) -> str:
    sha = ohlcv.attrs.get("sha256")
    if isinstance(sha, Mapping):
        return ",".join(str(v) for v in sha.values())
    return str(sha or "")


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


def _comparison(summary: pd.DataFrame, trading: pd.DataFrame | None) -> pd.DataFrame:
    table = comparison_table(summary)
    table["beats_naive"] = summary["beats_naive"].map({True: "yes", False: "no"})
    if trading is not None:
        table = table.join(trading, how="left")
    return table
