"""Summaries do not depend on how the calendar is given: recorded on the returns or passed explicitly."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from research.data.calendars import get_calendar
from research.risk import metrics
from research.risk.report import rolling_metrics

CALENDARS = st.sampled_from([("equity", "1d"), ("crypto", "1d"), ("crypto", "1h"), ("equity", "1h")])


@st.composite
def returns(draw):
    n = draw(st.integers(3, 120))
    values = draw(st.lists(st.floats(-0.2, 0.2, allow_nan=False), min_size=n, max_size=n))
    index = pd.date_range("2020-01-01", periods=n, freq="D", tz="UTC")
    return pd.Series(values, index=index, dtype="float64")


def _same(a: pd.Series, b: pd.Series) -> None:
    pd.testing.assert_series_equal(a, b, check_exact=True)
    assert a.attrs == b.attrs


@given(r=returns(), cal=CALENDARS, other=CALENDARS)
def test_summary_is_invariant_to_how_the_calendar_is_given(r, cal, other):
    ppy = get_calendar(cal[0]).periods(cal[1])
    recorded = r.copy()
    recorded.attrs.update(calendar=cal[0], interval=cal[1], periods_per_year=ppy)
    explicit = metrics.summary(r.copy(), periods_per_year=ppy)
    _same(metrics.summary(recorded), explicit)
    # after the operations between the loader and the metric
    _same(metrics.summary(recorded.dropna().astype("float64")), explicit)
    frame = recorded.to_frame("x")
    frame.attrs = dict(recorded.attrs)
    _same(metrics.summary(frame["x"]), explicit)
    # an explicit value wins over what the returns record
    wrong = r.copy()
    wrong.attrs.update(calendar=other[0], interval=other[1], periods_per_year=get_calendar(other[0]).periods(other[1]))
    _same(metrics.summary(wrong, periods_per_year=ppy), explicit)
    pd.testing.assert_frame_equal(rolling_metrics(recorded, window=3), rolling_metrics(r, window=3, periods_per_year=ppy))
    assert metrics.sharpe_ratio(recorded) == metrics.sharpe_ratio(r, periods_per_year=ppy) or (
        np.isnan(metrics.sharpe_ratio(recorded)) and np.isnan(metrics.sharpe_ratio(r, periods_per_year=ppy)))


@given(cal=CALENDARS)
def test_prices_returns_carry_the_calendar_to_the_summary(cal):
    close = pd.Series(np.linspace(100, 120, 40), index=pd.date_range("2020-01-01", periods=40, freq="D", tz="UTC"))
    close.attrs.update(calendar=cal[0], interval=cal[1], periods_per_year=get_calendar(cal[0]).periods(cal[1]))
    r = close.pct_change()
    assert metrics.summary(r).attrs["periods_per_year"] == get_calendar(cal[0]).periods(cal[1])
