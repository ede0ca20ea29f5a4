"""Today's signals, target positions and alerts: the research outputs a pipeline run ends with.

Everything here is computed from bars up to the as-of date only (a symbol's last bar at or
before ``as_of``); nothing is an order, these are research outputs.

``signals`` table (one row per symbol and strategy)::

    symbol  strategy      as_of       bar_time    signal  previous_signal  changed  target_position  close    stale  params
    SPX     ma_crossover  2018-12-31  2018-12-31  0.0     0.0              False    0.0              2506.85  False  {"fast": 20, "slow": 50}

``signal`` is the position direction (-1, 0, +1) decided at the close of ``bar_time``;
``target_position`` is that direction times the sizer's weight (a fraction of the book's
equity, e.g. volatility targeting); ``stale`` says the symbol's last bar is older than its
calendar allows: more than ``stale_bars`` sessions of its calendar (NYSE sessions for equities,
every day for ``*-USD`` crypto; :func:`research.data.calendars.calendar_of`) passed between its
last bar and the as-of date. A stale symbol keeps its last signal for reference but gets no
target position (0): nothing is decided on old data.

``alerts`` table (one row per condition that fired)::

    symbol  kind       severity  message                                   value   threshold  as_of       bar_time
    SPX     drawdown   critical  SPX is 19.8% below its 252-bar high        -0.198  -0.15      2018-12-31  2018-12-31

Kinds: ``price`` (a move beyond ``move_sigma`` standard deviations, a new ``high_low_window``
high or low), ``technical`` (RSI overbought/oversold, a moving-average cross on the last bar),
``volume`` (volume z-score beyond ``volume_z``), ``drawdown`` (the symbol below its rolling high,
or a strategy's equity below its peak, beyond the thresholds) and ``data`` (stale bars).
Severities: ``info``, ``warning``, ``critical``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from research.data.calendars import calendar_of
from research.features import indicators as ind
from research.strategies import Signals, get_strategy, position_magnitude, prediction_signals

__all__ = [
    "AlertRules", "DEFAULT_STRATEGIES", "todays_signals", "prediction_signal_rows", "market_alerts",
    "strategy_drawdown_alerts", "SIGNAL_COLUMNS", "ALERT_COLUMNS",
]

DEFAULT_STRATEGIES: dict[str, dict[str, Any]] = {
    "ma_crossover": {"fast": 20, "slow": 50},
    "rsi_reversion": {},
    "time_series_momentum": {"lookback": 126},
}
SIGNAL_COLUMNS = ["symbol", "strategy", "as_of", "bar_time", "signal", "previous_signal", "changed",
                  "target_position", "close", "stale", "params"]
ALERT_COLUMNS = ["symbol", "kind", "severity", "message", "value", "threshold", "as_of", "bar_time"]


@dataclass(frozen=True)
class AlertRules:
    """Thresholds of the alerts (all keyword-overridable from a pipeline's parameters)."""

    move_sigma: float = 3.0
    vol_window: int = 20
    high_low_window: int = 252
    rsi_window: int = 14
    rsi_high: float = 70.0
    rsi_low: float = 30.0
    ma_fast: int = 20
    ma_slow: int = 50
    volume_window: int = 20
    volume_z: float = 3.0
    drawdown_warning: float = 0.10
    drawdown_critical: float = 0.20
    strategy_drawdown: float = 0.15
    stale_bars: int = 3


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


def _as_of(as_of: object) -> pd.Timestamp:
    ts = pd.Timestamp(as_of)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1) if ts == ts.normalize() else ts


def missed_sessions(symbol: str, last_bar: object, as_of: object) -> int:
    """Daily bars of ``symbol``'s calendar expected after its ``last_bar`` up to the ``as_of`` day.

    >>> missed_sessions("SPX", "2018-12-21", "2018-12-27")  # Mon 24, Wed 26, Thu 27 (25: Christmas)
    3
    """
    last, end = pd.Timestamp(last_bar), pd.Timestamp(as_of)
    last = last.tz_localize("UTC") if last.tzinfo is None else last.tz_convert("UTC")
    end = end.tz_localize("UTC") if end.tzinfo is None else end.tz_convert("UTC")
    return len(calendar_of(symbol).sessions(last.normalize() + pd.Timedelta(days=1), end.normalize()))


