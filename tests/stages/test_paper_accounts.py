"""The ``paper`` stage steps the accounts that follow the pipeline, once per as-of date."""

from __future__ import annotations

import pytest

from research.paper import book
from research.stages.paper_accounts import PAPER_COLUMNS, paper_stage
from research.workflow.results import read_output


@pytest.fixture
def ledger(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_LEDGER_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
    return tmp_path


def test_daily_accounts_are_stepped_and_reruns_change_nothing(ledger):
    book.create_account(book.Account("follow", "rsi_reversion", ["SPX", "IXIC"], pipeline="daily", fees=0.001))
    book.create_account(book.Account("manual", "ma_crossover", ["SPX"]))
    out = str(ledger / "outputs")
    first = paper_stage(out, as_of="2018-11-30")
    assert list(first["account"]) == ["follow"] and first["sessions_written"].iloc[0] == 1
    table = paper_stage(out, as_of="2018-12-31")
    row = table.iloc[0]
    assert row["sessions_written"] == 19 and row["sessions"] == 20 and row["error"] == "" and row["checks"] == ""
    assert row["returns_correlation"] == pytest.approx(1.0) and row["tracking_error"] < 1e-9
    again = paper_stage(out, as_of="2018-12-31")
    assert again["sessions_written"].iloc[0] == 0 and again["equity"].iloc[0] == row["equity"]
    assert list(read_output(out, "paper").columns) == PAPER_COLUMNS
    assert book.sessions("manual").empty


def test_hourly_crypto_account_on_the_24_7_calendar(ledger):
    book.create_account(book.Account("crypto", "ma_crossover", ["BTC-USD"], params={"fast": 5, "slow": 20},
                                     calendar="crypto", source="synthetic", interval="1h", pipeline="hourly"))
    from research.paper.trading import load_fields, next_bar

    close = load_fields(book.get_account("crypto"))["close"]
    t0, t1 = close.index[-60], close.index[-1]
    out = str(ledger / "outputs")
    paper_stage(out, as_of=str(t0), pipeline="hourly")
    row = paper_stage(out, as_of=str(t1), pipeline="hourly").iloc[0]
    assert row["error"] == "" and row["sessions"] == 60
    assert next_bar(book.get_account("crypto"), t1) == t1 + (t1 - close.index[-2])
    assert paper_stage(out, as_of=str(t1), pipeline="daily").empty
