"""A replayed paper account and a few alerts in a ledger, for the paper-trading dashboard tests.

The account follows ``ma_crossover`` on synthetic symbols (the default synthetic source, offline
and deterministic) and is replayed session by session up to the as-of date of the fixture run
(``run_fixture.write_fixture_run``), so the page's as-of label, run id and data source agree with
the other pages. The outbox holds one delivered and one pending alert.
"""

from __future__ import annotations

import pandas as pd

SYMBOLS = ("SYN0001", "SYN0002")


def write_fixture_account(url: str, *, as_of: str, name: str = "demo", sessions: int = 60,
                          pipeline: str = "daily") -> dict:
    """Create account ``name`` in the ledger at ``url`` and replay its last ``sessions`` bars up to ``as_of``."""
    from research.alerts import outbox
    from research.paper import book
    from research.paper.replay import replay
    from research.paper.trading import load_fields

    account = book.Account(name=name, strategy="ma_crossover", symbols=list(SYMBOLS), params={"fast": 5, "slow": 20},
                           fees=0.001, slippage=0.0005, source="synthetic", pipeline=pipeline, initial_cash=100_000.0)
    account = book.create_account(account, url=url)
    fields = load_fields(account, end=as_of)
    index = fields["close"].loc[:pd.Timestamp(as_of, tz="UTC")].index
    result = replay(name, index[-sessions], index[-1], fields=fields, url=url, progress=False)
    outbox.enqueue([
        {"subject": "SYN0001", "kind": "drawdown", "severity": "critical", "message": "SYN0001 is 21% below its high",
         "as_of": as_of},
        {"subject": name, "kind": "paper_drift", "severity": "warning",
         "message": f"paper account {name} drifted from its backtest", "as_of": as_of},
    ], url=url, source="signals")
    return result
