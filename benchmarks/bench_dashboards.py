"""Dashboard speed and memory, measured in Chromium against ``workbench dashboards``.

Prints, per dashboard: the time from navigation to "interactive" (widgets live and the first
figure drawn: widgets render only once the page's kernel connection is up) and to every figure
drawn, with cold kernels (started per viewer) and with pre-started kernels; the
time from a widget change to the redrawn figure; and, with 20 browser sessions opened at once
against a server capped at ``--max-viewers`` kernels, how many were rendered and how many got the
"busy" page, the server-side memory per viewer kernel (resident memory added by the sessions,
divided by the rendered sessions), and how long until every viewer kernel was freed once the
tabs closed. The load average is printed with the figures (the machine may be shared), next to
Voila's own floor measured in the same run.

Each measurement starts with the server at rest (its kernels have finished rendering and the
pools are refilled), from a fresh browser profile. Targets: interactive in 2 s or less (median)
on every page with pre-started kernels (1.2 s the stretch), a widget change redrawn in 150 ms or less (median), every session answered (a page or
the busy page), no viewer kernel left after the tabs close.

The run shown is the latest published ``daily`` run of ``--runs-dir`` (default: the workbench's
runs folder), or a small synthetic run written for the benchmark when there is none (``--fixture``
forces it). ``--quick`` measures once per dashboard and fewer interactions.

    nice -n 10 .venv/bin/python benchmarks/bench_dashboards.py --quick
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

from research.config import get_settings
from research.viz.panels import DASHBOARDS
from research.viz.panels.server import free_port, start_server, stop_server, wait_until_ready
from research.workflow.results import latest

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
DRAWN = """() => { const f = [...document.querySelectorAll('.wb-figure')];
  return f.length > 0 && f.every(e => e.querySelector('.js-plotly-plot .main-svg'))
    && document.querySelectorAll('.wb-deferred-pending').length === 0; }"""
FIRST = "() => !!document.querySelector('.wb-figure .js-plotly-plot .main-svg')"
FIRST_OR_BUSY = ("() => !!document.querySelector('.wb-figure .js-plotly-plot .main-svg') "
                 "|| !!document.querySelector('.wb-busy')")
#: per dashboard, (control, figure) pairs: the first control offering two options is toggled
TOGGLES = {"01-market-overview": [("wb-prices-scale", "wb-prices-fig")],
           "02-predictions": [("wb-acc-metric", "wb-acc-fig")],
           "03-backtest-explorer": [("wb-bt-params", "wb-bt-equity-fig"), ("wb-bt-symbol", "wb-bt-equity-fig")],
           "04-portfolio-risk": [("wb-roll-window", "wb-roll-fig")],
           "05-pipeline-health": [("wb-runs-filter", "wb-runs-fig")],
           "06-paper-trading": [("wb-paper-view", "wb-paper-equity-fig")]}
FLOOR_NOTEBOOK = {"cells": [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                             "source": ["import ipywidgets\n", "w = ipywidgets.HTML('ready')\n",
                                        "w.add_class('wb-floor')\n", "w"]}],
                  "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
                  "nbformat": 4, "nbformat_minor": 4}


def _chromium() -> str:
    path = os.environ.get("WORKBENCH_CHROMIUM") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists()
                                                    else shutil.which("chromium"))
    if not path:
        sys.exit("no Chromium found: set WORKBENCH_CHROMIUM or apt-get install -y chromium")
    return path


def _runs_dir(args: argparse.Namespace, scratch: Path) -> tuple[Path, str]:
    runs = Path(args.runs_dir) if args.runs_dir else get_settings().runs_dir
    if not args.fixture and latest("daily", runs_dir=runs / "daily") is not None:
        return runs, f"published run of {runs}"
    spec = importlib.util.spec_from_file_location("wb_run_fixture", ROOT / "tests" / "browser" / "run_fixture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    run = module.write_fixture_run(scratch / "runs")
    spec = importlib.util.spec_from_file_location("wb_paper_fixture", ROOT / "tests" / "browser" / "paper_fixture.py")
    paper = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(paper)
    os.environ["WORKBENCH_LEDGER_URL"] = f"sqlite:///{scratch / 'ledger.db'}"  # the servers inherit it
    paper.write_fixture_account(os.environ["WORKBENCH_LEDGER_URL"], as_of=str(run.as_of))
    return scratch / "runs", "synthetic fixture run"


class Server:
    """``workbench dashboards`` on a free loopback port, with its log to count filled kernel pools."""

    def __init__(self, runs: Path, scratch: Path, pool_size: int, home: Path | None = None,
                 max_viewers: int = 8) -> None:
        self.log = scratch / f"server-pool{pool_size}{'-' + home.name if home else ''}.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {"WORKBENCH_RUNS_DIR": str(runs), "PYTHONWARNINGS": "ignore"}
        if home is not None:
            env["WORKBENCH_HOME"] = str(home)
        self.proc = start_server(port=self.port, pool_size=pool_size, log_path=self.log, env=env,
                                 extra=["--max-viewers", str(max_viewers)])
        wait_until_ready(self.url, timeout=120, proc=self.proc)

    def filled(self) -> int:
        return self.log.read_text(errors="replace").count("is filled with")

    def wait_filled(self, count: int, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while self.filled() < count and time.monotonic() < deadline:
            time.sleep(0.25)
        time.sleep(0.5)

    def wait_idle(self, timeout: float = 180.0, window: float = 1.0, threshold: float = 10.0) -> float:
        """Wait until the server and its kernels have used under ``threshold`` % of one CPU over
        ``window`` seconds (pre-started kernels have finished rendering their dashboards, a pool
        refill is done); returns the seconds waited. A viewer arriving at a busy server is the
        concurrent pass's measurement, not this one's."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            try:
                procs = [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(recursive=True)]
            except psutil.Error:
                break
            for proc in procs:
                try:
                    proc.cpu_percent(None)
                except psutil.Error:
                    pass
            time.sleep(window)
            used = 0.0
            for proc in procs:
                try:
                    used += proc.cpu_percent(None)
                except psutil.Error:
                    pass
            if used < threshold:
                break
        return time.monotonic() - t0

    def kernels(self) -> int:
        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            return 0
        count = 0
        for child in children:
            try:
                count += "ipykernel" in " ".join(child.cmdline())
            except psutil.Error:
                pass
        return count

    def kernels_rss(self) -> int:
        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            return 0
        total = 0
        for child in children:
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        return total

    def stop(self) -> None:
        stop_server(self.proc)


