"""Imports inside research/ follow the data flow; nothing imports backwards.

The arrow: data -> news -> features -> models -> strategies -> backtest -> risk -> tracking -> experiments
-> workflow -> paper -> alerts -> stages.
A module may import its own subpackage and earlier ones. research.workflow is the generic pipeline
engine: it imports nothing of the market rooms (only research.config), so the rooms above it (the
book, alerts, the pipelines' stages) may use it; what runs around a pipeline is named in its spec's
hooks, never imported by the engine. Leaves importable from anywhere:
research.config, research.defaults, research.types, research.risk.metrics and research.risk.activity (pure functions). research.viz and
research.cli sit on top and may import anything; nothing in the package imports them.
research.compute (where work runs) imports nothing from the package but research.config, and
only the top imports it: everything below receives a client as an argument.

Time zones are normalised by one module, research.timeutil (naive read as UTC, aware converted):
a hand-written ``tz_localize`` / ``tz_convert`` / ``replace(tzinfo=...)`` elsewhere is refused unless its file is listed in
``TZ_CALLS_ALLOWED`` with the count of such calls and the other job they do.

Two ways an import can hide from this walk are refused too: loading a module by a computed name
(``importlib.import_module`` / ``__import__``) outside the files listed in ``LOADERS_BY_NAME``,
and importing a private name (``from research.a.b import _x``) from another module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import research

ORDER = [
    "data", "news", "features", "models", "strategies", "backtest", "risk", "tracking", "experiments", "workflow",
    "paper", "alerts", "stages",
]
ENGINE = "workflow"
#: What the pipeline engine may import from the package besides itself.
ENGINE_MAY_IMPORT = {"research.config", "research.atomic", "research.lazy", "research.timeutil"}
#: The only files that load modules by a computed name, and why.
LOADERS_BY_NAME = {
    "research/lazy.py": "lazy exports: the names a package declares, loaded on first use",
    "research/cli/__init__.py": "the command groups, registered by name",
    "research/workflow/hooks.py": "the hooks a pipeline spec names (module:function, from YAML)",
}
LEAVES = {"research.config", "research.defaults", "research.types", "research.risk.metrics", "research.risk.activity",
          "research.atomic", "research.kernel_cache",
          "research.lazy", "research.timeutil"}
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


def test_leaves_import_nothing_from_the_package_but_leaves():
    for leaf in LEAVES:
        path = ROOT.parent / (leaf.replace(".", "/") + ".py")
        others = LEAVES - {leaf}
        bad = {m for m in _imports(path) if not any(m == o or m.startswith(o + ".") for o in others)}
        assert not bad, f"{leaf} must not import from research (other leaves excepted): {sorted(bad)}"


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


def _modules() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in ROOT.rglob("*.py")}


def engine_imports(modules: dict[str, set[str]]) -> list[str]:
    """Every import by the engine of something outside it and :data:`ENGINE_MAY_IMPORT`."""
    allowed = tuple(ENGINE_MAY_IMPORT)
    return [f"{m} -> {t}" for m, targets in sorted(modules.items()) if _layer(m) == ENGINE
            for t in sorted(targets)
            if _layer(t) != ENGINE and not any(t == a or t.startswith(a + ".") for a in allowed)]


def test_the_engine_imports_nothing_of_the_market_rooms():
    modules = _modules()
    assert {"research.workflow.runner", "research.workflow.hooks"} <= set(modules)
    assert engine_imports(modules) == []


def test_the_engine_check_catches_a_planted_market_import():
    planted = {"research.workflow.runner": {"research.config.get_settings", "research.workflow.spec",
                                            "research.data", "research.alerts.delivery"},
               "research.workflow.hooks": {"research.stages.as_of"}}
    assert engine_imports(planted) == ["research.workflow.hooks -> research.stages.as_of",
                                       "research.workflow.runner -> research.alerts.delivery",
                                       "research.workflow.runner -> research.data"]


def _loads_by_name(tree: ast.AST) -> list[str]:
    """Calls that load a module by name: ``import_module(...)``/``__import__(...)`` (not of a
    literal non-research name) and every bare mention of those two functions."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else ""
            if name in {"import_module", "__import__"}:
                arg = node.args[0] if node.args else None
                literal = isinstance(arg, ast.Constant) and isinstance(arg.value, str)
                if not literal or arg.value.split(".")[0] == "research":
                    found.append(f"line {node.lineno}: {name}({ast.unparse(arg) if arg else ''})")
    return found


def loads_by_name(files: dict[str, str]) -> list[str]:
    """Every module load by a computed name (or of a research module by a literal) outside
    :data:`LOADERS_BY_NAME`, as 'path: line N: call'; ``files`` maps path -> source."""
    bad = []
    for path, source in sorted(files.items()):
        if path in LOADERS_BY_NAME:
            continue
        bad += [f"{path}: {hit}" for hit in _loads_by_name(ast.parse(source))]
    return bad


def _sources() -> dict[str, str]:
    return {p.relative_to(ROOT.parent).as_posix(): p.read_text(encoding="utf-8") for p in ROOT.rglob("*.py")}


def test_no_module_is_loaded_by_a_computed_name_outside_the_listed_loaders():
    sources = _sources()
    assert set(LOADERS_BY_NAME) <= set(sources), "a listed loader no longer exists: update LOADERS_BY_NAME"
    assert loads_by_name(sources) == []


