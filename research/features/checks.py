"""Look-ahead checks: a feature's value at ``t`` must not depend on data after ``t``.

:func:`check_lookahead` recomputes a feature on altered copies of its input and compares the
rows up to each cut point with the values computed on the full data:

``truncate``
    the data after the cut is removed;
``noise``
    the data after the cut is replaced by noise of the same scale (the column's own values
    shuffled and jittered), so a feature that peeks ahead sees different numbers.

A prefix-invariant feature gives identical rows up to the cut (NaN where the full run has NaN)
in both cases. Any feature built with ``shift(-1)``, a centred window, a full-sample mean or a
backward fill fails. :func:`assert_no_lookahead` raises on the first failing feature; pipelines
can call it on new features before using them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["LookaheadError", "LookaheadReport", "check_lookahead", "assert_no_lookahead", "cut_points"]

Frame = pd.DataFrame | pd.Series


class LookaheadError(AssertionError):
    """A feature's past values changed when the data after a cut point changed."""


@dataclass(frozen=True)
class LookaheadReport:
    """Outcome of :func:`check_lookahead`.

    Attributes
    ----------
    cut_points : tuple of int
        Row positions used as cut points (the last row kept).
    comparisons : int
        Number of (cut point, alteration) recomputations compared.
    violations : list of str
        One line per failing comparison (empty when the feature is prefix-invariant).
    """

    cut_points: tuple[int, ...]
    comparisons: int
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no comparison differed."""
        return not self.violations


def cut_points(n_rows: int, count: int = 25, *, start: int = 0) -> np.ndarray:
    """``count`` distinct row positions spread evenly over ``[start, n_rows - 2]``."""
    if n_rows < start + 2:
        raise ValueError(f"need at least {start + 2} rows to cut, got {n_rows}")
    return np.unique(np.linspace(start, n_rows - 2, count).round().astype(int))


def _noise_after(data: Frame, cut: int, rng: np.random.Generator) -> Frame:
    """Copy of ``data`` with rows after position ``cut`` replaced by same-scale noise."""
    values = data.to_numpy(dtype="float64", copy=True)
    values2d = values[:, None] if values.ndim == 1 else values
    tail = len(values2d) - cut - 1
    if tail > 0:
        for j in range(values2d.shape[1]):
            pool = values2d[np.isfinite(values2d[:, j]), j]
            if pool.size:
                values2d[cut + 1:, j] = rng.choice(pool, size=tail) * rng.lognormal(0.0, 0.05, size=tail)
    if isinstance(data, pd.Series):
        return pd.Series(values, index=data.index, name=data.name)
    return pd.DataFrame(values, index=data.index, columns=data.columns)


def _as_2d(x: Frame) -> np.ndarray:
    if isinstance(x, tuple):  # named-tuple outputs (macd, bollinger)
        return np.column_stack([_as_2d(part) for part in x])
    arr = x.to_numpy(dtype="float64")
    return arr[:, None] if arr.ndim == 1 else arr


def _compare(ref: np.ndarray, got: np.ndarray, *, rtol: float, atol: float) -> str | None:
    if ref.shape != got.shape:
        return f"shape {got.shape} != {ref.shape}"
    nan_ref, nan_got = np.isnan(ref), np.isnan(got)
    if (nan_ref != nan_got).any():
        r, c = np.argwhere(nan_ref != nan_got)[0]
        return f"NaN pattern differs first at row {r}, column {c} (full: {ref[r, c]!r}, altered: {got[r, c]!r})"
    both = ~nan_ref
    close = np.isclose(ref[both], got[both], rtol=rtol, atol=atol) if (rtol or atol) else ref[both] == got[both]
    if not close.all():
        bad = np.argwhere(both)[~close][0]
        r, c = bad
        return f"value differs first at row {r}, column {c} (full: {ref[r, c]!r}, altered: {got[r, c]!r})"
    return None


def check_lookahead(
    func: Callable[[Frame], Frame],
    data: Frame,
    *,
    cuts: int | Sequence[int] = 25,
    modes: Sequence[str] = ("truncate", "noise"),
    seed: int = 0,
    rtol: float = 0.0,
    atol: float = 0.0,
    name: str | None = None,
) -> LookaheadReport:
    """Check that ``func(data)`` at each row depends only on rows up to it.

    Parameters
    ----------
    func : callable
        Maps ``data`` (or a prefix or altered copy of it) to a Series or DataFrame, or a named
        tuple of them, indexed like ``data``.
    data : DataFrame or Series
        Input (prices, OHLCV, or a ``(field, symbol)`` frame).
    cuts : int or sequence of int
        Number of evenly spread cut points, or explicit row positions.
    modes : sequence of {"truncate", "noise"}
        Alterations of the data after each cut.
    seed : int
        Seed of the noise.
    rtol, atol : float
        Tolerances; 0 (the default) demands bit-identical values.
    name : str, optional
        Label used in violation messages.

    Returns
    -------
    LookaheadReport
    """
    unknown = set(modes) - {"truncate", "noise"}
    if unknown:
        raise ValueError(f"modes must be 'truncate' and/or 'noise', got {sorted(unknown)}")
    label = name or getattr(func, "__name__", "feature")
    positions = cut_points(len(data), cuts) if isinstance(cuts, int | np.integer) else np.asarray(cuts, dtype=int)
    full = _as_2d(func(data))
    if full.shape[0] != len(data):
        raise ValueError(f"{label} must return one row per input row (input: {len(data)}, output: {full.shape[0]})")
    rng = np.random.default_rng(seed)
    violations: list[str] = []
    comparisons = 0
    for cut in positions:
        ref = full[: cut + 1]
        for mode in modes:
            altered = data.iloc[: cut + 1] if mode == "truncate" else _noise_after(data, int(cut), rng)
            got = _as_2d(func(altered))[: cut + 1]
            comparisons += 1
            problem = _compare(ref, got, rtol=rtol, atol=atol)
            if problem:
                violations.append(f"{label}: cut at row {cut} ({mode}): {problem}")
    return LookaheadReport(tuple(int(c) for c in positions), comparisons, violations)


def assert_no_lookahead(func: Callable[[Frame], Frame], data: Frame, **options) -> LookaheadReport:
    """Like :func:`check_lookahead`, but raise :class:`LookaheadError` on any violation.

    Returns the report when the feature passes (its ``cut_points`` and ``comparisons`` say how
    much was checked).
    """
    report = check_lookahead(func, data, **options)
    if not report.ok:
        shown = "\n  ".join(report.violations[:5])
        more = f"\n  ... and {len(report.violations) - 5} more" if len(report.violations) > 5 else ""
        raise LookaheadError(
            f"look-ahead detected in {len(report.violations)} of {report.comparisons} comparisons:\n  {shown}{more}"
        )
    return report
