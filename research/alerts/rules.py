"""Alert rules: the conditions on a symbol's bars, or on a strategy's equity, that raise an alert.

``alerts`` table (one row per condition that fired)::

    symbol  kind       severity  message                                   value   threshold  as_of       bar_time
    SPX     drawdown   critical  SPX is 19.8% below its 252-bar high        -0.198  -0.15      2018-12-31  2018-12-31

Kinds: ``price`` (a move beyond ``move_sigma`` standard deviations, a new ``high_low_window``
high or low), ``technical`` (RSI overbought/oversold, a moving-average cross on the last bar),
``volume`` (volume z-score beyond ``volume_z``), ``drawdown`` (the symbol below its rolling high,
or a strategy's equity below its peak, beyond the thresholds) and ``data`` (stale bars).
Severities: ``info``, ``warning``, ``critical``.

The rules here look at bars they are given (a symbol's bars up to the as-of date, chosen by the
caller: :func:`research.stages.todays_signals.market_alerts`); the ``data`` kind (no or stale
bars) is raised by that caller. :class:`AlertRules` holds every threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from research.data.asof import AsOf
from research.data.freshness import frame_interval
from research.features import indicators as ind

__all__ = ["AlertRules", "ALERT_COLUMNS", "add_alert", "symbol_alerts", "strategy_drawdown_alerts"]

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


def add_alert(rows: list, symbol: str, kind: str, severity: str, message: str, value: float, threshold: float,
              as_of: str, bar_time: pd.Timestamp) -> None:
    """Append one alert row (the columns of :data:`ALERT_COLUMNS`) to ``rows``."""
    rows.append({"symbol": symbol, "kind": kind, "severity": severity, "message": message,
                 "value": float(value), "threshold": float(threshold), "as_of": as_of, "bar_time": bar_time})


def _price_alerts(rows: list, symbol: str, bars: dict, rules: AlertRules, label: str) -> None:
    close = bars["close"][symbol]
    t = close.index[-1]
    ret = close.pct_change()
    sigma = ret.iloc[:-1].tail(rules.vol_window).std()
    if len(ret) > rules.vol_window and sigma > 0 and abs(ret.iloc[-1]) > rules.move_sigma * sigma:
        z = ret.iloc[-1] / sigma
        add_alert(rows, symbol, "price", "warning", f"{symbol} moved {ret.iloc[-1]:+.2%} on the last bar ({z:+.1f} sigma)",
               z, rules.move_sigma, label, t)
    window = close.tail(rules.high_low_window)
    if len(close) > rules.high_low_window:
        if close.iloc[-1] >= window.max():
            add_alert(rows, symbol, "price", "info", f"{symbol} closed at a {rules.high_low_window}-bar high", close.iloc[-1], window.max(), label, t)
        elif close.iloc[-1] <= window.min():
            add_alert(rows, symbol, "price", "warning", f"{symbol} closed at a {rules.high_low_window}-bar low", close.iloc[-1], window.min(), label, t)


def _technical_alerts(rows: list, symbol: str, bars: dict, rules: AlertRules, label: str) -> None:
    close = bars["close"][symbol]
    t = close.index[-1]
    r = ind.rsi(close, window=rules.rsi_window).iloc[-1]
    if r >= rules.rsi_high:
        add_alert(rows, symbol, "technical", "info", f"{symbol} RSI({rules.rsi_window}) {r:.0f}: overbought", r, rules.rsi_high, label, t)
    elif r <= rules.rsi_low:
        add_alert(rows, symbol, "technical", "info", f"{symbol} RSI({rules.rsi_window}) {r:.0f}: oversold", r, rules.rsi_low, label, t)
    fast, slow = ind.sma(close, window=rules.ma_fast), ind.sma(close, window=rules.ma_slow)
    diff = (fast - slow).tail(2)
    if len(diff) == 2 and diff.notna().all() and np.sign(diff.iloc[0]) != np.sign(diff.iloc[1]):
        way = "above" if diff.iloc[1] > 0 else "below"
        add_alert(rows, symbol, "technical", "info", f"{symbol} SMA({rules.ma_fast}) crossed {way} SMA({rules.ma_slow})",
               diff.iloc[1], 0.0, label, t)


def _volume_alerts(rows: list, symbol: str, bars: dict, rules: AlertRules, label: str) -> None:
    if "volume" not in bars:
        return
    vol = bars["volume"][symbol]
    if vol.tail(rules.volume_window).le(0).any():
        return  # indices without volume
    z = ind.volume_zscore(vol, window=rules.volume_window).iloc[-1]
    if np.isfinite(z) and z >= rules.volume_z:
        add_alert(rows, symbol, "volume", "warning", f"{symbol} volume {z:.1f} standard deviations above its {rules.volume_window}-bar mean",
               z, rules.volume_z, label, vol.index[-1])


def _drawdown_alerts(rows: list, symbol: str, bars: dict, rules: AlertRules, label: str) -> None:
    close = bars["close"][symbol]
    peak = close.tail(rules.high_low_window).max()
    dd = close.iloc[-1] / peak - 1.0
    for severity, level in (("critical", rules.drawdown_critical), ("warning", rules.drawdown_warning)):
        if dd <= -level:
            add_alert(rows, symbol, "drawdown", severity, f"{symbol} is {-dd:.1%} below its {rules.high_low_window}-bar high",
                   dd, -level, label, close.index[-1])
            break


def symbol_alerts(rows: list, symbol: str, bars: dict, rules: AlertRules, label: str) -> None:
    """Run the price, technical, volume and drawdown rules on one symbol's ``bars`` (one-column
    wide frames per field, up to the as-of date), appending what fires to ``rows``."""
    for check in (_price_alerts, _technical_alerts, _volume_alerts, _drawdown_alerts):
        check(rows, symbol, bars, rules, label)


def strategy_drawdown_alerts(equity: pd.DataFrame, *, as_of: object, threshold: float = 0.15) -> pd.DataFrame:
    """Alerts for strategy equity curves (columns ``"strategy|symbol"``) below their peak by ``threshold``."""
    label = AsOf.parse(as_of, interval=frame_interval(equity)).label
    rows: list[dict] = []
    for col in equity.columns:
        curve = equity[col].dropna()
        if curve.empty:
            continue
        dd = curve.iloc[-1] / curve.max() - 1.0
        if dd <= -threshold:
            strategy, _, symbol = str(col).partition("|")
            add_alert(rows, symbol or strategy, "drawdown", "warning",
                   f"strategy {strategy} on {symbol} is {-dd:.1%} below its equity peak", dd, -threshold, label, curve.index[-1])
    return pd.DataFrame(rows, columns=ALERT_COLUMNS)
