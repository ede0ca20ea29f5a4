"""Features: indicators and candlestick patterns (pure functions on wide frames), labels, and named feature sets.

No value at time ``t`` uses data after ``t``; see :mod:`research.features.indicators` for the
warm-up and gap rules.
"""

from research.features.indicators import (
    BollingerResult,
    MACDResult,
    atr,
    bollinger,
    ema,
    macd,
    momentum,
    obv,
    returns,
    roc,
    rolling_beta,
    rolling_volatility,
    rsi,
    sma,
    true_range,
    volume_zscore,
)

__all__ = [
    "returns", "sma", "ema", "rsi", "macd", "MACDResult", "bollinger", "BollingerResult",
    "atr", "true_range", "rolling_volatility", "momentum", "roc", "volume_zscore", "obv",
    "rolling_beta",
]

from research.features.patterns import (  # noqa: E402
    CANDLE_SETTINGS,
    PATTERNS,
    candlestick_patterns,
    doji,
    engulfing,
    evening_star,
    hammer,
    morning_star,
    shooting_star,
)

__all__ += [
    "engulfing", "hammer", "shooting_star", "doji", "morning_star", "evening_star", "PATTERNS",
    "CANDLE_SETTINGS", "candlestick_patterns",
]

from research.features.labels import direction, forward_returns  # noqa: E402
from research.features.sets import FEATURE_SETS, FEATURES, drop_warmup, feature_set, warmup_rows  # noqa: E402

__all__ += ["forward_returns", "direction", "feature_set", "drop_warmup", "warmup_rows", "FEATURE_SETS", "FEATURES"]
