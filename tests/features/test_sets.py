"""Feature sets: columns, order, warm-up marking, definitions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from research.data import load_prices
from research.data.sources.synthetic import synthetic_ohlcv
from research.features import FEATURE_SETS, drop_warmup, feature_set, warmup_rows
from research.features import indicators as ind


@pytest.fixture(scope="module")
def spx() -> pd.DataFrame:
    return load_prices("SPX")


def test_lstm_set_columns_order_and_warmup(spx):
    f = feature_set(spx, "lstm")
    assert list(f.columns) == ["log_return", "volatility_20", "rsi_14", "macd_hist", "volume_z_20"]
    assert list(f.columns) == list(FEATURE_SETS["lstm"]) == f.attrs["features"]
    assert f.index.equals(spx.index)
    assert f.attrs["warmup"] == 26 + 9 - 2  # the MACD histogram is the last to fill
    assert f.attrs["symbol"] == "SPX" and f.attrs["feature_set"] == "lstm"
    assert f.iloc[: f.attrs["warmup"]].isna().any(axis=1).all()
    clean = drop_warmup(f)
    assert len(clean) == len(f) - 33 and clean.notna().all().all() and clean.attrs["warmup"] == 0
    assert f["rsi_14"].abs().max() <= 1.0
    assert (f.dtypes == "float64").all()


def test_lstm_set_definitions(spx):
    f = feature_set(spx, "lstm")
    c = spx["close"]
    np.testing.assert_allclose(f["log_return"], np.log(c / c.shift(1)), equal_nan=True)
    np.testing.assert_allclose(f["rsi_14"], (ind.rsi(c, window=14) - 50) / 50, equal_nan=True)
    np.testing.assert_allclose(f["macd_hist"], ind.macd(c).hist / c, equal_nan=True)
    lr = np.log(c / c.shift(1))
    np.testing.assert_allclose(f["volatility_20"], lr.rolling(20).std(), equal_nan=True)


def test_research_set_is_larger_and_starts_with_lstm(spx):
    r = feature_set(spx, "research")
    assert len(r.columns) == len(FEATURE_SETS["research"]) > 10
    assert list(r.columns[:5]) == list(FEATURE_SETS["lstm"])
    assert r.attrs["warmup"] == 60  # the 60-bar volatility (60 log returns need 61 closes)
    assert drop_warmup(r).notna().all().all()


def test_gaps_after_warmup_stay_nan_and_are_not_counted_as_warmup():
    o = synthetic_ohlcv("SYN0200", bars=300)
    o.iloc[150] = np.nan
    f = feature_set(o, "lstm")
    assert f.attrs["warmup"] == 33
    assert f.iloc[150].isna().all()
    assert drop_warmup(f).isna().any(axis=1).sum() > 0  # kept, never silently filled
    assert warmup_rows(pd.DataFrame({"a": [np.nan, np.nan]})) == 2


def test_errors_name_what_was_expected():
    o = synthetic_ohlcv("SYN0201", bars=60)
    with pytest.raises(ValueError, match="unknown feature set 'big'; expected one of"):
        feature_set(o, "big")
    with pytest.raises(ValueError, match=r"missing \['volume'\]"):
        feature_set(o.drop(columns="volume"))
    wide = pd.concat({"A": o}, axis=1)
    with pytest.raises(ValueError, match="one symbol's OHLCV"):
        feature_set(wide)
