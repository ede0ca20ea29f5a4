"""Rule strategies and the prediction strategy: prices (or predictions) in, positions out.

Every strategy returns :class:`Signals`: the position *direction* each symbol should hold after
acting on a bar's close (+1 long, 0 flat, -1 short), a wide frame aligned to the prices. A value
at bar ``t`` uses data up to ``t`` only; when it is traded is the backtest's business (by
default at the open of ``t + 1``, see :mod:`research.backtest.engine`).

``direction`` argument of the rule strategies: ``"long"`` (long or flat, the default),
``"short"`` (short or flat) or ``"both"`` (long or short).

Example
-------
>>> close = load_prices(["SPX", "IXIC"])["close"]
>>> sig = ma_crossover(close, fast=20, slow=50)
>>> sig.direction.tail(1)                       # doctest: +SKIP
symbol                     SPX  IXIC
timestamp
2018-12-31 00:00:00+00:00  0.0   0.0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numba import njit

from research.kernel_cache import configure_kernel_cache
from research.strategies._nb import cross_state_1d_nb, hysteresis_state_1d_nb, rolling_mean_1d_nb

configure_kernel_cache()  # before the @njit(cache=True) decorators below

__all__ = [
    "Signals", "ma_crossover", "moving_averages", "rsi_reversion", "bollinger_breakout",
    "time_series_momentum", "prediction_signals", "candlestick", "candlestick_options", "pattern_state_1d_nb",
]

_DIRECTIONS = ("long", "short", "both")


@dataclass(frozen=True)
class Signals:
    """Target position direction per bar and symbol, decided at the bar's close.

    Attributes
    ----------
    direction : pandas.DataFrame
        float64 in {-1, 0, +1}; index = time, columns = symbols. Never NaN.
    name : str
        Strategy name (``"ma_crossover"``...).
    params : dict
        Parameters the strategy ran with (recorded with the backtest).
    """

    direction: pd.DataFrame
    name: str = "custom"
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        d = self.direction
        if not isinstance(d, pd.DataFrame):
            raise TypeError(f"Signals.direction must be a DataFrame, not {type(d).__name__}")
        values = d.to_numpy(dtype="float64")
        bad = ~np.isin(values, (-1.0, 0.0, 1.0))
        if bad.any():
            raise ValueError(
                f"Signals.direction must hold only -1, 0 or 1 (no NaN); found {np.unique(values[bad])[:5]}"
            )

    @classmethod
    def from_entries_exits(
        cls,
        entries: pd.DataFrame,
        exits: pd.DataFrame,
        *,
        short_entries: pd.DataFrame | None = None,
        short_exits: pd.DataFrame | None = None,
        name: str = "custom",
        params: Mapping[str, Any] | None = None,
    ) -> Signals:
        """Build the direction from boolean event frames (an exit wins over an entry on one bar)."""
        e = entries.fillna(False).to_numpy(dtype=bool)
        x = exits.reindex_like(entries).fillna(False).to_numpy(dtype=bool)
        se = np.zeros_like(e) if short_entries is None else \
            short_entries.reindex_like(entries).fillna(False).to_numpy(dtype=bool)
        sx = np.zeros_like(e) if short_exits is None else \
            short_exits.reindex_like(entries).fillna(False).to_numpy(dtype=bool)
        out = np.zeros(e.shape, dtype=np.float64)
        state = np.zeros(e.shape[1])
        for i in range(e.shape[0]):
            state = np.where((state > 0) & x[i], 0.0, state)
            state = np.where((state < 0) & sx[i], 0.0, state)
            state = np.where(e[i] & ~x[i], 1.0, state)
            state = np.where(se[i] & ~sx[i] & ~e[i], -1.0, state)
            out[i] = state
        frame = pd.DataFrame(out, index=entries.index, columns=entries.columns)
        return cls(frame, name=name, params=dict(params or {}))

    def _changes(self, side: float) -> tuple[pd.DataFrame, pd.DataFrame]:
        d = self.direction
        prev = d.shift(1, fill_value=0.0)
        return (d == side) & (prev != side), (d != side) & (prev == side)

    @property
    def entries(self) -> pd.DataFrame:
        """Bars whose close opens (or flips into) a long position."""
        return self._changes(1.0)[0]

    @property
    def exits(self) -> pd.DataFrame:
        """Bars whose close ends a long position."""
        return self._changes(1.0)[1]

    @property
    def short_entries(self) -> pd.DataFrame:
        """Bars whose close opens (or flips into) a short position."""
        return self._changes(-1.0)[0]

    @property
    def short_exits(self) -> pd.DataFrame:
        """Bars whose close ends a short position."""
        return self._changes(-1.0)[1]


# --------------------------------------------------------------------------- helpers

def _as_frame(x: pd.DataFrame | pd.Series, what: str) -> pd.DataFrame:
    if isinstance(x, pd.Series):
        return x.to_frame(name=x.name if x.name is not None else "value")
    if isinstance(x, pd.DataFrame):
        return x
    raise TypeError(f"{what} must be a pandas DataFrame or Series, not {type(x).__name__}")


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _sides(direction: str) -> tuple[bool, bool]:
    if direction not in _DIRECTIONS:
        raise ValueError(f"direction must be one of {_DIRECTIONS}, got {direction!r}")
    return direction in ("long", "both"), direction in ("short", "both")


def _from_states(states: np.ndarray, like: pd.DataFrame, name: str, params: dict) -> Signals:
    frame = pd.DataFrame(states.astype(np.float64), index=like.index, columns=like.columns)
    return Signals(frame, name=name, params=params)


def _column_states(values: np.ndarray, fn) -> np.ndarray:
    out = np.zeros(values.shape, dtype=np.int8)
    for j in range(values.shape[1]):
        out[:, j] = fn(np.ascontiguousarray(values[:, j]))
    return out


# --------------------------------------------------------------------------- strategies

def moving_averages(close: pd.DataFrame | pd.Series, *, window: int) -> pd.DataFrame:
    """Simple moving average with the crossover engines' arithmetic (see :mod:`._nb`)."""
    frame = _as_frame(close, "close")
    window = _check_int("window", window, 1)
    values = frame.to_numpy(dtype="float64")
    out = np.empty(values.shape)
    for j in range(values.shape[1]):
        out[:, j] = rolling_mean_1d_nb(np.ascontiguousarray(values[:, j]), window)
    return pd.DataFrame(out, index=frame.index, columns=frame.columns)


