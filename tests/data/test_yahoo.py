"""YahooSource through the real yfinance client, against hand-built answers on 127.0.0.1.

yfinance keeps process-wide state (one HTTP session, a cookie, a crumb, an in-process cache
of past ranges and an on-disk timezone cache): the caches point at a temporary directory and
every test uses its own symbols.
"""

from __future__ import annotations

import re
import time

import pandas as pd
import pytest
import yfinance as yf

from research.data.calendars import CRYPTO, EQUITY
from research.data.errors import (
    BadResponseError,
    EmptyResultError,
    InvalidRequestError,
    RateLimitError,
    SourceUnavailableError,
)
from research.data.resilience import CircuitBreaker, Guard, RetryPolicy
from research.data.sources import get_source
from research.data.sources.yahoo import YahooSource, normalise_yahoo_frame
from tests.data.fakes.server import FakeServer, Reply, json_reply, text_reply
from tests.data.fakes.yahoo import (
    CHART,
    chart_body,
    empty_chart_body,
    install_yahoo_basics,
    make_bars,
    not_found_body,
    reset_yfinance,
    yahoo_session,
)

UTC = "UTC"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    reset_yfinance(str(tmp_path_factory.mktemp("yf-cache")))
    with FakeServer() as srv:
        install_yahoo_basics(srv)
        yield srv


@pytest.fixture(scope="module")
def session(server):
    return yahoo_session(server)


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def guard(sleeps):
    """Real clock and timeouts, but retries do not wait (the waits are recorded)."""
    return Guard(
        "yahoo",
        policy=RetryPolicy(attempts=3, base_delay=0.5, max_delay=5.0, deadline=20.0, timeout=2.0),
        breaker=CircuitBreaker(failure_threshold=50, cooldown=60.0),
        sleep=sleeps.append,
        seed=3,
    )


@pytest.fixture
def source(session, guard):
    return YahooSource(session=session, guard=guard)


def chart_path(sym: str) -> str:
    return CHART.format(sym=re.escape(sym))


def serve(server: FakeServer, sym: str, *history: Reply, tz: str = "America/New_York", bars=None) -> None:
    """Answer the timezone probe (range=1d) normally and the history request with ``history``."""
    bars = bars if bars is not None else make_bars(["2024-01-02", "2024-01-03"])
    server.route(chart_path(sym), *history)
    server.route(chart_path(sym), json_reply(chart_body(sym, bars.iloc[-1:], tz=tz)), query={"range": "1d"})


def history_hits(server: FakeServer, sym: str) -> int:
    return sum(1 for r in server.hits(chart_path(sym)) if "period1" in r.query)


def ts(day: str) -> pd.Timestamp:
    return pd.Timestamp(day, tz=UTC)


# ------------------------------------------------------------------------- normal path
def test_daily_history_in_the_schema(server, source):
    bars = make_bars(["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"], start_price=180.0)
    serve(server, "NRM", json_reply(chart_body("NRM", bars)), bars=bars)
    frame = source.fetch("NRM", ts("2024-01-02"), ts("2024-01-05"))
    assert list(frame.columns) == ["open", "high", "low", "close", "adj_close", "volume"]
    assert all(str(t) == "float64" for t in frame.dtypes)
    assert str(frame.index.tz) == UTC and frame.index.name == "timestamp"
    assert list(frame.index) == [ts(d) for d in ["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"]]
    assert frame["close"].tolist() == [180.0, 181.0, 182.0, 183.0]
    assert frame["adj_close"].tolist() == pytest.approx([c * 0.98 for c in frame["close"]])  # kept, not applied
    assert frame["volume"].iloc[0] == 1_000_000.0
    # period1/period2 are exchange-local midnights (New York), end exclusive
    query = [r for r in server.hits(chart_path("NRM")) if "period1" in r.query][0].query
    assert int(query["period1"][0]) == int(pd.Timestamp("2024-01-02", tz="America/New_York").timestamp())
    assert int(query["period2"][0]) == int(pd.Timestamp("2024-01-06", tz="America/New_York").timestamp())
    assert frame.attrs["exchange_tz"] == "America/New_York"


