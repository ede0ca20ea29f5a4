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

from research.timeutil import to_utc

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


def _parse_time(value: object) -> pd.Timestamp | None:
    """A UTC timestamp, or ``None`` when ``value`` is missing or unparseable (naive = UTC)."""
    if isinstance(value, pd.Timestamp) and value.tzinfo is not None:
        return None if pd.isna(value) else to_utc(value)
    if value is None or (isinstance(value, float) and np.isnan(value)) or (isinstance(value, str) and not value.strip()):
        return None
    try:
        t = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        return None
    if t is pd.NaT or pd.isna(t):
        return None
    return to_utc(t)


def _text_series(col: pd.Series) -> pd.Series:
    """Text with missing values empty and whitespace collapsed."""
    values = col.astype(object).where(col.notna(), "")
    return values.astype(str).str.replace(r"\s+", " ", regex=True).str.strip().astype(object)


def _time_series(col: pd.Series) -> pd.Series:
    """UTC times (NaT where missing or unparseable; naive times are UTC)."""
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        return pd.to_datetime(col, utc=True).astype("datetime64[ns, UTC]")
    parsed = [_parse_time(v) for v in col.tolist()]
    return pd.Series(pd.to_datetime([t if t is not None else pd.NaT for t in parsed], utc=True),
                     index=col.index).astype("datetime64[ns, UTC]")


def _column(raw: pd.DataFrame, name: str) -> pd.Series:
    return raw[name] if name in raw.columns else pd.Series([None] * len(raw), index=raw.index, dtype=object)


def _reasons(title: pd.Series, published: pd.Series, url: pd.Series, now: pd.Timestamp,
             tolerance: pd.Timedelta) -> np.ndarray:
    """The quarantine reason of each row ("" when it is good), first failing check first."""
    checks = [
        (title == "", "missing_title"),
        (title == "[Removed]", "removed"),
        (published.isna(), "bad_date"),
        (published > now + tolerance, "future_date"),
        ((url != "") & ~url.str.lower().str.startswith(("http://", "https://")), "bad_url"),
    ]
    return np.select([c.to_numpy(dtype=bool) for c, _ in checks], [r for _, r in checks], default="")


def _detail(reason: str, raw_published: object, published: pd.Timestamp, url: str, now: pd.Timestamp,
            tolerance: pd.Timedelta) -> str:
    if reason == "missing_title":
        return "the item has no title"
    if reason == "removed":
        return "the publisher withdrew the item (News API answers '[Removed]')"
    if reason == "bad_date":
        return f"publication date {str(raw_published)[:60]!r} is missing or unparseable"
    if reason == "future_date":
        return f"published {published.isoformat()} is after the ingest time {now.isoformat()} plus {tolerance}"
    return f"url {url[:80]!r} is not http(s)"


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
    raw = raw.reset_index(drop=True)
    title, summary, url = (_text_series(_column(raw, c)) for c in ("title", "summary", "url"))
    publisher = _text_series(_column(raw, "publisher"))
    published = _time_series(_column(raw, "published"))
    symbols = pd.Series([",".join(split_symbols(v)) for v in _column(raw, "symbols").tolist()], index=raw.index, dtype=object)
    reason = _reasons(title, published, url, now, tolerance)
    bad = reason != ""
    quarantine = pd.DataFrame({
        "published": [str(v) if v is not None and not (isinstance(v, float) and np.isnan(v)) else ""
                      for v in _column(raw, "published")[bad].tolist()],
        "title": title[bad], "summary": summary[bad], "url": url[bad], "symbols": symbols[bad],
        "publisher": publisher[bad], "reason": reason[bad],
        "detail": [_detail(r, p, t, u, now, tolerance) for r, p, t, u in
                   zip(reason[bad], _column(raw, "published")[bad], published[bad], url[bad], strict=True)],
    }, columns=list(QUARANTINE_COLUMNS)).astype(str).reset_index(drop=True)
    good = ~bad
    pub = published[good]
    seen = _time_series(_column(raw, "seen"))[good].fillna(now) if "seen" in raw.columns else pd.Series(now, index=pub.index)
    seen = seen.astype("datetime64[ns, UTC]")
    clean = pd.DataFrame({
        "published": pub, "seen": seen, "available": pub.where(pub >= seen, seen) if live else pub,
        "source": source, "publisher": publisher[good].where(publisher[good] != "", source), "title": title[good],
        "summary": summary[good], "url": url[good], "symbols": symbols[good],
        "hash": [item_hash(t, s_, u, p) for t, s_, u, p in zip(title[good], summary[good], url[good], pub, strict=True)],
    }, columns=list(NEWS_COLUMNS)) if good.any() else empty_news()
    clean, duplicates = deduplicate(_text_columns(clean), window=window)
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
