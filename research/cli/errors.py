"""How the ``workbench`` command reports errors.

Every error is printed as one line on stderr, ``error: <what, which input, what to do>``, and
the command exits non-zero. ``--debug`` (or ``WORKBENCH_DEBUG=1``) prints the full traceback
instead. The kinds, in the order they are recognised:

=======================  ====  ============================================================
kind                     exit  examples
=======================  ====  ============================================================
usage                    2     an unknown option, a value of the wrong type, a missing argument
infrastructure           1     the Dask scheduler lost or unreachable; the ledger database
                               unreachable or full; a database driver not installed; the MLflow
                               tracking server unreachable; no space left on a device
configuration            2     a malformed database URL; a setting of the wrong kind
input                    2     a bad date or range, an unknown symbol, a missing file
environment              1     a source that cannot be reached, an unwritable data folder
bug                      1     anything else: the line says so and asks for the traceback
interrupted              130   Ctrl-C
=======================  ====  ============================================================

Infrastructure errors name the component and what to do; they are recognised anywhere in the
chain of causes, so a library error wrapped by the workbench is still named for what it is.
"""

from __future__ import annotations

import errno
import re
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "EXIT_USAGE", "EXIT_FAILURE", "Diagnosis", "debug_enabled", "set_debug", "report_error", "exit_code", "one_line",
    "diagnose",
]

EXIT_FAILURE = 1
EXIT_USAGE = 2
_DEBUG = False
_OBJECT = re.compile(r"<[^<>]* object at 0x[0-9a-f]+>:?\s*")
_HTTP = re.compile(r"\bhttps?://[^\s/'\"]+")
_ADDRESS = re.compile(r"\b(?:tcp|tls|ws|wss|ucx|inproc)://[^\s'\"),]+")
_DRIVERS = {"psycopg2": "psycopg2-binary", "psycopg": "psycopg[binary]", "MySQLdb": "mysqlclient"}  # pip names


@dataclass(frozen=True)
class Diagnosis:
    """What an error is: its kind, exit code and the line shown (without the ``error:`` prefix)."""

    kind: str
    code: int
    text: str


def set_debug(on: bool) -> None:
    """Turn full tracebacks on (the global ``--debug`` option)."""
    global _DEBUG
    _DEBUG = bool(on)


def debug_enabled() -> bool:
    """``--debug`` was given or ``WORKBENCH_DEBUG`` is set to a true value."""
    if _DEBUG:
        return True
    from research.config import get_settings

    try:
        return get_settings().debug
    except ValueError:  # a wrong setting is the error being reported; it cannot say "debug"
        return False


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and its causes and contexts, each once."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]


