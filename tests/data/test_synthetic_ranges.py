"""Synthetic data covers any requested range, on the symbol's calendar, at any interval.

The rule, as a property: a bar is a function of (seed, symbol, interval, timestamp) only, so
the bars of a range are exactly the bars of any wider range restricted to it (prefixes and
sub-ranges are stable), every bar lies on the symbol's calendar, and a range with no bar is an
error, never an empty frame.
"""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from research.data import load_prices
from research.data.calendars import CRYPTO, EQUITY
from research.data.errors import InvalidRequestError
from research.data.schema import check_invariants
from research.data.sources.synthetic import SyntheticSource, synthetic_bars, synthetic_ohlcv

DAY = pd.Timedelta(days=1)
SPAN = {"1h": 20, "1d": 400, "1wk": 900, "1mo": 1500}  # days a drawn range may cover


def test_the_range_from_the_issue_is_served(store):
    frame = load_prices("BTC-USD", source="synthetic", start="2020-01-01", end="2021-12-31", store=store)
    assert len(frame) == 731  # 24/7: every day of 2020 (a leap year) and 2021
    assert frame.index[0] == pd.Timestamp("2020-01-01", tz="UTC") and frame.index[-1] == pd.Timestamp("2021-12-31", tz="UTC")
    assert frame.attrs["synthetic"] is True and check_invariants(frame) == []


def test_a_later_range_extends_the_stored_copy_without_changing_it(store):
    first = load_prices("SYN0042", source="synthetic", start="2001-01-01", end="2001-12-31", store=store)
    load_prices("SYN0042", source="synthetic", start="2030-01-01", end="2030-03-31", store=store)
    again = load_prices("SYN0042", source="synthetic", start="2001-01-01", end="2001-12-31", store=store)
    pd.testing.assert_frame_equal(first, again, check_exact=True)
    m = store.manifest("synthetic", "1d", "SYN0042")
    assert m["first"].startswith("2001-01-02") and m["last"].startswith("2030-03-29")  # one unbroken range
    # no gaps: every NYSE session between the first and the last stored bar
    stored = store.read("synthetic", "1d", "SYN0042")
    assert stored.index.equals(EQUITY.sessions(stored.index[0], stored.index[-1]))


@pytest.mark.parametrize(("symbol", "start", "end", "interval"), [
    ("SPX", "2021-01-02", "2021-01-03", "1d"),  # a weekend for an equity
    ("SPX", "2021-12-25", "2021-12-26", "1h"),  # Christmas and a Sunday
    ("BTC-USD", "2021-03-02", "2021-03-05", "1wk"),  # no whole week starts inside
    ("BTC-USD", "2021-03-02", "2021-03-20", "1mo"),
])
def test_an_empty_range_is_a_clear_error(store, symbol, start, end, interval):
    with pytest.raises(InvalidRequestError, match=rf"synthetic {symbol}.*{interval}"):
        load_prices(symbol, source="synthetic", start=start, end=end, interval=interval, store=store)


def test_start_after_end_is_a_clear_error(store):
    with pytest.raises(InvalidRequestError, match="start 2021-03-02 is after end 2021-03-01"):
        load_prices("BTC-USD", source="synthetic", start="2021-03-02", end="2021-03-01", store=store)
    with pytest.raises(InvalidRequestError, match="synthetic BTC-USD 2021-03-02..2021-03-01 1d: start is after end"):
        synthetic_bars("BTC-USD", "2021-03-02", "2021-03-01")


def test_unknown_interval_and_far_years_are_refused():
    with pytest.raises(InvalidRequestError, match="not '5m'"):
        synthetic_bars("BTC-USD", "2020-01-01", "2020-01-02", interval="5m")
    with pytest.raises(InvalidRequestError, match="1900-2200"):
        synthetic_bars("BTC-USD", "1850-01-01", "1850-02-01")


def test_hourly_equity_bars_are_the_regular_session_hours():
    bars = synthetic_bars("AAPL", "2021-03-12", "2021-03-16 23:00", interval="1h")
    local = bars.index.tz_convert("America/New_York")
    assert sorted({t.strftime("%H:%M") for t in local}) == [f"{h:02d}:30" for h in range(9, 16)]
    assert sorted({t.date().isoformat() for t in local}) == ["2021-03-12", "2021-03-15", "2021-03-16"]  # DST change kept


