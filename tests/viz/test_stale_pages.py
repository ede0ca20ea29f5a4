"""A stale symbol is flagged wherever it appears, its alerts are dated by its last bar, pages open on a fresh one."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from research.viz.panels import DASHBOARDS
from research.viz.panels.staleness import date_alerts, fresh_first, stale_symbols
from research.workflow.results import latest, write_output
from tests.viz.test_panels import one, page_text, runs  # noqa: F401 (the runs fixture)

LAST_BAR = "2022-12-30"


@pytest.fixture
def stale_run(runs, tmp_path):  # noqa: F811
    """The fixture run with its first symbol's data ending months before the as-of date."""
    copy = tmp_path / "daily"
    shutil.copytree(runs, copy)
    run = latest("daily", runs_dir=copy)
    first = sorted(run.table("data_report")["symbol"].astype(str))[0]
    report = run.table("data_report")
    report.loc[report["symbol"] == first, "last"] = pd.Timestamp(LAST_BAR, tz="UTC")
    write_output(run.outputs_dir, "data_report", report)
    alerts = pd.concat([run.table("alerts"), pd.DataFrame([{
        "symbol": first, "kind": "drawdown", "severity": "critical", "message": f"{first} is 40% below its peak",
        "value": -0.4, "threshold": -0.15, "as_of": str(run.as_of)}])], ignore_index=True)
    write_output(run.outputs_dir, "alerts", alerts)
    return copy, first


def test_the_stale_symbol_is_found_with_its_last_bar(stale_run):
    copy, first = stale_run
    assert stale_symbols(latest("daily", runs_dir=copy)) == {first: LAST_BAR}
    assert fresh_first(["A", first, "B"], {first: LAST_BAR}) == ["A", "B", first]


@pytest.mark.parametrize(("page", "control"), [("03-backtest-explorer", "wb-bt-symbol"),
                                               ("02-predictions", "wb-pva-symbol")])
def test_pages_open_on_a_fresh_symbol_and_flag_the_stale_one(stale_run, page, control):
    copy, first = stale_run
    built = DASHBOARDS[page](runs_dir=copy)
    box = one(built, control)
    assert box.value != first and list(box.options)[-1] in (first, (first, first))
    assert f"{first} (last bar {LAST_BAR})" in page_text(built)


def test_alerts_of_a_stale_symbol_are_dated_by_its_last_bar(stale_run):
    copy, first = stale_run
    run = latest("daily", runs_dir=copy)
    dated = date_alerts(run.table("alerts"), stale_symbols(run))
    row = dated[dated["symbol"] == first].iloc[0]
    assert row["dated"] == LAST_BAR and bool(row["stale"])
    table = one(DASHBOARDS["05-pipeline-health"](runs_dir=copy), "wb-alerts-table").value
    assert LAST_BAR in table and str(run.as_of) not in table.split(first)[1].split("</tr>")[0]


def test_the_headline_names_the_stale_symbol_with_its_last_bar(stale_run):
    from research.viz.panels.headline import headline_figures

    copy, first = stale_run
    figures = {label: value for label, value, _ in headline_figures(latest("daily", runs_dir=copy))}
    assert f"{first} (last bar {LAST_BAR})" in figures["data"]
