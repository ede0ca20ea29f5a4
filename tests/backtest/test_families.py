"""Fused family sweeps equal the engine for every family, with stops, costs, whole shares and
both directions; agree with vectorbt where the conventions match; chunk, cache and slice."""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from research.backtest import backtest
from research.backtest.family_sweep import sweep_family
from research.backtest.sweep import STATS, sweep
from research.data import load_prices
from research.data.sources.synthetic import synthetic_ohlcv

RISK = ("stop_loss", "take_profit", "trailing_stop", "drawdown_halt")


@lru_cache(maxsize=16)
def _prices(seed: int, kind: str) -> pd.DataFrame:
    """Synthetic bars: plain, rounded to cents in a narrow range (ties), or with missing bars."""
    df = synthetic_ohlcv(f"P{seed}", bars=320, seed=seed)
    if kind == "ticks":  # few distinct prices: equal averages, flat RSI windows, zero-width bands
        df = (df / 4).round(0) * 4
        df["high"] = df[["open", "high", "close"]].max(axis=1)
        df["low"] = df[["open", "low", "close"]].min(axis=1)
    elif kind == "gaps":
        df = df.copy()
        df.iloc[40:300:17, df.columns.get_loc("open")] = np.nan
        df.iloc[61:300:29, df.columns.get_loc("close")] = np.nan
        df.iloc[90:95, df.columns.get_loc("high")] = np.nan
    df.attrs["symbol"] = f"P{seed}"
    return df


def _params(family: str, draw) -> dict:
    if family == "ma_crossover":
        fast = draw(st.integers(1, 30))
        return {"fast": fast, "slow": draw(st.integers(fast + 1, 60))}
    if family == "rsi_reversion":
        lower = draw(st.sampled_from([10.0, 25.0, 30.0, 40.0, 50.0]))
        exit_level = draw(st.sampled_from([v for v in (45.0, 50.0, 55.0, 60.0) if v >= lower]))
        upper = draw(st.sampled_from([v for v in (60.0, 70.0, 80.0) if v >= exit_level]))
        return {"window": draw(st.integers(2, 30)), "lower": lower, "exit_level": exit_level, "upper": upper}
    if family == "bollinger_breakout":
        return {"window": draw(st.integers(2, 40)), "k": draw(st.sampled_from([0.5, 1.0, 1.5, 2.0, 2.5]))}
    if family == "candlestick":
        return {"bullish": draw(st.sampled_from(["engulfing", "hammer", "doji", "engulfing+hammer+morning_star"])),
                "bearish": draw(st.sampled_from(["engulfing", "shooting_star", "evening_star+doji", ""])),
                "hold": draw(st.integers(0, 8))}
    return {"lookback": draw(st.integers(1, 120)), "threshold": draw(st.sampled_from([0.0, 0.01, 0.03, 0.1]))}


def _assert_equal_to_engine(df, family, params, risk, *, fees, slippage, whole, timing="next_open"):
    grid = {k: [v] for k, v in {**params, **risk}.items()}
    rules = {("max_drawdown" if k == "drawdown_halt" else k): v for k, v in risk.items() if v}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            s = backtest(df, family, params=params, risk=rules, fees=fees, slippage=slippage, whole_shares=whole,
                         timing=timing).summary()
        except ValueError as exc:  # a set the strategy refuses is refused by the fused sweep too
            with pytest.raises(ValueError, match="no valid parameter set"):
                sweep_family(df, family, grid, fees=fees, slippage=slippage)
            assert str(exc).split(";")[0][:40] in _refusal_text(df, family, grid)
            return
        res = sweep_family(df, family, grid, fees=fees, slippage=slippage, whole_shares=whole, timing=timing)
    row = res.table.iloc[0]
    total = s["Total Return [%]"] / 100
    where = f"{family} {params} {risk} fees={fees} slippage={slippage} whole={whole}"
    assert row["trades"] == s["# Trades"], where
    assert abs(row["total_return"] - total) <= 1e-12 * max(1.0, abs(total)), where
    for name, key, scale, tol in (("sharpe", "Sharpe Ratio", 1, 1e-9), ("max_drawdown", "Max. Drawdown [%]", 100, 1e-9),
                                  ("exposure", "Exposure Time [%]", 100, 1e-12), ("win_rate", "Win Rate [%]", 100, 1e-12)):
        want = s[key] / scale
        assert (np.isnan(row[name]) and np.isnan(want)) or row[name] == pytest.approx(want, rel=tol, abs=tol), \
            (where, name, row[name], want)


