"""Atomic file writes: a reader sees the whole old file or the whole new one, never a part.

Every file the workbench writes for others to read (store datasets, the matrix cache, sweep
chunks, published outputs, the request budget) goes through :func:`atomic_path` or
:func:`atomic_write`: the content is written to a temporary file in the same folder
(``.<name>.<random>.tmp``), flushed to disk, then renamed over the target, which POSIX makes
atomic; on any error the temporary file is removed and the target is untouched. A writer
killed mid-write leaves only a ``.tmp`` orphan, which :func:`remove_orphans` clears.

This module imports only the standard library, so every room may use it.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "atomic_write", "remove_orphans", "fsync_dir", "PLAIN_FILE_MODE"]

_UMASK = os.umask(0o022)
os.umask(_UMASK)
PLAIN_FILE_MODE = 0o666 & ~_UMASK
"""The permissions ``open(path, "w")`` would give a new file under this process's umask (pass it
as ``mode=`` for files a user reads and shares: tables, reports, the data store)."""


def fsync_dir(folder: str | os.PathLike) -> None:
    """Flush a folder's entries (a rename in it) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | os.PathLike, *, mode: int | None = None, durable: bool = True) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed over ``path`` when the block ends.

    Parameters
    ----------
    path : path-like
        The target. Its folder must exist (the temporary file is created in it, so the rename
        never crosses file systems).
    mode : int, optional
        Permission bits for the new file (``mkstemp`` creates it ``0o600``).
    durable : bool
        Flush the file and its folder to disk (``fsync``) around the rename. Off only for
        caches that can be rebuilt.

    Yields
    ------
    Path
        Where to write. Whatever is written there replaces ``path`` if the block succeeds; if
        it raises, the temporary file is removed and ``path`` is unchanged.

    Examples
    --------
    >>> with atomic_path(target) as tmp:          # doctest: +SKIP
    ...     frame.to_parquet(tmp)
    """
    target = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(name)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        os.close(fd)
        fd = -1
        yield tmp
        if durable:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, target)
        if durable:
            fsync_dir(target.parent)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike, data: bytes | str, *, mode: int | None = None,
                 durable: bool = True, mkdir: bool = True) -> Path:
    """Write ``data`` (bytes, or text as UTF-8) to ``path`` atomically; returns the path.

    ``mkdir`` creates the folder first. See :func:`atomic_path` for ``mode`` and ``durable``.
    """
    target = Path(path)
    if mkdir:
        target.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(target, mode=mode, durable=durable) as tmp:
        tmp.write_bytes(payload)
    return target


def _orphan_pattern(name: str) -> re.Pattern[str]:
    # tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp"): 8 random characters in between, so the
    # temporary files of "f" never match those of "f.txt"
    return re.compile(rf"\.{re.escape(name)}\.[a-z0-9_]{{8}}\.tmp")


def remove_orphans(path: str | os.PathLike, *, older_than: float = 0.0) -> int:
    """Remove the temporary files that writers of ``path`` killed mid-write left; returns how many.

    Call it while holding ``path``'s write lock (where it has one): every writer of ``path``
    holds that lock while its temporary file exists, so any other temporary file of ``path`` is
    an orphan. ``older_than`` (seconds) spares files modified more recently than that.
    """
    target = Path(path)
    pattern = _orphan_pattern(target.name)
    removed, now = 0, time.time()
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return 0
    for entry in entries:
        if not pattern.fullmatch(entry.name):
            continue
        try:
            if now - entry.stat().st_mtime >= older_than:
                os.unlink(entry.path)
                removed += 1
        except OSError:
            continue
    return removed
