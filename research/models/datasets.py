"""Windowed datasets, chronological splits, walk-forward folds and a leakage-proof scaler.

Timing contract
---------------
A window ending at bar ``t`` holds the feature rows ``t - T + 1 .. t`` (lookback ``T``) and its
target is what happens from ``t`` to ``t + h`` (horizon ``h``): the simple return
``close[t + h] / close[t] - 1`` or its direction (``1.0`` up, ``0.0`` not up). Nothing in the
window uses data after ``t``; the target is the only thing that looks ahead, and splits keep
that look-ahead out of the evaluation windows.

Embargo
-------
A training window ending at ``t`` has a target that ends at ``t + h``. Between the last
training window and the first evaluation window every split leaves an embargo of at least
``h`` windows, so the last training target ends strictly *before* the first evaluation window's
bar: no training label overlaps any evaluation label. :func:`check_embargo` verifies it on
the bar positions themselves, so it holds even where warm-up or missing rows break the windows
into runs.

Windows are never shuffled across time: datasets keep their chronological order and every
split is a contiguous block of it.

Examples
--------
>>> ds = make_windows(features, target, lookback=30, horizon=1)
>>> ds.X.shape                                         # [N, T, F]
(4970, 30, 6)
>>> for fold in walk_forward_folds(len(ds), n_folds=3, test_size=250, embargo=ds.horizon):
...     train, test = fold.split(ds)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import pandas as pd

from research.features.labels import direction, forward_returns

__all__ = [
    "LeakageError",
    "WindowedDataset",
    "Scaler",
    "Fold",
    "forward_target",
    "make_windows",
    "chronological_split",
    "walk_forward_folds",
    "check_embargo",
    "check_features",
]

TargetKind = Literal["return", "direction"]


class LeakageError(ValueError):
    """Data from an evaluation window would reach a model or scaler fitted before it."""


def forward_target(
    close: pd.Series, *, horizon: int = 1, kind: TargetKind = "return"
) -> pd.Series:
    """The target of a window ending at ``t``: the return from ``t`` to ``t + horizon``.

    Parameters
    ----------
    close : pandas.Series
        Close prices of one symbol.
    horizon : int
        Bars ahead (``h >= 1``).
    kind : {"return", "direction"}
        Simple decimal return, or ``1.0`` when it is positive and ``0.0`` otherwise.

    Returns
    -------
    pandas.Series
        Aligned with ``close``; the last ``horizon`` values are NaN (their future is unknown).
    """
    if kind not in ("return", "direction"):
        raise ValueError(f"target kind must be 'return' or 'direction'; got {kind!r}")
    if kind == "direction":
        ret = direction(close, horizon=horizon)
    else:
        ret = forward_returns(close, horizon=horizon)
    ret.name = f"target_{kind}_{horizon}"
    return ret


def check_features(frame: pd.DataFrame, *, what: str = "features") -> None:
    """Refuse a feature frame that is empty, non-numeric or holds infinities."""
    if not isinstance(frame, pd.DataFrame) or frame.shape[1] == 0:
        raise ValueError(f"{what} must be a DataFrame with at least one column")
    bad = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if bad:
        raise TypeError(f"{what} must be numeric; non-numeric columns: {bad}")
    values = frame.to_numpy(dtype="float64")
    inf = np.isinf(values)
    if inf.any():
        cols = [str(c) for c, n in zip(frame.columns, inf.sum(axis=0), strict=True) if n]
        raise ValueError(f"{what} contain Inf in columns {cols} ({int(inf.sum())} values)")


@dataclass(frozen=True, eq=False)
class WindowedDataset:
    """Windows of a feature frame with their targets, in time order.

    Attributes
    ----------
    X : numpy.ndarray
        float32 ``[N, T, F]``, unscaled feature windows.
    y : numpy.ndarray
        float32 ``[N]``, the targets (NaN never appears).
    index : pandas.DatetimeIndex
        ``[N]`` the bar ``t`` that ends each window (when the prediction is made).
    rows : numpy.ndarray
        int64 ``[N]`` position of ``t`` in the source frame.
    target_end : pandas.DatetimeIndex
        ``[N]`` the bar ``t + h`` where each target ends (the last price it uses).
    past_target : numpy.ndarray
        float32 ``[N, T]`` the target realised *by* each bar of the window (the return from
        ``s - h`` to ``s``): known at ``s``, NaN where history is too short. Baselines use it.
    feature_names : tuple of str
        Column order of ``F``.
    eval_start : pandas.Timestamp or None
        Set on training subsets: the first bar of the evaluation window this data precedes.
    """

    X: np.ndarray
    y: np.ndarray
    index: pd.DatetimeIndex
    rows: np.ndarray
    target_end: pd.DatetimeIndex
    past_target: np.ndarray
    feature_names: tuple[str, ...]
    lookback: int
    horizon: int
    target: TargetKind = "return"
    eval_start: pd.Timestamp | None = None
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.X.shape[2])

    def subset(self, idx: slice | np.ndarray, *, eval_start: pd.Timestamp | None = None) -> WindowedDataset:
        """A chronological slice (or sorted positions) of the windows."""
        if not isinstance(idx, slice):
            idx = np.asarray(idx)
            if idx.size > 1 and np.any(np.diff(idx) <= 0):
                raise ValueError("subset positions must be strictly increasing (time order)")
        return replace(
            self, X=self.X[idx], y=self.y[idx], index=self.index[idx], rows=self.rows[idx],
            target_end=self.target_end[idx], past_target=self.past_target[idx],
            eval_start=eval_start if eval_start is not None else self.eval_start,
        )

    def feature_rows(self) -> np.ndarray:
        """float64 ``[R, F]``: every distinct feature row the windows cover, oldest first."""
        if len(self) == 0:
            return np.empty((0, self.n_features))
        T = self.lookback
        src = (self.rows[:, None] - T + 1 + np.arange(T)).ravel()  # [N*T] source row of X[i, k]
        _, first = np.unique(src, return_index=True)
        return self.X.reshape(-1, self.n_features)[first].astype("float64")

    def first_row_time(self) -> pd.Timestamp:
        """The oldest feature bar the windows read (for leakage checks)."""
        return self.meta["frame_index"][int(self.rows[0]) - self.lookback + 1]


def make_windows(
    features: pd.DataFrame,
    target: pd.Series,
    *,
    lookback: int,
    horizon: int,
    kind: TargetKind = "return",
) -> WindowedDataset:
    """Cut a feature frame into ``[N, T, F]`` windows with their forward targets.

    Parameters
    ----------
    features : pandas.DataFrame
        Numeric features of one symbol, time index. Rows with any NaN (warm-up) are never
        inside a window; Inf is refused.
    target : pandas.Series
        The forward target from :func:`forward_target` (same index; NaN where unknown).
    lookback : int
        Window length ``T`` in bars.
    horizon : int
        Bars the target looks ahead (recorded; used for embargoes).
    kind : {"return", "direction"}
        What ``target`` holds.

    Returns
    -------
    WindowedDataset
        One window for each bar ``t`` whose ``T`` feature rows are complete and whose target
        is known, in time order.
    """
    check_features(features)
    if lookback < 1:
        raise ValueError(f"lookback must be >= 1; got {lookback}")
    if not features.index.equals(target.index):
        raise ValueError(
            f"target must share the features' index ({len(features)} rows; target: {len(target)})"
        )
    values = features.to_numpy(dtype="float32")  # [R, F]
    y_all = target.to_numpy(dtype="float64")
    ends = _window_ends(values, y_all, lookback=lookback)  # positions of t
    view = np.lib.stride_tricks.sliding_window_view(values, lookback, axis=0)  # [R-T+1, F, T]
    X = np.ascontiguousarray(view[ends - lookback + 1].transpose(0, 2, 1))  # [N, T, F]
    past = pd.Series(y_all, index=features.index).shift(horizon).to_numpy()  # realised by t
    past_view = np.lib.stride_tricks.sliding_window_view(past, lookback)  # [R-T+1, T]
    idx = features.index
    end_pos = np.minimum(ends + horizon, len(idx) - 1)
    return WindowedDataset(
        X=X,
        y=y_all[ends].astype("float32"),
        index=pd.DatetimeIndex(idx[ends]),
        rows=ends.astype(np.int64),
        target_end=pd.DatetimeIndex(idx[end_pos]),
        past_target=past_view[ends - lookback + 1].astype("float32"),
        feature_names=tuple(str(c) for c in features.columns),
        lookback=int(lookback),
        horizon=int(horizon),
        target=kind,
        meta={"frame_index": idx},
    )


def _window_ends(values: np.ndarray, y: np.ndarray, *, lookback: int) -> np.ndarray:
    """Positions ``t`` whose ``lookback`` feature rows up to ``t`` are all complete and whose target
    is known; refused when there is none."""
    ok_row = ~np.isnan(values).any(axis=1)
    # a window ending at t is complete when its T rows are all complete
    run = np.convolve(ok_row.astype(np.int64), np.ones(lookback, dtype=np.int64))[: len(ok_row)]
    ends = np.flatnonzero((run == lookback) & ~np.isnan(y))
    if ends.size == 0:
        raise ValueError(
            f"no complete window: lookback {lookback} needs {lookback} consecutive complete rows "
            f"with a known target; the frame has {int(ok_row.sum())} complete rows of {len(ok_row)}"
        )
    return ends


def check_embargo(train: WindowedDataset, evaluation: WindowedDataset) -> None:
    """Raise :class:`LeakageError` unless every training target ends before evaluation starts.

    The last training window ends at bar ``p`` and its target at ``p + h``; the first
    evaluation window ends at bar ``q``. The split is clean when ``p + h < q``.
    """
    if len(train) == 0 or len(evaluation) == 0:
        return
    p, q = int(train.rows[-1]), int(evaluation.rows[0])
    if p + train.horizon >= q:
        raise LeakageError(
            f"training target ends at bar {p + train.horizon} ({train.target_end[-1]}), not before "
            f"the first evaluation bar {q} ({evaluation.index[0]}): embargo >= horizon "
            f"({train.horizon}) bars needed, got {q - p - 1}"
        )


@dataclass(frozen=True)
class Fold:
    """One chronological split of ``N`` windows: train, embargo gap, evaluation."""

    number: int
    train: slice
    test: slice
    embargo: int

    def split(self, dataset: WindowedDataset) -> tuple[WindowedDataset, WindowedDataset]:
        """The training and evaluation subsets; the training one carries ``eval_start``."""
        test = dataset.subset(self.test)
        train = dataset.subset(self.train, eval_start=test.index[0])
        check_embargo(train, test)
        return train, test

    def describe(self, dataset: WindowedDataset) -> dict:
        """Bars and dates of the fold (for logs and reports)."""
        tr, te = self.split(dataset)
        return {
            "fold": self.number, "train_windows": len(tr), "test_windows": len(te),
            "train_start": str(tr.index[0]), "train_end": str(tr.index[-1]),
            "test_start": str(te.index[0]), "test_end": str(te.index[-1]),
            "embargo": self.embargo,
        }


def chronological_split(
    n: int, *, val_fraction: float = 0.15, test_fraction: float = 0.15, embargo: int
) -> tuple[slice, slice, slice]:
    """Train / validation / test blocks of ``n`` windows in time order, ``embargo`` apart."""
    if embargo < 0:
        raise ValueError(f"embargo must be >= 0; got {embargo}")
    n_test = int(round(n * test_fraction))
    n_val = int(round(n * val_fraction))
    n_train = n - n_test - n_val - embargo * ((n_val > 0) + (n_test > 0))
    if n_train < 1 or (test_fraction > 0 and n_test < 1) or (val_fraction > 0 and n_val < 1):
        raise ValueError(
            f"{n} windows are too few for val {val_fraction:.0%}, test {test_fraction:.0%} "
            f"and embargo {embargo}"
        )
    train = slice(0, n_train)
    v0 = n_train + (embargo if n_val else 0)
    val = slice(v0, v0 + n_val)
    t0 = val.stop + (embargo if n_test else 0)
    return train, val, slice(t0, t0 + n_test)


def walk_forward_folds(
    n: int,
    *,
    n_folds: int,
    test_size: int,
    embargo: int,
    mode: Literal["expanding", "rolling"] = "expanding",
    train_size: int | None = None,
    min_train: int = 1,
) -> list[Fold]:
    """Walk-forward folds over ``n`` windows: the last ``n_folds * test_size`` windows evaluated.

    Fold ``k`` evaluates ``test_size`` consecutive windows and trains on the windows that end
    at least ``embargo + 1`` windows earlier: all of them (``"expanding"``) or the latest
    ``train_size`` (``"rolling"``). Evaluation blocks do not overlap and cover the tail.
    """
    if n_folds < 1 or test_size < 1:
        raise ValueError(f"n_folds and test_size must be >= 1; got {n_folds}, {test_size}")
    if embargo < 0:
        raise ValueError(f"embargo must be >= 0; got {embargo}")
    if mode not in ("expanding", "rolling"):
        raise ValueError(f"mode must be 'expanding' or 'rolling'; got {mode!r}")
    if mode == "rolling" and not train_size:
        raise ValueError("rolling folds need train_size")
    first_test = n - n_folds * test_size
    need = max(min_train, train_size or 1) + embargo
    if first_test < need:
        raise ValueError(
            f"{n} windows are too few for {n_folds} folds of {test_size} with embargo {embargo} "
            f"and at least {max(min_train, train_size or 1)} training windows "
            f"(need {need + n_folds * test_size})"
        )
    folds = []
    for k in range(n_folds):
        t0 = first_test + k * test_size
        stop = t0 - embargo
        start = 0 if mode == "expanding" else max(0, stop - int(train_size))
        folds.append(Fold(k, slice(start, stop), slice(t0, t0 + test_size), embargo))
    return folds


class Scaler:
    """Per-feature standardisation fitted on training data only.

    The scaler records the time range it was fitted on and refuses a fit that reaches the
    evaluation window: ``fit`` raises :class:`LeakageError` when the data holds any bar at or
    after ``eval_start`` (taken from a training subset made by :meth:`Fold.split`).
    """

    def __init__(self) -> None:
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None
        self.feature_names: tuple[str, ...] = ()
        self.fit_start: pd.Timestamp | None = None
        self.fit_end: pd.Timestamp | None = None

    @property
    def fitted(self) -> bool:
        return self.mean_ is not None

    def fit(self, data: WindowedDataset, *, eval_start: pd.Timestamp | None = None) -> Scaler:
        """Fit on the feature rows of a (training) dataset.

        Parameters
        ----------
        data : WindowedDataset
            Training windows; each source row is counted once.
        eval_start : pandas.Timestamp, optional
            First bar of the evaluation window; defaults to ``data.eval_start``.
        """
        limit = eval_start if eval_start is not None else data.eval_start
        if len(data) == 0:
            raise ValueError("cannot fit a scaler on an empty dataset")
        last = data.index[-1]
        if limit is not None and (last >= limit or data.target_end[-1] >= limit):
            raise LeakageError(
                f"scaler fit data reach {max(last, data.target_end[-1])}, at or after the "
                f"evaluation window starting {limit}; fit on the training window only"
            )
        rows = data.feature_rows()  # [R, F]
        self.mean_ = rows.mean(axis=0)
        std = rows.std(axis=0)
        self.scale_ = np.where(std > 0, std, 1.0)
        self.feature_names = data.feature_names
        self.fit_start, self.fit_end = data.first_row_time(), last
        return self

    def check_before(self, when: pd.Timestamp) -> None:
        """Raise :class:`LeakageError` unless the fit ended before ``when``."""
        if self.fit_end is None or self.fit_end >= when:
            raise LeakageError(f"scaler was fitted up to {self.fit_end}, not before {when}")

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Scale ``[..., F]`` arrays; float32 out."""
        if not self.fitted:
            raise RuntimeError("scaler is not fitted")
        if X.shape[-1] != self.mean_.shape[0]:
            raise ValueError(f"expected {self.mean_.shape[0]} features, got {X.shape[-1]}")
        return ((X - self.mean_) / self.scale_).astype("float32")

    def to_dict(self) -> dict:
        """JSON-friendly state (stored with a model)."""
        if not self.fitted:
            raise RuntimeError("scaler is not fitted")
        return {
            "mean": self.mean_.tolist(), "scale": self.scale_.tolist(),
            "feature_names": list(self.feature_names),
            "fit_start": str(self.fit_start), "fit_end": str(self.fit_end),
        }

    @classmethod
    def from_dict(cls, state: dict) -> Scaler:
        """Rebuild from :meth:`to_dict`."""
        s = cls()
        s.mean_ = np.asarray(state["mean"], dtype="float64")
        s.scale_ = np.asarray(state["scale"], dtype="float64")
        s.feature_names = tuple(state["feature_names"])
        s.fit_start = pd.Timestamp(state["fit_start"])
        s.fit_end = pd.Timestamp(state["fit_end"])
        return s

    def __repr__(self) -> str:
        rng = f"{self.fit_start} .. {self.fit_end}" if self.fitted else "unfitted"
        return f"Scaler({len(self.feature_names)} features, fit {rng})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Scaler) and json.dumps(self.to_dict()) == json.dumps(other.to_dict())