def _refusal_text(df, family, grid) -> str:
    try:
        sweep_family(df, family, grid)
    except ValueError as exc:
        return str(exc)
    return ""


@settings(max_examples=60)  # about 0.1 s per example: one fused set and one engine backtest
@given(data=st.data(), family=st.sampled_from(["ma_crossover", "rsi_reversion", "bollinger_breakout",
                                               "time_series_momentum", "candlestick"]),
       seed=st.integers(0, 3), kind=st.sampled_from(["plain", "ticks", "gaps"]),
       costs=st.sampled_from([(0.0, 0.0), (0.001, 0.0005), (0.003, 0.0), (0.0, 0.002)]),
       whole=st.booleans(), direction=st.sampled_from(["long", "both", "short"]))
@example(data=None, family="rsi_reversion", seed=0, kind="plain", costs=(0.001, 0.0005), whole=False,
         direction="both")
def test_fused_family_equals_the_engine(data, family, seed, kind, costs, whole, direction):
    """For every family, parameter set, cost, share rule, direction and stop levels: the engine's numbers."""
    if data is None:  # the explicit example: fixed parameters and all four risk rules
        params = {"window": 14, "lower": 30.0, "exit_level": 50.0, "upper": 70.0}
        risk = {"stop_loss": 0.03, "take_profit": 0.05, "trailing_stop": 0.04, "drawdown_halt": 0.15}
    else:
        params = _params(family, data.draw)
        risk = {name: data.draw(st.sampled_from([0.0, 0.0, 0.02, 0.05, 0.1]), label=name) for name in RISK}
    params["direction"] = direction
    _assert_equal_to_engine(_prices(seed, kind), family, params, risk, fees=costs[0], slippage=costs[1], whole=whole)


@pytest.mark.parametrize("family", ["rsi_reversion", "bollinger_breakout", "time_series_momentum", "ma_crossover"])
def test_fused_family_equals_the_engine_on_goog(family):
    """Sample sets of each family's fused grid on the bundled GOOG bars (next open and next close fills)."""
    df = load_prices("GOOG")
    grids = {
        "rsi_reversion": {"window": [5, 14, 30], "lower": [20.0, 30.0], "direction": ["long", "both"]},
        "bollinger_breakout": {"window": [10, 20], "k": [1.0, 2.0], "direction": ["long", "both"]},
        "time_series_momentum": {"lookback": [21, 126], "threshold": [0.0, 0.05], "direction": ["long", "both"]},
        "ma_crossover": {"fast": [5, 20], "slow": [50], "direction": ["long", "both"]},
    }
    grid = {**grids[family], "stop_loss": [0.0, 0.05], "trailing_stop": [0.0, 0.1]}
    res = sweep(df, family, grid, fees=0.001, slippage=0.0005)
    assert res.params["engine"] == "fused" and len(res.table) == np.prod([len(v) for v in grid.values()])
    rng = np.random.default_rng(1)
    for i in rng.choice(len(res.table), 4, replace=False):
        row = res.table.iloc[i]
        params = {k: row[k] for k in grids[family]}
        risk = {k: float(row[k]) for k in ("stop_loss", "trailing_stop")}
        for timing in ("next_open", "next_close"):
            _assert_equal_to_engine(df, family, params, risk, fees=0.001, slippage=0.0005, whole=False, timing=timing)