def _stale(symbol: str, bar_time: pd.Timestamp, as_of: pd.Timestamp, index: pd.DatetimeIndex,
           stale_bars: int) -> bool:
    """Whether ``symbol``'s last bar lags ``as_of`` by more than ``stale_bars`` bars.

    Daily bars count the sessions of the symbol's calendar after the last bar's day up to the
    as-of day (a weekend or a holiday is not a missed bar); intraday bars use their spacing.
    """
    if len(index) < 2:
        return True
    step = pd.Series(index[-50:]).diff().median()
    if step >= pd.Timedelta(hours=20):
        return missed_sessions(symbol, bar_time, as_of) > stale_bars
    return bool((as_of - bar_time) > step * (stale_bars + 1))


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
    fields, when = _fields(prices), _as_of(as_of)
    label = str(pd.Timestamp(as_of).date()) if pd.Timestamp(as_of) == pd.Timestamp(as_of).normalize() else str(as_of)
    rows = []
    for symbol in fields["close"].columns:
        bars = _symbol_bars(fields, symbol, when)
        if len(bars["close"]) < 2:
            continue
        stale = _stale(symbol, bars["close"].index[-1], when, bars["close"].index, stale_bars)
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
    fields, when = _fields(prices), _as_of(as_of)
    label = str(pd.Timestamp(as_of).date()) if pd.Timestamp(as_of) == pd.Timestamp(as_of).normalize() else str(as_of)
    rows = []
    for symbol, group in forecasts.groupby("symbol"):
        if symbol not in fields["close"].columns:
            continue
        bars = _symbol_bars(fields, symbol, when)
        pred = group.set_index("timestamp")["predicted"].reindex(bars["close"].index)
        if len(bars["close"]) < 2 or np.isnan(pred.iloc[-1]):
            continue
        sig = prediction_signals(pred.to_frame(symbol), long_threshold=long_threshold, short_threshold=short_threshold)
        size = position_magnitude(sig, bars, sizing, sizing_params)
        stale = _stale(symbol, bars["close"].index[-1], when, bars["close"].index, stale_bars)
        params = {"long_threshold": long_threshold, "short_threshold": short_threshold, "model": str(group["model"].iloc[-1])}
        rows.append(_row(symbol, "prediction", label, bars, sig, size, params, stale))
    return pd.DataFrame(rows, columns=SIGNAL_COLUMNS)


# ---------------------------------------------------------------- alerts
def _alert(rows: list, symbol: str, kind: str, severity: str, message: str, value: float, threshold: float,
           as_of: str, bar_time: pd.Timestamp) -> None:
    rows.append({"symbol": symbol, "kind": kind, "severity": severity, "message": message,
                 "value": float(value), "threshold": float(threshold), "as_of": as_of, "bar_time": bar_time})


def _price_alerts(rows: list, symbol: str, bars: dict, rules: AlertRules, label: str) -> None:
    close = bars["close"][symbol]
    t = close.index[-1]
    ret = close.pct_change()
    sigma = ret.iloc[:-1].tail(rules.vol_window).std()
    if len(ret) > rules.vol_window and sigma > 0 and abs(ret.iloc[-1]) > rules.move_sigma * sigma:
        z = ret.iloc[-1] / sigma
        _alert(rows, symbol, "price", "warning", f"{symbol} moved {ret.iloc[-1]:+.2%} on the last bar ({z:+.1f} sigma)",
               z, rules.move_sigma, label, t)
    window = close.tail(rules.high_low_window)
    if len(close) > rules.high_low_window:
        if close.iloc[-1] >= window.max():
            _alert(rows, symbol, "price", "info", f"{symbol} closed at a {rules.high_low_window}-bar high", close.iloc[-1], window.max(), label, t)
        elif close.iloc[-1] <= window.min():
            _alert(rows, symbol, "price", "warning", f"{symbol} closed at a {rules.high_low_window}-bar low", close.iloc[-1], window.min(), label, t)


