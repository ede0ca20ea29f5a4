"""Metrics by hand on small series; seed summaries and comparisons."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from research.models.evaluate import (
    beats_baseline,
    comparison_table,
    fold_metrics,
    forecast_metrics,
    nan_reasons,
    overall_metrics,
    rolling_directional_accuracy,
    seed_summary,
)


def test_forecast_metrics_by_hand():
    actual = np.array([0.01, -0.02, 0.03, -0.01])
    pred = np.array([0.02, -0.01, -0.01, 0.0])
    m = forecast_metrics(actual, pred)
    err = pred - actual
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean(err**2)))
    assert m["mae"] == pytest.approx(np.mean(np.abs(err)))
    # hits: up/up, down/down, down vs up (miss), "not up" (0) vs down (hit)
    assert m["directional_accuracy"] == pytest.approx(0.75)
    assert m["ic"] == pytest.approx(np.corrcoef(actual, pred)[0, 1])
    ranks_a, ranks_p = pd.Series(actual).rank(), pd.Series(pred).rank()
    assert m["rank_ic"] == pytest.approx(np.corrcoef(ranks_a, ranks_p)[0, 1])
    assert m["n"] == 4


def test_direction_metrics_and_nan_pairs_dropped():
    m = forecast_metrics([1, 0, 1, np.nan], [0.9, 0.6, 0.4, 0.5], target="direction")
    assert m["n"] == 3 and m["directional_accuracy"] == pytest.approx(1 / 3)


def test_constant_forecast_gives_nan_ic_with_a_reason():
    m = forecast_metrics([0.01, -0.01, 0.02], [0.0, 0.0, 0.0])
    assert np.isnan(m["ic"]) and np.isnan(m["rank_ic"])
    assert m["directional_accuracy"] == pytest.approx(1 / 3)  # zero forecast = "not up"
    assert "constant" in nan_reasons([0.01, -0.01, 0.02], [0.0, 0.0, 0.0])["ic"]
    assert nan_reasons([0.01, -0.01, 0.02], [0.1, 0.0, 0.2]) == {}


def _predictions() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    idx = pd.date_range("2020-01-01", periods=40, tz="UTC")
    actual = rng.normal(0, 0.01, 40)
    rows = []
    for model, seeds in (("lstm", (0, 1, 2)), ("naive", (0,))):
        for seed in seeds:
            pred = actual + rng.normal(0, 0.01, 40) if model == "lstm" else np.zeros(40)
            rows.append(pd.DataFrame({"timestamp": idx, "fold": np.repeat([0, 1], 20), "seed": seed,
                                      "model": model, "predicted": pred, "actual": actual}))
    return pd.concat(rows, ignore_index=True)


def test_fold_overall_and_seed_summary():
    preds = _predictions()
    folds = fold_metrics(preds)
    assert len(folds) == 2 * 3 + 2 and list(folds["model"].unique()) == ["lstm", "naive"]
    overall = overall_metrics(preds)
    lstm = overall[overall["model"] == "lstm"]
    one = preds[(preds["model"] == "lstm") & (preds["seed"] == 1)]
    assert lstm.loc[lstm["seed"] == 1, "rmse"].item() == pytest.approx(forecast_metrics(one["actual"], one["predicted"])["rmse"])
    summary = seed_summary(overall)
    assert summary.at["lstm", "rmse"] == pytest.approx(lstm["rmse"].mean())
    assert summary.at["lstm", "rmse_std"] == pytest.approx(lstm["rmse"].std(ddof=1))
    assert summary.at["lstm", "seeds"] == 3 and np.isnan(summary.at["naive", "rmse_std"])
    table = comparison_table(summary)
    assert " ± " in table.at["lstm", "rmse"] and " ± " not in table.at["naive", "rmse"]
    assert table.at["naive", "ic"] == "n/a"


def test_beats_baseline_directions():
    assert beats_baseline(0.9, 1.0, metric="rmse") and not beats_baseline(1.0, 1.0, metric="rmse")
    assert beats_baseline(0.55, 0.54, metric="directional_accuracy")
    assert not beats_baseline(0.53, 0.54, metric="directional_accuracy")
    assert not beats_baseline(0.1, float("nan"), metric="ic")
    with pytest.raises(ValueError, match="unknown metric"):
        beats_baseline(1, 2, metric="sharpe")


def test_rolling_directional_accuracy():
    idx = pd.date_range("2020-01-01", periods=6, tz="UTC")
    actual = pd.Series([1, -1, 1, 1, -1, -1.0], index=idx)
    pred = pd.Series([1, 1, 1, -1, -1, -1.0], index=idx)
    acc = rolling_directional_accuracy(actual, pred, window=3)
    assert acc.isna().sum() == 2
    # hits: 1 0 1 0 1 1
    np.testing.assert_allclose(acc.iloc[2:], [2 / 3, 1 / 3, 2 / 3, 2 / 3])
