"""Browser fixtures: Debian's Chromium through Playwright, and a dashboard server on loopback.

The server is ``workbench dashboards`` (pre-started kernels on) in a child process, serving a
copy of ``dashboards/`` under a temporary home that also holds files that must never be served:
a ``.env`` (inside and outside the dashboards folder), data files, and an ``mlruns/`` folder,
each with a canary string. The run it shows is written by ``run_fixture.write_fixture_run``, or,
with ``WORKBENCH_BROWSER_RUNS_DIR`` set, is the latest published run of that runs folder (to
check the dashboards on a real pipeline run). The paper-trading page reads a ledger holding an
account replayed up to the run's as-of date (``paper_fixture.write_fixture_account``), or the
ledger named by ``WORKBENCH_BROWSER_LEDGER_URL``.

Browser: ``WORKBENCH_CHROMIUM``, else ``/usr/bin/chromium``, else ``chromium`` on ``PATH``. When
none is found the tests are skipped, except with ``CI=true``, where they fail.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from research.viz.panels.server import free_port, start_server, stop_server, wait_until_ready

ROOT = Path(__file__).resolve().parents[2]
CANARY = "wb-canary-7f3c9e"
LAUNCH_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run"]


def find_chromium() -> str | None:
    """The Chromium executable to drive, or ``None``."""
    env = os.environ.get("WORKBENCH_CHROMIUM")
    if env:
        return env if Path(env).is_file() else None
    if Path("/usr/bin/chromium").is_file():
        return "/usr/bin/chromium"
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = find_chromium()
    if path is None:
        message = ("no Chromium found (set WORKBENCH_CHROMIUM, or install Debian's chromium: "
                   "apt-get install -y chromium)")
        if _in_ci():
            pytest.fail(f"CI=true and {message}")
        pytest.skip(message)
    return path


@dataclass
class Served:
    """A running dashboard server and what it serves."""

    url: str
    run_id: str
    as_of: str
    home: Path
    log: Path
    pid: int = 0
    canary: str = CANARY


def _plant_secrets(home: Path) -> None:
    """Files a viewer must never get, inside and outside the served folder."""
    (home / ".env").write_text(f"WORKBENCH_CANARY={CANARY}\n")
    (home / "dashboards" / ".env").write_text(f"WORKBENCH_CANARY={CANARY}\n")
    (home / "dashboards" / "prices.csv").write_text(f"timestamp,close\n{CANARY},1\n")
    (home / "dashboards" / "notes.txt").write_text(CANARY)
    for folder in ("mlruns", "data/store"):
        (home / folder).mkdir(parents=True, exist_ok=True)
    (home / "mlruns" / "mlflow.db").write_text(CANARY)
    (home / "data" / "store" / "SPX.parquet").write_text(CANARY)


def _write_run(runs: Path):
    spec = importlib.util.spec_from_file_location("wb_run_fixture", Path(__file__).with_name("run_fixture.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_fixture_run(runs)


def _write_account(home: Path, run) -> str:
    """A ledger with a paper account replayed up to the run's as-of date (``paper_fixture.py``)."""
    spec = importlib.util.spec_from_file_location("wb_paper_fixture", Path(__file__).with_name("paper_fixture.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    url = f"sqlite:///{home / 'ledger.db'}"
    module.write_fixture_account(url, as_of=str(run.as_of))
    return url


@pytest.fixture(scope="session")
def served(tmp_path_factory, chromium_path) -> Served:
    yield from _serve(tmp_path_factory, pool_size=1)


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, chromium_path) -> Served:
    """A server with no pre-started kernels, one viewer at most and unconnected kernels culled after 10 s."""
    yield from _serve(tmp_path_factory, pool_size=0, extra=["--max-viewers", "1", "--cull-idle-timeout", "10"])


def _serve(tmp_path_factory, *, pool_size: int, extra: list[str] | None = None):
    from research.workflow.results import latest

    home = tmp_path_factory.mktemp("home")
    shutil.copytree(ROOT / "dashboards", home / "dashboards",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    _plant_secrets(home)
    real = os.environ.get("WORKBENCH_BROWSER_RUNS_DIR")
    runs = Path(real) if real else home / "runs"
    run = latest("daily", runs_dir=runs / "daily") if real else _write_run(runs)
    if run is None:
        pytest.fail(f"WORKBENCH_BROWSER_RUNS_DIR={real} has no published daily run")
    port, log = free_port(), home / "server.log"
    env = {"WORKBENCH_HOME": str(home), "WORKBENCH_RUNS_DIR": str(runs), "PYTHONWARNINGS": "ignore",
           "WORKBENCH_DATA_DIR": os.environ["WORKBENCH_DATA_DIR"],
           "WORKBENCH_LEDGER_URL": os.environ.get("WORKBENCH_BROWSER_LEDGER_URL") or _write_account(home, run)}
    proc = start_server(port=port, pool_size=pool_size, env=env, log_path=log, extra=extra)
    try:
        wait_until_ready(f"http://127.0.0.1:{port}", timeout=90, proc=proc)
        yield Served(url=f"http://127.0.0.1:{port}", run_id=run.run_id, as_of=str(run.as_of), home=home, log=log,
                     pid=proc.pid)
    finally:
        stop_server(proc)


@pytest.fixture(scope="session")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=chromium_path, args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A page that may only talk to 127.0.0.1; ``page.blocked`` lists what it tried elsewhere (a test
    fails on any), ``page.requests`` every URL it asked for."""
    context = browser.new_context(viewport={"width": 1280, "height": 1600})
    pg = context.new_page()
    pg.blocked, pg.requests = [], []

    def route(r):
        pg.requests.append(r.request.url)
        if r.request.url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")):
            r.continue_()
        else:
            pg.blocked.append(r.request.url)
            r.abort()

    pg.route("**/*", route)
    pg.set_default_timeout(120_000)
    yield pg
    context.close()
