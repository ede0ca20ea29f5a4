"""Hooks: code a pipeline spec names, called by the engine around a run without knowing it.

A spec may declare::

    hooks:
      parameters: research.stages.sources:resolve_source  # settle shared parameters before the run
      as_of: research.stages.as_of:resolve_as_of       # the run's as-of date from its parameters
      after_run: [research.alerts.delivery:after_run]  # called once a run ends, whatever its status

Each hook is ``module:function``. The spec is refused when it loads if a hook is malformed,
its module cannot be imported or its name is not a callable, so a typo never surfaces at the
end of a run. A quick check (``parse_hooks(..., load=False)``, what the command line does before
it validates parameters) finds the module and reads its source for the name without running it,
so refusing a bad parameter does not wait for the hooks' libraries to load; the run itself then
loads every hook before its first stage.

* ``parameters(shared) -> dict`` receives the run's shared parameters first and returns new
  values for some of them (each must be a declared shared parameter), settled once for the
  whole run: e.g. ``source: auto`` becomes the source that answered. The engine prints each
  change and records the new values in the run's parameters.
* ``as_of(shared) -> str`` receives the run's shared parameters and returns its as-of date;
  without it the engine takes the ``as_of`` parameter, else today's date in UTC.
* each ``after_run(record, run_dir, *, echo)`` receives the run's record (``run.json``), its
  folder and the progress-line printer. An after-run hook never fails the run: whatever it
  raises is logged and reported on the progress lines.

This module is the engine's one loader of code by name: the names come from the spec (data),
never from the package's own imports.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Hooks", "HookError", "parse_hooks", "load_hook", "find_hook", "call_after_run", "HOOK_NAMES"]

log = logging.getLogger(__name__)
#: The hooks a spec may declare.
HOOK_NAMES = ("parameters", "as_of", "after_run")
_REF = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$")


class HookError(ValueError):
    """A hook of a spec is malformed, or names something that is not an importable callable."""


@dataclass(frozen=True)
class Hooks:
    """The hooks of one spec, as ``module:function`` references."""

    as_of: str | None = None
    after_run: tuple[str, ...] = ()
    parameters: str | None = None


def load_hook(ref: str) -> Callable[..., Any]:
    """The callable ``ref`` (``module:function``) names.

    Raises
    ------
    HookError
        When ``ref`` is malformed, its module cannot be imported or the name is not callable.
    """
    module_name, attr = _check_ref(ref)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise HookError(f"hook {ref!r}: cannot import {module_name}: {exc}") from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise HookError(f"hook {ref!r}: {module_name} has no callable {attr!r}")
    return fn


def _check_ref(ref: Any) -> tuple[str, str]:
    if not isinstance(ref, str) or not _REF.match(ref):
        raise HookError(f"hook {ref!r} must be 'module:function' (e.g. research.alerts.delivery:after_run)")
    module_name, attr = ref.split(":")
    return module_name, attr


def _binds(node: ast.AST, name: str) -> bool:
    """Whether a statement may bind ``name``: a def, class, assignment target or import inside it."""
    for n in ast.walk(node):
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.name == name:
            return True
        if isinstance(n, ast.Name) and n.id == name and isinstance(n.ctx, ast.Store):
            return True
        if isinstance(n, ast.alias) and (n.asname or n.name.split(".")[0]) in (name, "*"):
            return True
    return False


def _defines(tree: ast.Module, name: str) -> bool | None:
    """Whether a module's top level defines ``name`` as a function or class (True), not at all
    (False), or in a way its source cannot tell (None: an assignment, an import, a block,
    a module ``__getattr__``)."""
    unsure = False
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name == name:
                return True
            unsure |= node.name == "__getattr__"
        else:
            unsure |= _binds(node, name)
    return None if unsure else False


def find_hook(ref: str) -> None:
    """Check ``ref`` (``module:function``) without running its module: the module is found on
    the path and its source defines the function. Where the source cannot tell (no source file,
    a name bound by assignment or import), the module is loaded as :func:`load_hook` does.

    Raises
    ------
    HookError
        When ``ref`` is malformed, its module cannot be found or does not define the name.
    """
    module_name, attr = _check_ref(ref)
    try:
        found = importlib.util.find_spec(module_name)
    except (ImportError, ValueError) as exc:
        raise HookError(f"hook {ref!r}: cannot import {module_name}: {exc}") from exc
    if found is None:
        raise HookError(f"hook {ref!r}: cannot import {module_name}: no module named {module_name!r}")
    origin = Path(found.origin) if found.origin and found.has_location else None
    if origin is None or origin.suffix != ".py" or not origin.is_file():
        load_hook(ref)
        return
    defined = _defines(ast.parse(origin.read_text(encoding="utf-8")), attr)
    if defined is None:
        load_hook(ref)
    elif not defined:
        raise HookError(f"hook {ref!r}: {module_name} has no callable {attr!r}")


def parse_hooks(raw: Any, *, load: bool = True) -> Hooks:
    """Check the ``hooks`` mapping of a spec and load every hook once.

    Parameters
    ----------
    raw : mapping or None
        The spec's ``hooks`` value.
    load : bool
        Import each hook's module (the full check); ``False`` checks each with
        :func:`find_hook`, which runs no module.

    Raises
    ------
    HookError
        Naming the hook that is unknown, malformed or not importable.
    """
    if raw is None:
        return Hooks()
    if not isinstance(raw, Mapping):
        raise HookError(f"hooks must be a mapping of {list(HOOK_NAMES)}; got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(HOOK_NAMES))
    if unknown:
        raise HookError(f"unknown hooks {unknown}; expected {list(HOOK_NAMES)}")
    check = load_hook if load else find_hook
    as_of, parameters = raw.get("as_of"), raw.get("parameters")
    for ref in (as_of, parameters):
        if ref is not None:
            check(ref)
    after = raw.get("after_run") or []
    if isinstance(after, str):
        after = [after]
    if not isinstance(after, list):
        raise HookError(f"hooks.after_run must be a list of 'module:function'; got {after!r}")
    for ref in after:
        check(ref)
    return Hooks(as_of=as_of, after_run=tuple(after), parameters=parameters)


def call_after_run(hooks: Hooks, record: dict, run_dir: Path, *, echo: Callable[[str], None]) -> None:
    """Call every ``after_run`` hook in order; never raises (a failing hook is reported and skipped)."""
    for ref in hooks.after_run:
        try:
            load_hook(ref)(record, run_dir, echo=echo)
        except Exception as exc:  # a hook never fails the run it follows
            log.exception("after-run hook %s failed for run %s", ref, record.get("run_id"))
            echo(f"hook {ref}: failed ({type(exc).__name__}: {exc})")
