"""Sizers give the documented magnitudes from past data only; caps bound weights and gross exposure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from research.data.sources.synthetic import synthetic_ohlcv
from research.features.indicators import atr, returns, rolling_volatility
from research.strategies import Signals, apply_caps, get_sizer, position_magnitude


@pytest.fixture(scope="module")
def prices() -> dict[str, pd.DataFrame]:
    bars = {s: synthetic_ohlcv(s, bars=400, seed=3) for s in ("AAA", "BBB")}
    return {f: pd.DataFrame({s: b[f] for s, b in bars.items()}) for f in ("open", "high", "low", "close")}


@pytest.fixture(scope="module")
def signals(prices) -> Signals:
    d = pd.DataFrame(np.where(np.arange(400)[:, None] % 50 < 25, 1.0, 0.0).repeat(2, axis=1),
                     index=prices["close"].index, columns=prices["close"].columns)
    return Signals(d)


def test_all_in_and_fixed_fraction(signals, prices):
    assert (position_magnitude(signals, prices, "all_in") == 1.0).all().all()
    assert (position_magnitude(signals, prices, "fixed_fraction", {"fraction": 0.25}) == 0.25).all().all()
    with pytest.raises(ValueError, match="fraction must be positive"):
        position_magnitude(signals, prices, "fixed_fraction", {"fraction": 0})


def test_vol_target_is_target_over_realised_vol(signals, prices):
    m = position_magnitude(signals, prices, "vol_target", {"target": 0.10, "window": 20, "max_weight": 2.0})
    vol = rolling_volatility(returns(prices["close"]), window=20, periods_per_year=252)
    want = (0.10 / vol).clip(upper=2.0).fillna(0.0)
    pd.testing.assert_frame_equal(m, want)
    assert (m.iloc[:20] == 0).all().all()  # unknown volatility: no position


def test_atr_risk_formula(signals, prices):
    m = position_magnitude(signals, prices, "atr_risk", {"risk": 0.01, "window": 14, "multiple": 2.0, "max_weight": 5.0})
    a = atr(prices["high"], prices["low"], prices["close"], window=14)
    want = (0.01 * prices["close"] / (2.0 * a)).clip(upper=5.0).fillna(0.0)
    pd.testing.assert_frame_equal(m, want)


def test_kelly_is_capped_and_uses_the_strategy_returns(signals, prices):
    m = position_magnitude(signals, prices, "kelly", {"window": 60, "fraction": 0.5, "cap": 0.8})
    assert ((m >= 0) & (m <= 0.8)).all().all()
    strat = signals.direction.shift(1) * returns(prices["close"])
    t = 200
    window = strat.iloc[t - 59: t + 1, 0]
    want = min(max(0.5 * window.mean() / window.var(ddof=1), 0.0), 0.8)
    assert m.iloc[t, 0] == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("name", ["vol_target", "atr_risk", "kelly"])
def test_sizers_never_look_ahead(signals, prices, name):
    full = position_magnitude(signals, prices, name)
    cut = 250
    short = {k: v.iloc[: cut + 1] for k, v in prices.items()}
    sig = Signals(signals.direction.iloc[: cut + 1])
    pd.testing.assert_frame_equal(position_magnitude(sig, short, name), full.iloc[: cut + 1])


def test_caps_bound_each_weight_then_the_gross():
    w = pd.DataFrame({"A": [0.8, -1.5, 0.0], "B": [0.8, 0.5, 0.0], "C": [0.4, 0.0, 0.0]})
    capped = apply_caps(w, max_position=1.0, max_gross=1.0)
    assert capped.abs().max().max() <= 1.0
    np.testing.assert_allclose(capped.abs().sum(axis=1), [1.0, 1.0, 0.0])
    np.testing.assert_allclose(capped.iloc[0], [0.4, 0.4, 0.2])
    np.testing.assert_allclose(capped.iloc[1], [-2 / 3, 1 / 3, 0.0])
    pd.testing.assert_frame_equal(apply_caps(w), w)


def test_unknown_sizer_and_misaligned_prices(signals, prices):
    with pytest.raises(ValueError, match="unknown sizer"):
        get_sizer("martingale")
    bad = {**prices, "close": prices["close"].iloc[:-1]}
    with pytest.raises(ValueError, match="aligned"):
        position_magnitude(signals, bad, "vol_target")
