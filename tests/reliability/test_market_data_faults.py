"""Market-data faults: requests per attempt under a 429 storm, the still-forming bar, and one
request budget for every process on the machine."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

import research.data.sources.yahoo as yahoo
import research.data.store as store_module
from research.data import RateLimitError, SourceUnavailableError, Store
from research.data.resilience import CircuitBreaker, Guard, RetryPolicy
from research.data.sources.coingecko import DAY_MS, close_only_bars
from research.data.sources.yahoo import YahooSource
from tests.data.fakes.server import FakeServer, json_reply, text_reply
from tests.data.fakes.yahoo import (
    CHART,
    chart_body,
    install_yahoo_basics,
    make_bars,
    reset_yfinance,
    yahoo_session,
)

GROUP = "market data"
ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    reset_yfinance(str(tmp_path_factory.mktemp("yf-cache")))
    with FakeServer() as srv:
        install_yahoo_basics(srv)
        yield srv


def _path(sym: str) -> str:
    return CHART.format(sym=re.escape(sym))


def _serve(server: FakeServer, sym: str, *history, tz: str = "America/New_York", bars=None, instrument="EQUITY"):
    bars = bars if bars is not None else make_bars(["2024-01-02", "2024-01-03"])
    server.route(_path(sym), *history)
    server.route(_path(sym), json_reply(chart_body(sym, bars.iloc[-1:], tz=tz, instrument=instrument)),
                 query={"range": "1d"})


def _history_hits(server: FakeServer, sym: str) -> int:
    return sum(1 for r in server.hits(_path(sym)) if "range" not in r.query or r.query["range"] != ["1d"])


@pytest.mark.parametrize("status,kind", [(429, RateLimitError), (503, SourceUnavailableError)])
def test_each_attempt_is_one_request_under_a_storm(server, case, status, kind):
    sym = f"STORM{status}"
    sleeps: list[float] = []
    guard = Guard("yahoo", policy=RetryPolicy(attempts=4, base_delay=0.5, max_delay=5.0, deadline=600.0, timeout=2.0),
                  breaker=CircuitBreaker(failure_threshold=50), sleep=sleeps.append, seed=1)
    _serve(server, sym, text_reply("Too Many Requests", status=status, content_type="text/plain", **{"Retry-After": "7"}))
    with pytest.raises(kind):
        YahooSource(session=yahoo_session(server), guard=guard).fetch(sym, pd.Timestamp("2024-01-02"), pd.Timestamp("2024-01-03"))
    hits = _history_hits(server, sym)
    honoured = status != 429 or all(s >= 7 for s in sleeps)
    case(GROUP, f"HTTP {status} storm: requests per attempt", "4 requests for 4 attempts (1.0 per attempt)",
         f"{hits} requests for {guard.stats.attempts} attempts; waits {[round(s, 1) for s in sleeps]}",
         hits == guard.stats.attempts == 4 and honoured)


def test_todays_forming_bar_is_never_stored_as_final(server, tmp_path, monkeypatch, case):
    sym = "FORM-USD"
    today = pd.Timestamp.now(tz="UTC").normalize()
    days = [today - pd.Timedelta(days=k) for k in range(4, -1, -1)]
    guard = Guard("yahoo", policy=RetryPolicy(attempts=1, timeout=5.0), sleep=lambda s: None)
    source = YahooSource(session=yahoo_session(server), guard=guard)
    store = Store(tmp_path / "data", freshness_ttl=0)

    def answer(upto: int, *, now: pd.Timestamp) -> None:
        bars = make_bars([d.tz_localize(None) for d in days[: upto + 1]])
        server.route(_path(sym), json_reply(chart_body(sym, bars, tz="UTC", instrument="CRYPTOCURRENCY")))
        monkeypatch.setattr(yahoo, "_now", lambda: now)
        monkeypatch.setattr(store_module, "_now", lambda: now)

    answer(4, now=today + pd.Timedelta(hours=12))  # today's session (UTC) is open
    first = store.ingest(source, sym)
    served = list(first.frame.index)
    manifest = store.manifest("yahoo", "1d", sym)
    ok = today not in served and manifest["partial_excluded"] == [today.isoformat()] and served[-1] == days[3]
    case(GROUP, "today's forming bar while the session is open", "not stored, listed as partial",
         f"last stored {served[-1].date()}, partial_excluded {manifest['partial_excluded']}", ok)

    answer(4, now=today + pd.Timedelta(days=1, hours=1))  # the session has closed: the bar is final
    second = store.ingest(source, sym)
    case(GROUP, "the next fetch stores it once complete", f"last stored {today.date()}",
         f"last stored {second.frame.index[-1].date()}, partial {store.manifest('yahoo', '1d', sym)['partial_excluded']}",
         second.frame.index[-1] == today)


def test_coingecko_last_partial_point_is_never_a_bar(case):
    today = pd.Timestamp.now(tz="UTC").normalize()
    midnights = [int((today - pd.Timedelta(days=k)).timestamp() * 1000) for k in range(5, -1, -1)]
    now_ms = midnights[-1] + 13 * 3_600_000 + 17
    prices = [[t, 100.0 + i] for i, t in enumerate(midnights)] + [[now_ms, 200.0]]
    payload = {"prices": prices, "market_caps": prices, "total_volumes": [[t, 5.0] for t, _ in prices]}
    bars = close_only_bars(payload, what="BTC-USD")
    last = bars.index[-1]
    ok = last == today - pd.Timedelta(days=1) and bars["close"].iloc[-1] == 105.0 and 200.0 not in bars.to_numpy()
    case(GROUP, "CoinGecko partial 'now' point", "dropped; last bar is yesterday, closed at today 00:00",
         f"last bar {last.date()} close {bars['close'].iloc[-1]}, {bars.attrs['partial_points_dropped']} dropped", ok)
    assert DAY_MS == 86_400_000


_BUDGET_WORKER = textwrap.dedent("""
    import json, os, sys, time
    from research.data.sources.yahoo import default_yahoo_guard
    budget = default_yahoo_guard().budget
    go, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    open(out + ".ready", "w").close()
    while not os.path.exists(go):
        time.sleep(0.001)
    times = []
    for _ in range(n):
        wait = budget.reserve()
        times.append(time.time() + wait)  # when this request may go out
    json.dump(times, open(out, "w"))
