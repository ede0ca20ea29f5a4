"""RSS and News API sources through their real clients, against recorded documents on 127.0.0.1.

The documents under tests/news/data/ follow the published shapes of a Yahoo Finance RSS 2.0
feed, a CoinDesk Atom feed and News API's /v2/everything answer.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest

from research.data.errors import (
    BadResponseError,
    InvalidRequestError,
    RateLimitError,
    SourceError,
    SourceUnavailableError,
)
from research.data.resilience import CircuitBreaker, Guard, RequestBudget, RetryPolicy
from research.data.store import StaleDataWarning
from research.news import load_news
from research.news.config import Feed, NewsConfig, load_news_config
from research.news.sources.newsapi import DAILY_QUOTA, NewsAPISource, default_newsapi_guard
from research.news.sources.rss import RSSSource
from research.news.store import NewsStore
from tests.data.fakes.server import FakeServer, Reply, json_reply, text_reply

DATA = Path(__file__).parent / "data"
RSS = (DATA / "yahoo_finance_rss.xml").read_bytes()
ATOM = (DATA / "coindesk_atom.xml").read_bytes()
EVERYTHING = (DATA / "newsapi_everything.json").read_text()
KEY = "na-t3st-K3Y-do-not-leak-9f8e7d"
KEYWORDS = {"AAPL": ("Apple", "iPhone"), "MSFT": ("Microsoft",), "BTC-USD": ("Bitcoin",), "ETH-USD": ("Ether",)}


def xml_reply(body: bytes, status: int = 200, **headers: str) -> Reply:
    return Reply(status, body, {"Content-Type": "application/rss+xml; charset=utf-8", **headers})


@pytest.fixture(scope="module")
def server():
    with FakeServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _fresh_routes(server):
    server.reset()


@pytest.fixture
def sleeps():
    return []


def _guard(name: str, sleeps: list, *, attempts: int = 3, timeout: float = 2.0) -> Guard:
    return Guard(name, policy=RetryPolicy(attempts=attempts, base_delay=0.5, max_delay=5.0, deadline=30.0, timeout=timeout),
                 breaker=CircuitBreaker(failure_threshold=50, cooldown=60.0), sleep=sleeps.append, seed=3)


@pytest.fixture
def rss(server, sleeps):
    def build(*paths: str, attempts: int = 3, timeout: float = 2.0) -> RSSSource:
        feeds = [Feed(p.strip("/"), server.url + p, ("AAPL",) if "aapl" in p else ()) for p in paths]
        host = server.url.removeprefix("http://")
        return RSSSource(config=NewsConfig(keywords=KEYWORDS), feeds=feeds,
                         guards={host: _guard("rss", sleeps, attempts=attempts, timeout=timeout)})
    return build


# ---------------------------------------------------------------------------------- RSS
def test_a_recorded_rss_feed_is_normalised_deduplicated_and_quarantined(server, rss, tmp_path):
    server.route(r"/aapl", xml_reply(RSS))
    store = NewsStore(tmp_path)
    result = store.ingest(rss("/aapl"), ["AAPL", "MSFT"])
    report = result.report
    assert (report["received"], report["kept"], report["duplicates"], report["quarantined"]) == (7, 4, 1, 2)
    assert report["received"] == report["kept"] + report["duplicates"] + report["quarantined"]
    assert store.read_quarantine("rss")["reason"].value_counts().to_dict() == {"missing_title": 1, "bad_date": 1}
    items = result.frame.set_index("title")
    assert items.loc["Analysts downgrade Apple on weak iPhone demand in China", "published"] == pd.Timestamp("2025-01-06 14:30", tz="UTC")
    assert items.loc["Microsoft and Apple lead tech rally", "symbols"] == "AAPL,MSFT"  # feed symbol + keyword
    assert (items["available"] >= items["published"]).all() and (items["available"] == items["seen"]).all()
    assert store.manifest("rss")["live"] is True and store.manifest("rss")["synthetic"] is False


def test_atom_entries_use_updated_when_not_published_and_keywords_give_symbols(server, rss, tmp_path):
    server.route(r"/crypto", xml_reply(ATOM))
    frame = rss("/crypto").fetch(["BTC-USD"], None, None)
    assert frame["symbols"].tolist() == ["BTC-USD", "ETH-USD"]
    assert frame["published"].tolist() == [pd.Timestamp("2025-01-06 18:45", tz="UTC"), pd.Timestamp("2025-01-06 19:15", tz="UTC")]


def test_rss_429_honours_retry_after_then_reads(server, rss, sleeps):
    server.route(r"/aapl", xml_reply(b"slow down", 429, **{"Retry-After": "7"}), xml_reply(RSS))
    frame = rss("/aapl").fetch(["AAPL"], None, None)
    assert len(frame) == 7 and max(sleeps) >= 7 and len(server.hits(r"/aapl")) == 2


def test_rss_5xx_is_retried_and_then_named(server, rss, sleeps):
    server.route(r"/aapl", xml_reply(b"", 503), xml_reply(b"", 502), xml_reply(RSS))
    assert len(rss("/aapl").fetch(["AAPL"], None, None)) == 7
    server.route(r"/down", xml_reply(b"", 500))
    with pytest.raises(SourceUnavailableError, match=r"feed 'down'.*HTTP 500.*gave up after 3 attempts"):
        rss("/down").fetch(["AAPL"], None, None)


@pytest.mark.parametrize(("body", "message"), [
    (b"<html><body><h1>Consent required</h1></body></html>", "not an RSS or Atom document"),
    (b"", "empty body"),
    (RSS[: len(RSS) // 2], "cut short"),
])
def test_rss_garbage_or_a_cut_document_is_refused(server, rss, body, message):
    server.route(r"/aapl", Reply(200, body, {"Content-Type": "text/html"}))
    with pytest.raises(BadResponseError, match=message):
        rss("/aapl").fetch(["AAPL"], None, None)
    assert len(server.hits(r"/aapl")) == 1  # not retried: the source answered


def test_rss_transfer_cut_mid_body_is_retried(server, rss):
    server.route(r"/aapl", Reply(200, RSS, {"Content-Type": "application/rss+xml"}, cut_after=300), xml_reply(RSS))
    assert len(rss("/aapl").fetch(["AAPL"], None, None)) == 7
    assert len(server.hits(r"/aapl")) == 2


def test_rss_stalled_answer_times_out(server, rss):
    server.route(r"/aapl", Reply(200, RSS, delay=3.0))
    with pytest.raises(SourceUnavailableError, match="timed out"):
        rss("/aapl", attempts=1, timeout=0.3).fetch(["AAPL"], None, None)


def test_one_failing_feed_does_not_stop_the_others_and_all_failing_serves_the_stored_copy(server, rss, tmp_path):
    server.route(r"/aapl", xml_reply(RSS))
    server.route(r"/broken", xml_reply(b"", 500))
    store = NewsStore(tmp_path)
    first = store.ingest(rss("/aapl", "/broken"), ["AAPL"])
    assert len(first.frame) == 4 and store.manifest("rss")["failed"] == ["broken: SourceUnavailableError"]
    server.route(r"/aapl", xml_reply(b"", 503))
    with pytest.warns(StaleDataWarning, match="serving the stored news"):
        again = store.ingest(rss("/aapl", "/broken"), ["AAPL"], refresh=True)
    assert again.stale and again.frame.attrs["stale"] and len(again.frame) == 4


def test_a_refetch_keeps_when_an_item_was_first_seen(server, rss, tmp_path):
    server.route(r"/aapl", xml_reply(RSS))
    store = NewsStore(tmp_path)
    first = store.ingest(rss("/aapl"), ["AAPL"]).frame
    again = store.ingest(rss("/aapl"), ["AAPL"], refresh=True)
    assert again.report["already_stored"] == 4 and again.report["new"] == 0
    pd.testing.assert_series_equal(first["seen"], again.frame["seen"])


def test_the_news_config_file_is_read_and_checked(tmp_path):
    good = tmp_path / "news.yaml"
    good.write_text((Path(__file__).parents[2] / "news.example.yaml").read_text())
    cfg = load_news_config(good)
    assert [f.name for f in cfg.feeds] == ["yahoo-aapl", "coindesk"] and cfg.keywords["BTC-USD"] == ("Bitcoin", "BTC")
    bad = tmp_path / "bad.yaml"
    bad.write_text("feeds:\n  - name: x\n    url: ftp://example.com/feed\n")
    with pytest.raises(ValueError, match=r"bad\.yaml: feeds\[0\]\.url must be http"):
        load_news_config(bad)
    with pytest.raises(FileNotFoundError, match="news.example.yaml"):
        load_news_config(tmp_path / "none.yaml", required=True)


# ------------------------------------------------------------------------------ News API
@pytest.fixture
def newsapi(server, sleeps):
    def build(*, attempts: int = 3, timeout: float = 2.0, guard: Guard | None = None) -> NewsAPISource:
        return NewsAPISource(api_key=KEY, config=NewsConfig(keywords=KEYWORDS), base_url=server.url,
                             guard=guard or _guard("newsapi", sleeps, attempts=attempts, timeout=timeout))
    return build


def test_a_recorded_newsapi_answer_is_normalised_and_the_key_stays_in_the_header(server, newsapi, tmp_path, caplog):
    server.route(r"/v2/everything", Reply(200, EVERYTHING.encode(), {"Content-Type": "application/json"}))
    caplog.set_level(logging.DEBUG)
    store = NewsStore(tmp_path)
    result = store.ingest(newsapi(), ["AAPL"], start="2025-01-01")
    assert result.report["kept"] == 2
    assert store.read_quarantine("newsapi")["reason"].value_counts().to_dict() == {"removed": 1, "bad_date": 1}
    items = result.frame.set_index("title")
    assert items.loc["Apple and Microsoft beat estimates", "symbols"] == "AAPL,MSFT"
    assert items.loc["Apple shares slide after weak China sales", "publisher"] == "Reuters"
    (req,) = server.hits(r"/v2/everything")
    assert req.headers["Authorization"] == KEY and KEY not in req.raw_path
    assert req.query["q"] == ['"Apple" OR "iPhone"'] and req.query["sortBy"] == ["publishedAt"]
    assert KEY not in caplog.text
    assert KEY.encode() not in store.path("newsapi").read_bytes()


def test_newsapi_429_with_retry_after_is_retried(server, newsapi, sleeps):
    limited = json_reply({"status": "error", "code": "rateLimited", "message": "You have made too many requests."}, 429,
                         **{"Retry-After": "5"})
    server.route(r"/v2/everything", limited, Reply(200, EVERYTHING.encode(), {"Content-Type": "application/json"}))
    assert len(newsapi().fetch(["AAPL"], None, None)) == 4
    assert max(sleeps) >= 5


def test_newsapi_refused_key_is_not_retried_and_not_repeated(server, newsapi, caplog):
    server.route(r"/v2/everything", json_reply({"status": "error", "code": "apiKeyInvalid",
                                               "message": "Your API key is invalid or incorrect."}, 401))
    with pytest.raises(SourceError, match="check NEWSAPI_KEY") as info:
        newsapi().fetch(["AAPL"], None, None)
    assert KEY not in str(info.value) and len(server.hits(r"/v2/everything")) == 1


def test_newsapi_too_old_a_start_is_an_invalid_request(server, newsapi):
    server.route(r"/v2/everything", json_reply({"status": "error", "code": "parameterInvalid", "message":
                                               "You are trying to request results too far in the past."}, 426))
    with pytest.raises(InvalidRequestError, match="too far in the past"):
        newsapi().fetch(["AAPL"], pd.Timestamp("2020-01-01", tz="UTC"), None)


def test_newsapi_5xx_html_is_unavailable_after_retries(server, newsapi):
    server.route(r"/v2/everything", text_reply("<html>Bad gateway</html>", 502))
    with pytest.raises(SourceUnavailableError, match=r"HTTP 502.*3 attempts"):
        newsapi().fetch(["AAPL"], None, None)
    assert len(server.hits(r"/v2/everything")) == 3


@pytest.mark.parametrize("body", [EVERYTHING[:200], '{"status": "ok", "totalResults": 3}', "<html>maintenance</html>"])
def test_newsapi_malformed_or_truncated_200_is_a_bad_response(server, newsapi, body):
    server.route(r"/v2/everything", Reply(200, body.encode(), {"Content-Type": "application/json"}))
    with pytest.raises(BadResponseError):
        newsapi().fetch(["AAPL"], None, None)


def test_newsapi_stalled_answer_times_out(server, newsapi):
    server.route(r"/v2/everything", Reply(200, EVERYTHING.encode(), delay=3.0))
    with pytest.raises(SourceUnavailableError, match="timed out"):
        newsapi(attempts=1, timeout=0.3).fetch(["AAPL"], None, None)


def test_newsapi_budget_is_the_daily_quota_and_an_empty_budget_sends_nothing(server, newsapi, sleeps):
    budget = default_newsapi_guard().budget
    assert budget.rate == pytest.approx(DAILY_QUOTA / 86400) and budget.burst == 100
    server.route(r"/v2/everything", Reply(200, EVERYTHING.encode(), {"Content-Type": "application/json"}))
    guard = Guard("newsapi", policy=RetryPolicy(attempts=1, deadline=5.0, timeout=2.0),
                  budget=RequestBudget(DAILY_QUOTA / 86400, 1), sleep=sleeps.append)
    src = newsapi(guard=guard)
    src.fetch(["AAPL"], None, None)
    with pytest.raises(RateLimitError, match="request budget"):
        src.fetch(["AAPL"], None, None)
    assert len(server.hits(r"/v2/everything")) == 1


def test_newsapi_without_a_key_says_where_to_put_it(monkeypatch):
    monkeypatch.delenv("NEWSAPI_KEY", raising=False)
    with pytest.raises(InvalidRequestError, match="NEWSAPI_KEY=<your key>"):
        NewsAPISource()


def test_load_news_through_newsapi_scores_every_item(server, newsapi, tmp_path):
    server.route(r"/v2/everything", Reply(200, EVERYTHING.encode(), {"Content-Type": "application/json"}))
    news = load_news(["AAPL", "MSFT"], source=newsapi(), start="2025-01-01", store=NewsStore(tmp_path))
    assert sorted(news["symbol"]) == ["AAPL", "AAPL", "MSFT"]
    slide = news.loc[news["title"].str.contains("slide"), "sentiment"].iloc[0]
    assert slide < -0.05 and news.attrs["live"] is True and news.attrs["synthetic"] is False


def test_the_key_comes_from_the_settings_and_is_masked(server, monkeypatch, sleeps):
    from research.config import get_settings

    monkeypatch.setenv("NEWSAPI_KEY", KEY)
    assert get_settings().newsapi_key.get_secret_value() == KEY and KEY not in repr(get_settings())
    server.route(r"/v2/everything", Reply(200, EVERYTHING.encode(), {"Content-Type": "application/json"}))
    src = NewsAPISource(base_url=server.url, guard=_guard("newsapi", sleeps))
    src.fetch(["AAPL"], None, None)
    assert server.hits(r"/v2/everything")[0].headers["Authorization"] == KEY and KEY not in repr(src)
