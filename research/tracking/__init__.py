"""The workbench's thin facade over MLflow: runs, the store and the model registry.

The store is ``sqlite:///<home>/mlruns/mlflow.db`` with artifacts under ``mlruns/artifacts``
unless ``MLFLOW_TRACKING_URI`` / ``WORKBENCH_ARTIFACT_ROOT`` say otherwise.

============================  ================================================================
entry point                   what it does
============================  ================================================================
``run(experiment, config)``   context manager: one tracked run (params, tags, data hash, FAILED
                              on error); see :mod:`research.tracking.runs`
``load_champion(name)``       the champion model for inference; see :mod:`research.tracking.registry`
============================  ================================================================

The training cycle that records into it lives one floor up, in :mod:`research.experiments`.

Names are imported on first use, so ``import research.tracking.runs`` stays light (no Keras,
no backtest engine).
"""

from __future__ import annotations

from research.lazy import lazy_exports

_EXPORTS = {
    "run": "runs", "TrackedRun": "runs", "flatten_config": "runs", "git_info": "runs",
    "configure": "store", "ensure_experiment": "store", "TrackingStore": "store",
    "TrackingUnavailableError": "store",
    "register_model": "registry", "promote": "registry", "champion_version": "registry",
    "latest_version": "registry", "load_champion": "registry", "load_version": "registry",
    "CHAMPION": "registry", "RegistryError": "registry", "NoChampionError": "registry",
}
__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
