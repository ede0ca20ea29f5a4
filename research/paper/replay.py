"""Replay an account through history, one session per bar, each seeing only bars up to its date.

``replay(name, start, end)`` runs the account's sessions for every bar of its calendar in
``[start, end]`` (every day of a 24/7 market, every hour on the hourly pipeline). Each session
is cut at its own bar (:func:`research.paper.trading.session`), so no decision can use a later
bar. It is resumable: sessions already in the ledger are skipped, and since every session is
one transaction, a replay killed at any point and started again ends with the same book as one
that was never interrupted.

Example
-------
>>> replay("demo", "2018-01-02", "2018-12-31")       # doctest: +SKIP
{'account': 'demo', 'sessions': 250, 'skipped': 0, 'first': '2018-01-02 ...', 'last': '2018-12-31 ...'}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from research.paper import book
from research.paper.db import LedgerError
from research.paper.trading import bound, load_fields, pending_bars, run_sessions

__all__ = ["replay", "ReplayRangeError"]


class ReplayRangeError(LedgerError, ValueError):
    """The range asked for holds no bar of the account's symbols (an input error)."""


def replay(
    name: str,
    start: object,
    end: object,
    *,
    fields: Mapping[str, pd.DataFrame] | None = None,
    url: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Step account ``name`` once per bar in ``[start, end]``, resuming after its last session.

    Parameters
    ----------
    name : str
        The account.
    start, end : date-like
        First and last session (inclusive), read as as-of values
        (:class:`~research.data.asof.AsOf`: a date is its whole session, a time that instant). An account that already has sessions continues
        from the bar after its last one; a ``start`` that would leave a gap is refused.
    fields : mapping, optional
        Wide ``open, high, low, close`` frames (default: the account's stored prices); each
        session only sees the rows up to its own bar.
    url : str, optional
        Ledger URL.
    progress : bool
        Show a progress bar.

    Returns
    -------
    dict
        ``account``, ``sessions`` (written now), ``skipped`` (already in the ledger), ``first``
        and ``last`` bar of the range.
    """
    account = book.get_account(name, url=url)
    fields = fields if fields is not None else load_fields(account, end=end)
    index = fields["close"].index
    lo = bound(start, index, interval=account.interval, side="start")
    hi = bound(end, index, interval=account.interval, side="end")
    in_range = index[(index >= lo) & (index <= hi)]
    if not len(in_range):
        raise ReplayRangeError(f"no bar of {', '.join(account.symbols)} between {lo:%Y-%m-%d} and {hi:%Y-%m-%d} "
                          f"(prices: {index[0]:%Y-%m-%d} to {index[-1]:%Y-%m-%d})")
    todo = pending_bars(account, index, lo, hi, url=url)
    written = run_sessions(account, fields, todo, url=url, progress=progress)
    return {"account": name, "sessions": written, "skipped": len(in_range) - len(todo),
            "first": str(in_range[0]), "last": str(in_range[-1])}
