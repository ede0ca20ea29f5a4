"""The signals stage reads as-of once: a bare date is the end of its session on the data's clock."""

from __future__ import annotations

import pandas as pd

from research.stages.steps import signals_stage
from research.workflow.results import read_output


def test_hourly_signals_of_a_date_equal_those_of_its_last_hour(tmp_path):
    out = {}
    for as_of in ("2000-09-05", "2000-09-05T23:00:00", "2000-09-05T23:59:00"):
        d = tmp_path / as_of.replace(":", "")
        d.mkdir()
        signals_stage(str(d), symbols=["BTC-USD", "ETH-USD"], as_of=as_of, source="synthetic", interval="1h",
                      sizing_params={"target": 0.5}, rules={"stale_bars": 2})
        out[as_of] = read_output(str(d), "signals")
    first = out["2000-09-05"]
    assert len(first) == 6 and not first["stale"].any() and (first["target_position"] != 0).any()
    assert (first["bar_time"] == pd.Timestamp("2000-09-05 23:00", tz="UTC")).all()
    for table in out.values():
        pd.testing.assert_frame_equal(table.drop(columns="as_of"), first.drop(columns="as_of"))
    assert list(first["as_of"].unique()) == ["2000-09-05"]