def ma_crossover(
    close: pd.DataFrame | pd.Series, *, fast: int = 20, slow: int = 50, direction: str = "long"
) -> Signals:
    """Moving-average crossover: long after the fast SMA crosses above the slow one.

    Parameters
    ----------
    close : DataFrame or Series
        Close prices (wide).
    fast, slow : int
        SMA windows in bars, ``1 <= fast < slow``.
    direction : {"long", "short", "both"}
        ``"long"``: long after a cross above, flat after a cross below; ``"both"``: short after
        a cross below; ``"short"``: short after a cross below, flat after a cross above.

    Notes
    -----
    Ties follow the workbench's crossing rule (:mod:`research.strategies._nb`): a cross through
    bars where the averages are exactly equal counts; a touch does not.
    """
    fast = _check_int("fast", fast, 1)
    slow = _check_int("slow", slow, 2)
    if fast >= slow:
        raise ValueError(f"fast must be smaller than slow (fast: {fast}; slow: {slow})")
    allow_long, allow_short = _sides(direction)
    frame = _as_frame(close, "close")
    f = moving_averages(frame, window=fast).to_numpy()
    s = moving_averages(frame, window=slow).to_numpy()
    states = np.zeros(f.shape, dtype=np.int8)
    for j in range(f.shape[1]):
        st = cross_state_1d_nb(np.ascontiguousarray(f[:, j]), np.ascontiguousarray(s[:, j]), allow_short)
        if not allow_long:  # short-only: keep the short legs
            st = np.where(st < 0, st, 0).astype(np.int8)
        states[:, j] = st
    return _from_states(states, frame, "ma_crossover", {"fast": fast, "slow": slow, "direction": direction})


def rsi_reversion(
    close: pd.DataFrame | pd.Series,
    *,
    window: int = 14,
    lower: float = 30.0,
    upper: float = 70.0,
    exit_level: float = 50.0,
    direction: str = "long",
) -> Signals:
    """RSI mean reversion: buy oversold, sell when the RSI recovers.

    A long opens when Wilder's RSI closes below ``lower`` and closes when it rises above
    ``exit_level``; a short opens above ``upper`` and closes below ``exit_level``.

    Parameters
    ----------
    close : DataFrame or Series
        Close prices.
    window : int
        RSI window.
    lower, upper, exit_level : float
        Levels on the 0-100 RSI scale, ``lower <= exit_level <= upper``.
    direction : {"long", "short", "both"}
    """
    from research.features.indicators import rsi

    window = _check_int("window", window, 2)
    if not 0 <= lower <= exit_level <= upper <= 100:
        raise ValueError(
            f"need 0 <= lower <= exit_level <= upper <= 100 (lower: {lower}; exit_level: {exit_level}; upper: {upper})"
        )
    allow_long, allow_short = _sides(direction)
    frame = _as_frame(close, "close")
    values = rsi(frame, window=window).to_numpy(dtype="float64")
    states = _column_states(values, lambda x: hysteresis_state_1d_nb(
        x, float(lower), float(exit_level), float(upper), float(exit_level), False, allow_long, allow_short))
    params = {"window": window, "lower": lower, "upper": upper, "exit_level": exit_level, "direction": direction}
    return _from_states(states, frame, "rsi_reversion", params)


