"""How likely a sweep's best result is luck: deflated Sharpe ratio and PBO.

* :func:`deflated_sharpe_ratio` - Bailey and Lopez de Prado (2014), "The Deflated Sharpe
  Ratio: Correcting for Selection Bias, Backtest Overfitting and Non-Normality". The
  probability that the true Sharpe ratio of the selected strategy exceeds the Sharpe ratio the
  best of ``N`` unskilled trials would show by chance, corrected for sample length, skew and
  kurtosis.
* :func:`probability_of_backtest_overfitting` - Bailey, Borwein, Lopez de Prado and Zhu
  (2017), "The Probability of Backtest Overfitting", by combinatorially symmetric
  cross-validation (CSCV): how often the in-sample best configuration ranks in the bottom half
  out of sample.

All Sharpe ratios here are per bar (not annualised): divide an annual Sharpe by
``sqrt(periods_per_year)`` before passing it in.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "EULER_GAMMA", "expected_max_sharpe", "probabilistic_sharpe_ratio", "deflated_sharpe",
    "deflated_sharpe_ratio", "DeflatedSharpeResult", "probability_of_backtest_overfitting",
    "PBOResult", "sweep_overfitting",
]

EULER_GAMMA = 0.5772156649015329


def _stats() -> Any:
    """``scipy.stats``, imported when first used (it adds about 60 MiB to every process importing the risk package)."""
    from scipy import stats

    return stats


def expected_max_sharpe(n_trials: int, *, sharpe_variance: float) -> float:
    """Expected maximum per-bar Sharpe of ``n_trials`` unskilled trials (true Sharpe 0).

    ``sqrt(V) * ((1 - g) * Phi^-1(1 - 1/N) + g * Phi^-1(1 - 1/(N e)))`` with ``g`` the
    Euler-Mascheroni constant and ``V`` the variance of the trials' Sharpe ratios.
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials!r}")
    if sharpe_variance < 0:
        raise ValueError(f"sharpe_variance must be >= 0, got {sharpe_variance!r}")
    if n_trials == 1:
        return 0.0
    z1 = _stats().norm.ppf(1.0 - 1.0 / n_trials)
    z2 = _stats().norm.ppf(1.0 - 1.0 / (n_trials * math.e))
    return float(math.sqrt(sharpe_variance) * ((1.0 - EULER_GAMMA) * z1 + EULER_GAMMA * z2))


def probabilistic_sharpe_ratio(
    sharpe: float, *, n_obs: int, skew: float = 0.0, kurtosis: float = 3.0, benchmark_sharpe: float = 0.0
) -> float:
    """Probability that the true per-bar Sharpe exceeds ``benchmark_sharpe``.

    ``Phi((SR - SR*) sqrt(T - 1) / sqrt(1 - skew SR + (kurtosis - 1) / 4 SR^2))``; ``kurtosis`` is
    the raw (non-excess) kurtosis, 3 for a normal distribution.
    """
    if n_obs < 2:
        raise ValueError(f"n_obs must be >= 2, got {n_obs!r}")
    denom = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    if denom <= 0:
        return float("nan")
    return float(_stats().norm.cdf((sharpe - benchmark_sharpe) * math.sqrt(n_obs - 1) / math.sqrt(denom)))


def deflated_sharpe(
    sharpe: float, *, n_obs: int, n_trials: int, sharpe_variance: float, skew: float = 0.0, kurtosis: float = 3.0
) -> float:
    """Deflated Sharpe ratio from summary statistics (per-bar Sharpe, raw kurtosis)."""
    sr0 = expected_max_sharpe(n_trials, sharpe_variance=sharpe_variance)
    return probabilistic_sharpe_ratio(sharpe, n_obs=n_obs, skew=skew, kurtosis=kurtosis, benchmark_sharpe=sr0)


@dataclass(frozen=True)
class DeflatedSharpeResult:
    """Deflated Sharpe ratio and its inputs (Sharpe ratios per bar).

    Attributes
    ----------
    dsr : float
        Probability that the selected strategy's true Sharpe beats the luck threshold.
    sharpe : float
        Observed per-bar Sharpe of the selected strategy.
    expected_max_sharpe : float
        The luck threshold ``SR0`` for ``n_trials`` trials.
    n_trials, n_obs : int
    skew, kurtosis : float
        Sample skew and raw kurtosis of the selected strategy's returns.
    sharpe_variance : float
        Variance of the trials' per-bar Sharpe ratios.
    """

    dsr: float
    sharpe: float
    expected_max_sharpe: float
    n_trials: int
    n_obs: int
    skew: float
    kurtosis: float
    sharpe_variance: float


def _per_bar_sharpe(frame: pd.DataFrame) -> np.ndarray:
    sd = frame.std(ddof=1).to_numpy()
    mu = frame.mean().to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sd > 0, mu / sd, np.nan)


