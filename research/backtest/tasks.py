"""Run independent tasks in process or on a Dask client, with a resumable on-disk cache.

The fan-out helpers of the workbench (chunked sweeps, walk-forward folds, seeds) share this
runner. The client is duck-typed: anything with ``submit`` and ``scatter`` like
:class:`distributed.Client` (get one from :func:`research.compute.get_client`); without a
client the tasks run here, one after the other, and Dask is never imported.

Guarantees
----------
* Results come back in task order whatever the completion order; each task's result is
  taken exactly once, so a worker lost mid-run (its tasks are rescheduled by Dask) leaves
  nothing missing or duplicated. A worker that dies with the last copy of the shared inputs
  makes Dask cancel the tasks still to run; they are submitted again with the inputs
  scattered afresh.
* Large shared inputs are scattered to every worker once (``broadcast=True``), not shipped
  with each task.
* Ctrl-C (or any error) cancels the tasks still pending on the cluster.
* With a :class:`ChunkCache`, each finished task is written to disk atomically as soon as it
  arrives; a rerun with the same key loads those and computes only the missing ones.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import CancelledError
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from research.atomic import atomic_path, atomic_write

__all__ = ["run_tasks", "ChunkCache", "digest", "code_version", "cache_root"]

logger = logging.getLogger(__name__)

# packages whose source decides a sweep's numbers: a change in any of them is a new cache key
_CODE_PACKAGES = ("backtest", "strategies", "features", "risk")


def run_tasks(
    fn: Callable[..., Any],
    tasks: Sequence[tuple],
    *,
    client: Any = None,
    shared: Mapping[str, Any] | None = None,
    desc: str = "tasks",
    progress: bool = True,
    cache: ChunkCache | None = None,
    to_frame: Callable[[Any], pd.DataFrame] | None = None,
    from_frame: Callable[[pd.DataFrame], Any] | None = None,
) -> list[Any]:
    """``[fn(*task, **shared) for task in tasks]``, in process or on ``client``.

    Parameters
    ----------
    fn : callable
        A module-level function (workers import it by name).
    tasks : sequence of tuple
        Positional arguments of each call.
    client : distributed.Client, optional
        Where to run; None runs in this process.
    shared : mapping, optional
        Keyword arguments common to every call; on a client each is scattered to all
        workers once.
    desc : str
        Label of the progress bar and of the task keys.
    progress : bool
        Show a tqdm bar over tasks.
    cache : ChunkCache, optional
        Load finished tasks from it, save each new one as it arrives.
    to_frame, from_frame : callable, optional
        Convert a result to and from the DataFrame the cache stores (default: the result is
        a DataFrame).

    Returns
    -------
    list
        One result per task, in task order.
    """
    from tqdm.auto import tqdm

    shared = dict(shared or {})
    results, todo = _from_cache(cache, len(tasks), from_frame)
    bar = tqdm(total=len(tasks), initial=len(tasks) - len(todo), desc=desc, disable=not progress, leave=False)
    keep = partial(_keep, results, cache, to_frame, bar)
    try:
        if client is None:
            for i in todo:
                keep(i, fn(*tasks[i], **shared))
        elif todo:
            _on_client(client, fn, tasks, todo, shared, desc, keep)
    finally:
        bar.close()
    return results


def _from_cache(cache: ChunkCache | None, n: int,
                from_frame: Callable[[pd.DataFrame], Any] | None) -> tuple[list[Any], list[int]]:
    """The results of ``n`` tasks the cache holds (None where it does not) and the tasks left to compute.

    Sets ``cache.computed`` to the number left.
    """
    results: list[Any] = [None] * n
    todo = list(range(n))
    if cache is not None:
        todo = []
        for i in range(n):
            frame = cache.load(i)
            if frame is None:
                todo.append(i)
            else:
                results[i] = from_frame(frame) if from_frame else frame
        cache.computed = len(todo)
    return results, todo


def _keep(results: list[Any], cache: ChunkCache | None, to_frame: Callable[[Any], pd.DataFrame] | None,
          bar: Any, i: int, value: Any) -> None:
    """Take task ``i``'s result: into ``results``, saved to the cache (if any), counted on the progress bar."""
    results[i] = value
    if cache is not None:
        cache.save(i, to_frame(value) if to_frame else value)
    bar.update(1)


#: How many times a run submits the tasks Dask cancelled because their inputs died with a worker.
_ROUNDS = 3


