"""Fixtures of the runner's tests: toy specs over the notebooks in ``notebooks/``, a kernel-orphan check."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest
import yaml

NOTEBOOKS = Path(__file__).parent / "notebooks"


def write_spec(folder: Path, name: str, stages: list[dict], parameters: dict | None = None,
               hooks: dict | None = None) -> Path:
    """A spec file named ``<name>.yaml`` whose stage notebooks are the toy notebooks (and ``hooks``, if given)."""
    for st in stages:
        st["notebook"] = str(NOTEBOOKS / st["notebook"])
        st.setdefault("timeout", 60)
    path = folder / f"{name}.yaml"
    doc = {"name": name, "parameters": parameters or {}, "stages": stages, **({"hooks": hooks} if hooks else {})}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def two_stage_spec(folder: Path, name: str, hooks: dict | None = None) -> Path:
    """numbers -> total: the second reads what the first wrote; it fails while a marker file exists."""
    return write_spec(
        folder, name,
        [
            {"name": "numbers", "notebook": "01-numbers.ipynb", "writes": ["numbers"]},
            {"name": "total", "notebook": "02-total.ipynb", "reads": ["numbers"], "writes": ["total"]},
        ],
        {"n": 5, "fail_if_exists": {"type": "str", "default": ""}},
        hooks,
    )


@pytest.fixture
def toys():
    """The toy notebooks' folder and spec writers: ``toys.NOTEBOOKS``, ``toys.write_spec``, ``toys.two_stage_spec``."""
    return SimpleNamespace(NOTEBOOKS=NOTEBOOKS, write_spec=write_spec, two_stage_spec=two_stage_spec)


def kernel_children() -> list[psutil.Process]:
    """Live child processes of this test process that are Jupyter kernels."""
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE and "ipykernel" in " ".join(p.cmdline()):
                out.append(p)
        except psutil.NoSuchProcess:
            continue
    return out


@pytest.fixture
def kernels():
    """A function listing the live Jupyter kernels started by this process."""
    return kernel_children


@pytest.fixture
def no_orphan_kernels():
    """Fail the test if a kernel it started is still alive afterwards."""
    before = {p.pid for p in kernel_children()}
    yield
    left = [p for p in kernel_children() if p.pid not in before]
    assert not left, f"orphan kernels left running: {[p.pid for p in left]}"
