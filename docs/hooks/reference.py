"""MkDocs hook: an API reference page per room of ``research/``, generated from the docstrings.

Each page lists the room's public modules (``::: research.<room>.<module>``, rendered by
mkdocstrings); the rooms come in the package's layering order, so the reference reads from
the data up. The pages are generated at build time and added to the navigation, so a module
added to the package appears without editing ``mkdocs.yml``.
"""

from __future__ import annotations

import ast
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "research"
# The package's floors, bottom up (tests/test_layering.py holds the rule); unknown rooms follow.
ORDER = ["config", "defaults", "types", "data", "news", "features", "models", "strategies", "backtest",
         "risk", "tracking", "experiments", "workflow", "paper", "alerts", "stages", "compute", "viz", "cli"]


def _title(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or path.stem
    return doc.strip().splitlines()[0].rstrip(".")


def _modules(room: Path) -> list[str]:
    """Public modules of a room package, dotted, in name order (``__init__`` first)."""
    names = [f"research.{room.name}"]
    for path in sorted(room.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        if any(part.startswith("_") for part in rel.parts):
            continue
        names.append(".".join(rel.parts))
    return names


def _rooms() -> list[tuple[str, Path]]:
    found = {p.parent.name: p.parent for p in PACKAGE.glob("*/__init__.py")}
    found.update({p.stem: p for p in PACKAGE.glob("*.py") if not p.stem.startswith("_")})
    return sorted(found.items(), key=lambda kv: (ORDER.index(kv[0]) if kv[0] in ORDER else len(ORDER), kv[0]))


def _page(name: str, path: Path) -> str:
    if path.is_file():
        return f"# research.{name}\n\n::: research.{name}\n"
    body = [f"# research.{name}", "", _title(path / "__init__.py") + ".", ""]
    for module in _modules(path):
        options = "    options:\n      show_submodules: false\n      members: false\n" if module.count(".") == 1 else ""
        body += [f"::: {module}", options] if options else [f"::: {module}", ""]
    return "\n".join(body) + "\n"


def on_files(files, config):
    for name, path in _rooms():
        files.append(File.generated(config, f"reference/{name}.md", content=_page(name, path)))
    return files


def on_config(config):
    pages = [{f"research.{name}": f"reference/{name}.md"} for name, _ in _rooms()]
    config.nav = [*(config.nav or []), {"API reference": pages}]
    return config
