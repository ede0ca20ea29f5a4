"""Named feature sets built from one symbol's OHLCV in one call.

``feature_set(ohlcv, "lstm")`` gives the small, stationary default set a sequence model is
trained on; ``"research"`` gives a larger set for exploration; ``"patterns"`` gives the
candlestick patterns of :mod:`research.features.patterns`. Column order is fixed by
:data:`FEATURE_SETS` (a model checks the names and their order at predict time).

Every feature at ``t`` uses bars up to and including ``t`` only (the bar's open, high, low,
close and volume are all known at its close). Leading rows where any feature is still warming
up are kept as NaN and counted in ``attrs["warmup"]``; :func:`drop_warmup` removes them.

Feature definitions
-------------------
``log_return``       ln(close_t / close_{t-1})
``volatility_20``    20-bar sample std of ``log_return`` (per bar, not annualised)
``rsi_14``           Wilder RSI(14) mapped from [0, 100] to [-1, 1]: ``(rsi - 50) / 50``
``macd_hist``        MACD(12, 26, 9) histogram divided by close
``volume_z_20``      z-score of volume against its trailing 20 bars
``log_return_5``     ln(close_t / close_{t-5}); ``log_return_20`` likewise
``volatility_60``    60-bar sample std of ``log_return``
``sma_gap_20``       close / SMA(20) - 1; ``sma_gap_50`` likewise
``ema_gap_12_26``    EMA(12) / EMA(26) - 1
``bollinger_pb_20``  Bollinger %b(20, 2) minus 0.5 (0 on the middle band)
``atr_14``           ATR(14) / close
``roc_10``           rate of change over 10 bars, in percent
``range``            (high - low) / close
``gap``              open_t / close_{t-1} - 1
``volume_z_60``      z-score of volume against its trailing 60 bars
``cdl_<pattern>``    a candlestick pattern of :mod:`research.features.patterns` (``engulfing``,
                     ``hammer``, ``shooting_star``, ``doji``, ``morning_star``, ``evening_star``)
                     divided by 100: +1 bullish, -1 bearish (+-0.8 for an engulfing that only
                     touches the prior body), 0 none; NaN during the pattern's TA-Lib look-back
                     and on bars with a missing open, high, low or close

News sets
---------
``"sentiment"`` holds the point-in-time news features of :mod:`research.news.features`
(``sentiment_mean``, ``news_count``, ``sentiment_surprise``), and ``"lstm_sentiment"`` the
LSTM set with them as extra inputs. They are built from scored headlines: pass
``news=load_news(symbol, ...)``, or let :func:`feature_set` load them for the bars' symbol
from the news store (``news_source``, the synthetic generator by default, labelled so in
``attrs``). An item counts from the first bar that closes after it became available.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import MappingProxyType

import numpy as np
import pandas as pd

from research.features import indicators as ind
from research.features import patterns as pat
from research.news.features import NEWS_FEATURES, sentiment_features

__all__ = ["feature_set", "drop_warmup", "warmup_rows", "FEATURE_SETS", "FEATURES"]

log = logging.getLogger(__name__)

_REQUIRED = ("open", "high", "low", "close", "volume")


def _log_ret(o: pd.DataFrame, n: int = 1) -> pd.Series:
    return ind.returns(o["close"], periods=n, log=True)


def _vol(o: pd.DataFrame, window: int) -> pd.Series:
    return ind.rolling_volatility(_log_ret(o), window=window, periods_per_year=None)


def _pattern(o: pd.DataFrame, name: str) -> pd.Series:
    """A candlestick pattern scaled to [-1, 1], NaN while TA-Lib's look-back is unfilled."""
    values = pat.PATTERNS[name](o["open"], o["high"], o["low"], o["close"]).astype("float64") / 100.0
    complete = o[["open", "high", "low", "close"]].notna().all(axis=1).to_numpy()
    warm = np.cumsum(complete) <= pat.lookback(name)
    return values.mask(~complete | warm)


_PATTERN_NAMES = tuple(pat.PATTERNS)

