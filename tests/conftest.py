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
# no alert leaves a test run for a channel file in the checkout: an empty one unless a test sets its own
os.environ["WORKBENCH_ALERTS_CONFIG"] = str(_SESSION_DIR / "alerts.yaml")
(_SESSION_DIR / "alerts.yaml").write_text("channels: {}\n")

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

# Hypothesis: "ci" (default) is reproducible and bounded; HYPOTHESIS_PROFILE=dev searches wider.
settings.register_profile("ci", derandomize=True, max_examples=100, deadline=None, print_blob=True)
settings.register_profile("dev", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


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


def _postgres_bin() -> Path | None:
    import glob

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory):
    """A throwaway PostgreSQL server (Debian's binaries, a free port on 127.0.0.1) and its URL.

    Skipped where PostgreSQL is not installed, unless ``CI`` is set (then a missing server is a
    failure). As root, ``initdb`` and ``pg_ctl`` run as ``nobody``, who owns the data folder.
    """
    import shutil
    import socket
    import subprocess

    bindir = _postgres_bin()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed (/usr/lib/postgresql/*/bin) and CI is set")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="workbench-pg-"))
    data = root / "data"
    prefix: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "nobody", "nogroup")
        os.chmod(root, 0o700)
        prefix = ["runuser", "-u", "nobody", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def run(*args: str) -> None:
        subprocess.run([*prefix, *args], check=True, capture_output=True, timeout=120)

    run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
    run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-o",
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
    try:
        run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "ledger")
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/ledger"
    finally:
        from research.paper.db import dispose

        dispose()
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def _hypothesis_profiles() -> None:
    """``ci`` (default: derandomized, fixed examples) and ``dev``, chosen by HYPOTHESIS_PROFILE."""
    from hypothesis import settings

    settings.register_profile("ci", derandomize=True, max_examples=60, deadline=None, print_blob=True)
    settings.register_profile("dev", max_examples=300, deadline=None)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


_hypothesis_profiles()
