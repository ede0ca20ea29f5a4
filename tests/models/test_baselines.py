"""Baselines: values by hand, the shared predict path, persistence and refusals."""

from __future__ import annotations

import numpy as np
import pytest

from research.config import get_settings
from research.models.base import (
    FeatureMismatchError,
    IncompleteFeaturesError,
    NotEnoughHistoryError,
    TrainingError,
)
from research.models.baselines import (
    MovingAverageForecaster,
    NaiveForecaster,
    RidgeForecaster,
    load_baseline,
    make_baseline,
)
from research.models.datasets import walk_forward_folds
from research.models.evaluate import forecast_metrics

from .conftest import LOOKBACK


def _split(dataset):
    return walk_forward_folds(len(dataset), n_folds=1, test_size=150, embargo=1)[0].split(dataset)


def test_naive_variants(dataset):
    train, test = _split(dataset)
    np.testing.assert_array_equal(NaiveForecaster(lookback=LOOKBACK).fit(train).predict_dataset(test), 0.0)
    drift = NaiveForecaster(lookback=LOOKBACK, strategy="mean").fit(train).predict_dataset(test)
    np.testing.assert_allclose(drift, train.y.astype("float64").mean())


def test_moving_average_is_the_mean_of_realised_targets(frame, dataset):
    feats, close = frame
    train, test = _split(dataset)
    ma = MovingAverageForecaster(lookback=LOOKBACK, window=5).fit(train)
    pred = ma.predict_dataset(test)
    t = test.rows[10]
    realised = close.pct_change().iloc[t - 4 : t + 1]  # returns known at t
    assert pred[10] == pytest.approx(realised.mean(), rel=1e-5)
    via_frame = ma.predict(feats, close=close)
    assert via_frame.loc[test.index[10]] == pytest.approx(pred[10], rel=1e-6)
    with pytest.raises(ValueError, match="pass close"):
        ma.predict(feats)


def test_ridge_reads_the_planted_signal_and_beats_naive(dataset):
    train, test = _split(dataset)
    ridge = RidgeForecaster(lookback=LOOKBACK, alpha=1.0).fit(train)
    naive = NaiveForecaster(lookback=LOOKBACK).fit(train)
    r = forecast_metrics(test.y, ridge.predict_dataset(test))
    n = forecast_metrics(test.y, naive.predict_dataset(test))
    assert r["rmse"] < 0.8 * n["rmse"] and r["ic"] > 0.8


def test_predict_frame_matches_the_dataset_path(frame, dataset):
    feats, _ = frame
    train, test = _split(dataset)
    ridge = RidgeForecaster(lookback=LOOKBACK, lags=3).fit(train)
    series = ridge.predict(feats)
    np.testing.assert_allclose(series.loc[test.index].to_numpy(), ridge.predict_dataset(test), rtol=1e-6)
    assert series.index[-1] == feats.index[-1]  # forecasts up to the last bar (target unknown)


def test_feature_and_history_checks(frame, dataset):
    feats, _ = frame
    model = RidgeForecaster(lookback=LOOKBACK).fit(dataset)
    with pytest.raises(FeatureMismatchError, match="different order"):
        model.predict(feats[["noise_a", "hint", "noise_b"]])
    with pytest.raises(FeatureMismatchError, match="missing \\['noise_b'\\], unexpected \\['other'\\]"):
        model.predict(feats.rename(columns={"noise_b": "other"}))
    with pytest.raises(NotEnoughHistoryError, match="at least 20 consecutive complete feature rows.*has 12 rows"):
        model.predict(feats.iloc[-12:])
    bad = dataset.subset(slice(0, 100))
    bad.X[3, 2, 1] = np.nan
    with pytest.raises(TrainingError, match="1 NaN/Inf values in X"):
        RidgeForecaster(lookback=LOOKBACK).fit(bad)


def test_save_and_load_within_the_store_only(dataset, tmp_path):
    model = make_baseline("ridge", lookback=LOOKBACK, alpha=2.0).fit(dataset)
    path = model.save(get_settings().artifact_root / "tests" / "ridge.json")
    again = load_baseline(path)
    np.testing.assert_array_equal(again.predict_dataset(dataset), model.predict_dataset(dataset))
    outside = model.save(tmp_path / "ridge.json")
    with pytest.raises(PermissionError, match="models load only from the workbench's stores"):
        load_baseline(outside)
    with pytest.raises(ValueError, match="unknown baseline"):
        make_baseline("arima", lookback=LOOKBACK)


def test_nan_in_the_last_feature_row_is_an_error_not_a_shorter_forecast(frame, dataset):
    """A NaN in the last row used to end the forecasts one bar early without a word."""
    feats, _ = frame
    model = RidgeForecaster(lookback=LOOKBACK).fit(dataset)
    assert model.predict(feats).attrs["skipped"] == []
    broken = feats.copy()
    broken.iloc[-1, 1] = np.nan
    with pytest.raises(IncompleteFeaturesError, match=r"1 feature row\(s\) after the warm-up hold NaN .*columns "
                                                      r"\['noise_a'\].*\(the last bar among them\)"):
        model.predict(broken)
    skipped = model.predict(broken, incomplete="skip")
    assert skipped.index[-1] == feats.index[-2] and skipped.attrs["skipped"] == [str(feats.index[-1])]
    mid = feats.copy()
    mid.iloc[-50, 0] = np.nan  # one row inside: LOOKBACK windows lose it
    with pytest.raises(IncompleteFeaturesError, match=f"{LOOKBACK} bar\\(s\\) get no forecast"):
        model.predict(mid)
    assert len(model.predict(mid, incomplete="skip").attrs["skipped"]) == LOOKBACK
    with pytest.raises(ValueError, match="incomplete must be one of"):
        model.predict(feats, incomplete="drop")