FEATURES: MappingProxyType[str, Callable[[pd.DataFrame], pd.Series]] = MappingProxyType({
    "log_return": _log_ret,
    "volatility_20": lambda o: _vol(o, 20),
    "rsi_14": lambda o: (ind.rsi(o["close"], window=14) - 50.0) / 50.0,
    "macd_hist": lambda o: ind.macd(o["close"], fast=12, slow=26, signal=9).hist / o["close"],
    "volume_z_20": lambda o: ind.volume_zscore(o["volume"], window=20),
    "log_return_5": lambda o: _log_ret(o, 5),
    "log_return_20": lambda o: _log_ret(o, 20),
    "volatility_60": lambda o: _vol(o, 60),
    "sma_gap_20": lambda o: o["close"] / ind.sma(o["close"], window=20) - 1.0,
    "sma_gap_50": lambda o: o["close"] / ind.sma(o["close"], window=50) - 1.0,
    "ema_gap_12_26": lambda o: ind.ema(o["close"], window=12) / ind.ema(o["close"], window=26) - 1.0,
    "bollinger_pb_20": lambda o: ind.bollinger(o["close"], window=20, k=2.0).percent_b - 0.5,
    "atr_14": lambda o: ind.atr(o["high"], o["low"], o["close"], window=14) / o["close"],
    "roc_10": lambda o: ind.roc(o["close"], window=10),
    "range": lambda o: (o["high"] - o["low"]) / o["close"],
    "gap": lambda o: o["open"] / o["close"].shift(1) - 1.0,
    "volume_z_60": lambda o: ind.volume_zscore(o["volume"], window=60),
    **{f"cdl_{name}": (lambda o, name=name: _pattern(o, name)) for name in _PATTERN_NAMES},
})
"""Every named feature: a function of one symbol's OHLCV returning a Series on its index."""

_LSTM = ("log_return", "volatility_20", "rsi_14", "macd_hist", "volume_z_20")

FEATURE_SETS: MappingProxyType[str, tuple[str, ...]] = MappingProxyType({
    "lstm": _LSTM,
    "sentiment": NEWS_FEATURES,
    "lstm_sentiment": _LSTM + NEWS_FEATURES,
    "research": _LSTM + (
        "log_return_5", "log_return_20", "volatility_60", "sma_gap_20", "sma_gap_50",
        "ema_gap_12_26", "bollinger_pb_20", "atr_14", "roc_10", "range", "gap", "volume_z_60",
    ),
    "patterns": tuple(f"cdl_{name}" for name in _PATTERN_NAMES),
})
"""Feature-set name -> feature names, in the column order :func:`feature_set` returns."""


