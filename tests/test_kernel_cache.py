"""numba's kernel cache follows the kernels' source: a change to a kernel that another one compiles
in reaches the caller on the next run, where numba alone would keep the old code."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import research.kernel_cache as kc

A = """
from numba import njit
from pkg.kernel_cache import configure_kernel_cache
from pkg.b import step

configure_kernel_cache()


@njit(cache=True)
def total(n):
    s = 0
    for i in range(n):
        s += step(i)
    return s
"""
B = """
from numba import njit
from pkg.kernel_cache import configure_kernel_cache

configure_kernel_cache()


@njit(cache=True)
def step(i):
    return {value}
"""


def _package(root: Path, value: int) -> None:
    pkg = root / "pkg"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text("")
    shutil.copy(kc.__file__, pkg / "kernel_cache.py")
    (pkg / "a.py").write_text(textwrap.dedent(A))
    (pkg / "b.py").write_text(textwrap.dedent(B.format(value=value)))


def _total(root: Path, cache: Path) -> tuple[int, str]:
    out = subprocess.run(
        [sys.executable, "-c", "import os; from pkg.a import total; print(total(10), os.environ['NUMBA_CACHE_DIR'])"],
        cwd=root, capture_output=True, text=True, timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": str(root), "NUMBA_CACHE_DIR": str(cache), "PYTHONPATH": str(root)})
    assert out.returncode == 0, out.stderr
    value, folder = out.stdout.split()
    return int(value), folder


def test_a_changed_callee_reaches_its_cached_caller(tmp_path):
    cache = tmp_path / "cache"
    _package(tmp_path, 1)
    first, folder1 = _total(tmp_path, cache)
    assert first == 10
    assert list(Path(folder1).rglob("*.nbi")), "nothing was cached"
    assert _total(tmp_path, cache) == (10, folder1)  # unchanged source: the same folder, from the cache
    _package(tmp_path, 2)  # only the callee's file changes
    second, folder2 = _total(tmp_path, cache)
    assert second == 20, "the caller ran the old callee from numba's cache"
    assert folder2 != folder1 and Path(folder2).parent == cache


def test_the_digest_covers_kernel_files_only(tmp_path):
    (tmp_path / "k.py").write_text("from numba import njit\n")
    (tmp_path / "plain.py").write_text("x = 1\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "stale.py").write_text("njit\n")
    before = kc.kernel_source_digest(tmp_path)
    (tmp_path / "plain.py").write_text("x = 2\n")
    (tmp_path / "__pycache__" / "stale.py").write_text("njit = 2\n")
    assert kc.kernel_source_digest(tmp_path) == before
    (tmp_path / "k.py").write_text("from numba import njit  # changed\n")
    assert kc.kernel_source_digest(tmp_path) != before


@pytest.mark.parametrize(("given", "expected"), [
    (None, "{xdg}/workbench/numba/workbench-{d}"),
    ("{base}", "{base}/workbench-{d}"),
    ("{base}/workbench-{d}", "{base}/workbench-{d}"),                    # a child process of this version
    ("{base}/workbench-0123456789abcdef", "{base}/workbench-{d}"),      # left by another version
    ("{base}/workbench-numba", "{base}/workbench-numba/workbench-{d}"),  # a base that merely looks alike
])
def test_the_folder_is_keyed_under_the_given_base(monkeypatch, tmp_path, given, expected):
    d = "a" * 16
    fill = {"base": str(tmp_path / "base"), "xdg": str(tmp_path / "xdg"), "d": d}
    monkeypatch.setenv("XDG_CACHE_HOME", fill["xdg"])
    if given is None:
        monkeypatch.delenv(kc.KERNEL_CACHE_ENV, raising=False)
    else:
        monkeypatch.setenv(kc.KERNEL_CACHE_ENV, given.format(**fill))
    assert kc._folder(d) == Path(expected.format(**fill))


def test_the_workbench_kernels_use_the_keyed_folder():
    import numba

    from research.backtest import simulate  # noqa: F401 - a kernel module configures the cache on import

    folder = Path(numba.config.CACHE_DIR)
    assert folder.name == f"workbench-{kc.kernel_source_digest()}"
