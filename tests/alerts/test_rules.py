"""Alert rules on one symbol's bars and on strategy equity curves."""

from __future__ import annotations

import pandas as pd
import pytest

from research.alerts.rules import ALERT_COLUMNS, AlertRules, strategy_drawdown_alerts, symbol_alerts


def test_strategy_drawdown_alerts():
    idx = pd.date_range("2020-01-01", periods=5, freq="D", tz="UTC")
    equity = pd.DataFrame({"ma_crossover|AAA": [100, 120, 110, 100, 95.0], "rsi_reversion|AAA": [100, 101, 102, 103, 104.0]}, index=idx)
    alerts = strategy_drawdown_alerts(equity, as_of="2020-01-05", threshold=0.15)
    assert len(alerts) == 1 and alerts["value"].iloc[0] == pytest.approx(95 / 120 - 1)
    assert "ma_crossover on AAA" in alerts["message"].iloc[0]


def test_a_symbol_s_rules_judge_its_last_bar():
    idx = pd.bdate_range("2020-01-01", periods=300, tz="UTC")
    close = pd.Series(100.0, index=idx).add(pd.Series(range(300), index=idx) * 0.01)
    close.iloc[-1] = close.iloc[-2] * 0.7  # a 30% fall on the last bar
    bars = {"close": close.to_frame("AAA")}
    rows: list[dict] = []
    symbol_alerts(rows, "AAA", bars, AlertRules(), "2021-02-23")
    frame = pd.DataFrame(rows, columns=ALERT_COLUMNS)
    assert {"price", "drawdown"} <= set(frame["kind"])
    assert (frame.loc[frame["kind"] == "drawdown", "severity"] == "critical").all()
    assert (frame["bar_time"] == idx[-1]).all()
    quiet: list[dict] = []
    symbol_alerts(quiet, "AAA", {"close": close.iloc[:-1].to_frame("AAA")}, AlertRules(), "2021-02-22")
    assert any(r["kind"] == "price" and "252-bar high" in r["message"] for r in quiet)  # still rising
    assert "drawdown" not in {r["kind"] for r in quiet}
