"""Seeded synthetic headlines, optionally linked to the synthetic prices (labelled synthetic).

Every symbol's stream is a pure function of ``(seed, symbol, link, rate, bars, start)``. It
follows the sessions of the synthetic price path of the same seed, bars and start
(:func:`research.data.sources.synthetic.synthetic_ohlcv`): each session gets a Poisson number
of items (``rate`` on average), published at uniform times between the previous session's
close and this session's close, so some are dated the calendar day before (after its close)
and belong to this session by the point-in-time rule.

``link`` (0 by default: no information) plants a relation to the prices: each item is, with
probability ``link``, *informed*: its headline is positive when the *next* session's
synthetic return is positive and negative otherwise. The other items are positive, negative
or neutral at random. So with ``link > 0`` the sentiment known at a session's close predicts
the next session's return; with ``link = 0`` it predicts nothing.

Everything generated says so: each title ends with ``(synthetic #n)`` (which also keeps titles
apart), the source and publisher are ``synthetic``, urls point to the
reserved host ``synthetic.invalid``, the store's manifest and the frames carry
``synthetic = True``.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from research.data.calendars import calendar_of
from research.data.sources.synthetic import SyntheticSource, synthetic_ohlcv
from research.news.sessions import session_close
from research.news.sources import RAW_COLUMNS, NewsSource
from research.timeutil import to_utc, to_utc_index

__all__ = ["SyntheticNews", "synthetic_news", "TEMPLATES"]

_ORIGIN = pd.Timestamp("2000-01-03", tz="UTC")
_BARS = 6000

#: Headline templates by polarity ({s} is the symbol).
TEMPLATES: dict[int, tuple[str, ...]] = {
    1: (
        "{s} beats quarterly earnings estimates",
        "{s} raises full-year guidance after strong demand",
        "Analysts upgrade {s} to buy on margin expansion",
        "{s} shares rally after record revenue",
        "{s} wins major contract, profit outlook improves",
        "{s} announces share buyback and dividend increase",
        "{s} posts strong growth as sales surge",
        "Upbeat outlook lifts {s} to a new high",
    ),
    -1: (
        "{s} misses earnings estimates as costs rise",
        "{s} cuts guidance, warns of weak demand",
        "Analysts downgrade {s} to sell on falling margins",
        "{s} shares plunge after profit warning",
        "{s} faces lawsuit over accounting fraud allegations",
        "{s} announces layoffs as losses widen",
        "Regulators probe {s}; shares slump",
        "{s} suspends dividend amid mounting debt concerns",
    ),
    0: (
        "{s} to report quarterly results next week",
        "{s} schedules annual shareholder meeting",
        "{s} names new chief financial officer",
        "{s} files quarterly report with the SEC",
        "{s} to present at industry conference",
        "{s} trading volume in line with average",
        "{s} completes previously announced reorganisation",
        "What to watch for in {s} this week",
    ),
}


def _rng(seed: int, symbol: str) -> np.random.Generator:
    digest = hashlib.sha256(f"news:{seed}:{symbol}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def synthetic_news(
    symbol: str, *, seed: int = 42, link: float = 0.0, rate: float = 2.0, bars: int = _BARS,
    start: pd.Timestamp | str = _ORIGIN,
) -> pd.DataFrame:
    """One symbol's synthetic headlines (raw items; see the module docstring).

    Returns
    -------
    DataFrame
        Columns :data:`~research.news.sources.RAW_COLUMNS` plus ``polarity`` (the planted
        -1/0/1) and ``informed`` (whether the item was planted from the next return).
    """
    if not 0.0 <= link <= 1.0:
        raise ValueError(f"link must be in [0, 1] (the share of informed items), got {link!r}")
    if rate <= 0:
        raise ValueError(f"rate must be positive (items per session), got {rate!r}")
    prices = synthetic_ohlcv(symbol, bars=bars, seed=seed, start=start)
    cal = calendar_of(symbol)
    closes = session_close(prices.index, cal)
    opens = closes.insert(0, closes[0] - pd.Timedelta(days=1))[:-1]  # the previous session's close
    close = prices["close"].to_numpy()
    nxt = np.append(np.sign(close[1:] / close[:-1] - 1.0), 0.0)
    rng = _rng(seed, symbol)
    counts = rng.poisson(rate, len(prices))
    session = np.repeat(np.arange(len(prices)), counts)
    n = len(session)
    informed = (rng.random(n) < link) & (nxt[session] != 0)
    polarity = np.where(informed, nxt[session], rng.integers(-1, 2, n)).astype(int)
    pick = rng.integers(0, 8, n)
    span = (closes.asi8 - opens.asi8)[session]
    stamp = opens.asi8[session] + (rng.random(n) * span).astype("int64")
    published = to_utc_index(stamp).floor("s")
    titles = [f"{TEMPLATES[p][k].format(s=symbol)} (synthetic #{i})"
              for i, (p, k) in enumerate(zip(polarity, pick, strict=True))]
    frame = pd.DataFrame({
        "published": published,
        "title": titles,
        "summary": [f"Synthetic item about {symbol} (not real news)."] * n,
        "url": [f"https://synthetic.invalid/{symbol}/{t:%Y%m%d%H%M%S}-{i}" for i, t in enumerate(published)],
        "symbols": [symbol] * n,
        "publisher": ["synthetic"] * n,
        "polarity": polarity,
        "informed": informed,
    })
    frame.attrs.update(source="synthetic", symbol=symbol, synthetic=True)
    return frame


class SyntheticNews(NewsSource):
    """Seeded synthetic headlines for any symbol (the offline default; labelled synthetic).

    Parameters
    ----------
    seed, bars, start : int, int, timestamp
        As for :class:`research.data.sources.synthetic.SyntheticSource`: the news follows the
        sessions (and, with ``link``, the returns) of the synthetic prices of the same values.
    link : float
        Share of items whose sentiment is the sign of the next session's synthetic return
        (0, the default, for no link).
    rate : float
        Items per session on average.
    """

    name = "synthetic"
    synthetic = True

    def __init__(self, *, seed: int = 42, link: float = 0.0, rate: float = 2.0, bars: int = _BARS,
                 start: str | pd.Timestamp = _ORIGIN) -> None:
        if not 0.0 <= link <= 1.0:
            raise ValueError(f"link must be in [0, 1], got {link!r}")
        self.seed, self.link, self.rate, self.bars = seed, float(link), float(rate), bars
        self.start = to_utc(start)
        if (seed, self.link, self.rate, bars, self.start) != (42, 0.0, 2.0, _BARS, _ORIGIN):
            # a non-default generator is a different dataset in the store
            self.name = f"synthetic-s{seed}-l{self.link:g}-r{self.rate:g}-n{bars}-{self.start:%Y%m%d}"

    def prices(self) -> SyntheticSource:
        """The synthetic price source whose sessions (and returns, with ``link``) the news follows."""
        return SyntheticSource(seed=self.seed, bars=self.bars, start=self.start)

    def provenance(self) -> str:
        return (f"synthetic news (seed={self.seed}, link={self.link:g}, rate={self.rate:g}/session, "
                f"bars={self.bars}, from {self.start.date()}): generated, not real headlines")

    def fetch(self, symbols: list[str], start: pd.Timestamp | None, end: pd.Timestamp | None) -> pd.DataFrame:
        parts = [synthetic_news(s, seed=self.seed, link=self.link, rate=self.rate, bars=self.bars, start=self.start)
                 for s in symbols]
        frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(RAW_COLUMNS))
        if start is not None:
            frame = frame[frame["published"] >= start]
        if end is not None:
            frame = frame[frame["published"] <= end]
        return frame[list(RAW_COLUMNS)].reset_index(drop=True)