def deflated_sharpe_ratio(
    returns: pd.Series,
    *,
    trial_returns: pd.DataFrame | None = None,
    trial_sharpes: np.ndarray | pd.Series | None = None,
    n_trials: int | None = None,
    sharpe_variance: float | None = None,
) -> DeflatedSharpeResult:
    """Deflated Sharpe ratio of the selected strategy's returns given the trials of the sweep.

    Parameters
    ----------
    returns : Series
        Per-bar returns of the selected (best) configuration.
    trial_returns : DataFrame, optional
        Per-bar returns of every configuration tried (one column each); gives the number of
        trials and the variance of their Sharpe ratios.
    trial_sharpes : array-like, optional
        Per-bar Sharpe ratios of every configuration tried (instead of ``trial_returns``).
    n_trials, sharpe_variance : optional
        Given directly (override what the trials imply, e.g. when correlated trials count as
        fewer independent ones).

    Returns
    -------
    DeflatedSharpeResult
    """
    r = returns.astype("float64").dropna()
    if len(r) < 4:
        raise ValueError(f"returns must hold at least 4 bars, got {len(r)}")
    if trial_returns is not None:
        trial_sharpes = _per_bar_sharpe(trial_returns.astype("float64"))
    if trial_sharpes is not None:
        ts = np.asarray(trial_sharpes, dtype="float64")
        ts = ts[np.isfinite(ts)]
        n_trials = len(ts) if n_trials is None else n_trials
        sharpe_variance = float(np.var(ts, ddof=1)) if sharpe_variance is None and len(ts) > 1 else sharpe_variance
    if n_trials is None or sharpe_variance is None:
        raise ValueError("give trial_returns or trial_sharpes, or both n_trials and sharpe_variance")
    sd = r.std(ddof=1)
    if sd == 0:
        raise ValueError("returns have zero volatility: the Sharpe ratio is undefined")
    sr = float(r.mean() / sd)
    skew, kurt = float(_stats().skew(r, bias=False)), float(_stats().kurtosis(r, fisher=False, bias=False))
    sr0 = expected_max_sharpe(int(n_trials), sharpe_variance=float(sharpe_variance))
    dsr = probabilistic_sharpe_ratio(sr, n_obs=len(r), skew=skew, kurtosis=kurt, benchmark_sharpe=sr0)
    return DeflatedSharpeResult(dsr, sr, sr0, int(n_trials), len(r), skew, kurt, float(sharpe_variance))


# --------------------------------------------------------------------------- PBO (CSCV)

@dataclass(frozen=True)
class PBOResult:
    """Outcome of CSCV.

    Attributes
    ----------
    pbo : float
        Share of splits where the in-sample best ranks at or below the out-of-sample median
        (logit <= 0).
    logits : ndarray
        ``ln(w / (1 - w))`` per split, ``w`` the out-of-sample relative rank of the in-sample
        best in ``(0, 1)``; their distribution is the figure to plot.
    is_performance, oos_performance : ndarray
        The in-sample best's performance in and out of sample, per split.
    prob_oos_loss : float
        Share of splits where the in-sample best has a negative out-of-sample performance.
    n_splits, n_combinations, n_trials : int
    """

    pbo: float
    logits: np.ndarray
    is_performance: np.ndarray
    oos_performance: np.ndarray
    prob_oos_loss: float
    n_splits: int
    n_combinations: int
    n_trials: int


def _moments(block: np.ndarray) -> np.ndarray:
    """Per-column [count, sum, sum of squares] of a (rows, trials) block."""
    return np.stack([np.full(block.shape[1], block.shape[0], dtype=float), block.sum(axis=0), (block**2).sum(axis=0)])


def _perf_from_moments(n: np.ndarray, s: np.ndarray, ss: np.ndarray, metric: str) -> np.ndarray:
    mean = s / n
    if metric == "mean":
        return mean
    var = np.maximum(ss - n * mean**2, 0.0) / (n - 1)
    sd = np.sqrt(var)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sd > 0, mean / sd, np.nan)


def _relative_rank(oos: np.ndarray, best: np.ndarray) -> np.ndarray:
    """Relative rank in (0, 1) of ``oos[c, best[c]]`` among ``oos[c, :]`` (ties averaged)."""
    x = oos[np.arange(len(best)), best][:, None]
    rank = (oos < x).sum(axis=1) + ((oos == x).sum(axis=1) + 1) / 2.0
    return rank / (oos.shape[1] + 1.0)


