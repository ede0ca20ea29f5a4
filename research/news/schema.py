"""The one schema of news items: normalisation, duplicates and quarantine.

Every source hands :func:`normalise` a raw frame (one row per item, columns as the source
found them: ``published``, ``title``, ``summary``, ``url``, ``symbols``, ``publisher`` and,
for sources that record it, ``seen``). What comes out is one clean frame in the schema below,
the rejected rows with a reason, and a report that accounts for every row received::

    received = kept + duplicates + quarantined

==============  =======================  =====================================================
column          dtype                    meaning
==============  =======================  =====================================================
``published``   datetime64[ns, UTC]      when the publisher says the item appeared
``seen``        datetime64[ns, UTC]      when the workbench first stored it
``available``   datetime64[ns, UTC]      when the item may first be used: ``max(published,
                                         seen)`` for live sources, ``published`` for archives
``source``      str                      the news source (``rss``, ``newsapi``, ``files``,
                                         ``synthetic``...)
``publisher``   str                      the feed or outlet
``title``       str                      the headline (whitespace collapsed)
``summary``     str                      the summary or description (may be empty)
``url``         str                      the link (may be empty)
``symbols``     str                      the symbols the item is about, comma-separated
``hash``        str                      sha256 of title, summary, url and published
==============  =======================  =====================================================

Quarantine reasons: ``missing_title``, ``removed`` (withdrawn by the publisher: News API's
``[Removed]``), ``bad_date`` (missing or unparseable), ``future_date`` (later than the ingest
time plus the tolerance), ``bad_url`` (not http or https).

Duplicates: an item whose url was already kept, or whose normalised title (lower case,
punctuation and repeated spaces removed) was kept within ``window`` before it, is dropped and
counted; the first one (by publication, then by arrival) stays.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = [
    "NEWS_COLUMNS", "QUARANTINE_COLUMNS", "NormaliseResult", "normalise", "deduplicate", "normalise_title",
    "item_hash", "news_sha256", "empty_news", "split_symbols",
]

log = logging.getLogger(__name__)

NEWS_COLUMNS = ("published", "seen", "available", "source", "publisher", "title", "summary", "url", "symbols", "hash")
_TIME_COLUMNS = ("published", "seen", "available")
QUARANTINE_COLUMNS = ("published", "title", "summary", "url", "symbols", "publisher", "reason", "detail")
_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)
_SPACES = re.compile(r"\s+")
_SYMBOL_SPLIT = re.compile(r"[,;|\s]+")
#: How far in the future a publication time may be (clock skew) before it is refused.
TOLERANCE = pd.Timedelta(minutes=15)
#: Items with the same normalised title within this window are duplicates.
WINDOW = pd.Timedelta(days=2)


@dataclass
class NormaliseResult:
    """What :func:`normalise` made of a raw frame.

    Attributes
    ----------
    clean : DataFrame
        Items in the schema (:data:`NEWS_COLUMNS`), sorted by ``published``.
    quarantine : DataFrame
        Rejected rows as received (text), with ``reason`` and ``detail``.
    received, duplicates : int
        Rows received; rows dropped as duplicates.
    reasons : dict
        Quarantined rows per reason.
    """

    clean: pd.DataFrame
    quarantine: pd.DataFrame
    received: int
    duplicates: int
    reasons: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The counts as plain data (for manifests and ``--json``)."""
        return {"received": self.received, "kept": len(self.clean), "duplicates": self.duplicates,
                "quarantined": int(sum(self.reasons.values())), "reasons": dict(self.reasons)}


def empty_news() -> pd.DataFrame:
    """A frame with the schema's columns and no rows."""
    frame = pd.DataFrame({c: pd.Series([], dtype="datetime64[ns, UTC]" if c in _TIME_COLUMNS else object)
                          for c in NEWS_COLUMNS})
    return _text_columns(frame)


def normalise_title(title: str) -> str:
    """Lower case, punctuation removed, spaces collapsed: the key of title duplicates."""
    return _SPACES.sub(" ", _PUNCT.sub(" ", str(title).lower())).strip()


def split_symbols(value: object) -> list[str]:
    """Symbols from a list, or a string separated by commas, semicolons, bars or spaces."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    items = value if isinstance(value, (list, tuple, set, np.ndarray)) else _SYMBOL_SPLIT.split(str(value))
    out: list[str] = []
    for s in items:
        s = str(s).strip().upper()
        if s and s not in out:
            out.append(s)
    return out


def item_hash(title: str, summary: str, url: str, published: pd.Timestamp) -> str:
    """sha256 of an item's content (title, summary, url, publication time)."""
    text = "\x1f".join([title, summary, url, published.isoformat()])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def news_sha256(frame: pd.DataFrame) -> str:
    """sha256 of a news frame's content: column names, then each column's values in order."""
    h = hashlib.sha256(",".join(map(str, frame.columns)).encode())
    for col in frame.columns:
        values = frame[col]
        if col in _TIME_COLUMNS:
            h.update(np.ascontiguousarray(values.to_numpy(dtype="datetime64[ns]").view("int64")).tobytes())
        else:
            h.update("\x1e".join("" if v is None else str(v) for v in values.tolist()).encode("utf-8"))
        h.update(b"\x1d")
    return h.hexdigest()


