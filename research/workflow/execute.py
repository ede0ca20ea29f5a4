"""Execute one stage notebook with papermill, bounded in time, and say how it ended.

papermill stops at the first failing cell and writes the executed notebook with the traceback
(``PapermillExecutionError``), but a cell that exceeds the time limit or a kernel that dies
escapes its bookkeeping. The engine registered here (``workbench``) treats those two like a
failing cell: the cell gets an error output, the notebook gets papermill's error banner, the
kernel is shut down immediately (no orphan), and the outcome says ``TIMEOUT`` or ``FAILED``
with the cell's index and first line.

The time limit is the stage's wall time, kernel start included: each cell may use what is left
of it (``timeout_func``), so a stage can never run longer than its ``timeout``.

papermill runs in a worker thread and :func:`execute_stage` waits for it with a hard limit (the
stage's deadline plus ``_HARD_GRACE_S``): nbclient bounds cells, but not every wait around kernel
start-up, and a client blocked in native code (a zmq send to a kernel that died while starting)
never gets back to its own checks. Past the hard limit, or a few seconds after the kernel died
during start-up, the kernel's process group is killed, the outcome says ``TIMEOUT`` (or ``FAILED``
with ``DeadKernelError`` when the kernel had exited), the executed notebook is written with the
error banner, and the stuck worker is abandoned (a daemon thread that writes nothing more).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from nbclient.util import ensure_async, run_sync
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines
from papermill.exceptions import PapermillExecutionError
from papermill.execute import execute_notebook, raise_for_execution_errors
from papermill.utils import remove_args
from traitlets import Any

from research.workflow.kernels import KernelPrefetch

__all__ = ["StageOutcome", "CellError", "execute_stage", "KernelPrefetch", "ENGINE"]

log = logging.getLogger(__name__)
ENGINE = "workbench"
_HARD_GRACE_S = 15.0  # past the stage's deadline, the guard stops waiting for papermill
_DEAD_AT_START_S = 3.0  # a kernel dead during start-up: how long nbclient gets to notice it itself
_INTERRUPT_WAIT_S = 5.0  # after Ctrl-C / SIGTERM: how long the worker gets to wind down


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


class _Watch:
    """What the guard of :func:`execute_stage` knows of the stage running in its worker thread."""

    def __init__(self, km=None) -> None:
        self.km = km  # the stage's kernel manager, once there is one
        self.phase = "starting"  # starting | cells | finishing
        self.cell: int | None = None
        self.abandoned = False  # set by the guard: the worker must not write the notebook any more
        self.start_exit: int | None = None  # exit code of a kernel found dead while starting


class _QuietAbandoned(logging.Filter):
    """Drops log records of a worker thread the guard gave up on (it may still be winding down)."""

    threads: set[int] = set()
    lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread not in self.threads

    def silence(self, worker: threading.Thread, done: threading.Event) -> None:
        with self.lock:
            if worker.ident is not None and not done.is_set():
                self.threads.add(worker.ident)

    def finished(self, done: threading.Event) -> None:
        with self.lock:
            self.threads.discard(threading.get_ident())
            done.set()


_QUIET = _QuietAbandoned()
logging.getLogger("papermill").addFilter(_QUIET)


class _StageHung(Exception):
    """The guard stopped waiting for papermill."""

    def __init__(self, status: str, ename: str, evalue: str) -> None:
        super().__init__(f"{status}: {ename}: {evalue}")
        self.status, self.ename, self.evalue = status, ename, evalue


class _Client(PapermillNotebookClient):
    """papermill's client, but a timeout or a dead kernel is recorded like a failing cell, and a
    kernel that finished normally may be shut down in the background (``retire_kernel``)."""

    retire_kernel = Any(default_value=None, allow_none=True)
    watch = Any(default_value=None, allow_none=True)

    def create_kernel_manager(self):
        km = super().create_kernel_manager()
        if self.watch is not None:
            self.watch.km = km
        return km

    async def _async_cleanup_kernel(self) -> None:
        if self.watch is not None and self.watch.phase == "starting":  # before nbclient forgets the kernel
            self.watch.start_exit = _kernel_exit(self.km)
        if self.retire_kernel is None or self.owns_km or self.shutdown_kernel == "immediate" or self.km is None:
            return await super()._async_cleanup_kernel()
        if self.kc is not None:
            await ensure_async(self.kc.stop_channels())
        km, self.kc, self.km = self.km, None, None
        try:
            await ensure_async(km.request_shutdown())
        except Exception as exc:  # already gone; the reaper still cleans up
            log.debug("kernel shutdown request: %s", exc)
        self.retire_kernel(km)

    _cleanup_kernel = run_sync(_async_cleanup_kernel)

    def papermill_execute_cells(self):
        watch = self.watch if self.watch is not None else _Watch()
        watch.phase = "cells"
        for index, cell in enumerate(self.nb.cells):
            watch.cell = index
            try:
                self.nb_man.cell_start(cell, index)
                self.execute_cell(cell, index)
            except CellExecutionError as ex:
                self.nb_man.cell_exception(self.nb.cells[index], cell_index=index, exception=ex)
                break
            except (CellTimeoutError, DeadKernelError) as ex:
                status = "TIMEOUT" if isinstance(ex, CellTimeoutError) else "FAILED"
                ename = type(ex).__name__
                detail = (str(ex).splitlines() or [""])[0].rstrip(".")
                evalue = (
                    f"the stage ran out of its time limit while this cell was running ({detail})"
                    if status == "TIMEOUT" else f"the kernel died while this cell was running ({detail})"
                )
                cell.outputs.append(nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"]))
                self.nb_man.cell_exception(cell, cell_index=index, exception=ex)
                self.shutdown_kernel = "immediate"  # a hung or dead kernel gets no grace period
                raise _StageAborted(status, index, ename, evalue) from ex
            finally:
                self.nb_man.cell_complete(self.nb.cells[index], cell_index=index)
        watch.phase, watch.cell = "finishing", None


class _Engine(NBClientEngine):
    @classmethod
    def execute_managed_notebook(
        cls, nb_man, kernel_name, log_output=False, stdout_file=None, stderr_file=None,
        start_timeout=60, execution_timeout=None, **kwargs,
    ):
        kwargs = remove_args(["input_path", "timeout", "startup_timeout"], **kwargs)
        watch = kwargs.get("watch")
        if watch is not None:  # once the guard gave up on this stage, its worker writes nothing
            save = nb_man.save
            nb_man.save = lambda **kw: None if watch.abandoned else save(**kw)
        client = _Client(
            nb_man, kernel_name=kernel_name, timeout=execution_timeout, startup_timeout=start_timeout,
            log=logging.getLogger("papermill"), log_output=log_output, stdout_file=stdout_file,
            stderr_file=stderr_file, **kwargs,
        )
        # a kernel handed over by KernelPrefetch is shut down here like one started here
        return client.execute(cleanup_kc=True)


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


def _drop_pending_tasks(grace: float = 5.0) -> None:
    """After Ctrl-C or SIGTERM inside a stage: cancel what nbclient left on the event loop and
    collect its outcome, so no ``DeadKernelError`` is reported later as a stray traceback."""
    from jupyter_core.utils import ensure_event_loop

    loop = ensure_event_loop()
    default = loop.get_exception_handler()

    def quiet(loop, context: dict) -> None:  # the abandoned cell's tasks end when its kernel is killed
        if (isinstance(context.get("exception"), (DeadKernelError, CellTimeoutError, CellExecutionError))
                or "never retrieved" in str(context.get("message", ""))):
            log.debug("stage task ended after the interruption: %s", context.get("exception"))
        elif default is not None:
            default(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(quiet)
    if loop.is_running():
        return
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        try:
            loop.run_until_complete(asyncio.wait(tasks, timeout=grace))
        except BaseException as exc:  # a second signal: give up waiting, still collect below
            log.debug("waiting for cancelled stage tasks: %r", exc)
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: asyncio does not log it at exit


def _banner(output: Path) -> None:
    """Insert papermill's error banner into a notebook stopped by a timeout or a dead kernel."""
    nb = nbformat.read(output, as_version=4)
    try:
        raise_for_execution_errors(nb, str(output))
    except PapermillExecutionError:
        pass


