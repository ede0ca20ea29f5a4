"""Request guards and self-served assets of the dashboard server.

Every route of the server is wrapped so that:

* a request whose ``Host`` header names neither loopback nor one of the configured host names is
  refused with 403 (a page on another site cannot reach the server through DNS rebinding);
* a dashboard page is refused with a "busy" page (503) once ``max_viewers`` viewers are
  connected (kernels whose page was never connected are released within seconds, and evicted first
  when room is needed), so memory stays bounded however many people open it;
* a page request the client aborts before the page is delivered shuts its kernel down;
* the page sets the ``_xsrf`` cookie, so the request the page sends when its tab closes (which
  shuts its kernel down) is accepted.

Assets: plotly.js (a partial bundle of the trace types drawn, ``research/viz/static``) is served
under ``/voila/wb/``; the page template (``research/viz/voila_template``) is Voila's lab template
without its Font Awesome CDN links. Nothing a dashboard page loads comes from another host.
"""

from __future__ import annotations

import functools
import gzip
import html
import logging
import os
import re
from pathlib import Path
from typing import Any

import tornado.web
from tornado.httputil import HTTPServerRequest, split_host_and_port

__all__ = [
    "STATIC_DIR", "TEMPLATE_DIR", "PLOTLY_ASSET", "LOOPBACK_HOSTS", "MIN_TOKEN_LENGTH", "DEFAULT_MAX_VIEWERS",
    "host_allowed", "guard_handlers", "viewer_kernels", "counted_viewers", "busy_page", "OfflineAssetHandler", "PageLoadingHandler", "guarded_page_class",
]

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "voila_template"
PLOTLY_ASSET = "plotly-workbench.min.js"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
#: Shortest token accepted (a token is a shared password: 16 random characters or more).
MIN_TOKEN_LENGTH = 16
#: Viewer kernels (not counting pre-started ones) served at once before the busy page.
DEFAULT_MAX_VIEWERS = 8
#: Kernels started for viewers at once when no pre-started one is left (one per core, at least 2).
MAX_COLD_STARTS = max(os.cpu_count() or 1, 2)
_KERNEL_ID = re.compile(r'"kernelId":\s*"([0-9a-f-]{36})"')


def host_allowed(host_header: str | None, allowed: tuple[str, ...] | list[str]) -> bool:
    """Whether a request's ``Host`` header names loopback or one of ``allowed`` (port ignored).

    >>> host_allowed("127.0.0.1:8866", ())
    True
    >>> host_allowed("attacker.example:8866", ("research.example.com",))
    False
    """
    if not host_header:
        return False
    host, _ = split_host_and_port(host_header.strip().lower())
    host = host.strip("[]").rstrip(".")
    names = {h.lower().strip("[]").rstrip(".") for h in (*LOOPBACK_HOSTS, *allowed)}
    return host in names


class _HostGuard:
    """Mixin: refuse requests whose Host header is not one the server answers to."""

    def prepare(self) -> Any:
        allowed = self.settings.get("wb_allowed_hosts", ())
        if not host_allowed(self.request.headers.get("Host"), allowed):
            log.warning("refused a request for host %r (allowed: loopback and %s)",
                        self.request.headers.get("Host"), list(allowed) or "nothing else")
            self.clear()
            self.set_status(403)
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish("403: this server does not answer to that host name\n")
            return None
        return super().prepare()


def guard_handlers(handlers: list) -> list:
    """Every ``(pattern, handler[, kwargs])`` route with its handler behind the Host check."""
    out = []
    for route in handlers:
        if isinstance(route, tuple) and len(route) >= 2 and isinstance(route[1], type):
            cls = route[1]
            if not issubclass(cls, _HostGuard):
                cls = type(cls.__name__, (_HostGuard, cls), {"__module__": __name__})
            route = (route[0], cls, *route[2:])
        out.append(route)
    return out


