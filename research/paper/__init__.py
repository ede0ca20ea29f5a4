"""Carrying strategies forward in time: the book (a ledger database), paper accounts that
follow a strategy bar by bar, replay through history, and the monitor that reconciles an account
with a backtest of the same period. Alerts (outbox, channels) live in :mod:`research.alerts`,
on the same database.

Modules and their entry points (import them from the module; nothing is imported here):

* :mod:`~research.paper.db` — ``connect(url)``, ``metadata``, ``LedgerError``.
* :mod:`~research.paper.book` — ``Account``, ``create_account``, ``get_account``,
  ``list_accounts(pipeline=)``, ``positions``, ``cash``, ``orders(status=)``, ``fills``,
  ``sessions``, ``session_equity``, ``cash_flows``, ``last_session``, ``check``;
  ``AccountError`` (a ``ValueError``) for refused input.
* :mod:`~research.paper.audit` — ``verify`` (what ``workbench paper check`` prints), ``rehash``,
  ``RULES`` (the row rules); :mod:`~research.paper.seal` — the seals' canonical form and digest,
  the ledger's identity; :mod:`~research.paper.tables` — the tables.
* :mod:`~research.paper.trading` — ``step(name, as_of)``, ``session``, ``load_fields``.
* :mod:`~research.paper.replay` — ``replay(name, start, end)``.
* :mod:`~research.paper.monitor` — ``ledger_equity``, ``performance``, ``reconcile`` (a
  ``Reconciliation``: ``summary``, ``curves``, ``returns``, ``trades``), ``drift_alerts``,
  ``report`` (what ``workbench paper show --json`` prints).
* :mod:`~research.paper.transfer` — ``export_csv``, ``import_csv``, ``import_transactions``.
"""
