"""The documentation site builds strictly: every link, reference and tutorial holds.

``mkdocs build --strict`` fails on a broken link, an unresolved cross-reference, a docstring
that does not parse, or a tutorial notebook that raises while it is executed for the site.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "mkdocs.yml"


def _nav_files(nav: list) -> set[str]:
    found: set[str] = set()
    for entry in nav:
        for value in entry.values() if isinstance(entry, dict) else [entry]:
            if isinstance(value, list):
                found |= _nav_files(value)
            else:
                found.add(value)
    return found


def _config() -> dict:
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!ENV", lambda loader, node: None)
    return yaml.load(CONFIG.read_text(encoding="utf-8"), Loader=Loader)


def test_every_page_and_tutorial_is_in_the_navigation():
    listed = _nav_files(_config()["nav"])
    pages = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").glob("*.md")}
    tutorials = {f"tutorials/{p.name}" for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert pages - listed == set(), "docs pages missing from mkdocs.yml's nav"
    assert tutorials - listed == set(), "tutorial notebooks missing from mkdocs.yml's nav"
    assert listed - pages - tutorials == set(), "nav entries without a page"


@pytest.mark.slow
def test_site_builds_strictly_with_executed_tutorials(tmp_path):
    env = {**os.environ, "WORKBENCH_HOME": str(tmp_path / "home"), "NO_MKDOCS_2_WARNING": "1",
           "TF_CPP_MIN_LOG_LEVEL": "3", "MLFLOW_DISABLE_TELEMETRY": "true"}
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(CONFIG), "--site-dir", str(site)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rooms = sorted(p.parent.name for p in (ROOT / "research").glob("*/__init__.py"))
    for room in rooms:
        page = (site / "reference" / room / "index.html").read_text(encoding="utf-8")
        assert f"research.{room}" in page
    # The tutorials were executed for the site: their code cells carry outputs.
    for nb in (ROOT / "notebooks").glob("*.ipynb"):
        html = (site / "tutorials" / nb.stem / "index.html").read_text(encoding="utf-8")
        assert len(re.findall(r'class="[^"]*jp-OutputArea-output', html)) >= 3, nb.name
