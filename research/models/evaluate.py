"""Out-of-sample forecast metrics: pure functions on predictions.

Predictions table (the contract shared with tracking and ``research.viz.models``)::

                    timestamp  fold  seed   model  predicted    actual
    0 2016-01-04 00:00:00+00:00     0     0    lstm   0.000412 -0.015304
    1 2016-01-04 00:00:00+00:00     0     0   naive   0.000000 -0.015304

``timestamp`` is the bar ``t`` the forecast was made at; ``actual`` is the realised target
from ``t`` to ``t + h``. Deterministic baselines carry ``seed`` 0 only.

Metrics
-------
``rmse``, ``mae``
    Of ``predicted - actual`` (lower is better).
``directional_accuracy``
    Share of forecasts whose direction matches: a return forecast counts as "up" when it is
    ``> 0`` (so the zero forecast of the random walk always says "not up"); a probability
    forecast when it is ``> 0.5``. Higher is better.
``ic``, ``rank_ic``
    Pearson and Spearman (rank) correlation of predicted with actual. NaN when either side is
    constant (the naive forecasts): :func:`nan_reasons` says so.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "METRICS",
    "HIGHER_IS_BETTER",
    "forecast_metrics",
    "nan_reasons",
    "fold_metrics",
    "overall_metrics",
    "seed_summary",
    "comparison_table",
    "beats_baseline",
    "rolling_directional_accuracy",
]

METRICS = ("rmse", "mae", "directional_accuracy", "ic", "rank_ic")
HIGHER_IS_BETTER = frozenset({"directional_accuracy", "ic", "rank_ic"})


def _arrays(y_true: object, y_pred: object) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(y_true, dtype="float64").ravel()
    p = np.asarray(y_pred, dtype="float64").ravel()
    if a.shape != p.shape:
        raise ValueError(f"actual and predicted must have the same length ({a.size} vs {p.size})")
    keep = np.isfinite(a) & np.isfinite(p)
    return a[keep], p[keep]


def _corr(a: np.ndarray, p: np.ndarray, *, rank: bool) -> float:
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(p) == 0:
        return float("nan")
    if rank:
        return float(stats.spearmanr(a, p).statistic)
    return float(np.corrcoef(a, p)[0, 1])


def forecast_metrics(y_true: object, y_pred: object, *, target: str = "return") -> dict[str, float]:
    """RMSE, MAE, directional accuracy, IC and rank IC of one set of forecasts.

    Parameters
    ----------
    y_true, y_pred : array-like
        Realised and predicted targets; pairs with a non-finite value are dropped (``n``
        counts the pairs used).
    target : {"return", "direction"}
        Return forecasts are "up" when ``> 0``; direction forecasts (probabilities) when
        ``> 0.5``.
    """
    a, p = _arrays(y_true, y_pred)
    if a.size == 0:
        return {**{m: float("nan") for m in METRICS}, "n": 0}
    err = p - a
    if target == "direction":
        hit = (p > 0.5) == (a > 0.5)
    else:
        hit = (p > 0) == (a > 0)
    return {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "directional_accuracy": float(np.mean(hit)),
        "ic": _corr(a, p, rank=False),
        "rank_ic": _corr(a, p, rank=True),
        "n": int(a.size),
    }


def nan_reasons(y_true: object, y_pred: object) -> dict[str, str]:
    """Why a metric of :func:`forecast_metrics` is NaN (metric -> reason); empty when none is."""
    a, p = _arrays(y_true, y_pred)
    if a.size == 0:
        return {m: "no finite forecast/actual pairs" for m in METRICS}
    out = {}
    if a.size < 3:
        out = {m: f"only {a.size} pairs" for m in ("ic", "rank_ic")}
    elif np.ptp(p) == 0:
        out = {m: "the forecast is constant (correlation undefined)" for m in ("ic", "rank_ic")}
    elif np.ptp(a) == 0:
        out = {m: "the actual target is constant" for m in ("ic", "rank_ic")}
    return out


def _grouped(predictions: pd.DataFrame, keys: list[str], target: str) -> pd.DataFrame:
    missing = {"predicted", "actual", *keys} - set(predictions.columns)
    if missing:
        raise ValueError(f"predictions need columns {sorted(missing)}")
    rows = []
    order = {m: i for i, m in enumerate(dict.fromkeys(predictions["model"]))}  # first appearance
    groups = sorted(predictions.groupby(keys, sort=True), key=lambda kv: order[kv[0][0]])
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(keys, key, strict=True)), **forecast_metrics(g["actual"], g["predicted"], target=target)})
    return pd.DataFrame(rows, columns=[*keys, *METRICS, "n"])


def fold_metrics(predictions: pd.DataFrame, *, target: str = "return") -> pd.DataFrame:
    """Metrics per ``(model, seed, fold)`` from a predictions table."""
    return _grouped(predictions, ["model", "seed", "fold"], target)


def overall_metrics(predictions: pd.DataFrame, *, target: str = "return") -> pd.DataFrame:
    """Metrics per ``(model, seed)`` over all folds' out-of-sample forecasts pooled."""
    return _grouped(predictions, ["model", "seed"], target)


