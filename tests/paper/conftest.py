"""Fixtures of the paper-trading tests: a ledger per backend and the sample prices."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_url(request, tmp_path):
    """A ledger URL on SQLite (a fresh file) or on the session's PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def sqlite_url(tmp_path):
    """A fresh SQLite ledger."""
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture
def name():
    """A unique account name (accounts of several tests share the PostgreSQL database)."""
    return f"acct{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def sample_fields():
    """Wide OHLC frames of the sample universe (GOOG, IXIC, MSFT, SPX), up to 2018-12-31."""
    from research.backtest.engine import as_fields
    from research.data import load_prices

    f = as_fields(load_prices(["GOOG", "IXIC", "MSFT", "SPX"], progress=False))
    return {k: f[k] for k in ("open", "high", "low", "close")}
