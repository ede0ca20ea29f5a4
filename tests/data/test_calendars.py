"""The frame carries its calendar; one accessor reads it, with one explicit override."""

from __future__ import annotations

import pandas as pd
import pytest

from research.data import load_prices
from research.data.calendars import (
    CRYPTO,
    EQUITY,
    calendar_of,
    infer_periods_per_year,
    periods_per_year,
)


@pytest.mark.parametrize(
    ("symbols", "kwargs", "calendar", "ppy"),
    [
        ("SPX", {}, "equity", 252.0),
        (["SPX", "GOOG"], {}, "equity", 252.0),
        ("BTC-USD", {"interval": "1mo"}, "crypto", 12.0),
        (["BTC-USD", "ETH-USD"], {"interval": "1h", "source": "synthetic"}, "crypto", 8760.0),
        (["SPX", "ETH-USD"], {"source": "synthetic"}, "crypto", 365.0),
    ],
)
def test_load_prices_records_the_calendar_and_it_matches_the_index(store, symbols, kwargs, calendar, ppy):
    frame = load_prices(symbols, store=store, **kwargs)
    assert frame.attrs["calendar"] == calendar
    assert periods_per_year(frame) == ppy
    if kwargs.get("interval") != "1mo":  # a monthly index infers 12 as well, by another rule
        assert infer_periods_per_year(frame.index) == ppy


def test_the_record_survives_slicing_selection_and_returns(store):
    bars = load_prices(["SPX", "IXIC"], store=store)
    for derived in (bars.loc["2010":"2012"], bars.iloc[5:50], bars["close"], bars["close"]["SPX"],
                    bars["close"].pct_change(), bars.dropna()):
        assert derived.attrs["periods_per_year"] == 252.0


def test_override_then_record_then_default_then_index():
    daily_24_7 = pd.Series(0.0, index=pd.date_range("2024-01-01", periods=30, freq="D", tz="UTC"))
    assert periods_per_year(daily_24_7) == 365.0  # inferred from the index
    assert periods_per_year(daily_24_7, default=252) == 252.0
    daily_24_7.attrs["periods_per_year"] = 365.0
    assert periods_per_year(daily_24_7, default=252) == 365.0
    assert periods_per_year(daily_24_7, override=260) == 260.0
    with pytest.raises(ValueError, match="periods_per_year must be positive"):
        periods_per_year(daily_24_7, override=0)


def test_the_symbol_rule_has_one_home():
    assert calendar_of("BTC-USD") is CRYPTO and calendar_of("eth-usd") is CRYPTO
    assert calendar_of("SPX") is EQUITY


def test_sizing_reads_the_calendar_the_prices_carry(store):
    from research.strategies.signals import ma_crossover
    from research.strategies.sizing import vol_target

    bars = load_prices(["BTC-USD"], source="synthetic", store=store)
    sig = ma_crossover(bars["close"], fast=5, slow=20)
    pd.testing.assert_frame_equal(vol_target(sig, bars), vol_target(sig, bars, periods_per_year=365.0))
    assert not vol_target(sig, bars).equals(vol_target(sig, bars, periods_per_year=252.0))


def test_the_engine_reads_the_calendar_and_takes_one_override(store):
    from research.backtest import backtest

    bars = load_prices(["BTC-USD"], source="synthetic", store=store)
    res = backtest(bars, "ma_crossover", params={"fast": 5, "slow": 20})
    assert res.params["periods_per_year"] == 365.0
    assert backtest(bars, "ma_crossover", params={"fast": 5, "slow": 20}, periods_per_year=252).params["periods_per_year"] == 252.0


def test_one_symbols_flat_frame_passes_its_calendar_to_the_engine(store):
    from research.backtest import backtest

    spx = load_prices("SPX", start="2015-01-01", store=store)
    spx.attrs["periods_per_year"] = 260.0  # a recorded calendar wins over what the index suggests
    assert backtest(spx, "ma_crossover", params={"fast": 5, "slow": 20}).params["periods_per_year"] == 260.0