def seed_summary(overall: pd.DataFrame, *, metrics: tuple[str, ...] = METRICS) -> pd.DataFrame:
    """Mean and standard deviation over seeds, one row per model.

    Columns ``<metric>`` (mean), ``<metric>_std`` (sample std; NaN with one seed) and
    ``seeds``. Rows keep the order models first appear in ``overall``.
    """
    order = list(dict.fromkeys(overall["model"]))
    g = overall.groupby("model", sort=False)
    out = pd.DataFrame(index=pd.Index(order, name="model"))
    for m in metrics:
        out[m] = g[m].mean().reindex(order)
        out[f"{m}_std"] = g[m].std(ddof=1).reindex(order)
    out["seeds"] = g["seed"].nunique().reindex(order)
    return out


DIGITS = {"rmse": 6, "mae": 6}


def comparison_table(summary: pd.DataFrame, *, metrics: tuple[str, ...] = METRICS, digits: int = 4) -> pd.DataFrame:
    """Model x metric strings ``"mean ± std"`` (just the mean where there is one seed).

    Error metrics of daily returns differ in the fourth significant digit, so ``rmse`` and
    ``mae`` get 6 decimals; the others ``digits``.
    """
    def cell(mean: float, std: float, d: int) -> str:
        if not np.isfinite(mean):
            return "n/a"
        return f"{mean:.{d}f}" if not np.isfinite(std) else f"{mean:.{d}f} ± {std:.{d}f}"

    return pd.DataFrame(
        {m: [cell(summary.at[i, m], summary.at[i, f"{m}_std"], DIGITS.get(m, digits)) for i in summary.index]
         for m in metrics},
        index=summary.index,
    )


def beats_baseline(value: float, baseline: float, *, metric: str) -> bool:
    """Whether ``value`` is strictly better than ``baseline`` on ``metric``.

    A NaN on either side is never a win (a correlation against a constant forecast is
    undefined, not beaten).
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")
    if not (np.isfinite(value) and np.isfinite(baseline)):
        return False
    return bool(value > baseline) if metric in HIGHER_IS_BETTER else bool(value < baseline)


def rolling_directional_accuracy(
    actual: pd.Series, predicted: pd.Series, *, window: int = 63, target: str = "return"
) -> pd.Series:
    """Directional accuracy over a trailing window of forecasts (NaN until it is full)."""
    if not actual.index.equals(predicted.index):
        raise ValueError("actual and predicted must share an index")
    thr = 0.5 if target == "direction" else 0.0
    hit = ((predicted > thr) == (actual > thr)).astype("float64").where(actual.notna() & predicted.notna())
    return hit.rolling(window, min_periods=window).mean().rename("directional_accuracy")
