"""The reliability suite: shared/RELIABILITY.md's catalogue as standing tests.

Each test records its cases with the ``case`` fixture: ``case(group, name, expected, observed,
ok)``. A case that does not hold fails its test with the expected and observed values; at the
end of the run one table per group is printed (case, expected, observed, pass) and written to
``tests/reliability/results.json`` (git-ignored) with the totals per group.
"""

from __future__ import annotations

import errno
import json
import os
from collections import defaultdict
from pathlib import Path

import pytest

_RESULTS: list[dict] = []
_OUT = Path(__file__).with_name("results.json")


@pytest.fixture
def case():
    """Record one case; fail the test when it does not hold."""

    def record(group: str, name: str, expected: object, observed: object, ok: bool) -> bool:
        _RESULTS.append({"group": group, "case": name, "expected": str(expected),
                         "observed": str(observed), "pass": bool(ok)})
        assert ok, f"[{group}] {name}: expected {expected}, observed {observed}"
        return ok

    return record


@pytest.fixture
def read_only_fs(monkeypatch):
    """Every creation or write of a file or folder fails with EROFS, as on a read-only mount.

    Works as root too (chmod does not stop root).
    """
    real_open = os.open
    writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

    def ro_open(path, flags, *args, **kwargs):
        if flags & writes:
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args, **kwargs)

    def ro_mkdir(path, *args, **kwargs):
        if os.path.isdir(path):
            raise FileExistsError(errno.EEXIST, "File exists", str(path))
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    def apply() -> None:
        monkeypatch.setattr(os, "open", ro_open)
        monkeypatch.setattr(os, "mkdir", ro_mkdir)

    return apply


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ARG001
    if not _RESULTS:
        return
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in _RESULTS:
        groups[row["group"]].append(row)
    tr = terminalreporter
    tr.section("reliability")
    totals = {}
    for group, rows in groups.items():
        passed = sum(r["pass"] for r in rows)
        totals[group] = {"passed": passed, "cases": len(rows)}
        tr.write_line(f"{group}: {passed}/{len(rows)}")
        w = max(len(r["case"]) for r in rows)
        for r in rows:
            mark = "pass" if r["pass"] else "FAIL"
            tr.write_line(f"  {r['case']:<{w}}  {mark}  expected {r['expected']}; observed {r['observed']}")
    try:
        _OUT.write_text(json.dumps({"totals": totals, "cases": _RESULTS}, indent=1))
    except OSError:
        pass
