"""The ``parameters`` cell of a stage notebook: the names, defaults and types it declares.

The cell is parsed, never executed: it must hold only ``name = literal`` lines. A pipeline
spec's check (:func:`research.workflow.spec.plan_run`) compares what each stage is given with
what its notebook declares here.
"""

from __future__ import annotations

import ast
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from research.workflow.params import SpecError, type_of

__all__ = ["NotebookParam", "notebook_parameters"]


@dataclass(frozen=True)
class NotebookParam:
    """A name declared in a notebook's ``parameters`` cell, with its default's type."""

    name: str
    type: str | None
    default: Any = None


def notebook_parameters(path: str | os.PathLike) -> dict[str, NotebookParam]:
    """The names, defaults and types declared in the notebook's one ``parameters`` cell.

    Raises
    ------
    SpecError
        The notebook is missing or unreadable, has no cell tagged ``parameters`` or more
        than one, or that cell is not plain assignments.
    """
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"notebook {path} does not exist")
    cells = [c for c in _notebook_cells(path) if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise SpecError(f"notebook {path.name} has no cell tagged 'parameters'; papermill cannot inject its parameters")
    if len(cells) > 1:
        raise SpecError(f"notebook {path.name} has {len(cells)} cells tagged 'parameters'; expected exactly one")
    try:
        source = cells[0].get("source", "")
        tree = ast.parse("".join(source) if isinstance(source, list) else source)
    except SyntaxError as exc:
        raise SpecError(f"the parameters cell of {path.name} is not valid Python: {exc}") from exc
    out: dict[str, NotebookParam] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, value_node, annotation = node.targets[0].id, node.value, None
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            name, value_node, annotation = node.target.id, node.value, node.annotation
        else:
            raise SpecError(
                f"the parameters cell of {path.name} must hold only 'name = literal' lines; "
                f"line {node.lineno} is {ast.unparse(node)[:60]!r}"
            )
        try:
            default = ast.literal_eval(value_node) if value_node is not None else None
        except ValueError:
            default = None
        kind = type_of(default)
        if annotation is not None and ast.unparse(annotation) in {"str", "int", "float", "bool"}:
            kind = ast.unparse(annotation)
        out[name] = NotebookParam(name, kind, default)
    return out


def _notebook_cells(path: Path) -> list[dict]:
    """The cells of a notebook file: read as JSON (format 4), else converted by nbformat.

    A format-4 notebook is plain JSON; reading it directly keeps a spec check free of
    nbformat's schema validation, which takes seconds to import.
    """
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(doc, dict) and doc.get("nbformat") == 4 and isinstance(doc.get("cells"), list):
            return [c for c in doc["cells"] if isinstance(c, dict)]
        import nbformat

        return list(nbformat.read(path, as_version=4).cells)
    except Exception as exc:  # JSON and nbformat raise several types for a broken file
        raise SpecError(f"notebook {path} is not a readable .ipynb: {exc}") from exc
