"""Any as-of moment gives the signals of its canonical form, and never calls a symbol with a bar in
that session stale: any time of day, daily or hourly bars, equity or 24/7 calendars."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import pandas as pd
from hypothesis import example, given, settings
from hypothesis import strategies as st

from research.data.asof import AsOf
from research.stages.steps import signals_stage
from research.workflow.results import read_output

STRATEGIES = {"ma_crossover": {"fast": 5, "slow": 20}, "time_series_momentum": {"lookback": 10}}
UNIVERSES = {
    # a stock and a coin in one frame: the frame is 24/7, the stock keeps its NYSE sessions
    "1d": (["BTC-USD", "SPX"], dt.date(2005, 3, 1), 120),
    "1h": (["BTC-USD", "ETH-USD"], dt.date(2000, 9, 1), 7),
}
_OUT = Path(tempfile.mkdtemp(prefix="as-of-property-"))


def _signals(interval: str, as_of: object) -> pd.DataFrame:
    symbols = UNIVERSES[interval][0]
    out = _OUT / f"{interval}-{AsOf.parse(as_of, interval=interval).slug}-{abs(hash(str(as_of)))}"
    out.mkdir(exist_ok=True)
    signals_stage(str(out), symbols=symbols, as_of=as_of, source="synthetic", interval=interval,
                  strategies=STRATEGIES, sizing="vol_target", sizing_params={"target": 0.5}, rules={"stale_bars": 2})
    return read_output(str(out), "signals")


def _canonical(interval: str, moment: dt.datetime) -> str:
    return f"{moment:%Y-%m-%d}" if interval == "1d" else f"{moment:%Y-%m-%dT%H}:00:00"


@settings(max_examples=10)
@given(interval=st.sampled_from(["1d", "1h"]), day=st.integers(0, 200), seconds=st.integers(0, 86399),
       form=st.sampled_from(["iso", "iso+02:00", "timestamp", "date"]))
@example(interval="1h", day=4, seconds=0, form="date")  # -p as_of=2000-09-05: all six signals were stale
@example(interval="1h", day=4, seconds=0, form="iso")  # 00:00 of an hourly run: the first hour, not the day
@example(interval="1d", day=4, seconds=13 * 3600, form="iso")  # a Saturday afternoon: SPX is not stale
def test_any_as_of_gives_the_signals_of_its_canonical_form(interval, day, seconds, form):
    symbols, first, days = UNIVERSES[interval]
    moment = dt.datetime.combine(first + dt.timedelta(days=day % days), dt.time()) + dt.timedelta(seconds=seconds)
    value = {"iso": moment.isoformat(), "timestamp": pd.Timestamp(moment, tz="UTC"), "date": moment.date(),
             "iso+02:00": (pd.Timestamp(moment, tz="UTC").tz_convert("Etc/GMT-2")).isoformat()}[form]
    if form == "date":
        moment = moment.replace(hour=23, minute=59, second=59)  # a date is its whole session
    got, canonical = _signals(interval, value), _signals(interval, _canonical(interval, moment))
    pd.testing.assert_frame_equal(got.drop(columns="as_of"), canonical.drop(columns="as_of"))
    # a symbol with a bar in the as-of session (daily: that day; hourly: that hour) is never stale
    session = pd.Timestamp(moment, tz="UTC").floor("D" if interval == "1d" else "h")
    fresh = got["bar_time"] == session
    assert not got.loc[fresh, "stale"].any(), got.loc[fresh]
    assert (got.loc[got["stale"], "target_position"] == 0).all()
