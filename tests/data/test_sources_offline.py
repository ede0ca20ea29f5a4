"""The offline sources: bundled sample, seeded synthetic, and the user's files."""

from __future__ import annotations

import gzip
from importlib import resources

import numpy as np
import pandas as pd
import pytest

from research.data import InvalidRequestError, SchemaError, SymbolNotFoundError, load_prices
from research.data.schema import check_invariants
from research.data.sources.files import FilesSource
from research.data.sources.sample import SAMPLE_UNIVERSE, SampleSource
from research.data.sources.synthetic import SyntheticSource, synthetic_close_matrix, synthetic_ohlcv

# Golden figures: the first and last closes of the bundled files, as published.
GOLDEN = {
    "SPX": ("1999-01-04", 1228.099976, "2018-12-31", 2506.850098, 5031),
    "IXIC": ("1999-01-04", 2208.050049, "2018-12-31", 6635.279785, 5031),
    "GOOG": ("2004-08-19", 100.34, "2013-03-01", 806.19, 2148),
    "MSFT": ("1986-03-13", 0.07533, "2017-11-10", 83.87, 7983),
}


@pytest.mark.parametrize("symbol", list(GOLDEN))
def test_sample_daily_history_is_stored_whole_and_valid(symbol, store):
    first, c0, last, c1, rows = GOLDEN[symbol]
    frame = load_prices(symbol, store=store)
    assert len(frame) == rows
    assert frame.index[0] == pd.Timestamp(first, tz="UTC") and frame.index[-1] == pd.Timestamp(last, tz="UTC")
    assert frame["close"].iloc[0] == pytest.approx(c0) and frame["close"].iloc[-1] == pytest.approx(c1)
    assert check_invariants(frame) == []
    assert frame.attrs["source"] == "sample" and frame.attrs["synthetic"] is False
    manifest = store.manifest("sample", "1d", symbol)
    assert manifest["quarantined"] == 0 and "README" in manifest["provenance"]


def test_sample_bitcoin_is_monthly_only_and_says_where_daily_comes_from(store):
    btc = load_prices("BTC-USD", interval="1mo", store=store)
    assert len(btc) == 156 and btc.index[0] == pd.Timestamp("2012-01-31", tz="UTC")
    with pytest.raises(InvalidRequestError, match="synthetic"):
        load_prices("BTC-USD", interval="1d", store=store)


def test_sample_is_small_and_documented():
    folder = resources.files("research.data.sample")
    readme = folder.joinpath("README.md").read_text()
    total = 0
    for sym in SAMPLE_UNIVERSE:
        data = folder.joinpath(f"{sym}.csv.gz").read_bytes()
        total += len(data)
        assert f"`{sym}`" in readme
        assert gzip.decompress(data).startswith(b"date,open,high,low,close")
    assert total < 3 * 1024 * 1024


def test_unknown_sample_symbol_lists_what_exists():
    with pytest.raises(SymbolNotFoundError, match="SPX"):
        SampleSource().fetch("AAPL", None, None)


def test_synthetic_is_deterministic_valid_and_labelled(store):
    a = synthetic_ohlcv("SYNX", bars=500, seed=3)
    b = synthetic_ohlcv("SYNX", bars=500, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert not synthetic_ohlcv("SYNY", bars=500, seed=3)["close"].equals(a["close"])
    assert check_invariants(a) == []
    crypto = synthetic_ohlcv("SOL-USD", bars=400)
    assert (crypto.index.weekday >= 5).any()  # 24/7
    hourly = synthetic_ohlcv("SOL-USD", bars=48, interval="1h")
    assert (hourly.index[1] - hourly.index[0]) == pd.Timedelta(hours=1)
    frame = load_prices(["SYN0001", "ETH-USD"], source="synthetic", store=store)
    assert frame.attrs["synthetic"] is True
    assert store.manifest("synthetic", "1d", "ETH-USD")["synthetic"] is True
    # a sub-range is a slice of the same path
    part = SyntheticSource().fetch("SYN0001", pd.Timestamp("2005-01-01", tz="UTC"), frame.index[-1])
    np.testing.assert_array_equal(part["close"].to_numpy(), frame["close"]["SYN0001"].loc["2005-01-01":].dropna().to_numpy())


def test_synthetic_close_matrix_shape():
    m = synthetic_close_matrix(5, 300)
    assert m.shape == (300, 5) and np.isfinite(m.to_numpy()).all()


def test_files_source_maps_columns_and_timezones(tmp_path, store):
    bars = synthetic_ohlcv("F", bars=30)
    raw = pd.DataFrame(
        {
            "Date": bars.index.tz_localize(None).strftime("%Y-%m-%d"),
            "Open": bars["open"].to_numpy(),
            "High": bars["high"].to_numpy(),
            "Low": bars["low"].to_numpy(),
            "Last": bars["close"].to_numpy(),
            "Adj Close": bars["close"].to_numpy(),
            "Vol": bars["volume"].to_numpy(),
        }
    )
    raw.to_csv(tmp_path / "F.csv", index=False)
    src = FilesSource(tmp_path, tz="America/New_York")
    frame = load_prices("F", source=src, store=store)
    np.testing.assert_allclose(frame["close"].to_numpy(), bars["close"].to_numpy())
    assert (frame.index == bars.index).all()  # local session dates kept, stamped 00:00 UTC
    assert "adj_close" in frame.columns
    bars.to_parquet(tmp_path / "P.parquet")
    assert len(FilesSource(tmp_path).fetch("P", None, None)) == 30
    assert FilesSource(tmp_path).symbols() == ["F", "P"]


def test_files_source_errors_name_the_file_and_columns(tmp_path):
    with pytest.raises(SymbolNotFoundError, match=r"NOPE\.csv"):
        FilesSource(tmp_path).fetch("NOPE", None, None)
    pd.DataFrame({"when": ["2020-01-01"], "px": [1.0]}).to_csv(tmp_path / "B.csv", index=False)
    with pytest.raises(SchemaError, match=r"B\.csv.*column_map"):
        FilesSource(tmp_path).fetch("B", None, None)
    with pytest.raises(SchemaError, match="lacks"):
        FilesSource(tmp_path, column_map={"nothere": "close"}).fetch("B", None, None)