def viewer_kernels(kernel_manager: Any) -> int:
    """Live kernels serving viewers: all kernels minus those ready in the pre-started pools.

    A pool kernel still starting counts as a viewer's until it is ready, so the cap errs on the
    safe side while the pools refill.
    """
    pooled = 0
    for pool in getattr(kernel_manager, "_pools", {}).values():
        for task in pool:
            try:
                pooled += bool(task.done() and not task.exception())
            except Exception:  # a cancelled task
                pass
    return max(len(kernel_manager.list_kernel_ids()) - pooled, 0)


def counted_viewers(kernel_manager: Any) -> int:
    """Viewers that count against the cap: kernels with a browser connected when the manager tracks
    websockets (:mod:`research.viz.panels.viewers`), else every kernel not waiting in a pool."""
    if hasattr(kernel_manager, "connected_viewers"):
        return int(kernel_manager.connected_viewers())
    return viewer_kernels(kernel_manager)


def _pooled(kernel_manager: Any, notebook: str) -> bool:
    """Whether a pre-started kernel (ready or starting) waits for ``notebook``."""
    try:
        return kernel_manager.get_pool_size(notebook) > 0
    except AttributeError:  # no pools configured
        return False


def busy_page(live: int, limit: int, *, starting: int = 0) -> str:
    """The page shown past the viewer limit, or when ``starting`` kernels are already being
    started for viewers (self-contained, reloads itself after 20 s)."""
    why = (f"{html.escape(str(live))} viewers have a dashboard open, the most this server serves at once "
           f"({html.escape(str(limit))})." if not starting else
           f"It is already preparing {html.escape(str(starting))} dashboards for other viewers, as many as it "
           "does at once.")
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><meta http-equiv='refresh' content='20'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'><title>Dashboards busy</title>"
        "<style>body{font-family:system-ui,sans-serif;color:#1f2933;max-width:36em;margin:4em auto;"
        "padding:0 1em}.wb-busy{background:#fff3c4;border-left:4px solid #cb6e17;padding:12px 16px}</style>"
        "</head><body><div class='wb-busy'><h2>The dashboards are busy</h2>"
        f"<p>{why} This page tries again by itself in 20 seconds.</p></div></body></html>"
    )


@functools.lru_cache(maxsize=4)
def _packed_asset(path: Path) -> bytes:
    """The gzip file of an asset, read once per server (every page load asks for it)."""
    return path.read_bytes()


class OfflineAssetHandler(tornado.web.RequestHandler):
    """Serve ``plotly-workbench.min.js`` from its gzip file (decompressed for clients without gzip)."""

    def initialize(self, path: str | Path = STATIC_DIR) -> None:
        self.root = Path(path)

    def get(self, name: str) -> None:
        if name != PLOTLY_ASSET:
            raise tornado.web.HTTPError(404)
        packed = _packed_asset(self.root / f"{name}.gz")
        self.set_header("Content-Type", "text/javascript; charset=utf-8")
        self.set_header("Cache-Control", "public, max-age=86400")
        self.set_header("Vary", "Accept-Encoding")
        if "gzip" in self.request.headers.get("Accept-Encoding", ""):
            self.set_header("Content-Encoding", "gzip")
            self.finish(packed)
        else:
            self.finish(gzip.decompress(packed))


class PageLoadingHandler(tornado.web.RequestHandler):
    """``GET /voila/wb/loading/<kernel id>``: the first script of a dashboard page reports that the
    page is loading in a browser, so its kernel waits longer for the browser's websocket
    (:meth:`research.viz.panels.viewers.ViewerKernelsMixin.page_loading`). Answers 204 whatever
    the id (nothing about other kernels is told)."""

    def initialize(self, manager: Any) -> None:
        self.manager = manager

    def get(self, kernel_id: str) -> None:
        if hasattr(self.manager, "page_loading"):
            self.manager.page_loading(kernel_id)
        self.set_header("Cache-Control", "no-store")
        self.set_status(204)
        self.finish()


def _drop_template_args(request: HTTPServerRequest) -> None:
    """Ignore a requested template or theme: one template only (Voila's others link CDNs)."""
    for arg in ("template", "theme"):
        request.arguments.pop(arg, None)
        request.query_arguments.pop(arg, None)


