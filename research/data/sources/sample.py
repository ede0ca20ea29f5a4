"""The bundled sample: real daily history shipped inside the package (see sample/README.md)."""

from __future__ import annotations

from importlib import resources

import pandas as pd

from research.data.calendars import CRYPTO, EQUITY, Calendar
from research.data.errors import InvalidRequestError, SymbolNotFoundError
from research.data.sources.base import Source

__all__ = ["SampleSource", "SAMPLE_UNIVERSE"]

#: symbol -> (interval, calendar, description)
SAMPLE_UNIVERSE: dict[str, tuple[str, Calendar, str]] = {
    "SPX": ("1d", EQUITY, "S&P 500 index (arch)"),
    "IXIC": ("1d", EQUITY, "NASDAQ Composite index (arch)"),
    "GOOG": ("1d", EQUITY, "Alphabet class C stock (backtesting)"),
    "MSFT": ("1d", EQUITY, "Microsoft stock, split-adjusted (pmdarima)"),
    "BTC-USD": ("1mo", CRYPTO, "Bitcoin in USD, monthly (backtesting)"),
}


class SampleSource(Source):
    """Real market history bundled with the workbench; works offline."""

    name = "sample"

    def symbols(self) -> list[str]:
        return list(SAMPLE_UNIVERSE)

    def calendar(self, symbol: str) -> Calendar:
        return self._entry(symbol)[1]

    def provenance(self, symbol: str) -> str:
        return f"sample:{symbol} - {self._entry(symbol)[2]}; see research/data/sample/README.md"

    def _entry(self, symbol: str) -> tuple[str, Calendar, str]:
        try:
            return SAMPLE_UNIVERSE[symbol]
        except KeyError:
            raise SymbolNotFoundError(
                f"the sample source has no symbol {symbol!r}; it has {list(SAMPLE_UNIVERSE)} "
                "(use source='synthetic' for any symbol, or a live source)"
            ) from None

    def fetch(self, symbol, start, end, interval="1d") -> pd.DataFrame:
        own = self._entry(symbol)[0]
        if interval != own:
            hint = " Daily and hourly crypto come from source='synthetic'." if symbol.endswith("-USD") else ""
            raise InvalidRequestError(
                f"the sample has {symbol} at interval {own!r} only, not {interval!r}.{hint}"
            )
        with resources.files("research.data.sample").joinpath(f"{symbol}.csv.gz").open("rb") as fh:
            frame = pd.read_csv(fh, compression="gzip")
        frame.index = pd.DatetimeIndex(pd.to_datetime(frame.pop("date"), utc=True), name="timestamp")
        if start is not None:
            frame = frame.loc[pd.Timestamp(start):]
        if end is not None:
            frame = frame.loc[: pd.Timestamp(end)]
        return frame
