"""``load_prices``: the one call a quant makes for market data."""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterable

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from research.data.calendars import record_calendar
from research.data.errors import InvalidRequestError
from research.data.matrix_cache import MatrixCache
from research.data.sources import Source, get_source
from research.data.store import IngestResult, Store
from research.timeutil import to_utc

__all__ = ["load_prices", "close_matrix", "ingest_many"]


def _symbols(symbols: str | Iterable[str]) -> list[str]:
    out = [symbols] if isinstance(symbols, str) else list(symbols)
    if not out:
        raise InvalidRequestError("no symbols given")
    bad = [s for s in out if not isinstance(s, str) or not s.strip()]
    if bad:
        raise InvalidRequestError(f"symbols must be non-empty strings; got {bad!r}")
    dupes = sorted(s for s, n in Counter(out).items() if n > 1)
    if dupes:
        raise InvalidRequestError(f"symbols listed twice: {dupes}")
    return out


def ingest_many(
    symbols: str | Iterable[str],
    *,
    start: object = None,
    end: object = None,
    interval: str = "1d",
    source: str | Source = "sample",
    refresh: bool = False,
    store: Store | None = None,
    progress: bool | None = None,
) -> dict[str, IngestResult]:
    """Ingest several symbols through the store; a progress bar shows for more than 3."""
    names = _symbols(symbols)
    if start is not None and end is not None and pd.Timestamp(start) > pd.Timestamp(end):
        raise InvalidRequestError(f"start {start} is after end {end}")
    src = get_source(source)
    store = store or Store()
    show = len(names) > 3 if progress is None else progress
    results = {}
    for sym in tqdm(names, desc=f"{src.name} {interval}", unit="symbol", disable=not show, leave=False):
        results[sym] = store.ingest(src, sym, start=start, end=end, interval=interval, refresh=refresh)
    return results


