"""The interface every forecaster shares, and the checks done at fit and predict time.

A forecaster is fitted on a :class:`~research.models.datasets.WindowedDataset` and predicts
the dataset's target (the return, or the probability of an up move, over ``horizon`` bars) for
each window. ``predict(frame)`` takes a feature frame with exactly the training columns, in the
training order, and answers for every bar that ends a complete window::

    model = RidgeForecaster(alpha=1.0).fit(train)
    model.predict_dataset(test)            # numpy [N] for evaluation
    model.predict(features).iloc[-1]       # the forecast made at the last bar
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
import pandas as pd

from research.config import get_settings
from research.models.datasets import TargetKind, WindowedDataset, check_features

__all__ = [
    "Forecaster",
    "TrainingError",
    "NotEnoughHistoryError",
    "FeatureMismatchError",
    "IncompleteFeaturesError",
    "check_training_data",
    "allowed_model_roots",
    "check_model_path",
]

log = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    """Training could not produce a usable model (bad inputs, NaN loss)."""


class NotEnoughHistoryError(ValueError):
    """The frame given to ``predict`` is shorter than one complete window."""


class FeatureMismatchError(ValueError):
    """The frame given to ``predict`` does not have the training features in order."""


class IncompleteFeaturesError(ValueError):
    """Feature rows after the warm-up hold NaN, so some bars (the last one, say) would get no forecast."""


INCOMPLETE = ("raise", "skip")


def check_training_data(data: WindowedDataset, *, what: str = "training data") -> None:
    """Refuse windows or targets holding NaN or Inf, or an empty dataset, before any fit."""
    if len(data) == 0:
        raise TrainingError(f"{what} is empty (0 windows)")
    bad_x = int((~np.isfinite(data.X)).sum())
    bad_y = int((~np.isfinite(data.y)).sum())
    if bad_x or bad_y:
        raise TrainingError(
            f"{what} must be finite: {bad_x} NaN/Inf values in X {tuple(data.X.shape)}, "
            f"{bad_y} in y; clean or drop those rows before training"
        )


def allowed_model_roots() -> list[Path]:
    """Folders models may be loaded from: the project's artifact, runs and data stores."""
    s = get_settings()
    return [p.resolve() for p in (s.artifact_root, s.runs_dir, s.data_dir, s.home / "models")]


def check_model_path(path: str | Path) -> Path:
    """Resolve ``path`` and refuse it unless it lies inside one of :func:`allowed_model_roots`."""
    p = Path(path).expanduser().resolve()
    roots = allowed_model_roots()
    if not any(p.is_relative_to(r) for r in roots):
        raise PermissionError(
            f"refusing to load a model from {p}: models load only from the workbench's stores "
            f"({', '.join(str(r) for r in roots)})"
        )
    return p


def realised_target(close: pd.Series, *, horizon: int, kind: TargetKind) -> pd.Series:
    """The target realised *by* each bar (return from ``t - h`` to ``t``): known at ``t``."""
    ret = close.astype("float64") / close.astype("float64").shift(horizon) - 1.0
    if kind == "direction":
        ret = (ret > 0).astype("float64").where(ret.notna())
    return ret


