"""Features: indicators and candlestick patterns (pure functions on wide frames), labels, and named feature sets.

No value at time ``t`` uses data after ``t``; see :mod:`research.features.indicators` for the
warm-up and gap rules. Names are imported on first use: a module that needs only the
indicators does not load the feature sets (and, through them, the news features).
"""

from __future__ import annotations

from research.lazy import lazy_exports

_INDICATORS = ("returns", "sma", "ema", "rsi", "macd", "MACDResult", "bollinger", "BollingerResult",
               "atr", "true_range", "rolling_volatility", "momentum", "roc", "volume_zscore", "obv",
               "rolling_beta")
_PATTERNS = ("engulfing", "hammer", "shooting_star", "doji", "morning_star", "evening_star", "PATTERNS",
             "CANDLE_SETTINGS", "candlestick_patterns")
_EXPORTS: dict[str, str | tuple[str, str]] = {
    **dict.fromkeys(_INDICATORS, "indicators"), **dict.fromkeys(_PATTERNS, "patterns"),
    "forward_returns": "labels", "direction": "labels",
    **dict.fromkeys(("feature_set", "drop_warmup", "warmup_rows", "FEATURE_SETS", "FEATURES"), "sets"),
}
__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
