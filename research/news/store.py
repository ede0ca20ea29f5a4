"""The news store: one validated Parquet dataset per news source, with a manifest.

Layout under the data directory (beside the market-data store)::

    news/store/<source>.parquet        normalised items (schema of research.news.schema)
    news/quarantine/<source>.parquet   rejected items with their reason, appended

The files are written as the market-data store writes its own (:mod:`research.data.store`):
to a temporary file, fsynced, renamed over the old one under the dataset's lock, with the
manifest in the Parquet footer and a sha256 of the whole file checked on every read
(:mod:`research.data.integrity`); a damaged file raises
:class:`~research.data.errors.CorruptDatasetError`, never data.

An ingest normalises what the source returned, merges it under the lock into what is stored
at that moment (a stored item keeps its ``seen``: when the workbench *first* stored it),
counts duplicates and quarantines bad items. The manifest records the symbols and the range
fetched, rows, duplicates and quarantined counts, fetch time, provenance and ``synthetic``.
A static source (synthetic, files) is fetched once per symbol; a live one again when its copy
is older than ``ttl`` (5 minutes by default: headlines move fast, and the News API quota is
daily). When a live source fails, the stored copy is served with ``attrs["stale"] = True``
and a :class:`~research.data.store.StaleDataWarning`.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from filelock import FileLock, Timeout

from research.atomic import atomic_write, remove_orphans
from research.config import get_settings
from research.data.errors import (
    CorruptDatasetError,
    InvalidRequestError,
    SourceError,
    StoreError,
    SymbolNotFoundError,
)
from research.data.integrity import (
    check_digest,
    decode_manifest,
    encode_manifest,
    parquet_bytes,
    read_parquet,
    table_with_digest,
)
from research.data.store import StaleDataWarning
from research.news.schema import (
    NEWS_COLUMNS,
    QUARANTINE_COLUMNS,
    deduplicate,
    empty_news,
    news_sha256,
    normalise,
)
from research.news.sources import NewsSource
from research.timeutil import to_utc

__all__ = ["NewsStore", "NewsIngest"]

log = logging.getLogger(__name__)
NEWS_TTL = 300.0


@dataclass
class NewsIngest:
    """What :meth:`NewsStore.ingest` did."""

    frame: pd.DataFrame
    manifest: dict
    report: dict | None
    fetched: bool
    stale: bool = False


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


class NewsStore:
    """Validated news items on disk.

    Parameters
    ----------
    root : path, optional
        The data directory; defaults to ``Settings.data_dir``.
    ttl : float
        Seconds a live source's copy stays fresh.
    lock_timeout : float
        Seconds to wait for another writer of the same dataset.
    """

    def __init__(self, root: str | os.PathLike | None = None, *, ttl: float = NEWS_TTL, lock_timeout: float = 120.0) -> None:
        self.root = Path(root) if root is not None else get_settings().data_dir
        self.ttl = ttl
        self.lock_timeout = lock_timeout

    def __repr__(self) -> str:
        return f"NewsStore({str(self.root)!r})"

    def path(self, source: str, *, kind: str = "store") -> Path:
        """File of a source's dataset (``kind``: ``"store"`` or ``"quarantine"``)."""
        return self.root / "news" / kind / f"{_safe(source)}.parquet"

    # ------------------------------------------------------------------ files
    @contextmanager
    def _locked(self, path: Path, what: str) -> Iterator[None]:
        """Hold ``path``'s lock; a timeout or an unwritable folder raises :class:`StoreError`."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            lock = FileLock(str(path) + ".lock", timeout=self.lock_timeout)
            lock.acquire()
        except Timeout as exc:
            raise StoreError(f"cannot {what}: another writer holds {path}.lock; try again, or remove the lock file "
                             "if no workbench process is running") from exc
        except OSError as exc:
            raise StoreError(f"cannot {what}: {exc.strerror or exc} at {path.parent} (is the data folder writable?)") from exc
        try:
            yield
        finally:
            lock.release()

    def _write_atomic(self, path: Path, table: pa.Table) -> None:
        """Write ``table`` over ``path`` atomically (readers see the old or the new version)."""
        try:
            atomic_write(path, parquet_bytes(table))
        except OSError as exc:
            raise StoreError(f"writing {path} failed ({exc.strerror or exc}); the previous version is intact") from exc

    # ------------------------------------------------------------------ reading
    def manifest(self, source: str) -> dict | None:
        """The manifest of a source's dataset, or ``None`` when nothing is stored."""
        path = self.path(source)
        try:
            table, _ = read_parquet(path, None, f"news/{source}")
        except FileNotFoundError:
            return None
        return decode_manifest(table.schema.metadata, path, f"news/{source}")

    def read(self, source: str, *, symbols: list[str] | None = None, start: object = None, end: object = None) -> pd.DataFrame:
        """Stored items of ``source`` (optionally about ``symbols``, published in ``[start, end]``).

        Raises
        ------
        SymbolNotFoundError
            Nothing is stored for ``source``.
        CorruptDatasetError
            The file cannot be decoded or does not match its manifest.
        """
        path = self.path(source)
        what = f"news/{source}"
        try:
            table, _ = read_parquet(path, None, what)
        except FileNotFoundError:
            raise SymbolNotFoundError(f"no stored news from {source!r} under {self.root}; fetch it with "
                                      f"load_news or `workbench news fetch SYMBOL --source {source}`") from None
        m = decode_manifest(table.schema.metadata, path, what)
        frame = table.to_pandas()
        if m is None or list(frame.columns) != list(NEWS_COLUMNS) or news_sha256(frame) != m["sha256"] or len(frame) != m["rows"]:
            raise CorruptDatasetError(f"stored news {what} is corrupt: {path} does not match the sha256 of its manifest; "
                                      "fetch it again with refresh (`workbench news fetch ... --refresh`)", path=str(path))
        frame.attrs = {"source": source, "synthetic": bool(m.get("synthetic")), "sha256": m["sha256"],
                       "provenance": m.get("provenance", "")}
        return _select(frame, symbols, to_utc(start), to_utc(end))

    def read_quarantine(self, source: str) -> pd.DataFrame:
        """Items of ``source`` quarantined so far, with ``reason``, ``detail`` and ``ingested_at``."""
        path = self.path(source, kind="quarantine")
        if not path.exists():
            return pd.DataFrame(columns=[*QUARANTINE_COLUMNS, "ingested_at"])
        table, _ = read_parquet(path, None, f"news quarantine of {source}")
        check_digest(table, path, f"news quarantine of {source}")
        return table.to_pandas()

    def list(self) -> pd.DataFrame:
        """One row per stored news dataset with its manifest's main fields."""
        rows = []
        base = self.root / "news" / "store"
        for path in sorted(base.glob("*.parquet")) if base.exists() else []:
            try:
                m = self.manifest(path.stem) or {}
                rows.append({"status": "ok", **m})
            except CorruptDatasetError:
                rows.append({"source": path.stem, "status": "corrupt: fetch again with --refresh"})
        cols = ["source", "rows", "symbols", "first", "last", "duplicates", "quarantined", "synthetic", "live",
                "fetched_at", "sha256", "status"]
        return pd.DataFrame(rows).reindex(columns=cols) if rows else pd.DataFrame(columns=cols)

    def scores(self, source: str, scorer: object, items: pd.DataFrame) -> np.ndarray:
        """Sentiment of ``items``' titles, cached per item hash for scorers with a ``fingerprint``.

        The cache (``news/scores/<source>.<fingerprint>.parquet``) is derived data: a damaged
        one is rebuilt.
        """
        fingerprint = getattr(scorer, "fingerprint", None)
        if not fingerprint or items.empty:
            return np.asarray(scorer.score(items["title"].tolist()), dtype="float64")  # type: ignore[attr-defined]
        path = self.root / "news" / "scores" / f"{_safe(source)}.{_safe(fingerprint)}.parquet"
        with self._locked(path, f"score cache of {source}"):
            cache = self._read_scores(path)
            todo = items.drop_duplicates("hash")
            todo = todo[~todo["hash"].isin(cache.index)]
            if len(todo):
                fresh = pd.Series(np.asarray(scorer.score(todo["title"].tolist()), dtype="float64"),  # type: ignore[attr-defined]
                                  index=todo["hash"].to_numpy())
                cache = pd.concat([cache, fresh]) if len(cache) else fresh
                table = table_with_digest(pd.DataFrame({"hash": cache.index.astype(str), "score": cache.to_numpy()}))
                remove_orphans(path)
                self._write_atomic(path, table)
        return cache.reindex(items["hash"].to_numpy()).to_numpy(dtype="float64")

    def _read_scores(self, path: Path) -> pd.Series:
        if not path.exists():
            return pd.Series(dtype="float64")
        try:
            table, _ = read_parquet(path, None, "news score cache")
            check_digest(table, path, "news score cache")
            frame = table.to_pandas()
            return pd.Series(frame["score"].to_numpy(dtype="float64"), index=frame["hash"].astype(str).to_numpy())
        except (CorruptDatasetError, KeyError) as exc:
            log.warning("rebuilding the news score cache %s: %s", path, exc)
            return pd.Series(dtype="float64")

    # ------------------------------------------------------------------ writing
    def _write(self, source: str, frame: pd.DataFrame, meta: dict) -> dict:
        path = self.path(source)
        manifest = {"source": source, "rows": len(frame), "sha256": news_sha256(frame),
                    "first": frame["published"].min().isoformat() if len(frame) else None,
                    "last": frame["published"].max().isoformat() if len(frame) else None,
                    "fetched_at": pd.Timestamp.now(tz="UTC").isoformat(), **meta}
        table = pa.Table.from_pandas(frame, preserve_index=False)
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **encode_manifest(manifest)})
        remove_orphans(path)
        self._write_atomic(path, table)
        return manifest

    def _quarantine(self, source: str, rows: pd.DataFrame) -> int:
        """Add rejected items not recorded yet; returns the items in the quarantine file."""
        path = self.path(source, kind="quarantine")
        if rows.empty and not path.exists():
            return 0
        with self._locked(path, f"quarantine news of {source}"):
            old = self.read_quarantine(source)
            if rows.empty:
                return len(old)
            rows = rows.assign(ingested_at=pd.Timestamp.now(tz="UTC").isoformat()).astype(str)
            both = pd.concat([old.astype(str), rows], ignore_index=True) if len(old) else rows
            both = both.drop_duplicates(subset=list(QUARANTINE_COLUMNS), keep="first").reset_index(drop=True)
            if len(both) > len(old):
                remove_orphans(path)
                self._write_atomic(path, table_with_digest(both))
            return len(both)

    def _fresh(self, source: NewsSource, m: dict, symbols: list[str], start: pd.Timestamp | None) -> bool:
        if not set(symbols) <= set(m.get("symbols", [])):
            return False
        if not source.live:
            return True
        if start is not None and m.get("fetched_from") and start < pd.Timestamp(m["fetched_from"]):
            return False
        return (pd.Timestamp.now(tz="UTC") - pd.Timestamp(m["fetched_at"])).total_seconds() < self.ttl

    def ingest(self, source: NewsSource, symbols: list[str], *, start: object = None, end: object = None,
               refresh: bool = False) -> NewsIngest:
        """Bring ``source``'s dataset up to date for ``symbols`` and return their items in range."""
        start, end = to_utc(start), to_utc(end)
        if start is not None and end is not None and start > end:
            raise InvalidRequestError(f"news {source.name}: start {start} is after end {end}")
        symbols = sorted({s.upper() for s in symbols})
        m = self.manifest(source.name)
        if m is not None and not refresh and self._fresh(source, m, symbols, start):
            return NewsIngest(self.read(source.name, symbols=symbols, start=start, end=end), m, None, False)
        todo = symbols if refresh or m is None or source.live else sorted(set(symbols) - set(m.get("symbols", [])))
        try:
            raw = source.fetch(todo, start if source.live else None, None)
        except SourceError as exc:
            if m is None:
                raise
            return self._stale(source, m, exc, symbols, start, end)
        result = normalise(raw, source=source.name, live=source.live)
        path = self.path(source.name)
        with self._locked(path.with_suffix(".ingest"), f"ingest news of {source.name}"):
            current = self.manifest(source.name)
            replace = refresh and not source.live  # a static source's refresh replaces its copy
            old = self.read(source.name) if current is not None and not replace else empty_news()
            fresh = result.clean[~result.clean["hash"].isin(set(old["hash"]))]  # items stored before keep their seen
            both = pd.concat([old, fresh], ignore_index=True) if len(old) else fresh
            merged, dropped = deduplicate(both)
            quarantined = self._quarantine(source.name, result.quarantine)
            prior = current if current is not None and not replace else {}
            report = {**result.to_dict(), "already_stored": len(result.clean) - len(fresh), "new": len(merged) - len(old)}
            report["duplicates"] += dropped
            meta = {
                "symbols": sorted(set(prior.get("symbols", [])) | set(symbols)),
                "fetched_from": min(filter(None, [prior.get("fetched_from"), start.isoformat() if start else None]), default=None),
                "duplicates": int(prior.get("duplicates", 0)) + report["duplicates"],
                "quarantined": quarantined, "synthetic": source.synthetic, "live": source.live,
                "provenance": source.provenance(), "versions": _versions(source.libraries),
                "last_report": report, "failed": list(raw.attrs.get("failed", [])),
            }
            manifest = self._write(source.name, merged, meta)
        frame = self.read(source.name, symbols=symbols, start=start, end=end)
        return NewsIngest(frame, manifest, report, True)

    def _stale(self, source: NewsSource, m: dict, exc: Exception, symbols: list[str], start, end) -> NewsIngest:
        age = pd.Timestamp.now(tz="UTC") - pd.Timestamp(m["fetched_at"])
        warnings.warn(f"{source.name} failed ({exc}); serving the stored news fetched {age.total_seconds() / 60:.0f} min ago",
                      StaleDataWarning, stacklevel=3)
        frame = self.read(source.name, symbols=symbols, start=start, end=end)
        frame.attrs.update(stale=True, stale_age_s=age.total_seconds())
        return NewsIngest(frame, m, None, False, stale=True)


def _select(frame: pd.DataFrame, symbols: list[str] | None, start: pd.Timestamp | None, end: pd.Timestamp | None) -> pd.DataFrame:
    attrs = dict(frame.attrs)
    mask = pd.Series(True, index=frame.index)
    if start is not None:
        mask &= frame["published"] >= start
    if end is not None:
        mask &= frame["published"] <= end
    if symbols is not None:
        wanted = {s.upper() for s in symbols}
        mask &= frame["symbols"].map(lambda v: bool(wanted.intersection(v.split(","))) if v else False)
    out = frame[mask.to_numpy()].reset_index(drop=True)
    out.attrs = attrs
    return out


def _versions(extra: list[str]) -> dict[str, str]:
    out = {}
    for name in ["quant-workbench", "pandas", "pyarrow", *extra]:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out

