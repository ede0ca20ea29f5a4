"""Strategies: signals from indicators or predictions, position sizing, and risk rules.

* :mod:`~research.strategies.signals` — rule strategies and the prediction strategy, returning
  :class:`Signals` (position direction decided at each bar's close).
* :mod:`~research.strategies.sizing` — how much equity each position gets, and caps.
* :mod:`~research.strategies.stops` — stop-loss, take-profit, trailing stop, drawdown halt.
* :mod:`~research.strategies.catalog` — named strategies with typed parameters.
"""

from research.strategies.catalog import STRATEGIES, StrategySpec, get_strategy, list_strategies
from research.strategies.signals import (
    Signals,
    bollinger_breakout,
    candlestick,
    ma_crossover,
    moving_averages,
    prediction_signals,
    rsi_reversion,
    time_series_momentum,
)
from research.strategies.sizing import SIZERS, apply_caps, get_sizer, position_magnitude
from research.strategies.stops import REASONS, RiskRules, RiskSchedule, plan_fills

__all__ = [
    "Signals", "ma_crossover", "moving_averages", "rsi_reversion", "bollinger_breakout",
    "time_series_momentum", "prediction_signals", "candlestick", "STRATEGIES", "StrategySpec", "get_strategy",
    "list_strategies", "SIZERS", "get_sizer", "position_magnitude", "apply_caps", "RiskRules",
    "RiskSchedule", "plan_fills", "REASONS",
]