def test_signal_exit_and_stop_on_one_bar_exit_at_the_open():
    """A bar whose open follows a signal exit and whose range reaches the stop: the fill is the open."""
    idx = pd.date_range("2024-01-01", periods=8, freq="D", tz="UTC")
    o = np.array([100, 100, 100, 100, 101, 99, 99, 99], dtype=float)
    df = pd.DataFrame({"open": o, "high": o + 1, "low": o - 1, "close": o, "volume": 1.0}, index=idx)
    df.iloc[5, df.columns.get_loc("low")] = 80.0  # the stop level (95) is inside bar 5's range
    sig = pd.DataFrame({"P": [0, 0, 1, 1, 0, 0, 0, 0]}, index=idx, dtype=float)  # exit decided at bar 4's close
    from research.strategies.signals import Signals

    res = backtest(df, Signals(sig), risk={"stop_loss": 0.05})
    assert res.trades["exit_price"].iloc[0] == 99.0 and res.trades["exit_reason"].iloc[0] == "signal"
    from research.backtest.kernels import STATS, prepare_nb
    from research.backtest.simulate import simulate_nb

    c = df["close"].to_numpy()
    ff, rc = prepare_nb(c)
    stats = np.empty(len(STATS))
    simulate_nb(sig["P"].to_numpy().astype(np.int8), o, o, df["high"].to_numpy(), df["low"].to_numpy(), c, ff, rc, 0,
                8, 0.0, 0.0, 100_000.0, 252.0, False, np.array([0.05, 0.0, 0.0, 0.0]), True, stats, np.empty(0))
    assert stats[STATS.index("final_value")] == pytest.approx(100_000.0 * 99 / 100, rel=1e-15)  # out at the open
    assert stats[STATS.index("total_return")] == pytest.approx(res.summary()["Total Return [%]"] / 100, rel=1e-12)


def _vectorbt_from_signals(df, sig, *, fees, slippage, short):
    import vectorbt as vbt

    cols = sig.direction.columns
    shift = lambda x: x.shift(1, fill_value=False).astype(bool)  # noqa: E731 - decided at t, filled at t+1
    kw = {"short_entries": shift(sig.short_entries), "short_exits": shift(sig.short_exits)} if short else {}
    return vbt.Portfolio.from_signals(df[["close"]].set_axis(cols, axis=1), shift(sig.entries), shift(sig.exits),
                                      price=df[["open"]].set_axis(cols, axis=1), fees=fees, slippage=slippage,
                                      init_cash=100_000.0, **kw)


@pytest.mark.parametrize("family,params", [
    ("rsi_reversion", {"window": 14, "lower": 30.0}),
    ("bollinger_breakout", {"window": 20, "k": 1.5}),
    ("time_series_momentum", {"lookback": 63, "threshold": 0.02}),
    ("ma_crossover", {"fast": 10, "slow": 40}),
])
def test_fused_family_agrees_with_vectorbt_where_conventions_match(family, params):
    """Long-only with costs, and long-short without costs: vectorbt's trades and total return.

    With costs an all-in short differs: the workbench sells ``value / fill price`` shares (a
    target of -100% of the book valued at the unslipped price), vectorbt's ``from_signals``
    sells ``cash / (price * (1 + slippage) * (1 + fees))``; only the trade count agrees.
    """
    from research.strategies.catalog import get_strategy

    df = load_prices("GOOG")
    frame = df[["close"]].set_axis(["GOOG"], axis=1)
    for direction, fees, slip, same in (("long", 0.001, 0.0005, True), ("both", 0.0, 0.0, True),
                                        ("both", 0.001, 0.0005, False)):
        sig = get_strategy(family).run({"close": frame}, **params, direction=direction)
        pf = _vectorbt_from_signals(df, sig, fees=fees, slippage=slip, short=direction == "both")
        grid = {k: [v] for k, v in {**params, "direction": direction}.items()}
        row = sweep_family(df, family, grid, fees=fees, slippage=slip).table.iloc[0]
        assert row["trades"] == len(pf.trades.records), (family, direction)
        total = float(pf.total_return().iloc[0])
        if same:
            assert row["total_return"] == pytest.approx(total, rel=1e-12, abs=1e-13), (family, direction)
        else:
            assert row["total_return"] != pytest.approx(total, rel=1e-9)


