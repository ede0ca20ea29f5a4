"""Paper trading and replay: agreement with the backtest, no look-ahead, kill and resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from research.paper import book, trading
from research.paper.db import LedgerError, connect
from research.paper.monitor import drift_alerts, reconcile
from research.paper.replay import replay

SYMBOLS = ["SPX", "IXIC", "GOOG", "MSFT"]
COSTS = {"fees": 0.001, "slippage": 0.0005}


def _make(url, name, strategy="ma_crossover", **kw):
    return book.create_account(book.Account(name, strategy, SYMBOLS, **{**COSTS, **kw}), url=url)


def _ledger(url, name):
    o = book.orders(name, url=url).drop(columns=[])
    f = book.fills(name, url=url)
    s = book.sessions(name, url=url).drop(columns=["created"])
    return o, f, s


@pytest.mark.parametrize("strategy, start, kw", [
    ("ma_crossover", "2018-01-02", {}),
    ("rsi_reversion", "2018-01-02", {"whole_shares": True}),
    ("bollinger_breakout", "2018-07-02", {"whole_shares": True, "risk": {"stop_loss": 0.015}}),
    ("time_series_momentum", "2018-07-02", {"params": {"lookback": 21},
                                            "risk": {"trailing_stop": 0.03, "max_drawdown": 0.04}}),
])
def test_replay_agrees_with_the_backtest(sqlite_url, name, sample_fields, strategy, start, kw):
    _make(sqlite_url, name, strategy, **kw)
    out = replay(name, start, "2018-12-31", fields=sample_fields, url=sqlite_url, progress=False)
    assert out["sessions"] == (251 if start == "2018-01-02" else 126)
    rec = reconcile(name, fields=sample_fields, url=sqlite_url)
    s = rec.summary
    assert s["returns_correlation"] == pytest.approx(1.0, abs=1e-12)
    assert s["tracking_error"] < 1e-12
    assert abs(s["total_return_difference"]) < 1e-12
    assert s["max_equity_difference"] < 1e-6
    assert s["differences"] == 0 and s["fills_paper"] == s["fills_backtest"] > 0
    assert book.check(name, url=sqlite_url) == []
    assert drift_alerts(name, fields=sample_fields, url=sqlite_url, reconciliation=rec) == []
    reasons = set(book.fills(name, url=sqlite_url)["reason"])
    if "stop_loss" in kw.get("risk", {}):
        assert "stop_loss" in reasons
    if "max_drawdown" in kw.get("risk", {}):
        assert "halt" in reasons


def test_postgres_and_sqlite_books_are_identical(postgres_url, sqlite_url, name, sample_fields):
    for url in (postgres_url, sqlite_url):
        _make(url, name, "rsi_reversion", whole_shares=True)
        replay(name, "2018-09-04", "2018-12-31", fields=sample_fields, url=url, progress=False)
    a, b = _ledger(postgres_url, name), _ledger(sqlite_url, name)
    for x, y in zip(a, b, strict=True):
        pd.testing.assert_frame_equal(x.reset_index(drop=True), y.reset_index(drop=True), check_dtype=False)
    assert len(a[1]) > 0


def test_no_look_ahead(sqlite_url, sample_fields):
    """Sessions given data whose future is scrambled decide exactly as sessions given all data."""
    bars = sample_fields["close"].loc["2018-09-04":"2018-12-31"].index
    _make(sqlite_url, "full", "rsi_reversion")
    replay("full", bars[0], bars[-1], fields=sample_fields, url=sqlite_url, progress=False)
    account = _make(sqlite_url, "cut", "rsi_reversion")
    rng = np.random.default_rng(0)
    for k, t in enumerate(bars):
        if k % 2:  # truncated after t
            seen = {f: v.loc[:t] for f, v in sample_fields.items()}
        else:  # everything after t scrambled
            future = np.broadcast_to((sample_fields["close"].index > t)[:, None], sample_fields["close"].shape)
            seen = {f: v.mask(future, v * rng.uniform(0.5, 1.5, v.shape)) for f, v in sample_fields.items()}
        trading.session(account, seen, t, url=sqlite_url)
    full, cut = book.orders("full", url=sqlite_url), book.orders("cut", url=sqlite_url)
    cols = ["symbol", "side", "qty", "target_weight", "decided_at", "for_bar", "status", "reason"]
    pd.testing.assert_frame_equal(full[cols], cut[cols])
    assert (full["status"] == "filled").sum() > 0


def test_step_catches_up_and_refuses_gaps(sqlite_url, name, sample_fields):
    _make(sqlite_url, name)
    assert trading.step(name, "2018-11-30", fields=sample_fields, url=sqlite_url)["sessions"] == 1
    assert trading.step(name, "2018-12-14", fields=sample_fields, url=sqlite_url)["sessions"] == 9  # 2018-12-05 was a closure
    assert trading.step(name, "2018-12-14", fields=sample_fields, url=sqlite_url)["sessions"] == 0
    with pytest.raises(LedgerError, match="must continue from 2018-12-17"):
        replay(name, "2018-12-20", "2018-12-31", fields=sample_fields, url=sqlite_url, progress=False)
    assert replay(name, "2018-11-30", "2018-12-31", fields=sample_fields, url=sqlite_url,
                  progress=False)["skipped"] == 10
    with pytest.raises(book.AccountError, match="starts at 2018-11-30"):
        replay(name, "2018-11-01", "2018-12-31", fields=sample_fields, url=sqlite_url, progress=False)


def test_replay_killed_and_resumed_equals_uninterrupted(tmp_path, sample_fields):
    start, end = "2018-10-01", "2018-12-31"
    ref_url = f"sqlite:///{tmp_path / 'ref.db'}"
    _make(ref_url, "kill")
    replay("kill", start, end, url=ref_url, progress=False)
    url = f"sqlite:///{tmp_path / 'killed.db'}"
    _make(url, "kill")
    worker = Path(__file__).with_name("replay_worker.py")
    proc = subprocess.Popen([sys.executable, str(worker), url, "kill", start, end], env=os.environ.copy())
    engine = connect(url)
    deadline = time.monotonic() + 240
    count = 0
    while time.monotonic() < deadline and proc.poll() is None:
        with engine.connect() as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(book.sessions_t)).scalar()
        if count >= 15:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the replay finished before it could be killed"
    assert 15 <= len(book.sessions("kill", url=url)) < 63
    assert book.check("kill", url=url) == []
    replay("kill", start, end, url=url, progress=False)
    for a, b in zip(_ledger(ref_url, "kill"), _ledger(url, "kill"), strict=True):
        pd.testing.assert_frame_equal(a, b)


def test_perturbed_fills_raise_a_drift_alert(sqlite_url, name, sample_fields):
    _make(sqlite_url, name, "rsi_reversion")
    replay(name, "2018-06-01", "2018-12-31", fields=sample_fields, url=sqlite_url, progress=False)
    assert drift_alerts(name, fields=sample_fields, url=sqlite_url) == []
    with connect(sqlite_url).begin() as conn:
        conn.execute(book.fills_t.update().where(book.fills_t.c.account == name, book.fills_t.c.side == "buy")
                     .values(price=book.fills_t.c.price * 1.03))
    alerts = drift_alerts(name, fields=sample_fields, url=sqlite_url, window=10, band=0.01)
    assert alerts and alerts[0]["kind"] == "paper_drift" and alerts[0]["tracking_error"] > 0.01
    assert alerts[0]["id"] == f"paper-drift:{name}:{alerts[0]['as_of'][:16]}"
    causes = set(reconcile(name, fields=sample_fields, url=sqlite_url).trades["cause"])
    assert "fill price" in causes
