"""The ``as_of`` hook of the market pipelines: a run's as-of date from its data."""

from __future__ import annotations

import pandas as pd
import pytest

from research.stages.as_of import resolve_as_of


def test_as_of_defaults_come_from_the_data():
    assert resolve_as_of({"symbols": ["SPX", "GOOG"], "source": "sample", "interval": "1d"}) == "2018-12-31"
    assert resolve_as_of({"symbols": ["BTC-USD"], "source": "synthetic", "interval": "1h"}) == "2000-09-08T23:00:00"
    assert resolve_as_of({"as_of": "2019-03-01T00:00:00Z"}) == "2019-03-01T00:00:00"  # a midnight instant
    assert resolve_as_of({"as_of": "2019-03-01"}) == "2019-03-01"
    assert resolve_as_of({"symbols": ["SPX"], "source": "yahoo"}) == str(pd.Timestamp.now(tz="UTC").date())
    from research.data import SymbolNotFoundError

    with pytest.raises(SymbolNotFoundError):
        resolve_as_of({"symbols": ["NOPE"], "source": "sample"})


def test_a_live_hourly_run_in_the_first_hour_is_an_instant_not_the_whole_day(monkeypatch):
    """At 00:xx the current hour used to collapse to a bare date (read by the signals as the end
    of the day, by the stages as 00:00)."""
    monkeypatch.setattr(pd.Timestamp, "now", classmethod(lambda cls, tz=None: pd.Timestamp("2026-12-07 00:20", tz=tz)))
    assert resolve_as_of({"symbols": ["BTC-USD"], "source": "coingecko", "interval": "1h"}) == "2026-12-07T00:00:00"
    assert resolve_as_of({"symbols": ["SPX"], "source": "yahoo", "interval": "1d"}) == "2026-12-07"
