"""Today's signals and alerts: planted conditions fire, nothing after the as-of date is used."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from research.alerts.rules import ALERT_COLUMNS, AlertRules
from research.data.sources.synthetic import synthetic_ohlcv
from research.stages.todays_signals import (
    SIGNAL_COLUMNS,
    market_alerts,
    prediction_signal_rows,
    todays_signals,
)


def _prices(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    out = pd.concat(frames, axis=1, names=["symbol", "field"]).swaplevel(axis=1).sort_index(axis=1)
    return out


@pytest.fixture(scope="module")
def bars() -> dict[str, pd.DataFrame]:
    return {s: synthetic_ohlcv(s, bars=600, seed=7) for s in ("AAA", "BBB")}


def test_signal_table_shape_and_values(bars):
    prices = _prices(bars)
    as_of = prices.index[-1]
    table = todays_signals(prices, as_of=as_of)
    assert list(table.columns) == SIGNAL_COLUMNS
    assert len(table) == 2 * 3 and set(table["signal"]) <= {-1.0, 0.0, 1.0}
    assert (table["bar_time"] == as_of).all() and not table["stale"].any()
    # a flat signal has no position; a long one a positive weight no larger than the sizer's cap
    assert (table.loc[table["signal"] == 0, "target_position"] == 0).all()
    assert table.loc[table["signal"] > 0, "target_position"].between(0, 1).all()
    assert (table["changed"] == (table["signal"] != table["previous_signal"])).all()


def test_signals_ignore_bars_after_the_as_of_date(bars):
    prices = _prices(bars)
    as_of = prices.index[450]
    base = todays_signals(prices, as_of=as_of)
    tampered = prices.copy()
    tampered.iloc[451:] = tampered.iloc[451:] * 3.0
    pd.testing.assert_frame_equal(base, todays_signals(tampered, as_of=as_of))
    pd.testing.assert_frame_equal(market_alerts(prices, as_of=as_of), market_alerts(tampered, as_of=as_of))
    assert (base["bar_time"] == as_of).all()


def test_planted_conditions_fire(bars):
    frames = {s: f.copy() for s, f in bars.items()}
    a = frames["AAA"]
    a.iloc[-1, a.columns.get_loc("close")] = a["close"].iloc[-2] * 0.70  # a -30% day: price move, drawdown
    a.iloc[-1, a.columns.get_loc("low")] = a["close"].iloc[-1] * 0.99
    a.iloc[-1, a.columns.get_loc("volume")] = a["volume"].iloc[-40:-1].mean() * 50  # a volume spike
    b = frames["BBB"].iloc[:-10]  # BBB stopped updating ten bars ago
    frames["BBB"] = b
    prices = _prices(frames)
    alerts = market_alerts(prices, as_of=prices.index[-1])
    assert list(alerts.columns) == ALERT_COLUMNS
    kinds = {(r.symbol, r.kind, r.severity) for r in alerts.itertuples()}
    assert ("AAA", "price", "warning") in kinds
    assert ("AAA", "volume", "warning") in kinds
    assert ("AAA", "drawdown", "critical") in kinds
    assert ("BBB", "data", "warning") in kinds
    sig = todays_signals(prices, as_of=prices.index[-1])
    assert sig.loc[sig["symbol"] == "BBB", "stale"].all() and not sig.loc[sig["symbol"] == "AAA", "stale"].any()


def _daily(symbol: str, start: str, end: str, *, freq: str = "B") -> pd.DataFrame:
    idx = pd.date_range(start, end, freq=freq, tz="UTC", name="timestamp")
    close = pd.Series(100 * np.exp(np.linspace(0, 0.3, len(idx))) * (1 + 0.01 * np.sin(np.arange(len(idx)))), index=idx)
    return pd.DataFrame({"open": close, "high": close * 1.01, "low": close * 0.99, "close": close,
                         "volume": 1e6 + np.arange(len(idx)) % 7})


def test_a_symbol_whose_data_ended_years_ago_is_stale_and_gets_no_target_position():
    frames = {"MSFT": _daily("MSFT", "2016-01-01", "2018-12-31"), "GOOG": _daily("GOOG", "2010-01-01", "2013-03-01")}
    sig = todays_signals(_prices(frames), as_of="2018-12-31")
    goog, msft = sig[sig["symbol"] == "GOOG"], sig[sig["symbol"] == "MSFT"]
    assert goog["stale"].all() and (goog["target_position"] == 0).all()
    assert not msft["stale"].any()
    alerts = market_alerts(_prices(frames), as_of="2018-12-31")
    assert set(alerts.loc[alerts["kind"] == "data", "symbol"]) == {"GOOG"}


def test_staleness_counts_the_sessions_of_the_symbols_calendar():
    # equity bars up to Friday 2018-12-21: by Wednesday 12-26 two sessions were missed (24 and 26;
    # the weekend and Christmas are no sessions), by Thursday three
    equity = {"SPX": _daily("SPX", "2018-01-01", "2018-12-21")}
    assert not todays_signals(_prices(equity), as_of="2018-12-26", stale_bars=2)["stale"].any()
    assert todays_signals(_prices(equity), as_of="2018-12-27", stale_bars=2)["stale"].all()
    # crypto trades every day: by 12-24 three bars were missed
    crypto = {"BTC-USD": _daily("BTC-USD", "2018-01-01", "2018-12-21", freq="D")}
    assert not todays_signals(_prices(crypto), as_of="2018-12-23", stale_bars=2)["stale"].any()
    assert todays_signals(_prices(crypto), as_of="2018-12-24", stale_bars=2)["stale"].all()


def test_quiet_market_raises_no_price_alerts():
    idx = pd.date_range("2020-01-01", periods=300, freq="D", tz="UTC", name="timestamp")
    close = pd.Series(100 * np.exp(np.linspace(0, 0.05, 300)) * (1 + 0.001 * np.sin(np.arange(300))), index=idx)
    frame = pd.DataFrame({"open": close, "high": close * 1.001, "low": close * 0.999, "close": close, "volume": 1e6 + np.arange(300) % 7})
    alerts = market_alerts(_prices({"Q-USD": frame}), as_of=idx[-1], rules=AlertRules(high_low_window=1000))
    assert not set(alerts["kind"]) & {"price", "volume", "drawdown", "data"}


def test_prediction_rows_follow_the_forecast(bars):
    prices = _prices(bars)
    t = prices.index[-1]
    fc = pd.DataFrame({"timestamp": [t, t], "symbol": ["AAA", "BBB"], "model": "lstm", "predicted": [0.01, -0.02]})
    rows = prediction_signal_rows(prices, fc, as_of=t)
    assert dict(zip(rows["symbol"], rows["signal"], strict=True)) == {"AAA": 1.0, "BBB": 0.0}
    rows = prediction_signal_rows(prices, fc, as_of=t, short_threshold=-0.01)
    assert dict(zip(rows["symbol"], rows["signal"], strict=True)) == {"AAA": 1.0, "BBB": -1.0}
