"""Look-ahead: every feature is prefix-invariant at 25 cut points, and the checker catches leaks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from research.data import load_prices
from research.data.sources.synthetic import synthetic_ohlcv
from research.features import FEATURE_SETS, FEATURES, feature_set, forward_returns
from research.features import indicators as ind
from research.features import patterns as pat
from research.features.checks import LookaheadError, assert_no_lookahead, check_lookahead
from research.news import NEWS_FEATURES

CUTS = 25


def _bench(d: pd.DataFrame) -> pd.Series:
    close = d["close"]
    # a benchmark distinct from the asset: the first symbol (wide) or the open series (one symbol)
    return ind.returns(close.iloc[:, 0] if isinstance(close, pd.DataFrame) else d["open"])


# One entry per indicator output; each takes OHLCV (flat, or (field, symbol) wide).
INDICATORS = {
    "returns": lambda d: ind.returns(d["close"]),
    "log_returns_5": lambda d: ind.returns(d["close"], periods=5, log=True),
    "sma": lambda d: ind.sma(d["close"], window=20),
    "sma_grid": lambda d: ind.sma(d["close"], window=[5, 50]),
    "ema": lambda d: ind.ema(d["close"], window=20),
    "rsi": lambda d: ind.rsi(d["close"], window=14),
    "macd": lambda d: ind.macd(d["close"]),  # line, signal and hist together
    "bollinger": lambda d: ind.bollinger(d["close"], window=20),  # mid, upper, lower, %b
    "atr": lambda d: ind.atr(d["high"], d["low"], d["close"], window=14),
    "true_range": lambda d: ind.true_range(d["high"], d["low"], d["close"]),
    "rolling_volatility": lambda d: ind.rolling_volatility(ind.returns(d["close"]), window=20),
    "momentum": lambda d: ind.momentum(d["close"], window=10),
    "roc": lambda d: ind.roc(d["close"], window=10),
    "volume_zscore": lambda d: ind.volume_zscore(d["volume"], window=20),
    "obv": lambda d: ind.obv(d["close"], d["volume"]),
    "rolling_beta": lambda d: ind.rolling_beta(ind.returns(d["close"]), _bench(d), window=60),
    **{f"cdl_{name}": (lambda d, f=f: f(d["open"], d["high"], d["low"], d["close"])) for name, f in pat.PATTERNS.items()},
    "cdl_morning_star_0": lambda d: pat.morning_star(d["open"], d["high"], d["low"], d["close"], penetration=0.0),
}
# The sets are checked whole: every column (feature) is compared on its own. The news sets,
# which also take headlines, are checked with their news in tests/news/test_features.py.
SETS = {f"feature_set:{name}": (lambda d, n=name: feature_set(d, n)) for name in FEATURE_SETS
        if not set(FEATURE_SETS[name]) & set(NEWS_FEATURES)}

CANARIES = {
    "shift(-1)": lambda d: d["close"].shift(-1) / d["close"] - 1.0,
    "centred window": lambda d: d["close"].rolling(5, center=True).mean(),
    "full-sample z-score": lambda d: (d["close"] - d["close"].mean()) / d["close"].std(),
    "backward fill": lambda d: ind.returns(d["close"]).bfill(),
    "forward_returns label": lambda d: forward_returns(d["close"], horizon=1),
}


def _with_gaps(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    out = frame.copy()
    out.iloc[rng.choice(np.arange(100, len(out)), size=8, replace=False)] = np.nan
    return out


@pytest.fixture(scope="module")
def spx() -> pd.DataFrame:
    return load_prices("SPX").iloc[-2500:]


@pytest.fixture(scope="module")
def synthetic_one() -> pd.DataFrame:
    return _with_gaps(synthetic_ohlcv("SYN0007", bars=600), np.random.default_rng(1))


@pytest.fixture(scope="module")
def synthetic_wide() -> pd.DataFrame:
    rng = np.random.default_rng(2)
    frames = {s: synthetic_ohlcv(s, bars=600) for s in ("SYN0001", "SYN0002", "SYN0003")}
    frames["SYN0002"] = _with_gaps(frames["SYN0002"], rng)
    frames["SYN0003"].iloc[:150] = np.nan  # listed later than the others
    return pd.concat(frames, axis=1, names=["symbol", "field"]).swaplevel(axis=1).sort_index(axis=1)


def _check_all(features, datasets) -> tuple[int, set[str]]:
    cut_total, checked = 0, set()
    for data in datasets:
        for name, fn in features.items():
            report = assert_no_lookahead(fn, data, cuts=CUTS, name=name)
            assert len(report.cut_points) == CUTS
            assert report.comparisons == 2 * CUTS
            cut_total += len(report.cut_points)
            checked.add(name)
    return cut_total, checked


def test_indicators_are_prefix_invariant(spx, synthetic_one, synthetic_wide):
    cuts, checked = _check_all(INDICATORS, [spx, synthetic_one, synthetic_wide])
    assert checked == set(INDICATORS)
    print(f"{len(checked)}/{len(INDICATORS)} indicators prefix-invariant over {cuts} cut points")


def test_feature_sets_are_prefix_invariant(spx, synthetic_one):
    # every OHLCV feature is in a set checked here (the news features: tests/news/test_features.py)
    assert set().union(*FEATURE_SETS.values()) - set(NEWS_FEATURES) == set(FEATURES)
    cuts, checked = _check_all(SETS, [spx, synthetic_one])
    assert checked == set(SETS)
    print(f"{len(FEATURES)}/{len(FEATURES)} set features prefix-invariant over {cuts} cut points")


@pytest.mark.parametrize("canary", list(CANARIES))
def test_checker_catches_planted_leaks(canary, spx, synthetic_wide):
    fn = CANARIES[canary]
    for data in (spx, synthetic_wide):
        report = check_lookahead(fn, data, cuts=CUTS, name=canary)
        assert not report.ok
        with pytest.raises(LookaheadError, match="look-ahead detected"):
            assert_no_lookahead(fn, data, cuts=CUTS, name=canary)


def test_shift_minus_one_is_caught_at_every_cut_in_both_modes(spx):
    report = check_lookahead(CANARIES["shift(-1)"], spx, cuts=CUTS)
    assert len(report.violations) == 2 * CUTS  # every cut point, truncated and noised
    assert any("(truncate)" in v for v in report.violations)
    assert any("(noise)" in v for v in report.violations)


def test_noise_mode_alone_catches_a_leak_that_truncation_hides():
    # A feature that reads the next bar but returns the same length and never NaN at the end:
    # truncation alone cannot see it at the cut, the noise mode can.
    s = pd.Series(np.linspace(1.0, 2.0, 200))

    def leaky(x: pd.Series) -> pd.Series:
        return x.shift(-1).fillna(x)

    assert check_lookahead(leaky, s, modes=("noise",)).violations


def test_checker_passes_identical_results_and_rejects_bad_inputs():
    s = pd.Series(np.arange(50.0))
    assert check_lookahead(lambda x: x * 2, s, cuts=10).ok
    with pytest.raises(ValueError, match="one row per input row"):
        check_lookahead(lambda x: x.iloc[1:], s)
    with pytest.raises(ValueError, match="modes"):
        check_lookahead(lambda x: x, s, modes=("peek",))
