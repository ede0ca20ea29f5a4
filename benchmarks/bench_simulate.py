"""Micro-benchmark of the shared fused simulation (:func:`research.backtest.simulate.simulate_nb`).

Each family's benchmark grid (``bench_sweep.FAMILY_GRIDS``) on GOOG daily: the directions of every
parameter set are computed once, then only the simulation is timed, single-threaded, CPU seconds,
best of N rounds, interleaved with a baseline copy of ``simulate.py`` taken from a git revision
(default ``main``). Every set's statistics and per-bar returns of both copies are compared
(NaN-aware, bit for bit). Printed per family: sets, changes of direction per set, ns per set
for both copies; then the cost of one change of position on synthetic directions::

    .venv/bin/python benchmarks/bench_simulate.py                 # every family, against main
    .venv/bin/python benchmarks/bench_simulate.py --base HEAD~1 --rounds 7 --families momentum
"""

from __future__ import annotations

import argparse
import atexit
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from numba import njit

from research.backtest.families import states_nb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def _baseline(ref: str):
    """``simulate_nb`` of ``simulate.py`` at git revision ``ref`` (or of the file ``ref``), as a separate module."""
    if Path(ref).is_file():  # a copy of simulate.py on disk
        src = Path(ref).read_text()
    else:
        src = subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:research/backtest/simulate.py"], check=True,
                             capture_output=True, text=True).stdout
    folder = Path(tempfile.mkdtemp(prefix="bench_sim_"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = folder / "simulate_base.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("simulate_base", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.simulate_nb


def _capture(key: str) -> tuple:
    """The arguments the public sweep passes to the fused grid kernel for the family's benchmark grid."""
    from bench_sweep import CASH, FAMILY_GRIDS, FEES, SLIP, _goog

    import research.backtest.family_sweep as fs
    from research.backtest.sweep import sweep

    family, grid = FAMILY_GRIDS[key]
    seen = []
    real = fs._grid

    def spy(*args):
        seen.append(args)
        return real(*args)

    fs._grid = spy
    try:
        sweep(_goog(), family, grid, fees=FEES, slippage=SLIP, init_cash=CASH)
    finally:
        fs._grid = real
    if len(seen) != 1:
        raise RuntimeError(f"{key}: expected one grid call, saw {len(seen)}")
    return seen[0]


@njit(cache=True)
def _states_nb(family, tables, close, rows, levels, sides, order, starts):
    """Directions of each signal group on symbol 0 and the group of each set."""
    n = close.shape[1]
    ng = starts.shape[0] - 1
    st = np.empty((ng, n), dtype=np.int8)
    grp_of = np.empty(rows.shape[0], dtype=np.int64)
    for g in range(ng):
        first = order[starts[g]]
        states_nb(family, tables, 0, close[0], rows[first], levels[first], sides[first], st[g])
        for i in range(starts[g], starts[g + 1]):
            grp_of[order[i]] = g
    return st, grp_of


@njit
def _run_nb(sim, st, grp_of, exec_px, open_, high, low, close, ff, rc, lo, hi, risk, fees, slip, cash, ppy, whole,
            fill_at_open, out, rets):
    for k in range(grp_of.shape[0]):
        sim(st[grp_of[k]], exec_px, open_, high, low, close, ff, rc, lo, hi, fees, slip, cash, ppy, whole, risk[k],
            fill_at_open, out[k], rets[k])


def _prepare(key: str) -> dict:
    from research.backtest.kernels import prepare_nb

    a = _capture(key)
    (code, tables, close, exec_px, open_, high, low, _ff, _rc, lo, hi, rows, levels, sides, risk, fees, slip, cash, ppy,
     whole, fill_at_open, _keep, order, starts, *_b) = a
    st, grp_of = _states_nb(code, tables, close, rows, levels, sides, order, starts)
    ff, rc = prepare_nb(close[0])
    lo0, hi0 = int(lo[0]), int(hi[0])
    changes = np.count_nonzero(np.diff(st[:, max(lo0 - 1, 0):hi0 - 1].astype(np.int64), axis=1), axis=1)[grp_of]
    return {"st": st, "grp_of": grp_of, "px": (exec_px[0], open_[0], high[0], low[0], close[0], ff, rc),
            "lo": lo0, "hi": hi0, "risk": risk, "costs": (fees, slip, cash, ppy), "whole": whole,
            "fill_at_open": fill_at_open, "changes": changes}


def _call(sim, d: dict, keep: bool) -> tuple[np.ndarray, np.ndarray]:
    ns = d["grp_of"].shape[0]
    out = np.empty((ns, 9))
    rets = np.zeros((ns, d["hi"] - d["lo"] if keep else 0))
    t0 = time.process_time()
    _run_nb(sim, d["st"], d["grp_of"], *d["px"], d["lo"], d["hi"], d["risk"], *d["costs"], d["whole"],
            d["fill_at_open"], out, rets)
    return out, rets, time.process_time() - t0


def _per_change(sim, d: dict, low: int) -> float:
    """ns per change of position, no stops: blocks of 4 and of 64 bars alternating between ``low`` and long
    (the same share of held bars), ``(T(4) - T(64)) / (changes(4) - changes(64))``."""
    n = d["st"].shape[1]
    ns = 2000
    times, counts = [], []
    for length in (4, 64):
        st = np.where((np.arange(n) // length) % 2 == 0, 1, low).astype(np.int8)[None, :]
        syn = dict(d, st=st, grp_of=np.zeros(ns, dtype=np.int64), risk=np.zeros((ns, 4)))
        times.append(_call(sim, syn, False)[2] / ns)
        counts.append(np.count_nonzero(np.diff(st[0, d["lo"]:d["hi"]])))
    return (times[0] - times[1]) * 1e9 / (counts[0] - counts[1])


def main() -> None:
    from bench_sweep import FAMILY_GRIDS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="main", help="git revision of the baseline simulate.py, or a path to a copy (default main)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--families", nargs="*", default=list(FAMILY_GRIDS))
    args = ap.parse_args()
    from research.backtest.simulate import simulate_nb as new

    old = _baseline(args.base)
    print(f"load {os.getloadavg()[0]:.1f}; baseline simulate.py at {args.base}; CPU time, best of {args.rounds}")
    print(f"{'family':16s} {'sets':>6s} {'chg/set':>8s} {'base ns/set':>12s} {'new ns/set':>11s} {'new/base':>8s}  identical")
    for key in args.families:
        d = _prepare(key)
        same = True
        for keep in (False, True):  # both the steady fast paths and the per-bar returns path
            o1, r1, _ = _call(old, d, keep)
            o2, r2, _ = _call(new, d, keep)
            same &= bool(np.array_equal(o1, o2, equal_nan=True) and np.array_equal(r1, r2, equal_nan=True))
        tb, tn = [], []
        for _ in range(args.rounds):
            tb.append(_call(old, d, False)[2])
            tn.append(_call(new, d, False)[2])
        ns = d["grp_of"].shape[0]
        b, n = (min(x) * 1e9 / ns for x in (tb, tn))
        print(f"{key:16s} {ns:6d} {float(d['changes'].mean()):8.1f} {b:12.0f} {n:11.0f} {n / b:8.3f}  "
              f"{'yes' if same else 'NO'}")
    d = _prepare("momentum")
    for low, name in ((0, "long/flat"), (-1, "long/short")):
        cb, cn = [], []
        for _ in range(args.rounds):
            cb.append(_per_change(old, d, low))
            cn.append(_per_change(new, d, low))
        print(f"per change of position ({name}, no stops, GOOG prices): base {min(cb):.1f} ns, new {min(cn):.1f} ns")
    print(f"load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