def _kernel_process(km):
    """The kernel's ``Popen`` (local kernels), or ``None``."""
    provisioner = getattr(km, "provisioner", None) if km is not None else None
    return getattr(provisioner, "process", None) if provisioner is not None else None


def _kernel_exit(km) -> int | None:
    """The kernel's exit code once its process has exited, else ``None`` (also when unknown)."""
    proc = _kernel_process(km)
    try:
        return proc.poll() if proc is not None else None
    except Exception:  # noqa: BLE001 (a Popen being reaped elsewhere)
        return None


def _hard_kill(km) -> None:
    """SIGKILL the kernel's process group and reap it, touching nothing else of ``km``.

    Safe while another thread is blocked inside the kernel manager or its client (their sockets
    and zmq context are left alone: closing them under a blocked thread is not).
    """
    proc = _kernel_process(km)
    if proc is None:
        return
    pgid = getattr(km.provisioner, "pgid", None)
    try:
        if pgid:
            os.killpg(pgid, signal.SIGKILL)
        else:
            proc.kill()
    except OSError as exc:  # already gone
        log.debug("kernel kill: %s", exc)
    try:
        proc.wait(timeout=10)
    except Exception as exc:  # noqa: BLE001
        log.warning("kernel %s did not exit after SIGKILL: %s", proc.pid, exc)


