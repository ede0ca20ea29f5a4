"""Sentiment scorers: accuracy on labelled finance headlines, the overlay, plugging in a scorer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from research.news import load_news
from research.news.sentiment import Scorer, VaderScorer, get_scorer, label
from research.news.store import NewsStore

LABELLED = pd.read_csv(Path(__file__).parent / "data" / "labelled_headlines.csv")


def test_the_labelled_set_is_large_and_balanced():
    counts = LABELLED["label"].value_counts()
    assert len(LABELLED) >= 200 and not LABELLED["headline"].duplicated().any()
    assert set(counts.index) == {"positive", "negative", "neutral"} and counts.min() / counts.max() > 0.8


def test_vader_with_the_finance_overlay_beats_the_majority_baseline_and_plain_vader():
    truth = LABELLED["label"].to_numpy()
    baseline = LABELLED["label"].value_counts(normalize=True).max()
    plain = (label(get_scorer("vader").score(LABELLED["headline"])) == truth).mean()
    overlay = (label(get_scorer().score(LABELLED["headline"])) == truth).mean()
    print(f"sentiment accuracy on {len(LABELLED)} headlines: vader+finance {overlay:.1%}, plain vader {plain:.1%}, "
          f"majority class {baseline:.1%}")
    assert overlay > baseline + 0.3
    assert overlay > plain


@pytest.mark.parametrize(("text", "sign"), [
    ("Acme misses estimates", -1), ("Acme beats estimates", 1), ("Acme guidance cut", -1),
    ("Broker downgrade for Acme", -1), ("Acme files for bankruptcy", -1), ("Acme upgrade to overweight", 1),
])
def test_the_overlay_reads_finance_words(text, sign):
    assert np.sign(VaderScorer().score([text])[0]) == sign


def test_scores_are_bounded_and_empty_text_is_neutral():
    s = get_scorer().score(["", "Stocks soar soar soar to record record highs!!!", "Total collapse, bankruptcy, fraud"])
    assert s[0] == 0.0 and (np.abs(s) <= 1).all() and s[1] > 0.5 and s[2] < -0.5


def test_a_users_own_scorer_plugs_in(tmp_path):
    class Length:
        name = "length"

        def score(self, texts):
            return np.array([min(len(t) / 100, 1.0) for t in texts])

    assert isinstance(Length(), Scorer)
    news = load_news("SYN0005", scorer=Length(), store=NewsStore(tmp_path))
    assert news.attrs["scorer"] == "length"
    np.testing.assert_allclose(news["sentiment"], np.minimum(news["title"].str.len() / 100, 1.0))
    with pytest.raises(TypeError, match="score"):
        load_news("SYN0005", scorer=object(), store=NewsStore(tmp_path))
    with pytest.raises(ValueError, match="unknown scorer"):
        get_scorer("finbert")


def test_scores_of_a_fingerprinted_scorer_are_cached_per_item_and_a_damaged_cache_is_rebuilt(tmp_path):
    class Counting:
        name, fingerprint = "counting", "counting-v1"

        def __init__(self):
            self.scored = 0

        def score(self, texts):
            self.scored += len(texts)
            return np.array([0.5 if "beat" in t else -0.5 for t in texts])

    store, scorer = NewsStore(tmp_path), Counting()
    first = load_news(["SYN0006", "SYN0007"], start="2001-01-01", end="2001-12-31", scorer=scorer, store=store)
    assert scorer.scored == len(first)
    again = load_news(["SYN0006"], start="2001-01-01", end="2001-06-30", scorer=scorer, store=store)
    assert scorer.scored == len(first)  # nothing scored twice
    pd.testing.assert_series_equal(again["sentiment"], first.set_index("hash").loc[again["hash"], "sentiment"]
                                   .reset_index(drop=True), check_names=False)
    cache = next((tmp_path / "news" / "scores").glob("synthetic.counting-v1.parquet"))
    cache.write_bytes(cache.read_bytes()[:100])
    rebuilt = load_news(["SYN0006"], start="2001-01-01", end="2001-06-30", scorer=scorer, store=store)
    assert scorer.scored == len(first) + len(rebuilt)
    np.testing.assert_array_equal(rebuilt["sentiment"], again["sentiment"])
    assert VaderScorer().fingerprint != VaderScorer(lexicon={"beats": 4.0}).fingerprint
