"""Windows, targets, splits, embargoes and the leakage-proof scaler."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from research.models.datasets import (
    Fold,
    LeakageError,
    Scaler,
    check_embargo,
    chronological_split,
    forward_target,
    make_windows,
    walk_forward_folds,
)

from .conftest import LOOKBACK


def test_windows_have_shape_order_and_only_past_rows(frame):
    feats, close = frame
    target = forward_target(close, horizon=3)
    ds = make_windows(feats, target, lookback=LOOKBACK, horizon=3)
    # warm-up (5 NaN rows) and the last 3 unknown targets are excluded
    assert ds.X.shape == (len(feats) - 5 - LOOKBACK + 1 - 3, LOOKBACK, 3)
    assert ds.X.dtype == np.float32 and ds.y.dtype == np.float32
    assert ds.index.is_monotonic_increasing and ds.index.is_unique
    for i in (0, 17, len(ds) - 1):
        t = ds.rows[i]
        expected = feats.iloc[t - LOOKBACK + 1 : t + 1].to_numpy(dtype="float32")
        np.testing.assert_array_equal(ds.X[i], expected)  # rows t-T+1 .. t, nothing after t
        assert ds.index[i] == feats.index[t]
        assert ds.y[i] == pytest.approx(close.iloc[t + 3] / close.iloc[t] - 1, rel=1e-5)
        assert ds.target_end[i] == feats.index[t + 3]
        # past_target at the last step: the return realised from t-3 to t (known at t)
        assert ds.past_target[i, -1] == pytest.approx(close.iloc[t] / close.iloc[t - 3] - 1, rel=1e-5)


def test_direction_target_and_gaps_break_windows(frame):
    feats, close = frame
    d = forward_target(close, horizon=1, kind="direction")
    assert set(d.dropna().unique()) <= {0.0, 1.0} and np.isnan(d.iloc[-1])
    holed = feats.copy()
    holed.iloc[300] = np.nan
    ds = make_windows(holed, d, lookback=LOOKBACK, horizon=1, kind="direction")
    assert not np.isnan(ds.X).any()
    assert not ((ds.rows >= 300) & (ds.rows < 300 + LOOKBACK)).any()  # no window spans the hole


def test_inf_and_too_short_frames_are_refused(frame):
    feats, close = frame
    bad = feats.copy()
    bad.iloc[50, 1] = np.inf
    with pytest.raises(ValueError, match="Inf in columns \\['noise_a'\\]"):
        make_windows(bad, forward_target(close), lookback=LOOKBACK, horizon=1)
    with pytest.raises(ValueError, match="no complete window: lookback 20"):
        make_windows(feats.iloc[:22], forward_target(close.iloc[:22]), lookback=LOOKBACK, horizon=1)


@pytest.mark.parametrize("horizon", [1, 5])
@pytest.mark.parametrize("mode", ["expanding", "rolling"])
def test_walk_forward_folds_hold_the_embargo(frame, horizon, mode):
    feats, close = frame
    ds = make_windows(feats, forward_target(close, horizon=horizon), lookback=LOOKBACK, horizon=horizon)
    folds = walk_forward_folds(len(ds), n_folds=4, test_size=60, embargo=horizon, mode=mode, train_size=200)
    tested = []
    for k, fold in enumerate(folds):
        train, test = fold.split(ds)
        assert len(test) == 60 and len(train) > 0
        # the last training target ends strictly before the first evaluation bar
        assert train.target_end[-1] < test.index[0]
        assert train.rows[-1] + horizon < test.rows[0]
        assert train.eval_start == test.index[0]
        if mode == "rolling":
            assert len(train) == 200
        else:
            assert fold.train.start == 0 and (k == 0 or len(train) > 200)
        tested.extend(test.rows)
    assert tested == sorted(tested) and len(set(tested)) == len(tested)  # blocks in order, no overlap
    assert tested[-1] == ds.rows[-1]


def test_a_fold_without_embargo_is_refused(dataset):
    with pytest.raises(LeakageError, match="embargo >= horizon"):
        Fold(0, slice(0, 300), slice(300, 360), embargo=0).split(dataset)
    train, test = dataset.subset(slice(0, 300)), dataset.subset(slice(301, 360))
    check_embargo(train, test)  # one window apart is enough for a 1-bar horizon


def test_split_errors_and_chronological_split():
    with pytest.raises(ValueError, match="too few"):
        walk_forward_folds(100, n_folds=3, test_size=40, embargo=1)
    tr, va, te = chronological_split(1000, val_fraction=0.1, test_fraction=0.2, embargo=5)
    assert (tr.stop, va.start, va.stop, te.start, te.stop) == (690, 695, 795, 800, 1000)


def test_scaler_fits_training_rows_only_and_refuses_the_evaluation_window(dataset, frame):
    feats, _ = frame
    fold = walk_forward_folds(len(dataset), n_folds=1, test_size=100, embargo=1)[0]
    train, test = fold.split(dataset)
    scaler = Scaler().fit(train)
    rows = feats.loc[scaler.fit_start : scaler.fit_end].to_numpy()
    np.testing.assert_allclose(scaler.mean_, rows.mean(axis=0), rtol=1e-5)  # every training row once
    assert scaler.fit_end == train.index[-1] < test.index[0]
    scaler.check_before(test.index[0])
    # the fitted state does not move when evaluation data change (no leakage through scaling)
    shocked = dataclasses.replace(dataset, X=dataset.X.copy())
    shocked.X[fold.test] += 1000.0
    assert Scaler().fit(fold.split(shocked)[0]) == scaler
    with pytest.raises(LeakageError, match="at or after the evaluation window"):
        Scaler().fit(dataset, eval_start=test.index[0])
    with pytest.raises(LeakageError):  # a target reaching the evaluation start is refused too
        Scaler().fit(train, eval_start=train.target_end[-1])
    assert Scaler.from_dict(scaler.to_dict()) == scaler


def test_subset_keeps_time_order(dataset):
    with pytest.raises(ValueError, match="time order"):
        dataset.subset(np.array([5, 3, 9]))
    assert isinstance(dataset.subset(np.array([1, 2, 8])).index, pd.DatetimeIndex)
