"""Imports inside research/ follow the data flow; nothing imports backwards.

The arrow: data -> features -> models -> strategies -> backtest -> risk -> tracking -> experiments
-> paper -> workflow.
A module may import its own subpackage and earlier ones. Leaves importable from anywhere:
research.config, research.defaults, research.types and research.risk.metrics (pure functions). research.viz and
research.cli sit on top and may import anything; nothing in the package imports them.
research.compute (where work runs) imports nothing from the package but research.config, and
only the top imports it: everything below receives a client as an argument.
"""

from __future__ import annotations

import ast
from pathlib import Path

import research

ORDER = [
    "data", "features", "models", "strategies", "backtest", "risk", "tracking", "experiments", "paper", "workflow",
]
LEAVES = {"research.config", "research.defaults", "research.types", "research.risk.metrics"}
TOP = {"viz", "cli"}
COMPUTE = "compute"
ROOT = Path(research.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):  # includes imports inside functions
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {m for m in found if m == "research" or m.startswith("research.")}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def backward_edges(modules: dict[str, set[str]]) -> list[str]:
    """Every import that goes against the arrow, as 'importer -> imported'."""
    bad = []
    for importer, targets in modules.items():
        src = _layer(importer)
        for target in sorted(targets):
            dst = _layer(target)
            if target in LEAVES or any(target.startswith(leaf + ".") for leaf in LEAVES):
                continue
            if importer == "research.__main__":
                continue
            if dst in TOP and src not in TOP:
                bad.append(f"{importer} -> {target} (nothing imports {dst})")
            elif dst == COMPUTE and src not in TOP and src != COMPUTE:
                bad.append(f"{importer} -> {target} (pass a client instead of importing {dst})")
            elif src == COMPUTE and dst != COMPUTE:
                bad.append(f"{importer} -> {target} ({src} imports only research.config)")
            elif src in TOP or src is None or src == "__main__" or dst not in ORDER or src not in ORDER:
                continue
            elif ORDER.index(dst) > ORDER.index(src):
                bad.append(f"{importer} -> {target} ({src} comes before {dst})")
    return bad


def test_no_backward_imports():
    modules = {_module_name(p): _imports(p) for p in ROOT.rglob("*.py")}
    assert len(modules) > 10
    assert backward_edges(modules) == []


def test_leaves_import_nothing_from_the_package():
    for leaf in LEAVES:
        path = ROOT.parent / (leaf.replace(".", "/") + ".py")
        assert _imports(path) == set(), f"{leaf} must not import from research"


def test_compute_imports_only_config_and_only_the_top_imports_it():
    modules = {_module_name(p): _imports(p) for p in ROOT.rglob("*.py")}
    compute = {m: t for m, t in modules.items() if _layer(m) == COMPUTE}
    assert compute, "research.compute is missing"
    for module, targets in compute.items():
        assert {t for t in targets if _layer(t) != COMPUTE} <= {"research.config"}, module
    users = {m for m, t in modules.items() if any(_layer(x) == COMPUTE for x in t)}
    assert {_layer(m) for m in users} <= TOP | {COMPUTE}, sorted(users)


def test_the_check_catches_a_planted_backward_edge():
    planted = {"research.data.store": {"research.backtest.engine"}, "research.risk.report": {"research.viz.risk"},
               "research.backtest.sweep": {"research.compute"}, "research.compute.cluster": {"research.data"}}
    assert len(backward_edges(planted)) == 4


def import_circles(modules: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that import each other, directly or through others (any import)."""
    graph = {m: {t for t in targets if t in modules and t != m and not m.startswith(t + ".")}
             for m, targets in modules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                circles.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return circles


def test_no_import_circles():
    modules = {_module_name(p): _imports(p) for p in ROOT.rglob("*.py")}
    assert import_circles(modules) == []


def test_the_circle_check_catches_a_planted_circle():
    planted = {"research.backtest.sweep": {"research.backtest.chunked"},
               "research.backtest.chunked": {"research.backtest.tasks"},
               "research.backtest.tasks": {"research.backtest.sweep"},
               "research.backtest": {"research.backtest.sweep"}}
    assert import_circles(planted) == [["research.backtest.chunked", "research.backtest.sweep",
                                        "research.backtest.tasks"]]
