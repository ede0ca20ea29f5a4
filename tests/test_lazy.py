"""Lazy exports: a package's public names load their module on first use, and only then."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

from research.lazy import lazy_exports


def test_names_load_on_first_use_and_are_cached(monkeypatch):
    pkg = types.ModuleType("research_fake_pkg")
    monkeypatch.setitem(sys.modules, pkg.__name__, pkg)
    pkg.__getattr__, pkg.__dir__ = lazy_exports(pkg.__name__, {
        "dumps": "research.lazy",  # not there: AttributeError from the module
        "loads_json": ("json", "loads"),  # absolute module outside research: relative to the package
        "atomic_write": "research.atomic",
    })
    assert "atomic_write" in pkg.__dir__()
    from research.atomic import atomic_write

    assert pkg.atomic_write is atomic_write
    assert vars(pkg)["atomic_write"] is atomic_write  # cached: __getattr__ is not called again
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        pkg.__getattr__("nothing")
    with pytest.raises(ModuleNotFoundError):
        pkg.__getattr__("loads_json")  # "json" is taken relative to the package
    with pytest.raises(AttributeError):
        pkg.__getattr__("dumps")


@pytest.mark.parametrize("package, heavy", [
    ("research", "pandas"), ("research.tracking", "mlflow"), ("research.experiments", "tensorflow"),
    ("research.workflow", "papermill"),
    ("research.data", "research.data.store"), ("research.data", "pydantic"), ("research.features", "research.news"),
    ("research.risk", "research.risk.report"),
])
def test_importing_a_package_loads_none_of_its_heavy_modules(package, heavy):
    code = f"import sys, {package}; print({heavy!r} in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("package", ["research.data", "research.features", "research.risk", "research.tracking",
                                     "research.experiments", "research.workflow"])
def test_every_public_name_of_a_lazy_package_resolves(package):
    """Each name in ``__all__`` loads from the module the package declares (a stale entry fails)."""
    code = f"import {package} as p; print(sorted(n for n in p.__all__ if getattr(p, n, None) is None))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
