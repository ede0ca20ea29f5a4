"""The training cycle's configuration: flat, YAML-friendly, with named presets.

>>> cfg = TrainingConfig.preset("pipeline").replace(epochs=8)
>>> cfg = TrainingConfig.from_yaml("train.yaml")       # unknown keys are refused

Presets
-------
``tiny``      tests and the tutorial notebook: the last 700 bars, LSTM(8), 1 epoch, 2 folds
``pipeline``  the daily pipeline: LSTM(16), lookback 30, 4 epochs, 3 folds of 252 bars, 1 seed
``research``  slower and fuller: 2 x LSTM(32), lookback 60, 20 epochs, 5 folds, 3 seeds
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from research.defaults import LSTM, TRAINING, TRAINING_PRESETS

__all__ = ["TrainingConfig", "PRIMARY_METRICS", "BASELINES"]

PRIMARY_METRICS = ("rmse", "mae", "directional_accuracy")
BASELINES = ("naive", "naive_mean", "moving_average", "ridge")


@dataclass(frozen=True)
class TrainingConfig:
    """Everything a training cycle needs besides the symbol and data source.

    Data and target: ``feature_set``, ``horizon``, ``target`` ("return" or "direction"),
    ``max_bars`` (use only the latest bars), ``start``/``end``.
    LSTM: ``lookback, units, layers, dropout, lr, batch_size, epochs, patience, seeds,
    jit_compile, deterministic, val_fraction``.
    Evaluation: ``n_folds``, ``test_size`` (windows per fold; None picks
    ``min(252, N // (n_folds + 2))``), ``fold_mode`` ("expanding"/"rolling"), ``train_size``
    (rolling), ``embargo`` (None = horizon; never less), ``baselines``, ``ma_window``,
    ``ridge_alpha``, ``ridge_lags``, ``primary_metric``.
    Model: ``refit_final`` (train the registered model on every window; else the last fold's).
    Trading: ``trade``, ``long_threshold``, ``short_threshold``, ``fees``, ``slippage``.

    Defaults come from ``research.defaults`` (``LSTM`` for the network, ``TRAINING`` for the
    rest, including the cost assumptions of trading the forecasts: 0.1% fees).
    """

    feature_set: str = TRAINING["feature_set"]
    horizon: int = TRAINING["horizon"]
    target: str = TRAINING["target"]
    max_bars: int | None = None
    start: str | None = None
    end: str | None = None
    lookback: int = LSTM["lookback"]
    units: int = LSTM["units"]
    layers: int = LSTM["layers"]
    dropout: float = LSTM["dropout"]
    lr: float = LSTM["lr"]
    batch_size: int = LSTM["batch_size"]
    epochs: int = LSTM["epochs"]
    patience: int = LSTM["patience"]
    seeds: tuple[int, ...] = TRAINING["seeds"]
    jit_compile: bool | str = LSTM["jit_compile"]
    deterministic: bool = LSTM["deterministic"]
    val_fraction: float = LSTM["val_fraction"]
    n_folds: int = TRAINING["n_folds"]
    test_size: int | None = TRAINING["test_size"]
    fold_mode: str = TRAINING["fold_mode"]
    train_size: int | None = None
    embargo: int | None = None
    baselines: tuple[str, ...] = BASELINES
    ma_window: int = TRAINING["ma_window"]
    ridge_alpha: float = TRAINING["ridge_alpha"]
    ridge_lags: int = TRAINING["ridge_lags"]
    primary_metric: str = TRAINING["primary_metric"]
    refit_final: bool = True
    trade: bool = True
    long_threshold: float = 0.0
    short_threshold: float | None = None
    fees: float = TRAINING["fees"]
    slippage: float = TRAINING["slippage"]

    def __post_init__(self) -> None:
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        object.__setattr__(self, "baselines", tuple(self.baselines))
        if not self.seeds:
            raise ValueError("seeds must name at least one seed")
        if self.primary_metric not in PRIMARY_METRICS:
            raise ValueError(f"primary_metric must be one of {PRIMARY_METRICS}; got {self.primary_metric!r}")
        unknown = set(self.baselines) - set(BASELINES)
        if unknown or "naive" not in self.baselines:
            raise ValueError(f"baselines must include 'naive' and come from {BASELINES}; got {list(self.baselines)}")
        if self.target not in ("return", "direction"):
            raise ValueError(f"target must be 'return' or 'direction'; got {self.target!r}")
        if self.embargo is not None and self.embargo < self.horizon:
            raise ValueError(f"embargo ({self.embargo}) must be at least the horizon ({self.horizon})")

    @property
    def effective_embargo(self) -> int:
        return self.horizon if self.embargo is None else int(self.embargo)

    def lstm_params(self) -> dict[str, Any]:
        """Keyword arguments of :class:`~research.models.lstm.LSTMForecaster` (seed excluded)."""
        return {k: getattr(self, k) for k in LSTM if hasattr(self, k)}

    def replace(self, **changes: Any) -> TrainingConfig:
        """A copy with some fields changed (unknown names are refused)."""
        _check_keys(changes)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["seeds"], out["baselines"] = list(self.seeds), list(self.baselines)
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, base: TrainingConfig | None = None) -> TrainingConfig:
        """Build from a mapping, on top of ``base`` (default: the defaults)."""
        values = dict(values or {})
        preset = values.pop("preset", None)
        start = cls.preset(preset) if preset else (base or cls())
        return start.replace(**values)

    @classmethod
    def from_yaml(cls, path: str | Path, *, base: TrainingConfig | None = None) -> TrainingConfig:
        """Read a YAML mapping of fields (``preset: tiny`` picks the starting preset)."""
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(doc, dict):
            raise ValueError(f"{path}: expected a mapping of training settings, got {type(doc).__name__}")
        return cls.from_dict(doc, base=base)

    @classmethod
    def preset(cls, name: str) -> TrainingConfig:
        """A named preset: ``tiny``, ``pipeline`` or ``research`` (``research.defaults.TRAINING_PRESETS``)."""
        if name not in TRAINING_PRESETS:
            raise ValueError(f"unknown preset {name!r}; expected one of {sorted(TRAINING_PRESETS)}")
        return cls(**TRAINING_PRESETS[name])


def _check_keys(values: dict[str, Any]) -> None:
    names = {f.name for f in dataclasses.fields(TrainingConfig)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"unknown training settings {unknown}; expected some of {sorted(names)}")
