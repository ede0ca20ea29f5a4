"""Random command lines to every ``workbench`` command: exit 0, or one error line and a non-zero exit.

The arguments are built from the click command tree: each option left out, given once or
repeated, with values of its type, edge values and values of the wrong type; arguments
missing or extra; unknown options. Every command's arguments are parsed (callbacks and type
checks included); the commands that do not start a server or a long job also run, in-process,
against a temporary project with the sample data. Neither may print a traceback.
"""

from __future__ import annotations

import contextlib
import enum
import io
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from research.cli import app, main
from research.cli.errors import diagnose
from research.config import refresh_settings

# Commands that start a server or a long job (or train a network): their arguments are parsed,
# never run. The sources that reach the network are never drawn.
PARSE_ONLY = {("dashboards",), ("mlflow",), ("run",), ("pipeline", "run"), ("pipeline", "resume"), ("train",),
              ("predict",), ("sweep",), ("walk-forward",), ("paper", "replay")}
# Each kind of value: (valid values, edge values and values of the wrong type).
SYMBOLS = (["SPX", "IXIC", "GOOG", "MSFT", "BTC-USD"], ["NOPE", "spx", "", " ", "=1+1", "ü", "A" * 300, "SPX,IXIC"])
DATES = (["2018-01-02", "2018-06-01", "2018-12-31", "2017-01-03", "2018-03-01T15:00:00"],
         ["2019-13-01", "2018-02-30", "yesterday", "", "2030-01-01", "1999-12-31", "0", "-1", "2018-12-31T25:00"])
NAMES = (["demo", "acct", "x"], ["=cmd|' /C calc'!A0", "+1", "a" * 300, "", " ", "ü", "a/b", "-n"])
WORDS = (["fast=5", "slow=20", "fast=2:5", "window=10"],
         ["", " ", "-", "--", "nan", "x", "ü", "=1", "a=b", "fast=", "=", "%s", "{}", "0", "-1", "1e309", "a" * 200])
NUMBERS = (["0", "1", "2", "5", "10", "0.001", "0.5", "1000"],
           ["-1", "2.5", "1e309", "-1e309", "nan", "inf", "abc", "", "0x10", " 3", "99999999999999999999"])
BY_NAME: dict[str, tuple[list[str], list[str]]] = {
    "symbol": SYMBOLS, "symbols": SYMBOLS,
    "strategy": (["ma_crossover", "rsi_reversion", "bollinger_breakout", "time_series_momentum"], ["nope", ""]),
    "source": (["sample", "synthetic"], ["files", "nope", ""]), "interval": (["1d"], ["1h", "1wk", "1mo", "7m", ""]),
    "start": DATES, "end": DATES, "as_of": DATES, "name": NAMES, "pipeline": (["daily", "hourly"], ["nope", ""]),
    "run_id": (["daily-20180102"], ["nope", ""]), "channel": (["ops"], ["nope", ""]),
    "fmt": (["csv", "parquet"], ["xlsx"]), "metric": (["sharpe", "total_return"], ["nope"]),
    "timing": (["next_open", "close"], ["nope"]),
    "sizing": (["all_in", "fixed_fraction", "vol_target", "kelly"], ["nope"]),
    "cash": (["1000", "100000"], NUMBERS[1] + ["0"]),
}
PATHS = (["out", "sub/dir"], ["x.csv", "missing.csv", "", ".", "data"])


def _commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every leaf command of the tree with its path."""
    if hasattr(group, "list_commands"):
        ctx = typer.Context(group)
        for name in group.list_commands(ctx):
            yield from _commands(group.get_command(ctx, name), (*path, name))
    else:
        yield path, group


ROOT = typer.main.get_command(app)
COMMANDS = dict(_commands(ROOT))
RUNNABLE = sorted(p for p in COMMANDS if p not in PARSE_ONLY)


def _annotation(param: Any) -> Any:
    """The Python type a parameter converts to (Optional and list stripped)."""
    kind = param.type_descriptor.annotation
    while typing.get_origin(kind) in (typing.Union, types.UnionType, list, tuple):
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    return kind


def _pool(param: Any) -> tuple[list[str], list[str]]:
    kind = _annotation(param)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return [str(m.value) for m in kind], ["nope"]
    if typing.get_origin(kind) is typing.Literal:
        return list(map(str, typing.get_args(kind))), ["nope"]
    if param.name in BY_NAME:
        return BY_NAME[param.name]
    if kind in (int, float):
        return NUMBERS
    if kind is bool:
        return ["true", "false"], ["maybe"]
    if kind is Path:
        return PATHS
    return WORDS


@st.composite
def _value(draw: st.DrawFn, param: Any, mischief: float) -> str:
    good, bad = _pool(param)
    if draw(st.floats(0, 1)) >= mischief:
        return draw(st.sampled_from(good))
    if bad is WORDS[1]:
        return draw(st.one_of(st.sampled_from(bad), st.text(st.characters(blacklist_categories=("Cs", "Cc")),
                                                             max_size=12)))
    return draw(st.sampled_from(bad))


@st.composite
def command_lines(draw: st.DrawFn, paths: list[tuple[str, ...]]) -> list[str]:
    """A command path and random arguments for it: valid ones, edge values, wrong types, extras."""
    path = draw(st.sampled_from(paths))
    command = COMMANDS[path]
    mischief = draw(st.sampled_from([0.0, 0.1, 0.5]))  # the share of values drawn from the edge and wrong pools
    positional: list[str] = []
    chunks: list[list[str]] = []
    for param in command.params:
        if param.name == "help":
            continue
        if param.param_type_name == "argument":
            if not param.required or draw(st.floats(0, 1)) >= mischief / 2:  # a required one missing
                count = draw(st.integers(0, 3)) if param.nargs == -1 else 1
                positional += [draw(_value(param, mischief)) for _ in range(count)]
            continue
        if draw(st.floats(0, 1)) < 0.6 and not (param.required and draw(st.floats(0, 1)) >= mischief / 2):
            continue
        names = [*param.opts, *getattr(param, "secondary_opts", [])]
        for _ in range(draw(st.integers(1, 3)) if param.multiple else 1):
            if param.is_flag:
                chunks.append([draw(st.sampled_from(names))])
            elif draw(st.floats(0, 1)) < mischief / 5:
                chunks.append([draw(st.sampled_from(param.opts))])  # the value left out
            else:
                chunks.append([draw(st.sampled_from(param.opts)), draw(_value(param, mischief))])
    if mischief and draw(st.floats(0, 1)) < 0.3:
        chunks.append(draw(st.sampled_from([["--bogus"], ["extra"], ["--bogus=1"], ["-z"]])))
    chunks = draw(st.permutations(chunks)) if chunks else []
    return [*path, *positional, *(a for chunk in chunks for a in chunk)]


def _lines(text: str) -> list[str]:
    """Visible lines: a progress bar redrawn with carriage returns counts as its last state."""
    return [line.split("\r")[-1].strip() for line in text.split("\n") if line.split("\r")[-1].strip()]


def run(argv: list[str]) -> tuple[int, str, str]:
    """``workbench ARGV`` in-process: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    code: Any = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
        except SystemExit as exc:
            code = exc.code
    return (0 if code is None else int(code)), out.getvalue(), err.getvalue()


