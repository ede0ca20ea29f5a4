"""The dashboards annualise with the run's bars: hourly runs count hours, not days."""

from __future__ import annotations

import json

import pytest

from research.viz.panels.layout import run_interval, symbol_periods_per_year
from research.workflow.results import PublishedRun


@pytest.mark.parametrize("symbol, interval, n", [("SPX", "1d", 252.0), ("BTC-USD", "1d", 365.0),
                                                 ("BTC-USD", "1h", 8760.0), ("SPX", "1h", 252 * 6.5)])
def test_periods_per_year_follows_the_interval(symbol, interval, n):
    assert symbol_periods_per_year(symbol, interval) == n


def test_run_interval_reads_the_runs_parameters(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"parameters": {"interval": "1h", "symbols": ["BTC-USD"]}}))
    run = PublishedRun(pipeline="hourly", run_id="r", path=tmp_path, record={"as_of": "2000-09-05"})
    assert run_interval(run) == "1h"
    assert symbol_periods_per_year("BTC-USD", run_interval(run)) == 24 * 365  # rolling vol was understated by sqrt(24)
    (tmp_path / "run.json").write_text(json.dumps({"parameters": {}}))
    assert run_interval(run) == "1d" and run_interval(None) == "1d"
