"""The fused crossover kernels give vectorbt's trades and returns exactly, and agree with each other."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from research.backtest.kernels import (
    STATS,
    ma_grid_nb,
    ma_many_nb,
    ma_single_nb,
    ma_table_nb,
)
from research.data import load_prices
from research.data.sources.synthetic import synthetic_ohlcv

FEES, SLIP, CASH = 0.001, 0.0005, 10_000.0
# (5, 25) and (24, 32) on GOOG and (2, 5) on SPX cross through bars where the averages are exactly equal.
TIE_PAIRS = {"GOOG": [(5, 25), (24, 32)], "SPX": [(2, 5)]}


def _sample_pairs(symbol: str, k: int = 40) -> list[tuple[int, int]]:
    rng = np.random.default_rng(len(symbol))
    fs, ss = np.triu_indices(201, 1)
    keep = fs >= 2
    pick = rng.choice(int(keep.sum()), k, replace=False)
    pairs = [(int(f), int(s)) for f, s in zip(fs[keep][pick], ss[keep][pick], strict=True)]
    return pairs + TIE_PAIRS[symbol] + [(2, 3), (199, 200)]


def _vectorbt(df: pd.DataFrame, pairs):
    import vectorbt as vbt

    close = df["close"]
    fast = vbt.MA.run(close, window=[f for f, _ in pairs]).ma.to_numpy()
    slow = vbt.MA.run(close, window=[s for _, s in pairs]).ma.to_numpy()
    cols = pd.RangeIndex(len(pairs))
    f, s = pd.DataFrame(fast, close.index, cols), pd.DataFrame(slow, close.index, cols)
    entries = f.vbt.crossed_above(s).shift(1, fill_value=False).astype(bool)
    exits = f.vbt.crossed_below(s).shift(1, fill_value=False).astype(bool)
    wide = lambda x: pd.DataFrame(np.repeat(x.to_numpy()[:, None], len(pairs), 1), close.index, cols)  # noqa: E731
    return vbt.Portfolio.from_signals(wide(close), entries, exits, price=wide(df["open"]), fees=FEES,
                                      slippage=SLIP, init_cash=CASH)


@pytest.mark.parametrize("symbol", ["GOOG", "SPX"])
def test_fused_equals_vectorbt_trades_and_returns(symbol):
    df = load_prices(symbol)
    pairs = _sample_pairs(symbol)
    pf = _vectorbt(df, pairs)
    o, c = df["open"].to_numpy(), df["close"].to_numpy()
    n = len(c)
    windows = np.arange(1, 201)
    fr = np.array([f - 1 for f, _ in pairs])
    sr = np.array([s - 1 for _, s in pairs])
    stats, rets = ma_grid_nb(o, c, ma_table_nb(c, windows), fr, sr, 0, n, FEES, SLIP, CASH, 252.0, True)
    np.testing.assert_array_equal(rets.T, pf.returns().to_numpy())  # bit for bit
    records = pf.trades.records
    for k, (f, s) in enumerate(pairs):
        st, value, trades = ma_single_nb(o, c, f, s, 0, n, FEES, SLIP, CASH, 252.0)
        np.testing.assert_array_equal(value, pf.value()[k].to_numpy())
        ref = records[records["col"] == k]
        assert len(trades) == len(ref), (f, s)
        np.testing.assert_array_equal(trades[:, 0].astype(int), ref["entry_idx"])
        closed = ref["status"] == 1
        np.testing.assert_array_equal(trades[closed, 1].astype(int), ref["exit_idx"][closed])
        np.testing.assert_array_equal(trades[:, 2], ref["size"])
        # trade records average their fills (1 ulp apart); the order records are exact
        np.testing.assert_allclose(trades[:, 3], ref["entry_price"], rtol=1e-15)
        np.testing.assert_allclose(trades[closed, 4], ref["exit_price"][closed], rtol=1e-15)
        orders = pf.orders.records
        fills = orders[orders["col"] == k]
        np.testing.assert_array_equal(fills["price"][0::2], trades[:, 3])
        np.testing.assert_array_equal(fills["price"][1::2], trades[closed, 4])
        np.testing.assert_array_equal(fills["fees"][0::2], trades[:, 5])
        # the table path folds the close's own return on holding bars (no division): equal to 1e-12
        np.testing.assert_allclose(st, stats[k], rtol=1e-12, atol=1e-15)
        assert st[STATS.index("trades")] == len(ref)
    total = pf.total_return().to_numpy()
    np.testing.assert_allclose(stats[:, STATS.index("total_return")], total, rtol=1e-12, atol=1e-14)


def test_division_free_crossings_equal_the_averages():
    from research.backtest.kernels import cross_states_nb
    from research.strategies._nb import cross_state_1d_nb, rolling_mean_1d_nb

    for sym in ("GOOG", "SPX"):
        c = load_prices(sym)["close"].to_numpy()
        for f, s in _sample_pairs(sym, 25):
            out = np.empty(len(c), dtype=np.int8)
            cross_states_nb(c, f, s, out, np.empty(len(c)))
            want = cross_state_1d_nb(rolling_mean_1d_nb(c, f), rolling_mean_1d_nb(c, s), False)
            np.testing.assert_array_equal(out, want)


def test_grid_and_many_symbol_kernels_agree_with_single_runs():
    frames = {f"S{i}": synthetic_ohlcv(f"S{i}", bars=800, seed=11) for i in range(6)}
    o = pd.DataFrame({k: v["open"] for k, v in frames.items()}).to_numpy()
    c = pd.DataFrame({k: v["close"] for k, v in frames.items()}).to_numpy()
    lo, hi = np.full(c.shape[1], 100, dtype=np.int64), np.full(c.shape[1], 800, dtype=np.int64)
    many = ma_many_nb(o, c, 12, 40, lo, hi, FEES, SLIP, CASH, 252.0)
    for j in range(c.shape[1]):
        cj, oj = np.ascontiguousarray(c[:, j]), np.ascontiguousarray(o[:, j])
        single = ma_single_nb(oj, cj, 12, 40, 100, 800, FEES, SLIP, CASH, 252.0)[0]
        np.testing.assert_allclose(many[j], single, rtol=1e-12, atol=1e-15)  # records path: exact divisions
        windows = np.array([12, 40, 7])
        grid, none = ma_grid_nb(oj, cj, ma_table_nb(cj, windows), np.array([0, 2]), np.array([1, 1]), 100, 800, FEES,
                                SLIP, CASH, 252.0, False)
        assert none.shape == (2, 0)
        np.testing.assert_array_equal(grid[0], many[j])
        np.testing.assert_allclose(grid[1], ma_single_nb(oj, cj, 7, 40, 100, 800, FEES, SLIP, CASH, 252.0)[0], rtol=1e-12)


def test_statistics_are_the_documented_formulas():
    df = synthetic_ohlcv("STAT", bars=1000, seed=5)
    o, c = df["open"].to_numpy(), df["close"].to_numpy()
    st, value, trades = ma_single_nb(o, c, 10, 30, 0, 1000, FEES, SLIP, CASH, 252.0)
    s = dict(zip(STATS, st, strict=True))
    r = pd.Series(value).pct_change().fillna(value[0] / CASH - 1)
    assert s["total_return"] == pytest.approx(value[-1] / CASH - 1, rel=1e-12)
    assert s["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * np.sqrt(252), rel=1e-9)
    peak = np.maximum.accumulate(np.r_[CASH, value])[1:]
    assert s["max_drawdown"] == pytest.approx((value / peak - 1).min(), rel=1e-12)
    assert s["trades"] == len(trades)
    exit_px = np.where(trades[:, 1] >= 0, trades[:, 4], c[-1])  # an open trade is valued at the last close
    pnl = trades[:, 2] * exit_px - trades[:, 6] - (trades[:, 2] * trades[:, 3] + trades[:, 5])
    assert s["win_rate"] == pytest.approx((pnl > 0).mean(), rel=1e-12)
    assert s["annual_return"] == pytest.approx((1 + s["total_return"]) ** (252 / 1000) - 1, rel=1e-12)


def test_missing_opens_defer_fills_and_never_poison_equity():
    df = synthetic_ohlcv("GAPS", bars=600, seed=9)
    o, c = df["open"].to_numpy().copy(), df["close"].to_numpy().copy()
    o[100:400:7] = np.nan
    o[101:400:11] = 0.0
    c[150:160] = np.nan
    st, value, trades = ma_single_nb(o, c, 5, 20, 0, 600, FEES, SLIP, CASH, 252.0)
    assert np.isfinite(value).all() and np.isfinite(st[:6]).all()
    for row in trades:
        for idx in row[:2]:
            if idx >= 0:
                assert np.isfinite(o[int(idx)]) and o[int(idx)] > 0
