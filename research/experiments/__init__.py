"""Experiments: the training cycle and the trading of its forecasts, recorded through tracking.

============================  ================================================================
entry point                   what it does
============================  ================================================================
``train_and_evaluate(sym)``   the one-call cycle: walk-forward LSTM against the baselines,
                              logged to MLflow, registered, champion only if it beat naive;
                              see :mod:`research.experiments.cycle`
``TrainingConfig``            flat, YAML-friendly settings with presets (``tiny``,
                              ``pipeline``, ``research``); :mod:`research.experiments.training_config`
``trade_predictions``         backtest stats of acting on each model's out-of-sample forecasts;
                              :mod:`research.experiments.forecast_trading`
============================  ================================================================

This layer sits above ``research.backtest`` and ``research.tracking`` and may import both;
tracking knows nothing of it. Names are imported on first use (no Keras, no engine).
"""

from __future__ import annotations

from research.lazy import lazy_exports

_EXPORTS = {
    "TrainingConfig": "training_config", "PRIMARY_METRICS": "training_config", "BASELINES": "training_config",
    "TrainingResult": "cycle", "train_and_evaluate": "cycle", "model_name_for": "cycle",
    "DEFAULT_EXPERIMENT": "cycle",
    "trade_predictions": "forecast_trading", "TRADING_COLUMNS": "forecast_trading",
}
__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