def test_default_window_is_unchanged_by_the_arguments_that_shape_it():
    a = SyntheticSource().fetch("ETH-USD", None, None)
    b = SyntheticSource(bars=300).fetch("ETH-USD", None, None)
    assert len(a) == 6000 and len(b) == 300
    pd.testing.assert_frame_equal(b, a.iloc[:300], check_exact=True)


symbols = st.sampled_from(["BTC-USD", "ETH-USD", "SPX", "SYN0001", "ZZ-TOP", "sol-usd"])
intervals = st.sampled_from(["1h", "1d", "1wk", "1mo"])


@st.composite
def ranges(draw):
    interval = draw(intervals)
    day0 = pd.Timestamp("1990-01-01", tz="UTC") + DAY * draw(st.integers(0, 365 * 60))
    if interval == "1h":
        day0 += pd.Timedelta(hours=draw(st.integers(0, 23)))
    length = pd.Timedelta(hours=draw(st.integers(0, SPAN[interval] * 24)))
    inner_lo = pd.Timedelta(hours=draw(st.integers(0, SPAN[interval] * 24)))
    inner_len = pd.Timedelta(hours=draw(st.integers(0, SPAN[interval] * 24)))
    return interval, day0, day0 + length, day0 + min(inner_lo, length), day0 + min(inner_lo + inner_len, length)


@given(symbol=symbols, r=ranges(), seed=st.sampled_from([42, 7]))
@example(symbol="BTC-USD", r=("1d", pd.Timestamp("2020-01-01", tz="UTC"), pd.Timestamp("2021-12-31", tz="UTC"),
                              pd.Timestamp("2020-06-01", tz="UTC"), pd.Timestamp("2020-06-30", tz="UTC")), seed=42)
@example(symbol="SPX", r=("1d", pd.Timestamp("1999-12-20", tz="UTC"), pd.Timestamp("2000-01-20", tz="UTC"),
                          pd.Timestamp("2000-01-03", tz="UTC"), pd.Timestamp("2000-01-20", tz="UTC")), seed=42)
def test_any_range_is_a_slice_of_one_path_on_the_calendar(symbol, r, seed):
    interval, lo, hi, inner_lo, inner_hi = r
    try:
        outer = synthetic_bars(symbol, lo, hi, interval=interval, seed=seed)
    except InvalidRequestError as exc:  # an empty range is an error naming itself
        assert f"synthetic {symbol}" in str(exc) and "no " in str(exc)
        return
    assert len(outer) > 0 and outer.index.is_monotonic_increasing and outer.index.is_unique
    assert outer.index[0] >= lo and outer.index[-1] <= hi
    assert check_invariants(outer) == []
    cal = CRYPTO if symbol.upper().endswith("-USD") else EQUITY
    if interval == "1d":  # exactly the calendar's sessions
        assert outer.index.equals(cal.sessions(lo, hi)[(cal.sessions(lo, hi) >= lo)])
    if cal is EQUITY and interval in ("1d", "1h"):
        assert set(outer.index.normalize()) <= set(EQUITY.sessions(lo, hi))
    expected = outer.loc[inner_lo:inner_hi]
    try:
        inner = synthetic_bars(symbol, inner_lo, inner_hi, interval=interval, seed=seed)
    except InvalidRequestError:
        assert expected.empty or interval in ("1wk", "1mo")  # a period cut by the range is not whole
        return
    if interval in ("1wk", "1mo"):  # whole periods only: the inner range may hold fewer
        expected = expected.loc[inner.index[0]:inner.index[-1]]
    pd.testing.assert_frame_equal(inner, expected, check_exact=True, check_freq=False)


@given(symbol=symbols, start=st.integers(0, 365 * 40), n=st.integers(1, 300), more=st.integers(0, 300))
def test_prefixes_are_stable(symbol, start, n, more):
    origin = pd.Timestamp("1995-01-01", tz="UTC") + DAY * start
    short = synthetic_ohlcv(symbol, bars=n, start=origin)
    long = synthetic_ohlcv(symbol, bars=n + more, start=origin)
    pd.testing.assert_frame_equal(short, long.iloc[:n], check_exact=True, check_freq=False)
