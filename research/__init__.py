"""Quant research workbench: data, features, models, strategies, backtests, risk, tracking.

The verbs most work starts from are here, each imported on first use (so ``import research``
loads no pandas, numba or Keras)::

    from research import load_prices, run_backtest, sweep, summary, train_and_evaluate

====================  ===================================================================
verb                  what it does (its home)
====================  ===================================================================
``load_prices``       validated OHLCV bars through the store (:mod:`research.data.loader`);
                      a str symbol gives flat columns, a list gives ``(field, symbol)``
``close_matrix``      one field of many symbols as a wide frame (:mod:`research.data.loader`)
``feature_set``       a named set of features for a model (:mod:`research.features.sets`)
``run_backtest``      one strategy on one or many symbols: :func:`research.backtest.backtest`
                      (``research.backtest`` itself names the package)
``sweep``             a strategy over a parameter grid (:mod:`research.backtest.sweep`)
``walk_forward``      choose in-sample, trade out of sample (:mod:`research.backtest.walkforward`)
``summary``           the risk statistics of a return series (:mod:`research.risk.metrics`)
``risk_report``       the summary with the tear sheet's series (:mod:`research.risk.report`)
``train_and_evaluate``  the LSTM against its baselines, tracked (:mod:`research.experiments.cycle`)
``get_settings``      paths, tracking URI and keys (:mod:`research.config`)
====================  ===================================================================
"""

from __future__ import annotations

from research.lazy import lazy_exports

_EXPORTS: dict[str, str | tuple[str, str]] = {
    "get_settings": "research.config",
    "load_prices": "research.data.loader",
    "close_matrix": "research.data.loader",
    "feature_set": "research.features.sets",
    "run_backtest": ("research.backtest.engine", "backtest"),
    "sweep": "research.backtest.sweep",
    "walk_forward": "research.backtest.walkforward",
    "summary": "research.risk.metrics",
    "risk_report": "research.risk.report",
    "train_and_evaluate": "research.experiments.cycle",
    "TrainingConfig": "research.experiments.training_config",
}
__all__ = sorted(_EXPORTS)
__version__ = "0.1.0"

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