def _text(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _module(exc: BaseException) -> str:
    return type(exc).__module__ or ""


def _is_workbench_error(exc: BaseException) -> bool:
    return any(cls.__module__.startswith("research.") for cls in type(exc).__mro__[:-2])


def _setting(name: str) -> str:
    """A setting's value for a message (URL passwords masked), or ``?`` if the settings are broken."""
    from research.config import get_settings, mask_url

    try:
        return mask_url(str(getattr(get_settings(), name)))
    except ValueError:
        return "?"


def _is_click(exc: BaseException, name: str) -> bool:
    """Whether ``exc`` is click's exception ``name`` (click's own or the copy Typer vendors)."""
    return any(cls.__name__ == name and cls.__module__.endswith("click.exceptions") for cls in type(exc).__mro__)


def _usage(exc: BaseException) -> Diagnosis | None:
    if _is_click(exc, "NoArgsIsHelpError"):  # a group named without a command: its help, as click shows it
        return Diagnosis("help", EXIT_USAGE, exc.format_message())  # type: ignore[attr-defined]
    if _is_click(exc, "UsageError"):
        ctx = getattr(exc, "ctx", None)
        where = ctx.command_path if ctx is not None else "workbench"
        return Diagnosis("usage", EXIT_USAGE, f"{_text_of(exc)} (see `{where} --help`)")
    if _is_click(exc, "ClickException"):
        return Diagnosis("usage", getattr(exc, "exit_code", 0) or EXIT_FAILURE, _text_of(exc))
    if _is_click(exc, "Abort"):
        return Diagnosis("interrupted", EXIT_FAILURE, "aborted")
    return None


def _text_of(exc: BaseException) -> str:
    return " ".join(exc.format_message().split())  # type: ignore[attr-defined]


def _from_dask(e: BaseException) -> bool:
    if _module(e).startswith("distributed"):
        return True
    if _is_workbench_error(e) or not isinstance(e, (OSError, TimeoutError)):
        return False
    text = _text(e)
    return "scheduler" in text.lower() or (text.startswith("Timed out trying to connect") and bool(_ADDRESS.search(text)))


def _dask(exc: BaseException) -> Diagnosis | None:
    chain = list(_chain(exc))
    if not any(_from_dask(e) for e in chain):
        return None
    found = next((m.group(0) for e in chain if (m := _ADDRESS.search(_text(e)))), None)
    where = f"at {found}" if found else f"({_setting('dask_scheduler')})"
    root = chain[-1]
    reason = _OBJECT.sub("", _text(root)).removeprefix("in ").strip()
    reason = reason if reason.startswith(type(root).__name__) else f"{type(root).__name__}: {reason}"
    return Diagnosis("infrastructure", EXIT_FAILURE,
                     f"the Dask scheduler {where} was lost or cannot be reached ({reason[:160]}); check that it "
                     "is running and reachable, or use the local cluster (--cluster local, or unset "
                     "WORKBENCH_DASK_SCHEDULER)")


def _loaded_by_sqlalchemy(e: BaseException) -> bool:
    """Whether ``e`` was raised while SQLAlchemy was loading something (a dialect's driver)."""
    tb = e.__traceback__
    while tb is not None:
        if "sqlalchemy" in Path(tb.tb_frame.f_code.co_filename).parts:
            return True
        tb = tb.tb_next
    return False


def _driver(exc: BaseException) -> Diagnosis | None:
    for e in _chain(exc):
        if isinstance(e, ModuleNotFoundError) and e.name and _loaded_by_sqlalchemy(e):
            name = e.name.split(".")[0]
            return Diagnosis("infrastructure", EXIT_FAILURE,
                             f"the database driver {name} is not installed; install it with `pip install "
                             f"{_DRIVERS.get(name, name)}`, or name an installed driver in the database URL "
                             "(WORKBENCH_LEDGER_URL, MLFLOW_TRACKING_URI)")
    return None


def _database(exc: BaseException) -> Diagnosis | None:
    try:
        from sqlalchemy import exc as sa_exc
    except ImportError:  # pragma: no cover - a dependency
        return None
    for e in _chain(exc):
        if isinstance(e, (sa_exc.ArgumentError, sa_exc.NoSuchModuleError)):
            return Diagnosis("configuration", EXIT_USAGE,
                             f"the database URL {_setting('ledger_url')} is not valid ({_text(e)[:160]}); fix "
                             "WORKBENCH_LEDGER_URL, e.g. sqlite:///data/ledger.db or postgresql://user@host:5432/db")
        if isinstance(e, (sa_exc.OperationalError, sa_exc.InterfaceError)):
            reason = (_text(e.orig) if getattr(e, "orig", None) is not None else _text(e)).split(" [SQL:")[0]
            if _is_full(reason):
                return Diagnosis("infrastructure", EXIT_FAILURE,
                                 f"the ledger database at {_setting('ledger_url')} is full ({reason[:160]}); "
                                 "free space on its disk, then run the command again")
            return Diagnosis("infrastructure", EXIT_FAILURE,
                             f"the ledger database at {_setting('ledger_url')} cannot be reached ({reason[:160]}); "
                             "check that the server is running and WORKBENCH_LEDGER_URL")
    return None


def _is_full(text: str) -> bool:
    text = text.lower()
    return any(s in text for s in ("database or disk is full", "no space left", "disk full", "could not extend file"))


def _disk_full(exc: BaseException) -> Diagnosis | None:
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            where = f" writing {e.filename}" if e.filename else ""
            return Diagnosis("infrastructure", EXIT_FAILURE,
                             f"no space left on the device{where}; free space, or point WORKBENCH_DATA_DIR "
                             "at a disk with room")
    return None


def _mlflow(exc: BaseException) -> Diagnosis | None:
    chain = list(_chain(exc))
    if any(_module(e).startswith("mlflow") for e in chain) and any(
            _module(e).startswith("sqlalchemy") and type(e).__name__ in ("OperationalError", "InterfaceError")
            for e in chain):
        return Diagnosis("infrastructure", EXIT_FAILURE,
                         f"the MLflow tracking store at {_setting('tracking_uri')} cannot be opened "
                         f"({_text(chain[-1])[:160]}); check MLFLOW_TRACKING_URI and that its disk has room")
    for e in chain:
        text = _text(e)
        from_mlflow = _module(e).startswith("mlflow")
        network = _module(e).startswith(("requests", "urllib3")) or isinstance(e, ConnectionError)
        if (from_mlflow and ("API request to" in text or "Max retries" in text or "Connection" in text)) or (
                network and "/api/2.0/mlflow" in text):
            found = _HTTP.search(text)
            return Diagnosis("infrastructure", EXIT_FAILURE,
                             f"the MLflow tracking server at {found.group(0) if found else _setting('tracking_uri')} "
                             "cannot be reached; "
                             "start it (`workbench mlflow`) or fix MLFLOW_TRACKING_URI")
    return None


def _infrastructure(exc: BaseException) -> Diagnosis | None:
    for rule in (_dask, _driver, _mlflow, _database, _disk_full):
        found = rule(exc)
        if found is not None:
            return found
    return None


def exit_code(exc: BaseException) -> int:
    """2 for input, usage and configuration errors, 130 for Ctrl-C, 1 for everything else."""
    return diagnose(exc).code


def _input_code(exc: BaseException) -> int:
    from research.data.errors import DataError, SourceError, StoreError

    if isinstance(exc, (SourceError, StoreError)):
        return EXIT_FAILURE
    if isinstance(exc, DataError):  # invalid request, unknown symbol, bad file schema
        return EXIT_USAGE
    if isinstance(exc, (FileNotFoundError, IsADirectoryError, NotADirectoryError)):
        return EXIT_USAGE
    if isinstance(exc, (ValueError, LookupError)) and not isinstance(exc, OSError):
        return EXIT_USAGE
    return EXIT_FAILURE


def _hint(exc: BaseException) -> str:
    from research.data.errors import CorruptDatasetError, SourceError, StoreError

    text = str(exc)
    if isinstance(exc, SourceError) and "stored copy" not in text:
        return "check the network connection or try again later; --source sample works offline"
    if isinstance(exc, CorruptDatasetError):
        return ""
    if isinstance(exc, StoreError) and "WORKBENCH_DATA_DIR" not in text:
        return "check the data folder (WORKBENCH_DATA_DIR) is writable and has free space"
    if isinstance(exc, PermissionError):
        return "check the file permissions, or point WORKBENCH_DATA_DIR at a folder you can write"
    if isinstance(exc, (FileNotFoundError, IsADirectoryError, NotADirectoryError)):
        return "check the path"
    return ""


def _is_bug(exc: BaseException) -> bool:
    return not _is_workbench_error(exc) and not isinstance(exc, (ValueError, LookupError, OSError))


def diagnose(exc: BaseException) -> Diagnosis:
    """The kind, exit code and one-line text of ``exc`` (see the table in the module docstring)."""
    if isinstance(exc, KeyboardInterrupt):
        return Diagnosis("interrupted", 130, "interrupted (Ctrl-C)")
    found = _usage(exc) or _infrastructure(exc)
    if found is not None:
        return found
    if isinstance(exc, OSError) and exc.strerror and not _is_workbench_error(exc):
        text = f"{exc.strerror}{f': {exc.filename}' if exc.filename else ''}"
    else:
        text = _text(exc)
        if isinstance(exc, KeyError) and text.startswith("'") and text.endswith("'"):
            text = text[1:-1]
        if not _is_workbench_error(exc) and not isinstance(exc, (ValueError, LookupError)):
            text = f"{type(exc).__name__}: {text}"
    if _is_bug(exc):
        return Diagnosis("bug", EXIT_FAILURE,
                         f"{text}; this is a bug in the workbench: re-run with --debug and report the traceback")
    hint = _hint(exc)
    if hint and hint not in text:
        text = f"{text.rstrip('.')}; {hint}"
    code = _input_code(exc)
    return Diagnosis("input" if code == EXIT_USAGE else "environment", code, text)


def one_line(exc: BaseException) -> str:
    """The single line printed for ``exc`` (no traceback)."""
    return f"error: {diagnose(exc).text}"


def report_error(exc: BaseException) -> int:
    """Print ``exc`` for the user (one line, or the traceback under --debug); return the exit code."""
    found = diagnose(exc)
    if found.kind == "help":
        print(found.text)
    elif debug_enabled() and found.kind not in ("usage", "interrupted"):
        traceback.print_exception(exc, file=sys.stderr)
    elif found.kind in ("usage", "interrupted"):
        print(f"error: {found.text}", file=sys.stderr)
    else:
        print(f"error: {found.text} (--debug shows the traceback)", file=sys.stderr)
    return found.code
