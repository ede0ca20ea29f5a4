"""One context manager for a tracked run.

>>> with run("lstm-forecast", config, data=prices, run_name="SPX") as r:
...     r.log_metrics({"oos/lstm/rmse": 0.0081})
...     r.log_frame(predictions, "predictions")

On entry the store is checked (fail fast), the experiment created with its artifacts under the
workbench's artifact root, and the run records:

- params: the config flattened to dotted keys (``lstm.units``); values longer than
  :data:`MAX_PARAM_CHARS` go to ``params/<key>.txt`` artifacts and the param points there;
- ``config.yaml``: the raw config, so the run can be re-created from what it recorded;
- tags: git commit (and whether the tree was dirty), data source, symbol, interval and the
  store's sha256 of the data, plus an MLflow dataset input carrying the same digest.

An exception inside the block ends the run ``FAILED`` (``KILLED`` on Ctrl-C) with the error
in the ``error`` tag, and is re-raised.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import subprocess
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from research.config import get_settings
from research.data.csvsafe import to_csv
from research.tracking.store import TrackingStore, configure, ensure_experiment

__all__ = ["TrackedRun", "run", "flatten_config", "git_info", "MAX_PARAM_CHARS"]

log = logging.getLogger(__name__)
MAX_PARAM_CHARS = 250


def flatten_config(config: Mapping[str, Any], *, prefix: str = "") -> dict[str, Any]:
    """Nested mappings to dotted keys: ``{"lstm": {"units": 8}}`` -> ``{"lstm.units": 8}``."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten_config(value, prefix=f"{name}."))
        else:
            out[name] = value
    return out


def _as_dict(config: Any) -> dict[str, Any]:
    if config is None:
        return {}
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    if hasattr(config, "to_dict"):
        return dict(config.to_dict())
    if isinstance(config, Mapping):
        return dict(config)
    raise TypeError(f"config must be a mapping or a dataclass, not {type(config).__name__}")


def _plain(value: Any) -> Any:
    """YAML/JSON-friendly copy (tuples to lists, paths and timestamps to strings)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(v) for v in value]
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return str(value)


def git_info(path: Path | None = None) -> dict[str, str]:
    """``{"commit": sha, "dirty": "true"|"false"}`` of the checkout, or ``commit="unknown"``."""
    cwd = path or get_settings().home
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": "unknown"}
    return {"commit": sha, "dirty": "true" if dirty else "false"}


def _data_tags(data: pd.DataFrame) -> dict[str, str]:
    attrs = data.attrs or {}
    sha = attrs.get("sha256")
    symbol = attrs.get("symbol")
    if isinstance(sha, Mapping):
        symbol = symbol or ",".join(sha)
        sha = sha.get(symbol) if symbol in sha else ",".join(f"{k}:{v}" for k, v in sha.items())
    if not sha:
        from research.data.store import content_sha256

        sha = content_sha256(data)
    tags = {"data.sha256": str(sha), "data.rows": str(len(data))}
    for key in ("source", "interval", "synthetic"):
        if key in attrs:
            tags[f"data.{key}"] = str(attrs[key])
    if symbol:
        tags["data.symbol"] = str(symbol)
    if len(data):
        tags["data.start"], tags["data.end"] = str(data.index[0]), str(data.index[-1])
    return tags


class TrackedRun:
    """Helpers bound to one active MLflow run (what :func:`run` yields)."""

    def __init__(self, mlflow_run: Any, store: TrackingStore) -> None:
        self._run = mlflow_run
        self.store = store
        self.run_id: str = mlflow_run.info.run_id
        self.experiment_id: str = mlflow_run.info.experiment_id

    @property
    def artifact_uri(self) -> str:
        return self._run.info.artifact_uri

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log params; values longer than :data:`MAX_PARAM_CHARS` go to artifacts."""
        import mlflow

        short = {}
        for key, value in params.items():
            text = str(_plain(value))
            if len(text) > MAX_PARAM_CHARS:
                mlflow.log_text(text, f"params/{key}.txt")
                text = f"<{len(text)} chars: see artifact params/{key}.txt>"
            short[key] = text
        items = list(short.items())
        for i in range(0, len(items), 100):
            mlflow.log_params(dict(items[i:i + 100]))

    def log_metrics(self, metrics: Mapping[str, float], *, step: int | None = None, reasons: Mapping[str, str] | None = None) -> None:
        """Log metrics; a NaN is logged as NaN with a ``nan_reason.<key>`` tag saying why."""
        import mlflow

        values = {k: float(v) for k, v in metrics.items()}
        mlflow.log_metrics(values, step=step)
        nan_tags = {
            f"nan_reason.{k}": (reasons or {}).get(k, "undefined for this data")
            for k, v in values.items() if math.isnan(v)
        }
        if nan_tags:
            mlflow.set_tags(nan_tags)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        import mlflow

        mlflow.set_tags({k: str(v) for k, v in tags.items()})

    def log_dict(self, value: Mapping[str, Any], name: str) -> None:
        """A JSON or YAML document (by ``name``'s extension) as an artifact."""
        import mlflow

        mlflow.log_dict(_plain(value), name)

    def log_frame(self, frame: pd.DataFrame, name: str) -> None:
        """A table as ``<name>.parquet`` (and ``<name>.csv`` when small, for the UI)."""
        import mlflow

        with tempfile.TemporaryDirectory() as tmp:
            out = frame.copy()
            out.columns = [str(c) for c in out.columns]
            path = Path(tmp) / f"{Path(name).name}.parquet"
            out.to_parquet(path)
            folder = str(Path(name).parent) if str(Path(name).parent) != "." else None
            mlflow.log_artifact(str(path), artifact_path=folder)
            if len(out) <= 5000:
                csv = path.with_suffix(".csv")
                to_csv(out, csv)
                mlflow.log_artifact(str(csv), artifact_path=folder)

    def log_figure(self, figure: Any, name: str) -> None:
        """A matplotlib or plotly figure (plotly as interactive HTML)."""
        import mlflow

        mlflow.log_figure(figure, name if "." in Path(name).name else f"{name}.html")

    def log_artifacts(self, local_dir: str | Path, artifact_path: str | None = None) -> None:
        import mlflow

        mlflow.log_artifacts(str(local_dir), artifact_path=artifact_path)

    def log_text(self, text: str, name: str) -> None:
        import mlflow

        mlflow.log_text(text, name)