def test_grid_validation_and_refused_sets():
    df = load_prices("GOOG")
    with pytest.warns(UserWarning, match=r"1 of 4 parameter sets skipped \(e.g. \{'fast': 30, 'slow': 20\}"):
        res = sweep_family(df, "ma_crossover", {"fast": [5, 30], "slow": [20, 40]}, fees=0.001)
    assert len(res.table) == 3 and list(res.table.columns) == ["symbol", "fast", "slow", *STATS]
    with pytest.raises(ValueError, match="no parameter 'nope'"):
        sweep_family(df, "rsi_reversion", {"nope": [1]})
    with pytest.raises(ValueError, match="no valid parameter set"):
        sweep_family(df, "rsi_reversion", {"stop_loss": [1.5]})
    with pytest.raises(ValueError, match="fused families"):
        sweep_family(df, "prediction", {"long_threshold": [0.0]})


def test_trial_returns_reproduce_each_sets_statistics():
    df = load_prices("GOOG")
    res = sweep(df, "bollinger_breakout", {"window": [10, 20, 30], "k": [1.0, 2.0], "stop_loss": [0.0, 0.05]},
                fees=0.001)
    tr = res.trial_returns()
    assert tr.shape == (len(df), len(res.table)) and tr.columns.names == res.param_names
    for i in range(len(res.table)):
        r = tr.iloc[:, i]
        assert (1 + r).prod() - 1 == pytest.approx(res.table["total_return"].iloc[i], rel=1e-11, abs=1e-13)
        sharpe = res.table["sharpe"].iloc[i]
        if np.isfinite(sharpe):
            assert r.mean() / r.std(ddof=1) * np.sqrt(252) == pytest.approx(sharpe, rel=1e-9)


def test_many_symbols_in_blocks_equal_one_at_a_time(monkeypatch):
    from research.backtest import family_sweep

    frames = {f"S{i}": synthetic_ohlcv(f"S{i}", bars=400, seed=i) for i in range(5)}
    fields = {f: pd.DataFrame({s: d[f] for s, d in frames.items()}) for f in ("open", "high", "low", "close")}
    grid = {"window": [5, 10, 20], "lower": [25.0, 35.0], "take_profit": [0.0, 0.05]}
    whole = sweep_family(fields, "rsi_reversion", grid, fees=0.001)
    monkeypatch.setattr(family_sweep, "TABLE_BYTES", 1)  # one symbol per block
    pd.testing.assert_frame_equal(whole.table, sweep_family(fields, "rsi_reversion", grid, fees=0.001).table,
                                  check_exact=True)
    one = sweep_family({f: v[["S3"]] for f, v in fields.items()}, "rsi_reversion", grid, fees=0.001).table
    pd.testing.assert_frame_equal(whole.table[whole.table["symbol"] == "S3"].reset_index(drop=True), one,
                                  check_exact=True)


@settings(max_examples=40)
@given(seed=st.integers(0, 2**16), n=st.integers(0, 90), window=st.integers(2, 9), nan_share=st.sampled_from([0.0, 0.1, 0.6]),
       lower=st.sampled_from([10.0, 30.0, 45.0, 50.0]), exit_gap=st.sampled_from([0.0, 5.0, 20.0]),
       upper_gap=st.sampled_from([0.0, 10.0, 30.0]), side=st.sampled_from([1, 0, -1]))
