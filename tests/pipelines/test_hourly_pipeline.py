"""The hourly crypto pipeline end to end through the runner, on synthetic hourly bars."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from research.workflow.results import latest
from research.workflow.runlog import RunLog
from research.workflow.runner import run_pipeline

pytestmark = pytest.mark.slow
SPEC = Path(__file__).resolve().parents[2] / "pipelines" / "hourly.yaml"


def test_hourly_pipeline_writes_labelled_synthetic_signals():
    result = run_pipeline(SPEC)
    assert result.status == "COMPLETED", result.message
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
    entry = RunLog().get_run(result.run_id)
    assert [s["stage"] for s in entry["stages"]] == ["ingest", "news", "signals", "paper", "summary"]
