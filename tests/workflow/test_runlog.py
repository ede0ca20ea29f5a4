"""The run ledger in the tracking store: parent and stage runs, statuses, lookups, failures."""

from __future__ import annotations

import pytest

from research.workflow.runlog import RunLog, RunLogError, find_run_dir, iter_run_records


@pytest.fixture
def ledger(tmp_path):
    return RunLog(f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_root=tmp_path / "artifacts")


def test_a_run_with_stages_round_trips(ledger, tmp_path):
    parent = ledger.start_pipeline_run(pipeline="demo", run_id="r1", as_of="2020-01-02",
                                       parameters={"symbols": ["A", "B"], "n": 3, "long": "x" * 900}, spec_path="demo.yaml")
    nb = tmp_path / "01-a.ipynb"
    nb.write_text("{}")
    child = ledger.start_stage(parent, pipeline="demo", run_id="r1", stage="a", index=1, resumed=False)
    ledger.log_notebook(child, nb)
    ledger.end_stage(child, {"status": "COMPLETED", "duration_s": 1.5, "cells_s": 1.0, "overhead_s": 0.5, "attempts": 1})
    child2 = ledger.start_stage(parent, pipeline="demo", run_id="r1", stage="b", index=2, resumed=False)
    ledger.end_stage(child2, {"status": "TIMEOUT", "attempts": 2, "error": {"message": "stage 'b' timed out in cell 3"}})
    ledger.end_pipeline_run(parent, {"status": "TIMEOUT", "duration_s": 9.0, "error": {"message": "stage 'b' timed out"}})

    rows = ledger.list_runs("demo")
    assert [(r["run_id"], r["status"], r["published"]) for r in rows] == [("r1", "TIMEOUT", False)]
    entry = ledger.get_run("r1")
    assert entry["status"] == "TIMEOUT" and entry["error"] == "stage 'b' timed out"
    assert [(s["stage"], s["status"], s["attempts"]) for s in entry["stages"]] == [("a", "COMPLETED", 1.0), ("b", "TIMEOUT", 2.0)]
    assert entry["parameters"]["symbols"] == '["A", "B"]' and len(entry["parameters"]["long"]) == 500
    assert ledger.client.get_run(parent).info.status == "FAILED"  # MLflow's own status
    art = entry["stages"][0]["artifact_uri"].removeprefix("file://")
    assert (tmp_path / "artifacts").exists() and art.startswith(str(tmp_path / "artifacts"))
    with pytest.raises(RunLogError, match="no pipeline run 'nope'"):
        ledger.get_run("nope")


def test_unusable_tracking_store_fails_fast(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(RunLogError, match="is not usable"):
        RunLog(f"sqlite:///{blocker / 'mlflow.db'}")


def test_run_folders(tmp_path):
    (tmp_path / "demo" / "r1").mkdir(parents=True)
    (tmp_path / "demo" / "r1" / "run.json").write_text('{"run_id": "r1", "started_at": "2020-01-01"}')
    (tmp_path / "demo" / "r2").mkdir()
    (tmp_path / "demo" / "r2" / "run.json").write_text("{broken")
    assert find_run_dir("r1", tmp_path) == tmp_path / "demo" / "r1"
    assert [r["run_id"] for r in iter_run_records(tmp_path / "demo")] == ["r1"]
    with pytest.raises(RunLogError, match="no run folder for run 'r3'"):
        find_run_dir("r3", tmp_path)