def load_prices(
    symbols: str | Iterable[str],
    start: object = None,
    end: object = None,
    interval: str = "1d",
    source: str | Source = "sample",
    *,
    refresh: bool = False,
    store: Store | None = None,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Validated OHLCV bars, through the store.

    Parameters
    ----------
    symbols : str or list of str
        The shape of the result follows this argument, always: a ``str`` gives flat columns
        (``open, high, low, close, ...``); a list, even of one symbol, gives ``(field, symbol)``
        MultiIndex columns, so ``load_prices([...])["close"]`` is the wide close matrix with one
        column per symbol.
    start, end : date-like, optional
        Inclusive range (UTC); open-ended when omitted.
    interval : {"1d", "1h", "1wk", "1mo"}
        Bar length.
    source : str or Source
        ``"sample"`` (default, offline), ``"synthetic"``, ``"files"`` (pass a ``FilesSource``),
        ``"yahoo"`` or ``"coingecko"``.
    refresh : bool
        Ingest again even when the stored copy is fresh.

    Returns
    -------
    pandas.DataFrame
        Index ``timestamp`` (UTC; daily bars at 00:00 of the session date); float64 columns
        ``open, high, low, close, volume`` and ``adj_close`` where the source has it. Symbols on
        different calendars are outer-joined, with NaN where a symbol has no bar (never filled).
        ``attrs`` records ``source``, ``synthetic``, ``interval``, ``sha256`` per symbol,
        ``stale`` when a live source failed and the stored copy was served, and the frame's
        ``calendar`` and ``periods_per_year`` (see :mod:`research.data.calendars`).

    Examples
    --------
    >>> spx = load_prices("SPX", start="2010-01-01", end="2010-12-31")
    >>> closes = load_prices(["SPX", "IXIC"])["close"]
    """
    src = get_source(source)
    results = ingest_many(symbols, start=start, end=end, interval=interval, source=src, refresh=refresh, store=store,
                          progress=progress)
    attrs = _provenance(src, interval, results)
    _warn_empty(results, start, end)
    calendars = {sym: src.calendar(sym) for sym in results}
    if isinstance(symbols, str):
        frame = next(iter(results.values())).frame
        frame.attrs = {**attrs, "symbol": symbols}
        return record_calendar(frame, calendars, interval)
    frame = _field_symbol_frame(results)
    frame.attrs = attrs
    return record_calendar(frame, calendars, interval)


def _provenance(src: Source, interval: str, results: dict[str, IngestResult]) -> dict[str, object]:
    """What the loaded frame records of where its bars came from (``attrs``, before the calendar)."""
    synthetic = any(r.manifest.get("synthetic") for r in results.values())
    stale = [s for s, r in results.items() if r.stale]
    return {
        "source": src.name,
        "interval": interval,
        "synthetic": synthetic,
        "sha256": {s: r.manifest["sha256"] for s, r in results.items()},
        "stale": bool(stale),
    }


def _warn_empty(results: dict[str, IngestResult], start: object, end: object) -> None:
    """Warn (at :func:`load_prices`'s caller) of each symbol with no stored bar in the range."""
    for sym, res in results.items():
        if res.frame.empty:
            warnings.warn(f"{sym}: no stored bars between {start} and {end}", stacklevel=3)


def _field_symbol_frame(results: dict[str, IngestResult]) -> pd.DataFrame:
    """The symbols' bars outer-joined in time, with ``(field, symbol)`` columns in the usual field order."""
    frame = pd.concat({s: r.frame for s, r in results.items()}, axis=1, names=["symbol", "field"])
    frame = frame.swaplevel(axis=1).sort_index(axis=1, level=0, sort_remaining=False)
    fields = [c for c in ["open", "high", "low", "close", "adj_close", "volume"] if c in frame.columns.get_level_values(0)]
    return frame.reindex(columns=pd.MultiIndex.from_product([fields, list(results)], names=["field", "symbol"]))


def close_matrix(
    symbols: str | Iterable[str],
    start: object = None,
    end: object = None,
    interval: str = "1d",
    source: str | Source = "sample",
    *,
    field: str = "close",
    store: Store | None = None,
    progress: bool | None = None,
    cache: bool = True,
) -> pd.DataFrame:
    """The wide matrix of one field (index = time, one column per symbol); close by default.

    With ``cache=True`` (default) the matrix of the same symbols is served from the store's
    matrix cache (one memory-mapped Arrow file per universe, :mod:`research.data.matrix_cache`)
    while every dataset file is unchanged since the cache was built from verified reads and,
    for a live source, still fresh. Otherwise datasets already stored and fresh are read with
    one Parquet read each (only the index and ``field``, checked against the manifest's column
    sha256), the others are ingested first through :func:`load_prices`'s path, and the cache
    is rebuilt. ``cache=False`` always takes the per-symbol path and writes no cache.
    """
    names = _symbols(symbols)
    src = get_source(source)
    store = store or Store()
    matrices = MatrixCache(store)
    hit = matrices.read(src.name, interval, field, names) if cache else None
    if hit is not None and all(store.is_fresh(src, {**m, "symbol": sym, "interval": interval}, start, end)
                               for sym, m in hit.manifests.items()):
        out, manifests = hit.frame, hit.manifests
    else:
        out, manifests = _read_matrix(names, src, interval, field, start, end, store, progress, matrices if cache else None)
    s, e = to_utc(start), to_utc(end)
    if s is not None or e is not None:
        out = out.loc[s:e]
    out.attrs = {
        "source": src.name,
        "interval": interval,
        "field": field,
        "synthetic": any(m.get("synthetic") for m in manifests.values()),
        "sha256": {k: m.get("sha256") for k, m in manifests.items()},
    }
    return record_calendar(out, {sym: src.calendar(sym) for sym in names}, interval)


def _read_matrix(
    names: list[str], src: Source, interval: str, field: str, start: object, end: object,
    store: Store, progress: bool | None, matrices: MatrixCache | None,
) -> tuple[pd.DataFrame, dict[str, dict]]:
    """The per-symbol path of :func:`close_matrix`; caches the matrix when ``matrices`` is given.

    File signatures are taken before each read, so the cache never records a signature newer
    than the content it was built from.
    """
    sigs = matrices.signatures(src.name, interval, names) if matrices else {}
    series, manifests = store.read_field(src.name, interval, names, field)
    todo = [s for s in names if s not in manifests or not store.is_fresh(src, manifests[s], start, end)]
    if todo:
        ingest_many(todo, start=start, end=end, interval=interval, source=src, store=store, progress=progress)
        if matrices:
            sigs.update(matrices.signatures(src.name, interval, todo))
        more, more_manifests = store.read_field(src.name, interval, todo, field)
        series.update(more)
        manifests.update(more_manifests)
    cols = [series[s] for s in names]
    first = cols[0].index
    if all(c.index.equals(first) for c in cols[1:]):
        out = pd.DataFrame(np.column_stack([c.to_numpy() for c in cols]), index=first, columns=pd.Index(names, name="symbol"))
    else:
        out = pd.concat(cols, axis=1).sort_index()
        out.columns.name = "symbol"
    if matrices is not None and all(m.get("sha256") for m in manifests.values()):
        matrices.write(src.name, interval, field, out, manifests, sigs)
    return out, manifests