def _technical_alerts(rows: list, symbol: str, bars: dict, rules: AlertRules, label: str) -> None:
    close = bars["close"][symbol]
    t = close.index[-1]
    r = ind.rsi(close, window=rules.rsi_window).iloc[-1]
    if r >= rules.rsi_high:
        _alert(rows, symbol, "technical", "info", f"{symbol} RSI({rules.rsi_window}) {r:.0f}: overbought", r, rules.rsi_high, label, t)
    elif r <= rules.rsi_low:
        _alert(rows, symbol, "technical", "info", f"{symbol} RSI({rules.rsi_window}) {r:.0f}: oversold", r, rules.rsi_low, label, t)
    fast, slow = ind.sma(close, window=rules.ma_fast), ind.sma(close, window=rules.ma_slow)
    diff = (fast - slow).tail(2)
    if len(diff) == 2 and diff.notna().all() and np.sign(diff.iloc[0]) != np.sign(diff.iloc[1]):
        way = "above" if diff.iloc[1] > 0 else "below"
        _alert(rows, symbol, "technical", "info", f"{symbol} SMA({rules.ma_fast}) crossed {way} SMA({rules.ma_slow})",
               diff.iloc[1], 0.0, label, t)


def _volume_alerts(rows: list, symbol: str, bars: dict, rules: AlertRules, label: str) -> None:
    if "volume" not in bars:
        return
    vol = bars["volume"][symbol]
    if vol.tail(rules.volume_window).le(0).any():
        return  # indices without volume
    z = ind.volume_zscore(vol, window=rules.volume_window).iloc[-1]
    if np.isfinite(z) and z >= rules.volume_z:
        _alert(rows, symbol, "volume", "warning", f"{symbol} volume {z:.1f} standard deviations above its {rules.volume_window}-bar mean",
               z, rules.volume_z, label, vol.index[-1])


def _drawdown_alerts(rows: list, symbol: str, bars: dict, rules: AlertRules, label: str) -> None:
    close = bars["close"][symbol]
    peak = close.tail(rules.high_low_window).max()
    dd = close.iloc[-1] / peak - 1.0
    for severity, level in (("critical", rules.drawdown_critical), ("warning", rules.drawdown_warning)):
        if dd <= -level:
            _alert(rows, symbol, "drawdown", severity, f"{symbol} is {-dd:.1%} below its {rules.high_low_window}-bar high",
                   dd, -level, label, close.index[-1])
            break


def market_alerts(prices: pd.DataFrame, *, as_of: object, rules: AlertRules | None = None) -> pd.DataFrame:
    """Price, technical, volume, drawdown and staleness alerts of every symbol at ``as_of``.

    Returns
    -------
    DataFrame
        Columns :data:`ALERT_COLUMNS`; empty (with those columns) when nothing fired.
    """
    rules = rules or AlertRules()
    fields, when = _fields(prices), _as_of(as_of)
    label = str(pd.Timestamp(as_of).date()) if pd.Timestamp(as_of) == pd.Timestamp(as_of).normalize() else str(as_of)
    rows: list[dict] = []
    for symbol in fields["close"].columns:
        bars = _symbol_bars(fields, symbol, when)
        if len(bars["close"]) < 2:
            _alert(rows, symbol, "data", "critical", f"{symbol} has no bars up to {label}", 0, 2, label, pd.NaT)
            continue
        t = bars["close"].index[-1]
        if _stale(symbol, t, when, bars["close"].index, rules.stale_bars):
            lag = (when.normalize() - t.normalize()).days
            _alert(rows, symbol, "data", "warning", f"{symbol}'s last bar ({t.date()}) is {lag} days before the as-of date",
                   lag, rules.stale_bars, label, t)
        for check in (_price_alerts, _technical_alerts, _volume_alerts, _drawdown_alerts):
            check(rows, symbol, bars, rules, label)
    return pd.DataFrame(rows, columns=ALERT_COLUMNS)


def strategy_drawdown_alerts(equity: pd.DataFrame, *, as_of: object, threshold: float = 0.15) -> pd.DataFrame:
    """Alerts for strategy equity curves (columns ``"strategy|symbol"``) below their peak by ``threshold``."""
    label = str(pd.Timestamp(as_of).date()) if pd.Timestamp(as_of) == pd.Timestamp(as_of).normalize() else str(as_of)
    rows: list[dict] = []
    for col in equity.columns:
        curve = equity[col].dropna()
        if curve.empty:
            continue
        dd = curve.iloc[-1] / curve.max() - 1.0
        if dd <= -threshold:
            strategy, _, symbol = str(col).partition("|")
            _alert(rows, symbol or strategy, "drawdown", "warning",
                   f"strategy {strategy} on {symbol} is {-dd:.1%} below its equity peak", dd, -threshold, label, curve.index[-1])
    return pd.DataFrame(rows, columns=ALERT_COLUMNS)
