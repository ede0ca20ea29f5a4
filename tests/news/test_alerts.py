"""News alerts: volume, sentiment and watched words on the latest session."""

from __future__ import annotations

import pandas as pd

from research.news.alerts import NEWS_ALERT_COLUMNS, NewsAlertRules, news_alerts
from research.news.features import session_sentiment


def _items(rows):
    published = pd.to_datetime([r[0] for r in rows], utc=True, format="ISO8601")
    return pd.DataFrame({"published": published, "available": published, "title": [r[1] for r in rows],
                         "sentiment": [r[2] for r in rows], "symbol": [r[3] for r in rows], "publisher": "wire",
                         "url": ""})


def _calm(symbol: str, days: int = 40):
    start = pd.Timestamp("2024-05-01 14:00", tz="UTC")
    return [((start + pd.Timedelta(days=d)).isoformat(), f"{symbol} routine update {d}", 0.0, symbol) for d in range(days)]


def test_a_burst_of_bad_news_and_a_watched_word_fire_and_calm_news_does_not():
    burst = [("2024-06-10 15:00", f"AAA shares plunge {i}", -0.9, "AAA") for i in range(6)]  # with the weekend items: 9
    burst.append(("2024-06-10 16:00", "AAA faces SEC probe over accounting", -0.5, "AAA"))
    news = _items(_calm("AAA") + _calm("BBB") + burst)
    alerts = news_alerts(news, as_of="2024-06-10")
    assert list(alerts.columns) == NEWS_ALERT_COLUMNS
    assert set(alerts["symbol"]) == {"AAA"}
    kinds = alerts.set_index("kind")
    assert kinds.loc["news_volume", "severity"] == "warning" and kinds.loc["news_volume", "value"] >= 3
    assert kinds.loc["news_sentiment", "severity"] == "critical" and kinds.loc["news_sentiment", "value"] < -0.6
    assert "'probe'" in kinds.loc["news_keyword", "message"]
    assert (alerts["bar_time"] == pd.Timestamp("2024-06-10", tz="UTC")).all()


def test_news_after_the_close_alerts_on_the_next_session_not_before():
    late = [("2024-06-10 21:30", f"AAA fraud probe widens {i}", -0.9, "AAA") for i in range(5)]  # after 16:00 New York
    news = _items(_calm("AAA") + late)
    assert news_alerts(news, as_of="2024-06-10").empty
    nxt = news_alerts(news, as_of="2024-06-11")
    assert {"news_volume", "news_sentiment", "news_keyword"} <= set(nxt["kind"])


def test_thresholds_come_from_the_rules():
    burst = [("2024-06-10 15:00", f"AAA beats estimates {i}", 0.7, "AAA") for i in range(4)]
    news = _items(_calm("AAA") + burst)
    assert news_alerts(news, as_of="2024-06-10").set_index("kind").loc["news_sentiment", "severity"] == "info"
    quiet = NewsAlertRules(volume_z=50, sentiment_warning=0.95, watch=())
    assert news_alerts(news, as_of="2024-06-10", rules=quiet).empty


def test_session_sentiment_follows_the_calendar_without_bars():
    news = _items([("2024-06-08 12:00", "weekend item", 1.0, "AAA"), ("2024-06-08 12:00", "weekend coin", 1.0, "BTC-USD")])
    eq = session_sentiment(news, "AAA", start="2024-06-07", end="2024-06-11")
    assert eq["news_count"].to_dict() == {pd.Timestamp(d, tz="UTC"): c for d, c in
                                          [("2024-06-07", 0), ("2024-06-10", 1), ("2024-06-11", 0)]}
    crypto = session_sentiment(news, "BTC-USD", start="2024-06-07", end="2024-06-09")
    assert crypto["news_count"].tolist() == [0, 1, 0]


def test_known_at_keeps_what_was_available_before_each_symbols_close_and_sentiment_as_of():
    from research.news.features import known_at, sentiment_as_of

    news = _items([("2024-06-10 19:59", "AAA in session", 0.5, "AAA"), ("2024-06-10 20:01", "AAA after close", -0.5, "AAA"),
                   ("2024-06-10 23:59", "coin late", 0.3, "BTC-USD"), ("2024-06-11 00:00", "coin next day", 0.1, "BTC-USD")])
    kept = known_at(news, "2024-06-10")
    assert kept["title"].tolist() == ["AAA in session", "coin late"]
    assert known_at(news, "2024-06-10 20:05")["title"].tolist() == ["AAA in session", "AAA after close"]
    table = sentiment_as_of(news, ["AAA", "BTC-USD", "ZZZ"], as_of="2024-06-10")
    assert table.loc["AAA", "sentiment_mean"] == 0.5 and table.loc["AAA", "news_count"] == 1
    assert table.loc["BTC-USD", "news_count"] == 1 and table.loc["ZZZ", "news_count"] == 0
    assert (table["session"] == pd.Timestamp("2024-06-10", tz="UTC")).all()
