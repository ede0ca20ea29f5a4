"""Baselines behind the forecaster interface; every evaluation reports them beside the LSTM.

=====================  ==========================================================================
baseline               forecast made at bar ``t`` for ``t .. t + h``
=====================  ==========================================================================
``naive`` (``zero``)   random walk: tomorrow's price is today's, so a 0 return (0.5 for direction)
``naive`` (``mean``)   the training window's mean target (drift / base rate of up moves)
``moving_average``     mean of the last ``window`` targets already realised by ``t``
``ridge``              ridge regression on the same scaled features (last ``lags`` rows of the
                       window), closed form with an unpenalised intercept
=====================  ==========================================================================

Baselines are deterministic; ``moving_average`` needs ``close`` in ``predict(frame, close=...)``
because it reads realised returns rather than features.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np

from research.models.base import Forecaster, check_model_path
from research.models.datasets import Scaler, WindowedDataset

__all__ = ["NaiveForecaster", "MovingAverageForecaster", "RidgeForecaster", "make_baseline", "load_baseline"]


class _JsonForecaster(Forecaster):
    """Baselines persist as one small JSON file."""

    def _state(self) -> dict:
        return {}

    def _set_state(self, state: dict) -> None:
        pass

    def _params(self) -> dict:
        return {}

    def save(self, path: str | Path) -> Path:
        """Write the fitted baseline to ``path`` (JSON)."""
        self._require_fitted()
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "kind": type(self).__name__, "params": self._params(), "lookback": self.lookback,
            "horizon": self.horizon, "target": self.target,
            "feature_names": list(self.feature_names), "fitted_range": list(self.fitted_range),
            "state": self._state(),
        }
        p.write_text(json.dumps(doc, indent=1), encoding="utf-8")
        return p


class NaiveForecaster(_JsonForecaster):
    """The naive baseline.

    Parameters
    ----------
    strategy : {"zero", "mean"}
        ``"zero"`` is the random walk (a 0 return, or probability 0.5 for direction);
        ``"mean"`` predicts the training mean target (drift, or the base rate of up moves).
    """

    def __init__(self, *, lookback: int, strategy: Literal["zero", "mean"] = "zero") -> None:
        super().__init__(lookback=lookback)
        if strategy not in ("zero", "mean"):
            raise ValueError(f"strategy must be 'zero' or 'mean'; got {strategy!r}")
        self.strategy = strategy
        self.name = "naive" if strategy == "zero" else "naive_mean"
        self.value_: float | None = None

    def fit(self, data: WindowedDataset, *, validation: WindowedDataset | None = None) -> NaiveForecaster:
        self._begin_fit(data)
        if self.strategy == "mean":
            self.value_ = float(np.mean(data.y, dtype="float64"))
        else:
            self.value_ = 0.5 if data.target == "direction" else 0.0
        return self

    def _predict_arrays(self, X: np.ndarray, past_target: np.ndarray) -> np.ndarray:
        return np.full(X.shape[0], self.value_, dtype="float64")

    def _params(self) -> dict:
        return {"strategy": self.strategy}

    def _state(self) -> dict:
        return {"value": self.value_}

    def _set_state(self, state: dict) -> None:
        self.value_ = float(state["value"])


class MovingAverageForecaster(_JsonForecaster):
    """Mean of the last ``window`` targets realised by the time of the forecast.

    Parameters
    ----------
    window : int
        Number of past realised targets averaged (at most the lookback).
    """

    name = "moving_average"

    def __init__(self, *, lookback: int, window: int = 20) -> None:
        super().__init__(lookback=lookback)
        if not 1 <= window <= lookback:
            raise ValueError(f"window must be between 1 and the lookback {lookback}; got {window}")
        self.window = int(window)
        self.fallback_: float = 0.0

    def fit(self, data: WindowedDataset, *, validation: WindowedDataset | None = None) -> MovingAverageForecaster:
        self._begin_fit(data)
        self.fallback_ = 0.5 if data.target == "direction" else 0.0
        return self

    def _predict_arrays(self, X: np.ndarray, past_target: np.ndarray) -> np.ndarray:
        recent = past_target[:, -self.window:].astype("float64")  # [N, window]
        if np.isnan(recent).all():
            raise ValueError(
                "moving_average needs past realised returns: pass close=... to predict(frame)"
            )
        n = (~np.isnan(recent)).sum(axis=1)
        total = np.nansum(recent, axis=1)
        return np.where(n > 0, total / np.maximum(n, 1), self.fallback_)

    def _params(self) -> dict:
        return {"window": self.window}

    def _state(self) -> dict:
        return {"fallback": self.fallback_}

    def _set_state(self, state: dict) -> None:
        self.fallback_ = float(state["fallback"])


class RidgeForecaster(_JsonForecaster):
    """Ridge regression on the scaled features of the last ``lags`` rows of each window.

    Parameters
    ----------
    alpha : float
        L2 penalty on the (standardised) coefficients; the intercept is not penalised.
    lags : int
        How many trailing rows of the window enter the regression (``lags * F`` inputs).
    """

    name = "ridge"

    def __init__(self, *, lookback: int, alpha: float = 1.0, lags: int = 1) -> None:
        super().__init__(lookback=lookback)
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0; got {alpha}")
        if not 1 <= lags <= lookback:
            raise ValueError(f"lags must be between 1 and the lookback {lookback}; got {lags}")
        self.alpha, self.lags = float(alpha), int(lags)
        self.scaler: Scaler | None = None
        self.coef_: np.ndarray | None = None
        self.intercept_: float = 0.0

    def _design(self, X: np.ndarray) -> np.ndarray:
        Z = self.scaler.transform(X[:, -self.lags:, :]).astype("float64")  # [N, lags, F]
        return Z.reshape(Z.shape[0], -1)  # [N, lags * F]

    def fit(self, data: WindowedDataset, *, validation: WindowedDataset | None = None) -> RidgeForecaster:
        self._begin_fit(data)
        self.scaler = Scaler().fit(data)
        Z = self._design(data.X)
        y = data.y.astype("float64")
        zm, ym = Z.mean(axis=0), y.mean()
        Zc = Z - zm
        A = Zc.T @ Zc + self.alpha * np.eye(Zc.shape[1])
        self.coef_ = np.linalg.solve(A, Zc.T @ (y - ym))
        self.intercept_ = float(ym - zm @ self.coef_)
        return self

    def _predict_arrays(self, X: np.ndarray, past_target: np.ndarray) -> np.ndarray:
        out = self._design(X) @ self.coef_ + self.intercept_
        return np.clip(out, 0.0, 1.0) if self.target == "direction" else out

    def _params(self) -> dict:
        return {"alpha": self.alpha, "lags": self.lags}

    def _state(self) -> dict:
        return {"scaler": self.scaler.to_dict(), "coef": self.coef_.tolist(), "intercept": self.intercept_}

    def _set_state(self, state: dict) -> None:
        self.scaler = Scaler.from_dict(state["scaler"])
        self.coef_ = np.asarray(state["coef"], dtype="float64")
        self.intercept_ = float(state["intercept"])


_KINDS = {
    "naive": (NaiveForecaster, {"strategy": "zero"}),
    "naive_mean": (NaiveForecaster, {"strategy": "mean"}),
    "moving_average": (MovingAverageForecaster, {}),
    "ridge": (RidgeForecaster, {}),
}


def make_baseline(name: str, *, lookback: int, **params: object) -> Forecaster:
    """Build a baseline by name: ``naive``, ``naive_mean``, ``moving_average`` or ``ridge``."""
    if name not in _KINDS:
        raise ValueError(f"unknown baseline {name!r}; expected one of {sorted(_KINDS)}")
    cls, defaults = _KINDS[name]
    return cls(lookback=lookback, **{**defaults, **params})


def load_baseline(path: str | Path) -> Forecaster:
    """Load a baseline saved with ``save`` (only from the workbench's stores)."""
    p = check_model_path(path)
    doc = json.loads(p.read_text(encoding="utf-8"))
    classes = {c.__name__: c for c in (NaiveForecaster, MovingAverageForecaster, RidgeForecaster)}
    if doc.get("kind") not in classes:
        raise ValueError(f"{p} is not a saved baseline (kind {doc.get('kind')!r})")
    model = classes[doc["kind"]](lookback=doc["lookback"], **doc["params"])
    model.horizon, model.target = doc["horizon"], doc["target"]
    model.feature_names = tuple(doc["feature_names"])
    model.fitted_range = tuple(doc["fitted_range"])
    model._set_state(doc["state"])
    return model