def _await_worker(done: threading.Event, watch: _Watch, hard_deadline: float, timeout: float) -> None:
    """Wait for the stage's worker; raise :class:`_StageHung` when it is past saving."""
    dead_since = None
    while not done.wait(0.2):
        now = time.monotonic()
        code = _kernel_exit(watch.km) if watch.phase == "starting" else None
        if code is not None:  # died while starting: nbclient notices within a second, unless stuck
            dead_since = dead_since if dead_since is not None else now
            if now - dead_since >= _DEAD_AT_START_S:
                raise _StageHung("FAILED", "DeadKernelError",
                                 f"the kernel died while starting (exit code {code}) and the client never noticed")
        if now >= hard_deadline:
            code = _kernel_exit(watch.km)
            where = {"starting": "while its kernel was starting", "cells": "while this cell was running",
                     "finishing": "after its last cell"}[watch.phase]
            if code is not None:
                raise _StageHung("FAILED", "DeadKernelError",
                                 f"the kernel died {where} (exit code {code}) and the client never noticed")
            ename = "CellTimeoutError" if watch.phase == "cells" else "TimeoutError"
            raise _StageHung("TIMEOUT", ename, f"the stage ran out of its time limit ({timeout:g} s) {where} "
                                               "and did not stop; its kernel was killed")


def _write_hung(notebook: Path, output: Path, watch: _Watch, hung: _StageHung) -> None:
    """The executed notebook of a stage the guard gave up on: the error on the running cell (or a
    banner alone when no cell ran), as papermill's own failures look."""
    src = output if output.exists() else notebook
    try:
        nb = nbformat.read(src, as_version=4)
    except Exception as exc:  # noqa: BLE001 (half-written by the stuck worker)
        log.warning("could not read %s: %s", src, exc)
        nb = nbformat.read(notebook, as_version=4)
    if watch.cell is not None and watch.cell < len(nb.cells):
        cell = nb.cells[watch.cell]
        cell.setdefault("outputs", []).append(nbformat.v4.new_output(
            "error", ename=hung.ename, evalue=hung.evalue, traceback=[f"{hung.ename}: {hung.evalue}"]))
        nbformat.write(nb, output)
        _banner(output)
        return
    from papermill.execute import ERROR_MARKER_TAG, ERROR_STYLE

    where = "after its last cell" if watch.phase == "finishing" else "before its first cell"
    banner = nbformat.v4.new_markdown_cell(
        f"<span {ERROR_STYLE}>The stage stopped {where}: {hung.ename}: {hung.evalue}</span>")
    banner.metadata["tags"] = [ERROR_MARKER_TAG]
    nb.cells.insert(0, banner)
    nbformat.write(nb, output)


