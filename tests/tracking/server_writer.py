"""One writer process of the tracking-server concurrency test: THREADS threads, each logging
METRICS metrics to its own run at once. Prints the run ids as JSON.

Usage: python server_writer.py TRACKING_URI EXPERIMENT_ID TAG THREADS METRICS
"""

from __future__ import annotations

import json
import sys
import threading


def main(uri: str, experiment_id: str, tag: str, threads: int, metrics: int) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    ids: list[str | None] = [None] * threads
    errors: list[str] = []
    start = threading.Barrier(threads)

    def work(k: int) -> None:
        try:
            run = client.create_run(experiment_id, run_name=f"{tag}-{k}")
            start.wait()  # every thread writes at the same time
            for i in range(metrics):
                client.log_metric(run.info.run_id, f"m{i}", float(i), step=i)
            client.set_terminated(run.info.run_id)
            ids[k] = run.info.run_id
        except Exception as exc:  # noqa: BLE001 - reported to the test
            errors.append(f"{type(exc).__name__}: {exc}")
            start.abort()

    pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    print(json.dumps({"runs": ids, "errors": errors}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
