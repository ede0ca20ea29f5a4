"""The run log: every pipeline run in the tracking store, plus ``run.json`` in its folder.

In MLflow, pipeline ``<name>`` has the experiment ``pipeline-<name>``. A pipeline run is one
parent run (run name = the workbench run id) and each executed stage is a child run
(``mlflow.parentRunId``) with the executed notebooks as artifacts under ``notebooks/``.
Tags carry the workbench's own status, which knows more than MLflow's (``TIMEOUT``,
``INTERRUPTED``):

=========================  ====================================================
tag                        value
=========================  ====================================================
``workbench.kind``         ``pipeline`` (parent) or ``stage`` (child)
``workbench.pipeline``     pipeline name
``workbench.run_id``       the workbench run id (also the run folder's name)
``workbench.as_of``        as-of date of the run
``workbench.status``       RUNNING, COMPLETED, FAILED, TIMEOUT, INTERRUPTED
``workbench.stage``        stage name (children)
``workbench.error``        where and why it stopped (failed runs and stages)
``workbench.closed``       why a stage run left RUNNING by a killed runner was
                           ended later (on resume or by ``pipeline status``)
=========================  ====================================================

The tracking URI is always set explicitly from :func:`research.config.get_settings` (papermill
changes the working directory, which would move MLflow's implicit default).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from research.config import get_settings

__all__ = ["RunLog", "RunLogError", "RunNotFoundError", "TERMINAL_MLFLOW", "read_run_record", "find_run_dir",
           "iter_run_records"]

log = logging.getLogger(__name__)

#: workbench status -> MLflow run status
TERMINAL_MLFLOW = {"COMPLETED": "FINISHED", "FAILED": "FAILED", "TIMEOUT": "FAILED", "INTERRUPTED": "KILLED"}
_MAX_PARAM = 500


class RunLogError(RuntimeError):
    """The tracking store cannot be reached or a run is not in it."""


class RunNotFoundError(RunLogError, LookupError):
    """No pipeline run has the id asked for (an input error)."""


def _experiment_name(pipeline: str) -> str:
    return f"pipeline-{pipeline}"


class RunLog:
    """Pipeline runs in the MLflow tracking store.

    Parameters
    ----------
    tracking_uri : str, optional
        Defaults to ``Settings.tracking_uri``.
    artifact_root : path, optional
        Where new experiments keep artifacts; defaults to ``Settings.artifact_root``.
    """

    def __init__(self, tracking_uri: str | None = None, *, artifact_root: str | os.PathLike | None = None) -> None:
        settings = get_settings()
        self.tracking_uri = tracking_uri or settings.tracking_uri
        self.artifact_root = Path(artifact_root or settings.artifact_root)
        from mlflow.tracking import MlflowClient

        try:
            if self.tracking_uri.startswith("sqlite:///"):
                Path(self.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            self.client = MlflowClient(tracking_uri=self.tracking_uri)
            self.client.search_experiments(max_results=1)
        except Exception as exc:
            raise RunLogError(f"the tracking store at {self.tracking_uri} is not usable: {type(exc).__name__}: {exc}") from exc

    # ------------------------------------------------------------ writing
    def _experiment_id(self, pipeline: str) -> str:
        name = _experiment_name(pipeline)
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        location = (self.artifact_root / name).resolve().as_uri()
        try:
            return self.client.create_experiment(name, artifact_location=location)
        except Exception:  # created concurrently
            exp = self.client.get_experiment_by_name(name)
            if exp is None:
                raise
            return exp.experiment_id

    def start_pipeline_run(self, *, pipeline: str, run_id: str, as_of: str, parameters: dict, spec_path: str) -> str:
        """Create the parent run; returns its MLflow run id."""
        run = self.client.create_run(
            self._experiment_id(pipeline), run_name=run_id,
            tags={
                "workbench.kind": "pipeline", "workbench.pipeline": pipeline, "workbench.run_id": run_id,
                "workbench.as_of": as_of, "workbench.status": "RUNNING", "workbench.spec": spec_path,
            },
        )
        mlflow_id = run.info.run_id
        for key, value in parameters.items():
            text = json.dumps(value, default=str) if not isinstance(value, str) else value
            self.client.log_param(mlflow_id, key, text[:_MAX_PARAM])
        return mlflow_id

    def reopen(self, mlflow_id: str) -> None:
        """Mark a parent run RUNNING again (resume)."""
        self.client.update_run(mlflow_id, status="RUNNING")
        self.client.set_tag(mlflow_id, "workbench.status", "RUNNING")

    def start_stage(self, parent: str, *, pipeline: str, run_id: str, stage: str, index: int, resumed: bool) -> str:
        """Create a child run for one stage."""
        run = self.client.create_run(
            self._experiment_id(pipeline), run_name=f"{index:02d}-{stage}",
            tags={
                "mlflow.parentRunId": parent, "workbench.kind": "stage", "workbench.pipeline": pipeline,
                "workbench.run_id": run_id, "workbench.stage": stage, "workbench.status": "RUNNING",
                "workbench.resumed": str(resumed).lower(),
            },
        )
        return run.info.run_id

    def log_notebook(self, mlflow_id: str, path: str | os.PathLike | None, *, folder: str = "notebooks") -> None:
        """Attach an executed notebook to a run (artifact folder ``notebooks/`` by default)."""
        if path is not None and Path(path).exists():
            self.client.log_artifact(mlflow_id, str(path), artifact_path=folder)

    def end_stage(self, mlflow_id: str, stage_record: dict) -> None:
        """Record a stage's figures and status, and end its child run."""
        for key in ("duration_s", "cells_s", "overhead_s", "attempts"):
            if stage_record.get(key) is not None:
                self.client.log_metric(mlflow_id, key, float(stage_record[key]))
        status = stage_record["status"]
        self.client.set_tag(mlflow_id, "workbench.status", status)
        if stage_record.get("error"):
            self.client.set_tag(mlflow_id, "workbench.error", stage_record["error"]["message"][:4000])
        self.client.set_terminated(mlflow_id, status=TERMINAL_MLFLOW.get(status, "FAILED"))

    def end_pipeline_run(self, mlflow_id: str, record: dict, run_json: Path | None = None) -> None:
        """Record the run's outcome, attach run.json and end the parent run."""
        status = record["status"]
        if record.get("duration_s") is not None:
            self.client.log_metric(mlflow_id, "duration_s", float(record["duration_s"]))
        self.client.set_tag(mlflow_id, "workbench.status", status)
        self.client.set_tag(mlflow_id, "workbench.published", str(bool(record.get("published"))).lower())
        if record.get("error"):
            self.client.set_tag(mlflow_id, "workbench.error", record["error"]["message"][:4000])
        if run_json is not None and run_json.exists():
            self.client.log_artifact(mlflow_id, str(run_json))
        self.client.set_terminated(mlflow_id, status=TERMINAL_MLFLOW.get(status, "FAILED"))

    def mark(self, mlflow_id: str, status: str, message: str | None = None) -> None:
        """Set a run's final status without anything else (e.g. an interrupted run found later)."""
        self.client.set_tag(mlflow_id, "workbench.status", status)
        if message:
            self.client.set_tag(mlflow_id, "workbench.error", message[:4000])
        self.client.set_terminated(mlflow_id, status=TERMINAL_MLFLOW.get(status, "FAILED"))

    def close_orphan_stages(self, parent: str, reason: str) -> list[str]:
        """End the stage runs of ``parent`` still marked RUNNING (their runner was killed).

        Each is set KILLED in MLflow, ``workbench.status`` INTERRUPTED, and tagged
        ``workbench.closed`` with ``reason``. Returns the MLflow ids closed.
        """
        try:
            experiment = self.client.get_run(parent).info.experiment_id
        except Exception as exc:  # the parent is gone from the store: nothing to close
            log.warning("cannot look up pipeline run %s: %s", parent, exc)
            return []
        found = self.client.search_runs(
            [experiment], filter_string=f"tags.`mlflow.parentRunId` = '{parent}' and attributes.status = 'RUNNING'",
            max_results=1000,
        )
        closed = []
        for run in found:
            mlflow_id = run.info.run_id
            self.client.set_tag(mlflow_id, "workbench.status", "INTERRUPTED")
            self.client.set_tag(mlflow_id, "workbench.closed", reason[:4000])
            if "workbench.error" not in run.data.tags:
                self.client.set_tag(mlflow_id, "workbench.error", reason[:4000])
            self.client.set_terminated(mlflow_id, status="KILLED")
            closed.append(mlflow_id)
        return closed

    # ------------------------------------------------------------ reading
    def _experiment_ids(self, pipeline: str | None) -> list[str]:
        if pipeline:
            exp = self.client.get_experiment_by_name(_experiment_name(pipeline))
            return [exp.experiment_id] if exp else []
        return [e.experiment_id for e in self.client.search_experiments(filter_string="name LIKE 'pipeline-%'")]

    @staticmethod
    def _row(run) -> dict:
        tags, metrics = run.data.tags, run.data.metrics
        return {
            "run_id": tags.get("workbench.run_id", ""),
            "pipeline": tags.get("workbench.pipeline", ""),
            "as_of": tags.get("workbench.as_of", ""),
            "status": tags.get("workbench.status", run.info.status),
            "stage": tags.get("workbench.stage"),
            "started": run.info.start_time,
            "duration_s": metrics.get("duration_s"),
            "attempts": metrics.get("attempts"),
            "published": tags.get("workbench.published") == "true",
            "error": tags.get("workbench.error"),
            "mlflow_run_id": run.info.run_id,
            "artifact_uri": run.info.artifact_uri,
        }

    def list_runs(self, pipeline: str | None = None, *, limit: int = 20) -> list[dict]:
        """The latest pipeline runs, newest first."""
        ids = self._experiment_ids(pipeline)
        if not ids:
            return []
        runs = self.client.search_runs(
            ids, filter_string="tags.`workbench.kind` = 'pipeline'", max_results=limit, order_by=["attributes.start_time DESC"],
        )
        return [self._row(r) for r in runs]

    def get_run(self, run_id: str) -> dict:
        """One pipeline run with its stage runs (``stages``, in execution order)."""
        ids = self._experiment_ids(None)
        found = self.client.search_runs(ids, filter_string=f"tags.`workbench.run_id` = '{run_id}'", max_results=500) if ids else []
        parents = [r for r in found if r.data.tags.get("workbench.kind") == "pipeline"]
        if not parents:
            raise RunNotFoundError(f"no pipeline run {run_id!r} in the tracking store at {self.tracking_uri}")
        row = self._row(parents[0])
        row["parameters"] = dict(parents[0].data.params)
        stages = [self._row(r) for r in found if r.data.tags.get("workbench.kind") == "stage"]
        row["stages"] = sorted(stages, key=lambda s: s["started"] or 0)
        return row


# ---------------------------------------------------------------- run folders
def read_run_record(run_dir: str | os.PathLike) -> dict:
    """The ``run.json`` of a run folder."""
    path = Path(run_dir) / "run.json"
    if not path.exists():
        raise RunLogError(f"{path} does not exist")
    return json.loads(path.read_text(encoding="utf-8"))


def iter_run_records(pipeline_dir: str | os.PathLike) -> list[dict]:
    """Every readable ``run.json`` under a pipeline's folder, oldest first."""
    out = []
    for path in sorted(Path(pipeline_dir).glob("*/run.json")):
        try:
            out.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError):
            log.warning("unreadable run record %s", path)
    return sorted(out, key=lambda r: r.get("started_at") or "")


def find_run_dir(run_id: str, runs_dir: str | os.PathLike | None = None) -> Path:
    """The folder of run ``run_id`` under ``runs_dir/<pipeline>/`` (any pipeline)."""
    root = Path(runs_dir) if runs_dir is not None else get_settings().runs_dir
    hits = [p.parent for p in root.glob(f"*/{run_id}/run.json")]
    if not hits:
        raise RunLogError(f"no run folder for run {run_id!r} under {root}")
    return hits[0]