def assert_clean(argv: list[str], code: int, out: str, err: str) -> None:
    assert "Traceback" not in out + err, (argv, err[-2000:])
    if code == 0:
        return
    errors = [line for line in _lines(err) if line.startswith("error:")]
    if not errors and code == 2 and out.lstrip().startswith("Usage:"):
        return  # a group named without a command: its help, as click shows it
    assert len(errors) == 1, (argv, code, err[-2000:])
    others = [line for line in _lines(err) if not line.startswith("error:") and " INFO " not in line]
    assert not others, (argv, code, others)
    assert "a bug in the workbench" not in errors[0], (argv, errors[0])


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project of its own (data, runs, ledger) with the sample data and one paper account."""
    home = tmp_path_factory.mktemp("project")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(home)
        mp.setenv("WORKBENCH_HOME", str(home))
        mp.setenv("WORKBENCH_DATA_DIR", str(home / "data"))
        mp.setenv("WORKBENCH_RUNS_DIR", str(home / "runs"))
        for name in ("WORKBENCH_LEDGER_URL", "WORKBENCH_DEBUG", "WORKBENCH_DASK_SCHEDULER"):
            mp.delenv(name, raising=False)
        refresh_settings()
        for argv in (["data", "fetch"],
                     ["paper", "start", "demo", "--strategy", "ma_crossover", "--symbols", "SPX", "--cash", "1000"]):
            code, _, err = run(argv)
            assert code == 0, err
        yield home
    refresh_settings()


def _examples() -> int:
    return max(10, settings.default.max_examples // 2)


@given(argv=command_lines(sorted(COMMANDS)))
@settings(max_examples=max(20, settings.default.max_examples), suppress_health_check=[HealthCheck.too_slow])
@example(argv=["paper", "replay", "a", "--from", "2019-01-01", "--to", "2018-01-01"])
@example(argv=["dashboards", "--port", "abc"])
@example(argv=["mlflow", "--port", "1e309"])
def test_every_command_parses_or_refuses_in_one_line(argv):
    """Parsing alone (every command): accepted, or a usage error of one line with exit 2."""
    path = next(p for p in sorted(COMMANDS, key=len, reverse=True) if tuple(argv[: len(p)]) == p)
    command = COMMANDS[path]
    try:
        with command.make_context(" ".join(path), list(argv[len(path):])):
            pass
    except Exception as exc:  # noqa: BLE001 - what parsing raises is the case
        found = diagnose(exc)
        assert found.code == 2 and found.kind in ("usage", "help"), (argv, found)
        assert "\n" not in found.text or found.kind == "help", (argv, found.text)


@given(argv=command_lines(RUNNABLE))
@settings(max_examples=_examples(), suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@example(argv=["paper", "replay", "demo", "--from", "2019-01-01", "--to", "2018-01-01"])
@example(argv=["data", "fetch", "--interval", "7m", "SPX"])
@example(argv=["config", "--json", "--bogus"])
@example(argv=["pipeline", "show", "daily-20180102"])  # a run id not in the store: was unprefixed, exit 1
@example(argv=["backtest", "ma_crossover", "--sizing-param", "fast=5"])  # was a TypeError called a bug
# an account created with an option its sizer does not take: accepted, then every step failed with a TypeError
@example(argv=["paper", "start", "sized", "--strategy", "ma_crossover", "--symbols", "SPX", "--sizing-param", "fast=5"])
def test_every_command_runs_or_fails_in_one_line(project, argv):
    """Running (commands without servers or long jobs): exit 0, or one error line and a non-zero exit."""
    assert_clean(argv, *run(argv))


@given(argv=st.lists(st.sampled_from(["data", "paper", "nosuch", "--help", "-h", "--bogus", "list", "x", ""]),
                     max_size=3))
@settings(max_examples=_examples(), suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_command_paths_fail_in_one_line(project, argv):
    """Words at the root: a command, its help, or one error line."""
    assert_clean(argv, *run(argv))
