"""The LSTM forecaster: determinism, refusals, persistence, and that it learns a planted signal."""

from __future__ import annotations

import numpy as np
import pytest

from research.config import get_settings
from research.models.base import FeatureMismatchError, NotEnoughHistoryError, TrainingError
from research.models.datasets import walk_forward_folds
from research.models.evaluate import forecast_metrics
from research.models.lstm import LSTMForecaster, LSTMParams

from .conftest import TINY


def _split(dataset):
    return walk_forward_folds(len(dataset), n_folds=1, test_size=150, embargo=1)[0].split(dataset)


def test_same_seed_same_weights_other_seed_other_weights(dataset):
    train, _ = _split(dataset)
    a = LSTMForecaster(**TINY, seed=7).fit(train)
    other = LSTMForecaster(**TINY, seed=8).fit(train)  # the shared trainer is reset between fits
    b = LSTMForecaster(**TINY, seed=7).fit(train)
    assert a.weights_sha256() == b.weights_sha256()
    assert a.weights_sha256() != other.weights_sha256()
    assert a.history_ == b.history_
    np.testing.assert_array_equal(a.predict_dataset(train), b.predict_dataset(train))


def test_learns_the_planted_signal_out_of_sample(dataset):
    train, test = _split(dataset)
    model = LSTMForecaster(**{**TINY, "epochs": 12, "patience": 3, "lr": 5e-3}, seed=1).fit(train)
    m = forecast_metrics(test.y, model.predict_dataset(test))
    zero = forecast_metrics(test.y, np.zeros(len(test)))
    assert m["ic"] > 0.5 and m["rmse"] < zero["rmse"]
    assert model.scaler.fit_end < test.index[0]
    assert set(model.history_) >= {"loss", "val_loss"}


def test_nan_and_inf_inputs_are_refused_before_training(dataset):
    bad = dataset.subset(slice(0, 200))
    bad.X[5, 0, 0] = np.inf
    bad.y[9] = np.nan
    model = LSTMForecaster(**TINY)
    with pytest.raises(TrainingError, match="1 NaN/Inf values in X .*1 in y"):
        model.fit(bad)
    assert model.model is None and not model.fitted


def test_nan_loss_stops_training_with_a_clear_error(dataset):
    train, _ = _split(dataset)
    model = LSTMForecaster(**{**TINY, "lr": 1e30, "epochs": 3}, seed=0)
    with pytest.raises(TrainingError, match="loss became NaN/Inf at epoch 1 .*lr=1e\\+30"):
        model.fit(train)
    assert not model.fitted


def test_predict_needs_history_and_the_training_features(frame, dataset):
    feats, _ = frame
    model = LSTMForecaster(**TINY, seed=0).fit(dataset)
    with pytest.raises(NotEnoughHistoryError, match="lstm needs at least 20 consecutive complete feature rows \\(lookback 20\\)"):
        model.predict(feats.iloc[-15:])
    with pytest.raises(FeatureMismatchError, match="different order"):
        model.predict(feats[["noise_b", "noise_a", "hint"]])
    with pytest.raises(FeatureMismatchError, match="missing \\['hint'\\]"):
        model.predict(feats.rename(columns={"hint": "clue"}))
    out = model.predict(feats.iloc[-40:])
    assert len(out) == 21 and out.index[-1] == feats.index[-1]


def test_save_load_round_trip_from_the_store_only(frame, dataset, tmp_path):
    feats, _ = frame
    model = LSTMForecaster(**TINY, seed=3).fit(dataset)
    path = model.save(get_settings().artifact_root / "tests" / "lstm.keras")
    again = LSTMForecaster.load(path)
    assert again.weights_sha256() == model.weights_sha256()
    assert again.scaler == model.scaler and again.feature_names == model.feature_names
    np.testing.assert_allclose(again.predict(feats).to_numpy(), model.predict(feats).to_numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="native .keras format"):
        model.save(get_settings().artifact_root / "tests" / "lstm.h5")
    outside = model.save(tmp_path / "lstm.keras")
    with pytest.raises(PermissionError, match="load only from the workbench's stores"):
        LSTMForecaster.load(outside)


def test_hyperparameters_are_validated():
    with pytest.raises(ValueError, match="units must be >= 1"):
        LSTMParams(units=0)
    with pytest.raises(ValueError, match="dropout"):
        LSTMParams(dropout=1.0)
    with pytest.raises(TypeError):
        LSTMForecaster(hidden=3)


def test_xla_is_opt_in_on_tensorflow_and_off_in_deterministic_mode():
    from research.models.lstm import _keras, _resolve_jit

    if _keras().backend.backend() != "tensorflow":
        pytest.skip("TensorFlow's XLA choice only")
    assert _resolve_jit("auto", deterministic=False) is False  # its own CPU kernels train faster here
    assert _resolve_jit(True, deterministic=False) is True
    assert _resolve_jit(True, deterministic=True) is False
