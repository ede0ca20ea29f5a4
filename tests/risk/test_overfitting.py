"""Deflated Sharpe ratio against the paper's worked example; PBO on constructed cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from research.risk import overfitting as o


def test_expected_max_sharpe_and_dsr_match_the_papers_example():
    # Bailey & Lopez de Prado (2014), section 4: 100 trials, annualised Sharpe variance 1/2,
    # best annualised Sharpe 2.5 over 1,250 days, skew -3, kurtosis 10 -> SR0 = 0.1132, DSR = 0.9004.
    sr0 = o.expected_max_sharpe(100, sharpe_variance=0.5 / 250)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    dsr = o.deflated_sharpe(2.5 / math.sqrt(250), n_obs=1250, n_trials=100, sharpe_variance=0.5 / 250, skew=-3, kurtosis=10)
    assert dsr == pytest.approx(0.9004, abs=5e-4)


def test_dsr_by_hand_formula():
    sr, t, n, v, g3, g4 = 0.08, 500, 20, 0.001, -0.5, 5.0
    z1, z2 = norm.ppf(1 - 1 / n), norm.ppf(1 - 1 / (n * math.e))
    sr0 = math.sqrt(v) * ((1 - 0.5772156649015329) * z1 + 0.5772156649015329 * z2)
    hand = norm.cdf((sr - sr0) * math.sqrt(t - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2))
    assert o.deflated_sharpe(sr, n_obs=t, n_trials=n, sharpe_variance=v, skew=g3, kurtosis=g4) == pytest.approx(hand)
    assert o.probabilistic_sharpe_ratio(0.0, n_obs=100) == pytest.approx(0.5)


def test_dsr_from_returns_and_trials():
    rng = np.random.default_rng(3)
    trials = pd.DataFrame(rng.normal(0.0, 0.01, (750, 200)))
    best = trials[trials.mean().div(trials.std()).idxmax()]
    res = o.deflated_sharpe_ratio(best, trial_returns=trials)
    assert res.n_trials == 200 and res.n_obs == 750
    sharpes = trials.mean() / trials.std()
    assert res.sharpe == pytest.approx(sharpes.max())
    assert res.sharpe_variance == pytest.approx(sharpes.var(ddof=1))
    assert res.dsr < 0.95  # the best of 200 noise trials is not significant after deflation
    naive = o.probabilistic_sharpe_ratio(res.sharpe, n_obs=750, skew=res.skew, kurtosis=res.kurtosis)
    assert naive > 0.99  # ... although undeflated it looks significant
    same = o.deflated_sharpe_ratio(best, trial_sharpes=sharpes.to_numpy())
    assert same.dsr == pytest.approx(res.dsr)
    fewer = o.deflated_sharpe_ratio(best, n_trials=5, sharpe_variance=res.sharpe_variance)
    assert fewer.dsr > res.dsr  # fewer trials, less deflation


def test_pbo_by_hand_on_two_splits():
    # 4 bars, 3 trials, S=2 blocks of 2 bars, metric = mean.
    m = np.array([[1.0, 0.0, 0.5], [1.0, 0.0, 0.5], [-1.0, 1.0, 0.0], [-1.0, 1.0, 0.0]])
    res = o.probability_of_backtest_overfitting(m, n_splits=2, metric="mean")
    # combo 1: IS = block 0 -> best trial 0 (mean 1); OOS means (-1, 1, 0) -> rank 1 of 3 -> w = 1/4
    # combo 2: IS = block 1 -> best trial 1; OOS means (1, 0, 0.5) -> rank 1 -> w = 1/4
    np.testing.assert_allclose(res.logits, [math.log(1 / 3)] * 2)
    assert res.pbo == 1.0 and res.n_combinations == 2 and res.prob_oos_loss == 0.5
    np.testing.assert_allclose(res.oos_performance, [-1.0, 0.0])


def test_pbo_pure_noise_is_near_one_half():
    rng = np.random.default_rng(7)
    pbos = [
        o.probability_of_backtest_overfitting(rng.normal(0, 0.01, (1000, 40)), n_splits=10).pbo
        for _ in range(4)
    ]
    assert 0.3 < np.mean(pbos) < 0.7


def test_pbo_one_good_strategy_among_noise_is_low():
    rng = np.random.default_rng(8)
    m = rng.normal(0, 0.01, (1000, 40))
    m[:, 17] += 0.004  # per-bar Sharpe about 0.4
    res = o.probability_of_backtest_overfitting(m, n_splits=16)
    assert res.n_combinations == 12870
    assert res.pbo < 0.05
    assert np.median(res.logits) > 2


def test_pbo_fast_path_matches_callable_metric():
    rng = np.random.default_rng(9)
    m = rng.normal(0.0005, 0.01, (240, 12))

    def sharpe(x):
        return x.mean(axis=0) / x.std(axis=0, ddof=1)

    fast = o.probability_of_backtest_overfitting(m, n_splits=8)
    slow = o.probability_of_backtest_overfitting(m, n_splits=8, metric=sharpe)
    np.testing.assert_allclose(fast.logits, slow.logits)
    np.testing.assert_allclose(fast.oos_performance, slow.oos_performance)
    sub = o.probability_of_backtest_overfitting(m, n_splits=8, max_combinations=20)
    assert sub.n_combinations == 20


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"n_splits": 3}, "even number"), ({"n_splits": 200}, "at least 2 bars per block"), ({"metric": "cagr"}, "metric must be")],
)
def test_pbo_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        o.probability_of_backtest_overfitting(np.zeros((100, 3)) + np.arange(3), **kwargs)
    with pytest.raises(ValueError, match=">= 2 trials"):
        o.probability_of_backtest_overfitting(np.zeros((100, 1)))
