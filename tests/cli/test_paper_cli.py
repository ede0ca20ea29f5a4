"""``workbench paper``: start, replay, show/list/history --json, check, export and import."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from research.cli import app
from research.paper.book import AccountError


@pytest.fixture
def ledger(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_LEDGER_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
    return tmp_path


def _run(*args: str):
    result = CliRunner().invoke(app, ["paper", *args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_paper_commands_round_trip(ledger):
    out = _run("start", "cli", "--strategy", "rsi_reversion", "--symbols", "SPX", "--symbols", "IXIC", "--cash",
               "50000", "--whole-shares", "--fees", "0.001", "--param", "window=10")
    assert "created paper account cli" in out
    out = _run("replay", "cli", "--from", "2018-09-04", "--to", "2018-12-31")
    assert "returns correlation 1.000000" in out
    shown = json.loads(_run("show", "cli", "--json"))
    assert shown["sessions"] == 82 and shown["fills"] > 0 and shown["final_equity"] > 0
    assert shown["reconciliation"]["returns_correlation"] == pytest.approx(1.0)
    assert shown["reconciliation"]["tracking_error"] < 1e-9
    assert shown["account"]["params"]["window"] == 10
    assert [a["name"] for a in json.loads(_run("list", "--json"))] == ["cli"]
    assert len(json.loads(_run("history", "cli", "--json", "--limit", "5"))) == 5
    assert "cli: book verified (" in _run("check", "cli")
    assert "transactions:" in _run("export", "cli", str(ledger / "out"))
    _run("start", "copy", "--strategy", "rsi_reversion", "--symbols", "SPX", "--symbols", "IXIC", "--cash", "50000")
    assert "imported" in _run("import", "copy", str(ledger / "out" / "cli-transactions.csv"))
    assert json.loads(_run("show", "copy", "--json"))["positions"] == shown["positions"]


def test_user_errors_are_typed(ledger):
    result = CliRunner().invoke(app, ["paper", "show", "nope"])
    assert isinstance(result.exception, AccountError) and "no paper account 'nope'" in str(result.exception)
    _run("start", "dup", "--strategy", "ma_crossover", "--symbols", "SPX")
    result = CliRunner().invoke(app, ["paper", "start", "dup", "--strategy", "ma_crossover", "--symbols", "SPX"])
    assert isinstance(result.exception, AccountError)


def test_defaults_replay_runs_and_reconciles(ledger):
    """All-in, fractional shares, no fees (the CLI's defaults): a rebalance that spends exactly the
    cash must not leave the ledger a negative balance that the next order refuses."""
    _run("start", "acct", "--strategy", "ma_crossover", "--symbols", "SPX", "--symbols", "IXIC", "--cash", "100000")
    out = _run("replay", "acct", "--from", "2018-01-02", "--to", "2018-12-31")
    assert "251 session(s) replayed" in out and "0 fill difference(s)" in out
    assert "acct: book verified (" in _run("check", "acct")
    shown = json.loads(_run("show", "acct", "--json"))
    assert shown["reconciliation"]["tracking_error"] < 1e-9
    assert shown["stale_exposure"] == 0.0 and shown["stale_positions"] == []
    from research.paper import book

    assert (book.sessions("acct")["cash"] >= 0).all()


def test_show_flags_a_held_symbol_whose_data_stopped(ledger):
    _run("start", "four", "--strategy", "ma_crossover", "--symbols", "SPX", "--symbols", "MSFT", "--cash", "100000")
    _run("replay", "four", "--from", "2017-09-01", "--to", "2017-12-29")
    out = _run("show", "four")
    assert "stale exposure" in out and "stale: MSFT" in out and "2017-11-10" in out
    shown = json.loads(_run("show", "four", "--json"))
    assert shown["stale_exposure"] > 0 and [p["symbol"] for p in shown["stale_positions"]] == ["MSFT"]
    assert "four: book verified (" in _run("check", "four")
