"""Viewer kernels that live exactly as long as their viewer.

A dashboard page is served with a kernel (a pre-started one from Voila's pool, or one started for
the request); the viewer's browser then connects a websocket to it. This module ties the kernel's
life to that websocket:

* **handed, not yet connected**: from the moment a kernel leaves the pool (or is started for a
  page) until its websocket connects, the culler never touches it, however long it waited in the
  pool. A pool kernel found dead when a viewer arrives is dropped and replaced at once.
* **page delivered, never connected** (curl, a link preview, a crawler): the kernel is shut down
  :attr:`ViewerKernelsMixin.wb_connect_grace` seconds after the page was delivered.
* **page loading in a browser**: the page's first script reports it at once
  (:meth:`ViewerKernelsMixin.page_loading`, a request clients that run no script never make), and
  the browser then has :attr:`ViewerKernelsMixin.wb_loading_grace` seconds to connect: a busy
  machine can take longer than the connect grace to load the page's scripts, and its viewer must
  not get a page whose kernel was shut down under it. Such a kernel counts as a viewer and is
  never evicted to make room.
* **connected**: never culled while a websocket is open.
* **websocket closed** (tab closed, browser killed, connection dropped; a sleeping client is
  found by the websocket pings): the kernel is shut down
  :attr:`ViewerKernelsMixin.wb_release_after` seconds later unless a websocket reconnects.

A pool refill (a kernel started and the dashboard executed in it, seconds of CPU) waits while
pages are on their way to browsers that have not connected yet, at most
:attr:`ViewerKernelsMixin.wb_refill_wait` seconds: on a busy machine it would otherwise compete
with the browsers loading those pages.

Only connected viewers and browsers loading their page count as viewers
(:meth:`ViewerKernelsMixin.connected_viewers`); kernels waiting for a client that runs no script
are bounded by evicting the longest-waiting one when room is needed.

The behaviour is added to Voila's kernel manager class (built by Voila at start) with
:func:`viewer_kernel_manager_class`, and the websocket handler is wrapped by
:func:`tracked_websocket_class`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

__all__ = [
    "CONNECT_GRACE", "LOADING_GRACE", "REFILL_WAIT", "RELEASE_AFTER", "ViewerKernelsMixin", "viewer_kernel_manager_class", "tracked_websocket_class",
]

log = logging.getLogger(__name__)

#: Seconds a kernel whose page was delivered waits for its browser's websocket.
CONNECT_GRACE = 10.0
#: Seconds a kernel whose page reported loading in a browser waits for that browser's websocket.
LOADING_GRACE = 90.0
#: Longest wait of a pool refill for the pages on their way to their browsers.
REFILL_WAIT = 15.0
#: Seconds after its last websocket closed before a viewer kernel is shut down (a reconnect wins).
RELEASE_AFTER = 3.0


class ViewerKernelsMixin:
    """Kernel-manager behaviour: protect handed kernels, release kernels whose viewer went.

    State is kept in plain attributes created on first use, so the mixin can be added to an
    existing manager instance (its class is swapped by :func:`viewer_kernel_manager_class`).
    """

    wb_connect_grace: float = CONNECT_GRACE
    wb_loading_grace: float = LOADING_GRACE
    wb_refill_wait: float = REFILL_WAIT
    wb_release_after: float = RELEASE_AFTER

    # ------------------------------------------------------------------ state
    def _wb_log(self) -> logging.Logger:
        """The server's log (the kernel manager's), else this module's."""
        return getattr(self, "log", None) or log

    def _wb(self) -> dict[str, dict]:
        state = self.__dict__.get("_wb_state")
        if state is None:
            # waiting: kernel id -> monotonic deadline (None while its page request is in flight)
            # loading: kernels whose page reported loading in a browser (a subset of waiting)
            state = {"waiting": {}, "sockets": {}, "timers": {}, "loading": set()}
            self.__dict__["_wb_state"] = state
        return state

    def connected_viewers(self) -> int:
        """Kernels with at least one websocket open, or whose page is loading in a browser (the
        viewers that count against the cap)."""
        state = self._wb()
        viewers = {kid for kid, n in state["sockets"].items() if n > 0} | state["loading"]
        return sum(1 for kid in viewers if kid in self)

    def waiting_kernels(self) -> list[str]:
        """Kernels handed to a page whose websocket has not connected, longest-delivered first."""
        waiting = self._wb()["waiting"]
        delivered = sorted((d, k) for k, d in waiting.items() if d is not None)
        return [k for _, k in delivered] + [k for k, d in waiting.items() if d is None]

    def _wb_grace(self, kernel_id: str) -> float:
        return self.wb_loading_grace if kernel_id in self._wb()["loading"] else self.wb_connect_grace

    # ------------------------------------------------------------------ events
    def page_started(self, kernel_id: str) -> None:
        """A page request is being served with ``kernel_id``: protect it until its browser connects."""
        state = self._wb()
        if state["sockets"].get(kernel_id, 0) == 0:
            state["waiting"][kernel_id] = None

    def page_delivered(self, kernel_id: str) -> None:
        """The page of ``kernel_id`` was delivered: its client has ``wb_connect_grace`` s to connect
        (``wb_loading_grace`` s once its page reported loading in a browser)."""
        state = self._wb()
        if kernel_id not in state["waiting"]:
            return
        grace = self._wb_grace(kernel_id)
        state["waiting"][kernel_id] = time.monotonic() + grace
        self._wb_later(kernel_id, grace, self._wb_expire_waiting)

    def page_loading(self, kernel_id: str) -> bool:
        """The page of ``kernel_id`` runs in a browser (its first script said so): the browser has
        ``wb_loading_grace`` s to connect. Returns whether ``kernel_id`` was waiting for one."""
        state = self._wb()
        if kernel_id not in state["waiting"] or kernel_id not in self:
            return False
        state["loading"].add(kernel_id)
        if state["waiting"][kernel_id] is not None:  # delivered already: a longer wait from now
            self.page_delivered(kernel_id)
        return True

    def viewer_connected(self, kernel_id: str) -> None:
        """A websocket to ``kernel_id`` opened."""
        state = self._wb()
        state["waiting"].pop(kernel_id, None)
        state["loading"].discard(kernel_id)
        state["sockets"][kernel_id] = state["sockets"].get(kernel_id, 0) + 1
        self._wb_cancel(kernel_id)
        self._wb_log().info("a viewer connected to kernel %s", kernel_id)

    def viewer_disconnected(self, kernel_id: str) -> None:
        """A websocket to ``kernel_id`` closed: release the kernel if none reconnects in time."""
        sockets = self._wb()["sockets"]
        sockets[kernel_id] = max(sockets.get(kernel_id, 0) - 1, 0)
        if sockets[kernel_id] == 0:
            self._wb_later(kernel_id, self.wb_release_after, self._wb_release)

    # ------------------------------------------------------------------ timers
    def _wb_later(self, kernel_id: str, delay: float, action: Any) -> None:
        self._wb_cancel(kernel_id)
        loop = asyncio.get_event_loop()
        self._wb()["timers"][kernel_id] = loop.call_later(
            delay, lambda: loop.create_task(action(kernel_id)))

    def _wb_cancel(self, kernel_id: str) -> None:
        timer = self._wb()["timers"].pop(kernel_id, None)
        if timer is not None:
            timer.cancel()

    async def _wb_expire_waiting(self, kernel_id: str) -> None:
        deadline = self._wb()["waiting"].get(kernel_id)
        if deadline is None or time.monotonic() < deadline - 0.05:
            return
        self._wb_log().info("no browser connected to kernel %s within %.0f s of its page: shutting it down",
                            kernel_id, self._wb_grace(kernel_id))
        await self._wb_shutdown(kernel_id)

    async def _wb_release(self, kernel_id: str) -> None:
        if self._wb()["sockets"].get(kernel_id, 0) > 0:
            return
        self._wb_log().info("the viewer of kernel %s left (websocket closed): shutting it down", kernel_id)
        await self._wb_shutdown(kernel_id)

    async def _wb_shutdown(self, kernel_id: str) -> None:
        self._wb()["timers"].pop(kernel_id, None)
        if kernel_id not in self:
            self._wb_forget(kernel_id)
            return
        try:
            await self.shutdown_kernel(kernel_id)
        except Exception as exc:  # already shutting down
            log.debug("kernel %s: %s", kernel_id, exc)
            self._wb_forget(kernel_id)

    def _wb_forget(self, kernel_id: str) -> None:
        state = self._wb()
        state["waiting"].pop(kernel_id, None)
        state["sockets"].pop(kernel_id, None)
        state["loading"].discard(kernel_id)
        self._wb_cancel(kernel_id)

    async def evict_waiting(self, *, keep_below: int, total: int) -> int:
        """Shut down delivered-but-unconnected kernels, longest waiting first, until fewer than
        ``keep_below`` viewer kernels remain (``total`` live now); a page loading in a browser is
        kept (its viewer is on the way). Returns how many were shut down."""
        state = self._wb()
        evicted = 0
        for kid in self.waiting_kernels():
            if total - evicted < keep_below or state["waiting"].get(kid) is None:
                break
            if kid in state["loading"]:
                continue
            self._wb_log().info("room needed: shutting down kernel %s (its page was never connected)", kid)
            await self._wb_shutdown(kid)
            evicted += 1
        return evicted

    # ------------------------------------------------------------------ kernel manager hooks
    async def get_rendered_notebook(self, notebook_name: str, *args: Any, **kwargs: Any) -> Any:
        """Voila's pooled page, with dead pool kernels replaced first and the kernel protected."""
        self._wb_drop_dead(notebook_name)
        render_task, cache, kernel_id = await super().get_rendered_notebook(notebook_name, *args, **kwargs)
        self.page_started(kernel_id)
        return render_task, cache, kernel_id

    def _wb_drop_dead(self, notebook_name: str) -> None:
        pool = getattr(self, "_pools", {}).get(notebook_name)
        if not pool:
            return
        for task in list(pool):
            if not task.done():
                continue
            try:
                kid = task.result()["kernel_id"]
                alive = kid in self and self.get_kernel(kid).execution_state != "dead"
            except Exception:  # a failed start
                alive = False
            if not alive:
                self._wb_log().warning("a pre-started kernel of %s is gone: replacing it", notebook_name)
                pool.remove(task)
        if not pool:
            self.fill_if_needed(delay=0, notebook_name=notebook_name)

    async def _initialize(self, notebook_path: str, kernel_id: str | None = None, **kwargs: Any) -> Any:
        """Voila's start of a pool kernel (a refill), once no page waits for its browser."""
        if kernel_id is None:  # a new pool kernel, not a restart
            await self._wb_pages_arrived()
        return await super()._initialize(notebook_path, kernel_id, **kwargs)

    async def _wb_pages_arrived(self) -> float:
        """Wait (at most ``wb_refill_wait`` s) until no delivered page waits for its browser;
        returns the seconds waited."""
        t0 = time.monotonic()
        waiting = self._wb()["waiting"]
        while time.monotonic() - t0 < self.wb_refill_wait:
            if not any(k in self for k in waiting):
                break
            await asyncio.sleep(0.2)
        return time.monotonic() - t0

    async def cull_kernel_if_idle(self, kernel_id: str) -> Any:
        """Never cull a kernel waiting for its viewer's websocket, nor one with a viewer connected."""
        state = self._wb()
        if kernel_id in state["waiting"] or state["sockets"].get(kernel_id, 0) > 0:
            return None
        return await super().cull_kernel_if_idle(kernel_id)

    async def shutdown_kernel(self, kernel_id: str, *args: Any, **kwargs: Any) -> Any:
        self._wb_forget(kernel_id)
        return await super().shutdown_kernel(kernel_id, *args, **kwargs)


def viewer_kernel_manager_class(base: type) -> type:
    """``base`` (Voila's kernel manager class) with :class:`ViewerKernelsMixin` in front."""
    if issubclass(base, ViewerKernelsMixin):
        return base
    return type(base.__name__, (ViewerKernelsMixin, base), {"__module__": __name__})


def tracked_websocket_class(base: type) -> type:
    """Voila's kernel websocket handler reporting opens and closes to the kernel manager."""

    class TrackedKernelWebsocket(base):
        _wb_open = False

        async def open(self, kernel_id: str) -> None:  # type: ignore[override]
            manager = self.kernel_manager
            if isinstance(manager, ViewerKernelsMixin):
                manager.viewer_connected(kernel_id)
                self._wb_open = True
            await super().open(kernel_id)

        def on_close(self) -> None:
            try:
                super().on_close()
            finally:
                if self._wb_open:
                    self._wb_open = False
                    self.kernel_manager.viewer_disconnected(self.kernel_id)

    TrackedKernelWebsocket.__name__ = TrackedKernelWebsocket.__qualname__ = base.__name__
    return TrackedKernelWebsocket