def _log_dataset(data: pd.DataFrame, tags: dict[str, str], context: str) -> None:
    import mlflow

    frame = data.reset_index()
    frame.columns = [str(c) for c in frame.columns]
    name = "/".join(tags.get(k, "?") for k in ("data.source", "data.interval", "data.symbol"))
    source = None
    if all(k in tags for k in ("data.source", "data.interval", "data.symbol")):
        from research.data.store import Store

        path = Store().path(tags["data.source"], tags["data.interval"], tags["data.symbol"])
        source = str(path) if path.exists() else None
    with warnings.catch_warnings():  # a local path matches two equivalent source types
        warnings.simplefilter("ignore", UserWarning)
        ds = mlflow.data.from_pandas(frame, source=source, name=name, digest=tags["data.sha256"][:32])
    mlflow.log_input(ds, context=context)


@contextmanager
def run(
    experiment: str,
    config: Any = None,
    *,
    run_name: str | None = None,
    data: pd.DataFrame | None = None,
    tags: Mapping[str, Any] | None = None,
    nested: bool = False,
    parent_run_id: str | None = None,
    tracking_uri: str | None = None,
) -> Iterator[TrackedRun]:
    """Start a tracked run; end it FINISHED, or FAILED when the block raises.

    Parameters
    ----------
    experiment : str
        Experiment name (created under the artifact root when new).
    config : mapping or dataclass
        Logged flattened as params and raw as ``config.yaml``.
    run_name : str, optional
        Display name of the run.
    data : pandas.DataFrame, optional
        The market data used (``load_prices`` output): its source, symbol, interval and the
        store's sha256 become tags, and it is logged as an MLflow dataset input.
    tags : mapping, optional
        Extra tags.
    nested, parent_run_id
        Nest under the active run, or under the run with this id.
    tracking_uri : str, optional
        Overrides the settings' tracking URI.

    Raises
    ------
    TrackingUnavailableError
        Before anything else, when the tracking store cannot be used.
    """
    import mlflow

    store = configure(tracking_uri=tracking_uri)
    exp_id = ensure_experiment(experiment, store)
    cfg = _plain(_as_dict(config))
    data_tags = _data_tags(data) if data is not None else {}
    all_tags = _run_tags(tags, data_tags, parent_run_id=parent_run_id)
    active = mlflow.start_run(experiment_id=exp_id, run_name=run_name, nested=nested, tags=all_tags)
    tracked = TrackedRun(active, store)
    try:
        tracked.log_params(flatten_config(cfg))
        tracked.log_dict(cfg, "config.yaml")
        if data is not None:
            _log_dataset(data, data_tags, context="training")
        yield tracked
    except KeyboardInterrupt:
        _end(tracked, "KILLED", "interrupted")
        raise
    except BaseException as exc:
        _end(tracked, "FAILED", f"{type(exc).__name__}: {exc}")
        raise
    else:
        mlflow.end_run("FINISHED")


def _run_tags(tags: Mapping[str, Any] | None, data_tags: dict[str, str], *,
              parent_run_id: str | None) -> dict[str, str]:
    """A run's tags: the git commit (and whether the tree was dirty), the caller's, the data's,
    and the parent run's id when nested under one."""
    git = git_info()
    all_tags = {
        "git.commit": git["commit"], "git.dirty": git["dirty"],
        "mlflow.source.git.commit": git["commit"], **{k: str(v) for k, v in (tags or {}).items()},
    }
    all_tags.update(data_tags)
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    return all_tags


def _end(tracked: TrackedRun, status: str, error: str) -> None:
    import mlflow

    try:
        mlflow.set_tag("error", error[:5000])
    except Exception:  # noqa: BLE001 - ending the run matters more than the tag
        log.exception("could not tag run %s with its error", tracked.run_id)
    mlflow.end_run(status)
