"""Today's signals, target positions and market alerts: the research outputs a pipeline run ends with.

Everything here is computed from bars up to the as-of date only (a symbol's last bar at or
before ``as_of``); nothing is an order, these are research outputs.

``signals`` table (one row per symbol and strategy)::

    symbol  strategy      as_of       bar_time    signal  previous_signal  changed  target_position  close    stale  params
    SPX     ma_crossover  2018-12-31  2018-12-31  0.0     0.0              False    0.0              2506.85  False  {"fast": 20, "slow": 50}

``signal`` is the position direction (-1, 0, +1) decided at the close of ``bar_time``;
``target_position`` is that direction times the sizer's weight (a fraction of the book's
equity, e.g. volatility targeting); ``stale`` says the symbol's last bar is older than its
calendar allows: more than ``stale_bars`` bars of its calendar (NYSE sessions for equities,
every day or hour for crypto) passed between its last bar and the as-of moment
(:mod:`research.data.freshness`, the rule the backtest and the paper book follow too). The
as-of value is an :class:`~research.data.asof.AsOf`: a date means the end of that session. A
stale symbol keeps its last signal for reference but gets no target position (0): nothing is
decided on old data.

``alerts``: :func:`market_alerts` runs the rules of :mod:`research.alerts.rules` on each
symbol's bars up to the as-of date and adds ``data`` alerts for missing or stale bars.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from research.alerts.rules import ALERT_COLUMNS, AlertRules, add_alert, symbol_alerts
from research.data.asof import AsOf
from research.data.freshness import bar_age, bars_behind, frame_interval, is_stale, symbol_calendar
from research.strategies import Signals, get_strategy, position_magnitude, prediction_signals

__all__ = ["DEFAULT_STRATEGIES", "todays_signals", "prediction_signal_rows", "market_alerts", "SIGNAL_COLUMNS"]

DEFAULT_STRATEGIES: dict[str, dict[str, Any]] = {
    "ma_crossover": {"fast": 20, "slow": 50},
    "rsi_reversion": {},
    "time_series_momentum": {"lookback": 126},
}
SIGNAL_COLUMNS = ["symbol", "strategy", "as_of", "bar_time", "signal", "previous_signal", "changed",
                  "target_position", "close", "stale", "params"]


def _fields(prices: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Wide frames per field from ``load_prices([...])`` (field, symbol) columns."""
    if not isinstance(prices.columns, pd.MultiIndex):
        raise ValueError("prices must have (field, symbol) MultiIndex columns, as load_prices([...]) returns")
    return {str(f): prices[f] for f in prices.columns.get_level_values(0).unique()}


