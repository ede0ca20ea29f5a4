"""Seeded synthetic price paths: geometric Brownian motion with jumps and volatility regimes.

Every symbol's path is a pure function of ``(seed, symbol, calendar, interval)``: the same
request always returns the same bars, and a sub-range is a slice of the full path, so
incremental ingests and tests are reproducible. Symbols ending in ``-USD`` follow the 24/7
crypto calendar (higher volatility); others follow the equity calendar. Everything this source
produces carries ``synthetic = True`` in the store's manifest and in ``frame.attrs``.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from research.data.calendars import CRYPTO, EQUITY, Calendar, calendar_of
from research.data.errors import InvalidRequestError
from research.data.sources.base import Source

__all__ = ["SyntheticSource", "synthetic_ohlcv", "synthetic_close_matrix"]

_ORIGIN = pd.Timestamp("2000-01-03", tz="UTC")
_BARS = 6000


def _rng(seed: int, symbol: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}:{symbol}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _log_returns(rng: np.random.Generator, n: int, *, annual_vol: float, periods: float) -> np.ndarray:
    """Daily log returns from a two-regime (calm/stressed) Markov volatility with Poisson jumps."""
    calm, stressed = annual_vol * 0.75, annual_vol * 2.0
    p_enter, p_leave = 0.01, 0.05
    regime = np.empty(n, dtype=bool)
    state = False
    u = rng.random(n)
    for i in range(n):
        state = (u[i] < p_enter) if not state else (u[i] >= p_leave)
        regime[i] = state
    sigma = np.where(regime, stressed, calm) / np.sqrt(periods)
    drift = 0.06 / periods - 0.5 * sigma**2
    jumps = rng.poisson(3.0 / periods, n) * rng.normal(-0.02, 0.06, n)
    return drift + sigma * rng.standard_normal(n) + jumps


def synthetic_ohlcv(
    symbol: str,
    *,
    bars: int = _BARS,
    seed: int = 42,
    start: pd.Timestamp | str = _ORIGIN,
    interval: str = "1d",
    calendar: Calendar | None = None,
) -> pd.DataFrame:
    """One synthetic symbol's OHLCV bars (valid by construction).

    Parameters
    ----------
    symbol : str
        Any name; it seeds the path together with ``seed``.
    bars : int
        Number of bars.
    seed : int
        Global seed.
    start : timestamp
        First bar (aligned to the calendar).
    interval : {"1d", "1h"}
        Bar length.
    calendar : Calendar, optional
        Defaults to crypto for ``*-USD`` symbols, equity otherwise.
    """
    cal = calendar or calendar_of(symbol)
    start = pd.Timestamp(start)
    start = start.tz_localize("UTC") if start.tzinfo is None else start.tz_convert("UTC")
    if interval == "1d":
        span = int(bars * (1.6 if cal is EQUITY else 1.0)) + 30
        index = cal.sessions(start, start + pd.Timedelta(days=span))[:bars]
    elif interval == "1h":
        if cal is not CRYPTO:
            raise InvalidRequestError(f"synthetic hourly bars exist for crypto (*-USD) symbols only, not {symbol!r}")
        index = pd.date_range(start, periods=bars, freq="h", tz="UTC", name="timestamp")
    else:
        raise InvalidRequestError(f"the synthetic source makes 1d or 1h bars, not {interval!r}")
    rng = _rng(seed, symbol)
    periods = cal.periods(interval)
    vol = 0.7 if cal is CRYPTO else 0.25
    r = _log_returns(rng, len(index), annual_vol=vol, periods=periods)
    p0 = float(np.exp(rng.uniform(np.log(10), np.log(500))))
    close = p0 * np.exp(np.cumsum(r))
    gap = rng.normal(0, vol / np.sqrt(periods) * 0.3, len(index))
    open_ = np.concatenate([[p0], close[:-1]]) * np.exp(gap)
    wick = np.abs(rng.normal(0, vol / np.sqrt(periods) * 0.5, (2, len(index))))
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    volume = np.round(rng.lognormal(13, 0.4, len(index)) * (1 + 20 * np.abs(r)))
    frame = pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume},
        index=pd.DatetimeIndex(index, name="timestamp").as_unit("ns"),
    )
    frame.attrs.update(source="synthetic", symbol=symbol, synthetic=True)
    return frame


def synthetic_close_matrix(n_symbols: int, n_bars: int, *, seed: int = 42) -> pd.DataFrame:
    """A wide close matrix of ``n_symbols`` synthetic equities named ``SYN0000``... (in memory)."""
    cols = {f"SYN{i:04d}": synthetic_ohlcv(f"SYN{i:04d}", bars=n_bars, seed=seed)["close"] for i in range(n_symbols)}
    frame = pd.DataFrame(cols)
    frame.attrs.update(source="synthetic", synthetic=True)
    return frame


class SyntheticSource(Source):
    """Seeded synthetic bars for any symbol (labelled synthetic everywhere).

    Parameters
    ----------
    seed : int
        Global seed.
    bars : int
        Length of each symbol's full path (requests slice it).
    start : timestamp
        First bar of every path.
    """

    name = "synthetic"
    synthetic = True

    def __init__(self, *, seed: int = 42, bars: int = _BARS, start: str | pd.Timestamp = _ORIGIN) -> None:
        self.seed, self.bars = seed, bars
        self.start = pd.Timestamp(start).tz_localize(None) if pd.Timestamp(start).tzinfo else pd.Timestamp(start)
        if (seed, bars, self.start) != (42, _BARS, _ORIGIN.tz_localize(None)):
            # A non-default generator is a different dataset in the store.
            self.name = f"synthetic-s{seed}-n{bars}-{self.start:%Y%m%d}"

    def calendar(self, symbol: str) -> Calendar:
        return calendar_of(symbol)

    def provenance(self, symbol: str) -> str:
        return f"synthetic:{symbol} (GBM with jumps and volatility regimes, seed={self.seed}, bars={self.bars})"

    def fetch(self, symbol, start, end, interval="1d") -> pd.DataFrame:
        frame = synthetic_ohlcv(symbol, bars=self.bars, seed=self.seed, start=self.start, interval=interval)
        if start is not None:
            frame = frame.loc[pd.Timestamp(start):]
        if end is not None:
            frame = frame.loc[: pd.Timestamp(end)]
        return frame