def test_every_history_argument_is_explicit(server, source, monkeypatch):
    seen = {}
    original = yf.Ticker.history

    def spy(self, *args, **kwargs):
        seen.update(kwargs)
        assert not args
        return original(self, *args, **kwargs)

    monkeypatch.setattr(yf.Ticker, "history", spy)
    serve(server, "EXPL", json_reply(chart_body("EXPL", make_bars(["2024-01-02", "2024-01-03"]))))
    source.fetch("EXPL", ts("2024-01-02"), ts("2024-01-03"))
    assert {k: seen[k] for k in ("auto_adjust", "actions", "repair", "back_adjust", "keepna", "prepost", "rounding")} == {
        "auto_adjust": False, "actions": False, "repair": False, "back_adjust": False,
        "keepna": False, "prepost": False, "rounding": False,
    }
    assert seen["interval"] == "1d" and seen["period"] is None and 0 < seen["timeout"] <= 2.0
    assert str(seen["start"]) == "2024-01-02" and str(seen["end"]) == "2024-01-04"


def test_open_start_asks_for_the_whole_history(server, source, monkeypatch):
    seen = {}
    original = yf.Ticker.history
    monkeypatch.setattr(yf.Ticker, "history", lambda self, **kw: (seen.update(kw), original(self, **kw))[1])
    serve(server, "MAXH", json_reply(chart_body("MAXH", make_bars(["2024-01-02", "2024-01-03"]))))
    frame = source.fetch("MAXH", None, None)
    assert seen["period"] == "max" and seen["start"] is None and seen["end"] is None
    assert len(frame) == 2


def test_cookie_and_crumb_are_fetched_first_and_sent(server, session, guard, tmp_path):
    reset_yfinance(str(tmp_path / "fresh-cache"))
    server.requests.clear()
    serve(server, "CRMB", json_reply(chart_body("CRMB", make_bars(["2024-01-02", "2024-01-03"]))))
    YahooSource(session=session, guard=guard).fetch("CRMB", ts("2024-01-02"), ts("2024-01-03"))
    paths = [r.path for r in server.requests]
    assert paths[0].startswith("/fc.yahoo.com") and paths[1].endswith("/v1/test/getcrumb")
    chart = [r for r in server.requests if "/v8/finance/chart/" in r.path]
    assert chart and all(r.query.get("crumb") == ["fakeCrumb123"] for r in chart)
    assert all("A3=" in r.headers.get("Cookie", "") for r in chart)


def test_crypto_symbol_on_the_crypto_calendar(server, source):
    bars = make_bars(["2024-01-06", "2024-01-07", "2024-01-08"], start_price=43000.0)  # a weekend too
    serve(server, "ZZC-USD", json_reply(chart_body("ZZC-USD", bars, tz="UTC", instrument="CRYPTOCURRENCY")), tz="UTC", bars=bars)
    frame = source.fetch("ZZC-USD", ts("2024-01-06"), ts("2024-01-08"))
    assert list(frame.index) == [ts("2024-01-06"), ts("2024-01-07"), ts("2024-01-08")]
    assert source.calendar("ZZC-USD") is CRYPTO and source.calendar("AAPL") is EQUITY


def test_range_end_is_inclusive_and_start_filters(server, source):
    bars = make_bars(["2024-02-01", "2024-02-02", "2024-02-05", "2024-02-06"])
    serve(server, "INCL", json_reply(chart_body("INCL", bars)), bars=bars)
    frame = source.fetch("INCL", ts("2024-02-02"), ts("2024-02-05"))
    assert list(frame.index) == [ts("2024-02-02"), ts("2024-02-05")]


def test_hourly_bars_keep_their_instant_in_utc(server, source):
    day = pd.Timestamp.now(tz=UTC).normalize() - pd.Timedelta(days=14)
    while day.weekday() >= 5:
        day -= pd.Timedelta(days=1)
    local = [pd.Timestamp(f"{day.date()} {h}:30") for h in range(9, 16)]
    bars = make_bars(local)
    serve(server, "HRLY", json_reply(chart_body("HRLY", bars, granularity="1h")), bars=make_bars([day.date()]))
    frame = source.fetch("HRLY", day, day + pd.Timedelta(hours=23), interval="1h")
    expected = [t.tz_localize("America/New_York").tz_convert(UTC) for t in local]
    assert list(frame.index) == expected and str(frame.index.tz) == UTC