def _symbol_bars(fields: Mapping[str, pd.DataFrame], symbol: str, as_of: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """One symbol's valid bars up to ``as_of``, as one-column wide frames per field."""
    close = fields["close"][symbol]
    valid = close.index[close.notna() & (close.index <= as_of)]
    return {f: frame.loc[valid, [symbol]] for f, frame in fields.items() if symbol in frame.columns}


def _when(prices: pd.DataFrame, as_of: object) -> AsOf:
    """The as-of value of a call (a date is the end of its session on the bars' clock)."""
    return AsOf.parse(as_of, interval=frame_interval(prices))


def _stale(prices: pd.DataFrame, symbol: str, bar_time: pd.Timestamp, as_of: AsOf, index: pd.DatetimeIndex,
           stale_bars: int) -> bool:
    """Whether ``symbol``'s last bar lags ``as_of`` by more than ``stale_bars`` bars of its calendar
    (:func:`research.data.freshness.is_stale`; fewer than two bars: stale)."""
    if len(index) < 2:
        return True
    return is_stale(symbol_calendar(prices, symbol), frame_interval(prices), bar_time, as_of, stale_bars=stale_bars)


def _row(symbol: str, strategy: str, as_of: str, bars: dict, sig: Signals, size: pd.DataFrame, params: dict, stale: bool) -> dict:
    d = sig.direction[symbol]
    last, prev = float(d.iloc[-1]), float(d.iloc[-2]) if len(d) > 1 else 0.0
    return {
        "symbol": symbol, "strategy": strategy, "as_of": as_of, "bar_time": d.index[-1],
        "signal": last, "previous_signal": prev, "changed": last != prev,
        "target_position": 0.0 if stale else last * float(size[symbol].iloc[-1]),
        "close": float(bars["close"][symbol].iloc[-1]),
        "stale": stale, "params": json.dumps(params, sort_keys=True, default=str),
    }


def todays_signals(
    prices: pd.DataFrame,
    *,
    as_of: object,
    strategies: Mapping[str, Mapping[str, Any]] | None = None,
    sizing: str = "vol_target",
    sizing_params: Mapping[str, Any] | None = None,
    stale_bars: int = 3,
) -> pd.DataFrame:
    """The signal and target position of every strategy on every symbol at ``as_of``.

    Parameters
    ----------
    prices : DataFrame
        ``load_prices([...])`` bars ((field, symbol) columns); bars after ``as_of`` are ignored.
    as_of : date-like
        The decision date (a date means its whole day, UTC).
    strategies : mapping, optional
        Strategy name -> parameters (default :data:`DEFAULT_STRATEGIES`).
    sizing, sizing_params
        Sizer of :mod:`research.strategies.sizing` turning directions into weights.
    stale_bars : int
        Bars a symbol may lag the as-of date before its rows are marked stale.

    Returns
    -------
    DataFrame
        Columns :data:`SIGNAL_COLUMNS`, one row per (symbol, strategy).
    """
    fields, when = _fields(prices), _when(prices, as_of)
    label = when.label
    rows = []
    for symbol in fields["close"].columns:
        bars = _symbol_bars(fields, symbol, when.end)
        if len(bars["close"]) < 2:
            continue
        stale = _stale(prices, symbol, bars["close"].index[-1], when, bars["close"].index, stale_bars)
        for name, params in (strategies or DEFAULT_STRATEGIES).items():
            spec = get_strategy(name)
            call = spec.coerce(params)
            sig = spec.run(bars, **call)
            size = position_magnitude(sig, bars, sizing, sizing_params)
            rows.append(_row(symbol, name, label, bars, sig, size, call, stale))
    return pd.DataFrame(rows, columns=SIGNAL_COLUMNS)


def prediction_signal_rows(
    prices: pd.DataFrame,
    forecasts: pd.DataFrame,
    *,
    as_of: object,
    long_threshold: float = 0.0,
    short_threshold: float | None = None,
    sizing: str = "vol_target",
    sizing_params: Mapping[str, Any] | None = None,
    stale_bars: int = 3,
) -> pd.DataFrame:
    """Signals of the ``prediction`` strategy from model forecasts (``timestamp, symbol, predicted``).

    Only symbols with a forecast at their last bar get a row; the forecasts must come from a
    model that was allowed to trade (the caller decides, e.g. champions only).
    """
    fields, when = _fields(prices), _when(prices, as_of)
    label = when.label
    rows = []
    for symbol, group in forecasts.groupby("symbol"):
        if symbol not in fields["close"].columns:
            continue
        bars = _symbol_bars(fields, symbol, when.end)
        pred = group.set_index("timestamp")["predicted"].reindex(bars["close"].index)
        if len(bars["close"]) < 2 or np.isnan(pred.iloc[-1]):
            continue
        sig = prediction_signals(pred.to_frame(symbol), long_threshold=long_threshold, short_threshold=short_threshold)
        size = position_magnitude(sig, bars, sizing, sizing_params)
        stale = _stale(prices, symbol, bars["close"].index[-1], when, bars["close"].index, stale_bars)
        params = {"long_threshold": long_threshold, "short_threshold": short_threshold, "model": str(group["model"].iloc[-1])}
        rows.append(_row(symbol, "prediction", label, bars, sig, size, params, stale))
    return pd.DataFrame(rows, columns=SIGNAL_COLUMNS)


# ---------------------------------------------------------------- alerts
def market_alerts(prices: pd.DataFrame, *, as_of: object, rules: AlertRules | None = None) -> pd.DataFrame:
    """Price, technical, volume, drawdown and staleness alerts of every symbol at ``as_of``.

    Each symbol's bars up to ``as_of`` go through the rules of :mod:`research.alerts.rules`;
    a symbol without bars, or whose last bar is stale, gets a ``data`` alert here.

    Returns
    -------
    DataFrame
        Columns :data:`ALERT_COLUMNS`; empty (with those columns) when nothing fired.
    """
    rules = rules or AlertRules()
    fields, when = _fields(prices), _when(prices, as_of)
    label = when.label
    rows: list[dict] = []
    for symbol in fields["close"].columns:
        bars = _symbol_bars(fields, symbol, when.end)
        if len(bars["close"]) < 2:
            add_alert(rows, symbol, "data", "critical", f"{symbol} has no bars up to {label}", 0, 2, label, pd.NaT)
            continue
        t = bars["close"].index[-1]
        if _stale(prices, symbol, t, when, bars["close"].index, rules.stale_bars):
            lag = bars_behind(symbol_calendar(prices, symbol), frame_interval(prices), t, when)
            age = bar_age(t, when) / pd.Timedelta(days=1)
            add_alert(rows, symbol, "data", "warning", f"{symbol}'s last bar ({t:%Y-%m-%d %H:%M}) is {lag} bars "
                      f"({age:.1f} days) before the as-of time", lag, rules.stale_bars, label, t)
        symbol_alerts(rows, symbol, bars, rules, label)
    return pd.DataFrame(rows, columns=ALERT_COLUMNS)