""")


def test_two_processes_share_one_request_budget(tmp_path, case):
    env = {**os.environ, "WORKBENCH_DATA_DIR": str(tmp_path / "data"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    go, n = tmp_path / "go", 6
    outs = [tmp_path / f"p{i}.json" for i in range(2)]
    procs = [subprocess.Popen([sys.executable, "-c", _BUDGET_WORKER, str(go), str(o), str(n)], env=env, cwd=ROOT)
             for o in outs]
    deadline = time.monotonic() + 120
    while not all(Path(f"{o}.ready").exists() for o in outs):
        assert time.monotonic() < deadline, "budget workers did not start"
        time.sleep(0.01)
    go.touch()
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    times = sorted(t for o in outs for t in json.loads(o.read_text()))
    rate, burst = 1.0, 4  # the default Yahoo budget
    # a token bucket allows at most burst + rate * (t_j - t_i) requests in any window [t_i, t_j]
    worst = max((j - i + 1) - (burst + rate * (times[j] - times[i])) for i in range(len(times))
                for j in range(i, len(times)))
    in_first_second = sum(t < times[0] + 1.0 - 1e-3 for t in times)
    case(GROUP, "two processes, one Yahoo budget (1/s, burst 4)", "at most 5 requests in the first second",
         f"{in_first_second} of {len(times)} requests in the first second; worst excess {max(worst, 0):.2f}",
         worst <= 0.1 and in_first_second <= burst + 1)  # 0.1: the workers read the clock just after reserving


def test_shared_budget_paces_and_falls_back_when_its_file_cannot_be_written(tmp_path):
    from research.data.resilience import SharedRequestBudget

    now = [1000.0]
    budget = SharedRequestBudget(tmp_path / "b.json", rate=2.0, burst=2, clock=lambda: now[0])
    assert [budget.reserve() for _ in range(4)] == [0.0, 0.0, 0.5, 1.0]
    budget.cancel()
    assert budget.reserve() == 1.0
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    broken = SharedRequestBudget(blocker / "b.json", rate=1.0, burst=1)
    assert broken.reserve() == 0.0 and broken.reserve() > 0.0  # counted in this process instead