def test_the_by_name_check_catches_a_planted_load():
    planted = {
        "research/paper/db.py": "import importlib\nfor n in ('book',):\n    importlib.import_module(f'research.paper.{n}')\n",
        "research/data/x.py": "__import__('research.features')\n",
        "research/risk/y.py": "from importlib import import_module\nimport_module(name)\n",
        "research/models/z.py": "import importlib\nimportlib.import_module('tensorflow')\n",
        "research/workflow/hooks.py": "import importlib\nimportlib.import_module(ref)\n",
    }
    assert [hit.split(":")[0] for hit in loads_by_name(planted)] == [
        "research/data/x.py", "research/paper/db.py", "research/risk/y.py"]


def private_imports(modules: dict[str, ast.AST]) -> list[str]:
    """Every ``from research.a.b import _x`` by another module, as 'importer -> module._x'.

    A private submodule imported inside its own package (``from research.compute import _env``
    in research.compute) is the package's business and is not reported.
    """
    bad = []
    for importer, tree in sorted(modules.items()):
        for node in ast.walk(tree):
            if not (isinstance(node, ast.ImportFrom) and node.module and node.level == 0):
                continue
            if node.module != "research" and not node.module.startswith("research."):
                continue
            for alias in node.names:
                name = alias.name
                if not name.startswith("_") or name.startswith("__") or node.module == importer:
                    continue
                if (importer + ".").startswith(node.module + ".") and _is_module(f"{node.module}.{name}"):
                    continue
                bad.append(f"{importer} -> {node.module}.{name}")
    return bad


def _is_module(dotted: str) -> bool:
    path = ROOT.parent / dotted.replace(".", "/")
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def test_no_private_name_is_imported_from_another_module():
    trees = {_module_name(p): ast.parse(p.read_text(encoding="utf-8")) for p in ROOT.rglob("*.py")}
    assert private_imports(trees) == []


def test_the_private_name_check_catches_a_planted_import():
    planted = {"research.backtest.sweep": ast.parse("from research.backtest.fused import _rows_of, fused_table"),
               "research.data.loader": ast.parse("def f():\n    from research.data.store import _utc"),
               "research.compute.cluster": ast.parse("from research.compute import _env"),
               "research.backtest.fused": ast.parse("from research.backtest.fused import _x")}
    assert private_imports(planted) == ["research.backtest.sweep -> research.backtest.fused._rows_of",
                                        "research.data.loader -> research.data.store._utc"]


#: Files that call ``tz_localize`` / ``tz_convert`` / ``replace(tzinfo=...)`` themselves, how many times, and why: each does
#: another job than "to UTC" (a file's, an exchange's or New York's own clock). The counts may only
#: shrink; a new call, here or elsewhere, goes through research.timeutil.
TZ_CALLS_ALLOWED = {
    "research/timeutil.py": (9, "the helper itself"),
    "research/cli/options.py": (2, "a --from/--to pair with one zone and one without is compared on its wall times"),
    "research/backtest/engine.py": (1, "a naive range bound is read on the price index's own clock"),
    "research/data/sources/files.py": (7, "a CSV's stamps are read in the file's declared time zone; daily "
                                          "bars keep their local session date"),
    "research/data/sources/synthetic.py": (4, "equity hours are New York wall times; a generator's start "
                                              "date keeps its wall date"),
    "research/data/sources/yahoo.py": (6, "daily bars keep the exchange-local session date; a bar's end is "
                                          "on the exchange's clock"),
    "research/news/sessions.py": (2, "a session closes at 16:00 (13:00 early) New York time"),
    "research/news/sources/files.py": (2, "a news file's naive stamps are in the file's declared time zone"),
}


def _is_tz_call(node: ast.AST) -> bool:
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        return False
    return node.func.attr in {"tz_localize", "tz_convert"} or (
        node.func.attr == "replace" and any(k.arg == "tzinfo" for k in node.keywords))


def tz_calls(source: str) -> int:
    """How many ``.tz_localize(...)`` / ``.tz_convert(...)`` (``.dt.`` ones too) and
    ``.replace(tzinfo=...)`` calls ``source`` makes."""
    return sum(_is_tz_call(n) for n in ast.walk(ast.parse(source)))


def hand_written_tz_calls(files: dict[str, str]) -> list[str]:
    """Every file whose time-zone calls exceed (or no longer reach) its :data:`TZ_CALLS_ALLOWED` count."""
    bad = []
    for path, source in sorted(files.items()):
        found, allowed = tz_calls(source), TZ_CALLS_ALLOWED.get(path, (0, ""))[0]
        if found > allowed:
            bad.append(f"{path}: {found} tz_localize/tz_convert calls, {allowed} allowed: use research.timeutil")
        elif found < allowed:
            bad.append(f"{path}: {found} tz_localize/tz_convert calls, {allowed} listed: lower TZ_CALLS_ALLOWED")
    return bad


def test_time_zones_are_normalised_by_the_one_helper():
    sources = _sources()
    assert set(TZ_CALLS_ALLOWED) <= set(sources), "a listed file no longer exists: update TZ_CALLS_ALLOWED"
    assert hand_written_tz_calls(sources) == []


def test_the_time_zone_check_catches_a_planted_idiom():
    planted = {
        "research/news/alerts.py": "when = t.tz_localize('UTC') if t.tzinfo is None else t.tz_convert('UTC')\n",
        "research/paper/book.py": "df[c] = pd.to_datetime(df[c]).dt.tz_localize('UTC')\n",
        "research/news/sessions.py": "x = days.tz_localize(_NY)\n",
        "research/data/store.py": "ts = pd.Timestamp(x, tz='UTC')\nname = text.replace('a', 'b')\n",
        "research/paper/audit.py": "created = datetime.now(UTC).replace(tzinfo=None)\n",
    }
    assert [hit.split(":")[0] for hit in hand_written_tz_calls(planted)] == [
        "research/news/alerts.py", "research/news/sessions.py", "research/paper/audit.py", "research/paper/book.py"]
