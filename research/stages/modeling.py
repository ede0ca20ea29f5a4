"""The daily pipeline's model stage: retrain on schedule, otherwise predict with the champion.

For each symbol, :func:`train_or_predict` decides (see :func:`retrain_reason`):

* **train** when asked (``retrain=True``), when no model is registered yet, when the latest
  registered version is ``retrain_every_days`` old or older, or when the model was fitted on
  bars after the as-of date (using it would look ahead). Training is the experiments layer's
  one-call cycle (:func:`research.experiments.train_and_evaluate`): walk-forward LSTM against
  the naive, moving-average and ridge baselines out of sample, logged to MLflow, registered,
  and promoted to ``champion`` only if it beats the naive baseline.
* **predict** otherwise, with the champion (or, when no version ever beat the naive baseline,
  the latest version, marked ``champion=False`` so it is never traded).

Either way the stage ends with a forecast made at the symbol's last bar up to the as-of date.

``predictions`` rows: ``timestamp, symbol, model, predicted, actual, kind, fold, seed, version``
where ``kind`` is ``walk_forward`` (out-of-sample evaluation forecasts) or ``forecast`` (made
by the deployed model on bars after its training data; ``actual`` is NaN until realised).
``model_eval`` rows follow :meth:`research.experiments.TrainingResult.model_eval`, plus ``mode``
(``trained``/``predicted``), ``version`` and ``reason``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from research.data import load_prices
from research.features.sets import feature_set
from research.models.datasets import forward_target
from research.models.evaluate import HIGHER_IS_BETTER, METRICS
from research.timeutil import to_utc

__all__ = ["train_or_predict", "retrain_reason", "forecast_rows", "feature_set_of", "PREDICTION_COLUMNS"]

log = logging.getLogger(__name__)
PREDICTION_COLUMNS = ["timestamp", "symbol", "model", "predicted", "actual", "kind", "fold", "seed", "version"]
_NAIVE = ("naive", "naive_mean")


def retrain_reason(name: str, *, as_of: object, retrain: bool, every_days: float, now: pd.Timestamp | None = None) -> str | None:
    """Why ``name`` must be trained now, or ``None`` when the registered model may be used."""
    from research.tracking import registry

    if retrain:
        return "retrain requested"
    latest = registry.latest_version(name)
    if latest is None:
        return "no registered model yet"
    now = now or pd.Timestamp.now(tz="UTC")
    age = (now - pd.Timestamp(int(latest.creation_timestamp), unit="ms", tz="UTC")) / pd.Timedelta(days=1)
    if age >= every_days:
        return f"latest version is {age:.1f} days old (schedule: every {every_days:g} days)"
    return None


def _deployed(name: str):
    """The champion, or the latest version (not tradeable) when none beat the naive baseline."""
    from research.tracking import registry

    try:
        return registry.load_champion(name), True
    except registry.NoChampionError:
        latest = registry.latest_version(name)
        return registry.load_version(name, latest.version), False


def feature_set_of(model: Any) -> str | None:
    """The name of the feature set a model was trained on (by its feature names), or None."""
    from research.features.sets import FEATURE_SETS

    names = tuple(getattr(model, "feature_names", ()) or ())
    return next((k for k, v in FEATURE_SETS.items() if tuple(v) == names), None)


def forecast_rows(model: Any, ohlcv: pd.DataFrame, *, symbol: str, feature_set_name: str, version: str | None) -> pd.DataFrame:
    """Forecasts of ``model`` on bars after its training data, ending with the last bar."""
    feats = feature_set(ohlcv, feature_set_name)
    preds = model.predict(feats)
    fitted_end = to_utc(model.fitted_range[1]) if getattr(model, "fitted_range", None) else None
    if fitted_end is not None:
        after = preds[preds.index > fitted_end]
        preds = after if len(after) else preds.iloc[-1:]
    actual = forward_target(ohlcv["close"], horizon=getattr(model, "horizon", 1) or 1).reindex(preds.index)
    return pd.DataFrame({
        "timestamp": preds.index, "symbol": symbol, "model": "lstm", "predicted": preds.to_numpy(dtype="float64"),
        "actual": actual.to_numpy(dtype="float64"), "kind": "forecast", "fold": -1, "seed": 0, "version": version,
    })


def _eval_from_run(run_id: str, symbol: str, *, champion: bool, primary: str) -> pd.DataFrame:
    """``model_eval`` rows rebuilt from the metrics the training run logged (``oos/<model>/<metric>``)."""
    from mlflow.tracking import MlflowClient

    from research.config import get_settings

    metrics = MlflowClient(tracking_uri=get_settings().tracking_uri).get_run(run_id).data.metrics
    models = sorted({k.split("/")[1] for k in metrics if k.startswith("oos/") and k.count("/") == 2})
    rows = [{"symbol": symbol, "model": m, **{k: metrics.get(f"oos/{m}/{k}", np.nan) for k in METRICS}} for m in models]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    naive = frame[frame["model"].isin(_NAIVE)][primary]
    best = naive.max() if primary in HIGHER_IS_BETTER else naive.min()
    better = frame[primary] > best if primary in HIGHER_IS_BETTER else frame[primary] < best
    frame["beats_naive"] = better & ~frame["model"].isin(_NAIVE)
    frame["champion"] = champion & (frame["model"] == "lstm")
    frame["mlflow_run_id"] = run_id
    return frame


def _train(symbol: str, *, source: str, interval: str, config: Any, ohlcv: pd.DataFrame, reason: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    from research.experiments import train_and_evaluate

    res = train_and_evaluate(symbol, source=source, config=config, interval=interval)
    wf = res.predictions.assign(symbol=symbol, kind="walk_forward", version=res.model_version)
    fc = forecast_rows(res.model, ohlcv, symbol=symbol, feature_set_name=config.feature_set, version=res.model_version)
    ev = res.model_eval().assign(mode="trained", version=res.model_version, reason=reason)
    return pd.concat([wf.reindex(columns=PREDICTION_COLUMNS), fc], ignore_index=True), ev


def train_or_predict(
    symbols: list[str],
    *,
    as_of: object,
    source: str = "sample",
    interval: str = "1d",
    retrain: bool = False,
    retrain_every_days: float = 7.0,
    preset: str = "pipeline",
    overrides: Mapping[str, Any] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train (on schedule) or predict with the champion for every symbol; see the module doc.

    Returns
    -------
    predictions, model_eval : DataFrame
        The two outputs of the daily pipeline's model stage.
    """
    from research.experiments import TrainingConfig, model_name_for

    end = str(to_utc(as_of))
    config = TrainingConfig.preset(preset).replace(end=end, **dict(overrides or {}))
    preds, evals = [], []
    for symbol in symbols:
        ohlcv = load_prices(symbol, end=end, interval=interval, source=source, progress=False)
        name = model_name_for(symbol)
        reason = retrain_reason(name, as_of=as_of, retrain=retrain, every_days=retrain_every_days)
        model = None
        if reason is None:
            model, champion = _deployed(name)
            if model.fitted_range and to_utc(model.fitted_range[1]) > to_utc(end):
                reason, model = f"the registered model was fitted on bars up to {model.fitted_range[1]}, after the as-of date", None
            elif feature_set_of(model) is None:
                reason, model = "the registered model's features match no named feature set", None
        if model is None:
            log.info("%s: training (%s)", symbol, reason)
            p, e = _train(symbol, source=source, interval=interval, config=config, ohlcv=ohlcv, reason=reason)
        else:
            version = model.registry["version"] if model.registry else None
            p = forecast_rows(model, ohlcv, symbol=symbol, feature_set_name=feature_set_of(model), version=version)
            e = _eval_from_run(model.registry["run_id"], symbol, champion=champion, primary=config.primary_metric)
            e = e.assign(mode="predicted", version=version, reason="scheduled: predict with the deployed model")
        preds.append(p)
        evals.append(e)
    predictions = pd.concat(preds, ignore_index=True)
    predictions["timestamp"] = pd.to_datetime(predictions["timestamp"], utc=True)
    return predictions, pd.concat(evals, ignore_index=True)
