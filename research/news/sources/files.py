"""The user's own archive of headlines: a CSV (optionally gzipped) or JSON-lines file.

One row (or line) per item. Columns are matched case-insensitively against common spellings:

=============  ==========================================================
column         accepted names
=============  ==========================================================
``published``  published, publishedAt, published_at, date, datetime, time, timestamp
``title``      title, headline
``summary``    summary, description, body (optional)
``url``        url, link (optional)
``symbols``    symbols, symbol, tickers, ticker (optional; ``,`` ``;`` ``|`` or space separated)
``publisher``  publisher, source, outlet (optional)
=============  ==========================================================

Naive times are read in ``tz`` (UTC by default). Items without symbols get ``symbols`` (the
constructor's) plus those whose ``keywords`` appear in the title. An archive counts each item
from its publication time (there is no record of when it was first seen). A file that cannot
be read raises :class:`~research.data.errors.SchemaError` naming the file and what is expected.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from research.data.errors import SchemaError, SymbolNotFoundError
from research.news.config import match_symbols
from research.news.sources import RAW_COLUMNS, NewsSource

__all__ = ["NewsFiles"]

_ALIASES = {
    "published": ("published", "publishedat", "published_at", "date", "datetime", "time", "timestamp"),
    "title": ("title", "headline"),
    "summary": ("summary", "description", "body"),
    "url": ("url", "link"),
    "symbols": ("symbols", "symbol", "tickers", "ticker"),
    "publisher": ("publisher", "source", "outlet"),
}
_EXPECTED = "a CSV with a header row, or JSON lines, with at least 'published' and 'title'"


class NewsFiles(NewsSource):
    """Headlines from a file of the user's.

    Parameters
    ----------
    path : path
        A ``.csv``, ``.csv.gz``, ``.jsonl`` or ``.ndjson`` file.
    symbols : list of str, optional
        Symbols of items that name none.
    keywords : dict, optional
        ``{symbol: [words]}`` matched in titles.
    tz : str
        Timezone of naive timestamps.
    name : str
        The dataset's name in the news store (default ``"files"``).
    """

    name = "files"

    def __init__(self, path: str | Path, *, symbols: list[str] | None = None,
                 keywords: dict[str, list[str]] | None = None, tz: str = "UTC", name: str = "files") -> None:
        self.path = Path(path)
        self.default_symbols = [s.upper() for s in (symbols or [])]
        self.keywords = {k.upper(): tuple(v) for k, v in (keywords or {}).items()}
        self.tz = tz
        self.name = name

    def provenance(self) -> str:
        return f"files:{self.path}"

    def _read(self) -> pd.DataFrame:
        if not self.path.is_file():
            raise SymbolNotFoundError(f"no news file at {self.path}")
        suffixes = "".join(self.path.suffixes[-2:]).lower()
        try:
            if suffixes.endswith((".jsonl", ".ndjson", ".json")):
                lines = self.path.read_text(encoding="utf-8-sig").splitlines()
                records = [json.loads(line) for line in lines if line.strip()]
                if any(not isinstance(r, dict) for r in records):
                    raise ValueError("a line is not a JSON object")
                return pd.DataFrame.from_records(records)
            return pd.read_csv(self.path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError, EOFError, OSError) as exc:
            raise SchemaError(f"{self.path}: cannot be read as headlines ({type(exc).__name__}: {str(exc)[:120]}); "
                              f"expected {_EXPECTED}") from None

    def fetch(self, symbols: list[str], start: pd.Timestamp | None, end: pd.Timestamp | None) -> pd.DataFrame:
        raw = self._read()
        lower = {str(c).strip().lower(): c for c in raw.columns}
        picked = {}
        for col, names in _ALIASES.items():
            found = next((lower[n] for n in names if n in lower), None)
            if found is not None:
                picked[col] = raw[found]
        missing = [c for c in ("published", "title") if c not in picked]
        if missing:
            raise SchemaError(f"{self.path}: no {' or '.join(repr(m) for m in missing)} column (found {list(raw.columns)}); "
                              f"expected {_EXPECTED}")
        frame = pd.DataFrame({c: picked.get(c, pd.Series([""] * len(raw))) for c in RAW_COLUMNS})
        frame["published"] = [self._time(v) for v in frame["published"]]
        frame["symbols"] = [self._symbols(s, t) for s, t in zip(frame["symbols"], frame["title"], strict=True)]
        frame["publisher"] = frame["publisher"].replace("", self.name)
        return frame

    def _time(self, value: object) -> object:
        try:
            t = pd.Timestamp(value)
            if pd.isna(t):
                return value
            return t.tz_localize(self.tz).tz_convert("UTC") if t.tzinfo is None else t
        except (ValueError, TypeError, OverflowError):
            return value  # quarantined by the store as bad_date (a DST-ambiguous local time too)

    def _symbols(self, given: object, title: object) -> str:
        from research.news.schema import split_symbols

        found = split_symbols(given) or list(self.default_symbols)
        found += [s for s in match_symbols(str(title), self.keywords) if s not in found]
        return ",".join(found)
