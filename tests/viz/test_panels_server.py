"""Serving configuration: what Voila is told to expose, and the bind rule (no server started)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gzip
import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from research.viz.panels.guards import (
    DEFAULT_MAX_VIEWERS,
    PLOTLY_ASSET,
    STATIC_DIR,
    TEMPLATE_DIR,
    _HostGuard,
    host_allowed,
)
from research.viz.panels.layout import BUNDLED_TRACES
from research.viz.panels.server import (
    SECURITY_HEADERS,
    SECURITY_SETTINGS,
    BindRefusedError,
    TokenTooShortError,
    _PoolRefresher,
    build_app,
    check_bind,
    dashboards_dir,
    is_loopback,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("ip", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_binds_need_no_token(ip):
    assert is_loopback(ip)
    check_bind(ip, token=None)


@pytest.mark.parametrize("ip", ["0.0.0.0", "::", "192.168.1.20", "10.0.0.5", "example.org", ""])
def test_other_binds_are_refused_without_a_token(ip):
    with pytest.raises(BindRefusedError, match="without authentication"):
        check_bind(ip, token=None)
    with pytest.raises(BindRefusedError):
        check_bind(ip, token="")
    check_bind(ip, token="s3cret-token-of-24-chars")


@pytest.mark.parametrize("token", ["x", "short-token", "fifteen-chars!!"])
def test_tokens_have_a_minimum_length(token):
    with pytest.raises(TokenTooShortError, match="at least 16 characters"):
        check_bind("0.0.0.0", token=token)
    with pytest.raises(TokenTooShortError):
        check_bind("127.0.0.1", token=token)


@pytest.mark.parametrize("host, allowed, ok", [
    ("127.0.0.1:8866", (), True), ("localhost:8866", (), True), ("[::1]:8866", (), True), ("127.0.0.1", (), True),
    ("LOCALHOST.:8866", (), True), ("research.example.com", ("research.example.com",), True),
    ("attacker.example:8866", (), False), ("attacker.example", ("research.example.com",), False),
    ("127.0.0.1.attacker.example", (), False), ("", (), False), (None, (), False),
])
def test_the_host_header_must_name_loopback_or_a_configured_name(host, allowed, ok):
    assert host_allowed(host, allowed) is ok


def test_every_route_checks_the_host_and_pages_are_guarded():
    app = build_app(pool_size=0, allowed_hosts=["research.example.com"], max_viewers=3)
    assert app.tornado_settings["wb_allowed_hosts"] == ("research.example.com",)
    assert app.tornado_settings["wb_max_viewers"] == 3
    assert build_app(pool_size=0).tornado_settings["wb_max_viewers"] == DEFAULT_MAX_VIEWERS
    app.init_settings()
    handlers = app.init_handlers()
    assert all(issubclass(h[1], _HostGuard) for h in handlers if isinstance(h, tuple))
    assert any(h[0].endswith("/voila/wb/([A-Za-z0-9._-]+)") for h in handlers)
    assert {"jupyterlab-plotly", "anywidget", "jupyterlab_pygments", "jupyterlab-jupytext"} <= set(
        app.voila_configuration.extension_denylist)
    assert app.template_paths[0] == str(TEMPLATE_DIR)


def test_the_partial_plotly_bundle_is_the_one_its_provenance_names():
    readme = (STATIC_DIR / "README.md").read_text()
    code = gzip.decompress((STATIC_DIR / f"{PLOTLY_ASSET}.gz").read_bytes()).decode()
    assert f"`{hashlib.sha256(code.encode()).hexdigest()}`" in readme
    assert (STATIC_DIR / "LICENSE-plotly.js.txt").read_text().startswith("MIT License")
    import plotly

    bundled = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    version = bundled.read_text()[:200].split(" v", 1)[1].split()[0]
    recipe = json.loads((STATIC_DIR / "plotly-bundle" / "package.json").read_text())
    assert recipe["dependencies"]["plotly.js"] == version, "set plotly.js's version and run make plotly-bundle"
    banner = code.splitlines()[0]
    assert f" v{version} " in banner, "update the bundle with make plotly-bundle"
    # the bundle's banner, its recipe and BUNDLED_TRACES name the same trace types
    entry = (STATIC_DIR / "plotly-bundle" / "entry.js").read_text()
    required = set(re.findall(r"require\('plotly\.js/lib/(\w+)'\)", entry)) - {"core"}
    assert {"scatter", *required} == set(BUNDLED_TRACES)
    assert banner.startswith(f"/* plotly.js (workbench partial bundle: {', '.join(['scatter', *sorted(required, key=entry.index)])})")


def test_the_dashboards_folder_holds_only_dashboards_and_their_config():
    root = dashboards_dir()
    assert root == ROOT / "dashboards"
    names = sorted(p.name for p in root.iterdir() if not p.name.startswith(".ipynb_checkpoints"))
    assert all(n.endswith(".ipynb") for n in names if n != "voila.json"), names
    assert "voila.json" in names


def test_voila_json_agrees_with_the_enforced_settings():
    conf = json.loads((dashboards_dir() / "voila.json").read_text())
    voila_conf = conf["VoilaConfiguration"]
    for key, value in SECURITY_SETTINGS.items():
        assert voila_conf[key] == value, key
    assert voila_conf["preheat_kernel"] is True and voila_conf["default_pool_size"] >= 1
    assert conf["MappingKernelManager"]["cull_idle_timeout"] > 0


def test_app_serves_only_the_dashboards_folder_locked_down():
    app = build_app(port=18_866, cull_idle_timeout=120, pool_size=2)
    conf = app.voila_configuration
    assert Path(app.root_dir) == dashboards_dir()
    assert app.ip == "127.0.0.1" and app.port == 18_866 and not app.open_browser
    assert conf.strip_sources is True and conf.show_tracebacks is False
    assert conf.file_allowlist == [] and conf.file_denylist == [".*"]
    assert conf.preheat_kernel is True and conf.default_pool_size == 2
    assert app.config.MappingKernelManager.cull_idle_timeout == 120
    assert app.config.MappingKernelManager.cull_interval == 30
    assert app.tornado_settings["headers"]["X-Content-Type-Options"] == SECURITY_HEADERS["X-Content-Type-Options"]
    assert app.config_file_paths == [str(dashboards_dir())]


def test_no_config_file_can_relax_the_security_settings(tmp_path, monkeypatch):
    root = tmp_path / "dashboards"
    shutil.copytree(dashboards_dir(), root)
    hostile = {"VoilaConfiguration": {"strip_sources": False, "show_tracebacks": True,
                                      "file_allowlist": [".*"], "file_denylist": []}}
    (root / "voila.json").write_text(json.dumps(hostile))
    (tmp_path / "voila.json").write_text(json.dumps(hostile))  # in the working directory too
    monkeypatch.chdir(tmp_path)
    app = build_app(root=root, pool_size=0)
    conf = app.voila_configuration
    assert conf.strip_sources is True and conf.show_tracebacks is False
    assert conf.file_allowlist == [] and conf.file_denylist == [".*"]
    assert conf.preheat_kernel is False


def test_base_url_for_a_proxy_sub_path():
    assert build_app(pool_size=0, base_url="/dashboards/").base_url == "/dashboards/"
    with pytest.raises(ValueError, match="base_url"):
        build_app(pool_size=0, base_url="dashboards")


def test_missing_dashboards_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="voila.json"):
        build_app(root=tmp_path)


class _Task:
    def __init__(self, kernel_id: str) -> None:
        self.kernel_id = kernel_id

    def done(self) -> bool:
        return True

    def exception(self) -> None:
        return None

    def result(self) -> dict:
        return {"kernel_id": self.kernel_id}


class _KernelManager:
    def __init__(self) -> None:
        self._pools = {"01-market-overview.ipynb": [_Task("k1")], "02-predictions.ipynb": [_Task("k2")]}
        self.shut, self.filled = [], []

    async def shutdown_kernel(self, kernel_id: str) -> None:
        self.shut.append(kernel_id)
        for pool in self._pools.values():
            pool[:] = [t for t in pool if t.kernel_id != kernel_id]

    def fill_if_needed(self, *, delay: float, notebook_name: str) -> None:
        self.filled.append((notebook_name, delay))


class _App:
    def __init__(self) -> None:
        self.kernel_manager = _KernelManager()


def _run(coro):
    # A session-scoped Playwright browser may keep an event loop running in this thread.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def test_a_new_published_run_replaces_the_pre_started_kernels(tmp_path):
    pointer = tmp_path / "published.json"
    pointer.write_text("{}")
    app = _App()
    refresher = _PoolRefresher(app, pointer)
    _run(refresher.check())
    assert app.kernel_manager.shut == []  # nothing new yet
    stamp = pointer.stat().st_mtime
    pointer.write_text('{"run_id": "next"}')
    os.utime(pointer, (stamp + 10, stamp + 10))
    _run(refresher.check())
    assert sorted(app.kernel_manager.shut) == ["k1", "k2"]
    assert sorted(app.kernel_manager.filled) == [("01-market-overview.ipynb", 0), ("02-predictions.ipynb", 0)]
    _run(refresher.check())
    assert len(app.kernel_manager.shut) == 2  # once per publication


@pytest.mark.parametrize("path, climbs", [
    ("/voila/templates/lab/static/..%2F..%2F.env", True), ("/voila/files/%2E%2E/.env", True),
    ("/voila/files/../.env", True), ("/voila/render/.%2e/x", True),
    ("/voila/render/01-market-overview.ipynb", False), ("/voila/static/voila.js", False),
])
def test_paths_that_climb_out_are_caught_by_the_first_route(path, climbs):
    import re

    from research.viz.panels.server import TRAVERSAL

    assert bool(re.fullmatch(TRAVERSAL, path)) is climbs
    assert type(build_app(pool_size=0)).__name__ == "LockedVoila"  # its first route is the guard


def test_on_the_server_figures_are_drawn_by_the_served_plotly_bundle(monkeypatch):
    import plotly.graph_objects as go

    from research.viz.panels.layout import PLOTLY_MIME, figure_output

    fig = go.Figure(go.Scatter(x=[1, 2], y=[3, 4], name="</script><b>x"))
    fig.update_layout(title="t")
    assert PLOTLY_MIME in figure_output(fig, dom_class="wb-x").outputs[0]["data"]  # JupyterLab: the extension
    monkeypatch.setenv("WORKBENCH_FIGURES", "page")
    (bundle,) = figure_output(fig, dom_class="wb-x").outputs
    markup = bundle["data"]["text/html"]
    assert PLOTLY_MIME not in bundle["data"]
    assert "wb/plotly-workbench.min.js" in markup and "Plotly.newPlot" in markup
    assert "</script><b>" not in markup, "figure data must not close the script element"
    assert "http://" not in markup and "https://" not in markup


def test_viewer_kernels_count_pool_kernels_still_starting_as_viewers():
    from research.viz.panels.guards import viewer_kernels

    class Pending(_Task):
        def done(self) -> bool:
            return False

    km = _KernelManager()
    km._pools["01-market-overview.ipynb"].append(Pending("k3"))
    km.list_kernel_ids = lambda: ["k1", "k2", "k3", "viewer"]
    assert viewer_kernels(km) == 2  # "viewer" and the pool kernel not ready yet
