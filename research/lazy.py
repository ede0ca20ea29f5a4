"""Lazy exports: a package's public names, each loaded from its module on first use.

``from research.tracking import run`` must not load MLflow until a run is asked for, and
``import research`` must not load pandas. A package declares where each public name lives
and gets the module-level ``__getattr__`` and ``__dir__`` that load it on demand (PEP 562)::

    __getattr__, __dir__ = lazy_exports(__name__, {"run": "runs", "load_prices": "research.data.loader"})

A location is a module path relative to the package (``"runs"``) or absolute
(``"research.data.loader"``), optionally with the attribute's own name when it differs:
``("research.backtest.engine", "backtest")``. A loaded value is cached in the package.

This module imports only the standard library, so every room may use it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]

Location = str | tuple[str, str]


def lazy_exports(package: str, exports: Mapping[str, Location]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` whose names in ``exports`` load on first use."""

    def resolve(name: str) -> tuple[str, str]:
        where = exports[name]
        module, attr = where if isinstance(where, tuple) else (where, name)
        return (module if module.startswith("research") else f"{package}.{module}"), attr

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, attr = resolve(name)
        value = getattr(importlib.import_module(module), attr)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
