"""Viewer-kernel book-keeping (research.viz.panels.viewers) on a stand-in kernel manager."""

from __future__ import annotations

import asyncio
import concurrent.futures

from hypothesis import given
from hypothesis import strategies as st

from research.viz.panels.viewers import ViewerKernelsMixin, viewer_kernel_manager_class


def _run(coro):
    """Run a scenario on its own event loop in a worker thread: the browser tests' Playwright
    session leaves an event loop running in the main thread, where asyncio.run() refuses."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


class _Task:
    def __init__(self, kid: str) -> None:
        self.kid = kid

    def done(self) -> bool:
        return True

    def result(self) -> dict:
        return {"kernel_id": self.kid}


class _Kernel:
    execution_state = "idle"


class FakeManager:
    """What the mixin needs of Voila's kernel manager: kernels, a pool, culling, shutdown."""

    def __init__(self, kernels=(), pool=()) -> None:
        self.kernels = {k: _Kernel() for k in [*kernels, *pool]}
        self._pools = {"nb.ipynb": [_Task(k) for k in pool]}
        self.culled, self.shut, self.filled, self.started = [], [], 0, []

    def __contains__(self, kid: str) -> bool:
        return kid in self.kernels

    def get_kernel(self, kid: str) -> _Kernel:
        return self.kernels[kid]

    def fill_if_needed(self, delay=None, notebook_name=None) -> None:
        self.filled += 1

    async def get_rendered_notebook(self, notebook_name, **kwargs):
        kid = self._pools[notebook_name].pop(0).result()["kernel_id"]
        return None, [], kid

    async def cull_kernel_if_idle(self, kid: str) -> None:
        self.culled.append(kid)

    async def _initialize(self, notebook_path, kernel_id=None, **kwargs) -> dict:
        self.started.append((notebook_path, kernel_id, asyncio.get_running_loop().time()))
        return {"kernel_id": kernel_id or f"new{len(self.started)}"}

    async def shutdown_kernel(self, kid: str) -> None:
        self.shut.append(kid)
        self.kernels.pop(kid, None)


def _manager(**kw) -> FakeManager:
    manager = viewer_kernel_manager_class(FakeManager)(**kw)
    manager.wb_connect_grace, manager.wb_release_after = 0.2, 0.1
    return manager


def test_a_handed_pool_kernel_is_never_culled_before_its_websocket_connects():
    async def scenario():
        km = _manager(pool=["k1"])
        _, _, kid = await km.get_rendered_notebook("nb.ipynb")
        await km.cull_kernel_if_idle(kid)  # a cull tick while the page is on its way
        km.page_delivered(kid)
        await km.cull_kernel_if_idle(kid)  # and one while the browser loads the page
        km.viewer_connected(kid)
        await km.cull_kernel_if_idle(kid)  # and one with the viewer connected
        return km

    km = _run(scenario())
    assert km.culled == [] and km.shut == [] and km.connected_viewers() == 1


def test_a_dead_pool_kernel_is_replaced_before_it_is_handed_out():
    async def scenario():
        km = _manager(pool=["dead", "alive"])
        km.kernels["dead"].execution_state = "dead"
        _, _, kid = await km.get_rendered_notebook("nb.ipynb")
        return km, kid

    km, kid = _run(scenario())
    assert kid == "alive"


def test_an_unconnected_page_releases_its_kernel_and_a_closed_websocket_too():
    async def scenario():
        km = _manager(kernels=["get", "tab"])
        for kid in ("get", "tab"):
            km.page_started(kid)
            km.page_delivered(kid)
        km.viewer_connected("tab")
        await asyncio.sleep(0.4)  # past the connect grace: only the page nobody opened is gone
        first = list(km.shut)
        km.viewer_disconnected("tab")
        await asyncio.sleep(0.3)
        return km, first

    km, first = _run(scenario())
    assert first == ["get"] and km.shut == ["get", "tab"] and km.connected_viewers() == 0


def test_a_quick_reconnect_keeps_the_kernel():
    async def scenario():
        km = _manager(kernels=["k"])
        km.page_started("k")
        km.viewer_connected("k")
        km.viewer_disconnected("k")
        km.viewer_connected("k")  # within the release delay
        await asyncio.sleep(0.3)
        return km

    km = _run(scenario())
    assert km.shut == [] and km.connected_viewers() == 1


