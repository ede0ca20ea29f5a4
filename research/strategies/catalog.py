"""Named strategies with their parameters, for the CLI, sweeps and pipelines.

>>> spec = get_strategy("ma_crossover")
>>> spec.defaults
{'fast': 20, 'slow': 50, 'direction': 'long'}
>>> spec.coerce({"fast": "10"})            # CLI strings become typed values
{'fast': 10, 'slow': 50, 'direction': 'long'}
>>> sig = spec.run({"close": close}, fast=10, slow=30)   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from research.strategies import signals as _sig

__all__ = ["StrategySpec", "STRATEGIES", "get_strategy", "list_strategies"]

_OHLC = ("open", "high", "low", "close")


@dataclass(frozen=True)
class StrategySpec:
    """A named strategy.

    Attributes
    ----------
    name : str
        Registry key.
    func : callable
        The strategy function (returns :class:`~research.strategies.signals.Signals`).
    input : str
        What it reads: ``"close"`` or ``"ohlc"`` (open, high, low and close, from the prices), or
        ``"predictions"`` (passed as a parameter).
    defaults : dict
        Every parameter with its default; the types of the defaults drive :meth:`coerce`.
    grid : dict
        A default sweep grid (lists of values) for :func:`research.backtest.sweep`.
    description : str
        One line for ``--help`` and listings.
    """

    name: str
    func: Callable[..., _sig.Signals]
    input: str
    defaults: dict[str, Any]
    grid: dict[str, list[Any]] = field(default_factory=dict)
    description: str = ""

    def coerce(self, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults overridden by ``params``; strings are converted to the default's type."""
        out = dict(self.defaults)
        for key, value in dict(params or {}).items():
            if key == "predictions" and self.input == "predictions":
                out[key] = value
                continue
            if key not in self.defaults:
                raise ValueError(
                    f"strategy {self.name!r} has no parameter {key!r}; expected one of {sorted(self.defaults)}"
                )
            out[key] = _convert(key, value, self.defaults[key])
        return out

    def run(self, prices: Mapping[str, pd.DataFrame], **params: Any) -> _sig.Signals:
        """Run the strategy on wide price frames (``{"close": ..., ...}``) with coerced parameters."""
        call = self.coerce(params)
        if self.input == "predictions":
            preds = call.pop("predictions", None)
            if preds is None:
                raise ValueError(f"strategy {self.name!r} needs a 'predictions' frame parameter")
            return self.func(preds, **call)
        if self.input == "ohlc":
            missing = [f for f in _OHLC if f not in prices]
            if missing:
                raise ValueError(
                    f"strategy {self.name!r} needs open, high, low and close prices; missing {missing} "
                    f"(got {sorted(prices)})"
                )
            return self.func(*(prices[f] for f in _OHLC), **call)
        if self.input not in prices:
            raise ValueError(f"strategy {self.name!r} needs {self.input!r} prices; got {sorted(prices)}")
        return self.func(prices[self.input], **call)


def _convert(key: str, value: Any, default: Any) -> Any:
    if not isinstance(value, str) or isinstance(default, str):
        return value
    text = value.strip()
    if default is None:  # optional float
        return None if text.lower() in ("", "none", "null") else float(text)
    try:
        if isinstance(default, bool):
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("true", "1", "yes")
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
    except ValueError:
        raise ValueError(
            f"parameter {key!r} expects {type(default).__name__}, got {value!r}"
        ) from None
    return value


STRATEGIES: dict[str, StrategySpec] = {
    s.name: s
    for s in [
        StrategySpec(
            "ma_crossover", _sig.ma_crossover, "close",
            {"fast": 20, "slow": 50, "direction": "long"},
            {"fast": list(range(2, 200)), "slow": list(range(3, 201))},
            "Long after the fast SMA crosses above the slow SMA (fused sweep kernel).",
        ),
        StrategySpec(
            "rsi_reversion", _sig.rsi_reversion, "close",
            {"window": 14, "lower": 30.0, "upper": 70.0, "exit_level": 50.0, "direction": "long"},
            {"window": [7, 14, 21], "lower": [20.0, 25.0, 30.0, 35.0]},
            "Buy when Wilder's RSI is oversold, exit when it recovers to the exit level.",
        ),
        StrategySpec(
            "bollinger_breakout", _sig.bollinger_breakout, "close",
            {"window": 20, "k": 2.0, "direction": "long"},
            {"window": [10, 20, 40, 60], "k": [1.0, 1.5, 2.0, 2.5]},
            "Long on a close above the upper Bollinger band, out below the middle band.",
        ),
        StrategySpec(
            "time_series_momentum", _sig.time_series_momentum, "close",
            {"lookback": 126, "threshold": 0.0, "direction": "long"},
            {"lookback": [21, 63, 126, 189, 252]},
            "Hold the sign of the trailing lookback-bar return.",
        ),
        StrategySpec(
            "candlestick", _sig.candlestick, "ohlc",
            {"bullish": "engulfing,hammer,morning_star", "bearish": "engulfing,shooting_star,evening_star",
             "hold": 5, "direction": "long"},
            {"hold": [1, 2, 3, 5, 10, 20],
             "bullish": ["engulfing", "hammer", "morning_star", "engulfing,hammer,morning_star"]},
            "Long after a bullish candlestick pattern (TA-Lib's), out after hold bars or a bearish one.",
        ),
        StrategySpec(
            "prediction", _sig.prediction_signals, "predictions",
            {"long_threshold": 0.0, "short_threshold": None},
            {"long_threshold": [0.0, 0.0005, 0.001]},
            "Trade model predictions: long above long_threshold, short below short_threshold.",
        ),
    ]
}


def get_strategy(name: str) -> StrategySpec:
    """Look a strategy up by name."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; expected one of {sorted(STRATEGIES)}") from None


def list_strategies() -> pd.DataFrame:
    """One row per strategy: name, input, default parameters, description."""
    rows = [
        {"strategy": s.name, "input": s.input, "params": s.defaults, "description": s.description}
        for s in STRATEGIES.values()
    ]
    return pd.DataFrame(rows).set_index("strategy")
