"""The news store, the schema's accounting, the files source and the synthetic generator."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from research.data.errors import (
    CorruptDatasetError,
    InvalidRequestError,
    SchemaError,
    SymbolNotFoundError,
)
from research.news import NEWS_COLUMNS, load_news
from research.news.schema import deduplicate, normalise
from research.news.sources import get_news_source
from research.news.sources.files import NewsFiles
from research.news.sources.synthetic import SyntheticNews, synthetic_news
from research.news.store import NewsStore

NOW = pd.Timestamp("2025-01-10 12:00", tz="UTC")


def test_synthetic_news_is_deterministic_labelled_and_follows_the_sessions():
    a, b = synthetic_news("SYN0001", bars=200, seed=5), synthetic_news("SYN0001", bars=200, seed=5)
    pd.testing.assert_frame_equal(a, b)
    assert not synthetic_news("SYN0001", bars=200, seed=6)["title"].equals(a["title"])
    assert a["title"].str.endswith(")").all() and a["title"].str.contains(r"\(synthetic #").all()
    assert a["url"].str.startswith("https://synthetic.invalid/").all() and (a["publisher"] == "synthetic").all()
    assert not a["informed"].any()  # link=0: nothing planted
    linked = synthetic_news("SYN0001", bars=200, seed=5, link=0.5)
    assert 0.35 < linked["informed"].mean() < 0.6
    assert SyntheticNews().name == "synthetic" and SyntheticNews(link=0.2).name.startswith("synthetic-s42-l0.2")
    with pytest.raises(ValueError, match="link"):
        SyntheticNews(link=1.5)


def test_load_news_stores_synthetic_news_once_per_symbol_and_labels_it(tmp_path):
    store = NewsStore(tmp_path)
    news = load_news(["SYN0001", "BTC-USD"], start="2005-01-01", end="2005-12-31", store=store)
    assert list(news.columns) == [*NEWS_COLUMNS, "symbol", "sentiment"]
    assert news.attrs["synthetic"] is True and news.attrs["source"] == "synthetic"
    assert news["published"].between(pd.Timestamp("2005-01-01", tz="UTC"), pd.Timestamp("2005-12-31", tz="UTC")).all()
    assert news["available"].is_monotonic_increasing and (news["available"] == news["published"]).all()  # an archive
    m = store.manifest("synthetic")
    assert m["synthetic"] is True and m["symbols"] == ["BTC-USD", "SYN0001"]
    again = store.ingest(get_news_source("synthetic"), ["SYN0001"])
    assert again.fetched is False  # a static source is fetched once per symbol
    assert store.list()["source"].tolist() == ["synthetic"]


def test_a_damaged_news_file_is_refused_not_served(tmp_path):
    store = NewsStore(tmp_path)
    load_news("SYN0002", store=store)
    path = store.path("synthetic")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptDatasetError, match="corrupt"):
        store.read("synthetic")
    assert store.list()["status"].str.startswith("corrupt").all()
    with pytest.raises(SymbolNotFoundError, match="workbench news fetch"):
        store.read("rss")


def test_start_after_end_is_refused_before_any_fetch(tmp_path):
    with pytest.raises(InvalidRequestError, match="after end"):
        load_news("SYN0001", start="2020-01-02", end="2020-01-01", store=NewsStore(tmp_path))
    with pytest.raises(ValueError, match="symbols"):
        load_news([], store=NewsStore(tmp_path))


def _raw(rows):
    return pd.DataFrame(rows, columns=["published", "title", "summary", "url", "symbols", "publisher"])


def test_bad_items_are_quarantined_with_a_reason_and_nothing_is_lost():
    raw = _raw([
        ("2025-01-09 10:00", "Good item", "", "https://a/1", "AAA", "x"),
        ("2025-01-09 10:00", "", "", "https://a/2", "AAA", "x"),
        ("yesterday-ish", "Undated", "", "https://a/3", "AAA", "x"),
        ("2025-01-11 10:00", "From the future", "", "https://a/4", "AAA", "x"),
        ("2025-01-10 12:10", "Clock skew within tolerance", "", "https://a/5", "AAA", "x"),
        ("2025-01-09 11:00", "Not a web link", "", "javascript:alert(1)", "AAA", "x"),
        ("2025-01-09 12:00", "Good item!", "", "https://b/1", "AAA", "y"),      # same title, another url
        ("2025-01-09 13:00", "Other title", "", "https://a/1", "AAA", "y"),     # same url
        ("2025-01-20 10:00", "Good item", "", "https://c/1", "AAA", "z"),       # same title, beyond the window... and future
    ])
    r = normalise(raw, source="test", live=True, now=NOW)
    assert r.reasons == {"missing_title": 1, "bad_date": 1, "future_date": 2, "bad_url": 1}
    assert r.duplicates == 2 and len(r.clean) == 2
    assert r.received == len(r.clean) + r.duplicates + sum(r.reasons.values())
    assert (r.clean["seen"] == NOW).all()  # live: counted from max(published, seen)
    assert r.clean["available"].tolist() == [NOW, pd.Timestamp("2025-01-10 12:10", tz="UTC")]


@given(st.lists(st.tuples(st.integers(0, 30), st.sampled_from(["A", "a!", "B", "", "C c"]), st.integers(0, 3)), max_size=30))
def test_every_item_received_is_kept_counted_as_duplicate_or_quarantined(items):
    raw = _raw([(NOW - pd.Timedelta(days=d), t, "", f"https://x/{u}" if u else "", "S", "p") for d, t, u in items])
    r = normalise(raw, source="p", live=False, now=NOW)
    assert r.received == len(r.clean) + r.duplicates + sum(r.reasons.values())
    again, dropped = deduplicate(r.clean)
    assert dropped == 0 and len(again) == len(r.clean)  # deduplication is idempotent
    assert r.clean["url"].replace("", np.nan).dropna().is_unique


def test_the_files_source_reads_csv_and_json_lines(tmp_path, store=None):
    csv = tmp_path / "mine.csv.gz"
    with gzip.open(csv, "wt", encoding="utf-8") as fh:
        fh.write("Date,Headline,Link,Ticker\n2024-03-01 09:00,Acme beats estimates,https://x/1,ACME\n"
                 "2024-03-02 09:00,Rival misses,https://x/2,\n,No date,https://x/3,ACME\n")
    src = NewsFiles(csv, symbols=["MKT"], keywords={"RIV": ["Rival"]}, tz="America/New_York")
    news = load_news(["ACME", "RIV", "MKT"], source=src, store=NewsStore(tmp_path))
    assert news.set_index("title").loc["Acme beats estimates", "published"] == pd.Timestamp("2024-03-01 14:00", tz="UTC")
    assert sorted(news["symbol"]) == ["ACME", "MKT", "RIV"]
    assert news.attrs["report"]["reasons"] == {"bad_date": 1}
    jl = tmp_path / "mine.jsonl"
    jl.write_text("\n".join(json.dumps(r) for r in [
        {"publishedAt": "2024-03-01T09:00:00Z", "title": "A", "symbols": ["ACME", "ZZZ"]}]))
    assert NewsFiles(jl, name="jl").fetch([], None, None)["symbols"].tolist() == ["ACME,ZZZ"]
    (tmp_path / "bad.csv").write_text("when,what\n1,2\n")
    with pytest.raises(SchemaError, match=r"bad\.csv: no 'published' or 'title' column"):
        NewsFiles(tmp_path / "bad.csv").fetch([], None, None)
    (tmp_path / "bad.jsonl").write_text("[1, 2]\n")
    with pytest.raises(SchemaError, match="cannot be read as headlines"):
        NewsFiles(tmp_path / "bad.jsonl").fetch([], None, None)
    with pytest.raises(ValueError, match="path="):
        get_news_source("files")


def test_a_failed_write_leaves_the_stored_news_whole_and_no_temporary_file(tmp_path, monkeypatch):
    import os

    from research.data.errors import StoreError

    store = NewsStore(tmp_path)
    before = load_news("SYN0001", store=store)
    path = store.path("synthetic")
    raw = path.read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(StoreError, match="No space left.*previous version is intact"):
        load_news("SYN0002", store=store)
    monkeypatch.undo()
    assert path.read_bytes() == raw and not list(path.parent.glob("*.tmp"))
    assert len(load_news("SYN0001", store=store)) == len(before)


def test_concurrent_ingests_of_one_source_keep_every_symbol(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    symbols = ["SYN0010", "SYN0011", "SYN0012"]
    src = SyntheticNews(bars=400)
    with ThreadPoolExecutor(3) as pool:
        frames = list(pool.map(lambda s: load_news(s, source=src, store=NewsStore(tmp_path)), symbols))
    store = NewsStore(tmp_path)
    assert store.manifest(src.name)["symbols"] == symbols
    stored = store.read(src.name)
    for sym, frame in zip(symbols, frames, strict=True):
        assert set(frame["hash"]) <= set(stored["hash"]) and len(frame) > 500 and set(frame["symbol"]) == {sym}
