"""The sweep path loads what a sweep uses and nothing more (its peak memory is mostly imports)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

#: Modules a parameter sweep never uses: the news room, the settings (pydantic), the store and its
#: Parquet files, the feature sets, the risk report, the plotting, learning and tracking libraries.
UNUSED = ("research.news", "research.config", "research.data.store", "research.data.loader", "research.features.sets",
          "research.risk.report", "pydantic", "plotly", "tensorflow", "keras", "mlflow", "distributed", "tqdm",
          "filelock", "sqlalchemy", "vectorbt")


def _loaded(code: str) -> list[str]:
    probe = textwrap.dedent(f"""
        import sys
        {code}
        unused = {UNUSED!r}
        print(sorted(u for u in unused if any(m == u or m.startswith(u + '.') for m in sys.modules)))
    """)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return eval(out.stdout.strip().splitlines()[-1])  # a list literal printed by the probe


@pytest.mark.parametrize("code", [
    "from research.backtest.sweep import sweep, sweep_ma_crossover",
    "from research.backtest import sweep_family, grid_slice",
    "import research; research.sweep",
])
def test_importing_the_sweep_loads_nothing_it_does_not_use(code):
    assert _loaded(code) == []
