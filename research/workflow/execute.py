"""Execute one stage notebook with papermill, bounded in time, and say how it ended.

papermill stops at the first failing cell and writes the executed notebook with the traceback
(``PapermillExecutionError``), but a cell that exceeds the time limit or a kernel that dies
escapes its bookkeeping. The engine registered here (``workbench``) treats those two like a
failing cell: the cell gets an error output, the notebook gets papermill's error banner, the
kernel is shut down immediately (no orphan), and the outcome says ``TIMEOUT`` or ``FAILED``
with the cell's index and first line.

The time limit is the stage's wall time, kernel start included: each cell may use what is left
of it (``timeout_func``), so a stage can never run longer than its ``timeout``.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines
from papermill.exceptions import PapermillExecutionError
from papermill.execute import execute_notebook, raise_for_execution_errors
from papermill.utils import remove_args

__all__ = ["StageOutcome", "CellError", "execute_stage", "ENGINE"]

log = logging.getLogger(__name__)
ENGINE = "workbench"


@dataclass
class CellError:
    """Where and how a stage stopped."""

    cell: int | None  # index in the executed notebook, before papermill's banner (0-based)
    ename: str
    evalue: str
    source: str = ""  # the cell's first line

    def describe(self) -> str:
        where = f"cell {self.cell + 1}" if self.cell is not None else "before the first cell"
        code = f" ({self.source!r})" if self.source else ""
        return f"{where}{code}: {self.ename}: {self.evalue}"


@dataclass
class StageOutcome:
    """How one attempt of a stage ended."""

    status: str  # COMPLETED | FAILED | TIMEOUT
    duration_s: float
    cells_s: float  # time spent inside cells (the rest is kernel start and papermill)
    output: Path
    error: CellError | None = None

    def to_dict(self) -> dict:
        out = asdict(self)
        out["output"] = str(self.output)
        return out


class _StageAborted(Exception):
    def __init__(self, status: str, cell: int, ename: str, evalue: str) -> None:
        super().__init__(f"{status} in cell {cell}: {ename}: {evalue}")
        self.status, self.cell, self.ename, self.evalue = status, cell, ename, evalue


class _Client(PapermillNotebookClient):
    """papermill's client, but a timeout or a dead kernel is recorded like a failing cell."""

    def papermill_execute_cells(self):
        for index, cell in enumerate(self.nb.cells):
            try:
                self.nb_man.cell_start(cell, index)
                self.execute_cell(cell, index)
            except CellExecutionError as ex:
                self.nb_man.cell_exception(self.nb.cells[index], cell_index=index, exception=ex)
                break
            except (CellTimeoutError, DeadKernelError) as ex:
                status = "TIMEOUT" if isinstance(ex, CellTimeoutError) else "FAILED"
                ename = type(ex).__name__
                evalue = (
                    f"the stage ran out of its time limit while this cell was running ({ex})"
                    if status == "TIMEOUT" else f"the kernel died while this cell was running ({ex})"
                )
                cell.outputs.append(nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"]))
                self.nb_man.cell_exception(cell, cell_index=index, exception=ex)
                self.shutdown_kernel = "immediate"  # a hung or dead kernel gets no grace period
                raise _StageAborted(status, index, ename, evalue) from ex
            finally:
                self.nb_man.cell_complete(self.nb.cells[index], cell_index=index)


class _Engine(NBClientEngine):
    @classmethod
    def execute_managed_notebook(
        cls, nb_man, kernel_name, log_output=False, stdout_file=None, stderr_file=None,
        start_timeout=60, execution_timeout=None, **kwargs,
    ):
        kwargs = remove_args(["input_path", "timeout", "startup_timeout"], **kwargs)
        client = _Client(
            nb_man, kernel_name=kernel_name, timeout=execution_timeout, startup_timeout=start_timeout,
            log=logging.getLogger("papermill"), log_output=log_output, stdout_file=stdout_file,
            stderr_file=stderr_file, **kwargs,
        )
        return client.execute()


papermill_engines.register(ENGINE, _Engine)


def _first_line(nb: nbformat.NotebookNode, index: int | None) -> str:
    if index is None or index >= len(nb.cells):
        return ""
    lines = [ln for ln in nb.cells[index].source.splitlines() if ln.strip()]
    return lines[0].strip()[:80] if lines else ""


def _cells_seconds(path: Path) -> float:
    if not path.exists():
        return 0.0
    nb = nbformat.read(path, as_version=4)
    return sum(float(c.get("metadata", {}).get("papermill", {}).get("duration") or 0.0) for c in nb.cells)


def _banner(output: Path) -> None:
    """Insert papermill's error banner into a notebook stopped by a timeout or a dead kernel."""
    nb = nbformat.read(output, as_version=4)
    try:
        raise_for_execution_errors(nb, str(output))
    except PapermillExecutionError:
        pass


def execute_stage(
    notebook: str | os.PathLike,
    output: str | os.PathLike,
    parameters: dict,
    *,
    timeout: float,
    cwd: str | os.PathLike | None = None,
    start_timeout: float = 60.0,
) -> StageOutcome:
    """Run ``notebook`` with ``parameters`` into ``output``; never raises for a stage failure.

    Parameters
    ----------
    notebook, output : path
        The stage notebook and where its executed copy goes (written even on failure).
    parameters : dict
        Injected after the ``parameters`` cell (validate them first; see ``plan_run``).
    timeout : float
        Wall-time limit of the whole stage in seconds, kernel start included.
    cwd : path, optional
        Working directory of the kernel.
    start_timeout : float
        Seconds to wait for the kernel to start.
    """
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    deadline = started + timeout

    def remaining(_cell) -> int:
        return max(1, math.ceil(deadline - time.monotonic()))

    status, error = "COMPLETED", None
    try:
        execute_notebook(
            str(notebook), str(output), parameters=parameters, engine_name=ENGINE, kernel_name="python3",
            progress_bar=False, log_output=False, cwd=str(cwd) if cwd else None,
            start_timeout=min(start_timeout, timeout), timeout_func=remaining, execution_timeout=None,
        )
    except PapermillExecutionError as exc:
        source = next((ln.strip() for ln in (exc.source or "").splitlines() if ln.strip()), "")
        status, error = "FAILED", CellError(exc.cell_index, exc.ename, str(exc.evalue), source[:80])
    except _StageAborted as exc:
        status, error = exc.status, CellError(exc.cell, exc.ename, exc.evalue)
        if output.exists():
            error.source = _first_line(nbformat.read(output, as_version=4), exc.cell)
            _banner(output)
    except Exception as exc:  # kernel failed to start, unreadable notebook, ...
        status, error = "FAILED", CellError(None, type(exc).__name__, str(exc))
        if isinstance(exc, (TimeoutError, RuntimeError)) and time.monotonic() >= deadline:
            status = "TIMEOUT"
    duration = time.monotonic() - started
    cells_s = _cells_seconds(output)
    return StageOutcome(status=status, duration_s=duration, cells_s=cells_s, output=output, error=error)
