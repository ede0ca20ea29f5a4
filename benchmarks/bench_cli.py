"""How fast the ``workbench`` command starts: CPU time of its help and of refused arguments.

Prints, per command line, the least CPU time (user + system, of the command and its children)
over ``--repeat`` runs, and the load average (the machine may be shared). Target: under 0.5 s
for each line. ``--root`` runs another checkout's package (to compare before and after).

    .venv/bin/python benchmarks/bench_cli.py
    .venv/bin/python benchmarks/bench_cli.py --root /path/to/other/checkout
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
from pathlib import Path

COMMANDS = [
    ["--help"],
    ["backtest", "ma_crossover", "--fees", "abc"],
    ["paper", "replay", "acct", "--from", "2019-01-01", "--to", "2018-01-01"],
    ["data", "fetch", "--start", "2020-13-45"],
    ["pipeline", "run", "pipelines/daily.yaml", "-p", "nope=1"],
    ["pipeline", "run", "pipelines/daily.yaml", "-p", "epochs=abc"],
    ["nosuch"],
]


def cpu_seconds(argv: list[str], *, root: Path, repeat: int) -> float:
    """The least CPU time of ``workbench ARGV`` over ``repeat`` runs, with ``root`` on the path."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    best = float("inf")
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, "-m", "research", *argv], cwd=root, env=env, capture_output=True, check=False)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        best = min(best, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}; package from {args.root}")
    for argv in COMMANDS:
        seconds = cpu_seconds(argv, root=args.root, repeat=args.repeat)
        print(f"{seconds:6.2f} s CPU  workbench {' '.join(argv)}  {'ok' if seconds < 0.5 else 'SLOW'}")


if __name__ == "__main__":
    main()