@example(seed=0, n=64, window=2, nan_share=0.0, lower=50.0, exit_gap=0.0, upper_gap=0.0, side=0)  # all levels equal
def test_rsi_block_skipping_gives_the_bar_by_bar_states(seed, n, window, nan_share, lower, exit_gap, upper_gap, side):
    """The RSI rule that skips blocks of bars which cannot change the state gives the states of the bar-by-bar
    rule, whatever the levels, the side, gaps and series shorter than a block."""
    from research.backtest.families import (
        BLOCK,
        FAMILIES,
        block_bounds_nb,
        rsi_states_nb,
        states_nb,
    )

    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    close[rng.random(n) < nan_share] = np.nan
    tables = FAMILIES["rsi_reversion"].tables({"close": pd.DataFrame({"x": close})}, np.array([window]))
    tables = np.ascontiguousarray(np.stack(tables))
    bmin, bmax = block_bounds_nb(tables)
    assert bmin.shape == (1, 1, n // BLOCK)
    exit_level = min(100.0, lower + exit_gap)
    levels = np.array([lower, exit_level, min(100.0, exit_level + upper_gap)])
    want, got = np.empty(n, dtype=np.int8), np.empty(n, dtype=np.int8)
    states_nb(FAMILIES["rsi_reversion"].code, tables, 0, close, np.array([0, 0]), levels, side, want)
    rsi_states_nb(tables[0, 0], bmin[0, 0], bmax[0, 0], *levels, side >= 0, side <= 0, got)
    np.testing.assert_array_equal(got, want)


@settings(max_examples=60)
@given(seed=st.integers(0, 2**16), n=st.integers(0, 120), window=st.integers(2, 12),
       nan_share=st.sampled_from([0.0, 0.1, 0.6]), kind=st.sampled_from(["plain", "ticks", "level", "calm"]),
       k=st.sampled_from([1e-13, 1e-9, 0.05, 0.5, 1.0, 2.0, 3.5]), side=st.sampled_from([1, 0, -1]))
@example(seed=0, n=96, window=2, nan_share=0.0, kind="ticks", k=1.0, side=0)  # closes on the mean and on a band
@example(seed=1, n=96, window=4, nan_share=0.0, kind="calm", k=1e-9, side=0)  # bands narrower than the price's ulp
def test_bollinger_block_skipping_gives_the_bar_by_bar_states(seed, n, window, nan_share, kind, k, side):
    """The Bollinger rule that skips blocks where no bar can change the state gives the states of the bar-by-bar
    rule: prices on a few ticks (zero-width bands, closes exactly on the mean or a band), a price far above its
    noise (bands within a few units in the last place), gaps, tiny k, every side."""
    from research.backtest.families import (
        FAMILIES,
        bollinger_bounds_nb,
        bollinger_states_nb,
        states_nb,
    )

    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    if kind == "ticks":
        close = np.round(close / 4) * 4
    elif kind == "level":  # one window's closes equal: sd 0, then a step exactly one band away
        close = np.where(np.arange(n) % 7 < 4, 100.0, 102.0)
    elif kind == "calm":
        close = 1e8 + rng.normal(0, 1e-7, n)
    close[rng.random(n) < nan_share] = np.nan
    fam = FAMILIES["bollinger_breakout"]
    tables = np.ascontiguousarray(np.stack(fam.tables({"close": pd.DataFrame({"x": close})}, np.array([window]))))
    c = np.ascontiguousarray(close[None, :])
    zlo, zhi, gmax = bollinger_bounds_nb(tables, c)
    assert zlo.shape == zhi.shape == gmax.shape == (1, 1, n // 16)
    want, got = np.empty(n, dtype=np.int8), np.empty(n, dtype=np.int8)
    states_nb(fam.code, tables, 0, close, np.array([0, 1]), np.array([k, 0.0, 0.0]), side, want)
    bollinger_states_nb(close, tables[0, 0], tables[1, 0], zlo[0, 0], zhi[0, 0], gmax[0, 0], k, side >= 0, side <= 0,
                        got)
    np.testing.assert_array_equal(got, want)


@settings(max_examples=40)
@given(seed=st.integers(0, 2**16), scale=st.sampled_from([1e-3, 1.0, 150.0, 1e9]),
       spread=st.sampled_from([1e-13, 1e-9, 1e-4, 0.05]), k=st.sampled_from([1e-6, 0.5, 1.0, 2.0]),
       side=st.sampled_from([1, 0, -1]))
def test_bollinger_block_skipping_near_the_levels(seed, scale, spread, k, side):
    """Closes within a few units in the last place of a band or the mean (where %b and the standardised close can
    round to opposite sides of a level), over any price scale and band width: the block-skipping rule still gives
    the bar-by-bar states."""
    from research.backtest.families import (
        FAMILIES,
        bollinger_bounds_nb,
        bollinger_states_nb,
        states_nb,
    )

    rng = np.random.default_rng(seed)
    blocks = 64
    n = 16 * blocks
    mid = scale * np.exp(rng.normal(0, 0.1, n))
    sdev = mid * spread * np.exp(rng.normal(0, 0.5, n))
    # per block of 16 bars: all just one side of one level (-k: %b 0, 0: %b 0.5, k: %b 1), or anywhere (a change)
    level = np.repeat(rng.choice([-k, 0.0, k], blocks), 16)
    side_of = np.repeat(rng.choice([-1.0, 1.0], blocks), 16)
    gap = np.repeat(rng.choice([0.0, 1e-16, 1e-14, 1e-12, 1e-9, 1e-3], blocks), 16) * rng.random(n)
    z = level + side_of * gap * max(k, 1.0)
    anywhere = np.repeat(rng.random(blocks) < 0.25, 16)
    z[anywhere] = rng.normal(0, 2 * k, anywhere.sum())
    close = mid + z * sdev
    tables = np.ascontiguousarray(np.stack([mid, sdev])[:, None, :])
    zlo, zhi, gmax = bollinger_bounds_nb(tables, np.ascontiguousarray(close[None, :]))
    want, got = np.empty(n, dtype=np.int8), np.empty(n, dtype=np.int8)
    states_nb(FAMILIES["bollinger_breakout"].code, tables, 0, close, np.array([0, 1]), np.array([k, 0.0, 0.0]), side,
              want)
    bollinger_states_nb(close, mid, sdev, zlo[0, 0], zhi[0, 0], gmax[0, 0], k, side >= 0, side <= 0, got)
    np.testing.assert_array_equal(got, want)


@settings(max_examples=25)
@given(seed=st.integers(0, 2**16), n=st.integers(0, 60), nan_share=st.sampled_from([0.0, 0.1, 0.5]),
       windows=st.lists(st.integers(2, 30), min_size=1, max_size=4, unique=True), flat=st.booleans())
def test_bollinger_tables_equal_pandas_rolling(seed, n, nan_share, windows, flat):
    """The Bollinger family's mean and std tables are pandas' rolling(w, min_periods=w).mean() / .std(ddof=0),
    bit for bit (gaps, constant runs and series shorter than the window included)."""
    from research.backtest.families import FAMILIES

    rng = np.random.default_rng(seed)
    x = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, (n, 3)), axis=0))
    if flat:
        x[: n // 2, 1] = 100.0
    x[rng.random(x.shape) < nan_share] = np.nan
    close = pd.DataFrame(x, columns=["A", "B", "C"])
    got = FAMILIES["bollinger_breakout"].tables({"close": close}, np.array(windows))
    for i, w in enumerate(windows):
        roll = close.rolling(w, min_periods=w)
        np.testing.assert_array_equal(got[2 * i], roll.mean().to_numpy().T)
        np.testing.assert_array_equal(got[2 * i + 1], roll.std(ddof=0).to_numpy().T)


_SIGNAL_GRIDS = {"ma_crossover": {"fast": [5, 10], "slow": [30]}, "rsi_reversion": {"window": [7, 14]},
                 "bollinger_breakout": {"window": [10, 20]}, "time_series_momentum": {"lookback": [20, 60]},
                 "candlestick": {"hold": [2, 5], "bearish": ["engulfing"]}}


@settings(max_examples=15)  # about 0.3 s per example: one grid and a dozen one-set sweeps
@given(family=st.sampled_from(sorted(_SIGNAL_GRIDS)), seed=st.integers(0, 3), kind=st.sampled_from(["plain", "gaps"]),
       rule=st.sampled_from(RISK), levels=st.lists(st.sampled_from([0.0, -0.0, 0.02, 0.05, 0.1]), min_size=2,
                                                   max_size=3))
def test_sets_sharing_a_signal_get_the_numbers_each_gets_alone(family, seed, kind, rule, levels):
    """Sets that differ only in risk levels share one direction series per symbol: each set's row is still the
    row it gets when swept alone, bit for bit."""
    from research.backtest.families import signal_groups

    df = _prices(seed, kind)
    grid = {**_SIGNAL_GRIDS[family], rule: levels, "direction": ["long", "both"]}
    res = sweep_family(df, family, grid, fees=0.001, slippage=0.0005)
    sets = res._inputs["sets"]
    order, starts = signal_groups(sets.rows, sets.levels, sets.sides)
    assert sorted(order.tolist()) == list(range(len(sets))) and starts[0] == 0 and starts[-1] == len(sets)
    key = np.column_stack([sets.rows, sets.levels + 0.0, sets.sides])
    groups = [order[a:b] for a, b in zip(starts[:-1], starts[1:], strict=True)]
    assert all((key[g] == key[g[0]]).all() for g in groups)  # one signal per group
    assert len({tuple(key[g[0]]) for g in groups}) == len(groups)  # and one group per signal
    assert len(groups) == len(sets) // len(levels)  # every risk level of a signal in its group
    for _, row in res.table.iterrows():
        alone = sweep_family(df, family, {k: [row[k]] for k in res.param_names}, fees=0.001, slippage=0.0005)
        np.testing.assert_array_equal(alone.table[list(STATS)].to_numpy(dtype=float)[0],
                                      row[list(STATS)].to_numpy(dtype=float), err_msg=str(dict(row)))


def _edit_values(path, how: str) -> None:
    """Change a cached chunk's statistics and write it back as valid Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if how == "pandas":  # what a person editing the file would do: the hash does not survive
        frame = pd.read_parquet(path)
        frame["s0"] = frame["s0"] + 1.0
        frame.to_parquet(path, index=False)
    else:  # keep the file's metadata (and its old hash), change the numbers
        table = pq.read_table(path)
        i = table.schema.get_field_index("s0")
        table = table.set_column(i, "s0", pa.array(table.column("s0").to_numpy() + 1.0))
        pq.write_table(table, path)
    assert pq.read_table(path).num_rows > 0


@pytest.mark.parametrize("how", ["pandas", "keep-metadata"])
def test_an_edited_cached_chunk_is_detected_recomputed_and_reported(tmp_path, monkeypatch, caplog, how):
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "data"))
    df = load_prices("GOOG")
    grid = {"window": [7, 14, 21], "lower": [25.0, 30.0], "stop_loss": [0.0, 0.05]}
    clean = sweep(df, "rsi_reversion", grid, fees=0.001, cache=True, chunk_size=4, progress=False)
    assert clean.params["chunks"] == {**clean.params["chunks"], "tasks": 3, "computed": 3, "rejected": 0}
    files = sorted((tmp_path / "data" / "cache" / "sweeps").glob("*/chunk-*.parquet"))
    assert len(files) == 3
    _edit_values(files[1], how)
    with caplog.at_level("WARNING"), pytest.warns(UserWarning, match="failed its check"):
        again = sweep(df, "rsi_reversion", grid, fees=0.001, cache=True, chunk_size=4, progress=False)
    pd.testing.assert_frame_equal(clean.table, again.table, check_exact=True)
    assert again.params["chunks"]["rejected"] == 1 and again.params["chunks"]["computed"] == 1
    assert again.params["chunks"]["cached"] == 2
    assert any("chunk-1.parquet failed its check" in r.getMessage() for r in caplog.records)
    third = sweep(df, "rsi_reversion", grid, fees=0.001, cache=True, chunk_size=4, progress=False)
    assert third.params["chunks"]["rejected"] == 0 and third.params["chunks"]["cached"] == 3  # rewritten intact


def test_grid_slice_fixes_and_folds_the_other_axes():
    from research.backtest.slices import grid_slice
    from research.viz.backtest import sweep_heatmap

    df = load_prices("GOOG")
    res = sweep(df, "rsi_reversion", {"window": [7, 14], "lower": [20.0, 30.0], "exit_level": [50.0, 60.0],
                                      "stop_loss": [0.0, 0.05]}, fees=0.001)
    t = res.table
    med = grid_slice(res, x="window", y="lower", metric="sharpe", agg="median")
    assert med.shape == (2, 2) and med.attrs["aggregated"] == ["exit_level", "stop_loss"]
    cell = t[(t["window"] == 14) & (t["lower"] == 30.0)]["sharpe"]
    assert med.loc[30.0, 14] == cell.median()
    fixed = grid_slice(res, x="window", y="lower", fixed={"exit_level": 60, "stop_loss": 0.05})
    one = t[(t["window"] == 7) & (t["lower"] == 20.0) & (t["exit_level"] == 60.0) & (t["stop_loss"] == 0.05)]
    assert fixed.loc[20.0, 7] == one["sharpe"].iloc[0] and fixed.attrs["aggregated"] == []
    best = grid_slice(res, x="stop_loss", y="window")  # default: the best over the folded axes
    assert best.loc[14, 0.05] == t[(t["window"] == 14) & (t["stop_loss"] == 0.05)]["sharpe"].max()
    with pytest.raises(ValueError, match="not in the sweep"):
        grid_slice(res, x="window", y="lower", fixed={"exit_level": 55})
    with pytest.raises(ValueError, match="not a swept parameter"):
        grid_slice(res, x="window", y="upper")
    with pytest.raises(ValueError, match="agg must be"):
        grid_slice(res, x="window", y="lower", agg="sum")
    fig = sweep_heatmap(res, x="window", y="lower", agg="median")
    np.testing.assert_array_equal(np.asarray(fig.data[0].z, dtype=float), med.to_numpy())
    assert "median over exit_level, stop_loss" in fig.layout.title.text


@pytest.mark.parametrize("strategy, grid", [("rsi_reversion", {"window": [10, 14]}),
                                            ("ma_crossover", {"fast": [5, 10], "slow": [30]})])
def test_a_symbol_stale_inside_its_life_sweeps_through_the_engine(strategy, grid):
    """The fused kernels have no staleness rule: a gap longer than the rule allows inside a
    symbol's life sends the sweep through the engine (one backtest() per cell), so both agree."""
    from research import load_prices
    from research.backtest.sweep import stale_inside_lives, sweep

    bars = load_prices("GOOG")
    gapped = bars.copy()
    gapped.iloc[1000:1008] = np.nan  # 8 sessions without a bar, inside GOOG's life
    assert not stale_inside_lives(bars) and stale_inside_lives(gapped)
    assert sweep(bars, strategy, grid, fees=0.001).params["engine"] == "fused"
    assert sweep(gapped, strategy, grid, fees=0.001).params["engine"] == "engine"


@settings(max_examples=25)
@given(gaps=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 119), st.integers(1, 12)), max_size=6),
       stale_bars=st.sampled_from([None, 0, 2, 5]))