EXTERNAL: list[str] = []  # requests that tried to leave 127.0.0.1 (there must be none)


async def _open(browser, url: str, name: str) -> tuple[object, object, float, float]:
    """Open a dashboard; the times to its first figure and to every figure (``nan`` on the busy page)."""
    context = await browser.new_context(viewport={"width": 1280, "height": 1200})
    page = await context.new_page()
    page.on("request", lambda r: None if r.url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:"))
            else EXTERNAL.append(r.url))
    t0 = time.perf_counter()
    await page.goto(f"{url}/voila/render/{name}.ipynb", wait_until="commit", timeout=300_000)
    await page.wait_for_function(FIRST_OR_BUSY, timeout=300_000, polling=20)
    if await page.locator(".wb-busy").count():
        return context, page, float("nan"), float("nan")
    first = time.perf_counter() - t0
    await page.wait_for_function(DRAWN, timeout=300_000, polling=20)
    return context, page, first, time.perf_counter() - t0


async def _interactions(page, name: str, repeats: int) -> list[float]:
    for control, fig in TOGGLES[name]:  # noqa: B007 (used after the loop)
        select = page.locator(f".{control} select")
        labels = [o.strip() for o in await select.locator("option").all_text_contents()]
        if len(labels) >= 2:
            break
    else:
        return []
    times = []
    for _ in range(repeats):
        current = (await select.evaluate("s => s.options[s.selectedIndex].text")).strip()
        target = next(label for label in labels if label != current)
        before = await page.locator(f".{fig} .gtitle").first.text_content()
        t0 = time.perf_counter()
        await select.select_option(label=target)
        await page.wait_for_function("([s, old]) => { const t = document.querySelector(s); return t && t.textContent !== old; }",
                                     arg=[f".{fig} .gtitle", before], timeout=60_000, polling="raf")
        times.append(time.perf_counter() - t0)
    return times


async def _render_pass(browser, server: Server, names: list[str], repeats: int, pooled: bool,
                       interactions: int) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for name in names:
        firsts, lasts, clicks, loads = [], [], [], []
        for _ in range(repeats):
            before = server.filled()
            loads.append(os.getloadavg()[0])
            context, page, first, ready = await _open(browser, server.url, name)
            firsts.append(first)
            lasts.append(ready)
            if interactions:
                clicks += await _interactions(page, name, interactions)
            await page.goto("about:blank")  # the page's shutdown request frees its kernel
            await context.close()
            if pooled:  # let the pool refill (kernel started and dashboard rendered) before the next one
                server.wait_filled(before + 1)
            server.wait_idle()
        out[name] = {"first_widget_s": statistics.median(firsts), "interactive_s": statistics.median(lasts),
                     "interaction_ms": [round(c * 1000, 1) for c in clicks], "load_avg": statistics.median(loads)}
    return out


