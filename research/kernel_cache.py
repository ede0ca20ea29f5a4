"""Where numba keeps the workbench's compiled kernels: one folder per version of their source.

numba's on-disk cache (``@njit(cache=True)``) checks only the timestamp of the file that defines
a kernel. A kernel that calls or inlines kernels of other files (the family sweeps compile the
shared simulation, the stop rules and the signal steps into one function) would keep running
the old code of those files after they change: an update that touched only
``research/backtest/simulate.py`` would leave every family sweep on the previous simulation,
silently. So the cache folder is keyed by a digest of every kernel source file of the package
(each ``.py`` file under ``research/`` that mentions ``njit``): any change to any of them
starts a fresh folder, and the kernels are compiled once again.

The folder is ``<base>/workbench-<digest>``, where ``<base>`` is ``NUMBA_CACHE_DIR`` when set,
else ``$XDG_CACHE_HOME/workbench/numba`` (``~/.cache/workbench/numba``). The environment
variable is set to the keyed folder too, so the processes the workbench starts (papermill
kernels, Dask workers) use the same one.

This module imports only the standard library (and numba, when a kernel module calls it), so
every room may use it.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

__all__ = ["configure_kernel_cache", "kernel_source_digest", "KERNEL_CACHE_ENV"]

KERNEL_CACHE_ENV = "NUMBA_CACHE_DIR"
_PACKAGE = Path(__file__).resolve().parent
_PREFIX = "workbench-"
_KEYED = re.compile(r"workbench-[0-9a-f]{16}")
_configured: Path | None = None


def kernel_source_digest(package: Path = _PACKAGE) -> str:
    """A digest (16 hex digits) of every kernel source file under ``package`` and its path."""
    digest = hashlib.sha256()
    for path in sorted(_sources(package)):
        data = path.read_bytes()
        if b"njit" in data:
            digest.update(path.relative_to(package).as_posix().encode() + b"\0" + data + b"\0")
    return digest.hexdigest()[:16]


def _sources(package: Path) -> list[Path]:
    """The ``.py`` files under ``package`` (``__pycache__`` folders skipped)."""
    found = []
    for root, dirs, files in os.walk(package):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        found += [Path(root) / f for f in files if f.endswith(".py")]
    return found


def _folder(digest: str) -> Path:
    given = os.environ.get("NUMBA_CACHE_DIR", "")
    if given and Path(given).name == _PREFIX + digest:  # set by the process that started this one
        return Path(given)
    if given and _KEYED.fullmatch(Path(given).name):  # another version's folder: its parent is the base
        return Path(given).parent / (_PREFIX + digest)
    base = Path(given) if given else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "workbench" / "numba"
    return base / (_PREFIX + digest)


def configure_kernel_cache() -> Path:
    """Point numba's cache at this kernel source's folder (once per process); returns the folder.

    Called by every module that defines cached kernels, before their ``@njit(cache=True)``
    decorators run (numba picks a kernel's cache folder when it is decorated).
    """
    global _configured
    if _configured is not None:
        return _configured
    folder = _folder(kernel_source_digest())
    os.environ[KERNEL_CACHE_ENV] = str(folder)
    import numba

    numba.config.CACHE_DIR = str(folder)
    _configured = folder
    return folder
