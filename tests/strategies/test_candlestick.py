"""The candlestick strategy: its position rule, TA-Lib's patterns, no look-ahead, catalog and backtest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib
from hypothesis import example, given, settings
from hypothesis import strategies as st

from research.backtest import backtest
from research.data import load_prices
from research.data.sources.synthetic import synthetic_ohlcv
from research.features.checks import assert_no_lookahead, check_lookahead
from research.strategies import candlestick, get_strategy
from research.strategies.signals import pattern_state_1d_nb

FIELDS = ("open", "high", "low", "close")


def _state(bull, bear, hold, long=True, short=False) -> list[int]:
    return pattern_state_1d_nb(np.array(bull, bool), np.array(bear, bool), hold, long, short).tolist()


def _reference(bull: np.ndarray, bear: np.ndarray, hold: int, allow_long: bool, allow_short: bool) -> list[int]:
    """The rule stated declaratively: the latest entry bar decides, unless it expired or was cancelled."""
    out = []
    for t in range(len(bull)):
        entries = [e for e in range(t + 1) if (allow_long and bull[e] and not bear[e])
                   or (allow_short and bear[e] and not bull[e])]
        if not entries:
            out.append(0)
            continue
        e = entries[-1]
        side = 1 if bull[e] else -1
        against = bear if side == 1 else bull
        expired = hold > 0 and t - e >= hold
        out.append(0 if expired or against[e + 1: t + 1].any() else side)
    return out


def test_position_rule_by_hand():
    #           bar: 0  1  2  3  4  5  6  7
    bull = [0, 1, 0, 0, 0, 0, 0, 0]
    assert _state(bull, [0] * 8, 3) == [0, 1, 1, 1, 0, 0, 0, 0]  # held 3 bars
    assert _state(bull, [0, 0, 0, 1, 0, 0, 0, 0], 5) == [0, 1, 1, 0, 0, 0, 0, 0]  # bearish exit first
    assert _state([0, 1, 0, 1, 0, 0, 0, 0], [0] * 8, 3) == [0, 1, 1, 1, 1, 1, 0, 0]  # a new bullish bar restarts
    assert _state(bull, [0] * 8, 0) == [0, 1, 1, 1, 1, 1, 1, 1]  # hold 0: until a bearish bar
    assert _state([0, 1, 0, 1, 0], [0, 0, 0, 1, 0], 0) == [0, 1, 1, 0, 0]  # both ways on one bar: out, not in
    assert _state([0, 0, 0, 1, 0], [0, 1, 0, 0, 0], 2, long=False, short=True) == [0, -1, -1, 0, 0]
    assert _state([0, 0, 0, 1, 0], [0, 1, 0, 0, 0], 9, long=True, short=True) == [0, -1, -1, 1, 1]  # flip


@given(
    flags=st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=60),
    hold=st.integers(0, 8),
    direction=st.sampled_from([(True, False), (False, True), (True, True)]),
)
@example(flags=[(True, False), (True, True), (False, False)], hold=0, direction=(True, True))
def test_position_rule_matches_its_declarative_statement(flags, hold, direction):
    bull = np.array([f[0] for f in flags])
    bear = np.array([f[1] for f in flags])
    assert pattern_state_1d_nb(bull, bear, hold, *direction).tolist() == _reference(bull, bear, hold, *direction)


def test_entries_follow_talib_patterns_on_sample_data():
    d = load_prices("MSFT", progress=False)
    o, h, lo, c = (d[f].to_numpy() for f in FIELDS)
    bull = (talib.CDLENGULFING(o, h, lo, c) > 0) | (talib.CDLHAMMER(o, h, lo, c) > 0)
    bear = (talib.CDLENGULFING(o, h, lo, c) < 0) | (talib.CDLEVENINGSTAR(o, h, lo, c) < 0)
    sig = candlestick(*(d[f] for f in FIELDS), bullish="engulfing,hammer", bearish="engulfing+evening_star",
                      hold=4, direction="both")
    assert sig.direction.shape == (len(d), 1)
    expected = _reference(bull, bear, 4, True, True)
    np.testing.assert_array_equal(sig.direction.iloc[:, 0].to_numpy(), expected)
    assert sig.params == {"bullish": "engulfing,hammer", "bearish": "engulfing,evening_star", "hold": 4,
                          "direction": "both"}
    assert sig.entries.to_numpy().sum() > 100 and sig.short_entries.to_numpy().sum() > 100


def test_doji_signals_on_either_side():
    d = load_prices("GOOG", progress=False)
    doji = talib.CDLDOJI(*(d[f].to_numpy() for f in FIELDS)) != 0
    long = candlestick(*(d[f] for f in FIELDS), bullish="doji", bearish="", hold=1)
    np.testing.assert_array_equal(long.direction.iloc[:, 0].to_numpy(), doji.astype(float))
    short = candlestick(*(d[f] for f in FIELDS), bullish="", bearish="doji", hold=1, direction="short")
    np.testing.assert_array_equal(short.direction.iloc[:, 0].to_numpy(), -doji.astype(float))


def _wide(with_gaps: bool) -> pd.DataFrame:
    frames = {s: synthetic_ohlcv(s, bars=500, seed=k) for k, s in enumerate(("SYN0001", "SYN0002"))}
    if with_gaps:
        frames["SYN0002"].iloc[[120, 121, 300]] = np.nan
    return pd.concat(frames, axis=1, names=["symbol", "field"]).swaplevel(axis=1).sort_index(axis=1)


@pytest.mark.parametrize("direction", ["long", "short", "both"])
@pytest.mark.parametrize("gaps", [False, True])
def test_no_look_ahead(direction, gaps):
    def run(data: pd.DataFrame) -> pd.DataFrame:
        fields = [data[f] for f in FIELDS]
        return candlestick(*fields, bullish="engulfing,hammer,morning_star,doji",
                           bearish="engulfing,shooting_star,evening_star", hold=3, direction=direction).direction

    data = _wide(gaps)
    assert run(data).abs().to_numpy().sum() > 50  # trades to check
    report = assert_no_lookahead(run, data, cuts=25, name=f"candlestick {direction}")
    assert report.comparisons == 50


def test_the_check_catches_a_strategy_that_peeks():
    def peeking(data: pd.DataFrame) -> pd.DataFrame:
        fields = [data[f].shift(-1).ffill() for f in FIELDS]
        return candlestick(*fields, hold=3).direction

    assert not check_lookahead(peeking, _wide(False), cuts=25).ok


def test_bad_parameters_are_named():
    d = synthetic_ohlcv("SYN0003", bars=60)
    f = [d[x] for x in FIELDS]
    with pytest.raises(ValueError, match=r"bullish: unknown candlestick pattern\(s\) \['hangman'\]"):
        candlestick(*f, bullish="hammer,hangman")
    with pytest.raises(ValueError, match=r"bullish: \['shooting_star'\] are never bullish"):
        candlestick(*f, bullish="shooting_star")
    with pytest.raises(ValueError, match=r"bearish: \['hammer'\] are never bearish"):
        candlestick(*f, bearish="hammer")
    with pytest.raises(ValueError, match="hold must be an integer >= 0"):
        candlestick(*f, hold=-1)
    with pytest.raises(ValueError, match="needs entry patterns"):
        candlestick(*f, bullish="")
    with pytest.raises(ValueError, match="with hold=0"):
        candlestick(*f, bearish="", hold=0)
    with pytest.raises(ValueError, match="direction must be one of"):
        candlestick(*f, direction="sideways")


def test_catalog_runs_it_from_cli_strings_and_needs_ohlc():
    spec = get_strategy("candlestick")
    assert spec.input == "ohlc" and spec.defaults["hold"] == 5
    d = _wide(False)
    fields = {f: d[f] for f in (*FIELDS, "volume")}
    by_name = spec.run(fields, bullish="hammer+engulfing", hold="7")
    direct = candlestick(*(d[f] for f in FIELDS), bullish="hammer,engulfing", hold=7)
    pd.testing.assert_frame_equal(by_name.direction, direct.direction)
    with pytest.raises(ValueError, match=r"needs open, high, low and close prices; missing \['high', 'low'\]"):
        spec.run({"open": d["open"], "close": d["close"]})


def test_backtests_on_the_sample_data_entering_the_bar_after_a_pattern():
    d = load_prices("GOOG", progress=False)
    res = backtest(d, "candlestick", params={"bullish": "hammer", "hold": "3"}, fees=0.001)
    hammer = talib.CDLHAMMER(*(d[f].to_numpy() for f in FIELDS)) > 0
    assert len(res.trades) >= 20
    entry_bars = d.index.get_indexer(pd.to_datetime(res.trades["entry_time"]))
    assert hammer[entry_bars - 1].all()  # filled at the next open after the hammer's close
    exit_bars = d.index.get_indexer(pd.to_datetime(res.trades["exit_time"]))
    assert (exit_bars > entry_bars).all()
    hammers = np.flatnonzero(hammer)
    for x in exit_bars[(res.trades["exit_reason"] == "signal").to_numpy()]:
        latest = hammers[hammers < x].max()  # a later hammer while long restarts the 3 bars
        assert 2 <= x - latest <= 3 + 1  # out at the open after 3 closes held (earlier on a bearish bar)
    assert res.params["params"] == {"bullish": "hammer", "bearish": "engulfing,shooting_star,evening_star",
                                    "hold": 3, "direction": "long"}


def test_inputs_are_not_mutated_and_series_names_need_not_match():
    d = _wide(True)
    before = d.copy()
    candlestick(*(d[f] for f in FIELDS), direction="both")
    pd.testing.assert_frame_equal(d, before)
    one = d.xs("SYN0001", axis=1, level="symbol")
    sig = candlestick(one["open"], one["high"], one["low"], one["close"])  # Series named open, high...
    assert list(sig.direction.columns) == ["close"] and sig.direction.index.equals(one.index)


_SMALL = _wide(True).iloc[:240]


@settings(max_examples=25)
@given(
    bullish=st.lists(st.sampled_from(["engulfing", "hammer", "morning_star", "doji"]), min_size=1, unique=True),
    bearish=st.lists(st.sampled_from(["engulfing", "shooting_star", "evening_star", "doji"]), min_size=1,
                     unique=True),
    hold=st.integers(0, 12),
    direction=st.sampled_from(["long", "short", "both"]),
)
def test_no_look_ahead_for_any_parameters(bullish, bearish, hold, direction):
    def run(data: pd.DataFrame) -> pd.DataFrame:
        return candlestick(*(data[f] for f in FIELDS), bullish=bullish, bearish=bearish, hold=hold,
                           direction=direction).direction

    assert_no_lookahead(run, _SMALL, cuts=6, name="candlestick")


def test_each_symbol_counts_its_own_bars_and_holds_across_its_gaps():
    kw = {"bullish": "engulfing,doji", "bearish": "engulfing", "hold": 4, "direction": "both"}
    full = _wide(False)
    before = candlestick(*(full[f] for f in FIELDS), **kw).direction["SYN0002"].to_numpy()
    open_at = int(np.flatnonzero(before[100:400] != 0)[0]) + 100  # a bar where SYN0002 holds a position
    gaps = [open_at + 1, open_at + 2, 450]
    d = full.copy()
    d.loc[d.index[gaps], [c for c in d.columns if c[1] == "SYN0002"]] = np.nan  # SYN0002 misses these bars
    sig = candlestick(*(d[f] for f in FIELDS), **kw).direction
    alone = d.xs("SYN0002", axis=1, level="symbol").dropna()
    own = candlestick(*(alone[f] for f in FIELDS), **kw).direction.iloc[:, 0]
    got = sig["SYN0002"]
    np.testing.assert_array_equal(got.loc[alone.index].to_numpy(), own.to_numpy())
    assert got.iloc[open_at] != 0  # a position is open when the gap starts
    for gap, last in zip(gaps, (open_at, open_at, 449), strict=True):
        assert got.iloc[gap] == got.iloc[last]  # carried, not reset


_OPTION_LISTS = ["", "engulfing", "hammer", "shooting_star", "doji", "morning_star+evening_star", "nope", "hammer+nope"]


@settings(max_examples=60, deadline=None)
@given(bullish=st.sampled_from(_OPTION_LISTS), bearish=st.sampled_from(_OPTION_LISTS),
       hold=st.sampled_from([0, 1, 5, -1, 2.5, True]), direction=st.sampled_from(["long", "short", "both", "up"]))
@example(bullish="", bearish="", hold=0, direction="long")
def test_the_options_check_refuses_what_the_strategy_refuses(bullish, bearish, hold, direction):
    """A fused sweep checks its grid with candlestick_options: the same refusals, word for word."""
    from research.strategies.signals import candlestick_options

    bars = synthetic_ohlcv("CHK", bars=3)
    opts = {"bullish": bullish, "bearish": bearish, "hold": hold, "direction": direction}
    try:
        candlestick(bars["open"], bars["high"], bars["low"], bars["close"], **opts)
        refused = None
    except ValueError as exc:
        refused = str(exc)
    if refused is None:
        candlestick_options(**opts)
    else:
        with pytest.raises(ValueError) as info:
            candlestick_options(**opts)
        assert str(info.value) == refused
