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

from research.viz.panels.staleness import stale_symbols
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


def _day(value: object) -> str:
    if value in (None, ""):
        return "?"
    try:
        return str(pd.Timestamp(value).date())
    except (TypeError, ValueError):
        return str(value)


def book_subject(doc: dict) -> tuple[str, str]:
    """What the headline figures measure: a short tag for each card (strategy, book, period) and
    the full sentence (strategy, book, symbols, period, benchmark), from the recorded ``risk``."""
    head = doc.get("headline") or {}
    subject = head.get("subject") or {}
    strategy = subject.get("strategy") or doc.get("strategy") or "the strategy"
    book = subject.get("book") or doc.get("book") or "book"
    symbols = [str(s) for s in subject.get("symbols") or []]
    start, end = _day(subject.get("start", doc.get("start"))), _day(subject.get("end", doc.get("end")))
    period = f"{start} to {end}"
    tag = f"{strategy} book · {period}"
    who = f"{len(symbols)} symbols ({', '.join(symbols)})" if symbols else "its symbols"
    bench = head.get("benchmark_name") or (doc.get("benchmark") or {}).get("name") or "none recorded"
    sentence = (f"{strategy} strategy, {book}, on {who}, {period}; benchmark: {bench}, same period")
    return tag, sentence


def _book(run: PublishedRun) -> tuple[list[tuple[str, str, str, str]], str]:
    """``(label, value, tone, benchmark value)`` of the book's figures, and the subject sentence.

    Every page reads these from the run's ``risk`` document (its ``headline`` block, computed
    once by the pipeline, else its ``summary``), so the pages cannot disagree.
    """
    if not run.has("risk"):
        return [], ""
    doc = run.document("risk")
    head = doc.get("headline") or {}
    summary = head.get("book") or doc.get("summary") or doc
    bench = head.get("benchmark") or {}
    tag, sentence = book_subject(doc)
    cards = []
    for key, label, fmt in _BOOK:
        value = _number(summary.get(key))
        if value is None:
            continue
        tone = "" if key == "Sharpe Ratio" else ("wb-up" if value > 0 else "wb-down" if value < 0 else "")
        other = _number(bench.get(key))
        cards.append((f"{label} · {tag}", fmt.format(value), tone,
                      f"benchmark {fmt.format(other)}" if other is not None else "benchmark not recorded"))
    return cards, sentence


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
    """The data card: every symbol current, or the stale ones with their last bar
    (:func:`research.viz.panels.staleness.stale_symbols`, the rule every page uses)."""
    symbols: list[str] = []
    if run.has("data_report"):
        report = run.table("data_report")
        if "symbol" in report:
            symbols = [str(s) for s in report["symbol"]]
    last = stale_symbols(run, stale_bars=stale_bars)
    names = sorted({*stale, *last})
    if not symbols and not names:
        return None
    if not names:
        return ("data", f"all {len(symbols)} symbols current" if symbols else "current", "wb-up")
    return ("data", "stale: " + ", ".join(f"{s} (last bar {last[s]})" if s in last else s for s in names), "wb-down")


def headline_figures(run: PublishedRun) -> list[tuple[str, str, str]]:
    """``(label, value, tone)`` of every headline figure the run recorded (tone: a CSS class or '').

    A book figure's label names its subject (strategy, book, period) and ends with the benchmark's
    figure over the same bars (``"total return · sma_cross book · 2022-06-01 to 2023-08-07
    (benchmark +12.0%)"``).
    """
    book, _ = _book(run)
    signal_cards, stale = _signals(run)
    fresh = _freshness(run, stale)
    return [*((f"{label} ({bench})", value, tone) for label, value, tone, bench in book),
            *signal_cards, *([fresh] if fresh else [])]


def _card(label: str, value: str, tone: str, bench: str = "") -> str:
    extra = f'<div class="wb-card-bench">{html.escape(bench)}</div>' if bench else ""
    return (f'<div class="wb-card {tone}"><div class="wb-card-value">{html.escape(value)}</div>{extra}'
            f'<div class="wb-card-label">{html.escape(label)}</div></div>')


def headline_panel(run: PublishedRun) -> widgets.Widget:
    """The headline row (DOM classes ``wb-headline`` and ``wb-cards``): what the book figures
    measure, each beside its benchmark's figure, then today's signals and the data's freshness."""
    book, sentence = _book(run)
    signal_cards, stale = _signals(run)
    fresh = _freshness(run, stale)
    cards = "".join([*(_card(label, value, tone, bench) for label, value, tone, bench in book),
                     *(_card(label, value, tone) for label, value, tone in [*signal_cards, *([fresh] if fresh else [])])])
    subject = f'<div class="wb-headline-subject">Book figures: {html.escape(sentence)}.</div>' if sentence else ""
    style = ("<style>.wb-headline .wb-up .wb-card-value{color:#0e7c45}"
             ".wb-headline .wb-down .wb-card-value{color:#ba2525}"
             ".wb-headline .wb-card-bench{font-size:0.85em;color:#3e4c59}"
             ".wb-headline-subject{font-size:0.85em;color:#52606d;margin:2px 0 6px 0}</style>")
    box = widgets.HTML(f'{style}{subject}<div class="wb-cards wb-headline-row">{cards}</div>')
    box.add_class("wb-headline")
    return box
