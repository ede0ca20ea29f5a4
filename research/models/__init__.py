"""Forecasting models: windowed datasets, walk-forward splits, the LSTM and its baselines.

Importing this package does not import Keras; the backend starts on the first LSTM fit or load.
"""

from research.models.base import (
    FeatureMismatchError,
    Forecaster,
    NotEnoughHistoryError,
    TrainingError,
    check_model_path,
)
from research.models.baselines import (
    MovingAverageForecaster,
    NaiveForecaster,
    RidgeForecaster,
    load_baseline,
    make_baseline,
)
from research.models.datasets import (
    Fold,
    LeakageError,
    Scaler,
    WindowedDataset,
    check_embargo,
    chronological_split,
    forward_target,
    make_windows,
    walk_forward_folds,
)
from research.models.evaluate import (
    METRICS,
    beats_baseline,
    comparison_table,
    fold_metrics,
    forecast_metrics,
    overall_metrics,
    rolling_directional_accuracy,
    seed_summary,
)
from research.models.folds import FoldEvaluation, evaluate_folds
from research.models.lstm import LSTMForecaster, LSTMParams, build_network, weights_sha256

__all__ = [
    "Forecaster", "TrainingError", "NotEnoughHistoryError", "FeatureMismatchError",
    "LeakageError", "check_model_path",
    "NaiveForecaster", "MovingAverageForecaster", "RidgeForecaster", "make_baseline", "load_baseline",
    "LSTMForecaster", "LSTMParams", "build_network", "weights_sha256",
    "WindowedDataset", "Scaler", "Fold", "forward_target", "make_windows", "chronological_split",
    "walk_forward_folds", "check_embargo",
    "METRICS", "forecast_metrics", "fold_metrics", "overall_metrics", "seed_summary",
    "comparison_table", "beats_baseline", "rolling_directional_accuracy",
    "FoldEvaluation", "evaluate_folds",
]