@given(st.lists(st.sampled_from(["start", "deliver", "loading", "connect", "disconnect"]), max_size=12))
def test_only_connected_or_loading_viewers_are_counted_and_waiting_kernels_are_protected(events):
    async def scenario():
        km = _manager(kernels=["k"])
        open_sockets, loading = 0, False
        for event in events:
            if event == "start":
                km.page_started("k")
            elif event == "deliver":
                km.page_delivered("k")
            elif event == "loading":
                loading = km.page_loading("k") or loading
            elif event == "connect":
                km.viewer_connected("k")
                open_sockets, loading = open_sockets + 1, False
            elif open_sockets:
                km.viewer_disconnected("k")
                open_sockets -= 1
            assert loading == ("k" in km._wb()["loading"])
            assert km.connected_viewers() == (1 if (open_sockets or loading) and "k" in km else 0)
            km.culled.clear()
            await km.cull_kernel_if_idle("k")
            protected = open_sockets > 0 or "k" in km._wb()["waiting"]
            assert km.culled == ([] if protected else ["k"])
        for timer in km._wb()["timers"].values():
            timer.cancel()

    _run(scenario())


def test_eviction_frees_the_longest_waiting_delivered_page_first():
    async def scenario():
        km = _manager(kernels=["old", "new", "inflight"])
        km.wb_connect_grace = 60
        km.page_started("old")
        km.page_delivered("old")
        await asyncio.sleep(0.01)
        km.page_started("new")
        km.page_delivered("new")
        km.page_started("inflight")  # its page is still being sent: never evicted
        evicted = await km.evict_waiting(keep_below=2, total=3)
        for timer in km._wb()["timers"].values():
            timer.cancel()
        return km, evicted

    km, evicted = _run(scenario())
    assert evicted == 2 and km.shut == ["old", "new"]


def test_a_page_loading_in_a_browser_keeps_its_kernel_past_the_connect_grace():
    """A busy machine can take longer than the connect grace to load a page's scripts: the page's
    kernel must still be there when the browser connects (4 browsers at once at load 8-10 got a
    page whose kernel had been shut down 10 s after it was delivered)."""
    async def scenario():
        km = _manager(kernels=["browser", "curl", "early"])
        km.wb_loading_grace = 0.8
        for kid in ("browser", "curl", "early"):
            km.page_started(kid)
        assert km.page_loading("early")  # the page's script ran before the server finished the request
        for kid in ("browser", "curl", "early"):
            km.page_delivered(kid)
        assert km.page_loading("browser") and not km.page_loading("unknown")
        await asyncio.sleep(0.4)  # past the connect grace
        during = list(km.shut), km.connected_viewers()
        km.viewer_connected("browser")
        await asyncio.sleep(0.7)  # past the loading grace: the page that never connected goes too
        return km, during

    km, (shut_during, counted_during) = _run(scenario())
    assert shut_during == ["curl"] and counted_during == 2
    assert km.shut == ["curl", "early"] and km.connected_viewers() == 1


def test_eviction_keeps_a_page_loading_in_a_browser():
    async def scenario():
        km = _manager(kernels=["old", "loading", "new"])
        km.wb_connect_grace = 60
        for kid in ("old", "loading", "new"):
            km.page_started(kid)
            km.page_delivered(kid)
            await asyncio.sleep(0.01)
        km.page_loading("loading")
        evicted = await km.evict_waiting(keep_below=1, total=3)
        for timer in km._wb()["timers"].values():
            timer.cancel()
        return km, evicted

    km, evicted = _run(scenario())
    assert evicted == 2 and km.shut == ["old", "new"]


def test_a_pool_refill_waits_for_the_pages_on_their_way_to_their_browsers():
    """Starting a pool kernel executes a dashboard (seconds of CPU): it waits until the page
    handed out has its browser connected, so it does not slow that browser's page load."""
    async def scenario():
        km = _manager(kernels=["viewer"])
        km.wb_connect_grace = km.wb_refill_wait = 5
        loop = asyncio.get_running_loop()
        km.page_started("viewer")
        km.page_delivered("viewer")
        t0 = loop.time()
        refill = loop.create_task(km._initialize("nb.ipynb"))
        await asyncio.sleep(0.5)
        started_early = list(km.started)
        km.viewer_connected("viewer")
        await refill
        restart = await km._initialize("nb.ipynb", "viewer")  # a restart never waits
        return km, started_early, km.started[0][2] - t0, restart

    km, early, waited, restart = _run(scenario())
    assert early == [] and 0.5 <= waited < 2 and restart == {"kernel_id": "viewer"}


def test_a_pool_refill_waits_no_longer_than_its_bound():
    async def scenario():
        km = _manager(kernels=["never"])
        km.wb_connect_grace, km.wb_refill_wait = 60, 0.3
        km.page_started("never")
        km.page_delivered("never")
        waited = await km._wb_pages_arrived()
        for timer in km._wb()["timers"].values():
            timer.cancel()
        return waited

    assert 0.3 <= _run(scenario()) < 1.5


def test_the_mixin_is_added_once():
    cls = viewer_kernel_manager_class(FakeManager)
    assert viewer_kernel_manager_class(cls) is cls and issubclass(cls, ViewerKernelsMixin)

