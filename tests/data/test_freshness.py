"""The one staleness rule: bars a calendar expects after a symbol's last bar, up to an as-of moment."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from research.data.freshness import (
    bars_behind,
    frame_interval,
    is_stale,
    stale_frame,
    symbol_calendar,
)


@pytest.mark.parametrize("cal, interval, last, as_of, n", [
    ("equity", "1d", "2018-12-21", "2018-12-27", 3),            # Mon 24, Wed 26, Thu 27; 25 is Christmas
    ("equity", "1d", "2018-12-21", "2018-12-23 23:59", 0),      # a weekend is not a missed session
    ("equity", "1d", "2018-12-21", "2018-12-21 09:00", 0),      # a bar in the as-of session
    ("crypto", "1d", "2018-12-21", "2018-12-23 00:30", 2),
    ("crypto", "1h", "2000-09-05 20:00", "2000-09-05 23:00", 3),
    ("crypto", "1h", "2000-09-05 23:00", "2000-09-05 23:59:59", 0),
    ("crypto", "1wk", "2018-01-01", "2018-01-29", 4),
    ("equity", "1mo", "2018-01-01", "2018-04-30", 3),
])
def test_bars_behind(cal, interval, last, as_of, n):
    assert bars_behind(cal, interval, last, as_of) == n
    assert is_stale(cal, interval, last, as_of, stale_bars=n) is False
    assert is_stale(cal, interval, last, as_of, stale_bars=n - 1) is (n > 0 or n - 1 < 0)


def test_no_last_bar_is_stale_and_needs_a_bar_to_count():
    assert is_stale("equity", "1d", None, "2018-01-02")
    with pytest.raises(ValueError, match="last bar"):
        bars_behind("equity", "1d", None, "2018-01-02")


def test_symbol_calendar_prefers_the_sources_record():
    f = pd.DataFrame({"X": [1.0]})
    assert symbol_calendar(f, "X").name == "equity" and symbol_calendar(f, "BTC-USD").name == "crypto"
    f.attrs["calendars"] = {"X": "crypto"}
    assert symbol_calendar(f, "X").name == "crypto"
    assert frame_interval(pd.DataFrame(index=pd.date_range("2020", periods=5, freq="h"))) == "1h"


@given(data=st.data(), interval=st.sampled_from(["1d", "1h"]), cal=st.sampled_from(["equity", "crypto"]),
       stale_bars=st.integers(0, 4))
def test_stale_frame_is_is_stale_at_every_row(data, interval, cal, stale_bars):
    """The vectorised frame (engine, paper book) and the scalar rule (signals, monitor) agree."""
    n = data.draw(st.integers(5, 60))
    freq = "h" if interval == "1h" else "D"
    index = pd.date_range("2018-12-20", periods=n, freq=freq, tz="UTC")
    mask = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    close = pd.DataFrame({"S": np.where(mask, 1.0, np.nan)}, index=index)
    got = stale_frame(close, stale_bars=stale_bars, interval=interval, calendars={"S": cal})["S"]
    for t in index:
        last = close["S"].loc[:t].last_valid_index()
        assert got[t] == is_stale(cal, interval, last, t, stale_bars=stale_bars), t
