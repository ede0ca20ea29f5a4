"""Validation: reason codes, flags, and the accounting invariant (property-based)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from research.data.calendars import CRYPTO, EQUITY
from research.data.errors import SchemaError
from research.data.schema import REASONS, check_invariants, validate_ohlcv
from research.data.sources.synthetic import synthetic_ohlcv


def _bars(n: int = 30, symbol: str = "T") -> pd.DataFrame:
    return synthetic_ohlcv(symbol, bars=n, seed=1)


def _validate(frame, **kw):
    kw.setdefault("calendar", EQUITY)
    return validate_ohlcv(frame, symbol="T", source="test", **kw)


def test_clean_data_passes_untouched():
    bars = _bars()
    res = _validate(bars)
    assert res.report.stored == len(bars) and res.report.quarantined == 0 and res.report.duplicates == 0
    pd.testing.assert_frame_equal(res.clean, bars, check_freq=False)
    assert check_invariants(res.clean) == []


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        ((5, "close", np.nan), "NAN_PRICE"),
        ((6, "low", -1.0), "NONPOSITIVE_PRICE"),
        ((7, "volume", -5.0), "NEGATIVE_VOLUME"),
        ((8, "high", None), "OHLC_INCONSISTENT"),  # None: half the bar's low
    ],
)
def test_bad_rows_are_quarantined_with_reason(mutate, code):
    bars = _bars()
    row, col, value = mutate
    bars.iloc[row, bars.columns.get_loc(col)] = bars["low"].iloc[row] * 0.5 if value is None else value
    res = _validate(bars)
    assert res.report.reasons == {code: 1}
    assert res.quarantine["reason"].tolist() == [code]
    assert res.report.accounted and check_invariants(res.clean) == []


def test_duplicates_exact_are_counted_conflicting_are_quarantined():
    bars = _bars()
    exact = bars.iloc[[3]]
    conflict = bars.iloc[[4]].assign(close=bars["close"].iloc[4] * 1.01, high=bars["high"].iloc[4] * 1.02)
    raw = pd.concat([bars, exact, conflict.iloc[:0], conflict]).iloc[::-1]
    res = _validate(raw)
    assert res.report.duplicates == 1
    assert res.report.reasons == {"DUPLICATE_CONFLICT": 1}
    assert res.report.stored == len(bars) and res.report.accounted
    assert res.report.flags.get("UNSORTED_INPUT") == 1
    assert res.clean.index.is_monotonic_increasing and res.clean.index.is_unique


def test_unit_spike_quarantined_level_shift_flagged():
    bars = _bars(40)
    spiked = bars.copy()
    spiked.iloc[10] = spiked.iloc[10] * [100, 100, 100, 100, 1]
    res = _validate(spiked)
    assert res.report.reasons == {"UNIT_JUMP": 1}
    shifted = bars.copy()
    shifted.iloc[20:, :4] = shifted.iloc[20:, :4] * 100
    res2 = _validate(shifted)
    assert res2.report.quarantined == 0 and res2.report.flags.get("UNIT_SHIFT") == 1


def test_split_suspect_flagged_not_dropped():
    bars = _bars(40)
    bars.iloc[25:, :4] = bars.iloc[25:, :4] / 2
    bars.iloc[25, bars.columns.get_loc("open")] = bars["close"].iloc[25]
    bars["high"] = bars[["open", "high", "close"]].max(axis=1)
    bars["low"] = bars[["open", "low", "close"]].min(axis=1)
    res = _validate(bars)
    assert res.report.stored == 40
    assert res.report.flags.get("SPLIT_SUSPECT", 0) >= 1


def test_off_grid_daily_bar_is_quarantined():
    bars = _bars()
    idx = bars.index.tolist()
    idx[9] = idx[9] + pd.Timedelta(hours=5)  # a New York midnight read as UTC
    bars.index = pd.DatetimeIndex(idx, name="timestamp")
    res = _validate(bars)
    assert res.report.reasons == {"OFF_GRID_TIMESTAMP": 1}


def test_gaps_against_calendar_are_counted_not_filled():
    bars = _bars(60)
    holed = bars.drop(bars.index[[10, 11, 30]])
    res = _validate(holed)
    assert res.report.gaps == 3 and res.report.stored == 57
    weekend = bars.copy()
    weekend.index = pd.DatetimeIndex(
        [*bars.index[:-1], pd.Timestamp("2030-01-05", tz="UTC")], name="timestamp"
    )  # a Saturday
    assert _validate(weekend).report.flags.get("OFF_CALENDAR") == 1
    assert _validate(weekend, calendar=CRYPTO).report.flags.get("OFF_CALENDAR") is None


def test_missing_column_is_a_schema_error_naming_it():
    with pytest.raises(SchemaError, match="volume"):
        _validate(_bars().drop(columns="volume"))


def test_unparseable_timestamp_is_quarantined():
    bars = _bars(10)
    raw = bars.reset_index()
    raw["timestamp"] = raw["timestamp"].astype(str)
    raw.loc[4, "timestamp"] = "not a date"
    res = _validate(raw.set_index("timestamp"))
    assert res.report.reasons == {"BAD_TIMESTAMP": 1}


def test_input_is_not_mutated():
    bars = _bars()
    bars.iloc[3, 0] = np.nan
    before = bars.copy()
    _validate(bars)
    pd.testing.assert_frame_equal(bars, before)


_FAULTS = ["nan", "neg_price", "neg_vol", "ohlc", "dup_exact", "dup_conflict", "shuffle", "spike", "bad_ts"]


@st.composite
def faulty_frames(draw):
    n = draw(st.integers(min_value=3, max_value=80))
    seed = draw(st.integers(min_value=0, max_value=10_000))
    bars = synthetic_ohlcv(f"H{seed}", bars=n, seed=seed).reset_index()
    bars["timestamp"] = bars["timestamp"].astype(object)
    rows = [bars]
    faults = draw(st.lists(st.tuples(st.sampled_from(_FAULTS), st.integers(0, n - 1)), max_size=12))
    for fault, i in faults:
        col = {"nan": "close", "neg_price": "open", "neg_vol": "volume"}.get(fault)
        if col:
            bars.loc[i, col] = np.nan if fault == "nan" else -1.0
        elif fault == "ohlc":
            bars.loc[i, "high"] = bars.loc[i, "low"] * 0.9
        elif fault == "dup_exact":
            rows.append(bars.iloc[[i]].copy())
        elif fault == "dup_conflict":
            rows.append(bars.iloc[[i]].assign(volume=bars.loc[i, "volume"] + 1))
        elif fault == "spike" and 0 < i < n - 1:
            bars.loc[i, ["open", "high", "low", "close"]] *= 1000
        elif fault == "bad_ts":
            bars.loc[i, "timestamp"] = "garbage"
    raw = pd.concat(rows, ignore_index=True)
    if any(f == "shuffle" for f, _ in faults):
        raw = raw.sample(frac=1.0, random_state=seed)
    return raw.set_index("timestamp")


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=faulty_frames())
def test_every_row_is_accounted_for_and_stored_rows_are_valid(raw):
    res = _validate(raw)
    rep = res.report
    assert rep.received == len(raw)
    assert rep.received == rep.stored + rep.quarantined + rep.duplicates
    assert set(rep.reasons) <= set(REASONS)
    assert check_invariants(res.clean) == []
    again = _validate(res.clean)  # idempotent: valid data re-validates unchanged
    assert again.report.quarantined == 0 and again.report.duplicates == 0
    pd.testing.assert_frame_equal(again.clean, res.clean, check_freq=False)


def test_adjacent_unit_spikes_are_all_quarantined_so_stored_rows_revalidate():
    idx = pd.date_range("2000-01-03", periods=4, freq="D", tz="UTC", name="timestamp")
    c = np.array([28.00503, 2.818947e7, 2.831954e4, 28.32514])  # x1e6 then x1000: each hides the other
    raw = pd.DataFrame({"open": c, "high": c * 1.01, "low": c * 0.99, "close": c, "volume": 1000.0}, index=idx)
    res = validate_ohlcv(raw, symbol="T", source="test")
    assert res.report.reasons == {"UNIT_JUMP": 2} and len(res.clean) == 2
    assert validate_ohlcv(res.clean, symbol="T", source="test").report.quarantined == 0