@example(gaps=[(1, 50, 8), (2, 0, 30), (3, 100, 12)], stale_bars=5)  # inside, before the first bar, to the end
def test_staleness_check_only_needs_symbols_with_a_gap(gaps, stale_bars):
    """Checking only the symbols with a missing close inside their life gives the answer of the rule applied to
    every symbol: a symbol with a close on every bar of its life is never stale inside it."""
    from research.backtest.sweep import stale_inside_lives
    from research.data.freshness import stale_frame

    index = pd.bdate_range("2021-01-04", periods=120, tz="UTC")
    close = pd.DataFrame(100.0 + np.arange(120)[:, None] + np.arange(4), index=index, columns=["A", "B", "C", "D"])
    for col, at, length in gaps:
        close.iloc[at:at + length, col] = np.nan
    valid = close.notna().to_numpy()
    rows = np.arange(len(close))[:, None]
    first = np.where(valid.any(axis=0), valid.argmax(axis=0), len(close))
    last = len(close) - 1 - valid[::-1].argmax(axis=0)
    alive = (rows >= first) & (rows <= last)
    want = stale_bars is not None and valid.any() and bool(
        (stale_frame(close, stale_bars=stale_bars).to_numpy() & alive).any())
    assert stale_inside_lives(close, stale_bars) == want