async def _floor(browser, runs: Path, scratch: Path, repeats: int) -> float:
    """Voila's own floor here and now: a pre-started page holding one HTML widget and no figure.

    The first page a new browser opens is slower (its processes start): one load is made and not
    counted, as the dashboards are measured after the floor, by a browser that has opened pages."""
    home = scratch / "floor"
    (home / "dashboards").mkdir(parents=True)
    shutil.copy(ROOT / "dashboards" / "voila.json", home / "dashboards" / "voila.json")
    (home / "dashboards" / "00-floor.ipynb").write_text(json.dumps(FLOOR_NOTEBOOK))
    server = Server(runs, scratch, pool_size=1, home=home)
    times = []
    try:
        for i in range(repeats + 1):
            before = server.filled()
            server.wait_filled(max(before, 1))
            server.wait_idle()
            context = await browser.new_context()
            page = await context.new_page()
            t0 = time.perf_counter()
            await page.goto(f"{server.url}/voila/render/00-floor.ipynb", wait_until="commit", timeout=300_000)
            await page.wait_for_selector(".wb-floor", timeout=300_000)
            if i:  # the first load warms the browser
                times.append(time.perf_counter() - t0)
            await page.goto("about:blank")
            await context.close()
            server.wait_filled(max(before, 1) + 1)
            server.wait_idle()
    finally:
        server.stop()
    return statistics.median(times)


async def _concurrent(browser, server: Server, sessions: int) -> dict:
    base, base_kernels = server.kernels_rss(), server.kernels()
    names = sorted(DASHBOARDS)
    t0 = time.perf_counter()
    results = await asyncio.gather(*(_open(browser, server.url, names[i % len(names)]) for i in range(sessions)),
                                   return_exceptions=True)
    wall = time.perf_counter() - t0
    ok = [r for r in results if not isinstance(r, BaseException)]
    rendered = [r for r in ok if r[3] == r[3]]
    await asyncio.sleep(1.0)
    loaded, peak_kernels = server.kernels_rss(), server.kernels()
    ready = sorted(r[3] for r in rendered)
    t_close = time.perf_counter()
    for context, page, *_ in ok:
        await page.goto("about:blank")  # the page's shutdown request frees its kernel
        await context.close()
    while server.kernels() > base_kernels and time.perf_counter() - t_close < 120:
        await asyncio.sleep(0.5)  # every viewer kernel gone, the pre-started pools refilled
    freed_s = time.perf_counter() - t_close
    return {"sessions": sessions, "served": len(ok), "rendered": len(rendered), "busy": len(ok) - len(rendered),
            "wall_s": wall, "p50_interactive_s": statistics.median(ready) if ready else None,
            "p95_interactive_s": ready[min(len(ready) - 1, int(0.95 * len(ready)))] if ready else None,
            "kernels_before": base_kernels, "kernels_peak": peak_kernels,
            "kernels_rss_before_mb": base / 2**20, "kernels_rss_after_mb": loaded / 2**20,
            "mb_per_viewer": (loaded - base) / 2**20 / max(len(rendered), 1), "kernels_freed_s": freed_s,
            "kernels_after": server.kernels(),
            "errors": [repr(r)[:200] for r in results if isinstance(r, BaseException)]}


async def main_async(args: argparse.Namespace) -> dict:
    from playwright.async_api import async_playwright

    scratch = Path(tempfile.mkdtemp(prefix="bench-dashboards-"))
    runs, what = _runs_dir(args, scratch)
    names = sorted(DASHBOARDS)
    repeats, clicks = (1, 3) if args.quick else (2, 6)
    report: dict = {"run": what, "load_avg_start": os.getloadavg(), "cpus": os.cpu_count(),
                    "max_viewers": args.max_viewers}
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=_chromium(), args=ARGS)
        report["floor_load_avg"] = os.getloadavg()[0]
        report["floor_s"] = await _floor(browser, runs, scratch, max(repeats, 3 if not args.floor_only else 5))
        report["floor_load_avg_end"] = os.getloadavg()[0]
        report["cold"] = {}
        if args.floor_only:
            await browser.close()
            shutil.rmtree(scratch, ignore_errors=True)
            return report
        if not args.skip_cold:
            server = Server(runs, scratch, pool_size=0)
            try:
                report["cold"] = await _render_pass(browser, server, names, 1, pooled=False, interactions=0)
            finally:
                server.stop()
        server = Server(runs, scratch, pool_size=args.pool_size, max_viewers=args.max_viewers)
        try:
            server.wait_filled(len(names))
            server.wait_idle()  # "filled" means started: each kernel then still renders its dashboard
            report["prestarted"] = await _render_pass(browser, server, names, repeats, pooled=True,
                                                      interactions=clicks)
            report["concurrent"] = await _concurrent(browser, server, args.sessions)
        finally:
            server.stop()
        await browser.close()
    report["load_avg_end"] = os.getloadavg()
    report["external_requests"] = sorted(set(EXTERNAL))
    shutil.rmtree(scratch, ignore_errors=True)
    return report