class Forecaster(ABC):
    """Base class: fitted state plus the shared ``predict(frame)`` path."""

    name: str = "forecaster"

    def __init__(self, *, lookback: int, horizon: int = 1) -> None:
        self.lookback = int(lookback)
        self.horizon = int(horizon)
        self.feature_names: tuple[str, ...] = ()
        self.target: TargetKind = "return"
        self.fitted_range: tuple[str, str] | None = None

    # -- fitting ---------------------------------------------------------------------------
    def _begin_fit(self, data: WindowedDataset) -> None:
        if data.lookback != self.lookback:
            raise ValueError(
                f"{self.name}: dataset lookback {data.lookback} differs from the model's "
                f"{self.lookback}"
            )
        check_training_data(data)
        self.horizon = data.horizon
        self.feature_names = data.feature_names
        self.target = data.target
        self.fitted_range = (str(data.index[0]), str(data.index[-1]))

    @abstractmethod
    def fit(self, data: WindowedDataset, *, validation: WindowedDataset | None = None) -> Forecaster:
        """Fit on training windows (``validation`` is used for early stopping where relevant)."""

    @abstractmethod
    def _predict_arrays(self, X: np.ndarray, past_target: np.ndarray) -> np.ndarray:
        """Predictions ``[N]`` for windows ``X [N, T, F]`` and ``past_target [N, T]``."""

    @property
    def fitted(self) -> bool:
        return self.fitted_range is not None

    def _require_fitted(self) -> None:
        if not self.fitted:
            raise RuntimeError(f"{self.name} is not fitted; call fit(dataset) first")

    # -- predicting ------------------------------------------------------------------------
    def predict_dataset(self, data: WindowedDataset) -> np.ndarray:
        """Predictions ``[N]`` for the windows of a dataset (evaluation path)."""
        self._require_fitted()
        if data.feature_names != self.feature_names:
            raise FeatureMismatchError(_mismatch(self.feature_names, data.feature_names))
        if len(data) == 0:
            return np.empty(0, dtype="float32")
        return np.asarray(self._predict_arrays(data.X, data.past_target), dtype="float64").ravel()

    def predict(self, frame: pd.DataFrame, *, close: pd.Series | None = None, incomplete: str = "raise") -> pd.Series:
        """Forecast for every bar of ``frame`` that ends a complete window.

        Parameters
        ----------
        frame : pandas.DataFrame
            Features with exactly the training columns, in order (extra, missing, renamed or
            reordered columns raise :class:`FeatureMismatchError`). Warm-up rows may be NaN.
        close : pandas.Series, optional
            Close prices on the same index; only baselines that use past realised returns need
            it.
        incomplete : {"raise", "skip"}
            What to do when a row after the warm-up holds NaN (a bar, often the last one, whose
            windows cannot be complete): ``"raise"`` an :class:`IncompleteFeaturesError` naming
            the rows and columns, or ``"skip"`` them, with a warning and the bars left without
            a forecast listed in the result's ``attrs["skipped"]``.

        Returns
        -------
        pandas.Series
            Predicted target made at each bar ``t`` (for ``t`` to ``t + horizon``).
        """
        self._require_fitted()
        cols = tuple(str(c) for c in frame.columns)
        if cols != self.feature_names:
            raise FeatureMismatchError(_mismatch(self.feature_names, cols))
        check_features(frame)
        values = frame.to_numpy(dtype="float32")
        ok = ~np.isnan(values).any(axis=1)
        T = self.lookback
        run = np.convolve(ok.astype(np.int64), np.ones(T, dtype=np.int64))[: len(ok)]
        ends = np.flatnonzero(run == T)
        if ends.size == 0:
            trailing = int(len(ok) - (np.flatnonzero(~ok)[-1] + 1)) if (~ok).any() else len(ok)
            raise NotEnoughHistoryError(
                f"{self.name} needs at least {T} consecutive complete feature rows "
                f"(lookback {T}) to predict; the frame has {len(ok)} rows and its last "
                f"{trailing} are complete"
            )
        skipped = self._incomplete_rows(frame, ok, ends, incomplete)
        view = np.lib.stride_tricks.sliding_window_view(values, T, axis=0)
        X = np.ascontiguousarray(view[ends - T + 1].transpose(0, 2, 1))  # [N, T, F]
        past = self._past_target(frame, close)
        past_view = np.lib.stride_tricks.sliding_window_view(past, T)[ends - T + 1]  # [N, T]
        preds = np.asarray(self._predict_arrays(X, past_view.astype("float32")), dtype="float64")
        out = pd.Series(preds.ravel(), index=frame.index[ends], name=f"{self.name}_pred")
        out.attrs["skipped"] = skipped
        return out

    def _incomplete_rows(self, frame: pd.DataFrame, ok: np.ndarray, ends: np.ndarray, incomplete: str) -> list[str]:
        """Bars after the first complete window that get no forecast (NaN in their windows)."""
        if incomplete not in INCOMPLETE:
            raise ValueError(f"incomplete must be one of {INCOMPLETE}, got {incomplete!r}")
        first = int(ends[0])
        missing = np.setdiff1d(np.arange(first, len(ok)), ends)
        if missing.size == 0:
            return []
        bad = np.flatnonzero(~ok[first:]) + first
        cols = sorted({str(c) for c in frame.columns[np.isnan(frame.iloc[bad].to_numpy(dtype="float64")).any(axis=0)]})
        stamps = [str(t) for t in frame.index[missing]]
        where = ", ".join(str(frame.index[i]) for i in bad[:5]) + (" ..." if bad.size > 5 else "")
        last = " (the last bar among them)" if missing[-1] == len(ok) - 1 else ""
        msg = (f"{self.name}: {bad.size} feature row(s) after the warm-up hold NaN ({where}; columns {cols}), so "
               f"{missing.size} bar(s) get no forecast{last}")
        if incomplete == "raise":
            raise IncompleteFeaturesError(f"{msg}; fill or drop those rows, or pass incomplete='skip' to forecast "
                                          "only where the window is complete (the skipped bars are listed in "
                                          "attrs['skipped'])")
        log.warning("%s; skipped: %s", msg, ", ".join(stamps[:5]) + (" ..." if len(stamps) > 5 else ""))
        return stamps

    def _past_target(self, frame: pd.DataFrame, close: pd.Series | None) -> np.ndarray:
        if close is None:
            return np.full(len(frame), np.nan)
        if not close.index.equals(frame.index):
            raise ValueError(f"close must share the frame's index ({len(frame)} rows; close: {len(close)})")
        return realised_target(close, horizon=self.horizon, kind=self.target).to_numpy()

    def __repr__(self) -> str:
        state = f"fitted {self.fitted_range[0]} .. {self.fitted_range[1]}" if self.fitted else "unfitted"
        return f"{type(self).__name__}(lookback={self.lookback}, horizon={self.horizon}, {state})"


def _mismatch(expected: tuple[str, ...], got: tuple[str, ...]) -> str:
    missing = [c for c in expected if c not in got]
    extra = [c for c in got if c not in expected]
    if not missing and not extra:
        return (
            f"features are in a different order than at training: expected {list(expected)}, "
            f"got {list(got)}"
        )
    return (
        f"features differ from training: missing {missing}, unexpected {extra} "
        f"(expected exactly {list(expected)})"
    )
