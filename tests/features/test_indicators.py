"""Indicators against hand-computed values, grids, gaps and input handling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from research.data.sources.synthetic import synthetic_close_matrix, synthetic_ohlcv
from research.features import indicators as ind

P = pd.Series([10.0, 11.0, 12.0, 11.0, 13.0, 14.0, 13.0, 15.0], name="X")


def _loop_wilder(x: np.ndarray, n: int) -> np.ndarray:
    """Reference Wilder smoothing written as a plain loop (seed = mean of the first n values)."""
    out = np.full(len(x), np.nan)
    start = np.argmax(~np.isnan(x))
    out[start + n - 1] = np.mean(x[start:start + n])
    for i in range(start + n, len(x)):
        out[i] = (out[i - 1] * (n - 1) + x[i]) / n
    return out


def test_returns_simple_and_log_by_hand():
    r = ind.returns(P)
    assert np.isnan(r.iloc[0])
    assert r.iloc[1] == pytest.approx(0.1)
    assert r.iloc[3] == pytest.approx(11 / 12 - 1)
    r2 = ind.returns(P, periods=2, log=True)
    assert r2.iloc[:2].isna().all()
    assert r2.iloc[2] == pytest.approx(np.log(12 / 10))


def test_returns_never_fill_gaps_into_zero_moves():
    p = P.copy()
    p.iloc[4] = np.nan
    r = ind.returns(p)
    assert r.iloc[4:6].isna().all()  # into and out of the gap
    assert r.iloc[6] == pytest.approx(13 / 14 - 1)
    assert (r.dropna() != 0).all()


def test_sma_ema_by_hand():
    s = ind.sma(P, window=3)
    assert s.iloc[:2].isna().all()
    assert s.iloc[2] == pytest.approx(11.0)
    assert s.iloc[7] == pytest.approx((14 + 13 + 15) / 3)
    e = ind.ema(P, window=3)  # alpha = 0.5, seeded with SMA(3) = 11
    assert e.iloc[:2].isna().all()
    assert e.iloc[2] == pytest.approx(11.0)
    assert e.iloc[3] == pytest.approx(0.5 * 11 + 0.5 * 11)
    assert e.iloc[4] == pytest.approx(0.5 * 13 + 0.5 * 11)


def test_ema_matches_pandas_recursion_after_seed():
    c = synthetic_close_matrix(2, 300)
    e = ind.ema(c, window=10)
    seeded = c.copy()
    seeded.iloc[:9] = np.nan
    seeded.iloc[9] = c.iloc[:10].mean()
    ref = seeded.ewm(span=10, adjust=False).mean()
    ref.iloc[:9] = np.nan
    pd.testing.assert_frame_equal(e, ref, check_exact=False, rtol=1e-12)


def test_rsi_wilder_by_hand():
    r = ind.rsi(P, window=3)
    # changes: +1 +1 -1 +2 +1 -1 +2 ; seed over the first 3 changes
    g, lo = 2 / 3, 1 / 3
    assert r.iloc[:3].isna().all()
    assert r.iloc[3] == pytest.approx(100 * g / (g + lo))
    g, lo = (g * 2 + 2) / 3, (lo * 2 + 0) / 3
    assert r.iloc[4] == pytest.approx(100 - 100 / (1 + g / lo))


def test_rsi_matches_loop_reference_and_flat_is_50():
    c = synthetic_ohlcv("SYN0100", bars=400)["close"]
    d = c.diff().to_numpy()
    gain, loss = np.clip(d, 0, None), np.clip(-d, 0, None)
    ag, al = _loop_wilder(gain, 14), _loop_wilder(loss, 14)
    np.testing.assert_allclose(ind.rsi(c, window=14).to_numpy(), 100 * ag / (ag + al), rtol=1e-10)
    flat = ind.rsi(pd.Series(np.full(30, 5.0)), window=14)
    assert (flat.dropna() == 50.0).all() and flat.notna().sum() == 16
    up = ind.rsi(pd.Series(np.arange(1.0, 31.0)), window=14)
    assert (up.dropna() == 100.0).all()


def test_macd_and_warmup_lengths():
    c = synthetic_ohlcv("SYN0101", bars=200)["close"]
    m = ind.macd(c, fast=12, slow=26, signal=9)
    assert m.line.isna().sum() == 25 and m.signal.isna().sum() == 26 + 9 - 2
    pd.testing.assert_series_equal(m.line, ind.ema(c, window=12) - ind.ema(c, window=26))
    pd.testing.assert_series_equal(m.hist, m.line - m.signal)
    with pytest.raises(ValueError, match="fast < slow"):
        ind.macd(c, fast=26, slow=12)


def test_bollinger_by_hand():
    b = ind.bollinger(P, window=4, k=2.0)
    w = P.iloc[:4].to_numpy()
    sd = w.std(ddof=0)
    assert b.mid.iloc[3] == pytest.approx(w.mean())
    assert b.upper.iloc[3] == pytest.approx(w.mean() + 2 * sd)
    assert b.percent_b.iloc[3] == pytest.approx((11 - (w.mean() - 2 * sd)) / (4 * sd))
    assert np.isnan(ind.bollinger(pd.Series(np.ones(10)), window=4).percent_b.iloc[-1])


def test_true_range_and_atr_by_hand():
    h = pd.Series([10.0, 12.0, 11.0, 15.0, 14.0])
    lo = pd.Series([9.0, 10.0, 8.0, 12.0, 13.0])
    c = pd.Series([9.5, 11.0, 9.0, 14.0, 13.5])
    tr = ind.true_range(h, lo, c)
    assert np.isnan(tr.iloc[0])
    np.testing.assert_allclose(tr.iloc[1:], [2.5, 3.0, 6.0, 1.0])
    a = ind.atr(h, lo, c, window=2)
    assert a.iloc[:2].isna().all()
    assert a.iloc[2] == pytest.approx(2.75)
    assert a.iloc[3] == pytest.approx((2.75 + 6.0) / 2)


def test_volatility_momentum_roc_volume_obv():
    r = ind.returns(P)
    v = ind.rolling_volatility(r, window=3, periods_per_year=252)
    assert v.iloc[3] == pytest.approx(r.iloc[1:4].std(ddof=1) * np.sqrt(252))
    per_bar = ind.rolling_volatility(r, window=3, periods_per_year=None)
    assert per_bar.iloc[3] == pytest.approx(r.iloc[1:4].std(ddof=1))
    assert ind.momentum(P, window=2).iloc[2] == 2.0
    assert ind.roc(P, window=2).iloc[2] == pytest.approx(20.0)
    vol = pd.Series([100.0, 200.0, 300.0, 400.0])
    assert ind.volume_zscore(vol, window=3).iloc[3] == pytest.approx(1.0)
    o = ind.obv(pd.Series([1.0, 2.0, 2.0, 1.0, 3.0]), pd.Series([5.0, 10.0, 20.0, 30.0, 40.0]))
    np.testing.assert_allclose(o.to_numpy(), [np.nan, 10.0, 10.0, -20.0, 20.0])


def test_rolling_beta_recovers_a_planted_beta():
    rng = np.random.default_rng(0)
    idx = pd.date_range("2020-01-01", periods=300, freq="D")
    b = pd.Series(rng.normal(0, 0.01, 300), index=idx)
    r = pd.DataFrame({"A": 1.5 * b, "B": -0.5 * b + rng.normal(0, 1e-4, 300)}, index=idx)
    beta = ind.rolling_beta(r, b, window=50)
    assert beta.iloc[:49].isna().all().all()
    np.testing.assert_allclose(beta["A"].dropna(), 1.5, rtol=1e-9)
    np.testing.assert_allclose(beta["B"].dropna(), -0.5, atol=0.02)


def test_parameter_grid_columns():
    c = synthetic_close_matrix(3, 120)
    g = ind.sma(c, window=[5, 10])
    assert g.columns.names == ["sma_window", "symbol"]
    assert g.shape == (120, 6)
    pd.testing.assert_frame_equal(g[10], ind.sma(c, window=10), check_names=False)
    m = ind.macd(c, fast=[8, 12], slow=26, signal=[5, 9])
    assert m.hist.columns.names == ["macd_fast", "macd_signal", "symbol"]
    assert m.hist.shape[1] == 2 * 2 * 3
    one = ind.rsi(c["SYN0000"], window=[7, 14])
    assert list(one.columns) == [7, 14] and one.columns.name == "rsi_window"
    with pytest.raises(ValueError, match="empty parameter grid"):
        ind.sma(c, window=[])


def test_bad_inputs_have_clear_errors():
    c = synthetic_close_matrix(2, 50)
    with pytest.raises(ValueError, match="window must be an integer >= 1, got 0"):
        ind.sma(c, window=0)
    with pytest.raises(ValueError, match=r"volume must have the same index and columns as close \(close: 50 rows"):
        ind.obv(c, c.iloc[1:])
    with pytest.raises(TypeError, match="DataFrame or Series"):
        ind.sma(c.to_numpy(), window=3)


def test_inputs_are_not_mutated():
    o = synthetic_ohlcv("SYN0102", bars=100)
    before = o.copy()
    ind.atr(o["high"], o["low"], o["close"])
    ind.obv(o["close"], o["volume"])
    ind.bollinger(o["close"])
    pd.testing.assert_frame_equal(o, before)
