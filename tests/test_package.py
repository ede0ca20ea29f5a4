"""The package's face: the verbs at the top resolve, and importing it stays cheap."""

from __future__ import annotations

import subprocess
import sys

import research


def test_every_verb_resolves_to_its_home():
    for name in research.__all__:
        assert callable(getattr(research, name)), name
    from research.backtest import backtest
    from research.data import load_prices

    assert research.run_backtest is backtest
    assert research.load_prices is load_prices


def test_import_loads_no_heavy_library():
    code = "import sys, research; print(sorted(m for m in ('pandas', 'numba', 'keras', 'mlflow') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_importing_changes_no_environment_variable():
    code = ("import os; before = dict(os.environ); "
            "import research, research.config, research.defaults, research.data, research.models.lstm; "
            "print(sorted(k for k, v in os.environ.items() if before.get(k) != v))")
    env = {k: v for k, v in __import__("os").environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.strip() == "[]"
