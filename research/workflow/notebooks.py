"""Writing stage notebooks: one ``parameters`` cell, then a few code cells, outputs stripped."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import nbformat

__all__ = ["stage_notebook", "write_stage_notebook", "is_stripped"]

_KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def stage_notebook(parameters: str, cells: Sequence[str], *, title: str | None = None) -> nbformat.NotebookNode:
    """A notebook whose first code cell is tagged ``parameters`` (no outputs, no counts).

    Parameters
    ----------
    parameters : str
        Source of the ``parameters`` cell: ``name = literal`` lines.
    cells : sequence of str
        Sources of the code cells that follow.
    title : str, optional
        A markdown cell put first.
    """
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = dict(_KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    if title:
        nb.cells.append(nbformat.v4.new_markdown_cell(title))
    params = nbformat.v4.new_code_cell(parameters.strip())
    params.metadata["tags"] = ["parameters"]
    nb.cells.append(params)
    nb.cells.extend(nbformat.v4.new_code_cell(src.strip()) for src in cells)
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i}"
    return nb


def write_stage_notebook(
    path: str | os.PathLike, parameters: str, cells: Sequence[str], *, title: str | None = None
) -> Path:
    """Write :func:`stage_notebook` to ``path`` (folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(stage_notebook(parameters, cells, title=title), path)
    return path


def is_stripped(path: str | os.PathLike) -> bool:
    """Whether every code cell of the notebook has no outputs and a null execution count."""
    nb = nbformat.read(path, as_version=4)
    return all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")
