"""Rule strategies, the crossing rule with ties, look-ahead safety and the prediction strategy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from research.data.sources.synthetic import synthetic_close_matrix
from research.strategies import (
    Signals,
    bollinger_breakout,
    ma_crossover,
    moving_averages,
    prediction_signals,
    rsi_reversion,
    time_series_momentum,
)
from research.strategies._nb import cross_state_1d_nb, rolling_mean_1d_nb


@pytest.fixture(scope="module")
def close() -> pd.DataFrame:
    return synthetic_close_matrix(3, 600, seed=7)


def _cross(fast, slow, short=False):
    return cross_state_1d_nb(np.asarray(fast, float), np.asarray(slow, float), short).tolist()


def test_cross_through_a_tie_counts_and_a_touch_does_not():
    slow = [0, 0, 0, 0, 0, 0, 0, 0]
    #        below tie above tie above below tie below
    fast = [-1, 0, 1, 0, 1, -1, 0, -1]
    assert _cross(fast, slow) == [0, 0, 1, 1, 1, 0, 0, 0]
    assert _cross(fast, slow, short=True) == [0, 0, 1, 1, 1, -1, -1, -1]


def test_strict_neighbours_are_not_needed_and_nan_forgets_the_side():
    nan = np.nan
    # below, gap, above: the gap forgets "below", so no cross; then below, tie, tie, above crosses.
    fast = [-1, nan, 1, -1, 0, 0, 1]
    slow = [0, 0, 0, 0, 0, 0, 0]
    assert _cross(fast, slow) == [0, 0, 0, 0, 0, 0, 1]


def test_no_position_before_the_first_cross():
    assert _cross([1, 1, 1], [0, 0, 0]) == [0, 0, 0]


def test_rolling_mean_matches_pandas_and_waits_for_a_full_window():
    x = np.array([1.0, 2.0, np.nan, 4.0, 5.0, 6.0, 7.0])
    got = rolling_mean_1d_nb(x, 2)
    want = pd.Series(x).rolling(2, min_periods=2).mean().to_numpy()
    np.testing.assert_allclose(got, want, rtol=1e-14)
    assert np.isnan(got[:4]).tolist() == [True, False, True, True]


def test_ma_crossover_positions_follow_crosses(close):
    sig = ma_crossover(close, fast=5, slow=20)
    d = sig.direction
    assert d.shape == close.shape and set(np.unique(d)) <= {0.0, 1.0}
    f = moving_averages(close, window=5)
    s = moving_averages(close, window=20)
    up = ((f > s) & (f.shift() < s.shift())).fillna(False)
    # every strict one-bar cross above is an entry, and every entry is on a bar with fast > slow
    assert (sig.entries | ~up).all().all()
    assert ((f > s) | ~sig.entries).all().all()
    assert int(sig.entries.sum().sum()) == int(up.sum().sum())  # no exact ties in synthetic data
    assert sig.params == {"fast": 5, "slow": 20, "direction": "long"}
    both = ma_crossover(close, fast=5, slow=20, direction="both").direction
    assert set(np.unique(both)) == {-1.0, 0.0, 1.0}
    short = ma_crossover(close, fast=5, slow=20, direction="short").direction
    assert set(np.unique(short)) == {-1.0, 0.0}
    pd.testing.assert_frame_equal(short, both.clip(upper=0.0))


@pytest.mark.parametrize("bad", [{"fast": 20, "slow": 20}, {"fast": 0, "slow": 5}, {"fast": 2.5, "slow": 5}])
def test_ma_crossover_rejects_bad_windows(close, bad):
    with pytest.raises(ValueError, match="fast|slow"):
        ma_crossover(close, **bad)


STRATEGIES = [
    lambda c: ma_crossover(c, fast=10, slow=30, direction="both"),
    lambda c: rsi_reversion(c, window=14, direction="both"),
    lambda c: bollinger_breakout(c, window=20, k=1.5, direction="both"),
    lambda c: time_series_momentum(c, lookback=60, threshold=0.01, direction="both"),
]


@pytest.mark.parametrize("make", STRATEGIES)
def test_no_look_ahead_at_many_cut_points(close, make):
    full = make(close).direction
    rng = np.random.default_rng(0)
    for cut in (50, 120, 333, 480, 599):
        noisy = close.copy()
        noisy.iloc[cut + 1:] = noisy.iloc[cut + 1:] * rng.uniform(0.5, 1.5, noisy.iloc[cut + 1:].shape)
        part = make(noisy).direction
        pd.testing.assert_frame_equal(part.iloc[: cut + 1], full.iloc[: cut + 1])
        truncated = make(close.iloc[: cut + 1]).direction
        pd.testing.assert_frame_equal(truncated, full.iloc[: cut + 1])


def test_the_look_ahead_check_catches_a_leak(close):
    def leaky(c):
        return time_series_momentum(c.shift(-1).ffill(), lookback=5, direction="both")

    full = leaky(close).direction
    rng = np.random.default_rng(0)
    caught = 0
    for cut in range(100, 600, 25):
        noisy = close.copy()
        noisy.iloc[cut + 1:] = noisy.iloc[cut + 1:] * rng.uniform(0.5, 1.5, noisy.iloc[cut + 1:].shape)
        caught += not leaky(noisy).direction.iloc[: cut + 1].equals(full.iloc[: cut + 1])
    assert caught >= 10


@pytest.mark.parametrize("make", STRATEGIES)
def test_inputs_are_not_mutated(close, make):
    before = close.copy()
    make(close)
    pd.testing.assert_frame_equal(close, before)


def test_rsi_and_bollinger_states():
    x = pd.Series(np.r_[np.linspace(100, 80, 30), np.linspace(80, 100, 30)], name="X")
    sig = rsi_reversion(x, window=5, lower=30, upper=70, exit_level=50)
    d = sig.direction["X"]
    assert d.iloc[25] == 1.0  # oversold during the fall
    assert d.iloc[-1] == 0.0  # recovered above 50
    b = bollinger_breakout(pd.Series(np.r_[np.full(30, 100.0) + np.sin(np.arange(30)), np.linspace(101, 130, 10)], name="X"),
                           window=10, k=2.0)
    assert b.direction["X"].iloc[-1] == 1.0
    with pytest.raises(ValueError, match="lower"):
        rsi_reversion(x, lower=60, upper=70, exit_level=50)


def test_time_series_momentum_threshold():
    x = pd.Series([100.0, 101, 102, 101, 99, 98, 100], name="X")
    d = time_series_momentum(x, lookback=2, threshold=0.005, direction="both").direction["X"]
    # 2-bar returns: nan nan .02 0 -.0294 -.0297 .0101
    assert d.tolist() == [0.0, 0.0, 1.0, 0.0, -1.0, -1.0, 1.0]


def test_prediction_signals_thresholds_and_missing_values():
    p = pd.DataFrame({"A": [0.002, -0.003, np.nan, 0.0, 0.0004], "B": [0.6, 0.4, 0.55, 0.45, 0.5]})
    d = prediction_signals(p[["A"]], long_threshold=0.0, short_threshold=-0.001).direction["A"]
    assert d.tolist() == [1.0, -1.0, 0.0, 0.0, 1.0]
    probs = prediction_signals(p["B"], long_threshold=0.55, short_threshold=0.45).direction["B"]
    assert probs.tolist() == [1.0, -1.0, 0.0, 0.0, 0.0]
    long_only = prediction_signals(p["B"], long_threshold=0.5).direction["B"]
    assert long_only.tolist() == [1.0, 0.0, 1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="short_threshold"):
        prediction_signals(p["B"], long_threshold=0.4, short_threshold=0.6)


def test_signals_contract():
    idx = pd.RangeIndex(5)
    with pytest.raises(ValueError, match="-1, 0 or 1"):
        Signals(pd.DataFrame({"A": [0, 1, np.nan, 0, 0]}, index=idx))
    entries = pd.DataFrame({"A": [False, True, False, False, True]})
    exits = pd.DataFrame({"A": [False, False, False, True, False]})
    sig = Signals.from_entries_exits(entries, exits)
    assert sig.direction["A"].tolist() == [0.0, 1.0, 1.0, 0.0, 1.0]
    pd.testing.assert_frame_equal(sig.entries, entries)
    assert sig.exits["A"].tolist() == [False, False, False, True, False]
    both = Signals.from_entries_exits(entries, exits, short_entries=exits)
    assert both.direction["A"].tolist() == [0.0, 1.0, 1.0, -1.0, 1.0]
    assert both.short_entries["A"].tolist() == [False, False, False, True, False]
    assert both.short_exits["A"].tolist() == [False, False, False, False, True]
