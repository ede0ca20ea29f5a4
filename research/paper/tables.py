"""The tables of the book, declared on :data:`research.paper.db.metadata` (see :mod:`research.paper.book`)."""

from __future__ import annotations

import sqlalchemy as sa

from research.paper.db import LedgerError, metadata

__all__ = ["TOLERANCE", "AccountError", "accounts_t", "orders_t", "fills_t", "flows_t", "sessions_t", "TIME_INDEXES"]

TOLERANCE = 1e-6
"""Relative tolerance of the cash and position invariants (floating-point sums)."""

accounts_t = sa.Table(
    "paper_accounts", metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("strategy", sa.String(100), nullable=False),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("symbols", sa.JSON, nullable=False),
    sa.Column("sizing", sa.String(50), nullable=False),
    sa.Column("sizing_params", sa.JSON, nullable=False),
    sa.Column("risk", sa.JSON, nullable=False),
    sa.Column("fees", sa.Float, nullable=False),
    sa.Column("slippage", sa.Float, nullable=False),
    sa.Column("whole_shares", sa.Boolean, nullable=False),
    sa.Column("initial_cash", sa.Float, nullable=False),
    sa.Column("calendar", sa.String(20), nullable=False),
    sa.Column("source", sa.String(50), nullable=False),
    sa.Column("interval", sa.String(10), nullable=False),
    sa.Column("pipeline", sa.String(50), nullable=True),
    sa.Column("long_only", sa.Boolean, nullable=False),
    sa.Column("created", sa.DateTime, nullable=False),
)
orders_t = sa.Table(
    "paper_orders", metadata,
    sa.Column("order_id", sa.String(200), primary_key=True),
    sa.Column("account", sa.String(100), sa.ForeignKey("paper_accounts.name", ondelete="CASCADE"), nullable=False,
              index=True),
    sa.Column("symbol", sa.String(50), nullable=False),
    sa.Column("side", sa.String(4), nullable=False),
    sa.Column("qty", sa.Float, nullable=False),
    sa.Column("target_weight", sa.Float, nullable=True),
    sa.Column("decided_at", sa.DateTime, nullable=False),
    sa.Column("for_bar", sa.DateTime, nullable=True),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("reason", sa.String(100), nullable=False),
)
fills_t = sa.Table(
    "paper_fills", metadata,
    sa.Column("fill_id", sa.String(200), primary_key=True),
    sa.Column("order_id", sa.String(200), sa.ForeignKey("paper_orders.order_id", ondelete="CASCADE"), nullable=False,
              unique=True),
    sa.Column("account", sa.String(100), nullable=False, index=True),
    sa.Column("symbol", sa.String(50), nullable=False),
    sa.Column("side", sa.String(4), nullable=False),
    sa.Column("qty", sa.Float, nullable=False),
    sa.Column("price", sa.Float, nullable=False),
    sa.Column("quote", sa.Float, nullable=False),
    sa.Column("fees", sa.Float, nullable=False),
    sa.Column("timestamp", sa.DateTime, nullable=False),
)
flows_t = sa.Table(
    "paper_flows", metadata,
    sa.Column("flow_id", sa.String(200), primary_key=True),
    sa.Column("account", sa.String(100), sa.ForeignKey("paper_accounts.name", ondelete="CASCADE"), nullable=False,
              index=True),
    sa.Column("amount", sa.Float, nullable=False),
    sa.Column("timestamp", sa.DateTime, nullable=False),
    sa.Column("note", sa.String(200), nullable=False),
)
sessions_t = sa.Table(
    "paper_sessions", metadata,
    sa.Column("account", sa.String(100), sa.ForeignKey("paper_accounts.name", ondelete="CASCADE"), primary_key=True),
    sa.Column("as_of", sa.DateTime, primary_key=True),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("cash", sa.Float, nullable=False),
    sa.Column("equity", sa.Float, nullable=False),
    sa.Column("positions", sa.JSON, nullable=False),
    sa.Column("targets", sa.JSON, nullable=False),
    sa.Column("created", sa.DateTime, nullable=False),
)

# the windows of the write-time check read rows of one account between two sessions
TIME_INDEXES = (
    sa.Index("ix_paper_orders_account_decided", orders_t.c.account, orders_t.c.decided_at),
    sa.Index("ix_paper_fills_account_timestamp", fills_t.c.account, fills_t.c.timestamp),
    sa.Index("ix_paper_flows_account_timestamp", flows_t.c.account, flows_t.c.timestamp),
)


class AccountError(LedgerError, ValueError):
    """A request the ledger refuses because of its input: an unknown account, a taken name, a bad file row."""
