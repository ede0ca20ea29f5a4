"""Annualising functions read the data's calendar when periods_per_year is left out."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from research import risk
from research.data import load_prices
from research.risk import metrics
from research.risk.metrics import CalendarWarning, annualisation
from research.risk.report import rolling_metrics


@pytest.fixture(scope="module")
def btc_daily() -> pd.Series:
    """Daily 24/7 returns as the loader hands them over (attrs: calendar=crypto, periods_per_year=365)."""
    p = load_prices("BTC-USD", source="synthetic", start="2000-01-01", end="2016-12-31", progress=False)
    return p["close"].pct_change().dropna()


def test_summary_annualises_daily_crypto_with_365_unasked(btc_daily):
    assert btc_daily.attrs["calendar"] == "crypto" and btc_daily.attrs["periods_per_year"] == 365.0
    with warnings.catch_warnings():
        warnings.simplefilter("error", CalendarWarning)
        s = risk.summary(btc_daily)
    assert s.attrs["periods_per_year"] == 365.0
    # A Sharpe ratio scales with the square root of the periods a year: 365 read from the data, not 252.
    s252 = risk.summary(btc_daily, periods_per_year=252)["Sharpe Ratio"]
    assert s["Sharpe Ratio"] == pytest.approx(s252 * np.sqrt(365 / 252), rel=1e-12)
    assert s["Sharpe Ratio"] != pytest.approx(s252, rel=1e-3)


@pytest.mark.parametrize("fn", [metrics.sharpe_ratio, metrics.sortino_ratio, metrics.annualized_return,
                                metrics.annualized_volatility, metrics.calmar_ratio])
def test_every_annualising_metric_reads_the_calendar(btc_daily, fn):
    assert fn(btc_daily) == fn(btc_daily, periods_per_year=365)
    assert fn(btc_daily, periods_per_year=252) != fn(btc_daily)


def test_relative_metrics_read_the_calendar(btc_daily):
    bench = btc_daily.shift(1).dropna() * 0.5
    for fn in (metrics.alpha, metrics.tracking_error, metrics.information_ratio):
        assert fn(btc_daily, bench) == fn(btc_daily, bench, periods_per_year=365)


def test_no_calendar_means_252_with_a_warning():
    r = pd.Series(np.random.default_rng(0).normal(0, 0.01, 300))
    with pytest.warns(CalendarWarning, match="annualising with 252"):
        assert metrics.sharpe_ratio(r) == metrics.sharpe_ratio(r, periods_per_year=252)
    with pytest.raises(ValueError, match="periods_per_year must be positive"):
        annualisation(r, 0)


def test_rolling_metrics_and_vol_target_read_the_calendar(btc_daily):
    a = rolling_metrics(btc_daily, window=30)
    b = rolling_metrics(btc_daily, window=30, periods_per_year=365)
    pd.testing.assert_frame_equal(a, b)
    from research.strategies import Signals
    from research.strategies.sizing import vol_target

    p = load_prices("BTC-USD", source="synthetic", start="2010-01-01", end="2011-12-31", progress=False)
    close = p[["close"]].rename(columns={"close": "BTC-USD"})
    close.attrs = dict(p.attrs)
    sig = Signals(pd.DataFrame(1.0, index=close.index, columns=close.columns), name="x")
    pd.testing.assert_frame_equal(vol_target(sig, {"close": close}),
                                  vol_target(sig, {"close": close}, periods_per_year=365))