def _text(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return _SPACES.sub(" ", str(value)).strip()


def _parse_time(value: object) -> pd.Timestamp | None:
    """A UTC timestamp, or ``None`` when ``value`` is missing or unparseable (naive = UTC)."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or (isinstance(value, str) and not value.strip()):
        return None
    try:
        t = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        return None
    if t is pd.NaT or pd.isna(t):
        return None
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def _check(row: dict, now: pd.Timestamp, tolerance: pd.Timedelta) -> tuple[str, str] | None:
    """``(reason, detail)`` when a raw row is bad, else ``None``."""
    title = _text(row.get("title"))
    if not title:
        return "missing_title", "the item has no title"
    if title == "[Removed]":
        return "removed", "the publisher withdrew the item (News API answers '[Removed]')"
    published = _parse_time(row.get("published"))
    if published is None:
        return "bad_date", f"publication date {str(row.get('published'))[:60]!r} is missing or unparseable"
    if published > now + tolerance:
        return "future_date", f"published {published.isoformat()} is after the ingest time {now.isoformat()} plus {tolerance}"
    url = _text(row.get("url"))
    if url and not url.lower().startswith(("http://", "https://")):
        return "bad_url", f"url {url[:80]!r} is not http(s)"
    return None


def _text_columns(frame: pd.DataFrame) -> pd.DataFrame:
    for col in NEWS_COLUMNS:
        if col not in _TIME_COLUMNS:
            frame[col] = frame[col].astype(object)
    return frame


def normalise(
    raw: pd.DataFrame,
    *,
    source: str,
    live: bool,
    now: pd.Timestamp | None = None,
    tolerance: pd.Timedelta = TOLERANCE,
    window: pd.Timedelta = WINDOW,
) -> NormaliseResult:
    """Turn a source's raw items into the schema; quarantine bad rows; drop duplicates.

    Parameters
    ----------
    raw : DataFrame
        One row per item as the source found it.
    source : str
        The source's name (written to the ``source`` column).
    live : bool
        Live sources count an item from ``max(published, seen)``, archives from ``published``.
    now : Timestamp, optional
        The ingest time (UTC): ``seen`` of new items, and the reference of ``future_date``.
    tolerance : Timedelta
        How far in the future a publication time may be (clock skew) before it is refused.
    window : Timedelta
        Items with the same normalised title within this window are duplicates.
    """
    now = pd.Timestamp.now(tz="UTC") if now is None else _parse_time(now)
    rows, bad = [], []
    for rec in raw.to_dict("records"):
        problem = _check(rec, now, tolerance)
        if problem is not None:
            bad.append({**{c: _text(rec.get(c)) for c in QUARANTINE_COLUMNS[:-2] if c != "symbols"},
                        "symbols": ",".join(split_symbols(rec.get("symbols"))), "reason": problem[0], "detail": problem[1]})
            continue
        published = _parse_time(rec.get("published"))
        seen = _parse_time(rec.get("seen")) or now
        title, summary, url = _text(rec.get("title")), _text(rec.get("summary")), _text(rec.get("url"))
        rows.append({
            "published": published, "seen": seen, "available": max(published, seen) if live else published,
            "source": source, "publisher": _text(rec.get("publisher")) or source, "title": title,
            "summary": summary, "url": url, "symbols": ",".join(split_symbols(rec.get("symbols"))),
            "hash": item_hash(title, summary, url, published),
        })
    clean = pd.DataFrame(rows, columns=list(NEWS_COLUMNS)) if rows else empty_news()
    for col in _TIME_COLUMNS:
        clean[col] = pd.to_datetime(clean[col], utc=True).astype("datetime64[ns, UTC]")
    clean, duplicates = deduplicate(_text_columns(clean), window=window)
    quarantine = pd.DataFrame(bad, columns=list(QUARANTINE_COLUMNS)).astype(str)
    reasons = quarantine["reason"].value_counts().to_dict() if len(quarantine) else {}
    if reasons:
        log.info("%s: %d item(s) quarantined %s", source, len(quarantine), reasons)
    return NormaliseResult(clean, quarantine, len(raw), duplicates, {k: int(v) for k, v in reasons.items()})


def deduplicate(frame: pd.DataFrame, *, window: pd.Timedelta = WINDOW) -> tuple[pd.DataFrame, int]:
    """Keep the first of each duplicate group (same url, or same normalised title within ``window``).

    Rows are ordered by ``published`` (stable, so on equal times the earlier row wins);
    returns the kept rows and the number dropped.
    """
    if frame.empty:
        return frame.reset_index(drop=True), 0
    ordered = frame.sort_values("published", kind="stable").reset_index(drop=True)
    keep = np.ones(len(ordered), dtype=bool)
    urls: set[str] = set()
    last_title: dict[str, pd.Timestamp] = {}
    for i, (url, title, published) in enumerate(zip(ordered["url"], ordered["title"], ordered["published"], strict=True)):
        key = normalise_title(title)
        if (url and url in urls) or (key in last_title and published - last_title[key] <= window):
            keep[i] = False
            continue
        if url:
            urls.add(url)
        last_title[key] = published
    return ordered[keep].reset_index(drop=True), int((~keep).sum())
