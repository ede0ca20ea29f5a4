"""The shipped pipeline specs and stage notebooks: valid, stripped, and every notebook used."""

from __future__ import annotations

from pathlib import Path

import pytest

from research.workflow.notebooks import is_stripped
from research.workflow.spec import load_spec, notebook_parameters, plan_run

PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"
SPECS = sorted(PIPELINES.glob("*.yaml"))


def test_the_daily_and_hourly_specs_exist():
    assert {p.stem for p in SPECS} >= {"daily", "hourly"}


@pytest.mark.parametrize("spec_path", SPECS, ids=lambda p: p.stem)
def test_spec_validates_with_its_defaults(spec_path):
    plan = plan_run(load_spec(spec_path))
    for stage in plan.spec.stages:
        assert stage.writes, f"stage {stage.name} declares no outputs"


def test_every_stage_notebook_is_thin_stripped_and_run_by_a_spec():
    notebooks = sorted(PIPELINES.rglob("*.ipynb"))
    used = {st.notebook for p in SPECS for st in load_spec(p).stages}
    assert notebooks and set(notebooks) <= used, f"notebooks no spec runs: {sorted(set(notebooks) - used)}"
    for nb in notebooks:
        assert is_stripped(nb), f"{nb.name} is committed with outputs"
        assert {"output_dir", "as_of"} <= set(notebook_parameters(nb)), nb.name
        assert nb.name[:2].isdigit() and nb.name[2] == "-", f"{nb.name} is not named NN-topic.ipynb"


def test_the_daily_spec_writes_the_dashboard_contract():
    written = {w for st in load_spec(PIPELINES / "daily.yaml").stages for w in st.writes}
    assert written >= {"prices", "data_report", "features", "predictions", "model_eval", "backtests", "equity",
                       "sweep", "signals", "alerts", "risk", "summary"}
