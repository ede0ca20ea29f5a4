"""The row of headline figures at the top of a dashboard page.

One line answers the first questions before any figure is read: how the book did (total and
annual return, Sharpe ratio, maximum drawdown, from the run's ``risk`` document), what today's
signals say (long, flat, short, and how many changed) and whether the data is current (symbols
whose last bar is older than their calendar allows, from the ``signals`` table's ``stale``
flag, else the ``data_report``). A figure the run did not record is simply left out.
"""

from __future__ import annotations

import html
import math

import ipywidgets as widgets
import pandas as pd

from research.data.asof import AsOf
from research.data.calendars import calendar_of
from research.data.freshness import is_stale
from research.viz.panels.layout import run_interval
from research.workflow.results import PublishedRun

__all__ = ["headline_figures", "headline_panel"]

_BOOK = (("Total Return [%]", "total return", "{:+.1f}%"), ("Return (Ann.) [%]", "return p.a.", "{:+.1f}%"),
         ("Sharpe Ratio", "Sharpe ratio", "{:.2f}"), ("Max. Drawdown [%]", "max drawdown", "{:.1f}%"))


def _number(value: object) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out


def _book(run: PublishedRun) -> list[tuple[str, str, str]]:
    if not run.has("risk"):
        return []
    doc = run.document("risk")
    summary = doc.get("summary") or doc
    cards = []
    for key, label, fmt in _BOOK:
        value = _number(summary.get(key))
        if value is not None:
            tone = "" if key == "Sharpe Ratio" else ("wb-up" if value > 0 else "wb-down" if value < 0 else "")
            cards.append((label, fmt.format(value), tone))
    return cards


def _signals(run: PublishedRun) -> tuple[list[tuple[str, str, str]], list[str]]:
    if not run.has("signals"):
        return [], []
    sig = run.table("signals")
    if "signal" not in sig:
        return [], []
    stale = sorted({str(s) for s in sig.loc[sig["stale"].fillna(False).astype(bool), "symbol"]}) \
        if "stale" in sig else []
    live = sig[~sig["symbol"].astype(str).isin(stale)] if stale else sig
    long_, short = int((live["signal"] > 0).sum()), int((live["signal"] < 0).sum())
    flat = len(live) - long_ - short
    text = f"{long_} long · {flat} flat · {short} short"
    changed = int(live["changed"].fillna(False).astype(bool).sum()) if "changed" in live else 0
    cards = [("last signals", text, "")]
    if "changed" in live:
        cards.append(("changed today", str(changed), "wb-up" if changed else ""))
    return cards, stale


def _freshness(run: PublishedRun, stale: list[str], *, stale_bars: int = 3) -> tuple[str, str, str] | None:
    symbols: list[str] = []
    if run.has("data_report"):
        report = run.table("data_report")
        if {"symbol", "last"} <= set(report.columns) and run.as_of:
            symbols = [str(s) for s in report["symbol"]]
            interval = run_interval(run)
            when = AsOf.parse(run.as_of, interval=interval)
            for sym, last in zip(report["symbol"], report["last"], strict=True):
                if pd.notna(last) and is_stale(calendar_of(str(sym)), interval, last, when, stale_bars=stale_bars):
                    stale = sorted({*stale, str(sym)})
    if not symbols and not stale:
        return None
    if not stale:
        return ("data", f"all {len(symbols)} symbols current" if symbols else "current", "wb-up")
    return ("data", f"stale: {', '.join(stale)}", "wb-down")


def headline_figures(run: PublishedRun) -> list[tuple[str, str, str]]:
    """``(label, value, tone)`` of every headline figure the run recorded (tone: a CSS class or '')."""
    signal_cards, stale = _signals(run)
    fresh = _freshness(run, stale)
    return [*_book(run), *signal_cards, *([fresh] if fresh else [])]


def headline_panel(run: PublishedRun) -> widgets.Widget:
    """The headline row (DOM classes ``wb-headline`` and ``wb-cards``)."""
    cards = "".join(
        f'<div class="wb-card {tone}"><div class="wb-card-value">{html.escape(value)}</div>'
        f'<div class="wb-card-label">{html.escape(label)}</div></div>'
        for label, value, tone in headline_figures(run))
    style = ("<style>.wb-headline .wb-up .wb-card-value{color:#0e7c45}"
             ".wb-headline .wb-down .wb-card-value{color:#ba2525}</style>")
    box = widgets.HTML(f'{style}<div class="wb-cards wb-headline-row">{cards}</div>')
    box.add_class("wb-headline")
    return box
