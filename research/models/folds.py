"""Walk-forward evaluation of forecasters: fit on each fold's past, forecast its future.

Each fold's models see only that fold's training windows (scalers included); forecasts are
collected out of sample into one predictions table (see :mod:`research.models.evaluate`).

Examples
--------
>>> folds = walk_forward_folds(len(ds), n_folds=3, test_size=250, embargo=ds.horizon)
>>> res = evaluate_folds(ds, folds, {"lstm": lambda seed: LSTMForecaster(lookback=30, seed=seed),
...                                "naive": lambda seed: NaiveForecaster(lookback=30)},
...                    seeds=[0, 1], stochastic={"lstm"})
>>> res.summary          # one row per model: mean and std over seeds
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from research.models.base import Forecaster
from research.models.datasets import Fold, WindowedDataset
from research.models.evaluate import fold_metrics, overall_metrics, seed_summary

__all__ = ["FoldEvaluation", "evaluate_folds"]

log = logging.getLogger(__name__)

Factory = Callable[[int], Forecaster]
FoldHook = Callable[[str, int, int, Forecaster, pd.DataFrame], None]
EpochHook = Callable[[str, int, int, int, dict], None]


@dataclass
class FoldEvaluation:
    """Out-of-sample forecasts and their metrics.

    Attributes
    ----------
    predictions : pandas.DataFrame
        ``timestamp, fold, seed, model, predicted, actual`` (see :mod:`~research.models.evaluate`).
    folds : pandas.DataFrame
        One row per fold: windows and dates of its training and evaluation blocks.
    fold_metrics, overall : pandas.DataFrame
        Metrics per ``(model, seed, fold)`` and per ``(model, seed)`` pooled over folds.
    summary : pandas.DataFrame
        One row per model: each metric's mean and std over seeds.
    fit_seconds : dict
        Total fitting time per model.
    last_models : dict
        The model fitted on the last fold, per ``(model, seed)``.
    """

    predictions: pd.DataFrame
    folds: pd.DataFrame
    fold_metrics: pd.DataFrame
    overall: pd.DataFrame
    summary: pd.DataFrame
    fit_seconds: dict[str, float] = field(default_factory=dict)
    last_models: dict[tuple[str, int], Forecaster] = field(default_factory=dict)


def evaluate_folds(
    dataset: WindowedDataset,
    folds: Iterable[Fold],
    models: Mapping[str, Factory],
    *,
    seeds: Iterable[int] = (0,),
    stochastic: Iterable[str] = (),
    on_fold: FoldHook | None = None,
    on_epoch: EpochHook | None = None,
    progress: bool = False,
) -> FoldEvaluation:
    """Fit every model on every fold and forecast the fold's evaluation windows.

    Parameters
    ----------
    dataset : WindowedDataset
        All windows, time-ordered.
    folds : iterable of Fold
        From :func:`~research.models.datasets.walk_forward_folds` (embargo checked per fold).
    models : mapping of name -> factory(seed)
        Each factory returns an unfitted forecaster.
    seeds : iterable of int
        Seeds for the models named in ``stochastic``; the others run once (seed 0).
    on_fold : callable, optional
        ``on_fold(model, seed, fold, fitted_model, fold_predictions)`` after each fit.
    on_epoch : callable, optional
        ``on_epoch(model, seed, fold, epoch, logs)`` for models whose ``fit`` reports epochs.
    """
    folds = list(folds)
    seeds = list(seeds)
    stochastic = set(stochastic)
    unknown = stochastic - set(models)
    if unknown:
        raise ValueError(f"stochastic names {sorted(unknown)} are not among the models {sorted(models)}")
    parts, fold_rows = [], []
    fit_seconds: dict[str, float] = {}
    last_models: dict[tuple[str, int], Forecaster] = {}
    jobs = [(name, seed) for name in models for seed in (seeds if name in stochastic else [0])]
    bar = tqdm(total=len(jobs) * len(folds), desc="walk-forward", unit="fit", disable=not progress, leave=False)
    for fold in folds:
        train, test = fold.split(dataset)
        fold_rows.append(fold.describe(dataset))
        for name, seed in jobs:
            model, part, seconds = _fit_and_forecast(models[name](seed), train, test, name=name, seed=seed,
                                                     fold=fold.number, on_epoch=on_epoch)
            fit_seconds[name] = fit_seconds.get(name, 0.0) + seconds
            parts.append(part)
            last_models[(name, seed)] = model
            if on_fold is not None:
                on_fold(name, seed, fold.number, model, part)
            bar.update(1)
    bar.close()
    return _evaluation(parts, fold_rows, fit_seconds, last_models, target=dataset.target)


def _fit_and_forecast(
    model: Forecaster, train: WindowedDataset, test: WindowedDataset, *, name: str, seed: int, fold: int,
    on_epoch: EpochHook | None,
) -> tuple[Forecaster, pd.DataFrame, float]:
    """Fit ``model`` on a fold's training windows and forecast its evaluation windows; returns the
    fitted model, its predictions rows and the seconds spent fitting and forecasting."""
    t0 = time.perf_counter()
    kwargs = {}
    if on_epoch is not None and hasattr(model, "history_"):
        kwargs["on_epoch_end"] = lambda e, logs: on_epoch(name, seed, fold, e, logs)
    model.fit(train, **kwargs)
    pred = model.predict_dataset(test)
    seconds = time.perf_counter() - t0
    part = pd.DataFrame({
        "timestamp": test.index, "fold": fold, "seed": seed, "model": name,
        "predicted": pred.astype("float64"), "actual": test.y.astype("float64"),
    })
    return model, part, seconds


def _evaluation(parts: list[pd.DataFrame], fold_rows: list[dict], fit_seconds: dict[str, float],
                last_models: dict[tuple[str, int], Forecaster], *, target: str) -> FoldEvaluation:
    """The pooled predictions and their metrics per fold, per seed and over seeds."""
    predictions = pd.concat(parts, ignore_index=True)
    overall = overall_metrics(predictions, target=target)
    return FoldEvaluation(
        predictions=predictions,
        folds=pd.DataFrame(fold_rows),
        fold_metrics=fold_metrics(predictions, target=target),
        overall=overall,
        summary=seed_summary(overall),
        fit_seconds={k: float(np.round(v, 3)) for k, v in fit_seconds.items()},
        last_models=last_models,
    )
