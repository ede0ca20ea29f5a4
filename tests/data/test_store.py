"""The store: exact round trips, manifests, atomic writes, quarantine, ingest rules."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from research.data import InvalidRequestError, Store, StoreError, SymbolNotFoundError, load_prices
from research.data.sources.files import FilesSource
from research.data.sources.synthetic import SyntheticSource, synthetic_ohlcv
from research.data.store import content_sha256


def test_round_trip_is_exact(store):
    bars = synthetic_ohlcv("RT", bars=300)
    bars["adj_close"] = bars["close"] * 0.99
    manifest = store.write("synthetic", "1d", "RT", bars)
    back = store.read("synthetic", "1d", "RT")
    pd.testing.assert_frame_equal(back, bars, check_freq=False)
    assert str(back.index.dtype) == "datetime64[ns, UTC]"
    assert manifest["sha256"] == content_sha256(back) == back.attrs["sha256"]
    assert manifest["rows"] == 300 and manifest["first"] == bars.index[0].isoformat()


def test_symbols_with_special_characters_get_safe_file_names(store):
    bars = synthetic_ohlcv("X", bars=10)
    for sym in ["^GSPC", "BRK/B", "EUR=X", "BTC-USD"]:
        store.write("files", "1d", sym, bars)
        assert store.read("files", "1d", sym).shape == bars.shape
    assert {m for m in store.list()["symbol"]} == {"^GSPC", "BRK/B", "EUR=X", "BTC-USD"}


def test_failed_write_leaves_the_old_version_and_no_temp_file(store, monkeypatch):
    old = synthetic_ohlcv("A", bars=50)
    store.write("synthetic", "1d", "A", old)

    def explode(fd):  # the bytes are written, then flushing them to disk fails
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", explode)
    with pytest.raises(StoreError, match="No space left"):
        store.write("synthetic", "1d", "A", synthetic_ohlcv("B", bars=80))
    monkeypatch.undo()
    pd.testing.assert_frame_equal(store.read("synthetic", "1d", "A"), old, check_freq=False)
    folder = store.path("synthetic", "1d", "A").parent
    assert [p.name for p in folder.iterdir() if p.suffix == ".tmp"] == []


def test_unwritable_store_path_raises_store_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot"):
        Store(blocker).write("synthetic", "1d", "A", synthetic_ohlcv("A", bars=5))


def test_missing_dataset_names_symbol_and_how_to_fetch(store):
    with pytest.raises(SymbolNotFoundError, match=r"'NOPE'.*workbench data fetch"):
        store.read("sample", "1d", "NOPE")


def test_ingest_quarantines_and_accounts(store, tmp_path):
    bars = synthetic_ohlcv("Q", bars=40).reset_index()
    bars.loc[5, "close"] = -3.0
    bars.loc[9, "volume"] = -1.0
    bars = pd.concat([bars, bars.iloc[[12]]])
    bars.to_csv(tmp_path / "Q.csv", index=False)
    res = store.ingest(FilesSource(tmp_path), "Q")
    rep = res.report
    assert (rep.received, rep.stored, rep.quarantined, rep.duplicates) == (41, 38, 2, 1)
    q = store.read_quarantine("files", "1d", "Q")
    assert sorted(q["reason"]) == ["NEGATIVE_VOLUME", "NONPOSITIVE_PRICE"]
    assert res.manifest["quarantined"] == 2
    # Static sources are cached: a second ingest does not re-read the file.
    (tmp_path / "Q.csv").unlink()
    again = store.ingest(FilesSource(tmp_path), "Q")
    assert not again.fetched and len(again.frame) == 38


def test_ingest_is_idempotent_on_refresh(store):
    src = SyntheticSource()
    first = store.ingest(src, "IDEM")
    second = store.ingest(src, "IDEM", refresh=True)
    assert second.fetched and first.manifest["sha256"] == second.manifest["sha256"]
    assert len(store.read_quarantine("synthetic", "1d", "IDEM")) == 0


def test_requests_are_checked_before_any_fetch(store):
    class Exploding(SyntheticSource):
        def fetch(self, *a, **k):  # pragma: no cover - must not be reached
            raise AssertionError("fetched")

    with pytest.raises(InvalidRequestError, match="after end"):
        store.ingest(Exploding(), "X", start="2020-02-01", end="2020-01-01")
    with pytest.raises(InvalidRequestError, match="interval"):
        store.ingest(Exploding(), "X", interval="7m")
    with pytest.raises(InvalidRequestError, match="after end"):
        load_prices("SPX", start="2010-01-01", end="2009-01-01", store=store)
    with pytest.raises(InvalidRequestError, match="no symbols"):
        load_prices([], store=store)


def test_range_slicing_and_wide_access(store):
    frame = load_prices(["SPX", "IXIC"], start="2010-01-01", end="2010-12-31", store=store)
    assert frame.columns.names == ["field", "symbol"]
    close = frame["close"]
    assert list(close.columns) == ["SPX", "IXIC"]
    assert close.index[0] == pd.Timestamp("2010-01-04", tz="UTC")
    assert close.index[-1] == pd.Timestamp("2010-12-31", tz="UTC")
    assert len(close) == 252
    assert np.isfinite(close.to_numpy()).all()


def test_a_ranged_first_ingest_of_a_static_source_stores_the_whole_history(store):
    late = load_prices("SPX", start="2012-01-01", store=store)
    assert late.index[0] == pd.Timestamp("2012-01-03", tz="UTC")
    early = load_prices("SPX", end="2008-12-31", store=store)
    assert early.index[0] == pd.Timestamp("1999-01-04", tz="UTC") and len(early) == 2515  # rows of SPX.csv.gz up to 2008-12-31
    assert store.manifest("sample", "1d", "SPX")["rows"] == 5031
