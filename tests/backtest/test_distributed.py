"""Sweeps and walk-forward folds on a Dask client: the same results bit for bit, one scatter,
resumable chunks, a lost worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest
from typer.testing import CliRunner

from research.backtest import chunked
from research.backtest.sweep import sweep, sweep_ma_crossover
from research.data import load_prices

GRID = {"fast": range(2, 40), "slow": range(3, 60)}
RSI = {"window": [7, 14], "lower": [25.0, 30.0]}


@pytest.fixture(scope="module")
def client():
    from research.compute import get_client

    with get_client("local", n_workers=2, memory_limit="2GiB", dashboard_address=None, announce=False) as c:
        yield c


@pytest.fixture(scope="module")
def prices() -> pd.DataFrame:
    return load_prices(["GOOG", "SPX"])


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    """Each test keeps its chunks apart (the cache key is the content, shared across a session)."""
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "data"))


class Counting:
    """A client that counts what it is asked to do (and passes everything on)."""

    def __init__(self, client):
        self._client, self.scatters, self.submits = client, 0, 0

    def scatter(self, *args, **kwargs):
        self.scatters += 1
        return self._client.scatter(*args, **kwargs)

    def submit(self, *args, **kwargs):
        self.submits += 1
        return self._client.submit(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


def _chunk_files(tmp_path):
    return sorted((tmp_path / "data" / "cache" / "sweeps").glob("*/chunk-*.parquet"))


def test_fused_crossover_on_a_client_equals_in_process(client, prices):
    expected = sweep_ma_crossover(prices, fees=0.001, slippage=0.0005, **GRID)
    counting = Counting(client)
    got = sweep_ma_crossover(prices, fees=0.001, slippage=0.0005, client=counting, chunk_size=150, progress=False,
                             **GRID)
    pd.testing.assert_frame_equal(expected.table, got.table, check_exact=True)
    chunks = got.params["chunks"]
    assert chunks["on"] == "cluster" and chunks["tasks"] == 10 == counting.submits  # 1,463 pairs / 150
    assert counting.scatters == 7  # each shared input once, however many tasks


def test_engine_rsi_grid_on_a_client_equals_in_process(client, prices, monkeypatch):
    kw = {"fees": 0.001, "sizing": "fixed_fraction"}  # a sizer the fused kernels do not cover: the engine path
    expected = sweep(prices, "rsi_reversion", RSI, progress=False, **kw)
    assert expected.params["engine"] == "engine"
    monkeypatch.setattr(chunked, "_ENGINE_SYMBOLS_PER_CALL", 1)  # symbols split across tasks too
    got = sweep(prices, "rsi_reversion", RSI, client=client, chunk_size=2, progress=False, **kw)
    pd.testing.assert_frame_equal(expected.table, got.table, check_exact=True)
    assert got.params["chunks"]["tasks"] == 2 * 2


FAMILY_GRIDS = {
    "rsi_reversion": {"window": [7, 14, 21], "lower": [25.0, 30.0], "stop_loss": [0, 0.05], "direction": ["long", "both"]},
    "bollinger_breakout": {"window": [10, 20], "k": [1.5, 2.0], "trailing_stop": [0, 0.08]},
    "time_series_momentum": {"lookback": [21, 63, 126], "threshold": [0.0, 0.02], "direction": ["long", "both"]},
    "ma_crossover": {"fast": [5, 10], "slow": [20, 50], "take_profit": [0, 0.1], "direction": ["both"]},
}


@pytest.mark.parametrize("family", sorted(FAMILY_GRIDS))
def test_fused_family_grid_on_a_client_equals_in_process(client, prices, family):
    grid = FAMILY_GRIDS[family]
    expected = sweep(prices, family, grid, fees=0.001, slippage=0.0005, progress=False)
    assert expected.params["engine"] == "fused"
    got = sweep(prices, family, grid, fees=0.001, slippage=0.0005, client=client, chunk_size=5, progress=False)
    pd.testing.assert_frame_equal(expected.table, got.table, check_exact=True)
    assert got.params["chunks"]["on"] == "cluster" and got.params["chunks"]["tasks"] >= 2


def test_a_rerun_computes_only_the_missing_chunks(client, prices, tmp_path):
    first = sweep_ma_crossover(prices, client=client, chunk_size=200, progress=False, **GRID)
    files = _chunk_files(tmp_path)
    assert len(files) == first.params["chunks"]["tasks"] == first.params["chunks"]["computed"] == 8
    for f in files[:3]:
        f.unlink()
    again = sweep_ma_crossover(prices, client=client, chunk_size=200, progress=False, **GRID)
    assert again.params["chunks"] == {**first.params["chunks"], "computed": 3, "cached": 5}
    pd.testing.assert_frame_equal(first.table, again.table, check_exact=True)
    other = sweep_ma_crossover(prices, client=client, chunk_size=200, progress=False, fees=0.002, **GRID)
    assert other.params["chunks"]["computed"] == 8  # other costs: another key


def test_an_interrupted_sweep_resumes_from_its_finished_chunks(prices, tmp_path, monkeypatch):
    calls = []
    real = chunked.fused_chunk

    def interrupted(*args, **kwargs):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(chunked, "fused_chunk", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sweep_ma_crossover(prices, cache=True, chunk_size=200, progress=False, **GRID)
    assert len(_chunk_files(tmp_path)) == 3
    monkeypatch.setattr(chunked, "fused_chunk", real)
    resumed = sweep_ma_crossover(prices, cache=True, chunk_size=200, progress=False, **GRID)
    assert resumed.params["chunks"]["computed"] == 8 - 3 and resumed.params["chunks"]["on"] == "process"
    pd.testing.assert_frame_equal(sweep_ma_crossover(prices, **GRID).table, resumed.table, check_exact=True)


def test_small_work_stays_in_process(client, prices):
    res = sweep_ma_crossover(prices, fast=[5, 10], slow=[20, 50], client=client, progress=False)
    assert res.params["chunks"]["tasks"] == 1 and res.params["chunks"]["on"] == "process"


def test_without_a_client_no_dask_is_imported():
    code = ("import sys\nfrom research.data import load_prices\nfrom research.backtest.sweep import sweep\n"
            "sweep(load_prices('SPX'), 'ma_crossover', {'fast': [5, 10], 'slow': [20, 50]})\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_cli_cluster_writes_the_same_table(client, tmp_path):
    from research.cli import app
    from research.compute import describe

    runner = CliRunner()
    args = ["sweep", "ma_crossover", "--symbol", "SPX", "--symbol", "IXIC", "--no-overfitting"]  # 19,701 pairs
    here = runner.invoke(app, [*args, "--out", str(tmp_path / "A")])
    there = runner.invoke(app, [*args, "--out", str(tmp_path / "B"), "--cluster", describe(client)["scheduler"]])
    assert here.exit_code == 0, here.output
    assert there.exit_code == 0, there.output
    assert "computed" in there.output and "cluster" in there.output
    assert (tmp_path / "A" / "sweep.csv").read_bytes() == (tmp_path / "B" / "sweep.csv").read_bytes()


def test_walk_forward_folds_on_a_client_equal_in_process(client, prices):
    from research.backtest.walkforward import walk_forward

    kw = {"fast": range(5, 50, 5), "slow": range(20, 100, 20), "train": 504, "test": 252, "fees": 0.001}
    here = walk_forward(prices, **kw)
    counting = Counting(client)
    there = walk_forward(prices, client=counting, **kw)
    assert counting.submits == 2 and counting.scatters == 6  # a task per symbol; shared inputs once
    pd.testing.assert_frame_equal(here.folds, there.folds, check_exact=True)
    pd.testing.assert_frame_equal(here.result.equity, there.result.equity, check_exact=True)
    pd.testing.assert_series_equal(here.summary("SPX"), there.summary("SPX"), check_exact=True)


def test_a_family_walk_forward_on_a_client_equals_in_process(client, prices):
    from research.backtest.walkforward import walk_forward

    grid = {"window": [7, 14], "lower": [25, 35], "trailing_stop": [0, 0.08]}
    kw = {"train": 504, "test": 252, "fees": 0.001}
    here = walk_forward(prices, "rsi_reversion", grid, **kw)
    counting = Counting(client)
    there = walk_forward(prices, "rsi_reversion", grid, client=counting, **kw)
    assert counting.submits == len(here.folds)  # a task per symbol and fold
    pd.testing.assert_frame_equal(here.folds, there.folds, check_exact=True)
    pd.testing.assert_frame_equal(here.result.equity, there.result.equity, check_exact=True)


KILL_GRID = {"fast": range(2, 200), "slow": range(3, 201)}  # 19,701 pairs: 10 tasks of 2,000 on 8 symbols


@pytest.fixture(scope="module")
def many() -> dict[str, pd.DataFrame]:
    from research.data.sources.synthetic import synthetic_ohlcv

    frames = {f"S{i}": synthetic_ohlcv(f"S{i}", bars=2000, seed=i) for i in range(8)}
    return {f: pd.DataFrame({s: d[f] for s, d in frames.items()}) for f in ("open", "close")}


class OneHolder:
    """A client that keeps the shared inputs and the tasks on one worker while ``pinned``.

    Dask's active memory manager does the same to a broadcast input on its own: it drops the
    replicas no waiting task needs, so near the end of a run the inputs live on one worker only.
    """

    def __init__(self, client, holder: str):
        self._client, self.holder, self.pinned = client, holder, True

    def scatter(self, data, **kwargs):
        if self.pinned:
            kwargs = {**kwargs, "workers": [self.holder], "broadcast": False}
        return self._client.scatter(data, **kwargs)

    def submit(self, *args, **kwargs):
        if self.pinned:
            kwargs = {**kwargs, "workers": [self.holder]}
        return self._client.submit(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


def _kill_mid_sweep(client, many, tmp_path, *, via=None, victim: str | None = None):
    """Sweep ``KILL_GRID`` on ``via`` (default ``client``) in a thread; SIGKILL ``victim`` (default a busy
    worker) once the first chunk is saved. Returns the result and the number of chunks saved before."""
    pids = client.run(os.getpid)
    out: dict = {}

    def run():
        try:
            out["res"] = sweep_ma_crossover(many, client=via or client, chunk_size=2000, progress=False, **KILL_GRID)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            out["error"] = exc

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 240
    while not _chunk_files(tmp_path) and worker.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    if victim is None:
        busy = [addr for addr, keys in client.processing().items() if keys and addr in pids]
        victim = busy[0] if busy else next(iter(pids))
    finished_before = len(_chunk_files(tmp_path))
    if isinstance(via, OneHolder):
        via.pinned = False  # what is submitted from now on may run anywhere
    os.kill(pids[victim], signal.SIGKILL)
    worker.join(timeout=300)
    assert not worker.is_alive() and "error" not in out, repr(out.get("error"))
    assert pids[victim] not in client.run(os.getpid).values()
    return out["res"], finished_before


def _assert_nothing_lost(res, expected, finished_before, tmp_path):
    tasks = res.params["chunks"]["tasks"]
    assert finished_before < tasks == res.params["chunks"]["computed"] == len(_chunk_files(tmp_path)) == 10
    pd.testing.assert_frame_equal(expected.table, res.table, check_exact=True)
    assert len(res.table) == 8 * 19_701 and not res.table.duplicated(["symbol", "fast", "slow"]).any()


def test_a_worker_killed_mid_sweep_loses_nothing(client, many, tmp_path):
    """SIGKILL one worker while tasks run: its tasks rerun elsewhere; every row once, same numbers."""
    expected = sweep_ma_crossover(many, **KILL_GRID)
    res, finished_before = _kill_mid_sweep(client, many, tmp_path)
    _assert_nothing_lost(res, expected, finished_before, tmp_path)


def test_the_worker_holding_the_last_copy_of_the_inputs_killed_mid_sweep_loses_nothing(client, many, tmp_path):
    """The inputs' only copy dies with its worker: Dask cancels every task still to run (their inputs are
    gone); the sweep scatters the inputs again and resubmits those tasks."""
    expected = sweep_ma_crossover(many, **KILL_GRID)
    holder = sorted(client.run(os.getpid))[0]
    res, finished_before = _kill_mid_sweep(client, many, tmp_path, via=OneHolder(client, holder), victim=holder)
    _assert_nothing_lost(res, expected, finished_before, tmp_path)


def test_a_worker_killed_holding_finished_results_not_yet_collected_loses_nothing(client, many, tmp_path,
                                                                                  monkeypatch, caplog):
    """The holder of the inputs finishes every task, then dies before its results are collected: the
    results go with it and cannot be recomputed there (the inputs went too); they are computed again."""
    from research.backtest import tasks

    expected = sweep_ma_crossover(many, **KILL_GRID)
    pids = client.run(os.getpid)
    holder = sorted(pids)[0]
    via = OneHolder(client, holder)
    real_save = tasks.ChunkCache.save

    def save(self, i, frame):
        real_save(self, i, frame)
        if via.pinned:  # the first chunk collected: let the holder finish the rest, then kill it
            deadline = time.monotonic() + 120
            while any(client.processing().values()) and time.monotonic() < deadline:
                time.sleep(0.05)
            via.pinned = False
            os.kill(pids[holder], signal.SIGKILL)

    monkeypatch.setattr(tasks.ChunkCache, "save", save)
    res = sweep_ma_crossover(many, client=via, chunk_size=2000, progress=False, **KILL_GRID)
    _assert_nothing_lost(res, expected, 1, tmp_path)
    assert "lost their inputs with a worker" in caplog.text
    assert pids[holder] not in client.run(os.getpid).values()


class CancelsEverything(Counting):
    """A client on which every submitted task is cancelled at once (its inputs lost each time)."""

    def submit(self, *args, **kwargs):
        fut = super().submit(*args, **kwargs)
        self._client.cancel([fut])
        return fut


def test_tasks_cancelled_in_every_round_fail_clearly(client):
    from research.backtest.tasks import _ROUNDS, run_tasks

    cancelling = CancelsEverything(client)
    with pytest.raises(RuntimeError, match=rf"2 demo task\(s\) were cancelled in each of {_ROUNDS} rounds"):
        run_tasks(divmod, [(7, 2), (9, 4)], client=cancelling, shared={}, desc="demo", progress=False)
    assert cancelling.submits == 2 * _ROUNDS
