"""Alerts: the rules that raise them, the outbox that keeps them, the channels that deliver them.

Modules and their entry points (import them from the module; nothing is imported here):

* :mod:`~research.alerts.rules` — ``AlertRules`` (every threshold), ``symbol_alerts``,
  ``strategy_drawdown_alerts``, ``ALERT_COLUMNS``.
* :mod:`~research.alerts.outbox` — ``enqueue``, ``pending``, ``alerts_frame``, ``reopen``; the outbox tables live
  in the ledger database (:mod:`research.paper.db`) next to the book.
* :mod:`~research.alerts.dispatch` — ``deliver``: a delivery run, bounded in time, per recipient.
* :mod:`~research.alerts.channels` — the channel file (``load_config``), webhook and e-mail.
* :mod:`~research.alerts.transport` — one total deadline per network call; ``SendError`` and its kinds.
* :mod:`~research.alerts.delivery` — ``after_run``, the pipelines' after-run hook: enqueue a
  run's alerts (or its failure) and deliver what is pending.
"""