def execute_stage(
    notebook: str | os.PathLike,
    output: str | os.PathLike,
    parameters: dict,
    *,
    timeout: float,
    cwd: str | os.PathLike | None = None,
    start_timeout: float = 60.0,
    km=None,
    kernels: KernelPrefetch | None = None,
) -> StageOutcome:
    """Run ``notebook`` with ``parameters`` into ``output``; never raises for a stage failure.

    Parameters
    ----------
    notebook, output : path
        The stage notebook and where its executed copy goes (written even on failure).
    parameters : dict
        Injected after the ``parameters`` cell (validate them first; see ``plan_run``).
    timeout : float
        Wall-time limit of the whole stage in seconds, kernel start included. Should papermill not
        return by then (plus ``_HARD_GRACE_S``), or a few seconds after the kernel died while
        starting, its kernel is killed and the stage ends ``TIMEOUT`` (``FAILED`` with
        ``DeadKernelError`` for a dead kernel) anyway.
    cwd : path, optional
        Working directory of the kernel.
    start_timeout : float
        Seconds to wait for the kernel to start.
    km : jupyter_client.KernelManager, optional
        A kernel already started for this stage (see :class:`KernelPrefetch`); it is shut down
        when the stage ends, like a kernel started here.
    kernels : KernelPrefetch, optional
        When given with ``km`` (one of its kernels), a kernel whose stage completed is shut
        down without waiting (call ``kernels.close()`` at the end); a failed or timed-out
        stage's kernel is always killed before this function returns.
    """
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    deadline = started + timeout
    watch = _Watch(km)
    worker, done, raised = _stage_worker(
        notebook, output, parameters, watch, deadline=deadline, timeout=timeout, cwd=cwd,
        start_timeout=start_timeout, km=km, kernels=kernels,
    )
    status, error = _supervise(worker, done, raised, watch, notebook=Path(notebook), output=output,
                               deadline=deadline, timeout=timeout, km=km)
    return StageOutcome(status=status, duration_s=time.monotonic() - started, cells_s=_cells_seconds(output),
                        output=output, error=error)


def _stage_worker(
    notebook, output: Path, parameters: dict, watch: _Watch, *, deadline: float, timeout: float, cwd,
    start_timeout: float, km, kernels: KernelPrefetch | None,
) -> tuple[threading.Thread, threading.Event, list[BaseException]]:
    """The (not yet started) thread that runs papermill on ``notebook``, in its own event loop;
    with the event it sets when it ends and the list it puts its exception in."""

    def remaining(_cell) -> int:
        return max(1, math.ceil(deadline - time.monotonic()))

    extra = {"km": km} if km is not None else {}
    if kernels is not None:
        extra["retire_kernel"] = kernels.retire
    done, raised = threading.Event(), []

    def work() -> None:  # papermill, in its own thread with its own event loop
        try:
            execute_notebook(
                str(notebook), str(output), parameters=parameters, engine_name=ENGINE, kernel_name="python3",
                progress_bar=False, log_output=False, cwd=str(cwd) if cwd else None,
                start_timeout=min(start_timeout, timeout), timeout_func=remaining, execution_timeout=None,
                watch=watch, **extra,
            )
        except BaseException as exc:  # noqa: BLE001 (handed to the caller below)
            raised.append(exc)
        finally:
            if not watch.abandoned:
                _close_worker_loop()
            _QUIET.finished(done)

    worker = threading.Thread(target=work, name=f"stage {Path(notebook).stem}", daemon=True)
    return worker, done, raised


