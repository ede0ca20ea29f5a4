"""Fixtures of the alert tests: the pipeline engine's toy specs (from tests/workflow/conftest.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("wb_workflow_toys", Path(__file__).parents[1] / "workflow" / "conftest.py")
_toys = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_toys)
toys = _toys.toys
