"""``load_news``: scored, normalised headlines through the news store."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import pandas as pd

from research.news.schema import NEWS_COLUMNS
from research.news.sentiment import Scorer, get_scorer
from research.news.sources import NewsSource, get_news_source
from research.news.store import NewsStore

__all__ = ["load_news", "DEFAULT_NEWS_SOURCE"]

log = logging.getLogger(__name__)

#: The news source used when none is named: offline and seeded (labelled synthetic).
DEFAULT_NEWS_SOURCE = "synthetic"


def load_news(
    symbols: str | Iterable[str],
    *,
    source: str | NewsSource = DEFAULT_NEWS_SOURCE,
    start: object = None,
    end: object = None,
    refresh: bool = False,
    scorer: Scorer | str | None = None,
    store: NewsStore | None = None,
) -> pd.DataFrame:
    """Headlines about ``symbols``, normalised, deduplicated and scored for sentiment.

    Parameters
    ----------
    symbols : str or list of str
        Symbols as the prices name them (``"SPX"``, ``"BTC-USD"``).
    source : str or NewsSource
        ``"synthetic"`` (default, offline, labelled synthetic), ``"files"`` (pass a
        ``NewsFiles``), ``"rss"`` or ``"newsapi"``.
    start, end : date-like, optional
        Publication range (inclusive, UTC).
    refresh : bool
        Fetch again even when the stored copy is fresh.
    scorer : Scorer or str, optional
        Sentiment scorer (default VADER with the finance overlay).
    store : NewsStore, optional
        Defaults to the store under the settings' data directory.

    Returns
    -------
    DataFrame
        One row per (item, symbol) it is about, sorted by ``available``: the columns of
        :data:`~research.news.schema.NEWS_COLUMNS`, ``symbol`` and ``sentiment`` (in [-1, 1]).
        ``attrs`` records ``source``, ``synthetic``, ``stale``, ``scorer``, ``sha256`` and
        ``report`` (the last ingest's counts, when it fetched).

    Examples
    --------
    >>> news = load_news("SPX", start="2010-01-01", end="2010-12-31")
    >>> news.groupby(news["available"].dt.date)["sentiment"].mean()
    """
    wanted = _symbol_list(symbols)
    src = get_news_source(source)
    store = store or NewsStore()
    result = store.ingest(src, wanted, start=start, end=end, refresh=refresh)
    chosen = get_scorer(scorer)
    rows = _scored_rows(result.frame, wanted, store=store, source=src.name, scorer=chosen)
    rows.attrs = {
        "source": src.name, "synthetic": bool(src.synthetic), "stale": result.stale,
        "scorer": getattr(chosen, "name", type(chosen).__name__), "sha256": result.manifest.get("sha256"),
        "report": result.report, "live": src.live,
    }
    if src.synthetic:
        log.info("news from %s is synthetic (generated, not real headlines)", src.name)
    return rows


def _symbol_list(symbols: str | Iterable[str]) -> list[str]:
    """The requested symbols, stripped and upper-cased; refused when empty or not strings."""
    names = [symbols] if isinstance(symbols, str) else list(symbols)
    if not names or any(not isinstance(s, str) or not s.strip() for s in names):
        raise ValueError(f"symbols must be a symbol or a non-empty list of symbols, got {symbols!r}")
    return [s.strip().upper() for s in names]


def _scored_rows(frame: pd.DataFrame, wanted: list[str], *, store: NewsStore, source: str,
                 scorer: Scorer) -> pd.DataFrame:
    """One row per (item, wanted symbol) it is about, scored (through the store's score cache)
    and sorted by availability."""
    rows = frame.assign(symbol=frame["symbols"].str.split(",")).explode("symbol")
    rows = rows[rows["symbol"].isin(wanted)]
    rows = rows.assign(sentiment=store.scores(source, scorer, rows) if len(rows) else [])
    rows = rows.sort_values(["available", "published"], kind="stable").reset_index(drop=True)
    rows = rows[[*NEWS_COLUMNS, "symbol", "sentiment"]]
    rows["sentiment"] = rows["sentiment"].astype("float64")
    return rows
