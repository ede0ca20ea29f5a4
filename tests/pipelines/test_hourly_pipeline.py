"""The hourly crypto pipeline end to end through the runner: on the exchange when it answers, else synthetic bars."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from research.data.resilience import reset_guards
from research.workflow.results import latest, read_output
from research.workflow.runlog import RunLog
from research.workflow.runner import run_pipeline
from tests.data.fakes.binance import API, HOUR_MS, exchange_info, klines_reply, now_ms
from tests.data.fakes.server import FakeServer, json_reply

pytestmark = pytest.mark.slow
SPEC = Path(__file__).resolve().parents[2] / "pipelines" / "hourly.yaml"


@pytest.fixture
def exchange_down(monkeypatch):
    """The exchange's API host is a local port nothing listens on (so the run stays offline)."""
    with FakeServer() as down:
        url = down.url
    monkeypatch.setenv("WORKBENCH_CCXT_API_URL", url)
    reset_guards()
    yield
    reset_guards()


def test_hourly_pipeline_writes_labelled_synthetic_signals(exchange_down):
    lines: list[str] = []
    result = run_pipeline(SPEC, echo=lines.append)
    assert result.status == "COMPLETED", result.message
    assert any(line.startswith("source: 'auto' -> 'synthetic'") for line in lines)
    pub = latest("hourly")
    assert pub.run_id == result.run_id and pub.as_of == "2000-09-08T23:00:00"
    assert all(pub.has(n) for n in ("data_report", "prices", "news", "signals", "alerts", "summary"))
    assert not pub.has("predictions")
    prices = pub.table("prices")
    assert list(prices.columns) == ["BTC-USD", "ETH-USD"]
    assert prices.index.max() == pd.Timestamp("2000-09-08 23:00", tz="UTC")
    assert pd.Series(prices.index).diff().dropna().eq(pd.Timedelta(hours=1)).all()
    sig = pub.table("signals")
    assert len(sig) == 2 * 3 and sig["synthetic"].all() and not sig["stale"].any()
    news = pub.table("news")
    assert set(news["symbol"]) == {"BTC-USD", "ETH-USD"} and news["available"].max() < pd.Timestamp("2000-09-08 23:00", tz="UTC")
    assert sig["news_count"].notna().all() and sig["news_sentiment"].between(-1, 1).all()
    assert pub.table("data_report")["synthetic"].all()
    summary = pub.document("summary")
    assert summary["synthetic"] is True and summary["data"]["sources"] == ["synthetic"]
    note = summary["data"]["source_note"]
    assert note.startswith("source synthetic; passed over: ccxt-binance not reachable") and "auto" in note
    assert (pub.table("data_report")["source_note"] == note).all()
    entry = RunLog().get_run(result.run_id)
    assert [s["stage"] for s in entry["stages"]] == ["ingest", "news", "signals", "paper", "summary"]


def test_hourly_pipeline_takes_the_exchange_when_it_answers(monkeypatch):
    now = now_ms() // HOUR_MS * HOUR_MS
    with FakeServer() as exchange:
        exchange.route(API + "/exchangeInfo", json_reply(exchange_info()))
        exchange.route(API + "/klines", klines_reply(interval="1h", end_ms=now, listed_ms=now - 399 * HOUR_MS))
        monkeypatch.setenv("WORKBENCH_CCXT_API_URL", exchange.url)  # the stage kernels inherit it
        reset_guards()
        result = run_pipeline(SPEC, ["symbols=BTC-USD"])
        reset_guards()
    assert result.status == "COMPLETED", result.message
    pub = latest("hourly")
    assert pub.run_id == result.run_id
    assert pub.as_of == pd.Timestamp(now, unit="ms", tz="UTC").tz_localize(None).isoformat()  # live: this hour
    report = pub.table("data_report")
    assert list(report["source"]) == ["ccxt-binance"] and not report["synthetic"].any()
    assert "pair BTC/USDT" in report["provenance"].iloc[0]
    summary = pub.document("summary")
    assert summary["synthetic"] is False and summary["data"]["sources"] == ["ccxt-binance"]
    assert summary["data"]["source_note"].startswith("source ccxt-binance (auto")
    assert result.record["parameters"]["source"] == "ccxt:binance"  # settled once for every stage


def test_a_bare_date_and_the_last_hour_of_that_day_give_the_same_fresh_signals():
    """``-p as_of=2000-09-05`` is the end of that session: it sees the 23:00 bar, as ``T23:00:00`` does
    (it used to load bars up to 00:00 only and publish all six signals stale with zero targets)."""
    tables = {}
    for as_of in ("2000-09-05", "2000-09-05T23:00:00"):
        result = run_pipeline(SPEC, [f"as_of={as_of}", "source=synthetic"], force=True)
        assert result.status == "COMPLETED", result.message
        assert read_output(result.run_dir / "outputs", "summary")["as_of"] == as_of
        tables[as_of] = read_output(result.run_dir / "outputs", "signals").drop(columns=["as_of"])
    a, b = tables.values()
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 6 and not a["stale"].any() and (a["bar_time"] == pd.Timestamp("2000-09-05 23:00", tz="UTC")).all()