# ------------------------------------------------------------------ timezones and DST
def test_sydney_sessions_keep_their_local_date_across_dst(server, source):
    """ASX opens 10:00 local: 23:00 UTC of the previous day under AEDT (until 7 April 2024)."""
    days = ["2024-04-04", "2024-04-05", "2024-04-08", "2024-04-09"]
    bars = make_bars(days)
    body = chart_body("DSTX.AX", bars, tz="Australia/Sydney")
    stamps = pd.to_datetime(body["chart"]["result"][0]["timestamp"], unit="s", utc=True)
    assert [str(t.date()) for t in stamps] == ["2024-04-03", "2024-04-04", "2024-04-08", "2024-04-09"]  # the trap
    serve(server, "DSTX.AX", json_reply(body), tz="Australia/Sydney", bars=bars)
    frame = source.fetch("DSTX.AX", ts("2024-04-04"), ts("2024-04-09"))
    assert list(frame.index) == [ts(d) for d in days]
    assert (frame.index == frame.index.normalize()).all()
    query = [r for r in server.hits(chart_path("DSTX.AX")) if "period1" in r.query][0].query
    assert int(query["period1"][0]) == int(pd.Timestamp("2024-04-04", tz="Australia/Sydney").timestamp())


def test_new_york_dst_switch_keeps_dates(server, source):
    days = ["2024-03-07", "2024-03-08", "2024-03-11", "2024-03-12"]  # clocks changed on 10 March
    bars = make_bars(days)
    serve(server, "DSTN", json_reply(chart_body("DSTN", bars)), bars=bars)
    frame = source.fetch("DSTN", ts("2024-03-07"), ts("2024-03-12"))
    assert list(frame.index) == [ts(d) for d in days]


# ------------------------------------------------------------------ frame shapes
def _download(session, tickers, **kw):
    args = dict(start="2024-05-01", end="2024-05-04", actions=False, threads=False, auto_adjust=False,
                back_adjust=False, repair=False, keepna=False, progress=False, interval="1d", prepost=False,
                rounding=False, timeout=5, session=session)
    args.update(kw)
    return yf.download(tickers, **args)


def test_multiindex_and_flat_shapes_normalise_to_the_same_frame(server, session, source):
    a = make_bars(["2024-05-01", "2024-05-02", "2024-05-03"], start_price=50.0)
    b = make_bars(["2024-05-01", "2024-05-03"], start_price=70.0)  # one bar fewer: union adds a NaN row
    serve(server, "SHPA", json_reply(chart_body("SHPA", a)), bars=a)
    serve(server, "SHPB", json_reply(chart_body("SHPB", b)), bars=b)
    expected = source.fetch("SHPA", ts("2024-05-01"), ts("2024-05-03"))

    by_column = _download(session, ["SHPA", "SHPB"], group_by="column", multi_level_index=True)
    assert by_column.columns.names == ["Price", "Ticker"]
    by_ticker = _download(session, ["SHPA", "SHPB"], group_by="ticker", multi_level_index=True)
    assert by_ticker.columns.names == ["Ticker", "Price"]
    single_multi = _download(session, "SHPA", group_by="column", multi_level_index=True)
    assert isinstance(single_multi.columns, pd.MultiIndex)  # MultiIndex even for one ticker
    single_flat = _download(session, "SHPA", group_by="column", multi_level_index=False)
    assert not isinstance(single_flat.columns, pd.MultiIndex)

    for raw in (by_column, by_ticker, single_multi, single_flat):
        got = normalise_yahoo_frame(raw, symbol="SHPA")
        pd.testing.assert_frame_equal(got, expected, check_freq=False)
    shp_b = normalise_yahoo_frame(by_column, symbol="shpb")  # NaN row of the union dropped
    assert list(shp_b.index) == [ts("2024-05-01"), ts("2024-05-03")]


