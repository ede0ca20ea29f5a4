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
