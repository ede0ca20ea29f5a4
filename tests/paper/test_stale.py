"""Symbols whose data stops: no order, a held position flagged at its last price, and `check` finds
any order decided on stale data (the rule of research.data.freshness)."""

from __future__ import annotations

import pandas as pd
import pytest

from research.paper import book
from research.paper.monitor import reconcile, report, stale_positions
from research.paper.replay import replay

SYMBOLS = ["SPX", "IXIC", "GOOG", "MSFT"]  # in the sample GOOG ends 2013-03-01, MSFT 2017-11-10


def _fill_shares(name: str, url: str) -> pd.DataFrame:
    """Each fill's position share of the book valued at the bar's quotes, beside its order's target."""
    o, f, s = book.orders(name, url=url), book.fills(name, url=url), book.sessions(name, url=url).set_index("as_of")
    m = f.merge(o[["order_id", "target_weight"]], on="order_id")
    rows = []
    for ts, g in m.groupby("timestamp"):
        prev = s.loc[:ts].iloc[-2]
        quotes = g.set_index("symbol")["quote"]
        value = prev.cash + sum(q * quotes[k] for k, q in prev.positions.items() if q and k in quotes)
        held = book.positions(name, url=url, until=ts)
        rows += [(r.symbol, r.target_weight, held.get(r.symbol, 0.0) * r.quote / value) for r in g.itertuples()]
    return pd.DataFrame(rows, columns=["symbol", "target", "share"])


def test_stale_symbols_get_no_order_and_targets_match_fills(sqlite_url, name, sample_fields):
    book.create_account(book.Account(name, "ma_crossover", SYMBOLS), url=sqlite_url)
    replay(name, "2018-01-02", "2018-12-31", fields=sample_fields, url=sqlite_url, progress=False)
    orders = book.orders(name, url=sqlite_url)
    assert set(orders["symbol"]) == {"SPX", "IXIC"} and (orders["status"] == "filled").all()
    shares = _fill_shares(name, sqlite_url)
    assert len(shares) > 0
    assert shares["share"].to_numpy() == pytest.approx(shares["target"].to_numpy(), abs=1e-9)
    assert book.check(name, url=sqlite_url, fields=sample_fields) == []
    rec = reconcile(name, fields=sample_fields, url=sqlite_url)
    assert rec.summary["differences"] == 0 and rec.summary["tracking_error"] < 1e-12
    flagged = book.sessions(name, url=sqlite_url)["targets"].iloc[-1]["stale"]
    assert set(flagged) == {"GOOG", "MSFT"} and flagged["MSFT"]["last_bar"].startswith("2017-11-10")


def test_check_finds_an_order_for_a_stale_symbol(sqlite_url, name, sample_fields, monkeypatch):
    book.create_account(book.Account(name, "ma_crossover", SYMBOLS), url=sqlite_url)
    replay(name, "2018-06-01", "2018-06-29", fields=sample_fields, url=sqlite_url, progress=False)
    assert book.check(name, url=sqlite_url, fields=sample_fields) == []
    t = pd.Timestamp("2018-06-15", tz="UTC")
    with book.connect(sqlite_url).begin() as conn:
        book.insert_orders(conn, name, [book.OrderRow(f"{name}:GOOG:x", "GOOG", "buy", 1.0, t, t, "cancelled",
                                                      "no price", 0.25)])
    stale = book.stale_order_problems(book.get_account(name, url=sqlite_url), fields=sample_fields, url=sqlite_url)
    assert len(stale) == 1 and "GOOG" in stale[0] and "stale data (last bar 2013-03-01" in stale[0]
    assert stale[0] in book.check(name, url=sqlite_url, fields=sample_fields)  # beside the seal's finding
    from typer.testing import CliRunner

    from research.cli import app

    monkeypatch.setenv("WORKBENCH_LEDGER_URL", sqlite_url)
    result = CliRunner().invoke(app, ["paper", "check", name])
    assert result.exit_code == 1 and "stale data (last bar 2013-03-01" in result.output


def test_held_stale_position_is_kept_flagged_and_counted(sqlite_url, name, sample_fields):
    book.create_account(book.Account(name, "ma_crossover", SYMBOLS), url=sqlite_url)
    replay(name, "2017-06-01", "2018-03-29", fields=sample_fields, url=sqlite_url, progress=False)
    held = book.positions(name, url=sqlite_url)
    assert held["MSFT"] > 0  # bought in 2017, its data stops 2017-11-10; never sold (no price), never re-ordered
    msft = book.orders(name, url=sqlite_url).query("symbol == 'MSFT'")
    assert (msft["decided_at"] <= pd.Timestamp("2017-11-15", tz="UTC")).all()
    rows, exposure = stale_positions(name, fields=sample_fields, url=sqlite_url)
    assert [r["symbol"] for r in rows] == ["MSFT"]
    last_close = float(sample_fields["close"]["MSFT"].dropna().iloc[-1])
    assert rows[0]["last_close"] == last_close and rows[0]["last_bar"].startswith("2017-11-10")
    assert rows[0]["age_days"] == (pd.Timestamp("2018-03-29") - pd.Timestamp("2017-11-10")).days
    equity = float(book.session_equity(name, url=sqlite_url).iloc[-1])
    assert exposure == pytest.approx(held["MSFT"] * last_close / equity)
    r = report(name, fields=sample_fields, url=sqlite_url)
    assert r["stale_exposure"] == exposure and r["checks"] == []
    assert reconcile(name, fields=sample_fields, url=sqlite_url).summary["differences"] == 0


def test_the_paper_page_shows_the_stale_position_and_exposure(sqlite_url, name):
    from research.viz.panels.paper import _account_panels, load_account

    book.create_account(book.Account(name, "ma_crossover", SYMBOLS), url=sqlite_url)
    replay(name, "2017-06-01", "2018-01-31", url=sqlite_url, progress=False)
    view = load_account(name, url=sqlite_url)
    assert [r["symbol"] for r in view.stale] == ["MSFT"] and view.stale_exposure > 0
    html = " ".join(getattr(w, "value", "") for panel in _account_panels(view, sqlite_url)
                    for w in getattr(panel, "children", []))
    assert "Stale exposure" in html and "MSFT" in html and "2017-11-10" in html


def test_filled_orders_record_the_side_and_quantity_of_their_fill(sqlite_url, name, sample_fields):
    """An order's side and quantity are estimated at the deciding close; once filled it records what
    was executed (an order recorded as a sell was marked filled by a buy)."""
    book.create_account(book.Account(name, "ma_crossover", ["SPX", "IXIC"], params={"fast": 5, "slow": 20},
                                     sizing="fixed_fraction",
                                     sizing_params={"fraction": 0.5}, risk={"rebalance": 1}), url=sqlite_url)
    replay(name, "2018-06-01", "2018-09-28", fields=sample_fields, url=sqlite_url, progress=False)
    o, f = book.orders(name, url=sqlite_url), book.fills(name, url=sqlite_url)
    m = f.merge(o, on="order_id", suffixes=("_fill", "_order"))
    assert len(m) == (o["status"] == "filled").sum() > 10
    assert (m["side_fill"] == m["side_order"]).all()
    assert m["qty_fill"].to_numpy() == pytest.approx(m["qty_order"].to_numpy(), rel=1e-12)