def bollinger_breakout(
    close: pd.DataFrame | pd.Series,
    *,
    window: int = 20,
    k: float = 2.0,
    direction: str = "long",
) -> Signals:
    """Bollinger breakout: long when the close breaks above the upper band, out below the middle.

    Shorts (``direction="short"`` or ``"both"``) open below the lower band and close above the
    middle band. Uses ``percent_b`` (0 at the lower band, 1 at the upper band).

    Parameters
    ----------
    close : DataFrame or Series
        Close prices.
    window : int
        Band window.
    k : float
        Band half-width in standard deviations (> 0).
    direction : {"long", "short", "both"}
    """
    from research.features.indicators import bollinger

    window = _check_int("window", window, 2)
    if not k > 0:
        raise ValueError(f"k must be positive, got {k!r}")
    allow_long, allow_short = _sides(direction)
    frame = _as_frame(close, "close")
    pct_b = bollinger(frame, window=window, k=float(k)).percent_b.to_numpy(dtype="float64")
    states = _column_states(pct_b, lambda x: hysteresis_state_1d_nb(
        x, 1.0, 0.5, 0.0, 0.5, True, allow_long, allow_short))
    return _from_states(states, frame, "bollinger_breakout", {"window": window, "k": k, "direction": direction})


def time_series_momentum(
    close: pd.DataFrame | pd.Series,
    *,
    lookback: int = 126,
    threshold: float = 0.0,
    direction: str = "long",
) -> Signals:
    """Time-series momentum: hold the sign of the trailing ``lookback``-bar return.

    Long when the return over the last ``lookback`` bars exceeds ``threshold``; short (if
    allowed) when it is below ``-threshold``; flat otherwise and while the return is unknown.

    Parameters
    ----------
    close : DataFrame or Series
        Close prices.
    lookback : int
        Bars in the trailing return.
    threshold : float
        Decimal return a trend must exceed (>= 0).
    direction : {"long", "short", "both"}
    """
    from research.features.indicators import returns

    lookback = _check_int("lookback", lookback, 1)
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0, got {threshold!r}")
    allow_long, allow_short = _sides(direction)
    frame = _as_frame(close, "close")
    r = returns(frame, periods=lookback).to_numpy(dtype="float64")
    with np.errstate(invalid="ignore"):
        states = np.where(allow_long & (r > threshold), 1, 0) + np.where(allow_short & (r < -threshold), -1, 0)
    params = {"lookback": lookback, "threshold": threshold, "direction": direction}
    return _from_states(states.astype(np.int8), frame, "time_series_momentum", params)


def prediction_signals(
    predictions: pd.DataFrame | pd.Series,
    *,
    long_threshold: float = 0.0,
    short_threshold: float | None = None,
) -> Signals:
    """Trade model predictions: long above a threshold, short (optionally) below another.

    Parameters
    ----------
    predictions : DataFrame or Series
        Predicted next-bar returns or up-probabilities, indexed by the bar whose close the
        prediction was made at (a prediction at ``t`` may only use data up to ``t``). Wide
        (one column per symbol) or a Series for one symbol.
    long_threshold : float
        Long when the prediction is strictly above this value (``0.0`` for predicted returns,
        e.g. ``0.55`` for probabilities).
    short_threshold : float, optional
        Short when the prediction is strictly below this value; ``None`` (default) never
        shorts. Must not exceed ``long_threshold``.

    Returns
    -------
    Signals
        Flat wherever the prediction is missing (NaN).

    Examples
    --------
    >>> sig = prediction_signals(pred_returns, long_threshold=0.0005, short_threshold=-0.0005)
    >>> result = backtest(prices, sig, fees=0.001)       # doctest: +SKIP
    """
    if short_threshold is not None and short_threshold > long_threshold:
        raise ValueError(
            f"short_threshold must not exceed long_threshold (short: {short_threshold}; long: {long_threshold})"
        )
    frame = _as_frame(predictions, "predictions")
    p = frame.to_numpy(dtype="float64")
    with np.errstate(invalid="ignore"):
        states = np.where(p > long_threshold, 1, 0)
        if short_threshold is not None:
            states = states + np.where(p < short_threshold, -1, 0)
    params = {"long_threshold": long_threshold, "short_threshold": short_threshold}
    return _from_states(states.astype(np.int8), frame, "prediction", params)


