"""The pipeline engine: papermill runs of parameterised notebooks, and the results they publish.

The engine knows nothing of markets: what a pipeline computes lives in its stage notebooks and
in :mod:`research.stages`; what runs around a pipeline (the as-of date of a run, alert delivery
after it) is named in the spec's ``hooks`` and called by :mod:`research.workflow.hooks`.

=====================  ==================================================================
module                 what
=====================  ==================================================================
``spec``               YAML pipeline specs and their validation before execution
``params``             typed parameters: types, conversion, bounds, secrets refused
``parameters_cell``    what a stage notebook's ``parameters`` cell declares
``execute``            one stage notebook through papermill, bounded in time
``runner``             ``run_pipeline`` / ``resume_run``: locks, retries, publish
``hooks``              the spec's hooks (``as_of``, ``after_run``): loaded, checked, called
``locks``              the run lock: one runner per pipeline and as-of date, stale holders
``runlog``             the run log in the tracking store (MLflow) and ``run.json``
``results``            what a run writes (``write_output``) and readers use (``latest``)
``notebooks``          helpers for stage notebooks
=====================  ==================================================================

Submodules are imported lazily: ``from research.workflow import run_pipeline`` works without
loading papermill in a stage kernel that only needs ``results``.
"""

from __future__ import annotations

from research.lazy import lazy_exports

__all__ = [
    "run_pipeline", "resume_run", "RunResult", "RunLocked", "load_spec", "plan_run", "SpecError",
    "RunLog", "write_output", "read_output", "publish", "latest",
]

_LOCATIONS = {
    "run_pipeline": "runner", "resume_run": "runner", "RunResult": "runner", "RunLocked": "runner",
    "load_spec": "spec", "plan_run": "spec", "SpecError": "spec", "RunLog": "runlog",
    "write_output": "results", "read_output": "results", "publish": "results", "latest": "results",
}

__getattr__, __dir__ = lazy_exports(__name__, _LOCATIONS)
