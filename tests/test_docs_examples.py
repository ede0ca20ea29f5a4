"""Every example in README.md and docs/*.md runs, in order, in a scratch folder.

For each Markdown file, every fenced ```python block is executed in one namespace shared by
the file's blocks (a later block may use what an earlier one defined), and every line of a
```bash block that starts with ``workbench`` is run as a command (in process, through the
CLI's Typer app) and must exit with status 0. Python blocks and commands of one file run in
the order they appear, with the working directory, ``WORKBENCH_HOME``, the data dir and the
runs dir in a fresh temporary folder, so the repository's own data is never touched.

An example that cannot run here is marked in the Markdown, on the line before its fence::

    <!-- no-test: needs the network -->

and is reported as skipped with that reason. A command holding a placeholder such as
``<run id>`` is skipped too: its value comes from a run the reader made.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^\s*```\s*([\w+-]*)")
NO_TEST = re.compile(r"<!--\s*no-test:\s*(.*?)\s*-->")
PLACEHOLDER = re.compile(r"<[^<>]+>")
SHELLS = {"bash", "sh", "shell", "console"}


@dataclass(frozen=True)
class Example:
    """One runnable example: a python block or one ``workbench`` command line."""

    doc: Path
    line: int
    kind: str  # "python" or "command"
    text: str
    skip: str | None = None

    @property
    def id(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}:{self.kind}"


def _blocks(path: Path) -> list[tuple[int, str, str, str | None]]:
    """``(first line, language, body, no-test reason)`` of every fenced block of a file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i, previous = [], 0, ""
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            if lines[i].strip():
                previous = lines[i]
            i += 1
            continue
        lang, start, body = m.group(1).lower(), i + 1, []
        i += 1
        while i < len(lines) and not lines[i].lstrip().startswith("```"):
            body.append(lines[i])
            i += 1
        mark = NO_TEST.search(previous)
        blocks.append((start + 1, lang, "\n".join(body) + "\n", mark.group(1) if mark else None))
        previous, i = "", i + 1
    return blocks


def collect(path: Path) -> list[Example]:
    """The file's examples in reading order."""
    examples: list[Example] = []
    for line, lang, body, skip in _blocks(path):
        if lang == "python":
            examples.append(Example(path, line, "python", body, skip))
        elif lang in SHELLS:
            for offset, raw in enumerate(body.splitlines()):
                words = shlex.split(raw, comments=True)
                if not words or words[0] != "workbench":
                    continue
                reason = skip
                if reason is None and PLACEHOLDER.search(" ".join(words)):
                    reason = f"takes a value from the reader's own run ({PLACEHOLDER.search(raw).group(0)})"
                examples.append(Example(path, line + offset, "command", shlex.join(words), reason))
    return examples


EXAMPLES = [ex for doc in DOCS for ex in collect(doc)]
_SESSIONS: dict[Path, tuple[Path, dict]] = {}


@pytest.fixture
def scratch(example: Example, tmp_path_factory, monkeypatch):
    """The example's file's scratch folder and namespace; env and cwd point into it."""
    ex = example
    if ex.doc not in _SESSIONS:
        _SESSIONS[ex.doc] = (tmp_path_factory.mktemp(ex.doc.stem.lower()), {"__name__": "__docs__"})
    folder, namespace = _SESSIONS[ex.doc]
    monkeypatch.chdir(folder)
    monkeypatch.setenv("WORKBENCH_HOME", str(folder))
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(folder / "data"))
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(folder / "runs"))
    yield folder, namespace


def test_every_doc_has_examples():
    """The collector sees the README's and the docs' examples (a broken fence would hide them)."""
    readme = [ex for ex in EXAMPLES if ex.doc.name == "README.md"]
    assert sum(ex.kind == "python" for ex in readme) >= 1
    assert sum(ex.kind == "command" for ex in readme) >= 4
    docs = [ex for ex in EXAMPLES if ex.doc.name != "README.md"]
    assert sum(ex.kind == "python" for ex in docs) >= 5
    assert sum(ex.kind == "command" for ex in docs) >= 15


@pytest.mark.parametrize("example", EXAMPLES, ids=[ex.id for ex in EXAMPLES])
def test_example(example: Example, scratch) -> None:
    if example.skip:
        pytest.skip(example.skip)
    folder, namespace = scratch
    if example.kind == "python":
        code = compile(example.text, f"{example.doc.name}:{example.line}", "exec")
        exec(code, namespace)  # noqa: S102 - the documentation's own example
        return
    from typer.testing import CliRunner

    from research.cli import app

    args = shlex.split(example.text)[1:]
    result = CliRunner().invoke(app, args, env={**os.environ})
    if result.exit_code != 0:
        detail = result.output[-3000:]
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            import traceback

            detail += "".join(traceback.format_exception(result.exception))[-3000:]
        pytest.fail(f"`{example.text}` ({example.id}) exited with {result.exit_code}:\n{detail}")
