"""Point-in-time sentiment features: the session rule, look-ahead checks, the planted link."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from scipy.stats import spearmanr

from research.data.calendars import CRYPTO, EQUITY
from research.data.sources.synthetic import synthetic_ohlcv
from research.features import FEATURE_SETS, feature_set
from research.features.checks import assert_no_lookahead, check_lookahead
from research.news import NEWS_FEATURES, load_news, sentiment_features
from research.news.sessions import assign_bars, bar_closes, session_close
from research.news.sources.synthetic import SyntheticNews
from research.news.store import NewsStore

UTC = "UTC"


def _news(rows: list[tuple[str, str, float]], symbol: str = "AAA", *, seen: list[str] | None = None) -> pd.DataFrame:
    """Scored items: (published, title, sentiment); ``seen`` makes them live items."""
    published = pd.to_datetime([r[0] for r in rows], utc=True)
    seen_t = pd.to_datetime(seen, utc=True) if seen else published
    available = pd.Series(published).where(pd.Series(published) >= pd.Series(seen_t), pd.Series(seen_t))
    return pd.DataFrame({"published": published, "seen": seen_t, "available": available.to_numpy(),
                         "title": [r[1] for r in rows], "sentiment": [r[2] for r in rows], "symbol": symbol})


def _bars(start: str, n: int, calendar=EQUITY) -> pd.DataFrame:
    index = calendar.sessions(pd.Timestamp(start, tz=UTC), pd.Timestamp(start, tz=UTC) + pd.Timedelta(days=3 * n))[:n]
    bars = pd.DataFrame({"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0}, index=index)
    bars.attrs.update(symbol="AAA", calendar=calendar.name, interval="1d")
    return bars


def test_equity_close_is_16h_new_york_in_winter_and_summer_and_13h_on_early_closes():
    days = pd.DatetimeIndex(["2024-01-08", "2024-07-08", "2024-11-29", "2024-12-24"], tz=UTC)
    closes = session_close(days, EQUITY)
    assert [c.strftime("%H:%M") for c in closes] == ["21:00", "20:00", "18:00", "18:00"]
    assert list(session_close(days[:1], CRYPTO)) == [pd.Timestamp("2024-01-09", tz=UTC)]


def test_an_item_after_the_close_or_on_a_weekend_belongs_to_the_next_session():
    bars = _bars("2024-07-01", 8)  # Mon 1 Jul .. (4 Jul holiday)
    news = _news([
        ("2024-07-01 19:59", "in session", 1.0),      # before 16:00 New York (20:00 UTC in summer)
        ("2024-07-01 20:00", "at the close", -1.0),   # at the close: next session
        ("2024-07-03 16:59", "early close day", 0.5),  # 3 July closes 13:00 New York = 17:00 UTC
        ("2024-07-03 17:30", "after early close", -0.5),  # -> Fri 5 July (4 July is a holiday)
        ("2024-07-06 12:00", "saturday", 0.25),        # -> Mon 8 July
    ])
    f = sentiment_features(bars, news)
    by_day = f["news_count"].rename(lambda t: t.strftime("%a %d"))
    assert by_day.to_dict() == {"Mon 01": 1, "Tue 02": 1, "Wed 03": 1, "Fri 05": 1, "Mon 08": 1,
                                "Tue 09": 0, "Wed 10": 0, "Thu 11": 0}
    assert f.loc["2024-07-02", "sentiment_mean"] == -1.0 and f.loc["2024-07-05", "sentiment_mean"] == -0.5


def test_a_live_item_counts_from_when_it_was_seen_not_when_it_was_stamped():
    bars = _bars("2024-03-04", 3)
    stamped_in_session = [("2024-03-04 15:00", "stamped at 10:00 New York", 1.0)]
    archive = sentiment_features(bars, _news(stamped_in_session))
    live = sentiment_features(bars, _news(stamped_in_session, seen=["2024-03-04 22:00"]))  # seen after the close
    assert archive["news_count"].tolist() == [1, 0, 0]
    assert live["news_count"].tolist() == [0, 1, 0]


def test_crypto_days_close_at_midnight_utc():
    bars = _bars("2024-03-01", 3, CRYPTO)
    f = sentiment_features(bars, _news([("2024-03-01 23:59:59", "late", 1.0), ("2024-03-02 00:00:00", "midnight", 1.0)]))
    assert f["news_count"].tolist() == [1, 1, 0]


def test_hourly_bars_take_the_items_of_their_hour():
    index = pd.date_range("2024-03-01 10:00", periods=4, freq="h", tz=UTC, name="timestamp")
    bars = pd.DataFrame({"close": 1.0}, index=index)
    news = _news([("2024-03-01 10:30:00", "a", 1.0), ("2024-03-01 11:00:00", "b", -1.0), ("2024-03-01 09:59:00", "c", 1.0)],
                 "BTC-USD")
    f = sentiment_features(bars, news, interval="1h", calendar="crypto")
    assert f["news_count"].tolist() == [1, 1, 0, 0]  # 09:59 belongs to the 09:00 bar, which is not there
    assert f["sentiment_mean"].tolist() == [1.0, -1.0, 0.0, 0.0]


def test_synthetic_news_beside_real_prices_is_said_so(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path))
    from research.data import load_prices

    spx = load_prices("SPX").loc["2017"]
    feature_set(spx, "sentiment")
    assert "synthetic news" in caplog.text


@given(
    times=st.lists(st.integers(0, 40 * 86400), min_size=1, max_size=40),
    gaps=st.lists(st.integers(0, 29), max_size=5),
    crypto=st.booleans(),
)
@example(times=[0], gaps=[], crypto=False)
def test_every_item_lands_in_the_first_bar_closing_after_it(times, gaps, crypto):
    cal = CRYPTO if crypto else EQUITY
    bars = _bars("2024-02-01", 30, cal).drop(index=_bars("2024-02-01", 30, cal).index[sorted(set(gaps))])
    stamps = pd.Timestamp("2024-01-31", tz=UTC) + pd.to_timedelta(times, unit="s")
    closes = bar_closes(bars.index, cal)
    pos = assign_bars(pd.Series(stamps), closes, first_open=pd.Timestamp("2024-01-31 21:00", tz=UTC))
    for t, p in zip(stamps, pos, strict=True):
        if p >= 0:
            assert closes[p] > t and (p == 0 or closes[p - 1] <= t)
        else:
            assert t >= closes[-1] or t < pd.Timestamp("2024-01-31 21:00", tz=UTC)


@given(
    hours=st.lists(st.integers(-72, 24 * 45), min_size=1, max_size=60),
    lags=st.lists(st.integers(0, 30), min_size=1, max_size=60),
    crypto=st.booleans(),
)
def test_every_item_available_within_the_bars_is_counted_once_and_never_early(hours, lags, crypto):
    cal = CRYPTO if crypto else EQUITY
    bars = _bars("2024-02-01", 25, cal)
    t0 = pd.Timestamp("2024-02-01", tz=UTC)
    rows = [((t0 + pd.Timedelta(hours=h)).strftime("%Y-%m-%d %H:%M:%S"), "x", 1.0) for h in hours]
    seen = [(t0 + pd.Timedelta(hours=h + lags[i % len(lags)])).strftime("%Y-%m-%d %H:%M:%S") for i, h in enumerate(hours)]
    news = _news(rows, seen=seen)
    f = sentiment_features(bars, news)
    closes = bar_closes(bars.index, cal)
    opened = session_close(cal.sessions(t0 - pd.Timedelta(days=7), t0 - pd.Timedelta(days=1))[-1:], cal)[0] if not crypto else t0
    inside = news["available"].between(opened, closes[-1], inclusive="left")
    assert f["news_count"].sum() == inside.sum()
    counted = np.repeat(np.arange(len(bars)), f["news_count"].astype(int))
    when = np.sort(news.loc[inside, "available"].to_numpy())
    assert (when < closes[counted].to_numpy()).all()  # never after the bar's close
    later = counted > 0
    assert (when[later] >= closes[counted[later] - 1].to_numpy()).all()  # nor held back a bar


# ------------------------------------------------------------------------ look-ahead
@pytest.fixture(scope="module")
def linked(tmp_path_factory):
    """Synthetic news with a planted link, and the synthetic prices it is linked to."""
    store = NewsStore(tmp_path_factory.mktemp("news"))
    out = {}
    for symbol in ("SYN0003", "ETH-USD"):
        src = SyntheticNews(seed=11, link=0.3, bars=1500)
        bars = src.prices().fetch(symbol, None, None)
        bars.attrs.update(symbol=symbol, calendar="crypto" if symbol.endswith("-USD") else "equity", interval="1d")
        out[symbol] = (bars, load_news(symbol, source=src, store=store))
    return out


def _cut_news(fn, bars: pd.DataFrame, news: pd.DataFrame, cuts: int = 15) -> list[str]:
    """Features up to each cut must not change when the items available after its close go."""
    full = fn(bars, news).to_numpy()
    closes = bar_closes(bars.index, EQUITY if bars.attrs.get("calendar") == "equity" else CRYPTO)
    problems = []
    for cut in np.linspace(30, len(bars) - 2, cuts).astype(int):
        kept = news[news["available"] < closes[cut]]
        got = fn(bars.iloc[: cut + 1], kept).to_numpy()
        if not np.array_equal(full[: cut + 1], got, equal_nan=True):
            problems.append(f"cut {cut}")
    return problems


@pytest.mark.parametrize("name", ["sentiment", "lstm_sentiment"])
def test_news_sets_pass_check_lookahead_on_bars_and_on_news(name, linked):
    for bars, news in linked.values():
        report = assert_no_lookahead(lambda b, n=news: feature_set(b, name, news=n), bars, cuts=15)
        assert report.comparisons == 30
        assert _cut_news(lambda b, n: feature_set(b, name, news=n), bars, news) == []
    assert set(NEWS_FEATURES) <= set(FEATURE_SETS[name])


def test_the_news_check_catches_dating_items_by_their_calendar_day(linked):
    """A canary: counting an item on the bar of its UTC date uses after-close headlines a day early."""

    def by_date(bars, news):
        day = news["available"].dt.normalize()
        return news.groupby(day)["sentiment"].mean().reindex(bars.index).fillna(0.0)

    bars, news = linked["SYN0003"]
    assert _cut_news(by_date, bars, news) != []
    assert check_lookahead(lambda b: by_date(b, news), bars, cuts=10).ok  # the bar-only check cannot see it


def test_the_news_check_catches_live_items_counted_from_their_stamp(linked):
    bars, news = linked["SYN0003"]
    live = news.assign(seen=news["published"] + pd.Timedelta(hours=8))
    live["available"] = live[["published", "seen"]].max(axis=1)
    from_stamp = live.assign(available=live["published"])
    assert _cut_news(lambda b, n: sentiment_features(b, n.assign(available=n["published"])), bars, live) != []
    assert _cut_news(lambda b, n: sentiment_features(b, n), bars, live) == []
    assert not sentiment_features(bars, from_stamp).equals(sentiment_features(bars, live))


# ---------------------------------------------------------------------- planted link
def _oos_ic(bars: pd.DataFrame, feats: pd.DataFrame) -> tuple[float, int]:
    """Spearman IC, on the second half, of a one-factor forecast fitted on the first half."""
    nxt = bars["close"].pct_change().shift(-1)
    x, y = feats["sentiment_mean"], nxt
    ok = x.notna() & y.notna()
    x, y = x[ok], y[ok]
    half = len(x) // 2
    slope = np.polyfit(x.iloc[:half], y.iloc[:half], 1)[0]
    ic = spearmanr(slope * x.iloc[half:], y.iloc[half:]).statistic
    return float(ic), len(x) - half


@pytest.mark.parametrize("symbol", ["SYN0003", "ETH-USD"])
def test_the_pipeline_recovers_a_planted_link_and_finds_none_without(symbol, tmp_path):
    store = NewsStore(tmp_path)
    ics = {}
    for link in (0.3, 0.0):
        src = SyntheticNews(seed=11, link=link, bars=1500)
        bars = src.prices().fetch(symbol, None, None)
        bars.attrs.update(symbol=symbol)
        news = load_news(symbol, source=src, store=store)
        assert news.attrs["synthetic"] is True
        feats = feature_set(bars, "sentiment", news=news)
        ics[link] = _oos_ic(bars, feats)
    (ic_linked, n), (ic_none, _) = ics[0.3], ics[0.0]
    print(f"{symbol}: out-of-sample IC {ic_linked:+.3f} with link=0.3, {ic_none:+.3f} with link=0 (n={n})")
    assert ic_linked > 4 / np.sqrt(n)  # clearly positive
    assert abs(ic_none) < 3 / np.sqrt(n)  # indistinguishable from none


def test_feature_set_loads_the_news_of_the_bars_symbol_when_not_given(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path))
    bars = synthetic_ohlcv("SYN0004", bars=300)
    bars.attrs["symbol"] = "SYN0004"
    feats = feature_set(bars, "lstm_sentiment")
    assert list(feats.columns[-3:]) == list(NEWS_FEATURES)
    assert feats.attrs["news_source"] == "synthetic" and feats.attrs["news_synthetic"] is True
    assert feats["news_count"].sum() > 300
    with pytest.raises(ValueError, match="no news inputs"):
        feature_set(bars, "lstm", news=load_news("SYN0004"))
    bars.attrs.clear()
    with pytest.raises(ValueError, match="symbol"):
        feature_set(bars, "sentiment")


def test_the_lstm_set_with_news_inputs_is_model_ready_after_its_warm_up(linked):
    from research.features import drop_warmup

    bars, news = linked["SYN0003"]
    feats = drop_warmup(feature_set(bars, "lstm_sentiment", news=news))
    assert list(feats.columns) == list(FEATURE_SETS["lstm"]) + list(NEWS_FEATURES)
    assert np.isfinite(feats.to_numpy()).all() and len(feats) > len(bars) - 40