# --------------------------------------------------------------------------- candlestick patterns

@njit(cache=True)
def pattern_state_1d_nb(bull: np.ndarray, bear: np.ndarray, hold: int, allow_long: bool,
                        allow_short: bool) -> np.ndarray:
    """Position after each bar's close, from bullish and bearish pattern flags.

    A long opens on a bullish bar and closes on a bearish bar or once it has been held ``hold``
    bars since the latest bullish bar (``hold = 0``: no time exit); a short is the mirror image.
    A bar flagged both ways closes any position and opens none.
    """
    n = bull.shape[0]
    out = np.zeros(n, dtype=np.int8)
    state = 0
    age = 0
    for i in range(n):
        up, down = bull[i], bear[i]
        expired = hold > 0 and age >= hold
        if (state == 1 and (down or expired)) or (state == -1 and (up or expired)):
            state = 0
        if up and not down and allow_long:
            state, age = 1, 0
        elif down and not up and allow_short:
            state, age = -1, 0
        out[i] = state
        age = age + 1 if state != 0 else 0
    return out


def _pattern_list(label: str, value: str | Sequence[str], side: str) -> tuple[str, ...]:
    """Parse ``"engulfing,hammer"`` (or ``"engulfing+hammer"``, or a list) into names that signal on ``side``."""
    from research.features.patterns import PATTERNS, SIDES

    names = value.replace("+", ",").split(",") if isinstance(value, str) else [str(v) for v in value]
    names = [n.strip() for n in names]
    names = [n for n in names if n]
    unknown = [n for n in names if n not in PATTERNS]
    if unknown:
        raise ValueError(f"{label}: unknown candlestick pattern(s) {unknown}; expected some of {sorted(PATTERNS)}")
    wrong = [n for n in names if SIDES[n] not in (side, "both", "neutral")]
    if wrong:
        raise ValueError(f"{label}: {wrong} are never {side} (TA-Lib gives them only the other sign)")
    return tuple(dict.fromkeys(names))


def _flags(values: dict[str, pd.DataFrame], names: tuple[str, ...], side: str) -> np.ndarray:
    from research.features.patterns import SIDES

    first = next(iter(values.values()))
    out = np.zeros(first.shape, dtype=np.bool_)
    for name in names:
        v = values[name].to_numpy()
        out |= (v != 0) if SIDES[name] == "neutral" else (v > 0 if side == "bullish" else v < 0)
    return out


def _on_own_bars(up: np.ndarray, down: np.ndarray, rows: np.ndarray, hold: int, allow_long: bool,
                 allow_short: bool) -> np.ndarray:
    """Positions over one symbol's complete bars (``hold`` counts its bars), carried across its gaps."""
    own = pattern_state_1d_nb(np.ascontiguousarray(up[rows]), np.ascontiguousarray(down[rows]), hold,
                              allow_long, allow_short)
    last = np.maximum.accumulate(np.where(rows, np.cumsum(rows) - 1, -1))  # latest complete bar so far
    return np.where(last >= 0, own[np.maximum(last, 0)] if len(own) else 0, 0).astype(np.int8)


