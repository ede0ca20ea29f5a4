"""The paper ledger under faults: edits anywhere, hostile imports and names, a ledger deleted or
swapped under a running replay, and CSV files a spreadsheet would evaluate.

Runs on SQLite and on the session's PostgreSQL server (``postgres_url``) where a case concerns
the database.
"""

from __future__ import annotations

import base64
import os
import random
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from research.paper import audit, book
from research.paper.db import connect, dispose
from research.paper.replay import replay
from research.paper.transfer import export_csv, import_csv
from tests.paper.books import demo_sessions, write_book

GROUP = "ledger"
ROOT = Path(__file__).parents[2]
FOUR = ["SPX", "IXIC", "GOOG", "MSFT"]


@pytest.fixture(params=["sqlite", "postgres"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def name():
    return f"rel{uuid.uuid4().hex[:8]}"


def _backend(url: str) -> str:
    return "PostgreSQL" if url.startswith("postgresql") else "SQLite"


def _mid_session(url, name, bars, i, **values):
    with connect(url).begin() as conn:
        t = book.sessions_t
        when = bars[i].tz_localize(None).to_pydatetime()
        row = conn.execute(sa.select(t).where(t.c.account == name, t.c.as_of == when)).mappings().one()
        conn.execute(t.update().where(t.c.account == name, t.c.as_of == when)
                     .values({k: v(row) for k, v in values.items()}))
    return f"{when:%Y-%m-%d}"


# ------------------------------------------------------------------ edits anywhere

def test_a_middle_session_cash_edit_is_found(url, name, case):
    bars = write_book(url, name, demo_sessions(40))
    when = _mid_session(url, name, bars, 17, cash=lambda r: r["cash"] + 0.01)
    problems = book.check(name, url=url)
    named = [p for p in problems if when in p]
    case(GROUP, f"cash edited by 0.01 in session 18 of 40 ({_backend(url)})", "found and named (session, table, cell)",
         f"{len(problems)} problem(s): {named[-1] if named else problems}",
         bool(named) and len(named) == len(problems) and any("paper_sessions" in p and "cash changed" in p
                                                              for p in problems))


def test_a_middle_session_position_edit_is_found(url, name, case):
    bars = write_book(url, name, demo_sessions(40))
    when = _mid_session(url, name, bars, 23, positions=lambda r: {**r["positions"], "BBB": r["positions"]["BBB"] + 1})
    problems = book.check(name, url=url)
    ok = any(p.startswith(f"session {when}") and "position BBB is" in p for p in problems)
    case(GROUP, f"position edited in session 24 of 40 ({_backend(url)})", "found: position BBB and its sealed cell",
         "; ".join(problems[:2]), ok and any("positions changed" in p for p in problems))


def test_a_fill_side_flip_is_found(url, name, case):
    write_book(url, name, demo_sessions(40))
    with connect(url).begin() as conn:
        oid = conn.execute(sa.text("SELECT order_id FROM paper_fills WHERE account = :a AND side = 'sell' "
                                   "ORDER BY timestamp LIMIT 1 OFFSET 5"), {"a": name}).scalar()
        conn.execute(sa.text("UPDATE paper_orders SET side = 'buy' WHERE order_id = :o"), {"o": oid})
    problems = book.check(name, url=url)
    case(GROUP, f"order recorded as a buy, filled by a sell ({_backend(url)})", "found: order and fill disagree",
         "; ".join(problems[:2]), any(oid in p and "its fill is a sell" in p for p in problems))


def test_random_edits_are_all_found(tmp_path, case):
    """200 edits of a random sealed cell of a random row of a 12-session book (seeded)."""
    from tests.paper.test_audit_properties import EDITABLE, TABLES, _changed, _dated

    base = tmp_path / "base.db"
    imports = {i: [{"id": f"d{i}", "timestamp": "", "type": "deposit", "symbol": "", "qty": "", "price": "",
                    "fees": "", "amount": str(100.0 + i)}] for i in (2, 7)}
    write_book(f"sqlite:///{base}", "edit", demo_sessions(), imports=_dated(imports, 12))
    dispose(f"sqlite:///{base}")
    rng, found, tried, missed = random.Random(20), 0, 0, []
    while tried < 200:
        path = tmp_path / f"e{tried}.db"
        shutil.copy(base, path)
        u = f"sqlite:///{path}"
        table = rng.choice(sorted(TABLES))
        t = TABLES[table]
        pk = list(t.primary_key.columns)
        with connect(u).connect() as conn:
            q = sa.select(t).where(t.c.status != "pending") if table == "paper_orders" else sa.select(t)
            row = rng.choice(conn.execute(q.order_by(*pk)).mappings().all())
        column = rng.choice([c for c in EDITABLE[table] if c in t.c])
        try:
            with connect(u).begin() as conn:
                conn.execute(t.update().where(*[c == row[c.name] for c in pk])
                             .values({column: _changed(row[column], rng.randrange(12), t.c[column].type)}))
        except sa.exc.IntegrityError:
            dispose(u)
            continue
        tried += 1
        if audit.verify("edit", url=u).problems:
            found += 1
        else:
            missed.append(f"{table}.{column}")
        dispose(u)
        path.unlink()
    case(GROUP, "random edits of a sealed cell found by `paper check`", "200/200", f"{found}/{tried} {missed[:3]}",
         found == tried == 200)


# ------------------------------------------------------------------ hostile imports

def test_an_overflowing_holdings_import_is_refused(url, name, tmp_path, case):
    book.create_account(book.Account(name, "ma_crossover", ["SPX"]), url=url)
    f = tmp_path / "h.csv"
    f.write_text("symbol,qty,price,timestamp\nSPX,1e200,1e200,2018-01-03\n")
    with pytest.raises(book.AccountError) as info:
        import_csv(name, f, url=url)
    cash = book.cash(name, url=url)
    case(GROUP, f"holdings import: qty x price overflows ({_backend(url)})", "refused at line 2; cash finite; clean",
         f"{info.value}; cash {cash:,.0f}; check {book.check(name, url=url)}",
         "line 2" in str(info.value) and "overflows" in str(info.value) and cash == 100_000.0
         and book.check(name, url=url) == [])


def test_an_import_dated_after_the_next_session_applies_at_its_date(url, name, tmp_path, case):
    from research.backtest.engine import as_fields
    from research.data import load_prices

    f = as_fields(load_prices(FOUR, progress=False))
    fields = {k: f[k] for k in ("open", "high", "low", "close")}
    book.create_account(book.Account(name, "ma_crossover", FOUR, whole_shares=True), url=url)
    replay(name, "2018-01-02", "2018-01-31", fields=fields, url=url, progress=False)
    f = tmp_path / "h.csv"
    f.write_text("symbol,qty,price,timestamp\nSPX,3,2700,2018-03-01\n")
    import_csv(name, f, url=url)
    out = replay(name, "2018-02-01", "2018-04-30", fields=fields, url=url, progress=False)
    s = book.sessions(name, url=url).set_index("as_of")
    day = pd.Timestamp("2018-02-28", tz="UTC")
    before = s.loc[day, "positions"].get("SPX", 0.0)
    at = s.loc[pd.Timestamp("2018-03-01", tz="UTC"), "positions"].get("SPX", 0.0)
    problems = book.check(name, url=url)
    case(GROUP, f"import dated a month after the next session ({_backend(url)})",
         "applied as of its date; replay continues; book verifies",
         f"{out['sessions']} sessions replayed; SPX {before:g} on 02-28, {at:g} on 03-01; problems {problems}",
         out["sessions"] == 61 and at - before >= 3 - 1e-9 and problems == [])
    later = tmp_path / "later.csv"
    later.write_text(f"symbol,qty,price,timestamp\nSPX,1,2700,{pd.Timestamp.now().year + 1}-01-02\n")
    with pytest.raises(book.AccountError, match="line 2: timestamp .* is in the future"):
        import_csv(name, later, url=url)


# ------------------------------------------------------------------ names

@pytest.mark.parametrize("bad", ["x" * 150, "=HYPERLINK(\"http://x\",\"y\")", "+cmd", "-2+3", "@SUM(A1)"])
def test_hostile_account_names_are_refused_alike(url, bad, case):
    with pytest.raises(book.AccountError) as info:
        book.create_account(book.Account(bad, "ma_crossover", ["SPX"]), url=url)
    text = str(info.value)
    case(GROUP, f"account name {bad[:12]!r}{'...' if len(bad) > 12 else ''} ({_backend(url)})",
         "one clear AccountError before the database", text[:90],
         "INSERT" not in text and "SQL" not in text and ("formula" in text or "at most 100" in text))


def test_the_cli_refuses_a_formula_name(tmp_path, case):
    env = {**os.environ, "WORKBENCH_LEDGER_URL": f"sqlite:///{tmp_path / 'cli.db'}",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.run([sys.executable, "-m", "research", "paper", "start", "=1+2", "--strategy", "ma_crossover",
                        "--symbols", "SPX"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    case(GROUP, "`paper start =1+2`", "exit 2, one error line", f"exit {p.returncode}: {p.stderr.strip()[:80]}",
         p.returncode == 2 and "formula" in p.stderr and "Traceback" not in p.stderr)


# ------------------------------------------------------------------ CSV safe to open

def test_exports_escape_formulas_and_keep_numbers(tmp_path, case):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    write_book(url, "legacy", demo_sessions(6))
    with connect(url).begin() as conn:  # a name from before names were validated
        conn.execute(sa.text("PRAGMA foreign_keys=OFF"))
        for t in ("paper_orders", "paper_fills", "paper_flows", "paper_sessions", "paper_seals"):
            conn.execute(sa.text(f"UPDATE {t} SET account = '=HYPERLINK(1)' WHERE account = 'legacy'"))
        conn.execute(sa.text("UPDATE paper_orders SET order_id = '=' || order_id"))
        conn.execute(sa.text("UPDATE paper_fills SET order_id = '=' || order_id"))
        conn.execute(sa.text("UPDATE paper_accounts SET name = '=HYPERLINK(1)'"))
    paths = export_csv("=HYPERLINK(1)", tmp_path / "out", url=url)
    text = paths["transactions"].read_text()
    tx = pd.read_csv(paths["transactions"])
    cells = [line.split(",")[0] for line in text.splitlines()[1:]]
    case(GROUP, "paper export of an account named =HYPERLINK(1)", "every such cell escaped; numbers numeric",
         f"{sum(c.startswith(chr(39) + '=') for c in cells)}/{len(cells)} escaped; qty {tx['qty'].dtype}",
         all(c.startswith("'=") for c in cells) and pd.api.types.is_numeric_dtype(tx["qty"])
         and tx["price"].gt(0).all())


def test_dashboard_downloads_escape_formulas(case):
    from research.viz.panels.layout import csv_link

    frame = pd.DataFrame({"symbol": ["=cmd|' /C calc'!A0", "@SUM(1)", "\tx", "SPX"], "pnl": [-1.5, 2.0, -3.0, 0.0],
                          "note": ["-12.5", "+x", "ok", "-"]})
    link = csv_link(frame, "t")
    text = base64.b64decode(link.split("base64,")[1].split('"')[0]).decode()
    back = pd.read_csv(__import__("io").StringIO(text))
    case(GROUP, "dashboard CSV download with formula cells", "escaped; -1.5 and '-12.5' unchanged",
         text.replace("\n", " | ")[:120],
         list(back["symbol"][:3]) == ["'=cmd|' /C calc'!A0", "'@SUM(1)", "'\tx"]
         and list(back["pnl"]) == [-1.5, 2.0, -3.0, 0.0] and list(back["note"]) == ["-12.5", "'+x", "ok", "'-"])


# ------------------------------------------------------------------ ledger gone under a replay

def _replay_process(tmp_path, db: Path, name: str) -> subprocess.Popen:
    env = {**os.environ, "WORKBENCH_LEDGER_URL": f"sqlite:///{db}",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "research", "paper", "replay", name, "--from", "2018-01-02",
                             "--to", "2018-12-31", "--json"], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_sessions(db: Path, n: int, proc: subprocess.Popen) -> int:
    engine = sa.create_engine(f"sqlite:///{db}")
    deadline, count = time.monotonic() + 240, 0
    try:
        while time.monotonic() < deadline and proc.poll() is None and count < n:
            time.sleep(0.1)
            with engine.connect() as conn:
                count = conn.execute(sa.text("SELECT COUNT(*) FROM paper_sessions")).scalar()
    finally:
        engine.dispose()
    return count


@pytest.mark.parametrize("fault", ["deleted", "swapped"])
def test_a_ledger_gone_under_a_replay_stops_it(tmp_path, fault, case):
    db = tmp_path / "ledger.db"
    book.create_account(book.Account("gone", "ma_crossover", FOUR), url=f"sqlite:///{db}")
    other = tmp_path / "other.db"
    book.create_account(book.Account("other", "ma_crossover", FOUR), url=f"sqlite:///{other}")
    dispose(f"sqlite:///{db}")
    dispose(f"sqlite:///{other}")
    proc = _replay_process(tmp_path, db, "gone")
    seen = _wait_sessions(db, 20, proc)
    assert proc.poll() is None and seen >= 20, "the replay ended before the fault"
    if fault == "deleted":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
    else:
        os.replace(other, db)
    out, err = proc.communicate(timeout=240)
    needle = "was deleted while in use" if fault == "deleted" else "was replaced by another file while in use"
    after = "absent" if not db.exists() else f"{len(book.sessions('other', url=f'sqlite:///{db}'))} sessions in it"
    case(GROUP, f"ledger file {fault} during a 251-session replay", "replay stops: exit 1 naming the file",
         f"exit {proc.returncode}: {err.strip().splitlines()[-1][:100] if err.strip() else out[:80]}; file {after}",
         proc.returncode == 1 and needle in err and str(db) in err and '"sessions"' not in out)
