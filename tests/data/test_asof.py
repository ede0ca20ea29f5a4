"""The as-of value: a date is the end of its session, a time is that instant; text forms round-trip."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from research.data.asof import AsOf, as_of


def test_a_date_is_the_end_of_its_day_and_a_time_is_that_instant():
    d = AsOf.parse("2000-09-05")
    assert d.is_date and d.end == pd.Timestamp("2000-09-05 23:59:59.999999", tz="UTC")
    assert (d.label, d.slug) == ("2000-09-05", "20000905")
    t = AsOf.parse("2000-09-05T12:00:00")
    assert not t.is_date and t.end == pd.Timestamp("2000-09-05 12:00", tz="UTC")
    assert (t.label, t.slug) == ("2000-09-05T12:00:00", "20000905T120000")
    midnight = AsOf.parse("2000-09-05T00:00:00")  # a live hourly run in the 00:xx hour: not the whole day
    assert not midnight.is_date and midnight.end == pd.Timestamp("2000-09-05", tz="UTC")
    assert AsOf.parse(dt.date(2000, 9, 5)) == d == AsOf.parse(pd.Timestamp("2000-09-05"), interval="1d")
    assert AsOf.parse(pd.Timestamp("2000-09-05"), interval="1h") == midnight
    assert AsOf.parse("2000-09-05T14:00:00+02:00") == t and AsOf.parse(t) is t
    assert as_of("2018-12-31") == AsOf.parse("2018-12-31") and as_of(None, interval="1h").end.minute == 0


@pytest.mark.parametrize("bad", ["", "  ", "yesterday", "2018-13-01", None])
def test_bad_as_of_is_refused_with_a_clear_error(bad):
    with pytest.raises(ValueError, match="as_of"):
        AsOf.parse(bad)


def test_cut_keeps_the_bars_up_to_the_end():
    hourly = pd.Series(range(48), index=pd.date_range("2000-09-04", periods=48, freq="h", tz="UTC"))
    assert AsOf.parse("2000-09-05").cut(hourly).index[-1] == pd.Timestamp("2000-09-05 23:00", tz="UTC")
    assert AsOf.parse("2000-09-05T12:30:00").cut(hourly).index[-1] == pd.Timestamp("2000-09-05 12:00", tz="UTC")
    naive = hourly.tz_localize(None)
    assert len(AsOf.parse("2000-09-05T12:00:00").cut(naive)) == 37


@given(t=st.datetimes(min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2030, 1, 1)),
       kind=st.sampled_from(["date", "instant", "timestamp"]), interval=st.sampled_from(["1d", "1h"]))
def test_label_round_trips(t, kind, interval):
    value = {"date": t.date(), "instant": t.replace(microsecond=0).isoformat(), "timestamp": pd.Timestamp(t)}[kind]
    a = AsOf.parse(value, interval=interval)
    assert AsOf.parse(a.label) == a or (kind == "timestamp" and t.microsecond)
    assert a.end.tzinfo is not None and a.end.normalize() == pd.Timestamp(t.date(), tz="UTC")
