"""The ledger database: engines per URL, tables created on first use, bare PostgreSQL URLs."""

from __future__ import annotations

import sqlalchemy as sa

from research.alerts import outbox  # noqa: F401  (declares the outbox tables)
from research.paper import (
    book,  # noqa: F401  (declares the book's tables)
    db,
)


def test_sqlite_default_is_wal_with_every_table(tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    engine = db.connect(url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        tables = set(sa.inspect(engine).get_table_names())
        assert {"paper_accounts", "paper_orders", "paper_fills", "alert_outbox"} <= tables
        assert db.connect(url) is engine
    finally:
        db.dispose(url)


def test_a_bare_postgresql_url_uses_the_installed_driver(postgres_url):
    bare = postgres_url.replace("postgresql+psycopg2://", "postgresql://")
    assert db._with_driver(bare).startswith("postgresql+psycopg")
    engine = db.connect(bare)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("select 1").scalar() == 1
        assert "paper_accounts" in sa.inspect(engine).get_table_names()
    finally:
        db.dispose(bare)


def test_a_table_declared_after_the_first_connect_is_created_on_the_next(tmp_path):
    url = f"sqlite:///{tmp_path / 'late.db'}"
    engine = db.connect(url)
    late = sa.Table("late_room_rows", db.metadata, sa.Column("id", sa.Integer, primary_key=True))
    try:
        assert "late_room_rows" not in sa.inspect(engine).get_table_names()
        assert db.connect(url) is engine
        assert "late_room_rows" in sa.inspect(engine).get_table_names()
    finally:
        db.metadata.remove(late)
        db.dispose(url)
