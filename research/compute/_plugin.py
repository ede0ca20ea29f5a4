"""The worker plugin that pins TensorFlow, numba and BLAS to one thread per worker."""

from __future__ import annotations

import os
import sys

from distributed.diagnostics.plugin import WorkerPlugin

from research.compute._env import WORKER_ENV

__all__ = ["OneThreadPerWorker"]


class OneThreadPerWorker(WorkerPlugin):
    """Set the one-thread environment on every worker (present and future).

    A local cluster's workers get the variables when their process starts; workers of a
    remote cluster get them here, before a task imports numba or TensorFlow. Libraries the
    worker already imported are switched at run time where they allow it. A worker that shares
    its process with the scheduler (an in-process cluster, ``processes=False``, in a notebook or
    a test) is left alone: that process's thread settings are its user's, and numba refuses a
    thread count that changes after its pool started.
    """

    def setup(self, worker) -> None:  # noqa: D102 - WorkerPlugin hook
        from distributed.scheduler import Scheduler

        if len(Scheduler._instances):  # an in-process cluster: not a dedicated worker process
            return
        os.environ.update(WORKER_ENV)
        numba = sys.modules.get("numba")
        if numba is not None:
            numba.set_num_threads(1)
        tf = sys.modules.get("tensorflow")
        if tf is not None:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(1)
                tf.config.threading.set_inter_op_parallelism_threads(1)
            except RuntimeError:  # already initialised: its pools keep their size
                pass
