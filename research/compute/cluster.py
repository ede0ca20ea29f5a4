"""Get a Dask client: a LocalCluster on this machine or an existing scheduler.

``get_client()`` is the one way the workbench gets a cluster. Work stays in process unless a
caller asks for a cluster (``--cluster local|ADDRESS`` on the command line, ``client=`` in
Python); this module is only imported then, so the default path never pays for Dask.

======================  ====================================================================
``cluster``             what you get
======================  ====================================================================
``None``                ``WORKBENCH_DASK_SCHEDULER`` when set, else ``"local"``
``"local"``             a LocalCluster: one single-threaded worker process per core, each
                        with an equal share of the memory (``memory_limit``)
``"tcp://host:8786"``   the scheduler at that address (``dask scheduler`` / ``dask worker``,
                        Dask-Gateway, Kubernetes)
======================  ====================================================================

Workers run one task at a time and pin TensorFlow, numba and the BLAS libraries to one
thread each, so N workers on N cores do not oversubscribe them.

Example
-------
>>> with get_client("local") as client:                       # doctest: +SKIP
...     res = sweep(prices, "rsi_reversion", grid, client=client)
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import weakref
from typing import TYPE_CHECKING, Any

import research.config
from research.compute._env import WORKER_ENV

if TYPE_CHECKING:  # pragma: no cover
    from distributed import Client

__all__ = ["SCHEDULER_ENV", "WORKER_ENV", "get_client", "resolve_cluster", "describe", "worker_threads"]

logger = logging.getLogger(__name__)

SCHEDULER_ENV = "WORKBENCH_DASK_SCHEDULER"
_OPEN: weakref.WeakSet = weakref.WeakSet()


def resolve_cluster(cluster: str | None = None) -> str:
    """``"local"`` or a scheduler address, from the argument or ``WORKBENCH_DASK_SCHEDULER``.

    Parameters
    ----------
    cluster : str, optional
        ``"local"``, a scheduler address (``tcp://host:8786``, ``tls://...``, ``host:8786``)
        or None (the environment variable, else ``"local"``).
    """
    value = (cluster if cluster is not None else research.config.get_settings().dask_scheduler).strip() or "local"
    if value == "local":
        return value
    if "://" not in value:
        if ":" not in value:
            raise ValueError(f"cluster must be 'local' or a scheduler address like tcp://host:8786, got {value!r}")
        value = f"tcp://{value}"
    return value


def _cores() -> int:
    from dask.system import CPU_COUNT

    return max(1, int(CPU_COUNT))


def get_client(
    cluster: str | None = None,
    *,
    n_workers: int | None = None,
    memory_limit: str | float | None = "auto",
    dashboard_address: str | None = "127.0.0.1:0",
    timeout: float | None = None,
    announce: bool = True,
) -> Client:
    """A connected :class:`distributed.Client`; use it as a context manager.

    Leaving the ``with`` block (normally, on an error or on Ctrl-C) closes the client and,
    for ``"local"``, shuts the cluster's worker processes down. Clients still open when the
    interpreter exits are closed then.

    Parameters
    ----------
    cluster : str, optional
        See :func:`resolve_cluster`.
    n_workers : int, optional
        Workers of a local cluster (default: one per core). Ignored for an address.
    memory_limit : str or float, optional
        Per-worker memory limit of a local cluster (``"auto"``: total memory / workers;
        ``"2GiB"``; None: no limit). Workers pause, spill and are restarted near it.
    dashboard_address : str, optional
        Where a local cluster serves its dashboard (a free port on loopback by default;
        None: no dashboard).
    timeout : float, optional
        Seconds to wait for a remote scheduler (default: Dask's ``distributed.comm.timeouts.connect``
        setting, 30 s unless configured, e.g. ``DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=5s``).
    announce : bool
        Print the cluster and its dashboard link to stderr (it is logged either way).

    Returns
    -------
    distributed.Client
    """
    client = _connect(resolve_cluster(cluster), n_workers=n_workers, memory_limit=memory_limit,
                      dashboard_address=dashboard_address, timeout=timeout)
    _OPEN.add(client)
    _announce(client, to_stderr=announce)
    return client


def _connect(target: str, *, n_workers: int | None, memory_limit: str | float | None,
             dashboard_address: str | None, timeout: float | None) -> Client:
    """A client of a new LocalCluster (``target="local"``) or of the scheduler at ``target``, its
    workers pinned to one thread each; closed again when that cannot be arranged."""
    from distributed import Client

    if target == "local":
        client = Client(
            n_workers=n_workers or _cores(), threads_per_worker=1, processes=True,
            memory_limit=memory_limit if memory_limit is not None else 0,
            dashboard_address=dashboard_address, host="127.0.0.1", env=dict(WORKER_ENV),
            set_as_default=False,
        )
    else:
        wait = {} if timeout is None else {"timeout": timeout}  # else Dask's connect timeout
        client = Client(target, set_as_default=False, **wait)
    try:
        from research.compute._plugin import OneThreadPerWorker

        client.register_plugin(OneThreadPerWorker(), name="workbench-one-thread")
    except BaseException:
        client.close()
        raise
    return client


def _announce(client: Client, *, to_stderr: bool) -> None:
    """Log the cluster's workers, threads and dashboard link (and print them to stderr)."""
    info = describe(client)
    line = (f"Dask: {info['workers']} worker(s), {info['threads']} thread(s) in all, at {info['scheduler']}; "
            f"dashboard {info['dashboard'] or 'off'}")
    logger.info(line)
    if to_stderr:
        print(line, file=sys.stderr, flush=True)


def describe(client: Any) -> dict[str, Any]:
    """Scheduler address, worker and thread counts, per-worker memory limits, dashboard link."""
    info = client.scheduler_info(n_workers=-1) if _takes_n_workers(client) else client.scheduler_info()
    workers = info.get("workers", {})
    limits = [w.get("memory_limit") for w in workers.values()]
    try:
        dashboard = client.dashboard_link if info.get("services", {}).get("dashboard") else None
    except Exception:  # noqa: BLE001 - a link is a nicety
        dashboard = None
    return {
        "scheduler": info.get("address", str(getattr(client, "scheduler", ""))),
        "workers": len(workers),
        "threads": sum(int(w.get("nthreads", 0)) for w in workers.values()),
        "memory_limit": limits,
        "dashboard": dashboard,
    }


def _takes_n_workers(client: Any) -> bool:
    import inspect

    try:
        return "n_workers" in inspect.signature(client.scheduler_info).parameters
    except (TypeError, ValueError):
        return False


def worker_threads() -> dict[str, Any]:
    """Thread settings seen inside the current process (run it on workers with ``client.run``)."""
    out: dict[str, Any] = {k: os.environ.get(k) for k in WORKER_ENV}
    if "numba" in sys.modules:
        out["numba_threads"] = sys.modules["numba"].get_num_threads()
    return out


@atexit.register
def _close_open_clients() -> None:
    for client in list(_OPEN):
        try:
            client.close(timeout=10)
        except Exception:  # noqa: BLE001,S110 - best effort at interpreter exit
            pass
