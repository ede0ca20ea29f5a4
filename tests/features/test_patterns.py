"""Candlestick patterns equal TA-Lib's CDL* functions: sample data, seeded candles, any OHLC."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib
import talib.abstract
from hypothesis import example, given, settings
from hypothesis import strategies as st

from research.data import load_prices
from research.features import FEATURE_SETS, feature_set
from research.features import patterns as pat

TALIB = {
    "engulfing": "CDLENGULFING",
    "hammer": "CDLHAMMER",
    "shooting_star": "CDLSHOOTINGSTAR",
    "doji": "CDLDOJI",
    "morning_star": "CDLMORNINGSTAR",
    "evening_star": "CDLEVENINGSTAR",
}
SAMPLE = [("SPX", "1d"), ("IXIC", "1d"), ("GOOG", "1d"), ("MSFT", "1d"), ("BTC-USD", "1mo")]


def _talib(name: str, o, h, lo, c, **kw) -> np.ndarray:
    return getattr(talib, TALIB[name])(*(np.asarray(x, dtype="float64") for x in (o, h, lo, c)), **kw)


def _ours(name: str, o, h, lo, c, **kw) -> np.ndarray:
    series = [pd.Series(np.asarray(x, dtype="float64")) for x in (o, h, lo, c)]
    return pat.PATTERNS[name](*series, **kw).to_numpy()


def candles(seed: int, bars: int = 5000, tick: float = 0.05) -> tuple[np.ndarray, ...]:
    """Seeded OHLC rich in patterns: bodies from doji to long, shadows from none to long, gaps, ties."""
    rng = np.random.default_rng(seed)
    mid = 50 + np.cumsum(rng.normal(0, 0.6, bars))
    body = rng.choice([0.0, 0.05, 0.3, 1.0, 2.5], size=bars, p=[0.15, 0.15, 0.3, 0.25, 0.15])
    body = body * rng.choice([-1, 1], bars)
    o = mid - body / 2 + rng.choice([0.0, 0.0, 2.0, -2.0], bars) * rng.random(bars)
    c = o + body
    up = rng.choice([0.0, 0.01, 0.3, 2.0], bars) * rng.random(bars)
    dn = rng.choice([0.0, 0.01, 0.3, 2.0], bars) * rng.random(bars)
    h, lo = np.maximum(o, c) + up, np.minimum(o, c) - dn
    return tuple(np.round(x / tick) * tick for x in (o, h, lo, c))


@pytest.fixture(scope="module", params=SAMPLE, ids=[s for s, _ in SAMPLE])
def sample(request) -> pd.DataFrame:
    symbol, interval = request.param
    return load_prices(symbol, interval=interval, progress=False)


@pytest.mark.parametrize("name", list(TALIB))
def test_equal_to_talib_on_every_sample_symbol(sample, name):
    o, h, lo, c = (sample[f] for f in ("open", "high", "low", "close"))
    ours = pat.PATTERNS[name](o, h, lo, c)
    ref = _talib(name, o, h, lo, c)
    assert isinstance(ours, pd.Series) and ours.index.equals(sample.index) and ours.dtype == np.int32
    np.testing.assert_array_equal(ours.to_numpy(), ref)


def test_sample_data_exercises_every_pattern():
    found = {name: 0 for name in TALIB}
    for symbol, interval in SAMPLE:
        d = load_prices(symbol, interval=interval, progress=False)
        for name in TALIB:
            found[name] += int((_talib(name, d["open"], d["high"], d["low"], d["close"]) != 0).sum())
    assert all(n >= 50 for n in found.values()), found  # the equality above is not an all-zero match


@pytest.mark.parametrize("seed,tick", [(0, 0.01), (1, 0.05), (2, 0.25), (3, 1e-9), (4, 0.5)])
def test_equal_to_talib_on_seeded_candles_with_many_patterns(seed, tick):
    o, h, lo, c = candles(seed, tick=tick)
    for name in TALIB:
        ref = _talib(name, o, h, lo, c)
        assert (ref != 0).sum() >= 5, name
        np.testing.assert_array_equal(_ours(name, o, h, lo, c), ref, err_msg=name)
    touching = _talib("engulfing", o, h, lo, c)
    if tick >= 0.05:  # ties on a coarse tick give TA-Lib's +-80 engulfing
        assert np.isin(touching, (-80, 80)).any()


@pytest.mark.parametrize("penetration", [0.0, 0.1, 0.5, 1.0, 2.0])
def test_star_penetration_matches_talib(penetration):
    o, h, lo, c = candles(7, tick=0.05)
    for name in ("morning_star", "evening_star"):
        ref = _talib(name, o, h, lo, c, penetration=penetration)
        assert penetration >= 1.0 or (ref != 0).any(), name
        np.testing.assert_array_equal(_ours(name, o, h, lo, c, penetration=penetration), ref)


_PRICE = st.integers(0, 12).map(lambda k: 10.0 + 0.5 * k)
_SHADOW = st.sampled_from([0.0, 0.0, 0.25, 0.5, 2.0, 5.0])


@st.composite
def ohlc(draw) -> tuple[np.ndarray, ...]:
    """Short OHLC series on a coarse grid, so equal opens, closes and ranges are common."""
    n = draw(st.integers(1, 40))
    o = np.array(draw(st.lists(_PRICE, min_size=n, max_size=n)))
    c = np.array(draw(st.lists(_PRICE, min_size=n, max_size=n)))
    up = np.array(draw(st.lists(_SHADOW, min_size=n, max_size=n)))
    dn = np.array(draw(st.lists(_SHADOW, min_size=n, max_size=n)))
    return o, np.maximum(o, c) + up, np.minimum(o, c) - dn, c


@given(bars=ohlc())
@example(bars=(np.array([10.0, 11.0, 10.0]), np.array([11.0, 11.0, 11.0]),
               np.array([9.0, 9.0, 9.0]), np.array([11.0, 10.0, 11.0])))  # touching engulfings: +-80
def test_any_ohlc_series_matches_talib(bars):
    for name in TALIB:
        np.testing.assert_array_equal(_ours(name, *bars), _talib(name, *bars), err_msg=name)


def test_lookback_matches_talib_and_warmup_is_zero():
    o, h, lo, c = candles(11, bars=200)
    for name, fn in TALIB.items():
        assert pat.lookback(name) == talib.abstract.Function(fn).lookback
        assert (_ours(name, o, h, lo, c)[: pat.lookback(name)] == 0).all()
    with pytest.raises(ValueError, match="unknown candlestick pattern 'hangman'"):
        pat.lookback("hangman")


def test_wide_frames_run_each_symbol_over_its_own_bars():
    fields = {f: {} for f in ("open", "high", "low", "close")}
    for k, sym in enumerate(("A", "B", "C")):
        for f, x in zip(fields, candles(20 + k, bars=400, tick=0.05), strict=True):
            fields[f][sym] = x
    wide = {f: pd.DataFrame(v) for f, v in fields.items()}
    for f in wide:  # B misses some bars (all fields); C lists late; A misses one field on one bar
        wide[f].loc[[50, 51, 200], "B"] = np.nan
        wide[f].loc[:99, "C"] = np.nan
    wide["high"].loc[300, "A"] = np.nan
    for name in TALIB:
        out = pat.PATTERNS[name](wide["open"], wide["high"], wide["low"], wide["close"])
        assert out.shape == (400, 3) and (out.dtypes == np.int32).all()
        for sym in ("A", "B", "C"):
            rows = pd.concat([wide[f][sym] for f in wide], axis=1).notna().all(axis=1).to_numpy()
            bars = [wide[f][sym].to_numpy()[rows] for f in wide]
            np.testing.assert_array_equal(out[sym].to_numpy()[rows], _talib(name, *bars), err_msg=f"{name} {sym}")
            assert (out[sym].to_numpy()[~rows] == 0).all()


def test_candlestick_patterns_and_bad_input():
    d = load_prices("GOOG", progress=False)
    found = pat.candlestick_patterns(d, ["hammer", "doji"])
    assert list(found) == ["hammer", "doji"]
    pd.testing.assert_series_equal(found["doji"], pat.doji(d["open"], d["high"], d["low"], d["close"]))
    assert list(pat.candlestick_patterns(d)) == list(pat.PATTERNS)
    with pytest.raises(ValueError, match=r"unknown candlestick pattern\(s\) \['kicker'\]"):
        pat.candlestick_patterns(d, ["kicker"])
    with pytest.raises(ValueError, match=r"missing \['open'\]"):
        pat.candlestick_patterns(d.drop(columns="open"))
    with pytest.raises(ValueError, match="penetration must be a finite number >= 0"):
        pat.morning_star(d["open"], d["high"], d["low"], d["close"], penetration=-0.1)
    with pytest.raises(ValueError, match="close must have the same index and columns as open"):
        pat.hammer(*(d[f].to_frame("GOOG") for f in ("open", "high", "low")), d["close"].to_frame("GOOG").iloc[:-1])
    with pytest.raises(TypeError, match="doji: give all inputs as Series or all as DataFrames"):
        pat.doji(d["open"], d["high"], d["low"], d[["close"]])


def test_patterns_feature_set_scales_and_marks_warmup():
    d = load_prices("MSFT", progress=False)
    f = feature_set(d, "patterns")
    assert list(f.columns) == list(FEATURE_SETS["patterns"]) == [f"cdl_{n}" for n in pat.PATTERNS]
    assert f.attrs["warmup"] == max(pat.lookback(n) for n in pat.PATTERNS)
    for name in pat.PATTERNS:
        col = f[f"cdl_{name}"]
        assert col.iloc[: pat.lookback(name)].isna().all() and col.iloc[pat.lookback(name):].notna().all()
        ref = _talib(name, d["open"], d["high"], d["low"], d["close"]) / 100.0
        np.testing.assert_array_equal(col.to_numpy()[pat.lookback(name):], ref[pat.lookback(name):])
    gappy = d.copy()
    gappy.iloc[500, gappy.columns.get_loc("low")] = np.nan
    assert feature_set(gappy, "patterns").iloc[500].isna().all()  # a missing low is unknown, not "no pattern"


_GAPPY = {f"S{k}": candles(40 + k, bars=300, tick=0.05) for k in range(3)}


@settings(max_examples=40)
@given(gaps=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 299), st.integers(0, 3)), max_size=30))
def test_gaps_anywhere_leave_each_symbol_equal_to_talib_on_its_own_bars(gaps):
    fields = [pd.DataFrame({s: bars[i] for s, bars in _GAPPY.items()}) for i in range(4)]
    for sym, row, field in gaps:  # a missing value in one field of one bar
        fields[field].iloc[row, sym] = np.nan
    for name in TALIB:
        out = pat.PATTERNS[name](*fields)
        for sym in _GAPPY:
            rows = np.logical_and.reduce([f[sym].notna().to_numpy() for f in fields])
            ref = _talib(name, *(f[sym].to_numpy()[rows] for f in fields))
            np.testing.assert_array_equal(out[sym].to_numpy()[rows], ref, err_msg=f"{name} {sym}")
            assert (out[sym].to_numpy()[~rows] == 0).all()
