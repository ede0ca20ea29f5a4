"""Kernels started ahead of their stage and shut down behind it (:class:`KernelPrefetch`)."""

from __future__ import annotations

import logging
import os

from nbclient.util import run_sync

__all__ = ["KernelPrefetch"]

log = logging.getLogger(__name__)


class KernelPrefetch:
    """Starts the next stage's kernel while the current stage runs, and lets finished kernels
    exit while the next stage runs, hiding kernel start-up and shutdown.

    Every stage still gets a fresh kernel (stages share nothing in memory); only its start is
    moved earlier and the wait for its graceful exit later. All calls happen in the runner's
    thread (kernel managers are not thread-safe; a stage uses its kernel in the stage's worker
    thread while the runner waits for it, never at the same time). :meth:`close` kills a kernel that was
    started but not used and finishes the shutdowns (killing a kernel that does not exit).

    Parameters
    ----------
    cwd : path
        Working directory of the kernels.
    log : path, optional
        File that receives the kernels' own stdout and stderr (start-up messages, C-level
        library logs); cell output goes to the executed notebooks either way.
    """

    def __init__(self, cwd: str | os.PathLike, *, log: str | os.PathLike | None = None) -> None:
        self.cwd = str(cwd)
        self._log = open(log, "ab") if log is not None else None  # noqa: SIM115 (closed in close())
        self._next = None
        self._retiring: list = []

    def retire(self, km) -> None:
        """Take a kernel that was asked to shut down; its exit is awaited later (:meth:`reap`)."""
        self._retiring.append(km)

    def reap(self, *, keep_last: bool = False) -> None:
        """Finish the shutdown of retired kernels (kills those that do not exit in time).

        ``keep_last`` leaves the most recent one for later, so nobody waits for its exit.
        """
        keep = self._retiring[-1:] if keep_last else []
        retiring, self._retiring = self._retiring[: len(self._retiring) - len(keep)], keep
        for km in retiring:
            try:
                run_sync(km.finish_shutdown)()
                run_sync(km.cleanup_resources)()
            except Exception as exc:
                log.debug("kernel shutdown: %s", exc)
                self._kill(km)

    def prefetch(self) -> None:
        """Start a kernel for the next stage (no-op when one is already waiting)."""
        if self._next is not None:
            return
        from jupyter_client.manager import AsyncKernelManager

        km = AsyncKernelManager(kernel_name="python3")
        streams = {"stdout": self._log, "stderr": self._log} if self._log is not None else {}
        try:
            run_sync(km.start_kernel)(cwd=self.cwd, **streams)
        except Exception as exc:  # the stage starts its own kernel and reports the failure
            log.warning("could not start a kernel ahead of time: %s", exc)
            return
        self._next = km

    def take(self):
        """A started kernel's manager: the waiting one if alive, else one started now (or
        ``None`` when no kernel can be started; the stage then starts its own and reports why)."""
        self.reap(keep_last=True)
        km, self._next = self._next, None
        if km is not None and not run_sync(km.is_alive)():
            self._kill(km)
            km = None
        if km is None:
            self.prefetch()
            km, self._next = self._next, None
        return km

    @staticmethod
    def _kill(km) -> None:
        try:
            run_sync(km.shutdown_kernel)(now=True)
        except Exception as exc:  # already gone
            log.debug("kernel shutdown: %s", exc)

    def close(self) -> None:
        """Kill a kernel that was started but never used; finish the retiring ones."""
        km, self._next = self._next, None
        if km is not None:
            self._kill(km)
        self.reap()
        if self._log is not None:
            self._log.close()
            self._log = None
