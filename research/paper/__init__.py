"""Carrying strategies forward in time: the book (a ledger database), paper accounts that
follow a strategy bar by bar, replay through history, the monitor that reconciles an account
with a backtest of the same period, and the alert outbox that delivers to people.
"""
