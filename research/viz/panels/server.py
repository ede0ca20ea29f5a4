"""Serve the dashboards with Voila, locked down for viewers.

What a viewer can reach, and nothing more:

* the rendered dashboards of the ``dashboards/`` folder (the server's root: nothing outside it is
  reachable), with sources stripped and tracebacks hidden;
* the listing of those dashboards (names only; the contents API never returns file content);
* Voila's and the widget extensions' own static files.

``/voila/files/`` serves nothing (empty allow-list), so ``.env``, data files, ``mlruns/`` and
notebook sources are never served. Kernels are pre-started and have already rendered each
dashboard (``preheat_kernel``), idle viewer kernels are culled, and when the pipeline publishes a
new run the pre-started kernels are replaced so the next viewer sees it.

The base settings live in ``dashboards/voila.json`` (used too by ``cd dashboards && voila .``);
the security settings are applied after it is read, so no configuration file can relax them. A bind to an address other than loopback is refused unless a token is configured.

Requests are guarded (:mod:`research.viz.panels.guards`): the ``Host`` header must name loopback
or a configured host name, viewer kernels are capped (a "busy" page past the cap), a kernel is
shut down when its tab closes or its page request is aborted, and every asset (plotly.js as a
partial bundle of the trace types drawn, the page template without CDN links) is served by the server itself.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from research.config import get_settings
from research.viz.panels.guards import (
    DEFAULT_MAX_VIEWERS,
    MIN_TOKEN_LENGTH,
    STATIC_DIR,
    TEMPLATE_DIR,
    OfflineAssetHandler,
    PageLoadingHandler,
    guard_handlers,
    guarded_page_class,
)

__all__ = [
    "BindRefusedError", "TokenTooShortError", "DEFAULT_PORT", "FIGURES_ENV", "TOKEN_ENV", "SECURITY_SETTINGS", "SECURITY_HEADERS", "dashboards_dir", "is_loopback",
    "check_bind", "build_app", "serve", "start_server", "wait_until_ready", "stop_server", "free_port",
]

log = logging.getLogger(__name__)

DEFAULT_PORT = 8866
TOKEN_ENV = "WORKBENCH_DASHBOARDS_TOKEN"
#: Set for the kernels of the server: figures are drawn by the page's own plotly.js bundle.
FIGURES_ENV = "WORKBENCH_FIGURES"

#: Lab extensions installed in the environment that no dashboard uses: not sent to viewers (each
#: costs requests and script evaluation on every page load).
UNUSED_EXTENSIONS = ("jupyterlab-plotly", "anywidget", "jupyterlab_pygments", "jupyterlab-jupytext")

#: Websocket keep-alive pings (milliseconds): a viewer silent for the timeout is disconnected.
WS_PING_INTERVAL_MS = 5_000
WS_PING_TIMEOUT_MS = 15_000

#: Settings no configuration file may change (set on the application after its files are read).
SECURITY_SETTINGS: dict[str, object] = {
    "strip_sources": True,
    "show_tracebacks": False,
    "file_allowlist": [],
    "file_denylist": [r".*"],
}
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "frame-ancestors 'self'",
}


class BindRefusedError(ValueError):
    """A bind to a non-loopback address without a token."""


class TokenTooShortError(ValueError):
    """A token shorter than :data:`research.viz.panels.guards.MIN_TOKEN_LENGTH` characters."""


def dashboards_dir() -> Path:
    """The folder of Voila dashboards (``<home>/dashboards``)."""
    return get_settings().home / "dashboards"


def is_loopback(ip: str) -> bool:
    """Whether ``ip`` only accepts connections from this machine."""
    if ip == "localhost":
        return True
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def check_bind(ip: str, *, token: str | None) -> None:
    """Refuse to listen on a non-loopback address unless a token is configured.

    Raises
    ------
    BindRefusedError
        Naming the address and how to configure a token.
    TokenTooShortError
        When a token is given but is shorter than 16 characters.
    """
    if token and len(token) < MIN_TOKEN_LENGTH:
        raise TokenTooShortError(
            f"the dashboards token must be at least {MIN_TOKEN_LENGTH} characters (got {len(token)}); "
            "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(24))'"
        )
    if not is_loopback(ip) and not token:
        raise BindRefusedError(
            f"refusing to serve the dashboards on {ip!r} without authentication: set a token with "
            f"--token or the {TOKEN_ENV} environment variable, or bind to 127.0.0.1 and put an "
            "authenticating proxy in front (see docs/dashboards.md)"
        )


def build_app(*, root: str | os.PathLike | None = None, ip: str = "127.0.0.1", port: int = DEFAULT_PORT,
              open_browser: bool = False, token: str | None = None, pool_size: int | None = None,
              cull_idle_timeout: int | None = None, base_url: str = "/",
              allowed_hosts: tuple[str, ...] | list[str] = (), max_viewers: int | None = None) -> object:
    """An initialised (not started) Voila application serving ``root``, locked down.

    Configuration is read from ``root/voila.json`` only (not from the working directory or the
    user's Jupyter folders); then the arguments and :data:`SECURITY_SETTINGS` are applied on top,
    so no configuration file can relax them. ``allowed_hosts`` are the host names (besides
    loopback) the ``Host`` header may carry, e.g. the proxy's public name; ``max_viewers`` caps
    the viewer kernels live at once (0: no cap; default 8).
    """
    root = Path(root) if root is not None else dashboards_dir()
    if not (root / "voila.json").is_file():
        raise FileNotFoundError(f"expected the dashboards and their voila.json in {root}")
    app = _locked_voila_class()(config_file_paths=[str(root)])
    app.initialize([str(root)])
    if not (base_url.startswith("/") and base_url.endswith("/")):
        raise ValueError(f"base_url must start and end with '/', like '/dashboards/'; got {base_url!r}")
    app.ip, app.port, app.port_retries, app.open_browser = ip, int(port), 0, bool(open_browser)
    app.base_url = base_url
    if token:
        app.token = token
    conf = app.voila_configuration
    for key, value in SECURITY_SETTINGS.items():
        setattr(conf, key, value)
    # figures are drawn by the page's plotly.js bundle, not the plotly extension's full bundle; the
    # pages use no anywidget and show no source code, so those extensions' scripts are not loaded
    conf.extension_denylist = sorted({*conf.extension_denylist, *UNUSED_EXTENSIONS})
    if pool_size is not None:
        conf.preheat_kernel = pool_size > 0
        conf.default_pool_size = max(int(pool_size), 0)
    if cull_idle_timeout is not None:
        mkm = app.config.MappingKernelManager
        mkm.cull_idle_timeout = int(cull_idle_timeout)
        interval = int(mkm.cull_interval) if "cull_interval" in mkm else 300
        mkm.cull_interval = max(min(interval, int(cull_idle_timeout) // 4), 5)
    headers = dict(app.tornado_settings.get("headers", {}))
    extra_hosts = [h for h in allowed_hosts if h]
    if not is_loopback(ip) and ip not in ("0.0.0.0", "::"):
        extra_hosts.append(ip)
    app.tornado_settings = {
        **app.tornado_settings, "headers": {**headers, **SECURITY_HEADERS},
        "wb_allowed_hosts": tuple(extra_hosts),
        "wb_max_viewers": DEFAULT_MAX_VIEWERS if max_viewers is None else max(int(max_viewers), 0),
        # a client that stops answering pings (a sleeping laptop, a dropped network) is disconnected
        # within 15 s, and its kernel released (research.viz.panels.viewers)
        "ws_ping_interval": WS_PING_INTERVAL_MS, "ws_ping_timeout": WS_PING_TIMEOUT_MS,
    }
    return app


#: A ".." path segment, plain or percent-encoded, anywhere in a request path.
TRAVERSAL = r".*(?:\.\.|%2[eE]%2[eE]|%2[eE]\.|\.%2[eE]).*"


def _locked_voila_class() -> type:
    """Voila with a first route answering 404 to any path that tries to climb out of its folder."""
    import tornado.web
    from jupyter_server.utils import url_path_join
    from voila.app import Voila
    from voila.tornado.handler import TornadoVoilaHandler
    from voila.tornado.kernel_websocket_handler import VoilaKernelWebsocketHandler

    from research.viz.panels.viewers import tracked_websocket_class, viewer_kernel_manager_class

    class TraversalGuard(tornado.web.RequestHandler):
        def prepare(self) -> None:
            raise tornado.web.HTTPError(404)

    page_class = guarded_page_class(TornadoVoilaHandler)
    socket_class = tracked_websocket_class(VoilaKernelWebsocketHandler)

    class LockedVoila(Voila):
        def setup_template_dirs(self) -> None:
            super().setup_template_dirs()
            self.template_paths = [str(TEMPLATE_DIR), *self.template_paths]

        def init_settings(self) -> dict:
            settings = super().init_settings()
            # viewer kernels live as long as their viewer's websocket (research.viz.panels.viewers)
            manager = self.kernel_manager
            manager.__class__ = viewer_kernel_manager_class(type(manager))
            for key in ("wb_connect_grace", "wb_loading_grace", "wb_refill_wait", "wb_release_after"):
                if key in self.tornado_settings:
                    setattr(manager, key, float(self.tornado_settings[key]))
            return settings

        def init_handlers(self) -> list:
            handlers = [
                (url_path_join(self.server_url, TRAVERSAL), TraversalGuard),
                (url_path_join(self.server_url, r"/voila/wb/loading/([0-9a-f-]{36})"), PageLoadingHandler,
                 {"manager": self.kernel_manager}),
                (url_path_join(self.server_url, r"/voila/wb/([A-Za-z0-9._-]+)"), OfflineAssetHandler,
                 {"path": str(STATIC_DIR)}),
                *super().init_handlers(),
            ]
            swap = {TornadoVoilaHandler: page_class, VoilaKernelWebsocketHandler: socket_class}
            handlers = [(r[0], swap[r[1]], *r[2:]) if isinstance(r, tuple) and len(r) >= 2
                        and r[1] in swap else r for r in handlers]
            return guard_handlers(handlers)

    return LockedVoila


class _PoolRefresher:
    """Replace pre-started kernels when ``published.json`` of the pipeline changes."""

    def __init__(self, app: object, pointer: Path) -> None:
        self.app = app
        self.pointer = pointer
        self.stamp = self._stamp()

    def _stamp(self) -> float | None:
        try:
            return self.pointer.stat().st_mtime
        except OSError:
            return None

    async def check(self) -> None:
        stamp = self._stamp()
        if stamp == self.stamp:
            return
        self.stamp = stamp
        km = getattr(self.app, "kernel_manager", None)
        pools = getattr(km, "_pools", None)
        if not pools:
            return
        log.info("a new run was published: replacing the pre-started kernels")
        for notebook, pool in list(pools.items()):
            for task in [t for t in pool if t.done() and not t.exception()]:
                await km.shutdown_kernel(task.result()["kernel_id"])
            km.fill_if_needed(delay=0, notebook_name=notebook)


def serve(*, ip: str = "127.0.0.1", port: int = DEFAULT_PORT, open_browser: bool = False,
          token: str | None = None, pool_size: int | None = None, cull_idle_timeout: int | None = None,
          pipeline: str = "daily", root: str | os.PathLike | None = None, base_url: str = "/",
          allowed_hosts: tuple[str, ...] | list[str] = (), max_viewers: int | None = None) -> None:
    """Run the Voila server in this process until interrupted.

    Parameters
    ----------
    ip, port : str, int
        Where to listen (default 127.0.0.1:8866).
    open_browser : bool
        Open the dashboards in the default browser.
    token : str, optional
        Required for a non-loopback ``ip``; viewers then open ``/?token=...`` once.
    pool_size : int, optional
        Pre-started kernels per dashboard (``voila.json`` sets the default; 0 disables).
    cull_idle_timeout : int, optional
        Seconds after which an idle viewer kernel is shut down (``voila.json`` sets the default).
    pipeline : str
        Pipeline whose newly published runs refresh the pre-started kernels.
    root : path, optional
        The dashboards folder (default ``<home>/dashboards``).
    base_url : str
        URL prefix when a proxy serves the dashboards under a sub-path (``/dashboards/``).
    allowed_hosts : sequence of str
        Host names besides loopback that requests may name (a proxy's public name).
    max_viewers : int, optional
        Viewer kernels live at once before new viewers get a "busy" page (default 8; 0: no cap).
    """
    check_bind(ip, token=token)
    os.environ[FIGURES_ENV] = "page"  # the kernels inherit it
    from tornado.ioloop import PeriodicCallback

    app = build_app(root=root, ip=ip, port=port, open_browser=open_browser, token=token,
                    pool_size=pool_size, cull_idle_timeout=cull_idle_timeout, base_url=base_url,
                    allowed_hosts=allowed_hosts, max_viewers=max_viewers)
    refresher = _PoolRefresher(app, get_settings().runs_dir / pipeline / "published.json")
    PeriodicCallback(refresher.check, 15_000).start()
    app.start()


# ---------------------------------------------------------------- running it as a child process
def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(*, port: int, pool_size: int | None = None, env: dict[str, str] | None = None,
                 log_path: str | os.PathLike | None = None, extra: list[str] | None = None) -> subprocess.Popen:
    """Start ``workbench dashboards`` on 127.0.0.1:``port`` as a child process in its own session."""
    cmd = [sys.executable, "-m", "research", "dashboards", "--port", str(port)]
    if pool_size is not None:
        cmd += ["--pool-size", str(pool_size)]
    cmd += extra or []
    sink = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    try:
        return subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=sink, stderr=subprocess.STDOUT,
                                start_new_session=True)
    finally:
        if log_path:
            sink.close()


def wait_until_ready(base_url: str, *, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    """Poll Voila's static route (a page GET would start a kernel) until the server answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the dashboard server exited with code {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(f"{base_url}/voila/static/voila.js", timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"the dashboard server at {base_url} did not answer within {timeout:.0f} s")


def stop_server(proc: subprocess.Popen, *, timeout: float = 20.0) -> None:
    """Stop a server from :func:`start_server` and every kernel it started (no orphans)."""
    import psutil

    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        children = []
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout)
    _, alive = psutil.wait_procs(children, timeout=5)
    for child in alive:
        try:
            child.kill()
        except psutil.Error:
            pass
