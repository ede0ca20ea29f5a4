"""Write the toy stage notebooks the runner's tests use (run: python tests/workflow/notebooks/build.py)."""

from __future__ import annotations

from pathlib import Path

from research.workflow.notebooks import write_stage_notebook

HERE = Path(__file__).parent
BASE = 'output_dir = ""\nas_of = ""'

NOTEBOOKS = {
    "01-numbers.ipynb": (
        BASE + "\nn = 5\nscale = 1.0",
        ["import pandas as pd\n\nfrom research.workflow.results import write_output",
         'write_output(output_dir, "numbers", pd.DataFrame({"x": [scale * i for i in range(n)]}))'],
    ),
    "02-total.ipynb": (
        BASE + '\nrun_id = ""\nfail_if_exists = ""',
        ["import os\n\nfrom research.workflow.results import read_output, write_output",
         'if fail_if_exists and os.path.exists(fail_if_exists):\n    raise RuntimeError("planted failure: " + fail_if_exists)',
         'numbers = read_output(output_dir, "numbers")\n'
         'write_output(output_dir, "total", {"total": float(numbers["x"].sum()), "as_of": as_of})'],
    ),
    "raise.ipynb": (BASE, ["x = 1", 'raise ValueError("planted failure in a stage")']),
    "hang.ipynb": (BASE + "\nseconds = 600", ["import time", "time.sleep(seconds)"]),
    "die.ipynb": (
        BASE + '\nhow = "kill"',
        ["import os\nimport signal", 'if how == "kill":\n    os.kill(os.getpid(), signal.SIGKILL)\nelse:\n    os._exit(1)'],
    ),
    "gate.ipynb": (
        BASE + '\ngate = ""',
        ["import os\nimport time\n\nfrom research.workflow.results import write_output",
         "while gate and os.path.exists(gate):\n    time.sleep(0.2)",
         'write_output(output_dir, "gated", {"as_of": as_of})'],
    ),
    "flaky.ipynb": (
        BASE + "\nfail_times = 1",
        ["from pathlib import Path\n\nfrom research.workflow.results import write_output",
         'counter = Path(output_dir) / "flaky-attempts.txt"\n'
         'seen = int(counter.read_text()) if counter.exists() else 0\n'
         'counter.write_text(str(seen + 1))\n'
         'if seen < fail_times:\n    raise RuntimeError(f"planted transient failure {seen + 1}")\n'
         'write_output(output_dir, "flaky", {"attempts": seen + 1})'],
    ),
}


def build() -> None:
    """Write every toy notebook next to this script (outputs stripped)."""
    for name, (params, cells) in NOTEBOOKS.items():
        write_stage_notebook(HERE / name, params, cells)
    # a stage notebook with no cell tagged "parameters"
    nb = HERE / "no-parameters.ipynb"
    write_stage_notebook(nb, BASE, ['print("hello")'])
    import nbformat

    doc = nbformat.read(nb, as_version=4)
    doc.cells[0].metadata["tags"] = []
    nbformat.write(doc, nb)


if __name__ == "__main__":
    build()
