"""The ledger database: one SQLAlchemy engine for the book and the alert outbox.

SQLite under the data folder by default (``<data_dir>/ledger.db``, WAL journal, foreign keys
on, a busy timeout so concurrent writers wait instead of failing); any SQLAlchemy URL
(``postgresql://user@host:5432/db``) runs the same code on another database. The URL comes
from the ``url`` argument, else ``WORKBENCH_LEDGER_URL``, else the default file.

Each room that keeps tables here declares them on :data:`metadata` when it is imported (the book
in :mod:`research.paper.book`, the outbox in :mod:`research.alerts.outbox`); :func:`connect`
creates the declared tables that a database does not have yet, so a new database is ready on
first use and this module imports no room by name.
"""

from __future__ import annotations

import threading
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from research.config import get_settings

__all__ = ["metadata", "connect", "default_url", "LedgerError"]

metadata = sa.MetaData()
_engines: dict[str, Engine] = {}
_created: dict[str, frozenset[str]] = {}  # per URL: the declared tables already created
_lock = threading.Lock()


class LedgerError(RuntimeError):
    """A ledger operation was refused: the message names the account, row or invariant."""


def default_url() -> str:
    """``WORKBENCH_LEDGER_URL`` if set, else ``sqlite:///<data_dir>/ledger.db``."""
    return get_settings().ledger_url


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def connect(url: str | None = None) -> Engine:
    """The engine for ``url`` (cached per URL), with every table declared so far created.

    Parameters
    ----------
    url : str, optional
        A SQLAlchemy URL; defaults to :func:`default_url`.
    """
    url = url or default_url()
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engine(url)
        declared = frozenset(metadata.tables)
        if not declared <= _created.get(url, frozenset()):
            try:
                metadata.create_all(engine)
            except sa.exc.OperationalError as exc:
                raise LedgerError(f"cannot open the ledger at {_masked(url)}: {exc.orig}") from exc
            _created[url] = declared
        _engines[url] = engine
        return engine


def _engine(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LedgerError(f"cannot create the ledger folder {path.parent}: {exc.strerror}") from exc
        engine = sa.create_engine(url, connect_args={"timeout": 30})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(_with_driver(url), pool_pre_ping=True)


def dispose(url: str | None = None) -> None:
    """Close the pooled connections of one engine (or all), e.g. before a test removes a file."""
    with _lock:
        keys = [url] if url else list(_engines)
        for key in keys:
            engine = _engines.pop(key, None)
            _created.pop(key, None)
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
