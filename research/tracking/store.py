"""Where MLflow records go, checked before any expensive work.

The tracking URI comes from :func:`research.config.get_settings` (``MLFLOW_TRACKING_URI``;
default ``sqlite:///<home>/mlruns/mlflow.db``) and artifacts go under
``WORKBENCH_ARTIFACT_ROOT`` (default ``<home>/mlruns/artifacts``), one folder per experiment.

A SQLite store is switched to WAL mode (readers never block the writer) and created under a
file lock, so several processes starting at once neither race on the schema nor lose writes.
An HTTP tracking server must answer ``/health`` within a few seconds, or
:class:`TrackingUnavailableError` says what to do.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from research.config import get_settings

__all__ = ["TrackingStore", "TrackingUnavailableError", "configure", "ensure_experiment", "sqlite_path"]

log = logging.getLogger(__name__)
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


class TrackingUnavailableError(RuntimeError):
    """The MLflow tracking store cannot be reached or written."""


@dataclass(frozen=True)
class TrackingStore:
    """A configured tracking store."""

    tracking_uri: str
    artifact_root: Path

    def experiment_artifact_location(self, experiment: str) -> str:
        """``file://`` URI of an experiment's artifact folder under the artifact root."""
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in experiment)
        return (self.artifact_root / safe).resolve().as_uri()


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for other schemes)."""
    if not uri.startswith("sqlite:"):
        return None
    rest = uri.split("?", 1)[0].removeprefix("sqlite:")
    if not rest.startswith("///"):
        raise TrackingUnavailableError(f"unsupported SQLite URI {uri!r}; use sqlite:///path/to/mlflow.db")
    return Path(rest[3:]).expanduser()


def _prepare_sqlite(uri: str, db: Path) -> None:
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrackingUnavailableError(f"cannot create the tracking folder {db.parent}: {exc}") from exc
    if not os.access(db.parent, os.W_OK) or (db.exists() and not os.access(db, os.W_OK)):
        raise TrackingUnavailableError(f"the tracking store {db} is not writable")
    try:
        with FileLock(str(db) + ".lock", timeout=120):
            con = sqlite3.connect(db, timeout=30)
            try:
                mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                con.execute("PRAGMA busy_timeout=30000")
                ready = con.execute(
                    "SELECT name FROM sqlite_master WHERE type='table' AND name='alembic_version'"
                ).fetchone()
            finally:
                con.close()
            if mode.lower() != "wal":
                log.warning("SQLite store %s is in %s mode, not WAL", db, mode)
            if not ready:  # create MLflow's schema once, while holding the lock
                from mlflow.tracking import MlflowClient

                MlflowClient(uri).search_experiments(max_results=1)
    except (sqlite3.Error, Timeout) as exc:
        raise TrackingUnavailableError(f"the tracking store {db} cannot be opened: {exc}") from exc


def _check_server(uri: str, timeout: float) -> None:
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (http(s) only)
            if resp.status != 200:
                raise TrackingUnavailableError(f"{url} answered HTTP {resp.status}")
    except (urllib.error.URLError, OSError) as exc:
        raise TrackingUnavailableError(
            f"the MLflow tracking server at {uri} is unavailable ({exc}); start it (for example "
            "`workbench mlflow`) or unset MLFLOW_TRACKING_URI to use the local SQLite store"
        ) from exc


def configure(*, tracking_uri: str | None = None, timeout: float = 5.0) -> TrackingStore:
    """Point MLflow at the workbench's store and check that it is usable (fail fast).

    Parameters
    ----------
    tracking_uri : str, optional
        Overrides the settings' ``tracking_uri``.
    timeout : float
        Seconds an HTTP tracking server gets to answer ``/health``.

    Raises
    ------
    TrackingUnavailableError
        The store cannot be created, opened or reached.
    """
    import mlflow

    settings = get_settings()
    uri = tracking_uri or settings.tracking_uri
    db = sqlite_path(uri)
    if db is not None:
        _prepare_sqlite(uri, db)
    elif uri.startswith(("http://", "https://")):
        _check_server(uri, timeout)
    elif uri.startswith("file:") or "://" not in uri:
        raise TrackingUnavailableError(
            f"tracking URI {uri!r} is a file store, which MLflow 3 no longer maintains; use "
            "sqlite:///path/to/mlflow.db or an http(s) tracking server"
        )
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return TrackingStore(tracking_uri=uri, artifact_root=Path(settings.artifact_root))


def ensure_experiment(name: str, store: TrackingStore | None = None) -> str:
    """The id of experiment ``name``, created with its artifacts under the artifact root."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    store = store or configure()
    client = MlflowClient(store.tracking_uri)
    exp = client.get_experiment_by_name(name)
    # through a tracking server, artifacts go where the server puts them (proxied, shared by the team)
    remote = store.tracking_uri.startswith(("http://", "https://"))
    location = None if remote else store.experiment_artifact_location(name)
    if exp is None:
        try:
            return client.create_experiment(name, artifact_location=location)
        except MlflowException:  # created meanwhile by another process
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
    if exp.lifecycle_stage == "deleted":
        client.restore_experiment(exp.experiment_id)
    return exp.experiment_id
