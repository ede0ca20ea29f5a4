"""Viewer kernels live as long as their viewer: never culled under a viewer, freed when it goes.

One server for the module (``aged``): one pre-started kernel per dashboard, idle kernels culled
after 10 s (a cull tick every 5 s), room for 10 connected viewers. Which kernel serves which
page, and when a browser connected to it, is read from the server's log (``kernelId`` of the
page; "a viewer connected to kernel <id>"; "Kernel shutdown: <id>").
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from research.viz.panels import DASHBOARDS
from research.viz.panels.viewers import CONNECT_GRACE
from tests.browser.conftest import LAUNCH_ARGS
from tests.browser.test_dashboards import ALL_DRAWN, _change_a_widget

pytestmark = pytest.mark.browser

CULL = 10
KERNEL_ID = "JSON.parse(document.getElementById('jupyter-config-data').textContent).kernelId"


@pytest.fixture(scope="module")
def aged(tmp_path_factory, chromium_path):
    from tests.browser.conftest import _serve

    yield from _serve(tmp_path_factory, pool_size=1,
                      extra=["--max-viewers", "10", "--cull-idle-timeout", str(CULL)])


def _log(served) -> str:
    return served.log.read_text(errors="replace")


def _wait_log(served, pattern: str, *, timeout: float) -> bool:
    """Poll the server log for ``pattern`` (a wait, not a timed assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if re.search(pattern, _log(served)):
            return True
        time.sleep(0.25)
    return bool(re.search(pattern, _log(served)))


def _pool_ready(served, *, timeout: float = 300) -> None:
    """Wait until every dashboard's pre-started kernel has rendered its page."""
    for name in DASHBOARDS:
        assert _wait_log(served, rf"Kernel pool of {re.escape(name)}\.ipynb is filled", timeout=timeout), \
            f"the pool of {name} never filled"


def _gone(served, kernel_ids, *, within: float) -> list[str]:
    """Kernel ids not shut down ``within`` seconds (polled)."""
    deadline = time.monotonic() + within
    while True:
        log = _log(served)
        left = [k for k in kernel_ids if f"Kernel shutdown: {k}" not in log]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.25)


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=180) as resp:
            resp.read()
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_an_aged_pool_gives_every_first_viewer_a_live_page(aged, browser):
    _pool_ready(aged)
    time.sleep(CULL + 6)  # every pre-started kernel is now older than the cull timeout
    context = browser.new_context(viewport={"width": 1280, "height": 1600})
    try:
        for name in sorted(DASHBOARDS):
            page = context.new_page()
            page.set_default_timeout(120_000)
            page.goto(f"{aged.url}/voila/render/{name}.ipynb")
            page.wait_for_function(ALL_DRAWN)
            kernel_id = page.evaluate(KERNEL_ID)
            assert _wait_log(aged, f"a viewer connected to kernel {kernel_id}", timeout=60), f"{name}: never connected"
            time.sleep(6)  # at least one cull tick with the viewer connected
            control, before, after = _change_a_widget(page, name)
            assert after != before, f"{name}: the first viewer's page is not live"
            log = _log(aged)
            assert f"Kernel shutdown: {kernel_id}" not in log, f"{name}: the first viewer's kernel was shut down"
            assert not any("Culling" in line and kernel_id in line for line in log.splitlines())
            page.close()
    finally:
        context.close()


def test_completed_gets_without_a_browser_leave_the_next_viewer_a_page(aged, browser):
    names = sorted(DASHBOARDS)
    urls = [f"{aged.url}/voila/render/{names[i % len(names)]}.ipynb" for i in range(20)]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        statuses = list(pool.map(_get, urls))
    assert statuses.count(200) >= 10, statuses  # more rendered pages than the 10 viewer slots
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(120_000)
    try:
        page.goto(f"{aged.url}/voila/render/05-pipeline-health.ipynb")
        assert "The dashboards are busy" not in page.inner_text("body")
        page.wait_for_function(ALL_DRAWN)
    finally:
        context.close()
    unconnected = re.findall(r"no browser connected to kernel ([0-9a-f-]{36})", _log(aged))
    assert len(unconnected) >= 10, "the kernels of pages no browser connected to were not released"


def test_a_browser_slower_than_the_connect_grace_still_gets_a_live_page(aged, browser):
    """On a busy machine a browser can take longer than the connect grace to load the page's
    scripts; its page said it is loading, so its kernel waits for it (here the page's main
    script is held back past the grace)."""
    _pool_ready(aged)
    context = browser.new_context()
    held = []
    context.route("**/voila/static/voila.js", lambda route: held.append(route))
    page = context.new_page()
    page.set_default_timeout(120_000)
    try:
        page.goto(f"{aged.url}/voila/render/05-pipeline-health.ipynb", wait_until="commit")
        # the parser waits at the page's main script: every cell has arrived, the page is delivered
        page.wait_for_function("() => !!document.querySelector('script[src$=\"/voila.js\"]')")
        kernel_id = page.evaluate(KERNEL_ID)
        page.wait_for_timeout((CONNECT_GRACE + 5) * 1000)  # past the grace with the scripts not loaded
        assert held, "the page never asked for its script"
        for route in held:
            route.continue_()
        page.wait_for_function(ALL_DRAWN)
        assert _wait_log(aged, f"a viewer connected to kernel {kernel_id}", timeout=60)
        control, before, after = _change_a_widget(page, "05-pipeline-health")
        assert after != before, "the slow browser's page is not live"
        assert f"Kernel shutdown: {kernel_id}" not in _log(aged)
    finally:
        context.close()


def _open_live(context, url: str, served) -> str:
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.goto(url)
    page.wait_for_function(ALL_DRAWN)
    kernel_id = page.evaluate(KERNEL_ID)
    assert _wait_log(served, f"a viewer connected to kernel {kernel_id}", timeout=60)
    return kernel_id


def test_ten_closed_tabs_leave_no_viewer_kernel_after_10_s(aged, browser):
    context = browser.new_context()
    names = sorted(DASHBOARDS)
    kernel_ids = [_open_live(context, f"{aged.url}/voila/render/{names[i % len(names)]}.ipynb", aged)
                  for i in range(10)]
    for page in context.pages:
        page.close()  # no beforeunload: the closed websocket alone must free the kernel
    context.close()
    assert _gone(aged, kernel_ids, within=10) == []


def test_ten_killed_browsers_leave_no_viewer_kernel_after_10_s(aged, chromium_path, tmp_path):
    names = sorted(DASHBOARDS)
    browsers, kernel_ids = [], []
    try:
        for i in range(10):
            before = set(re.findall(r"a viewer connected to kernel ([0-9a-f-]{36})", _log(aged)))
            url = f"{aged.url}/voila/render/{names[i % len(names)]}.ipynb"
            proc = subprocess.Popen([chromium_path, *LAUNCH_ARGS, f"--user-data-dir={tmp_path / str(i)}", url],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            browsers.append(proc)
            deadline = time.monotonic() + 120
            new: set[str] = set()
            while not new and time.monotonic() < deadline:
                time.sleep(0.5)
                new = set(re.findall(r"a viewer connected to kernel ([0-9a-f-]{36})", _log(aged))) - before
            assert new, f"browser {i} never connected to a kernel"
            kernel_ids.extend(new)
    finally:
        for proc in browsers:  # killed: no unload event, no closing handshake
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=30)
    assert len(kernel_ids) == 10
    assert _gone(aged, kernel_ids, within=10) == []
