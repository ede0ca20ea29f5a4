"""Train many symbols at once: one training cycle per symbol, in process or on a Dask client.

>>> results = train_symbols(["SPX", "GOOG"], config="tiny", client=client)   # doctest: +SKIP
>>> {s: r.champion for s, r in results.items()}                             # doctest: +SKIP

Each symbol runs :func:`~research.experiments.cycle.train_and_evaluate` as its own task and
logs its own MLflow run (nested under ``parent_run_id`` when given) in the caller's tracking
store. On a cluster the workers must reach that store: a LocalCluster shares the machine's
SQLite file; workers on other machines need a tracking server (``MLFLOW_TRACKING_URI=http://``)
and the same data store (see docs/scaling.md). Workers run TensorFlow on one thread each.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

from research.backtest.tasks import run_tasks

__all__ = ["train_symbols"]


def train_symbols(
    symbols: Sequence[str],
    *,
    client: Any = None,
    progress: bool = False,
    **kwargs: Any,
) -> dict[str, Any]:
    """:func:`~research.experiments.cycle.train_and_evaluate` for every symbol.

    Parameters
    ----------
    symbols : sequence of str
        Symbols to train, one task (and one MLflow run) each.
    client : distributed.Client, optional
        Run the trainings on this Dask client (from :func:`research.compute.get_client`);
        None trains them here, one after the other.
    progress : bool
        Progress bar over symbols.
    **kwargs
        Passed to ``train_and_evaluate`` (``source``, ``config``, ``experiment``, ``register``,
        ``parent_run_id``...).

    Returns
    -------
    dict of str to TrainingResult
        In ``symbols`` order. Results that come back from a cluster carry ``model=None``:
        load the model from the registry (``model_name``, ``model_version``) or the run.
    """
    if "figures" in kwargs and client is not None:
        raise ValueError("figures= cannot travel to workers; log figures from the results instead")
    from research.config import get_settings

    shared = {"kwargs": dict(kwargs), "tracking_uri": get_settings().tracking_uri, "remote": client is not None}
    results = run_tasks(train_one, [(s,) for s in symbols], client=client, shared=shared, desc="train",
                        progress=progress)
    return dict(zip(symbols, results, strict=True))


def train_one(symbol: str, *, kwargs: Mapping[str, Any], tracking_uri: str, remote: bool) -> Any:
    """One symbol's training cycle, recorded in ``tracking_uri`` (a task of :func:`train_symbols`).

    On a worker (``remote``) the run goes to the caller's store whatever the worker was started
    with, and the Keras model stays behind (it is logged with the run).
    """
    from research.experiments.cycle import train_and_evaluate

    if remote:
        os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    result = train_and_evaluate(symbol, **kwargs)
    return dataclasses.replace(result, model=None) if remote else result