def test_converted_timezone_needs_the_exchange_timezone(server, session):
    syd = make_bars(["2024-05-07", "2024-05-08"], start_price=40.0)
    nyc = make_bars(["2024-05-07", "2024-05-08"], start_price=90.0)
    serve(server, "TZA.AX", json_reply(chart_body("TZA.AX", syd, tz="Australia/Sydney")), tz="Australia/Sydney", bars=syd)
    serve(server, "TZB", json_reply(chart_body("TZB", nyc)), bars=nyc)
    raw = _download(session, ["TZA.AX", "TZB"], start="2024-05-07", end="2024-05-09", ignore_tz=False)
    assert str(raw.index.tz) == "America/New_York"  # Sydney midnights became 10:00/11:00 the day before
    right = normalise_yahoo_frame(raw, symbol="TZA.AX", exchange_tz="Australia/Sydney")
    assert list(right.index) == [ts("2024-05-07"), ts("2024-05-08")]
    wrong = normalise_yahoo_frame(raw, symbol="TZA.AX")  # the converted wall clock gives the day before
    assert list(wrong.index) == [ts("2024-05-06"), ts("2024-05-07")]


def test_event_columns_dropped_and_missing_adj_close_tolerated():
    idx = pd.DatetimeIndex(["2024-01-02", "2024-01-03"]).tz_localize("America/New_York")
    raw = pd.DataFrame({"Open": [1.0, 2], "High": [2.0, 3], "Low": [0.5, 1], "Close": [1.5, 2.5], "Volume": [10, 20],
                        "Dividends": [0.0, 0.1], "Stock Splits": [0.0, 0.0]}, index=idx)
    out = normalise_yahoo_frame(raw, symbol="X")
    assert list(out.columns) == ["open", "high", "low", "close", "volume"]
    assert list(out.index) == [ts("2024-01-02"), ts("2024-01-03")]
    with pytest.raises(Exception, match="lacks"):
        normalise_yahoo_frame(raw.drop(columns="Close"), symbol="X")


# ------------------------------------------------------------------------------ faults
def test_rate_limit_with_retry_after_is_honoured_then_succeeds(server, source, sleeps):
    limited = text_reply("Too Many Requests\r\n", status=429, content_type="text/plain", **{"Retry-After": "3"})
    serve(server, "RLOK", limited, limited, json_reply(chart_body("RLOK", make_bars(["2024-01-02", "2024-01-03"]))))
    frame = source.fetch("RLOK", ts("2024-01-02"), ts("2024-01-03"))
    assert len(frame) == 2 and sleeps and sleeps[0] >= 3.0


def test_rate_limit_beyond_the_deadline_is_a_typed_error(server, session, sleeps):
    guard = Guard("yahoo", policy=RetryPolicy(attempts=3, deadline=5.0, timeout=2.0), sleep=sleeps.append)
    limited = text_reply("Too Many Requests\r\n", status=429, content_type="text/plain", **{"Retry-After": "120"})
    serve(server, "RLNO", limited)
    with pytest.raises(RateLimitError) as info:
        YahooSource(session=session, guard=guard).fetch("RLNO", ts("2024-01-02"), ts("2024-01-03"))
    assert info.value.retry_after == 120.0 and sleeps == []
    assert "yahoo RLNO 2024-01-02..2024-01-03 1d" in str(info.value) and "429" in str(info.value)


def test_5xx_is_retried_past_yfinance_cache(server, source, sleeps):
    down = text_reply("<html><body>503 Service Unavailable</body></html>", status=503)
    serve(server, "FIVE", down, down, json_reply(chart_body("FIVE", make_bars(["2024-01-02", "2024-01-03"]))))
    frame = source.fetch("FIVE", ts("2024-01-02"), ts("2024-01-03"))
    assert len(frame) == 2 and len(sleeps) == 2
    assert history_hits(server, "FIVE") == 3  # one request per attempt: yfinance does not re-send


