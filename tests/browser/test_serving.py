"""Bounded, safe serving: Host check, viewer cap, kernels freed on tab close and on aborted requests.

One server for the module (``guarded``): no pre-started kernels, at most one viewer, kernels with
no browser connected culled after 10 s.
"""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request

import pytest

pytestmark = pytest.mark.browser

PAGE = "/voila/render/05-pipeline-health.ipynb"


def kernel_count(pid: int) -> int:
    """Kernels (ipykernel processes) running under the server process ``pid``."""
    import psutil

    count = 0
    for child in psutil.Process(pid).children(recursive=True):
        try:
            count += "ipykernel" in " ".join(child.cmdline())
        except psutil.Error:
            pass
    return count


def _status(url: str, *, host: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=120) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def _wait_for_kernels(pid: int, count: int, *, timeout: float = 120.0) -> int:
    """Poll until ``count`` kernels run under ``pid`` (a wait, not a timed assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = kernel_count(pid)
        if now == count:
            return now
        time.sleep(0.5)
    return kernel_count(pid)


@pytest.mark.parametrize("path", ["/voila/static/voila.js", PAGE, "/voila/wb/plotly-workbench.min.js",
                                  "/voila/api/contents/", "/"])
def test_requests_naming_another_host_are_refused(guarded, path):
    port = guarded.url.rsplit(":", 1)[1]
    for host in ("attacker.example", f"attacker.example:{port}", f"127.0.0.1.nip.io:{port}"):
        status, body = _status(guarded.url + path, host=host)
        assert status == 403, f"{path} with Host {host} answered {status}"
        assert "Traceback" not in body
    assert kernel_count(guarded.pid) == 0, "a refused request started a kernel"


def test_the_plotly_bundle_is_served_by_the_server(guarded):
    request = urllib.request.Request(guarded.url + "/voila/wb/plotly-workbench.min.js",
                                     headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        assert resp.headers["Content-Encoding"] == "gzip"
        assert len(resp.read()) < 600_000
    status, body = _status(guarded.url + "/voila/wb/plotly-workbench.min.js")  # no gzip accepted
    assert status == 200 and body.startswith("/* plotly.js (workbench partial bundle: scatter")
    assert _status(guarded.url + "/voila/wb/README.md")[0] == 404


def test_an_aborted_page_request_leaves_no_kernel(guarded):
    assert _wait_for_kernels(guarded.pid, 0) == 0
    port = int(guarded.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(f"GET {PAGE} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        assert sock.recv(64).startswith(b"HTTP/1.1 200")
    assert _wait_for_kernels(guarded.pid, 0) == 0, "the aborted request's kernel is still running"


def test_past_the_cap_a_busy_page_and_closing_the_tab_frees_the_kernel(guarded, browser):
    assert _wait_for_kernels(guarded.pid, 0) == 0
    # no request routing here: Playwright's routing drops the beacon a page sends while unloading
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(120_000)
    elsewhere = []
    page.on("request", lambda r: None if r.url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:",
                                                            "about:")) else elsewhere.append(r.url))
    page.goto(guarded.url + PAGE)
    page.wait_for_selector(".wb-page .wb-figure .main-svg")
    assert page.context.cookies() and any(c["name"] == "_xsrf" for c in page.context.cookies())

    status, body = _status(guarded.url + PAGE)
    assert status == 503 and "The dashboards are busy" in body
    assert kernel_count(guarded.pid) == 1, "the busy answer started a kernel"

    kernel_id = page.evaluate("JSON.parse(document.getElementById('jupyter-config-data').textContent).kernelId")
    page.goto("about:blank")  # the tab leaves the dashboard: its shutdown request frees the kernel
    assert _wait_for_kernels(guarded.pid, 0) == 0, "leaving the page did not free its kernel"
    log = guarded.log.read_text(errors="replace")
    assert "'_xsrf' argument missing" not in log
    assert f"Kernel shutdown: {kernel_id}" in log
    assert not any("Culling" in line and kernel_id in line for line in log.splitlines()), "freed by the culler, not the tab"
    context.close()
    assert elsewhere == []


@pytest.fixture(scope="module")
def cold(tmp_path_factory, chromium_path):
    """No pre-started kernels, room for 8 viewers: only the cap on kernels starting at once applies."""
    from tests.browser.conftest import _serve

    yield from _serve(tmp_path_factory, pool_size=0, extra=["--max-viewers", "8", "--cull-idle-timeout", "10"])


def test_at_most_one_kernel_per_core_starts_at_once_the_others_get_the_busy_page(cold):
    import concurrent.futures
    import threading

    from research.viz.panels.guards import MAX_COLD_STARTS

    viewers = MAX_COLD_STARTS + 2
    barrier = threading.Barrier(viewers)

    def open_page() -> tuple[int, str]:
        barrier.wait()
        return _status(cold.url + PAGE)

    with concurrent.futures.ThreadPoolExecutor(viewers) as pool:
        answers = list(pool.map(lambda _: open_page(), range(viewers)))
    rendered = [body for status, body in answers if status == 200]
    busy = [body for status, body in answers if status == 503]
    assert len(rendered) + len(busy) == viewers, [status for status, _ in answers]
    assert len(rendered) == MAX_COLD_STARTS, f"{len(rendered)} kernels started at once (limit {MAX_COLD_STARTS})"
    assert all("wb-busy" in body and "preparing" in body for body in busy)
    assert all("kernelId" in body for body in rendered)
    assert _wait_for_kernels(cold.pid, 0, timeout=120) == 0, "the unconnected kernels were not culled"
