"""Sentiment of headlines: VADER with a finance overlay, behind a scorer interface.

A scorer is anything with ``score(texts) -> numpy array`` of floats in ``[-1, 1]`` (negative
to positive), one per text, and a ``name``: :class:`Scorer` is the protocol, so a user's own
model (a fine-tuned transformer, a dictionary of their own) plugs in by having that method::

    class MyScorer:
        name = "mine"
        def score(self, texts): return np.array([my_model(t) for t in texts])

    load_news("SPX", scorer=MyScorer())

A scorer with a ``fingerprint`` attribute (a name that changes whenever its scores would) has
its scores cached by the news store, per item; the default scorer has one.

The default, :class:`VaderScorer`, is VADER (the ``vaderSentiment`` package, whose lexicon
ships in the wheel, so it works offline): the ``compound`` score of each text. General-purpose
VADER misreads finance: "beats", "misses", "downgrade" or "guidance cut" mean little to it.
The overlay (:data:`FINANCE_LEXICON`, :data:`FINANCE_PHRASES`) adds or replaces the valence of
such words, and phrases are joined into single tokens before scoring. Valences are on VADER's
scale (-4 to 4).

:func:`label` turns scores into ``positive`` / ``negative`` / ``neutral`` with VADER's usual
thresholds (+-0.05). The accuracy on the labelled headlines kept in the tests is reported by
``tests/news/test_sentiment.py`` and in ``docs/news.md``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["Scorer", "VaderScorer", "FINANCE_LEXICON", "FINANCE_PHRASES", "label", "get_scorer"]

#: Finance words and their valence (VADER scale, -4..4); they win over VADER's own.
FINANCE_LEXICON: dict[str, float] = {
    # results and guidance
    "beat": 2.0, "beats": 2.0, "tops": 1.8, "top": 0.0, "exceeds": 1.8, "surpasses": 1.8, "outperform": 1.8,
    "outperforms": 1.8, "miss": -2.0, "misses": -2.0, "missed": -2.0, "shortfall": -2.0, "underperform": -1.8,
    "underperforms": -1.8, "record": 1.2, "profit": 1.2, "profits": 1.2, "profitable": 1.5, "loss": -1.8,
    "losses": -1.8, "raises": 1.2, "raised": 1.0, "lifts": 1.2, "boosts": 1.5, "lowers": -1.2, "cuts": -1.5,
    "cut": -1.5, "slashes": -2.2, "trims": -1.0, "reaffirms": 0.6, "strong": 1.5, "weak": -1.8, "weaker": -1.8,
    "weakness": -1.8, "stronger": 1.5, "robust": 1.5, "solid": 1.2, "disappointing": -2.0, "disappoints": -2.0,
    "upbeat": 1.8, "downbeat": -1.8, "optimistic": 1.5, "pessimistic": -1.5,
    # analysts and ratings
    "upgrade": 2.0, "upgrades": 2.0, "upgraded": 2.0, "downgrade": -2.0, "downgrades": -2.0,
    "downgraded": -2.0, "overweight": 1.2, "underweight": -1.2, "buy": 0.8, "sell": -0.8,
    # prices and markets
    "rally": 1.8, "rallies": 1.8, "surge": 2.0, "surges": 2.0, "soar": 2.2, "soars": 2.2, "jump": 1.6,
    "jumps": 1.6, "climbs": 1.4, "gains": 1.4, "gain": 1.4, "rises": 1.0, "rebound": 1.4, "rebounds": 1.4,
    "high": 0.6, "highs": 0.8, "plunge": -2.4, "plunges": -2.4, "plummets": -2.6, "tumble": -2.2,
    "tumbles": -2.2, "slump": -2.0, "slumps": -2.0, "slide": -1.6, "slides": -1.6, "sinks": -1.8,
    "falls": -1.2, "fall": -1.2, "drops": -1.2, "drop": -1.2, "declines": -1.2, "decline": -1.2, "slips": -1.0,
    "selloff": -2.0, "crash": -2.8, "crashes": -2.8, "low": -0.6, "lows": -0.8, "volatile": -0.8,
    "bullish": 2.0, "bearish": -2.0,
    # corporate events
    "buyback": 1.5, "buybacks": 1.5, "dividend": 0.8, "layoffs": -1.8, "layoff": -1.8, "bankruptcy": -3.0,
    "bankrupt": -3.0, "default": -2.5, "defaults": -2.5, "insolvency": -3.0, "fraud": -3.0, "lawsuit": -1.8,
    "probe": -1.5, "investigation": -1.5, "recall": -1.6, "recalls": -1.6, "fine": -0.5, "fined": -1.8,
    "penalty": -1.6, "delisted": -2.5, "delisting": -2.5, "restatement": -2.0, "writedown": -2.0,
    "impairment": -1.8, "warns": -1.6, "warning": -1.6, "halts": -1.5, "suspends": -1.5, "resigns": -1.0,
    "approval": 1.5, "approves": 1.2, "approved": 1.2, "wins": 1.8, "win": 1.6, "awarded": 1.5,
    "expansion": 1.2, "expands": 1.2, "growth": 1.4, "grows": 1.2, "accretive": 1.5, "dilutive": -1.5,
    "headwinds": -1.5, "tailwinds": 1.5, "shortage": -1.2, "breakthrough": 2.0, "unchanged": 0.0,
    "inline": 0.0, "volatility": -0.5, "debt": -0.8, "concerns": -1.2, "outage": -1.8, "breach": -2.0,
    "hack": -2.0, "sanctions": -1.5, "tariffs": -1.2, "strike": -1.2, "exits": -0.5, "shutters": -1.8,
}

#: Phrases scored as one token (joined with underscores before VADER sees them).
FINANCE_PHRASES: dict[str, float] = {
    "guidance cut": -2.5, "cuts guidance": -2.5, "lowers guidance": -2.2, "raises guidance": 2.2,
    "profit warning": -2.5, "going concern": -2.8, "chapter 11": -3.0, "short seller": -1.5,
    "all-time high": 2.0, "all time high": 2.0, "record high": 2.0, "record low": -2.0, "new high": 1.6,
    "new low": -1.6, "price target raised": 1.8, "raises price target": 1.8, "cuts price target": -1.8,
    "price target cut": -1.8, "beats estimates": 2.2, "misses estimates": -2.2, "below expectations": -2.0,
    "above expectations": 2.0, "in line with": 0.0, "margin expansion": 1.8, "margin pressure": -1.8,
    "share buyback": 1.6, "job cuts": -1.8, "rate cut": 0.8, "rate hike": -0.8, "sell-off": -2.0,
    "falling margins": -1.8, "weak demand": -2.0, "strong demand": 2.0, "credit downgrade": -2.4,
    "cash burn": -1.8, "free cash flow": 0.8, "takeover bid": 1.5, "hostile takeover": 0.5,
}


@runtime_checkable
class Scorer(Protocol):
    """Anything that scores texts: ``score(texts)`` gives one float in [-1, 1] per text."""

    name: str

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """Sentiment of each text, negative to positive, in [-1, 1]."""
        ...


def _phrase_token(phrase: str) -> str:
    return re.sub(r"[\s\-]+", "_", phrase.lower())


class VaderScorer:
    """VADER's compound score with the finance overlay.

    Parameters
    ----------
    lexicon : dict, optional
        Word valences that win over VADER's (default :data:`FINANCE_LEXICON`; ``{}`` for
        plain VADER).
    phrases : dict, optional
        Phrase valences (default :data:`FINANCE_PHRASES`).
    """

    name = "vader+finance"

    def __init__(self, *, lexicon: dict[str, float] | None = None, phrases: dict[str, float] | None = None) -> None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self._vader = SentimentIntensityAnalyzer()
        words = FINANCE_LEXICON if lexicon is None else lexicon
        phrases = FINANCE_PHRASES if phrases is None else phrases
        if lexicon == {} and phrases == {}:
            self.name = "vader"
        self._vader.lexicon.update({k.lower(): float(v) for k, v in words.items()})
        self._phrases = sorted(phrases, key=len, reverse=True)
        self._vader.lexicon.update({_phrase_token(p): float(v) for p, v in phrases.items()})
        self._pattern = (re.compile(r"\b(" + "|".join(re.escape(p) for p in self._phrases) + r")\b", re.IGNORECASE)
                         if self._phrases else None)
        recipe = json.dumps([self.name, _vader_version(), sorted(words.items()), sorted(phrases.items())])
        #: Identifies the scores (the news store caches them by item under this name).
        self.fingerprint = f"{self.name.replace('+', '-')}-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"

    def _prepare(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda m: _phrase_token(m.group(0)), text)

    def score(self, texts: Iterable[str]) -> np.ndarray:
        """VADER compound score of each text (``NaN``-free; empty text scores 0)."""
        polarity = self._vader.polarity_scores
        return np.array([polarity(self._prepare(str(t)))["compound"] if t else 0.0 for t in texts], dtype="float64")


def _vader_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("vaderSentiment")
    except metadata.PackageNotFoundError:  # pragma: no cover
        return "?"


def label(scores: np.ndarray, *, threshold: float = 0.05) -> np.ndarray:
    """``"positive"``, ``"negative"`` or ``"neutral"`` for each score (VADER's +-0.05 rule)."""
    s = np.asarray(scores, dtype="float64")
    return np.where(s >= threshold, "positive", np.where(s <= -threshold, "negative", "neutral"))


_DEFAULT: VaderScorer | None = None


def get_scorer(scorer: Scorer | str | None = None) -> Scorer:
    """The default scorer (built once), a scorer by name (``"vader+finance"``, ``"vader"``), or ``scorer``."""
    global _DEFAULT
    if scorer is None or scorer == "vader+finance":
        if _DEFAULT is None:
            _DEFAULT = VaderScorer()
        return _DEFAULT
    if scorer == "vader":
        return VaderScorer(lexicon={}, phrases={})
    if isinstance(scorer, str):
        raise ValueError(f"unknown scorer {scorer!r}; expected 'vader+finance', 'vader' or an object with score(texts)")
    if not callable(getattr(scorer, "score", None)):
        raise TypeError(f"a scorer needs a score(texts) method returning one float per text; got {type(scorer).__name__}")
    return scorer