def _print(report: dict) -> None:
    if "prestarted" not in report:  # --floor-only
        print(f"Voila's floor (pre-started page with one HTML widget, no figure): {report['floor_s']:.3f} s, median of 5; "
              f"load average {report['floor_load_avg']:.1f} before, {report['floor_load_avg_end']:.1f} after")
        return
    print(f"run: {report['run']}; {report['cpus']} CPUs; load average at start "
          f"{report['load_avg_start'][0]:.1f}, at end {report['load_avg_end'][0]:.1f}")
    print("first = interactive (widgets live, first figure drawn), ready = every figure drawn; "
          "cold = kernel started per viewer, "
          "pre = pre-started kernel; times from navigation, fresh browser profile each time")
    print(f"{'dashboard':24s} {'cold first':>11s} {'cold ready':>11s} {'pre first':>11s} {'- floor':>8s} "
          f"{'pre ready':>11s} {'interaction p50/max [ms]':>26s} {'load':>5s}")
    all_clicks = []
    nan = {"first_widget_s": float("nan"), "interactive_s": float("nan")}
    for name in sorted(report["prestarted"]):
        c, w = report["cold"].get(name, nan), report["prestarted"][name]
        clicks = w["interaction_ms"]
        all_clicks += clicks
        inter = f"{statistics.median(clicks):.0f} / {max(clicks):.0f}" if clicks else "n/a"
        print(f"{name:24s} {c['first_widget_s']:10.2f}s {c['interactive_s']:10.2f}s {w['first_widget_s']:10.2f}s "
              f"{w['first_widget_s'] - report['floor_s']:+7.2f}s {w['interactive_s']:10.2f}s {inter:>26s} "
              f"{w.get('load_avg', float('nan')):5.1f}")
    print(f"Voila's floor here and now (pre-started page with one HTML widget, no figure): {report['floor_s']:.2f} s "
          f"(median of 3, load average {report.get('floor_load_avg', float('nan')):.1f})")
    conc = report["concurrent"]
    p50 = f"{conc['p50_interactive_s']:.1f} / {conc['p95_interactive_s']:.1f} s" if conc["rendered"] else "n/a"
    print(f"{conc['sessions']} concurrent sessions (cap {report['max_viewers']} viewer kernels): "
          f"{conc['rendered']} rendered + {conc['busy']} busy pages = {conc['served']}/{conc['sessions']} answered "
          f"in {conc['wall_s']:.1f} s; p50/p95 interactive {p50}; kernels {conc['kernels_before']} -> "
          f"{conc['kernels_peak']} (RSS {conc['kernels_rss_before_mb']:.0f} -> {conc['kernels_rss_after_mb']:.0f} MiB, "
          f"{conc['mb_per_viewer']:.0f} MiB per viewer kernel); tabs closed: back to {conc['kernels_after']} "
          f"kernels in {conc['kernels_freed_s']:.1f} s")
    print(f"requests that left 127.0.0.1: {len(report['external_requests'])} {report['external_requests'][:3]}")
    warm = [report["prestarted"][n]["first_widget_s"] for n in report["prestarted"]]
    p50_click = statistics.median(all_clicks) if all_clicks else float("nan")
    print(f"targets: median interactive <= 2 s on every page with pre-started kernels: max {max(warm):.2f} s "
          f"({'met' if max(warm) <= 2 else 'NOT met'}; stretch 1.2 s {'met' if max(warm) <= 1.2 else 'not met'}); redraw <= 150 ms: p50 "
          f"{p50_click:.0f} ms ({'met' if p50_click <= 150 else 'NOT met'}); "
          f"all {conc['sessions']} answered: {'met' if conc['served'] == conc['sessions'] else 'NOT met'}; "
          f"kernels freed: {'met' if conc['kernels_after'] <= conc['kernels_before'] else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one measurement per dashboard, 3 interactions")
    parser.add_argument("--sessions", type=int, default=20, help="concurrent browser sessions")
    parser.add_argument("--max-viewers", type=int, default=8, help="the server's cap on viewer kernels")
    parser.add_argument("--pool-size", type=int, default=1, help="pre-started kernels per dashboard")
    parser.add_argument("--skip-cold", action="store_true", help="skip the pass with kernels started per viewer")
    parser.add_argument("--runs-dir", help="runs folder holding daily/published.json")
    parser.add_argument("--fixture", action="store_true", help="always use a synthetic fixture run")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--floor-only", action="store_true",
                        help="only Voila's floor (median of 5 loads), to compare changes to the page template or server")
    args = parser.parse_args()
    report = asyncio.run(main_async(args))
    _print(report)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
