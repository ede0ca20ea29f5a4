"""The engine against an independent loop, golden numbers, metamorphic properties and edge cases."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from research.backtest import backtest, infer_periods_per_year
from research.data import load_prices
from research.data.sources.synthetic import synthetic_ohlcv
from research.strategies import Signals, ma_crossover, prediction_signals

FEES, SLIP = 0.001, 0.0005


@pytest.fixture(scope="module")
def goog() -> pd.DataFrame:
    return load_prices("GOOG")


@pytest.fixture(scope="module")
def spx() -> pd.DataFrame:
    return load_prices("SPX")


def simple_loop(o, c, direction, *, fees, slip, cash0):
    """Independent reference: long-only, all-in, decision at close t fills at the open of t+1."""
    cash, shares, equity, trades, entry = cash0, 0.0, [], [], None
    for t in range(len(c)):
        want = direction[t - 1] if t > 0 else 0.0
        px = o[t]
        if np.isfinite(px) and px > 0:
            if want == 1 and shares == 0:
                shares = cash / (px * (1 + slip) * (1 + fees))
                cash, entry = 0.0, t
            elif want != 1 and shares > 0:
                cash = shares * px * (1 - slip) * (1 - fees)
                shares = 0.0
                trades.append((entry, t))
        equity.append(cash + shares * c[t])
    if shares > 0:
        trades.append((entry, -1))
    return np.array(equity), trades


@pytest.mark.parametrize(("fixture", "fast", "slow"), [("goog", 10, 50), ("goog", 5, 25), ("spx", 20, 100), ("spx", 2, 5)])
def test_engine_matches_an_independent_loop(request, fixture, fast, slow):
    df = request.getfixturevalue(fixture)
    res = backtest(df, "ma_crossover", params={"fast": fast, "slow": slow}, fees=FEES, slippage=SLIP, init_cash=10_000.0)
    d = ma_crossover(df["close"], fast=fast, slow=slow).direction.iloc[:, 0].to_numpy()
    eq, trades = simple_loop(df["open"].to_numpy(), df["close"].to_numpy(), d, fees=FEES, slip=SLIP, cash0=10_000.0)
    np.testing.assert_allclose(res.equity.iloc[:, 0].to_numpy(), eq, rtol=1e-9, atol=0)
    idx = df.index
    got = [(idx.get_loc(a), -1 if pd.isna(b) else idx.get_loc(b)) for a, b in zip(res.trades["entry_time"], res.trades["exit_time"], strict=True)]
    assert got == trades
    assert res.timing == "next_open" and res.params["fees"] == FEES


def test_golden_numbers_by_hand():
    idx = pd.date_range("2020-01-01", periods=6, freq="B", tz="UTC", name="timestamp")
    px = pd.DataFrame({"open": [10.0, 10, 11, 12, 13, 12], "high": [10.0, 10, 11, 12, 13, 12],
                       "low": [10.0, 10, 11, 12, 13, 12], "close": [10.0, 10.5, 11.5, 12.5, 12.5, 12]}, index=idx)
    px.attrs["symbol"] = "X"
    sig = Signals(pd.DataFrame({"X": [0.0, 1, 1, 0, 0, 0]}, index=idx))
    res = backtest(px, sig, fees=0.01, init_cash=1000.0)
    shares = 1000 / (11 * 1.01)  # bought at the open of bar 2, sold at the open of bar 4
    np.testing.assert_allclose(res.equity["X"].to_numpy(),
                               [1000, 1000, shares * 11.5, shares * 12.5, shares * 13 * 0.99, shares * 13 * 0.99], rtol=1e-12)
    assert res.equity["X"].iloc[-1] == pytest.approx(1158.4158415841584, rel=1e-12)
    assert res.trades[["entry_price", "exit_price"]].iloc[0].tolist() == [11.0, 13.0]
    assert res.orders["side"].tolist() == ["buy", "sell"]
    assert res.summary()["# Trades"] == 1


def test_golden_numbers_on_goog(goog):
    res = backtest(goog, "ma_crossover", params={"fast": 10, "slow": 50}, fees=FEES, slippage=SLIP, init_cash=10_000.0)
    s = res.summary()
    assert len(res.trades) == 20 and s["# Trades"] == 20
    assert res.equity["GOOG"].iloc[-1] == pytest.approx(35552.140909618757, rel=1e-10)
    assert s["Total Return [%]"] == pytest.approx(255.52140909618757, rel=1e-10)
    assert s["Sharpe Ratio"] == pytest.approx(0.7967, abs=1e-4)
    assert s["Max. Drawdown [%]"] == pytest.approx(-29.2553, abs=1e-4)


def test_scaling_prices_leaves_returns_unchanged(goog):
    a = backtest(goog, "ma_crossover", params={"fast": 10, "slow": 50}, fees=FEES, slippage=SLIP)
    scaled = goog.copy()
    scaled[["open", "high", "low", "close"]] *= 2.5
    b = backtest(scaled, "ma_crossover", params={"fast": 10, "slow": 50}, fees=FEES, slippage=SLIP)
    np.testing.assert_allclose(a.returns.to_numpy(), b.returns.to_numpy(), rtol=1e-9, atol=1e-12)
    c = backtest(scaled, "rsi_reversion", fees=FEES)
    d = backtest(goog, "rsi_reversion", fees=FEES)
    np.testing.assert_allclose(c.returns.to_numpy(), d.returns.to_numpy(), rtol=1e-9, atol=1e-12)


def test_an_all_nan_asset_is_excluded_and_changes_nothing(goog, spx):
    both = load_prices(["GOOG", "SPX"], start="2005-01-01", end="2012-12-31")
    base = backtest(both, "ma_crossover", params={"fast": 10, "slow": 40}, fees=FEES)
    extra = both.copy()
    for f in both.columns.get_level_values(0).unique():
        extra[(f, "EMPTY")] = np.nan
    with pytest.warns(UserWarning, match="EMPTY: no valid prices"):
        res = backtest(extra, "ma_crossover", params={"fast": 10, "slow": 40}, fees=FEES)
    assert res.excluded == ["EMPTY"] and "EMPTY" not in res.equity.columns
    pd.testing.assert_frame_equal(res.equity, base.equity)
    assert not res.stats.isna().all(axis=1).any()


def test_lagging_signals_kills_a_leak_and_barely_moves_an_honest_strategy(goog):
    o, c = goog["open"], goog["close"]
    leak = Signals(pd.DataFrame({"GOOG": np.where((c.shift(-1) > o.shift(-1)).to_numpy(), 1.0, 0.0)}, index=goog.index))
    peek = backtest(goog, leak).summary()["Sharpe Ratio"]
    lagged = backtest(goog, Signals(leak.direction.shift(1).fillna(0.0))).summary()["Sharpe Ratio"]
    assert peek > 5 and abs(lagged) < 1.5
    honest = ma_crossover(c, fast=20, slow=100)
    s0 = backtest(goog, honest, fees=FEES).summary()["Sharpe Ratio"]
    s1 = backtest(goog, Signals(honest.direction.shift(1).fillna(0.0)), fees=FEES).summary()["Sharpe Ratio"]
    assert abs(s1 - s0) < 0.3


def test_inputs_are_not_mutated(goog):
    before = goog.copy()
    attrs = dict(goog.attrs)
    sig = ma_crossover(goog["close"], fast=10, slow=50)
    sig_before = sig.direction.copy()
    backtest(goog, sig, fees=FEES, risk={"stop_loss": 0.05}, sizing="vol_target")
    pd.testing.assert_frame_equal(goog, before)
    pd.testing.assert_frame_equal(sig.direction, sig_before)
    assert goog.attrs == attrs


def test_missing_and_zero_open_defer_the_fill(goog):
    d = ma_crossover(goog["close"], fast=10, slow=50).direction.iloc[:, 0]
    entry_bar = int(np.flatnonzero(d.diff().to_numpy() == 1)[0]) + 1  # fill bar of the first entry
    broken = goog.copy()
    broken.iloc[entry_bar, broken.columns.get_loc("open")] = np.nan
    broken.iloc[entry_bar + 1, broken.columns.get_loc("open")] = 0.0
    res = backtest(broken, "ma_crossover", params={"fast": 10, "slow": 50}, fees=FEES)
    assert res.orders["timestamp"].iloc[0] == goog.index[entry_bar + 2]
    eq, _ = simple_loop(broken["open"].to_numpy(), broken["close"].to_numpy(), d.to_numpy(), fees=FEES, slip=0.0, cash0=100_000.0)
    np.testing.assert_allclose(res.equity["GOOG"].to_numpy(), eq, rtol=1e-9)
    assert np.isfinite(res.equity.to_numpy()).all()


def test_shared_cash_splits_the_book(goog, spx):
    both = load_prices(["GOOG", "SPX"], start="2005-01-01", end="2012-12-31")
    res = backtest(both, "ma_crossover", params={"fast": 10, "slow": 40}, shared_cash=True, fees=FEES)
    assert list(res.equity.columns) == ["portfolio"]
    assert res.weights.sum(axis=1).max() <= 1.0 + 1e-9
    assert (res.weights.max(axis=1) > 0.9).any() and ((res.weights > 0.3).all(axis=1)).any()
    close = both["close"].ffill()
    value = res.positions["cash"] + (res.positions[["GOOG", "SPX"]] * close).sum(axis=1)
    np.testing.assert_allclose(res.equity["portfolio"].to_numpy(), value.to_numpy(), rtol=1e-9)
    assert set(res.orders["reason"]) <= {"signal", "rebalance"}


def test_stops_fill_at_their_levels(goog):
    res = backtest(goog, "ma_crossover", params={"fast": 10, "slow": 50}, slippage=SLIP, risk={"stop_loss": 0.04})
    stops = res.orders[res.orders["reason"] == "stop_loss"]
    assert len(stops) >= 3
    buys = res.orders[res.orders["side"] == "buy"].set_index("timestamp")
    for _, row in stops.iterrows():
        entry_open = goog["open"].loc[buys.index[buys.index < row["timestamp"]][-1]]
        bar_open = goog["open"].loc[row["timestamp"]]
        level = min(entry_open * 0.96, bar_open)
        assert row["price"] == pytest.approx(level * (1 - SLIP), rel=1e-12)
    assert (res.trades["exit_reason"] == "stop_loss").sum() == len(stops)


def test_max_drawdown_halt(spx):
    res = backtest(spx, "ma_crossover", params={"fast": 5, "slow": 20}, fees=FEES, risk={"max_drawdown": 0.15})
    halts = res.orders[res.orders["reason"] == "halt"]
    assert len(halts) <= 1
    last = res.orders["timestamp"].max()
    eq = res.equity["SPX"]
    peak = np.maximum(eq.cummax(), 100_000.0)
    first_breach = eq.index[np.argmax((eq / peak - 1 <= -0.15).to_numpy())]
    assert last <= eq.index[eq.index.get_loc(first_breach) + 1]
    assert res.positions["SPX"].iloc[-1] == 0
    assert res.summary()["Max. Drawdown [%]"] > -25


def test_timings_are_opt_in_and_recorded(goog):
    nc = backtest(goog, "ma_crossover", params={"fast": 10, "slow": 50}, timing="next_close")
    first = nc.orders.iloc[0]
    assert first["price"] == goog["close"].loc[first["timestamp"]] and nc.params["timing"] == "next_close"
    with pytest.warns(UserWarning, match="same_close"):
        sc = backtest(goog, "ma_crossover", params={"fast": 10, "slow": 50}, timing="same_close")
    d = ma_crossover(goog["close"], fast=10, slow=50).direction.iloc[:, 0]
    assert sc.orders["timestamp"].iloc[0] == d.index[np.argmax(d.to_numpy() == 1)]
    with pytest.raises(ValueError, match="needs 'open' prices"):
        backtest(goog["close"].rename("GOOG"), "ma_crossover")
    with pytest.raises(ValueError, match="timing must be one of"):
        backtest(goog, "ma_crossover", timing="tomorrow")


def test_sizing_and_prediction_strategy(goog):
    half = backtest(goog, "ma_crossover", params={"fast": 10, "slow": 50}, sizing="fixed_fraction",
                    sizing_params={"fraction": 0.5})
    held = half.weights["GOOG"][half.positions["GOOG"] > 0]
    entries = half.orders[half.orders["side"] == "buy"]["timestamp"]
    assert held.loc[entries].sub(0.5).abs().max() < 0.05
    preds = goog["close"].pct_change().shift(-1).iloc[1000:1500] * 0 + 0.01  # always bullish, bars 1000-1499 only
    res = backtest(goog, prediction_signals(preds.rename("GOOG"), long_threshold=0.0))
    assert res.orders["timestamp"].iloc[0] == goog.index[1001]
    assert res.orders["timestamp"].iloc[-1] == goog.index[1501]  # flat again from the close of bar 1500


def test_periods_per_year_come_from_the_calendar(goog):
    assert infer_periods_per_year(goog.index) == 252
    btc = synthetic_ohlcv("BTC-USD", bars=400)
    assert infer_periods_per_year(btc.index) == 365
    monthly = load_prices("BTC-USD", interval="1mo")
    assert infer_periods_per_year(monthly.index) == 12
    res = backtest(btc, "ma_crossover", params={"fast": 5, "slow": 20})
    assert res.params["periods_per_year"] == 365 and res.stats.attrs["periods_per_year"] == 365


def test_start_trades_from_a_date_with_warm_up(goog):
    full = backtest(goog, "ma_crossover", params={"fast": 10, "slow": 50})
    late = backtest(goog, "ma_crossover", params={"fast": 10, "slow": 50}, start="2010-01-01")
    assert late.equity.index[0] >= pd.Timestamp("2010-01-01", tz="UTC")
    assert late.orders["timestamp"].min() >= late.equity.index[0]
    later_trades = full.trades[full.trades["entry_time"] >= late.equity.index[1]]
    assert set(later_trades["entry_time"]) <= set(late.trades["entry_time"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="holds 0 bars"):
            backtest(goog, "ma_crossover", start="2030-01-01")


def test_shared_book_rebalances_monthly_to_target_weights():
    both = load_prices(["GOOG", "SPX"], start="2006-01-01", end="2008-12-31")
    hold = Signals(pd.DataFrame(1.0, index=both.index, columns=["GOOG", "SPX"]))
    drift = backtest(both, hold, shared_cash=True)
    monthly = backtest(both, hold, shared_cash=True, rebalance="monthly", benchmark="hold")
    assert len(drift.orders) == 2  # bought once, never traded back to target
    months = both.index.tz_convert(None).to_period("M")
    first_days = both.index[np.r_[True, months[1:] != months[:-1]]]
    # the first fill is the open after the first close; then every month's first bar
    assert set(monthly.orders["timestamp"]) == {both.index[1], *first_days[1:]}
    at_rebalance = monthly.weights.loc[first_days[1:]]
    assert (at_rebalance - 0.5).abs().max().max() < 0.05
    assert (drift.weights.iloc[2:] - 0.5).abs().max().max() > 0.05  # drifted away in between
    beta = monthly.summary()["Beta"]
    assert np.isfinite(beta) and 0.8 < beta < 1.2  # an equal-weight book against equal-weight buy and hold