def _validate(ohlcv: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(ohlcv, pd.DataFrame):
        raise TypeError(f"ohlcv must be a pandas DataFrame, not {type(ohlcv).__name__}")
    if isinstance(ohlcv.columns, pd.MultiIndex):
        raise ValueError(
            "feature_set takes one symbol's OHLCV with flat columns "
            f"{list(_REQUIRED)}; got MultiIndex columns {list(ohlcv.columns.names)} "
            "(select one symbol first, e.g. frame.xs('SPX', axis=1, level='symbol'))"
        )
    missing = [c for c in _REQUIRED if c not in ohlcv.columns]
    if missing:
        raise ValueError(f"ohlcv must have columns {list(_REQUIRED)}; missing {missing} (got {list(ohlcv.columns)})")
    bars = pd.DataFrame(ohlcv.loc[:, list(_REQUIRED)].to_numpy(dtype="float64"), index=ohlcv.index, columns=list(_REQUIRED))
    return bars  # no attrs: pandas would deep-copy them through every operation


def warmup_rows(frame: pd.DataFrame) -> int:
    """Number of leading rows in which at least one column is NaN."""
    complete = frame.notna().all(axis=1).to_numpy()
    return int(np.argmax(complete)) if complete.any() else len(frame)


def _news_features(ohlcv: pd.DataFrame, news: pd.DataFrame | None, source: object) -> pd.DataFrame:
    """The news features of ``ohlcv``'s symbol, loading its news through the store when not given."""
    symbol = ohlcv.attrs.get("symbol")
    if news is None:
        if not isinstance(symbol, str):
            raise ValueError("the news features need the bars' symbol (ohlcv.attrs['symbol'], as load_prices records "
                             "it) or the news itself: feature_set(bars, 'sentiment', news=load_news(symbol))")
        from research.news import DEFAULT_NEWS_SOURCE, load_news

        news = load_news(symbol, source=source or DEFAULT_NEWS_SOURCE)
        if news.attrs.get("synthetic") and not ohlcv.attrs.get("synthetic", True):
            log.warning("the news features of %s come from synthetic news (%s): generated headlines beside real "
                        "prices; pass news= or news_source= for real headlines", symbol, news.attrs.get("source"))
    return sentiment_features(ohlcv, news, symbol=symbol if isinstance(symbol, str) else None)


def feature_set(
    ohlcv: pd.DataFrame, name: str = "lstm", *, news: pd.DataFrame | None = None, news_source: object = None
) -> pd.DataFrame:
    """Build a named feature set for one symbol.

    Parameters
    ----------
    ohlcv : DataFrame
        One symbol's bars with columns ``open, high, low, close, volume`` (extra columns are
        ignored), e.g. ``load_prices("SPX")``.
    name : str
        A key of :data:`FEATURE_SETS`: ``"lstm"`` (5 features), ``"research"`` (17),
        ``"patterns"`` (the 6 candlestick patterns), ``"sentiment"`` (3 news features) or
        ``"lstm_sentiment"`` (8).
    news : DataFrame, optional
        Scored headlines (``research.news.load_news``) for the news sets; loaded for
        ``ohlcv.attrs["symbol"]`` from ``news_source`` when omitted.
    news_source : str or NewsSource, optional
        Where to load the news from (default: the synthetic generator).

    Returns
    -------
    DataFrame
        Index = ``ohlcv.index``; columns = ``FEATURE_SETS[name]`` in that order (float64).
        Leading warm-up rows are NaN; ``attrs`` holds ``feature_set``, ``features`` (the
        column names), ``warmup`` (number of leading rows with any NaN) and ``symbol`` when the
        input carried it.

    Examples
    --------
    >>> feats = feature_set(load_prices("SPX"), "lstm")
    >>> train_ready = drop_warmup(feats)
    """
    if name not in FEATURE_SETS:
        raise ValueError(f"unknown feature set {name!r}; expected one of {sorted(FEATURE_SETS)}")
    columns = FEATURE_SETS[name]
    if news is not None and not set(columns) & set(NEWS_FEATURES):
        raise ValueError(f"feature set {name!r} has no news inputs; use 'sentiment' or 'lstm_sentiment' with news=")
    bars = _validate(ohlcv)
    data = {}
    extra: dict = {}
    if set(columns) & set(NEWS_FEATURES):
        built = _news_features(ohlcv, news, news_source)
        data.update({c: built[c].to_numpy(dtype="float64") for c in NEWS_FEATURES})
        extra = {"news_source": built.attrs.get("news_source"), "news_synthetic": built.attrs.get("synthetic")}
    for feat in columns:
        if feat in data:
            continue
        values = FEATURES[feat](bars)
        data[feat] = values.replace([np.inf, -np.inf], np.nan).to_numpy(dtype="float64")
    frame = pd.DataFrame(data, index=ohlcv.index, columns=list(columns))
    frame.attrs = {"feature_set": name, "features": list(columns), "warmup": warmup_rows(frame), **extra}
    if "symbol" in ohlcv.attrs:
        frame.attrs["symbol"] = ohlcv.attrs["symbol"]
    return frame


def drop_warmup(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop the leading warm-up rows of a feature frame (uses ``attrs["warmup"]`` when present).

    Later rows with NaN (gaps in the data) are kept: deciding what to do with them is the
    caller's choice, never a silent fill.
    """
    n = frame.attrs.get("warmup")
    n = warmup_rows(frame) if n is None else int(n)
    out = frame.iloc[n:].copy()
    out.attrs = {**frame.attrs, "warmup": 0}
    return out