def _on_client(client: Any, fn: Callable, tasks: Sequence[tuple], todo: list[int], shared: dict[str, Any],
               desc: str, keep: Callable[[int, Any], None]) -> None:
    """Run the tasks ``todo`` on ``client`` (shared inputs scattered once), each result to ``keep`` as it arrives.

    The shared inputs are broadcast to every worker, but Dask's active memory manager drops the
    copies no waiting task needs, so near the end of a run they may live on one worker only. If
    that worker dies, Dask cancels every task still to run (their inputs are gone): those tasks
    are submitted again with the inputs scattered afresh, up to ``_ROUNDS`` rounds in all.
    """
    left = list(todo)
    for _ in range(_ROUNDS):
        left = _one_round(client, fn, tasks, left, shared, desc, keep)
        if not left:
            return
        logger.warning("%d %s task(s) lost their inputs with a worker; scattering the inputs again and "
                       "resubmitting them", len(left), desc)
    raise RuntimeError(f"{len(left)} {desc} task(s) were cancelled in each of {_ROUNDS} rounds (their inputs lost "
                       "with a worker every time); check the cluster's workers (memory limits, restarts)")


def _one_round(client: Any, fn: Callable, tasks: Sequence[tuple], todo: list[int], shared: dict[str, Any],
               desc: str, keep: Callable[[int, Any], None]) -> list[int]:
    """Submit the tasks ``todo`` once; return those Dask cancelled (to submit again).

    A task is cancelled when its inputs are lost, before it runs or after it finished but
    before its result reached this process (its result then died with the worker too).
    """
    from distributed import as_completed

    # scatter([v]): each shared value travels whole (a dict or tuple is not split into parts)
    # hash=False: fresh keys per run, so a rerun never reuses a key the scheduler is still releasing
    remote = {k: client.scatter([v], broadcast=True, hash=False)[0] for k, v in shared.items()}
    run = uuid.uuid4().hex[:8]
    futures = {}
    for i in todo:
        fut = client.submit(fn, *tasks[i], **remote, key=f"{desc.replace(' ', '_')}-{run}-{i}", pure=False)
        futures[fut.key] = (i, fut)
    pending, cancelled = set(futures), []
    try:
        for fut in as_completed([f for _, f in futures.values()], loop=client.loop):
            i, _ = futures[fut.key]
            if fut.key not in pending:  # taken already: never count a task twice
                continue
            try:
                value = fut.result()
            except CancelledError:  # its inputs (or its result) died with a worker: submitted again next round
                pending.discard(fut.key)
                cancelled.append(i)
                continue
            keep(i, value)
            pending.discard(fut.key)
            fut.release()
    finally:
        if pending:
            client.cancel([futures[k][1] for k in pending])
    return sorted(cancelled)


