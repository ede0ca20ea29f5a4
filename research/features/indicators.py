"""Technical indicators as pure functions on wide frames.

Every function takes prices (or returns, volume...) as a wide ``pandas.DataFrame`` (index =
time, one column per symbol) or a ``pandas.Series`` and returns the same shape. Inputs are
never mutated.

Parameter grids
---------------
Any parameter given as a list (or tuple, range, array) is swept: the result gets MultiIndex
columns with one level per swept parameter, named ``<indicator>_<parameter>`` (for example
``sma_window``), followed by the input's column level(s) (``symbol``)::

    >>> sma(close, window=[10, 20]).columns.names
    FrozenList(['sma_window', 'symbol'])

Several swept parameters give their Cartesian product, in the order the parameters appear in
the signature. A Series input with a grid gives a frame whose columns are the parameter
levels only.

Warm-up and gaps
----------------
No value at time ``t`` uses data after ``t``. Rows before an indicator has seen enough data
are NaN (never back-filled):

* rolling indicators (SMA, Bollinger, volatility, z-scores, beta) are NaN until ``window``
  valid observations have filled the window, and NaN whenever a NaN lies inside the window;
* recursive indicators (EMA, Wilder RSI, ATR, MACD) are seeded with the simple mean of the
  first ``window`` consecutive valid inputs, so they are NaN until that window has filled
  (EMA: first ``window - 1`` rows; RSI and ATR: first ``window`` rows, since they start from a
  price change). After seeding, a NaN input gives a NaN output and leaves the recursive state
  untouched (the next valid bar continues from the last valid state);
* returns across a missing bar are NaN: a gap is never turned into a 0% move.

Multi-output indicators (:func:`macd`, :func:`bollinger`) return a named tuple of frames, each
shaped like a single-output result.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from numba import njit

from research.kernel_cache import configure_kernel_cache

configure_kernel_cache()  # before the @njit(cache=True) decorators below

__all__ = [
    "returns", "sma", "ema", "rsi", "macd", "MACDResult", "bollinger", "BollingerResult",
    "atr", "true_range", "rolling_volatility", "momentum", "roc", "volume_zscore", "obv",
    "rolling_beta",
]

Frame = pd.DataFrame | pd.Series


class MACDResult(NamedTuple):
    """MACD outputs: ``line`` = EMA(fast) - EMA(slow), ``signal`` = EMA(line), ``hist``."""

    line: Frame
    signal: Frame
    hist: Frame


class BollingerResult(NamedTuple):
    """Bollinger outputs: middle band, upper and lower bands and %b (0 at lower, 1 at upper)."""

    mid: Frame
    upper: Frame
    lower: Frame
    percent_b: Frame


# --------------------------------------------------------------------------- kernels

@njit(cache=True)
def _ewm_seeded_nb(x: np.ndarray, alpha: float, window: int) -> np.ndarray:
    """Exponential smoothing seeded with the mean of the first ``window`` consecutive valid values.

    ``x`` is 2-D (time, column). Before seeding, a NaN restarts the seed window. After seeding,
    a NaN input gives NaN output and leaves the state as it was.
    """
    n, m = x.shape
    out = np.full((n, m), np.nan)
    for j in range(m):
        count = 0
        acc = 0.0
        state = np.nan
        seeded = False
        for i in range(n):
            v = x[i, j]
            if np.isnan(v):
                if not seeded:
                    count = 0
                    acc = 0.0
                continue
            if seeded:
                state = alpha * v + (1.0 - alpha) * state
                out[i, j] = state
            else:
                acc += v
                count += 1
                if count == window:
                    state = acc / window
                    seeded = True
                    out[i, j] = state
    return out


#: Public name of the seeded smoothing (the fused sweep's RSI tables use the same arithmetic).
ewm_seeded_nb = _ewm_seeded_nb


# --------------------------------------------------------------------------- plumbing

def _is_grid(value: Any) -> bool:
    return isinstance(value, list | tuple | range | np.ndarray | pd.Index)


def _as_frame(x: Frame, what: str) -> pd.DataFrame:
    if isinstance(x, pd.Series):
        return x.to_frame(name=x.name if x.name is not None else 0)
    if isinstance(x, pd.DataFrame):
        return x
    raise TypeError(f"{what} must be a pandas DataFrame or Series, not {type(x).__name__}")


def _check_window(name: str, value: Any, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _compute(
    indicator: str,
    kernel: Callable[..., tuple[pd.DataFrame, ...]],
    inputs: dict[str, Frame],
    params: dict[str, Any],
) -> tuple[Frame, ...]:
    """Run ``kernel`` over the parameter grid and shape the outputs like the first input."""
    names = list(inputs)
    first = inputs[names[0]]
    series_in = isinstance(first, pd.Series)
    if series_in and any(not isinstance(v, pd.Series) for v in inputs.values()):
        raise TypeError(f"{indicator}: give all inputs as Series or all as DataFrames ({', '.join(names)})")
    if series_in:  # Series names (e.g. "high", "close") do not need to match
        inputs = {k: v.rename(first.name) for k, v in inputs.items()}
    out_name = (first.name if len(names) == 1 else indicator) if series_in else None
    frames = {}
    for k, v in inputs.items():  # fresh float frames without attrs (pandas deep-copies attrs on every op)
        f = _as_frame(v, k)
        frames[k] = pd.DataFrame(f.to_numpy(dtype="float64"), index=f.index, columns=f.columns)
    ref = frames[names[0]]
    for k in names[1:]:
        other = frames[k]
        if not other.index.equals(ref.index) or not other.columns.equals(ref.columns):
            raise ValueError(
                f"{k} must have the same index and columns as {names[0]} "
                f"({names[0]}: {ref.shape[0]} rows x {ref.shape[1]} columns; "
                f"{k}: {other.shape[0]} rows x {other.shape[1]} columns)"
            )
    swept = [p for p, v in params.items() if _is_grid(v)]
    if not swept:
        outs = kernel(*frames.values(), **params)
        return tuple(o.iloc[:, 0].rename(out_name) if series_in else o for o in outs)
    combos = list(itertools.product(*[list(params[p]) for p in swept]))
    if not combos:
        raise ValueError(f"{indicator}: an empty parameter grid was given for {swept}")
    pieces: list[list[pd.DataFrame]] = []
    for combo in combos:
        call = {**params, **dict(zip(swept, combo, strict=True))}
        pieces.append(list(kernel(*frames.values(), **call)))
    level_names = [f"{indicator}_{p}" for p in swept]
    sym_names = [n if n is not None else "symbol" for n in ref.columns.names]
    results = []
    for k in range(len(pieces[0])):
        if series_in:
            data = np.column_stack([p[k].to_numpy()[:, 0] for p in pieces])
            cols = pd.MultiIndex.from_tuples(combos, names=level_names) if len(swept) > 1 \
                else pd.Index([c[0] for c in combos], name=level_names[0])
            results.append(pd.DataFrame(data, index=ref.index, columns=cols))
        else:
            data = np.concatenate([p[k].to_numpy() for p in pieces], axis=1)
            tuples = [
                (*combo, *(c if isinstance(c, tuple) else (c,)))
                for combo in combos for c in ref.columns
            ]
            cols = pd.MultiIndex.from_tuples(tuples, names=level_names + sym_names)
            results.append(pd.DataFrame(data, index=ref.index, columns=cols))
    return tuple(results)


def _like(values: np.ndarray, ref: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(values, index=ref.index, columns=ref.columns)


def _ewm(frame: pd.DataFrame, *, alpha: float, window: int) -> pd.DataFrame:
    arr = np.ascontiguousarray(frame.to_numpy(dtype="float64"))
    return _like(_ewm_seeded_nb(arr, float(alpha), int(window)), frame)


# --------------------------------------------------------------------------- indicators

def _returns_k(p: pd.DataFrame, *, periods: int, log: bool) -> tuple[pd.DataFrame]:
    periods = _check_window("periods", periods)
    prev = p.shift(periods)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = p / prev
        out = np.log(ratio.where(ratio > 0)) if log else ratio - 1.0
    return (out,)


def returns(prices: Frame, *, periods: int | Sequence[int] = 1, log: bool = False) -> Frame:
    """Simple (or log) returns over ``periods`` bars.

    Parameters
    ----------
    prices : DataFrame or Series
        Prices, wide (index = time, columns = symbols).
    periods : int or list of int
        Look-back in bars (``returns_periods`` level for a grid).
    log : bool
        Log returns ``ln(p_t / p_{t-periods})`` instead of ``p_t / p_{t-periods} - 1``.

    Returns
    -------
    DataFrame or Series
        The first ``periods`` rows are NaN, and so is any return whose start or end bar is
        missing: gaps are never forward-filled into 0% moves. Log returns of non-positive price
        ratios are NaN.
    """
    return _compute("returns", _returns_k, {"prices": prices}, {"periods": periods, "log": log})[0]


def _sma_k(p: pd.DataFrame, *, window: int) -> tuple[pd.DataFrame]:
    window = _check_window("window", window)
    return (p.rolling(window, min_periods=window).mean(),)


def sma(close: Frame, *, window: int | Sequence[int] = 20) -> Frame:
    """Simple moving average over ``window`` bars (NaN until ``window`` valid bars are in the window).

    Parameters
    ----------
    close : DataFrame or Series
        Prices.
    window : int or list of int
        Window length (``sma_window`` level for a grid).
    """
    return _compute("sma", _sma_k, {"close": close}, {"window": window})[0]


def _ema_k(p: pd.DataFrame, *, window: int) -> tuple[pd.DataFrame]:
    window = _check_window("window", window)
    return (_ewm(p, alpha=2.0 / (window + 1.0), window=window),)


def ema(close: Frame, *, window: int | Sequence[int] = 20) -> Frame:
    """Exponential moving average with ``alpha = 2 / (window + 1)``.

    Seeded with the SMA of the first ``window`` valid bars, so the first ``window - 1`` rows are
    NaN (the recursion has not filled its window). Thereafter
    ``ema_t = alpha * close_t + (1 - alpha) * ema_{t-1}``.

    Parameters
    ----------
    close : DataFrame or Series
        Prices.
    window : int or list of int
        Span (``ema_window`` level for a grid).
    """
    return _compute("ema", _ema_k, {"close": close}, {"window": window})[0]


def _rsi_k(p: pd.DataFrame, *, window: int) -> tuple[pd.DataFrame]:
    window = _check_window("window", window)
    change = p - p.shift(1)
    gain = change.clip(lower=0.0)
    loss = (-change).clip(lower=0.0)
    avg_gain = _ewm(gain, alpha=1.0 / window, window=window)
    avg_loss = _ewm(loss, alpha=1.0 / window, window=window)
    total = avg_gain + avg_loss
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 100.0 * avg_gain / total
    out = out.mask((total == 0.0) & avg_gain.notna(), 50.0)
    return (out,)


def rsi(close: Frame, *, window: int | Sequence[int] = 14) -> Frame:
    """Relative strength index with Wilder's smoothing, in [0, 100].

    Average gain and loss start as the simple mean of the first ``window`` price changes and then
    follow ``avg_t = (avg_{t-1} * (window - 1) + x_t) / window``. ``RSI = 100 * avg_gain /
    (avg_gain + avg_loss)`` (equal to ``100 - 100 / (1 + RS)``); a flat window gives 50. The first
    ``window`` rows are NaN (``window`` changes need ``window + 1`` prices).

    Parameters
    ----------
    close : DataFrame or Series
        Prices.
    window : int or list of int
        Smoothing length (``rsi_window`` level for a grid).
    """
    return _compute("rsi", _rsi_k, {"close": close}, {"window": window})[0]


def _macd_k(p: pd.DataFrame, *, fast: int, slow: int, signal: int) -> tuple[pd.DataFrame, ...]:
    fast, slow, signal = (_check_window(n, v) for n, v in (("fast", fast), ("slow", slow), ("signal", signal)))
    if fast >= slow:
        raise ValueError(f"macd needs fast < slow, got fast={fast}, slow={slow}")
    line = _ema_k(p, window=fast)[0] - _ema_k(p, window=slow)[0]
    sig = _ema_k(line, window=signal)[0]
    return line, sig, line - sig


def macd(
    close: Frame,
    *,
    fast: int | Sequence[int] = 12,
    slow: int | Sequence[int] = 26,
    signal: int | Sequence[int] = 9,
) -> MACDResult:
    """Moving-average convergence divergence.

    ``line = EMA(fast) - EMA(slow)``, ``signal = EMA(line, signal)``, ``hist = line - signal``
    (EMAs as in :func:`ema`). ``line`` is NaN for the first ``slow - 1`` rows and ``signal`` and
    ``hist`` for the first ``slow + signal - 2``.

    Parameters
    ----------
    close : DataFrame or Series
        Prices.
    fast, slow, signal : int or list of int
        EMA spans (levels ``macd_fast``, ``macd_slow``, ``macd_signal`` for grids).

    Returns
    -------
    MACDResult
        Named tuple ``(line, signal, hist)``.
    """
    out = _compute("macd", _macd_k, {"close": close}, {"fast": fast, "slow": slow, "signal": signal})
    return MACDResult(*out)


def _bollinger_k(p: pd.DataFrame, *, window: int, k: float) -> tuple[pd.DataFrame, ...]:
    window = _check_window("window", window, minimum=2)
    roll = p.rolling(window, min_periods=window)
    mid = roll.mean()
    std = roll.std(ddof=0)
    upper, lower = mid + k * std, mid - k * std
    width = upper - lower
    pct = ((p - lower) / width).where(width > 0)
    return mid, upper, lower, pct


def bollinger(
    close: Frame, *, window: int | Sequence[int] = 20, k: float | Sequence[float] = 2.0
) -> BollingerResult:
    """Bollinger bands: SMA plus and minus ``k`` population standard deviations.

    Parameters
    ----------
    close : DataFrame or Series
        Prices.
    window : int or list of int
        Window (``bollinger_window`` level for a grid).
    k : float or list of float
        Band width in standard deviations (``bollinger_k`` level for a grid).

    Returns
    -------
    BollingerResult
        ``(mid, upper, lower, percent_b)``; ``percent_b = (close - lower) / (upper - lower)`` is
        NaN when the bands have zero width. NaN for the first ``window - 1`` rows.
    """
    return BollingerResult(*_compute("bollinger", _bollinger_k, {"close": close}, {"window": window, "k": k}))


def _true_range(high: pd.DataFrame, low: pd.DataFrame, close: pd.DataFrame) -> pd.DataFrame:
    prev = close.shift(1)
    a = (high - low).to_numpy()
    b = (high - prev).abs().to_numpy()
    c = (low - prev).abs().to_numpy()
    tr = np.maximum(np.maximum(a, b), c)  # NaN propagates: no previous close, no true range
    return _like(tr, close)


def true_range(high: Frame, low: Frame, close: Frame) -> Frame:
    """True range ``max(high - low, |high - close_{t-1}|, |low - close_{t-1}|)``; first row NaN."""
    return _compute("true_range", lambda h, lo, c: (_true_range(h, lo, c),),
                    {"high": high, "low": low, "close": close}, {})[0]


def _atr_k(h: pd.DataFrame, lo: pd.DataFrame, c: pd.DataFrame, *, window: int) -> tuple[pd.DataFrame]:
    window = _check_window("window", window)
    return (_ewm(_true_range(h, lo, c), alpha=1.0 / window, window=window),)


def atr(high: Frame, low: Frame, close: Frame, *, window: int | Sequence[int] = 14) -> Frame:
    """Average true range with Wilder's smoothing (seeded with the mean of the first ``window`` TRs).

    Parameters
    ----------
    high, low, close : DataFrame or Series
        Same index and columns.
    window : int or list of int
        Smoothing length (``atr_window`` level for a grid).

    Returns
    -------
    DataFrame or Series
        In price units; NaN for the first ``window`` rows.
    """
    return _compute("atr", _atr_k, {"high": high, "low": low, "close": close}, {"window": window})[0]


def _vol_k(r: pd.DataFrame, *, window: int, periods_per_year: float | None) -> tuple[pd.DataFrame]:
    window = _check_window("window", window, minimum=2)
    out = r.rolling(window, min_periods=window).std(ddof=1)
    if periods_per_year is not None:
        if periods_per_year <= 0:
            raise ValueError(f"periods_per_year must be positive or None, got {periods_per_year!r}")
        out = out * np.sqrt(float(periods_per_year))
    return (out,)


def rolling_volatility(
    returns: Frame,
    *,
    window: int | Sequence[int] = 20,
    periods_per_year: float | None = 252,
) -> Frame:
    """Rolling standard deviation of returns (sample, ``ddof=1``), annualised.

    Parameters
    ----------
    returns : DataFrame or Series
        Per-bar returns (simple or log), e.g. from :func:`returns`.
    window : int or list of int
        Window in bars (``rolling_volatility_window`` level for a grid).
    periods_per_year : float or None
        Annualisation factor (252 equities, 365 crypto); ``None`` gives per-bar volatility.
    """
    return _compute("rolling_volatility", _vol_k, {"returns": returns},
                    {"window": window, "periods_per_year": periods_per_year})[0]


def _momentum_k(p: pd.DataFrame, *, window: int) -> tuple[pd.DataFrame]:
    window = _check_window("window", window)
    return (p - p.shift(window),)


def momentum(close: Frame, *, window: int | Sequence[int] = 10) -> Frame:
    """Price change over ``window`` bars, ``close_t - close_{t-window}`` (price units).

    Parameters
    ----------
    close : DataFrame or Series
        Prices.
    window : int or list of int
        Look-back (``momentum_window`` level for a grid).
    """
    return _compute("momentum", _momentum_k, {"close": close}, {"window": window})[0]


def _roc_k(p: pd.DataFrame, *, window: int) -> tuple[pd.DataFrame]:
    return (_returns_k(p, periods=window, log=False)[0] * 100.0,)


def roc(close: Frame, *, window: int | Sequence[int] = 10) -> Frame:
    """Rate of change in percent, ``100 * (close_t / close_{t-window} - 1)``.

    Parameters
    ----------
    close : DataFrame or Series
        Prices.
    window : int or list of int
        Look-back (``roc_window`` level for a grid).
    """
    return _compute("roc", _roc_k, {"close": close}, {"window": window})[0]


def _vz_k(v: pd.DataFrame, *, window: int) -> tuple[pd.DataFrame]:
    window = _check_window("window", window, minimum=2)
    roll = v.rolling(window, min_periods=window)
    std = roll.std(ddof=1)
    return (((v - roll.mean()) / std).where(std > 0),)


def volume_zscore(volume: Frame, *, window: int | Sequence[int] = 20) -> Frame:
    """Z-score of volume against its trailing ``window`` bars (the current bar included).

    NaN for the first ``window - 1`` rows and where the window's volume is constant.

    Parameters
    ----------
    volume : DataFrame or Series
        Volume.
    window : int or list of int
        Window (``volume_zscore_window`` level for a grid).
    """
    return _compute("volume_zscore", _vz_k, {"volume": volume}, {"window": window})[0]


def _obv_k(c: pd.DataFrame, v: pd.DataFrame) -> tuple[pd.DataFrame]:
    step = np.sign(c - c.shift(1)) * v
    return (step.cumsum(skipna=True),)


def obv(close: Frame, volume: Frame) -> Frame:
    """On-balance volume: running sum of ``sign(close_t - close_{t-1}) * volume_t``.

    Starts from 0 before the first bar, so the first row is NaN (no previous close). A bar whose
    change or volume is missing is NaN and adds nothing; the running total carries on after it.

    Parameters
    ----------
    close, volume : DataFrame or Series
        Same index and columns.
    """
    return _compute("obv", _obv_k, {"close": close, "volume": volume}, {})[0]


def _beta_k(r: pd.DataFrame, b: pd.DataFrame, *, window: int) -> tuple[pd.DataFrame]:
    window = _check_window("window", window, minimum=2)
    both = r.notna() & b.notna()
    x, y = r.where(both), b.where(both)

    def mean(f: pd.DataFrame) -> pd.DataFrame:
        return f.rolling(window, min_periods=window).mean()

    cov = mean(x * y) - mean(x) * mean(y)
    var = mean(y * y) - mean(y) ** 2
    return ((cov / var).where(var > 1e-300),)


def rolling_beta(
    returns: Frame, benchmark_returns: pd.Series, *, window: int | Sequence[int] = 60
) -> Frame:
    """Rolling OLS beta of each column's returns on the benchmark's returns.

    ``beta = cov(r, b) / var(b)`` over the trailing ``window`` bars. NaN until the window holds
    ``window`` bars where both returns exist, and where the benchmark is flat.

    Parameters
    ----------
    returns : DataFrame or Series
        Per-bar returns of the assets.
    benchmark_returns : Series
        Per-bar returns of the benchmark; aligned on the index of ``returns`` (missing dates NaN).
    window : int or list of int
        Window (``rolling_beta_window`` level for a grid).
    """
    if not isinstance(benchmark_returns, pd.Series):
        raise TypeError(f"benchmark_returns must be a pandas Series, not {type(benchmark_returns).__name__}")
    frame = _as_frame(returns, "returns")
    bench = benchmark_returns.reindex(frame.index).astype("float64")
    bench_wide = pd.DataFrame(
        np.repeat(bench.to_numpy()[:, None], frame.shape[1], axis=1), index=frame.index, columns=frame.columns
    )
    if isinstance(returns, pd.Series):
        bench_wide = bench_wide.iloc[:, 0].rename(returns.name)
    return _compute("rolling_beta", _beta_k, {"returns": returns, "benchmark_returns": bench_wide},
                    {"window": window})[0]