def _supervise(
    worker: threading.Thread, done: threading.Event, raised: list[BaseException], watch: _Watch, *,
    notebook: Path, output: Path, deadline: float, timeout: float, km,
) -> tuple[str, CellError | None]:
    """Start the stage's worker, wait for it (or give up on it) and say how the stage ended.

    A stuck worker is abandoned and its kernel killed; on an interruption (Ctrl-C, SIGTERM in the
    runner) the kernel is killed and the interruption raised again. Otherwise a kernel handed in as
    ``km`` is shut down before returning (papermill may have failed before its own cleanup).
    """
    status, error, abandoned = "COMPLETED", None, False
    try:
        worker.start()
        _await_worker(done, watch, deadline + _HARD_GRACE_S, timeout)
        if raised:
            raise raised[0]
    except PapermillExecutionError as exc:
        source = next((ln.strip() for ln in (exc.source or "").splitlines() if ln.strip()), "")
        status, error = "FAILED", CellError(exc.cell_index, exc.ename, str(exc.evalue), source[:80])
    except _StageAborted as exc:
        status, error = exc.status, CellError(exc.cell, exc.ename, exc.evalue)
        if output.exists():
            error.source = _first_line(nbformat.read(output, as_version=4), exc.cell)
            _banner(output)
    except _StageHung as exc:  # the worker is stuck: kill its kernel, leave it behind, write the notebook
        _abandon(worker, done, watch)
        abandoned = True
        status, error = exc.status, _hung_error(exc, notebook, output, watch)
    except Exception as exc:  # kernel failed to start, unreadable notebook, ...
        status, error = _failure(exc, watch, deadline)
    except BaseException:  # Ctrl-C or SIGTERM in the runner: kill the kernel, leave nothing pending
        abandoned = _interrupted(worker, done, watch, km)
        raise
    finally:
        if not abandoned and km is not None and km.has_kernel:  # papermill failed before its own cleanup
            KernelPrefetch._kill(km)
    return status, error


def _hung_error(hung: _StageHung, notebook: Path, output: Path, watch: _Watch) -> CellError:
    """The error of a stage the guard gave up on, its executed notebook written."""
    log.warning("stage %s: %s", notebook.stem, hung)
    error = CellError(watch.cell, hung.ename, hung.evalue)
    try:
        _write_hung(notebook, output, watch, hung)
        error.source = _first_line(nbformat.read(output, as_version=4), watch.cell) if watch.cell is not None else ""
    except Exception as write_exc:  # noqa: BLE001 (the outcome still says what happened)
        log.warning("could not write %s: %s", output, write_exc)
    return error


def _failure(exc: Exception, watch: _Watch, deadline: float) -> tuple[str, CellError]:
    """Status and error of a stage that failed outside its cells (kernel start, unreadable notebook)."""
    status, error = "FAILED", CellError(None, type(exc).__name__, str(exc))
    if watch.start_exit is not None:  # the kernel died while starting (nbclient says RuntimeError)
        error.ename = "DeadKernelError"
        error.evalue = f"the kernel died while starting (exit code {watch.start_exit}): {exc}"
    elif isinstance(exc, (TimeoutError, RuntimeError)) and time.monotonic() >= deadline:
        status = "TIMEOUT"
    return status, error


def _interrupted(worker: threading.Thread, done: threading.Event, watch: _Watch, km) -> bool:
    """After Ctrl-C or SIGTERM: kill the kernel (the worker sees it die and winds down quietly,
    writing nothing) and drop pending tasks; ``True`` if the worker had to be abandoned."""
    _hard_kill(watch.km)
    abandoned = not _wind_down(worker, done, watch)
    if not abandoned and km is not None and km.has_kernel:
        KernelPrefetch._kill(km)
    _drop_pending_tasks()
    return abandoned


def _abandon(worker: threading.Thread, done: threading.Event, watch: _Watch) -> None:
    """Give up on a stuck worker: it writes and logs nothing more; its kernel is killed."""
    watch.abandoned = True
    _QUIET.silence(worker, done)
    _hard_kill(watch.km)


def _wind_down(worker: threading.Thread, done: threading.Event, watch: _Watch) -> bool:
    """After an interruption: let the worker end (its kernel was killed); ``False`` if it does not."""
    watch.abandoned = True
    _QUIET.silence(worker, done)
    try:
        return done.wait(_INTERRUPT_WAIT_S)
    except BaseException:  # a second signal: stop waiting
        return False


def _close_worker_loop() -> None:
    """Close the event loop nbclient made for this (worker) thread, cancelling what it left."""
    from jupyter_core.utils import ensure_event_loop

    loop = ensure_event_loop()
    if loop.is_running():
        return
    try:
        _drop_pending_tasks()
        loop.close()
    except Exception as exc:  # noqa: BLE001
        log.debug("closing the stage's event loop: %s", exc)