class ChunkCache:
    """Finished chunks of one task plan: ``<root>/<key>/chunk-N.parquet``, each content-checked.

    Every chunk file carries the sha256 of its content (``workbench.sha256`` in the Parquet
    schema metadata). :meth:`load` verifies it: a chunk whose values were changed on disk, one
    rewritten without the hash (e.g. edited with pandas) or one that cannot be read is
    reported (a logged warning and a :class:`UserWarning`), counted in :attr:`rejected` and
    recomputed by :func:`run_tasks`.

    Parameters
    ----------
    key : str
        Content hash of everything that decides the chunks (data, grid, options, plan, code).
    root : Path, optional
        Folder of all caches (default :func:`cache_root`).
    meta : dict, optional
        Written next to the chunks as ``plan.json`` (for people; not read back).
    """

    def __init__(self, key: str, root: Path | None = None, meta: Mapping[str, Any] | None = None) -> None:
        self.key = key
        self.path = Path(root or cache_root()) / key
        self.computed = 0
        self.rejected = 0
        self._meta = dict(meta or {})

    def _file(self, i: int) -> Path:
        return self.path / f"chunk-{i}.parquet"

    def load(self, i: int) -> pd.DataFrame | None:
        """The saved chunk ``i`` if present and intact, else None (missing, unreadable or altered)."""
        import pyarrow.parquet as pq

        f = self._file(i)
        if not f.is_file():
            return None
        try:
            table = pq.read_table(f)
        except Exception as exc:  # noqa: BLE001 - a damaged chunk is recomputed
            return self._reject(f, f"unreadable ({exc})")
        meta = table.schema.metadata or {}
        want = meta.get(_HASH_KEY)
        if want is None:
            return self._reject(f, "it carries no content hash (rewritten outside the workbench?)")
        frame = _from_arrow(table)
        if _content_hash(frame) != want.decode():
            return self._reject(f, "its content does not match its hash (edited or damaged on disk)")
        return frame

    def _reject(self, f: Path, why: str) -> None:
        import warnings

        self.rejected += 1
        message = f"cached sweep chunk {f} failed its check: {why}; recomputing it"
        logger.warning(message)
        warnings.warn(message, stacklevel=4)
        return None

    def save(self, i: int, frame: pd.DataFrame) -> None:
        """Write chunk ``i`` with its content hash, atomically (temporary file, then rename)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.path.mkdir(parents=True, exist_ok=True)
        if self._meta and not (self.path / "plan.json").exists():
            atomic_write(self.path / "plan.json", json.dumps(self._meta, indent=2, default=str), durable=False)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        meta = dict(table.schema.metadata or {})
        meta[_ATTRS_KEY] = json.dumps(frame.attrs, default=str).encode()
        table = table.replace_schema_metadata(meta)
        meta[_HASH_KEY] = _content_hash(_from_arrow(table)).encode()  # the content as load() will see it
        table = table.replace_schema_metadata(meta)
        with atomic_path(self._file(i), durable=False) as tmp:
            pq.write_table(table, tmp)

    def chunks(self) -> list[Path]:
        """The chunk files present now."""
        return sorted(self.path.glob("chunk-*.parquet")) if self.path.is_dir() else []


_HASH_KEY = b"workbench.sha256"
_ATTRS_KEY = b"workbench.attrs"


def _from_arrow(table: Any) -> pd.DataFrame:
    frame = table.to_pandas()
    frame.attrs = json.loads((table.schema.metadata or {}).get(_ATTRS_KEY, b"{}"))
    return frame


def _content_hash(frame: pd.DataFrame) -> str:
    return digest(frame, json.dumps(frame.attrs, sort_keys=True, default=str))


def cache_root() -> Path:
    """``<data_dir>/cache/sweeps``: where chunked runs keep their finished chunks."""
    from research.config import get_settings

    return get_settings().data_dir / "cache" / "sweeps"


def digest(*parts: Any) -> str:
    """A sha256 hex digest of arrays, frames, mappings, sequences and scalars (by content)."""
    h = hashlib.sha256()
    for part in parts:
        _feed(h, part)
    return h.hexdigest()


def _feed(h: Any, obj: Any) -> None:
    if isinstance(obj, np.ndarray):
        arr = np.ascontiguousarray(obj)
        h.update(f"nd{arr.dtype.str}{arr.shape}".encode())
        h.update(arr.tobytes() if arr.dtype != object else repr(arr.tolist()).encode())
    elif isinstance(obj, pd.DataFrame):
        h.update(b"df")
        _feed(h, obj.index)
        _feed(h, [str(c) for c in obj.columns])
        for col in obj.columns:
            _feed(h, obj[col].to_numpy())
    elif isinstance(obj, pd.Series):
        h.update(b"sr")
        _feed(h, obj.index)
        _feed(h, obj.to_numpy())
    elif isinstance(obj, pd.Index):
        h.update(f"ix{obj.dtype}".encode())
        _feed(h, obj.asi8 if hasattr(obj, "asi8") and obj.asi8 is not None else np.asarray(obj, dtype=object))
    elif isinstance(obj, Mapping):
        h.update(b"map")
        for k in sorted(obj, key=str):
            _feed(h, str(k))
            _feed(h, obj[k])
    elif isinstance(obj, list | tuple):
        h.update(f"seq{len(obj)}".encode())
        for x in obj:
            _feed(h, x)
    else:
        h.update(f"{type(obj).__name__}:{obj!r};".encode())


@lru_cache(maxsize=1)
def code_version() -> str:
    """Hash of the workbench code that decides results, and of the numeric libraries' versions."""
    import importlib.metadata as md

    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for pkg in _CODE_PACKAGES:
        for f in sorted((root / pkg).rglob("*.py")):
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
    for lib in ("numpy", "pandas", "numba", "vectorbt"):
        try:
            h.update(f"{lib}={md.version(lib)}".encode())
        except md.PackageNotFoundError:
            pass
    return h.hexdigest()[:16]
