"""Which symbols of a run are stale, and since when: read once, used by every page.

A symbol is stale when the signals stage said so (its ``stale`` flag: more than ``stale_bars``
sessions of its calendar passed between its last bar and the run's as-of date), or, for runs
without that flag, by the library's one rule on the data report's last bar
(:func:`research.data.freshness.is_stale`). Pages flag stale symbols, date their
alerts by their last bar, and open on a fresh symbol.
"""

from __future__ import annotations

import html
from collections.abc import Iterable

import pandas as pd

from research.data.asof import AsOf
from research.data.calendars import calendar_of
from research.data.freshness import STALE_BARS, is_stale
from research.viz.panels.layout import run_interval
from research.workflow.results import PublishedRun

__all__ = ["STALE_BARS", "stale_symbols", "fresh_first", "stale_note", "date_alerts"]



def _day(value: object) -> str:
    stamp = pd.Timestamp(value)
    return str(stamp.date())


def stale_symbols(run: PublishedRun, *, stale_bars: int = STALE_BARS) -> dict[str, str]:
    """``{symbol: date of its last bar}`` of every stale symbol of ``run`` (empty when all are fresh)."""
    last: dict[str, str] = {}
    flagged: set[str] = set()
    if run.has("signals"):
        sig = run.table("signals")
        if {"symbol", "stale"} <= set(sig.columns):
            flagged = {str(s) for s in sig.loc[sig["stale"].fillna(False).astype(bool), "symbol"]}
        if {"symbol", "bar_time"} <= set(sig.columns):
            for sym, bar in zip(sig["symbol"].astype(str), sig["bar_time"], strict=True):
                if pd.notna(bar):
                    last[sym] = max(last.get(sym, ""), _day(bar))
    if run.has("data_report"):
        report = run.table("data_report")
        if {"symbol", "last"} <= set(report.columns):
            interval = run_interval(run)
            when = AsOf.parse(run.as_of, interval=interval) if run.as_of else None
            for sym, bar in zip(report["symbol"].astype(str), report["last"], strict=True):
                if pd.isna(bar):
                    continue
                last[sym] = _day(bar)
                if when is not None and is_stale(calendar_of(sym), interval, bar, when, stale_bars=stale_bars):
                    flagged.add(sym)
    return {sym: last.get(sym, "?") for sym in sorted(flagged)}


def fresh_first(symbols: Iterable[str], stale: dict[str, str]) -> list[str]:
    """``symbols`` with the fresh ones first (each group in its order): a page opens on a fresh symbol."""
    items = list(symbols)
    return [s for s in items if s not in stale] + [s for s in items if s in stale]


def stale_note(symbols: Iterable[str], stale: dict[str, str]) -> str:
    """A line naming the stale ones among ``symbols`` with their last bar (``""`` when none)."""
    shown = [s for s in symbols if s in stale]
    if not shown:
        return ""
    items = ", ".join(f"{html.escape(s)} (last bar {html.escape(stale[s])})" for s in shown)
    return (f'<div class="wb-note wb-stale-note">Stale, no recent data: {items}. Their figures end at their '
            "last bar; they get no target position.</div>")


def date_alerts(alerts: pd.DataFrame, stale: dict[str, str]) -> pd.DataFrame:
    """Alerts with a ``dated`` column: the bar an alert was computed on (its ``bar_time``, else the
    symbol's last bar when stale, else the run's as-of), and ``stale`` for a stale symbol's alerts."""
    out = alerts.copy()
    if "symbol" not in out:
        return out
    dated = []
    for _, row in out.iterrows():
        sym = str(row["symbol"])
        bar = row.get("bar_time")
        if sym in stale:
            dated.append(stale[sym])
        elif bar is not None and pd.notna(bar):
            dated.append(_day(bar))
        else:
            dated.append(_day(row["as_of"]) if pd.notna(row.get("as_of")) else "")
    out.insert(0, "dated", dated)
    out["stale"] = out["symbol"].astype(str).isin(stale)
    return out
