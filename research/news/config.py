"""The news configuration file: feeds, their symbols, and symbol keywords.

``news.yaml`` at the project root (git-ignored; start from ``news.example.yaml``), or the file
``WORKBENCH_NEWS_CONFIG`` names::

    feeds:
      - name: nasdaq-apple                       # short name, shown as the item's publisher
        url: https://www.nasdaq.com/feed/rssoutbound?symbol=AAPL
        symbols: [AAPL]                          # every item of this feed is about these
      - name: coindesk
        url: https://www.coindesk.com/arc/outboundfeeds/rss/
        symbols: []                              # none: symbols come from the keywords only
    keywords:                                    # symbol -> words matched in titles
      AAPL: [Apple, iPhone]
      BTC-USD: [Bitcoin, BTC]
    newsapi:
      queries:                                   # symbol -> News API query (default: its keywords)
        AAPL: '"Apple Inc" OR AAPL'
      language: en

Keywords match whole words, case-insensitively, in an item's title; an item is about the
union of its feed's symbols and the symbols whose keywords its title contains.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from research.config import get_settings

__all__ = ["Feed", "NewsConfig", "load_news_config", "match_symbols", "news_config_path"]


@dataclass(frozen=True)
class Feed:
    """One RSS or Atom feed."""

    name: str
    url: str
    symbols: tuple[str, ...] = ()


@dataclass(frozen=True)
class NewsConfig:
    """Feeds, keywords and News API queries (see the module docstring)."""

    feeds: tuple[Feed, ...] = ()
    keywords: dict[str, tuple[str, ...]] = field(default_factory=dict)
    queries: dict[str, str] = field(default_factory=dict)
    language: str = "en"
    path: Path | None = None


def news_config_path() -> Path:
    """``WORKBENCH_NEWS_CONFIG`` (environment or ``.env``), else ``news.yaml`` in the project's home."""
    return get_settings().news_config


def _fail(path: Path, what: str) -> ValueError:
    return ValueError(f"{path}: {what} (see news.example.yaml for the expected layout)")


def _symbols(value: object, path: Path, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(s, str) and s.strip() for s in value):
        raise _fail(path, f"{where} must be a list of symbols, got {value!r}")
    return tuple(s.strip().upper() for s in value)


def _feeds(raw: object, path: Path) -> tuple[Feed, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _fail(path, f"'feeds' must be a list of {{name, url, symbols}}, got {type(raw).__name__}")
    feeds, names = [], set()
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("url"), str):
            raise _fail(path, f"feeds[{i}] needs a 'url' (and a 'name'), got {item!r}")
        url = item["url"].strip()
        if not url.lower().startswith(("http://", "https://")):
            raise _fail(path, f"feeds[{i}].url must be http(s), got {url!r}")
        name = str(item.get("name") or url)
        if name in names:
            raise _fail(path, f"feeds[{i}]: the name {name!r} is used twice")
        names.add(name)
        feeds.append(Feed(name, url, _symbols(item.get("symbols"), path, f"feeds[{i}].symbols")))
    return tuple(feeds)


def load_news_config(path: str | os.PathLike | None = None, *, required: bool = False) -> NewsConfig:
    """Read the news configuration (an empty one when the file does not exist and not ``required``)."""
    p = Path(path) if path is not None else news_config_path()
    if not p.is_file():
        if required:
            raise FileNotFoundError(f"no news configuration at {p}: copy news.example.yaml to news.yaml and list "
                                    "your feeds (or set WORKBENCH_NEWS_CONFIG)")
        return NewsConfig(path=None)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise _fail(p, f"is not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise _fail(p, "must be a mapping with 'feeds', 'keywords' and 'newsapi'")
    unknown = set(raw) - {"feeds", "keywords", "newsapi"}
    if unknown:
        raise _fail(p, f"unknown keys {sorted(unknown)}")
    keywords_raw = raw.get("keywords") or {}
    if not isinstance(keywords_raw, dict):
        raise _fail(p, "'keywords' must map symbols to lists of words")
    keywords = {str(k).upper(): tuple(str(w) for w in (v if isinstance(v, list) else [v])) for k, v in keywords_raw.items()}
    api = raw.get("newsapi") or {}
    if not isinstance(api, dict):
        raise _fail(p, "'newsapi' must be a mapping with 'queries' and 'language'")
    queries = {str(k).upper(): str(v) for k, v in (api.get("queries") or {}).items()}
    return NewsConfig(_feeds(raw.get("feeds"), p), keywords, queries, str(api.get("language", "en")), p)


def match_symbols(title: str, keywords: dict[str, tuple[str, ...]]) -> list[str]:
    """Symbols whose keywords appear in ``title`` as whole words (case-insensitive)."""
    found = []
    for symbol, words in keywords.items():
        if any(re.search(rf"(?<!\w){re.escape(w)}(?!\w)", title, re.IGNORECASE) for w in words if w):
            found.append(symbol)
    return found
