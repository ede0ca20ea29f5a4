"""Market-data sources, one module each, behind :class:`research.data.sources.base.Source`.

=============  ==========================================================  ======
name           what                                                        live
=============  ==========================================================  ======
``sample``     real history bundled with the package (offline)             no
``synthetic``  seeded GBM paths with jumps and regimes, any symbol         no
``files``      the user's CSV or Parquet files                             no
``yahoo``      Yahoo Finance through yfinance                              yes
``coingecko``  CoinGecko through pycoingecko                               yes
``ccxt``       a crypto exchange's public OHLCV through ccxt (hourly, daily)  yes
=============  ==========================================================  ======

``ccxt`` reads the exchange named by the setting ``ccxt_exchange`` (``WORKBENCH_CCXT_EXCHANGE``,
default ``binance``); ``ccxt:<exchange>`` (``ccxt:kraken``) names one explicitly.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from research.data.errors import DataError
from research.data.sources.base import INTERVALS, Source

__all__ = ["Source", "INTERVALS", "get_source", "SOURCE_NAMES", "first_reachable", "choose_source", "AUTO_SOURCES"]

#: What ``source="auto"`` tries, in order: the exchange in the settings, then synthetic bars.
AUTO_SOURCES = ("ccxt", "synthetic")

log = logging.getLogger(__name__)

SOURCE_NAMES = ("sample", "synthetic", "files", "yahoo", "coingecko", "ccxt")


def get_source(name: str | Source, **options: object) -> Source:
    """A source by name (``options`` go to its constructor), or ``name`` itself if a Source."""
    if isinstance(name, Source):
        return name
    if name == "sample":
        from research.data.sources.sample import SampleSource

        return SampleSource(**options)
    if name == "synthetic":
        from research.data.sources.synthetic import SyntheticSource

        return SyntheticSource(**options)
    if name == "files":
        from research.data.sources.files import FilesSource

        if options.get("directory") is None:
            raise ValueError(
                "source='files' needs directory=<folder with one CSV or Parquet file per symbol> "
                "(on the command line: --directory FOLDER)"
            )
        return FilesSource(**options)
    if name == "yahoo":
        from research.data.sources.yahoo import YahooSource

        return YahooSource(**options)
    if name == "coingecko":
        from research.data.sources.coingecko import CoinGeckoSource

        return CoinGeckoSource(**options)
    if name == "ccxt" or (isinstance(name, str) and name.startswith(("ccxt:", "ccxt-"))):
        from research.data.sources.ccxt_source import CcxtSource

        exchange = name[5:] or None
        return CcxtSource(**({"exchange": exchange} if exchange else {}), **options)  # type: ignore[arg-type]
    raise ValueError(f"unknown source {name!r}; expected one of {list(SOURCE_NAMES)} or a Source instance")


def first_reachable(
    candidates: Sequence[str | Source], *, symbols: Sequence[str], interval: str = "1d", timeout: float = 5.0,
) -> tuple[Source, str]:
    """The first of ``candidates`` that answers for ``symbols``, and a line saying what was chosen.

    Offline sources (sample, synthetic, files) always answer; a live source is asked once, with
    a short deadline (:meth:`Source.probe`), before a run commits to it. The line names the
    source taken and, for each one passed over, why (it goes into run reports).

    Raises
    ------
    ValueError
        No candidates, or none of them answered (the reasons are listed).
    """
    if not candidates:
        raise ValueError("no candidate sources given")
    passed: list[str] = []
    for candidate in candidates:
        src = None
        try:
            src = get_source(candidate)
            src.probe(list(symbols), interval=interval, timeout=timeout)
        except (DataError, OSError, ValueError) as exc:
            name = src.name if src is not None else (candidate if isinstance(candidate, str) else candidate.name)
            reason = " ".join(str(exc).split())[:300]
            log.info("source %s is not reachable: %s", name, reason)
            passed.append(f"{name} not reachable ({reason})")
            continue
        note = f"source {src.name}" + (f"; passed over: {'; '.join(passed)}" if passed else "")
        return src, note
    raise ValueError("no source reachable: " + "; ".join(passed))


def choose_source(
    name: str, *, symbols: Sequence[str], interval: str = "1d", candidates: Sequence[str] = AUTO_SOURCES,
    timeout: float = 5.0,
) -> tuple[str, str]:
    """The source name a run uses, and a line saying which and why.

    ``"auto"`` becomes the first of ``candidates`` that answers (:func:`first_reachable`), an
    exchange pinned by name (``ccxt:binance``) so every stage of a run reads the same one; any
    other name is returned as it is.
    """
    if name != "auto":
        return name, f"source {name}"
    src, note = first_reachable(candidates, symbols=symbols, interval=interval, timeout=timeout)
    chosen = f"ccxt:{src.exchange}" if src.name.startswith("ccxt-") else src.name  # type: ignore[attr-defined]
    return chosen, f"{note} (auto: the first of {', '.join(candidates)} that answers)"
