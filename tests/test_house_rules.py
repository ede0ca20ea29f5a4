"""House rules of the package's code: no function longer than a reader can hold at once, and one
name per concept (no public function or class name defined in two modules).

A function is measured from its ``def`` line to its last line, docstring included (decorators
not counted); methods and nested functions are measured on their own too. Numba kernels
(decorated ``@njit`` / ``@jit``, bare or called, by name or as ``numba.njit``) are exempt: a
kernel is one loop the compiler must see whole, and splitting it would add calls in the hot loop.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import research

ROOT = Path(research.__file__).parent
MAX_LINES = 60

#: Functions still over the limit while work on their modules is under way elsewhere; each is
#: split (and leaves this list) once that work has landed. The test below also fails when an
#: entry is no longer over the limit, so the list only shrinks.
ALLOWED: set[str] = set()


def _is_numba_kernel(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for dec in node.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name in ("njit", "jit"):
            return True
    return False


def _functions(tree: ast.AST, prefix: str = ""):
    """``(qualified name, node)`` of every function in ``tree``, methods and nested ones included."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield prefix + node.name, node
            yield from _functions(node, f"{prefix}{node.name}.")
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node, f"{prefix}{node.name}.")
        else:
            yield from _functions(node, prefix)


def _long_in(source: str, where: str, limit: int) -> dict[str, int]:
    """``{"<where>::<qualname>": lines}`` of the non-numba functions of ``source`` over ``limit`` lines."""
    found = {}
    for name, node in _functions(ast.parse(source)):
        lines = node.end_lineno - node.lineno + 1
        if lines > limit and not _is_numba_kernel(node):
            found[f"{where}::{name}"] = lines
    return found


def long_functions(root: Path = ROOT, *, limit: int = MAX_LINES) -> dict[str, int]:
    """``{"research/<path>::<qualname>": lines}`` of every non-numba function over ``limit`` lines."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        found.update(_long_in(path.read_text(encoding="utf-8"), path.relative_to(root.parent).as_posix(), limit))
    return found


def test_no_function_over_the_limit():
    over = {k: n for k, n in long_functions().items() if k not in ALLOWED}
    assert not over, (
        f"functions over {MAX_LINES} lines (split each into helpers that do one thing): "
        + ", ".join(f"{k} ({n} lines)" for k, n in sorted(over.items()))
    )


def test_allowed_entries_are_still_long():
    found = long_functions()
    stale = sorted(k for k in ALLOWED if k not in found)
    assert not stale, f"no longer over {MAX_LINES} lines (or gone): remove from ALLOWED: {stale}"


def _measure(source: str) -> dict[str, int]:
    return {k.split("::")[1]: n for k, n in _long_in(source, "x.py", limit=5).items()}


@pytest.mark.parametrize("decorator", ["@njit", "@njit(cache=True)", "@numba.njit(parallel=True)", "@nb.jit"])
def test_numba_kernels_are_exempt(decorator):
    body = "\n".join(f"    x{i} = {i}" for i in range(8))
    assert _measure(f"{decorator}\ndef kernel():\n{body}\n") == {}
    assert _measure(f"@functools.cache\ndef plain():\n{body}\n") == {"plain": 9}


def test_methods_and_nested_functions_are_measured():
    body = "\n".join(f"        x{i} = {i}" for i in range(8))
    src = f"class C:\n    def method(self):\n{body}\n\ndef outer():\n    def inner():\n{body}\n    return inner\n"
    assert _measure(src) == {"C.method": 9, "outer": 11, "outer.inner": 9}


# ---------------------------------------------------------------- one name per concept
#: Public names several modules define on purpose, and why. Command functions of research/cli
#: (decorated ``@<app>.command(...)``) are exempt too: Typer names them, nothing calls them.
SHARED_NAMES = {
    "register": "each research/cli command module's register(app): the protocol of the command table",
}


def _is_command(node: ast.AST) -> bool:
    return any(isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute) and d.func.attr in {"command", "callback"}
               for d in getattr(node, "decorator_list", []))


def public_names(sources: dict[str, str]) -> dict[str, set[str]]:
    """``{name: modules}`` of the public top-level functions and classes of ``sources`` (path -> code)."""
    found: dict[str, set[str]] = {}
    for path, source in sources.items():
        for node in ast.parse(source).body:
            if (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                    and not node.name.startswith("_") and not _is_command(node)):
                found.setdefault(node.name, set()).add(path)
    return found


def names_with_two_meanings(sources: dict[str, str]) -> dict[str, list[str]]:
    """Public names defined in more than one module and not in :data:`SHARED_NAMES`."""
    return {name: sorted(paths) for name, paths in sorted(public_names(sources).items())
            if len(paths) > 1 and name not in SHARED_NAMES}


def _package_sources() -> dict[str, str]:
    return {p.relative_to(ROOT.parent).as_posix(): p.read_text(encoding="utf-8") for p in sorted(ROOT.rglob("*.py"))}


def test_each_public_name_is_defined_in_one_module():
    sources = _package_sources()
    twice = names_with_two_meanings(sources)
    assert not twice, f"one name per concept: rename one (or keep one def and call it): {twice}"
    shared = public_names(sources)
    assert all(len(shared.get(name, ())) > 1 for name in SHARED_NAMES), "a SHARED_NAMES entry is no longer shared"


def test_the_name_check_catches_a_planted_second_meaning():
    planted = {
        "research/risk/metrics.py": "def equity_curve(returns):\n    pass\n",
        "research/paper/monitor.py": "def equity_curve(name):\n    pass\n",
        "research/data/x.py": "from typing import overload\n@overload\ndef f(x: int) -> int: ...\ndef f(x): pass\n"
                              "class LedgerError(Exception): pass\n",
        "research/alerts/y.py": "class LedgerError(Exception): pass\ndef _private(): pass\n",
        "research/news/z.py": "def _private(): pass\ndef register(app): pass\n",
        "research/cli/data.py": "@app.command('fetch')\ndef fetch(): pass\ndef register(app): pass\n",
        "research/cli/news.py": "@app.command('fetch')\ndef fetch(): pass\n",
    }
    assert names_with_two_meanings(planted) == {
        "LedgerError": ["research/alerts/y.py", "research/data/x.py"],
        "equity_curve": ["research/paper/monitor.py", "research/risk/metrics.py"],
    }
