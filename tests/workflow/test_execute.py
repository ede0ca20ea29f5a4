"""One stage through papermill: a raising cell, a dead kernel, each ends with the notebook kept."""

from __future__ import annotations

import nbformat
import pytest

from research.workflow.execute import execute_stage

BASE = {"output_dir": "", "as_of": "2020-01-02"}


def _error_outputs(path):
    nb = nbformat.read(path, as_version=4)
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]


def test_raising_cell_is_named_and_kept(tmp_path, no_orphan_kernels, toys):
    out = tmp_path / "raise.ipynb"
    outcome = execute_stage(toys.NOTEBOOKS / "raise.ipynb", out, BASE, timeout=60)
    assert outcome.status == "FAILED"
    assert outcome.error.ename == "ValueError" and "planted failure" in outcome.error.evalue
    assert outcome.error.source == 'raise ValueError("planted failure in a stage")'
    assert outcome.error.cell == 3  # parameters, injected-parameters, x = 1, raise
    assert [o.ename for o in _error_outputs(out)] == ["ValueError"]
    assert outcome.duration_s >= outcome.cells_s > 0


@pytest.mark.parametrize("how", ["kill", "exit"])
def test_dead_kernel_fails_instead_of_hanging(tmp_path, how, no_orphan_kernels, toys):
    out = tmp_path / f"die-{how}.ipynb"
    outcome = execute_stage(toys.NOTEBOOKS / "die.ipynb", out, {**BASE, "how": how}, timeout=60)
    assert outcome.status == "FAILED"
    assert outcome.error.ename == "DeadKernelError" and "kernel died" in outcome.error.evalue
    assert outcome.error.source.startswith("if how ==")
    assert outcome.duration_s < 30
    nb = nbformat.read(out, as_version=4)
    assert "papermill-error-cell-tag" in nb.cells[0].metadata.get("tags", [])
    assert [o.ename for o in _error_outputs(out)] == ["DeadKernelError"]


def test_prefetched_kernel_runs_the_stage_and_a_dead_one_is_replaced(tmp_path, no_orphan_kernels, toys):
    import os
    import signal
    import time

    from jupyter_client.utils import run_sync

    from research.workflow.execute import KernelPrefetch

    pool = KernelPrefetch(tmp_path)
    try:
        pool.prefetch()
        dead = pool._next
        os.kill(dead.provisioner.pid, signal.SIGKILL)
        time.sleep(0.5)
        km = pool.take()
        assert km is not dead and run_sync(km.is_alive)()
        out = tmp_path / "numbers.ipynb"
        outcome = execute_stage(toys.NOTEBOOKS / "01-numbers.ipynb", out, {**BASE, "output_dir": str(tmp_path)},
                                timeout=60, km=km, kernels=pool)
        assert outcome.status == "COMPLETED" and (tmp_path / "numbers.parquet").exists()
    finally:
        pool.close()


@pytest.fixture
def stuck_start(monkeypatch):
    """Make the client's wait for a new kernel block its thread, as the zmq send blocked in native code in
    a hung run (the kernel had died while starting; nbclient never got back to its own checks).

    ``stuck_start(kill=True)`` also kills the kernel first. The blocked thread is released at teardown.
    """
    import os
    import signal
    import threading

    from jupyter_client.asynchronous.client import AsyncKernelClient

    release = threading.Event()

    def make(*, kill: bool) -> None:
        async def stuck(self, timeout=None):
            if kill:
                os.killpg(self.parent.provisioner.pgid, signal.SIGKILL)
            release.wait(90)  # blocks the event loop's thread: no coroutine, no is_alive check runs
            raise RuntimeError("released by the test")

        monkeypatch.setattr(AsyncKernelClient, "wait_for_ready", stuck)

    yield make
    release.set()
    for thread in threading.enumerate():
        if thread.name.startswith("stage "):
            thread.join(15)


def test_kernel_dead_at_start_with_a_stuck_client_fails_fast(tmp_path, stuck_start, no_orphan_kernels, toys):
    stuck_start(kill=True)
    out = tmp_path / "dead-at-start.ipynb"
    outcome = execute_stage(toys.NOTEBOOKS / "raise.ipynb", out, BASE, timeout=60)
    assert outcome.status == "FAILED"
    assert outcome.error.ename == "DeadKernelError" and "died while starting" in outcome.error.evalue
    assert outcome.error.cell is None
    assert outcome.duration_s < 20  # not the stage's 60 s, let alone forever
    nb = nbformat.read(out, as_version=4)
    assert "papermill-error-cell-tag" in nb.cells[0].metadata.get("tags", [])
    assert "DeadKernelError" in nb.cells[0].source


def test_stuck_kernel_start_ends_at_the_stage_time_limit(tmp_path, monkeypatch, stuck_start, no_orphan_kernels, toys):
    from research.workflow import execute

    monkeypatch.setattr(execute, "_HARD_GRACE_S", 2.0, raising=False)
    stuck_start(kill=False)  # the kernel is alive, the client never hears from it
    out = tmp_path / "stuck-start.ipynb"
    outcome = execute_stage(toys.NOTEBOOKS / "raise.ipynb", out, BASE, timeout=4)
    assert outcome.status == "TIMEOUT"
    assert outcome.error.ename == "TimeoutError" and "time limit (4 s) while its kernel was starting" in outcome.error.evalue
    assert 4 <= outcome.duration_s < 15
    nb = nbformat.read(out, as_version=4)
    assert "papermill-error-cell-tag" in nb.cells[0].metadata.get("tags", [])
