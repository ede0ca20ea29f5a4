"""Where work runs: in process (the default) or on a Dask cluster.

Callers above the pipeline (the CLI, notebooks, benchmarks) get a client here and pass it
down as ``client=``; the functions that fan work out (:func:`research.backtest.sweep.sweep`,
:func:`research.backtest.walkforward.walk_forward`, the training cycle) only use the
client's ``submit``/``scatter`` and never import this package.

>>> from research.compute import get_client
>>> with get_client("local") as client:                      # doctest: +SKIP
...     res = sweep_ma_crossover(prices, client=client)
"""

from research.compute.cluster import (
    SCHEDULER_ENV,
    WORKER_ENV,
    describe,
    get_client,
    resolve_cluster,
    worker_threads,
)

__all__ = ["SCHEDULER_ENV", "WORKER_ENV", "describe", "get_client", "resolve_cluster", "worker_threads"]