def _refuse_busy(handler: tornado.web.RequestHandler, *, live: int, limit: int, starting_cold: int) -> None:
    """Answer 503 with the busy page: too many viewer kernels live or starting (``limit``), or too
    many pages starting without a pre-started kernel (:data:`MAX_COLD_STARTS`)."""
    log.warning("busy: %d viewer kernels live or starting (limit %d), %d starting without a "
                "pre-started kernel (limit %d)", live, limit, starting_cold, MAX_COLD_STARTS)
    handler.set_status(503)
    handler.set_header("Retry-After", "20")
    handler.set_header("Cache-Control", "no-store")
    full = bool(limit and live >= limit)
    handler.finish(busy_page(live, limit, starting=0 if full else starting_cold))


async def _shutdown_aborted(kernel_manager: Any, kernel_id: str) -> None:
    """Shut down the kernel of a page request its viewer aborted (nobody will ever use it)."""
    log.info("page request aborted: shutting down kernel %s", kernel_id)
    try:
        await kernel_manager.shutdown_kernel(kernel_id)
    except Exception as exc:  # already gone
        log.debug("kernel %s: %s", kernel_id, exc)


async def _room_for_a_viewer(kernel_manager: Any, limit: int, inflight: int) -> int:
    """The viewers counted against ``limit`` (connected ones and pages being sent), after evicting
    kernels whose page was never connected when the total would pass it (memory stays bounded)."""
    if limit and hasattr(kernel_manager, "evict_waiting"):
        await kernel_manager.evict_waiting(keep_below=limit, total=viewer_kernels(kernel_manager) + inflight)
    return counted_viewers(kernel_manager) + inflight


def guarded_page_class(base: type) -> type:
    """Voila's page handler with the viewer limit, the ``_xsrf`` cookie and abort clean-up."""

    class GuardedPage(base):
        inflight = 0  # page requests being served right now (all instances)
        cold = 0  # of which, requests that start a kernel (no pre-started one was left)
        _counted, _cold, _closed, _kernel_id = False, False, False, None

        async def prepare(self) -> None:
            self._counted, self._closed, self._kernel_id = False, False, None
            _drop_template_args(self.request)
            limit = int(self.settings.get("wb_max_viewers") or 0)
            live = await _room_for_a_viewer(self.kernel_manager, limit, GuardedPage.inflight)
            name = self.path_args[0] if self.path_args else ""
            cold = not _pooled(self.kernel_manager, name)
            if (limit and live >= limit) or (cold and GuardedPage.cold >= MAX_COLD_STARTS):
                _refuse_busy(self, live=live, limit=limit, starting_cold=GuardedPage.cold)
                return None
            GuardedPage.inflight += 1
            GuardedPage.cold += cold
            self._counted, self._cold = True, cold
            result = super().prepare()
            if result is not None:
                await result
            if not self._finished:
                self.xsrf_token  # noqa: B018 (sets the _xsrf cookie the page's shutdown request sends back)

        def on_connection_close(self) -> None:
            self._closed = True
            super().on_connection_close()

        def on_finish(self) -> None:
            manager = self.kernel_manager
            if self._kernel_id is not None and not self._closed and hasattr(manager, "page_delivered"):
                manager.page_delivered(self._kernel_id)  # its browser now has a few seconds to connect
            if self._counted:
                GuardedPage.inflight -= 1
                GuardedPage.cold -= self._cold
                self._counted = self._cold = False
            super().on_finish()

        @tornado.web.authenticated
        async def get(self, path: str | None = None) -> None:
            try:
                async for chunk in self.get_generator(path=path):
                    if self._kernel_id is None:
                        found = _KERNEL_ID.search(chunk)
                        self._kernel_id = found.group(1) if found else None
                        if self._kernel_id is not None and hasattr(self.kernel_manager, "page_started"):
                            self.kernel_manager.page_started(self._kernel_id)
                    if self._closed and self._kernel_id is not None:
                        break
                    self.write(chunk)
                    self.flush()
            finally:
                if self._closed and self._kernel_id is not None:
                    await _shutdown_aborted(self.kernel_manager, self._kernel_id)

    GuardedPage.__name__ = GuardedPage.__qualname__ = base.__name__
    return GuardedPage
