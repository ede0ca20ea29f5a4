"""Metrics against values computed by hand on small series, plus properties."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate

from research.risk import metrics as m

R = pd.Series([0.10, -0.20, 0.05, 0.10, -0.05])
R10 = pd.Series([0.012, -0.034, 0.005, 0.021, -0.008, 0.017, -0.051, 0.009, 0.014, -0.002])
B10 = pd.Series([0.010, -0.020, 0.004, 0.015, -0.010, 0.012, -0.030, 0.006, 0.011, 0.001])
Z95 = -1.6448536269514722  # standard normal 5% quantile


def _mean_std(x):
    return statistics.fmean(x), statistics.stdev(x)


def test_returns_and_volatility_by_hand():
    assert m.total_return(R) == pytest.approx(1.1 * 0.8 * 1.05 * 1.1 * 0.95 - 1)
    growth = 1.1 * 0.8 * 1.05 * 1.1 * 0.95
    assert m.annualized_return(R, periods_per_year=252) == pytest.approx(growth ** (252 / 5) - 1)
    mu, sd = _mean_std(R10.tolist())
    assert m.annualized_volatility(R10) == pytest.approx(sd * math.sqrt(252))
    assert m.annualized_volatility(R10, periods_per_year=365) == pytest.approx(sd * math.sqrt(365))
    assert m.sharpe_ratio(R10) == pytest.approx(mu / sd * math.sqrt(252))


def test_sharpe_with_risk_free_and_sortino_by_hand():
    rf_bar = 1.05 ** (1 / 252) - 1
    ex = [x - rf_bar for x in R10]
    mu, sd = _mean_std(ex)
    assert m.sharpe_ratio(R10, risk_free=0.05) == pytest.approx(mu / sd * math.sqrt(252))
    down = math.sqrt(sum(min(x, 0.0) ** 2 for x in R10) / 10)
    assert m.sortino_ratio(R10) == pytest.approx(statistics.fmean(R10) / down * math.sqrt(252))


def test_drawdown_by_hand():
    # equity 1.10, 0.88, 0.924, 1.0164, 0.96558; peak 1.10 never regained
    dd = m.drawdown_series(R)
    np.testing.assert_allclose(dd, [0.0, 0.88 / 1.1 - 1, 0.924 / 1.1 - 1, 1.0164 / 1.1 - 1, 0.96558 / 1.1 - 1])
    assert m.max_drawdown(R) == pytest.approx(-0.2)
    assert m.max_drawdown_duration(R) == 4
    assert m.max_drawdown(pd.Series([-0.1, 0.05])) == pytest.approx(-0.1)  # peak starts at 1.0
    recovering = pd.Series([0.1, -0.1, 0.2, -0.05, -0.05, 0.3])
    assert m.max_drawdown_duration(recovering) == 2
    ann = m.annualized_return(R, periods_per_year=252)
    assert m.calmar_ratio(R) == pytest.approx(ann / 0.2)


def test_historical_var_cvar_by_hand():
    x = sorted(R10)
    var = x[0] + 0.45 * (x[1] - x[0])  # 5% quantile, linear interpolation at position 0.45
    assert m.value_at_risk(R10, level=0.95) == pytest.approx(var)
    assert m.conditional_value_at_risk(R10, level=0.95) == pytest.approx(x[0])
    var99 = x[0] + 0.09 * (x[1] - x[0])
    assert m.value_at_risk(R10, level=0.99) == pytest.approx(var99)


def test_gaussian_var_cvar_by_hand():
    mu, sd = _mean_std(R10.tolist())
    assert m.value_at_risk(R10, method="gaussian") == pytest.approx(mu + Z95 * sd)
    pdf = math.exp(-Z95**2 / 2) / math.sqrt(2 * math.pi)
    assert m.conditional_value_at_risk(R10, method="gaussian") == pytest.approx(mu - sd * pdf / 0.05)


def _hand_cf(x: list[float], p: float, z: float) -> float:
    n = len(x)
    mu, sd = _mean_std(x)
    g = [(v - mu) / sd for v in x]
    skew = n / ((n - 1) * (n - 2)) * sum(v**3 for v in g)
    kurt = n * (n + 1) / ((n - 1) * (n - 2) * (n - 3)) * sum(v**4 for v in g) - 3 * (n - 1) ** 2 / ((n - 2) * (n - 3))
    zcf = z + (z**2 - 1) * skew / 6 + (z**3 - 3 * z) * kurt / 24 - (2 * z**3 - 5 * z) * skew**2 / 36
    return mu + zcf * sd


def test_cornish_fisher_by_hand():
    x = R10.tolist()
    assert m.value_at_risk(R10, method="cornish_fisher") == pytest.approx(_hand_cf(x, 0.05, Z95))
    from scipy.stats import norm

    es, _ = integrate.quad(lambda p: _hand_cf(x, p, norm.ppf(p)), 1e-12, 0.05, limit=200)
    assert m.conditional_value_at_risk(R10, method="cornish_fisher") == pytest.approx(es / 0.05, rel=1e-4)


def test_benchmark_relative_by_hand():
    mr, mb = statistics.fmean(R10), statistics.fmean(B10)
    cov = sum((a - mr) * (b - mb) for a, b in zip(R10, B10, strict=True)) / 9
    var = statistics.variance(B10)
    beta = cov / var
    assert m.beta(R10, B10) == pytest.approx(beta)
    assert m.alpha(R10, B10) == pytest.approx((mr - beta * mb) * 252)
    active = [a - b for a, b in zip(R10, B10, strict=True)]
    mu, sd = _mean_std(active)
    assert m.information_ratio(R10, B10) == pytest.approx(mu / sd * math.sqrt(252))
    assert m.tracking_error(R10, B10) == pytest.approx(sd * math.sqrt(252))
    assert m.beta(2 * B10, B10) == pytest.approx(2.0)


def test_benchmark_is_aligned_on_the_index():
    idx = pd.date_range("2024-01-01", periods=10, freq="D")
    r = pd.Series(R10.to_numpy(), index=idx)
    b = pd.Series(B10.to_numpy(), index=idx).iloc[2:]
    assert m.beta(r, b) == pytest.approx(m.beta(R10.iloc[2:].reset_index(drop=True), B10.iloc[2:].reset_index(drop=True)))


def test_trades_and_positions_by_hand():
    trades = pd.DataFrame({"PnL": [10.0, -5.0, 20.0, -5.0, 0.0]})
    assert m.win_rate(trades) == pytest.approx(0.4)
    assert m.profit_factor(trades) == pytest.approx(3.0)
    assert m.win_rate(pd.DataFrame({"return": [0.1, -0.1]})) == 0.5
    assert math.isnan(m.profit_factor(pd.DataFrame({"pnl": [1.0, 2.0]})))  # no losing trade
    pos = pd.Series([0.0, 1.0, 1.0, 0.0, 0.5])
    assert m.exposure(pos) == pytest.approx(0.6)
    assert m.turnover(pos, periods_per_year=None) == pytest.approx((0 + 1 + 0 + 1 + 0.5) / 5)
    assert m.turnover(pos, periods_per_year=252) == pytest.approx(0.5 * 252)
    values = pd.DataFrame({"A": [0.0, 50.0, 100.0], "cash": [100.0, 50.0, 0.0]})
    assert m.turnover(values, periods_per_year=None) == pytest.approx((0 + 0.5 + 0.5) / 3)
    assert m.exposure(values) == pytest.approx(2 / 3)


def test_zero_volatility_gives_nan_sharpe_not_a_huge_number():
    flat = pd.Series([0.01] * 10)
    assert m.annualized_volatility(flat) == 0.0
    assert math.isnan(m.sharpe_ratio(flat))
    assert math.isnan(m.sortino_ratio(flat))
    assert math.isnan(m.calmar_ratio(flat))


def test_summary_keys_units_and_nan_reasons():
    idx = pd.date_range("2024-01-01", periods=10, freq="D")
    r, b = pd.Series(R10.to_numpy(), index=idx), pd.Series(B10.to_numpy(), index=idx)
    s = m.summary(r, benchmark=b, trades=pd.DataFrame({"pnl": [1.0, -1.0, 2.0]}), positions=pd.Series(1.0, index=idx))
    assert tuple(s.index) == m.SUMMARY_KEYS and s.dtype == "float64"
    assert s["Return (Ann.) [%]"] == pytest.approx(m.annualized_return(r) * 100)
    assert s["Max. Drawdown [%]"] == pytest.approx(m.max_drawdown(r) * 100)
    assert s["VaR 95% (hist.) [%]"] == pytest.approx(m.value_at_risk(r) * 100)
    assert s["Sharpe Ratio"] == pytest.approx(m.sharpe_ratio(r))
    assert s["# Trades"] == 3 and s["Exposure Time [%]"] == 100.0 and s["Turnover (Ann.) [%]"] == pytest.approx(2520.0)
    assert s.isna().sum() == 0 and s.attrs["nan_reasons"] == {}
    bare = m.summary(pd.Series([0.01] * 10))
    assert set(bare.attrs["nan_reasons"]) == set(bare.index[bare.isna()])  # every NaN has a reason
    assert bare.attrs["nan_reasons"]["Sharpe Ratio"] == "zero volatility"
    assert bare.attrs["nan_reasons"]["Beta"] == "no benchmark given"
    assert bare.attrs["nan_reasons"]["# Trades"] == "no trades given"
    empty = m.summary(pd.Series([], dtype=float))
    assert set(empty.attrs["nan_reasons"]) == set(empty.index[empty.isna()]) and empty["# Periods"] == 0


def test_crypto_annualisation():
    eq, cr = m.summary(R10, periods_per_year=252), m.summary(R10, periods_per_year=365)
    assert cr["Volatility (Ann.) [%]"] / eq["Volatility (Ann.) [%]"] == pytest.approx(math.sqrt(365 / 252))
    assert cr.attrs["periods_per_year"] == 365.0


def test_errors_say_what_was_expected():
    with pytest.raises(ValueError, match=r"level must be a confidence level in \(0.5, 1\)"):
        m.value_at_risk(R10, level=5)
    with pytest.raises(ValueError, match="method must be one of"):
        m.value_at_risk(R10, method="monte_carlo")
    with pytest.raises(ValueError, match="'pnl' or 'return' column; got columns"):
        m.win_rate(pd.DataFrame({"profit": [1.0]}))
    with pytest.raises(TypeError, match="DataFrame with 2 columns"):
        m.sharpe_ratio(pd.DataFrame({"a": R10, "b": R10}))
    with pytest.raises(ValueError, match="periods_per_year must be positive"):
        m.sharpe_ratio(R10, periods_per_year=0)
    with pytest.raises(ValueError, match="infinite"):
        m.total_return(pd.Series([0.1, np.inf]))


def test_inputs_not_mutated_and_nan_bars_dropped():
    r = R10.copy()
    r.iloc[0] = np.nan
    before = r.copy()
    m.summary(r, benchmark=B10)
    pd.testing.assert_series_equal(r, before)
    assert m.sharpe_ratio(r) == pytest.approx(m.sharpe_ratio(R10.iloc[1:]))


returns_st = st.lists(st.floats(-0.2, 0.2, allow_nan=False), min_size=5, max_size=60).filter(
    lambda xs: np.ptp(xs) > 1e-6
)


@settings(max_examples=60, deadline=None)
@given(returns_st, st.floats(0.1, 5.0))
def test_scaling_properties(xs, c):
    r = pd.Series(xs)
    assert m.annualized_volatility(c * r) == pytest.approx(c * m.annualized_volatility(r), rel=1e-9)
    assert m.sharpe_ratio(c * r) == pytest.approx(m.sharpe_ratio(r), rel=1e-9, abs=1e-12)
    assert m.sharpe_ratio(-r) == pytest.approx(-m.sharpe_ratio(r), rel=1e-9, abs=1e-12)
    assert m.value_at_risk(c * r, method="gaussian") == pytest.approx(c * m.value_at_risk(r, method="gaussian"), rel=1e-9, abs=1e-15)
    assert m.beta(c * r, r) == pytest.approx(c, rel=1e-9)


@settings(max_examples=60, deadline=None)
@given(returns_st)
def test_drawdown_and_tail_properties(xs):
    r = pd.Series(xs)
    dd = m.drawdown_series(r)
    assert (dd <= 0).all() and m.max_drawdown(r) == pytest.approx(dd.min())
    assert 0 <= m.max_drawdown_duration(r) <= len(r)
    for method in m.VAR_METHODS[:2]:
        assert m.conditional_value_at_risk(r, method=method) <= m.value_at_risk(r, method=method) + 1e-12
        assert m.value_at_risk(r, level=0.99, method=method) <= m.value_at_risk(r, level=0.95, method=method) + 1e-12


def test_equal_weight_returns_average_the_members_that_have_a_bar():
    idx = pd.date_range("2024-01-01", periods=4, freq="D")
    curves = pd.DataFrame({"a": [100.0, 110.0, 121.0, 121.0], "b": [np.nan, 50.0, 55.0, 44.0]}, index=idx)
    book = m.equal_weight_returns(curves)
    assert np.isnan(book.iloc[0])
    assert book.iloc[1] == pytest.approx(0.10)  # b has no return yet
    assert book.iloc[2] == pytest.approx(0.10) and book.iloc[3] == pytest.approx(-0.10)
