"""How the ``workbench`` command reports errors.

A user error (bad input, a missing or unreadable file, an unwritable data folder, a source
that cannot be reached) is printed as one line on stderr, ``error: <what, which input, what to
do>``, and the command exits non-zero: 2 for usage and input errors, 1 for failures of the
environment (network, store, tracking). ``--debug`` (or ``WORKBENCH_DEBUG=1``) prints the full
traceback instead. An unexpected error (a bug) is also reported in one line, with a hint to
re-run with ``--debug`` and report it; its exit code is 1. Ctrl-C prints one line and exits 130.
"""

from __future__ import annotations

import sys
import traceback

__all__ = ["EXIT_USAGE", "EXIT_FAILURE", "debug_enabled", "set_debug", "report", "exit_code", "one_line"]

EXIT_FAILURE = 1
EXIT_USAGE = 2
_DEBUG = False


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


def _is_workbench_error(exc: BaseException) -> bool:
    return any(cls.__module__.startswith("research.") for cls in type(exc).__mro__[:-2])


def exit_code(exc: BaseException) -> int:
    """2 for input and usage errors, 130 for Ctrl-C, 1 for everything else."""
    from research.data.errors import DataError, SourceError, StoreError

    if isinstance(exc, KeyboardInterrupt):
        return 130
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
    if not _is_workbench_error(exc) and not isinstance(exc, (ValueError, LookupError, OSError)):
        return "this is a bug in the workbench: re-run with --debug and report the traceback"
    return ""


def one_line(exc: BaseException) -> str:
    """The single line printed for ``exc`` (no traceback)."""
    if isinstance(exc, KeyboardInterrupt):
        return "error: interrupted (Ctrl-C)"
    if isinstance(exc, OSError) and exc.strerror and not _is_workbench_error(exc):
        where = f": {exc.filename}" if exc.filename else ""
        text = f"{exc.strerror}{where}"
    else:
        text = " ".join(str(exc).split()) or type(exc).__name__
        if isinstance(exc, KeyError) and text.startswith("'") and text.endswith("'"):
            text = text[1:-1]
        if not _is_workbench_error(exc) and not isinstance(exc, (ValueError, LookupError)):
            text = f"{type(exc).__name__}: {text}"
    hint = _hint(exc)
    if hint and hint not in text:
        text = f"{text.rstrip('.')}; {hint}"
    return f"error: {text}"


def report(exc: BaseException) -> int:
    """Print ``exc`` for the user (one line, or the traceback under --debug); return the exit code."""
    if debug_enabled():
        traceback.print_exception(exc, file=sys.stderr)
    else:
        print(one_line(exc) + " (--debug shows the traceback)", file=sys.stderr)
    return exit_code(exc)
