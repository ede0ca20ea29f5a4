"""The pipelines' news step: what was known at the as-of time, sentiment in signals, news alerts."""

from __future__ import annotations

import pandas as pd

from research.data.calendars import CRYPTO, EQUITY
from research.news.sessions import session_close
from research.stages.news_step import NEWS_OUTPUT_COLUMNS, news_stage
from research.stages.steps import signals_stage
from research.workflow.results import read_output


def test_the_news_step_keeps_what_was_known_and_signals_carry_sentiment_and_news_alerts(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "data"))
    out = str(tmp_path / "outputs")
    symbols, as_of = ["SYN0001", "BTC-USD"], "2010-12-31"
    news = news_stage(out, symbols=symbols, as_of=as_of, lookback_days=60)
    assert list(news.columns) == NEWS_OUTPUT_COLUMNS and set(news["symbol"]) == set(symbols)
    day = pd.DatetimeIndex([pd.Timestamp(as_of, tz="UTC")])
    closes = {"SYN0001": session_close(day, EQUITY)[0], "BTC-USD": session_close(day, CRYPTO)[0]}
    assert (news["available"] < news["symbol"].map(closes)).all()  # nothing after each symbol's close
    assert news["available"].min() >= pd.Timestamp("2010-11-01", tz="UTC")
    pd.testing.assert_frame_equal(read_output(out, "news"), news)
    signals, alerts = signals_stage(out, symbols=symbols, as_of=as_of, source="synthetic")
    assert {"news_sentiment", "news_count", "news_surprise"} <= set(signals.columns)
    assert (signals["news_count"] >= 0).all() and signals["news_sentiment"].between(-1, 1).all()
    kinds = set(alerts["kind"])
    assert kinds <= {"price", "technical", "volume", "drawdown", "data", "model", "news_volume", "news_sentiment",
                     "news_keyword"}
