"""environment.yml and pyproject.toml name the same dependencies."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _extras(spec: str) -> set[str]:
    """``-e .[dev,browser]`` or ``-e ".[dev,browser]"`` -> ``{"dev", "browser"}``."""
    found = re.search(r"\.\[([^\]]*)\]", spec)
    assert found, f"no extras in {spec!r}"
    return {e.strip() for e in found.group(1).split(",")}


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = {*project["dependencies"], *(r for reqs in extras.values() for r in reqs)}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert any(str(d).startswith("python=3.11") for d in env["dependencies"] if isinstance(d, str))
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    editable = [p for p in pip if p.startswith("-e")]
    assert len(editable) == 1 and _extras(editable[0]) == set(extras), editable
    listed = {p for p in pip if not p.startswith("-e")}
    assert {_name(r): r.replace(" ", "") for r in listed} == {_name(r): r.replace(" ", "") for r in wanted}


def test_design_card_packages_are_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    card = {"jupyterlab", "papermill", "voila", "pandas", "numpy", "vectorbt", "yfinance", "pycoingecko",
            "mlflow", "ipywidgets", "pytest", "nbval"}
    assert card <= names
    assert "tensorflow-cpu" in names or "tensorflow" in names


def test_makefile_installs_the_same_extras_as_environment_yml():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    make = re.findall(r"pip install[^\n]*-e (\S+)", (ROOT / "Makefile").read_text())
    assert len(make) == 1, make
    assert _extras(make[0]) == set(project["optional-dependencies"]) == {"dev", "browser", "distributed"}
