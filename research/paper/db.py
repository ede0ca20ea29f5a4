"""The ledger database: one SQLAlchemy engine for the book and the alert outbox.

SQLite under the data folder by default (``<data_dir>/ledger.db``, WAL journal, foreign keys
on, a busy timeout so concurrent writers wait instead of failing); any SQLAlchemy URL
(``postgresql://user@host:5432/db``) runs the same code on another database. The URL comes
from the ``url`` argument, else ``WORKBENCH_LEDGER_URL``, else the default file.

Every table of the ledger is declared on :data:`metadata`; :func:`connect` creates the missing
ones, so a new database is ready on first use.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from research.config import get_settings

__all__ = ["metadata", "connect", "default_url", "LedgerError"]

metadata = sa.MetaData()
_engines: dict[str, Engine] = {}
_lock = threading.Lock()


class LedgerError(RuntimeError):
    """A ledger operation was refused: the message names the account, row or invariant."""


def default_url() -> str:
    """``WORKBENCH_LEDGER_URL`` if set, else ``sqlite:///<data_dir>/ledger.db``."""
    env = os.environ.get("WORKBENCH_LEDGER_URL")
    if env:
        return env
    return f"sqlite:///{get_settings().data_dir / 'ledger.db'}"


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def connect(url: str | None = None) -> Engine:
    """The engine for ``url`` (cached per URL), with every ledger table created.

    Parameters
    ----------
    url : str, optional
        A SQLAlchemy URL; defaults to :func:`default_url`.
    """
    url = url or default_url()
    with _lock:
        engine = _engines.get(url)
        if engine is not None:
            return engine
        if url.startswith("sqlite:///"):
            path = Path(url.removeprefix("sqlite:///"))
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise LedgerError(f"cannot create the ledger folder {path.parent}: {exc.strerror}") from exc
            engine = sa.create_engine(url, connect_args={"timeout": 30})
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = sa.create_engine(_with_driver(url), pool_pre_ping=True)
        _import_tables()
        try:
            metadata.create_all(engine)
        except sa.exc.OperationalError as exc:
            raise LedgerError(f"cannot open the ledger at {_masked(url)}: {exc.orig}") from exc
        _engines[url] = engine
        return engine


def dispose(url: str | None = None) -> None:
    """Close the pooled connections of one engine (or all), e.g. before a test removes a file."""
    with _lock:
        keys = [url] if url else list(_engines)
        for key in keys:
            engine = _engines.pop(key, None)
            if engine is not None:
                engine.dispose()


def _with_driver(url: str) -> str:
    """``postgresql://`` with the installed driver: psycopg 3 when present, else psycopg2.

    SQLAlchemy 2.1 reads a bare ``postgresql://`` as psycopg 3; the workbench depends on
    psycopg2, so a bare URL is given that driver unless psycopg 3 is importable.
    """
    parsed = sa.engine.make_url(url)
    if parsed.drivername != "postgresql":
        return url
    import importlib.util

    driver = "psycopg" if importlib.util.find_spec("psycopg") else "psycopg2"
    return parsed.set(drivername=f"postgresql+{driver}").render_as_string(hide_password=False)


def _masked(url: str) -> str:
    return sa.engine.make_url(url).render_as_string(hide_password=True)


def _import_tables() -> None:
    """Import the modules that declare tables on :data:`metadata` (book and outbox)."""
    import importlib

    for name in ("research.paper.book", "research.paper.outbox"):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
