"""One rule for time zones (research.timeutil): naive is read as UTC, aware is converted to UTC;
the instant is kept and applying it twice changes nothing."""

from __future__ import annotations

import datetime as dt
import doctest

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import research.timeutil as timeutil
from research.timeutil import on_clock_of, to_naive_utc, to_naive_utc_index, to_utc, to_utc_index

ZONES = ["UTC", "America/New_York", "Europe/London", "Asia/Kolkata", "Australia/Lord_Howe", "Pacific/Chatham",
         "America/St_Johns", "Etc/GMT+12", "Etc/GMT-14", dt.timezone(dt.timedelta(hours=-3, minutes=-30)),
         dt.UTC]
#: Instants (as naive UTC wall times) far enough inside pandas' range that any zone's wall time fits.
instants = st.datetimes(min_value=dt.datetime(1678, 1, 2), max_value=dt.datetime(2261, 12, 31))
zones = st.sampled_from(ZONES)


def _ns(values: pd.DatetimeIndex) -> list[int]:
    return values.as_unit("ns").asi8.tolist()


def test_the_module_examples_hold():
    assert doctest.testmod(timeutil, raise_on_error=True).attempted >= 3


@given(st.lists(instants, max_size=8), st.one_of(st.none(), zones))
@example([dt.datetime(2021, 3, 14, 7, 30)], "America/New_York")  # just after New York skips an hour
@example([dt.datetime(2021, 11, 7, 5, 30), dt.datetime(2021, 11, 7, 6, 30)], "America/New_York")  # 01:30 New York, twice
def test_any_index_becomes_utc_with_the_same_instants_once(walls, zone):
    naive = pd.DatetimeIndex(walls, name="timestamp")
    index = naive if zone is None else naive.tz_localize("UTC").tz_convert(zone)
    out = to_utc_index(index)
    assert str(out.tz) == "UTC" and out.name == "timestamp"
    assert _ns(out) == _ns(naive.tz_localize("UTC"))  # aware: same instants; naive: its wall time, read as UTC
    assert to_utc_index(out).equals(out)
    assert to_utc_index(list(index)).equals(out.rename(None))  # a list of the same times, parsed
    flat = to_naive_utc_index(index)
    assert getattr(flat, "tz", None) is None and _ns(flat) == _ns(naive)
    assert to_naive_utc_index(flat).equals(flat) and to_utc_index(flat).equals(out)


@given(instants, st.one_of(st.none(), zones), st.sampled_from(["timestamp", "datetime", "iso", "numpy"]))
def test_any_timestamp_becomes_utc_with_the_same_instant_once(wall, zone, form):
    stamp = pd.Timestamp(wall) if zone is None else pd.Timestamp(wall).tz_localize("UTC").tz_convert(zone)
    value = {"timestamp": stamp, "datetime": stamp.to_pydatetime(), "iso": stamp.isoformat(),
             "numpy": stamp.to_datetime64() if zone is None else stamp}[form]
    out = to_utc(value)
    assert str(out.tzinfo) == "UTC" and out.value == pd.Timestamp(wall).tz_localize("UTC").value
    assert to_utc(out) == out and str(to_utc(out).tzinfo) == "UTC"
    flat = to_naive_utc(value)
    assert flat.tzinfo is None and flat == pd.Timestamp(wall) and to_naive_utc(flat) == flat
    assert to_utc(flat) == out


@given(instants, st.one_of(st.none(), zones), st.sampled_from([None, "UTC", "Asia/Tokyo"]))
def test_a_time_is_put_on_the_clock_an_index_compares_with(wall, zone, index_zone):
    stamp = pd.Timestamp(wall) if zone is None else pd.Timestamp(wall).tz_localize("UTC").tz_convert(zone)
    index = pd.DatetimeIndex([wall], tz="UTC")
    index = index.tz_localize(None) if index_zone is None else index.tz_convert(index_zone)
    out = on_clock_of(stamp, index)
    assert (out.tzinfo is None) == (index.tz is None)
    assert bool((index <= out)[0]) and bool((index >= out)[0])  # the same instant, comparable with the index


def test_missing_values_pass_through_and_a_non_time_is_refused():
    assert to_utc(None) is None and to_naive_utc(None) is None
    assert to_utc(pd.NaT) is pd.NaT
    assert to_naive_utc_index(pd.RangeIndex(3)).equals(pd.RangeIndex(3))
    assert to_utc_index(np.array(["2024-01-01", "NaT"], dtype="datetime64[ns]")).isna().tolist() == [False, True]
    with pytest.raises(ValueError):
        to_utc("not a time")


def test_the_naive_clock_is_utc():
    before = pd.Timestamp.now(tz="UTC").tz_localize(None)
    now = timeutil.naive_utc_now()
    assert isinstance(now, dt.datetime) and now.tzinfo is None
    assert before <= pd.Timestamp(now) <= pd.Timestamp.now(tz="UTC").tz_localize(None)
