"""One tree of defaults: every default value the workbench declares, as plain data.

Signatures read their defaults from here (``fees: float = BACKTEST["fees"]``); the pipeline
specs (``pipelines/*.yaml``), the generated stage notebooks (``pipelines/build_notebooks.py``)
and the CLI are plain text or typer options that cannot import it, so
``tests/test_defaults.py`` holds each of them against this tree and fails, naming both
places, when two of them disagree. Change a default here, then where the test points.

=====================  ===================================================================
branch                 what it holds
=====================  ===================================================================
``backtest``           the library's execution costs and capital: no fees and no slippage
                       unless asked (the golden tests and the README figures use these)
``lstm``               the LSTM's hyperparameters (:class:`~research.models.lstm.LSTMParams`
                       and the training configuration's LSTM fields)
``training``           the training cycle (:class:`~research.experiments.TrainingConfig`):
                       data, evaluation, and the cost assumptions of trading the forecasts
``training_presets``   the cycle's named presets (``tiny``, ``pipeline``, ``research``)
``pipelines``          each pipeline's shared parameters and each stage's parameters
=====================  ===================================================================

Cost assumptions differ on purpose: the library charges nothing by default, so a result
says exactly what it was asked; the pipelines and the training cycle trade with explicit
costs (0.1% fees, and 5 bp slippage in the daily backtests), recorded with every run.

This module imports nothing from ``research``. Read a branch, never write it: callers
override through keyword arguments, specs through ``-p key=value``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULTS", "BACKTEST", "LSTM", "TRAINING", "TRAINING_PRESETS", "PIPELINES", "lookup"]

BACKTEST: dict[str, Any] = {
    "fees": 0.0,
    "slippage": 0.0,
    "init_cash": 100_000.0,
    "timing": "next_open",
}

LSTM: dict[str, Any] = {
    "lookback": 30,
    "units": 16,
    "layers": 1,
    "dropout": 0.0,
    "lr": 1e-3,
    "batch_size": 128,
    "epochs": 4,
    "patience": 2,
    "jit_compile": "auto",
    "deterministic": True,
    "val_fraction": 0.15,
    "seed": 0,
    "steps_per_execution": 1,
}

TRAINING: dict[str, Any] = {
    "feature_set": "lstm",
    "horizon": 1,
    "target": "return",
    "seeds": (0,),
    "n_folds": 3,
    "test_size": 252,
    "fold_mode": "expanding",
    "ma_window": 20,
    "ridge_alpha": 10.0,
    "ridge_lags": 1,
    "primary_metric": "rmse",
    "fees": 0.001,
    "slippage": 0.0,
}

#: Named starting points of the training cycle: changes on top of ``LSTM`` and ``TRAINING``.
TRAINING_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"max_bars": 700, "lookback": 20, "units": 8, "epochs": 1, "patience": 1, "batch_size": 64,
             "n_folds": 2, "test_size": 60, "ma_window": 10},
    "pipeline": {},
    "research": {"lookback": 60, "units": 32, "layers": 2, "dropout": 0.1, "epochs": 20, "patience": 4,
                 "batch_size": 256, "n_folds": 5, "seeds": (0, 1, 2)},
}

_ALERTS: dict[str, Any] = {
    "move_sigma": 3.0,
    "volume_z": 3.0,
    "drawdown_warning": 0.10,
    "drawdown_critical": 0.20,
    "strategy_drawdown": 0.15,
    "stale_bars": 3,
}

PIPELINES: dict[str, dict[str, dict[str, Any]]] = {
    "daily": {
        "shared": {
            "symbols": ["SPX", "IXIC", "GOOG", "MSFT"],
            "source": "sample",
            "interval": "1d",
            "as_of": None,
            "start": None,
            "retrain": False,
            "retrain_every_days": 7.0,
            "preset": "pipeline",
            "max_bars": 1500,
            "epochs": 3,
        },
        "ingest": {"min_rows": 50},
        "news": {"news_source": "synthetic", "lookback_days": 365},
        "model": {"n_folds": 2, "test_size": 126, "lookback": 30, "units": 16},
        "backtest": {"fees": 0.001, "slippage": 0.0005, "sweep_fast": "2:100",
                     "sweep_slow": "10:250:5", "sweep_families": "backtested", "sweep_grid": ""},
        "risk": {"strategy": "ma_crossover"},
        "signals": {"sizing": "vol_target", "vol_target": 0.15, "periods_per_year": None, **_ALERTS},
        "paper": {"drift_window": 20, "drift_band": 0.01},
    },
    "hourly": {
        "shared": {"symbols": ["BTC-USD", "ETH-USD"], "source": "auto", "source_note": "", "interval": "1h", "as_of": None},
        "ingest": {"min_rows": 200},
        "news": {"news_source": "synthetic", "lookback_days": 30},
        "signals": {"sizing": "vol_target", "vol_target": 0.5, "periods_per_year": None, "stale_bars": 2},
        "paper": {"drift_window": 20, "drift_band": 0.01},
    },
}

DEFAULTS: dict[str, Any] = {
    "backtest": BACKTEST, "lstm": LSTM, "training": TRAINING, "training_presets": TRAINING_PRESETS,
    "pipelines": PIPELINES,
}


def lookup(path: str) -> Any:
    """The default at a dotted path, e.g. ``lookup("pipelines.daily.backtest.fees")``.

    Raises
    ------
    KeyError
        Naming the first part of the path that the tree does not have.
    """
    node: Any = DEFAULTS
    for i, key in enumerate(path.split(".")):
        if not isinstance(node, dict) or key not in node:
            raise KeyError(f"no default {'.'.join(path.split('.')[: i + 1])!r} in research.defaults")
        node = node[key]
    return node
