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
