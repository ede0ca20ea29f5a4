"""Holdings and transactions as CSV: round trip, and whole-file validation naming the line."""

from __future__ import annotations

import pytest

from research.paper import book
from research.paper.db import LedgerError
from research.paper.replay import replay
from research.paper.transfer import export_csv, import_csv

HEADER = "id,timestamp,type,symbol,qty,price,fees,amount\n"


def _make(url, name, **kw):
    return book.create_account(book.Account(name, "rsi_reversion", ["IXIC", "SPX"], fees=0.001, **kw), url=url)


def test_export_then_import_rebuilds_the_book(ledger_url, name, sample_fields, tmp_path):
    _make(ledger_url, name)
    replay(name, "2018-09-04", "2018-12-31", fields=sample_fields, url=ledger_url, progress=False)
    paths = export_csv(name, tmp_path, url=ledger_url)
    copy = f"{name}c"
    _make(ledger_url, copy)
    out = import_csv(copy, paths["transactions"], url=ledger_url)
    assert out["fills"] == len(book.fills(name, url=ledger_url)) > 0
    assert book.positions(copy, url=ledger_url) == pytest.approx(book.positions(name, url=ledger_url))
    assert book.cash(copy, url=ledger_url) == pytest.approx(book.cash(name, url=ledger_url), rel=1e-12)
    assert book.check(copy, url=ledger_url) == []
    assert paths["holdings"].read_text().startswith("symbol,qty,price,timestamp")


@pytest.mark.parametrize("rows, message", [
    ("a,2018-01-03,buy,SPX,1,100,0,\nb,2018-01-04,buy,AAPL,1,100,0,\n", "line 3: unknown symbol 'AAPL'"),
    ("a,2018-01-03,buy,SPX,1,100,0,\nb,2018-01-04,sell,SPX,2,100,0,\n", "line 3: selling 2 SPX leaves a negative"),
    ("a,2018-01-03,buy,SPX,1,100,0,\na,2018-01-04,buy,SPX,1,100,0,\n", "line 3: duplicate id 'a'"),
    ("a,2018-01-03,buy,SPX,1,100,0,\nb,yesterday-ish,buy,SPX,1,100,0,\n", "line 3: timestamp 'yesterday-ish'"),
    ("a,2018-01-03,buy,SPX,-1,100,0,\n", "line 2: qty must be > 0"),
    ("a,2018-01-03,gift,SPX,1,100,0,\n", "line 2: type 'gift'"),
])
def test_an_invalid_row_is_named_and_nothing_is_applied(sqlite_url, name, tmp_path, rows, message):
    _make(sqlite_url, name)
    path = tmp_path / "tx.csv"
    path.write_text(HEADER + rows)
    with pytest.raises(book.AccountError, match=message):
        import_csv(name, path, url=sqlite_url)
    assert book.fills(name, url=sqlite_url).empty and book.cash(name, url=sqlite_url) == 100_000.0


def test_holdings_are_transferred_in_and_ids_are_unique(sqlite_url, name, tmp_path):
    _make(sqlite_url, name)
    path = tmp_path / "holdings.csv"
    path.write_text("symbol,qty,price,timestamp\nSPX,10,2500,2018-06-01\nIXIC,5,7000,2018-06-01\n")
    assert import_csv(name, path, url=sqlite_url) == {"fills": 2, "flows": 2}
    assert book.positions(name, url=sqlite_url) == {"IXIC": 5.0, "SPX": 10.0}
    assert book.cash(name, url=sqlite_url) == pytest.approx(100_000.0)
    with pytest.raises(LedgerError, match="duplicate id"):
        import_csv(name, path, url=sqlite_url)
    (tmp_path / "bad.csv").write_text("foo,bar\n1,2\n")
    with pytest.raises(book.AccountError, match="expected a transactions file"):
        import_csv(name, tmp_path / "bad.csv", url=sqlite_url)
