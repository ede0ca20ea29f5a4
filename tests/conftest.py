"""Test isolation: every test session gets its own data dir, runs dir and tracking store."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="workbench-tests-"))
os.environ["WORKBENCH_DATA_DIR"] = str(_SESSION_DIR / "data")
os.environ["WORKBENCH_RUNS_DIR"] = str(_SESSION_DIR / "runs")
os.environ["WORKBENCH_ARTIFACT_ROOT"] = str(_SESSION_DIR / "mlruns" / "artifacts")
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{_SESSION_DIR / 'mlruns' / 'mlflow.db'}"
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path.home() / ".cache" / "workbench-numba"))
os.environ.setdefault("YF_DISABLE_CURL_CFFI", "1")
(_SESSION_DIR / "mlruns").mkdir(parents=True, exist_ok=True)

import pytest  # noqa: E402


def pytest_ignore_collect(collection_path, config):
    """Notebooks under tests/ are fixtures of other tests (some fail on purpose), not tests."""
    if collection_path.suffix == ".ipynb":
        return True
    return None


@pytest.fixture
def store(tmp_path):
    """A fresh, empty store in a temporary directory."""
    from research.data import Store

    return Store(tmp_path / "data")


@pytest.fixture(scope="session")
def session_dir() -> Path:
    """The temporary directory holding this session's data, runs and tracking store."""
    return _SESSION_DIR