def _entry_patterns(bullish: str | Sequence[str], bearish: str | Sequence[str], *, direction: str, hold: int,
                    allow_long: bool, allow_short: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The bullish and bearish pattern names, refused when ``direction`` and ``hold`` leave a
    position that can never open or close."""
    bulls, bears = _pattern_list("bullish", bullish, "bullish"), _pattern_list("bearish", bearish, "bearish")
    if (allow_long and not bulls) or (allow_short and not bears):
        raise ValueError(f"direction {direction!r} needs entry patterns (bullish: {bulls}; bearish: {bears})")
    if hold == 0 and ((allow_long and not bears) or (allow_short and not bulls)):
        raise ValueError("with hold=0 a position only closes on the opposite pattern; give some (or hold >= 1)")
    return bulls, bears


def _price_frames(**fields: pd.DataFrame | pd.Series) -> dict[str, pd.DataFrame]:
    """The price fields as frames with one column per symbol (one symbol's Series share close's name)."""
    close = fields["close"]
    if all(isinstance(v, pd.Series) for v in fields.values()):  # one symbol: the fields share close's name
        fields = {k: v.rename(close.name if close.name is not None else "value") for k, v in fields.items()}
    return {k: _as_frame(v, k) for k, v in fields.items()}


def _pattern_states(frames: dict[str, pd.DataFrame], bulls: tuple[str, ...], bears: tuple[str, ...], *,
                    hold: int, allow_long: bool, allow_short: bool) -> np.ndarray:
    """Positions (bars x symbols, int8) from the patterns, each symbol over its own complete bars."""
    from research.features.patterns import candlestick_patterns

    values = candlestick_patterns(frames, list(dict.fromkeys(bulls + bears)))
    up, down = _flags(values, bulls, "bullish"), _flags(values, bears, "bearish")
    complete = np.logical_and.reduce([f.notna().to_numpy() for f in frames.values()])
    states = np.zeros(up.shape, dtype=np.int8)
    for j in range(up.shape[1]):
        states[:, j] = _on_own_bars(up[:, j], down[:, j], complete[:, j], hold, allow_long, allow_short)
    return states


def candlestick_options(*, bullish: str | Sequence[str], bearish: str | Sequence[str], hold: int,
                        direction: str) -> tuple[tuple[str, ...], tuple[str, ...], int, bool, bool]:
    """The options of :func:`candlestick` checked (no prices needed): ``(bulls, bears, hold, allow_long, allow_short)``.

    Raises the ValueError :func:`candlestick` raises for the same options (a fused sweep checks
    its grid with it).
    """
    hold = _check_int("hold", hold, 0)
    allow_long, allow_short = _sides(direction)
    bulls, bears = _entry_patterns(bullish, bearish, direction=direction, hold=hold, allow_long=allow_long,
                                   allow_short=allow_short)
    return bulls, bears, hold, allow_long, allow_short


def candlestick(
    open: pd.DataFrame | pd.Series,
    high: pd.DataFrame | pd.Series,
    low: pd.DataFrame | pd.Series,
    close: pd.DataFrame | pd.Series,
    *,
    bullish: str | Sequence[str] = "engulfing,hammer,morning_star",
    bearish: str | Sequence[str] = "engulfing,shooting_star,evening_star",
    hold: int = 5,
    direction: str = "long",
) -> Signals:
    """Candlestick patterns: long after a bullish pattern, out after ``hold`` bars or a bearish one.

    Patterns are those of :mod:`research.features.patterns` (equal to TA-Lib's ``CDL*``), known
    at the bar's close. A pattern listed in ``bullish`` signals when its value is positive, one
    in ``bearish`` when it is negative; a doji (no direction) signals whenever it appears.

    Parameters
    ----------
    open, high, low, close : DataFrame or Series
        Prices with the same index and columns (one column per symbol).
    bullish, bearish : str or sequence of str
        Pattern names, separated by ``,`` or ``+`` in a string (as on the command line), e.g.
        ``"engulfing,hammer"``; ``+`` lets a sweep grid hold combinations
        (``--grid bullish=hammer,engulfing+hammer``). Either may be empty (``""``) when unused.
    hold : int
        Bars a position is held after the latest entry pattern (>= 0; 0 = until the opposite
        pattern). A new entry pattern while in the position restarts the count.
    direction : {"long", "short", "both"}
        ``"long"``: long on bullish, flat on bearish; ``"short"``: short on bearish, flat on
        bullish; ``"both"``: long on bullish, short on bearish.

    Returns
    -------
    Signals
        A bar with both a bullish and a bearish pattern closes any position and opens none.
        Each symbol runs over its own bars (``hold`` counts them); on a row where its open,
        high, low or close is missing, its position is carried unchanged.

    Examples
    --------
    >>> bars = load_prices(["SPX", "IXIC"])
    >>> sig = candlestick(bars["open"], bars["high"], bars["low"], bars["close"], bullish="hammer", hold=3)
    """
    bulls, bears, hold, allow_long, allow_short = candlestick_options(bullish=bullish, bearish=bearish, hold=hold,
                                                                      direction=direction)
    frames = _price_frames(open=open, high=high, low=low, close=close)
    states = _pattern_states(frames, bulls, bears, hold=hold, allow_long=allow_long, allow_short=allow_short)
    params = {"bullish": ",".join(bulls), "bearish": ",".join(bears), "hold": hold, "direction": direction}
    return _from_states(states, frames["close"], "candlestick", params)