def test_persistent_5xx_gives_up_naming_source_symbol_range(server, source, guard):
    serve(server, "DEAD", text_reply("<html>bad gateway</html>", status=502))
    with pytest.raises(SourceUnavailableError) as info:
        source.fetch("DEAD", ts("2024-01-02"), ts("2024-01-03"))
    assert str(info.value).startswith("yahoo DEAD 2024-01-02..2024-01-03 1d: Yahoo answered HTTP 502")
    assert "gave up after 3 attempts" in str(info.value)
    assert guard.stats.attempts == 3


def test_stalled_answer_times_out_within_bounds(server, session, sleeps):
    guard = Guard("yahoo", policy=RetryPolicy(attempts=2, base_delay=0.1, deadline=10.0, timeout=0.4), sleep=sleeps.append)
    serve(server, "STAL", Reply(200, b"{}", delay=5.0))
    began = time.monotonic()
    with pytest.raises(SourceUnavailableError, match="timed out"):
        YahooSource(session=session, guard=guard).fetch("STAL", ts("2024-01-02"), ts("2024-01-03"))
    assert time.monotonic() - began < 2.5


@pytest.mark.parametrize(
    ("sym", "reply", "kind", "text"),
    [
        ("HTML", text_reply("<!DOCTYPE html><html><body>Yahoo</body></html>"), BadResponseError, "not valid JSON"),
        ("TRUN", Reply(200, b'{"chart": {"result": [{"meta": {"currency": "USD", "symbol": "TR', {"Content-Type": "application/json"}), BadResponseError, "not valid JSON"),
        ("EMPT", json_reply(empty_chart_body("EMPT")), EmptyResultError, "possibly delisted"),
        ("GONE", json_reply(not_found_body(), status=404), EmptyResultError, "unknown or delisted"),
        ("DOWN", text_reply("<html>Will be right back...</html>"), SourceUnavailableError, "down"),
        ("DROP", Reply(200, b'{"chart": {"result": []}}' * 20, {"Content-Type": "application/json"}, cut_after=30), SourceUnavailableError, "connection failed"),
    ],
)
def test_garbage_and_empty_answers_are_typed(server, source, guard, sym, reply, kind, text):
    serve(server, sym, reply)
    with pytest.raises(kind, match=text) as info:
        source.fetch(sym, ts("2024-01-02"), ts("2024-01-03"))
    assert type(info.value) is kind
    assert f"yahoo {sym} 2024-01-02..2024-01-03 1d" in str(info.value)
    assert guard.stats.attempts == (1 if not kind.retryable else 3)


def test_yfinance_switches_are_restored_after_errors(server, source):
    before = (yf.config.debug.hide_exceptions, yf.config.network.retries)
    serve(server, "RSTR", text_reply("<html>x</html>"))
    with pytest.raises(BadResponseError):
        source.fetch("RSTR", ts("2024-01-02"), ts("2024-01-03"))
    assert (yf.config.debug.hide_exceptions, yf.config.network.retries) == before


# --------------------------------------------------------------- refused before any request
@pytest.mark.parametrize(
    ("symbol", "start", "end", "interval", "text"),
    [
        ("AAPL", "2024-01-02", "2024-01-03", "5m", "interval '5m' is not supported"),
        ("AAPL", "2024-01-02", "2024-01-03", "1y", "interval '1y' is not supported"),
        ("", None, None, "1d", "not a Yahoo ticker"),
        ("AA PL", None, None, "1d", "not a Yahoo ticker"),
        ("US0378331005", None, None, "1d", "ISIN"),
        ("AAPL", "2024-02-01", "2024-01-01", "1d", "after end"),
        ("AAPL", "2999-01-01", None, "1d", "in the future"),
        ("AAPL", "2010-01-04", None, "1h", "730 days"),
    ],
)
def test_invalid_requests_fail_before_any_request(server, source, symbol, start, end, interval, text):
    before = len(server.requests)
    with pytest.raises(InvalidRequestError, match=text):
        source.fetch(symbol, start and ts(start), end and ts(end), interval)
    assert len(server.requests) == before


def test_get_source_and_provenance():
    src = get_source("yahoo")
    assert isinstance(src, YahooSource) and src.live and not src.synthetic
    assert "auto_adjust=False" in src.provenance("AAPL")
    assert "yfinance" in src.libraries