def _trial_matrix(trial_returns: pd.DataFrame | np.ndarray, *, n_splits: int,
                  metric: str | Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """The (bars x trials) float matrix, refused with a clear error when CSCV cannot use it."""
    m = np.asarray(trial_returns, dtype="float64")
    if m.ndim != 2 or m.shape[1] < 2:
        raise ValueError(f"trial_returns must be a (bars x trials) matrix with >= 2 trials, got shape {m.shape}")
    if np.isnan(m).any():
        raise ValueError("trial_returns contain NaN; align the trials on common bars first")
    if n_splits < 2 or n_splits % 2:
        raise ValueError(f"n_splits must be an even number >= 2, got {n_splits!r}")
    if m.shape[0] // n_splits < 2:
        raise ValueError(f"need at least 2 bars per block: {m.shape[0]} bars for {n_splits} splits")
    if not (callable(metric) or metric in ("sharpe", "mean")):
        raise ValueError(f"metric must be 'sharpe', 'mean' or a callable, got {metric!r}")
    return m


def _in_sample_masks(n_splits: int, *, max_combinations: int | None, seed: int) -> np.ndarray:
    """One row per combination of half the blocks (a seeded subset past ``max_combinations``):
    ``True`` for the in-sample blocks."""
    combos = np.array(list(itertools.combinations(range(n_splits), n_splits // 2)))
    if max_combinations is not None and len(combos) > max_combinations:
        combos = combos[np.sort(np.random.default_rng(seed).choice(len(combos), max_combinations, replace=False))]
    mask = np.zeros((len(combos), n_splits), dtype=bool)
    mask[np.arange(len(combos))[:, None], combos] = True
    return mask


def _split_performance(
    part: np.ndarray, blocks: list[np.ndarray], mom: np.ndarray | None,
    metric: str | Callable[[np.ndarray], np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """In-sample and out-of-sample performance (combinations x trials) of the masks in ``part``:
    from the blocks' moments for a named metric, from the concatenated blocks for a callable."""
    if callable(metric):
        is_perf = np.stack([metric(np.concatenate([blocks[i] for i in np.flatnonzero(row)])) for row in part])
        oos_perf = np.stack([metric(np.concatenate([blocks[i] for i in np.flatnonzero(~row)])) for row in part])
        return is_perf, oos_perf
    n = blocks[0].shape[1]
    is_m = (part.astype(float) @ mom).reshape(len(part), 3, n)
    oos_m = ((~part).astype(float) @ mom).reshape(len(part), 3, n)
    is_perf = _perf_from_moments(is_m[:, 0], is_m[:, 1], is_m[:, 2], metric)
    oos_perf = _perf_from_moments(oos_m[:, 0], oos_m[:, 1], oos_m[:, 2], metric)
    return is_perf, oos_perf


def probability_of_backtest_overfitting(
    trial_returns: pd.DataFrame | np.ndarray,
    *,
    n_splits: int = 16,
    metric: str | Callable[[np.ndarray], np.ndarray] = "sharpe",
    max_combinations: int | None = None,
    seed: int = 0,
) -> PBOResult:
    """Probability of backtest overfitting by combinatorially symmetric cross-validation.

    The ``T x N`` matrix (bars x trials) is cut into ``n_splits`` contiguous, equal blocks
    (trailing ``T mod n_splits`` rows dropped). Every way of choosing half the blocks as the
    in-sample set (the rest out of sample) picks the trial with the best in-sample
    performance and ranks it out of sample.

    Parameters
    ----------
    trial_returns : DataFrame or ndarray
        Per-bar returns of each configuration tried (columns = trials, at least 2).
    n_splits : int
        Even number of blocks ``S``; ``C(S, S/2)`` combinations (16 -> 12,870).
    metric : {"sharpe", "mean"} or callable
        Performance per trial; a callable maps a (rows, trials) array to one value per trial.
    max_combinations : int, optional
        Evaluate a random subset of the combinations (seeded) when there are more.
    seed : int
        Seed for that subset.

    Returns
    -------
    PBOResult
    """
    m = _trial_matrix(trial_returns, n_splits=n_splits, metric=metric)
    rows = m.shape[0] // n_splits
    blocks = [m[i * rows:(i + 1) * rows] for i in range(n_splits)]
    mask = _in_sample_masks(n_splits, max_combinations=max_combinations, seed=seed)
    n = m.shape[1]
    mom = None if callable(metric) else np.stack([_moments(b) for b in blocks]).reshape(n_splits, 3 * n)
    chunk = max(1, 2_000_000 // (3 * n))  # bounds memory for sweeps with many trials
    logits, is_best, oos_best = [], [], []
    for start in range(0, len(mask), chunk):
        is_perf, oos_perf = _split_performance(mask[start:start + chunk], blocks, mom, metric)
        best = np.argmax(np.nan_to_num(is_perf, nan=-np.inf), axis=1)
        w = _relative_rank(np.nan_to_num(oos_perf, nan=-np.inf), best)
        logits.append(np.log(w / (1.0 - w)))
        is_best.append(is_perf[np.arange(len(best)), best])
        oos_best.append(oos_perf[np.arange(len(best)), best])
    logits_all, chosen_oos = np.concatenate(logits), np.concatenate(oos_best)
    return PBOResult(
        pbo=float(np.mean(logits_all <= 0)),
        logits=logits_all,
        is_performance=np.concatenate(is_best),
        oos_performance=chosen_oos,
        prob_oos_loss=float(np.mean(chosen_oos < 0)),
        n_splits=n_splits,
        n_combinations=len(mask),
        n_trials=m.shape[1],
    )


def sweep_overfitting(sweep: Any, symbol: str, *, pbo_sweep: Any | None = None, n_splits: int = 16,
                      max_combinations: int = 2000, seed: int = 0) -> dict[str, Any]:
    """The best cell of a fused sweep by Sharpe, deflated over every cell, and a PBO.

    Parameters
    ----------
    sweep : SweepResult
        A fused sweep of any family (:func:`research.backtest.sweep.sweep`); its ``table`` has
        ``symbol``, the swept parameters (``param_names``), ``sharpe`` (annualised) and
        ``total_return``.
    symbol : str
        The symbol whose cells are judged.
    pbo_sweep : SweepResult, optional
        A smaller grid whose trial returns feed the PBO (CSCV over every cell of a large grid
        would not fit in memory), or ``sweep`` itself when its grid is small; no PBO without it.
    n_splits, max_combinations, seed
        As in :func:`probability_of_backtest_overfitting`.

    Returns
    -------
    dict
        ``symbol``, ``selected_by``, ``pairs`` (the number of cells); with a finite Sharpe also
        the best cell's parameters (``fast``, ``slow`` for the crossover; ``window``, ``lower``...
        for others), ``sharpe``, ``total_return`` and the deflated Sharpe's figures
        (``deflated_sharpe``, ``expected_max_sharpe`` annualised, ``dsr_trials``, ``n_obs``,
        ``skew``, ``kurtosis``) or ``dsr_note``; with ``pbo_sweep`` the PBO's (``pbo``,
        ``prob_oos_loss``, ``pbo_trials``, ``pbo_splits``, ``pbo_combinations``) or ``pbo_note``.
    """
    rows = sweep.table[sweep.table["symbol"] == symbol]
    ppy = float(sweep.params["periods_per_year"])
    best = rows.loc[rows["sharpe"].idxmax()] if rows["sharpe"].notna().any() else None
    out: dict[str, Any] = {"symbol": symbol, "selected_by": "sharpe", "pairs": len(rows)}
    if best is None:
        return out
    cell = {name: _scalar(best[name]) for name in sweep.param_names}
    out.update(cell, sharpe=float(best["sharpe"]), total_return=float(best["total_return"]))
    per_bar = rows["sharpe"].to_numpy(dtype="float64") / math.sqrt(ppy)
    trials = None
    if pbo_sweep is not None:
        try:
            trials = pbo_sweep.trial_returns(symbol)
        except ValueError as exc:
            out["pbo_note"] = str(exc)
    try:
        if trials is not None and pbo_sweep is sweep:  # the whole grid's returns: the best cell's are among them
            chosen = trials.iloc[:, rows.index.get_loc(best.name)]
        else:
            chosen = sweep.cell_returns(symbol, **cell)
        dsr = deflated_sharpe_ratio(chosen, trial_sharpes=per_bar)
        out.update(deflated_sharpe=dsr.dsr, expected_max_sharpe=dsr.expected_max_sharpe * math.sqrt(ppy),
                   dsr_trials=dsr.n_trials, n_obs=dsr.n_obs, skew=dsr.skew, kurtosis=dsr.kurtosis)
    except ValueError as exc:
        out["dsr_note"] = str(exc)
    if trials is not None:
        out.update(_pbo_figures(trials, n_splits=n_splits, max_combinations=max_combinations, seed=seed))
    return out


def _pbo_figures(trials: pd.DataFrame, *, n_splits: int, max_combinations: int, seed: int) -> dict[str, Any]:
    """The PBO's figures of :func:`sweep_overfitting` (or a ``pbo_note`` saying why there is none)."""
    try:
        pbo = probability_of_backtest_overfitting(trials.to_numpy(), n_splits=n_splits,
                                                  max_combinations=max_combinations, seed=seed)
    except ValueError as exc:
        return {"pbo_note": str(exc)}
    return {"pbo": pbo.pbo, "prob_oos_loss": pbo.prob_oos_loss, "pbo_trials": pbo.n_trials,
            "pbo_splits": pbo.n_splits, "pbo_combinations": pbo.n_combinations}


def _scalar(value: Any) -> Any:
    """A table value as a plain Python scalar (``numpy.int64(5)`` -> ``5``)."""
    return value.item() if hasattr(value, "item") else value
