"""The ``paper`` pipeline stage: step every paper account that follows the pipeline.

An account follows a pipeline when it was created with ``workbench paper start ... --pipeline
daily`` (or ``hourly``). Each run steps it as of the run's as-of bar, catching up any session a
missed run left out (orders decided at the previous session fill at this bar's open), then
reconciles it with its backtest and checks drift. A rerun for the same as-of date changes
nothing in the ledger. One account's failure is recorded in its row, not raised, so the other
accounts still advance.
"""

from __future__ import annotations

import logging

import pandas as pd

from research.workflow.results import write_output

__all__ = ["paper_stage", "PAPER_COLUMNS"]

log = logging.getLogger(__name__)
PAPER_COLUMNS = ["account", "strategy", "symbols", "as_of", "sessions_written", "sessions", "last_session", "cash",
                 "equity", "return_pct", "fills", "pending_orders", "returns_correlation", "tracking_error",
                 "drift_alerts", "drift_message", "checks", "error"]


def _row(name: str, as_of: str, window: int, band: float) -> dict:
    from research.paper import book
    from research.paper.monitor import drift_alerts, reconcile
    from research.paper.trading import step

    account = book.get_account(name)
    out = step(name, as_of or None)
    sess = book.sessions(name)
    rec = reconcile(name)
    alerts = drift_alerts(name, window=window, band=band, reconciliation=rec) if rec is not None else []
    equity = float(sess["equity"].iloc[-1]) if len(sess) else account.initial_cash
    return {
        "account": name, "strategy": account.strategy, "symbols": ",".join(account.symbols), "as_of": out["as_of"],
        "sessions_written": out["sessions"], "sessions": len(sess),
        "last_session": str(sess["as_of"].iloc[-1]) if len(sess) else "", "cash": book.cash(name), "equity": equity,
        "return_pct": (equity / account.initial_cash - 1.0) * 100.0, "fills": len(book.fills(name)),
        "pending_orders": len(book.orders(name, status="pending")),
        "returns_correlation": rec.summary["returns_correlation"] if rec else float("nan"),
        "tracking_error": rec.summary["tracking_error"] if rec else float("nan"),
        "drift_alerts": len(alerts), "drift_message": alerts[-1]["message"] if alerts else "",
        "checks": "; ".join(book.check(name)), "error": "",
    }


def paper_stage(output_dir: str, *, as_of: str, pipeline: str = "daily", drift_window: int = 20,
                drift_band: float = 0.01) -> pd.DataFrame:
    """Step the accounts following ``pipeline`` as of ``as_of``; write and return the ``paper`` table.

    Parameters
    ----------
    output_dir : str
        The run's outputs folder.
    as_of : str
        The run's as-of date (or hour); empty means each account's last bar.
    pipeline : str
        Which accounts to step (their ``pipeline`` field).
    drift_window, drift_band : int, float
        Rolling tracking-error window (sessions) and the band (annualised) of the drift check.

    Returns
    -------
    DataFrame
        One row per account (columns :data:`PAPER_COLUMNS`).
    """
    from research.paper import book

    rows = []
    for account in book.list_accounts(pipeline=pipeline):
        try:
            rows.append(_row(account.name, as_of, drift_window, drift_band))
        except Exception as exc:  # one account's failure must not stop the others
            log.warning("paper account %s was not stepped: %s", account.name, exc)
            rows.append({"account": account.name, "strategy": account.strategy,
                         "symbols": ",".join(account.symbols), "as_of": as_of, "error": f"{type(exc).__name__}: {exc}"})
    table = pd.DataFrame(rows, columns=PAPER_COLUMNS)
    write_output(output_dir, "paper", table)
    return table
