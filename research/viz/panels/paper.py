"""Paper trading: accounts, equity against the backtest, positions, fills, reconciliation, alerts.

Everything shown is read from the ledger database (:mod:`research.paper.book`: accounts,
sessions, fills, positions, cash; :mod:`research.alerts.outbox`: alerts and their deliveries) or
computed by the monitor (:mod:`research.paper.monitor`: performance figures, the reconciliation
against a backtest of the same period and its per-trade differences). The panels only select and
draw. The page's as-of time is the selected account's last session; its provenance line names
the account, the ledger (password hidden), the latest published run of the account's pipeline
and the data source.

:func:`outbox_panel` is shared with the pipeline-health page.
"""

from __future__ import annotations

import html
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import pandas as pd
import plotly.graph_objects as go

from research.alerts import outbox
from research.paper import book, monitor
from research.paper.db import default_url
from research.paper.trading import load_fields
from research.viz.panels.layout import (
    cell_text,
    dropdown,
    figure_output,
    guard,
    line_xy,
    load_run,
    naive_index,
    note,
    number_text,
    page_root,
    section,
    show_figure,
    table_html,
    weekly_note,
)
from research.viz.panels.viewer_safe import on_change
from research.workflow.results import PublishedRun

__all__ = ["paper_trading", "outbox_panel", "accounts_frame", "AccountView", "load_account", "ledger_url",
           "paper_equity_figure", "reconciliation_table", "EQUITY_VIEWS"]

log = logging.getLogger(__name__)
EQUITY_VIEWS = ("equity against the backtest", "paper minus backtest")
_TITLE = "Paper trading"
_CARDS = ("Final Equity", "Return [%]", "Realised P&L", "Unrealised P&L", "Fees Paid", "Sessions", "Fills", "# Trades",
          "Win Rate [%]", "Profit Factor", "Max. Drawdown [%]", "Sharpe Ratio", "Exposure [%]")
#: Card labels that say what is counted (a round trip is an entry fill and its exit fill, so
#: "5 round trips" and "12 fills" agree: 10 fills closed 5 round trips, 2 opened positions still held).
_CARD_LABELS = {"# Trades": "Round trips closed (entry and exit fill)", "Fills": "Fills (each buy and each sell)",
                "Sessions": "Sessions recorded"}
_SUMMARY = ("returns_correlation", "tracking_error", "total_return_paper", "total_return_backtest",
            "total_return_difference", "max_equity_difference", "sessions", "fills_paper", "fills_backtest",
            "differences")


def ledger_url(url: str | None = None) -> str | None:
    """The ledger URL to read, or ``None`` when the default SQLite file does not exist yet.

    A dashboard never creates a ledger: with no file there is nothing to show.
    """
    url = url or default_url()
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        return None
    return url


def _when(ts: Any) -> str:
    if ts is None or pd.isna(ts):
        return "no session yet"
    ts = pd.Timestamp(ts)
    return f"{ts:%Y-%m-%d}" if ts == ts.normalize() else f"{ts:%Y-%m-%d %H:%M}"


def accounts_frame(url: str) -> pd.DataFrame:
    """One row per account: strategy, symbols, pipeline, sessions, last session and its recorded equity."""
    rows = []
    for acc in book.list_accounts(url=url):
        sess = book.sessions(acc.name, url=url)
        last = sess.iloc[-1] if len(sess) else None
        rows.append({"account": acc.name, "strategy": acc.strategy, "symbols": ", ".join(acc.symbols),
                     "pipeline": acc.pipeline or "", "source": acc.source, "sessions": len(sess),
                     "last session": _when(last["as_of"]) if last is not None else "no session yet",
                     "initial cash": acc.initial_cash, "equity": float(last["equity"]) if last is not None else None})
    return pd.DataFrame(rows, columns=["account", "strategy", "symbols", "pipeline", "source", "sessions",
                                       "last session", "initial cash", "equity"])


@dataclass
class AccountView:
    """What the page shows of one account, read once."""

    account: book.Account
    last_session: pd.Timestamp | None
    performance: dict[str, Any]
    reconciliation: monitor.Reconciliation | None
    positions: dict[str, float]
    cash: float
    fills: pd.DataFrame
    run: PublishedRun | None
    stale: list[dict[str, Any]] = field(default_factory=list)
    stale_exposure: float = 0.0


def load_account(name: str, *, url: str, runs_dir: str | os.PathLike | None = None) -> AccountView:
    """Read an account's ledger rows and the monitor's figures (prices loaded once, up to its last session)."""
    acc = book.get_account(name, url=url)
    last = book.last_session(name, url=url)
    fields = load_fields(acc, end=last) if last is not None else None
    perf = monitor.performance(name, fields=fields, url=url) if last is not None else {}
    rec = monitor.reconcile(name, fields=fields, url=url) if last is not None else None
    run = load_run(acc.pipeline, runs_dir=runs_dir) if acc.pipeline else None
    stale, exposure = monitor.stale_positions(name, fields=fields, url=url) if last is not None else ([], 0.0)
    return AccountView(acc, last, perf, rec, book.positions(name, url=url), book.cash(name, url=url),
                       book.fills(name, url=url), run, stale, exposure)


# ---------------------------------------------------------------- header and cards
def _header(view: AccountView) -> str:
    acc = view.account
    synthetic = acc.source == "synthetic"
    badge = ' <span class="wb-badge-synthetic wb-synthetic">synthetic</span>' if synthetic else ""
    run = (f'<span>pipeline run <b class="wb-run-id">{html.escape(view.run.run_id)}</b> '
           f"({html.escape(view.run.pipeline)})</span>") if view.run is not None else (
        '<span>pipeline run <b class="wb-run-id">none published</b></span>')
    return (f'<div class="wb-header"><h2>{_TITLE}</h2><div class="wb-meta">'
            f'<span>as of <b class="wb-as-of">{html.escape(_when(view.last_session))}</b></span>'
            f'<span>account <b class="wb-account">{html.escape(acc.name)}</b></span>'
            f"{run}"
            f'<span>data <b class="wb-source">{html.escape(acc.source)}</b>{badge}</span>'
            "</div></div>")


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "n/a"
    if isinstance(value, (int,)) and not isinstance(value, bool):
        return f"{value:,}"
    try:
        return f"{float(value):,.2f}"
    except (TypeError, ValueError):
        return str(value)


def _cards(items: list[tuple[str, Any]], dom_class: str) -> widgets.HTML:
    body = "".join(f'<div class="wb-card"><div class="wb-card-value">{html.escape(_fmt(v))}</div>'
                   f'<div class="wb-card-label">{html.escape(k)}</div></div>' for k, v in items)
    box = widgets.HTML(f'<div class="wb-cards">{body}</div>')
    box.add_class(dom_class)
    return box


def _stamp(fig: go.Figure, view: AccountView) -> go.Figure:
    run = f" · run {view.run.run_id}" if view.run is not None else ""
    fig.add_annotation(text=f"as of {_when(view.last_session)} · account {view.account.name}{run}",
                       xref="paper", yref="paper", x=1.0, y=-0.12, xanchor="right", yanchor="top",
                       showarrow=False, font={"size": 10, "color": "#7b8794"})
    fig.update_layout(margin={"l": 50, "r": 20, "t": 50, "b": 60}, template="plotly_white")
    return fig


# ---------------------------------------------------------------- figures and tables
def paper_equity_figure(view: AccountView, which: str = EQUITY_VIEWS[0]) -> go.Figure:
    """The account's equity and the backtest's over the same bars (the gap shaded), or their difference."""
    rec = view.reconciliation
    fig = go.Figure()
    if rec is None or rec.curves.empty:
        fig.update_layout(title=f"{view.account.name}: fewer than three sessions, nothing to compare yet")
        return _stamp(fig, view)
    curves = rec.curves.copy()
    curves.index = naive_index(pd.DatetimeIndex(curves.index))
    if which == EQUITY_VIEWS[1]:
        x, y, thin = line_xy(curves["paper"] - curves["backtest"])
        fig.add_trace(go.Scatter(x=x, y=y, name="paper - backtest", line={"color": "#cb6e17"}))
        fig.update_layout(title=f"{view.account.name}: paper minus backtest equity{weekly_note(thin)}",
                          yaxis_title="currency")
        return _stamp(fig, view)
    xb, yb, thin = line_xy(curves["backtest"])
    xp, yp, _ = line_xy(curves["paper"])
    fig.add_trace(go.Scatter(x=xb, y=yb, name="backtest (same strategy and period)", line={"color": "#9aa5b1", "dash": "dash"}))
    fig.add_trace(go.Scatter(x=xp, y=yp, name="paper account", line={"color": "#2680c2"}, fill="tonexty",
                             fillcolor="rgba(203,110,23,0.25)"))
    te = rec.summary.get("tracking_error")
    band = f" · tracking error {te:.2%} (drift band {monitor.DRIFT_BAND:.0%})" if te is not None and pd.notna(te) else ""
    fig.update_layout(title=f"{view.account.name}: paper equity against its backtest{band}{weekly_note(thin)}",
                      yaxis_title="equity", legend={"orientation": "h", "y": 1.02, "x": 0})
    return _stamp(fig, view)


#: How the monitor's summary reads on the page: label, and whether the value is a fraction shown in percent.
_SUMMARY_LABELS = {
    "returns_correlation": ("Correlation of returns", False), "tracking_error": ("Tracking error (ann.)", True),
    "total_return_paper": ("Total return, paper", True), "total_return_backtest": ("Total return, backtest", True),
    "total_return_difference": ("Total return, paper minus backtest", True),
    "max_equity_difference": ("Largest equity gap", False),
    "sessions": ("Sessions compared (a return on both paper and backtest)", False),
    "fills_paper": ("Fills, paper", False), "fills_backtest": ("Fills, backtest", False),
    "differences": ("Fills that differ", False),
}


def _summary_text(key: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "n/a"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if _SUMMARY_LABELS.get(key, ("", False))[1]:
            return f"{100 * float(value):,.2f}%"
        if key == "returns_correlation":
            return f"{float(value):.3f}"
        return number_text(value)
    return cell_text(value)


def reconciliation_table(view: AccountView) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The monitor's summary as (metric, value) rows, named and in units for a reader (fractions
    in percent), and its per-fill table (differences first)."""
    rec = view.reconciliation
    if rec is None:
        return pd.DataFrame(columns=["metric", "value"]), pd.DataFrame()
    summary = pd.DataFrame([(_SUMMARY_LABELS.get(k, (k, False))[0], _summary_text(k, rec.summary.get(k)))
                            for k in _SUMMARY if k in rec.summary], columns=["metric", "value"])
    trades = rec.trades.copy()
    if "cause" in trades:
        trades = trades.assign(_d=trades["cause"].eq("")).sort_values(["_d", "timestamp"], ascending=[True, False])
        trades = trades.drop(columns="_d")
    return summary, trades


def _account_panels(view: AccountView, url: str) -> list[widgets.Widget]:
    name = view.account.name
    cards = _cards([(_CARD_LABELS.get(k, k), view.performance.get(k)) for k in _CARDS if k in view.performance],
                   "wb-paper-cards")
    switch = dropdown(list(EQUITY_VIEWS), description="Show", dom_class="wb-paper-view")
    fig = figure_output(paper_equity_figure(view, switch.value), dom_class="wb-paper-equity-fig", height=380)
    on_change(switch, lambda ch: show_figure(fig, paper_equity_figure(view, ch["new"])), names="value")
    held = pd.DataFrame([{"symbol": s, "quantity": q} for s, q in view.positions.items() if q != 0]
                        + [{"symbol": "cash", "quantity": view.cash}], columns=["symbol", "quantity"])
    if view.stale:  # a held symbol whose data stopped: kept at its last close, with its age
        ages = {r["symbol"]: (r["last_bar"][:16], r["age_days"]) for r in view.stale}
        held["stale since"] = held["symbol"].map(lambda s: ages.get(s, ("", None))[0])
        held["age [days]"] = held["symbol"].map(lambda s: ages.get(s, ("", None))[1])
    fills = view.fills.sort_values("timestamp", ascending=False) if len(view.fills) else view.fills
    keep = [c for c in ("timestamp", "symbol", "side", "qty", "price", "quote", "fees", "reason", "order_id") if c in fills]
    summary, trades = reconciliation_table(view)
    recon = (note("Fewer than three sessions: no reconciliation yet.", dom_class="wb-paper-recon-none")
             if view.reconciliation is None else widgets.VBox([
                 table_html(summary, dom_class="wb-paper-recon-summary",
                            csv=pd.DataFrame({"metric": list(view.reconciliation.summary),
                                              "value": list(view.reconciliation.summary.values())})),
                 table_html(trades, dom_class="wb-paper-recon-table", max_rows=25,
                            formats={c: ",.4f" for c in trades.columns if c.startswith(("qty_", "price_", "fees_"))})]))
    return [
        section(f"Account {name}: performance", cards, dom_class="wb-paper-performance"),
        section("Equity against the backtest", switch, fig, dom_class="wb-paper-equity"),
        section("Positions", table_html(held, dom_class="wb-paper-positions-table", formats={"quantity": ",.4f"}),
                *([note(f"Stale exposure {view.stale_exposure:.2%} of equity: "
                        f"{', '.join(r['symbol'] for r in view.stale)} held at the last close of data that stopped.",
                        dom_class="wb-paper-stale")] if view.stale else []),
                dom_class="wb-paper-positions"),
        section("Recent fills", table_html(fills[keep] if keep else fills, dom_class="wb-paper-fills-table", max_rows=20,
                                           formats={"qty": ",.4f", "price": ",.2f", "quote": ",.2f", "fees": ",.2f"},
                                           labels={"quote": "Quote at fill"}),
                dom_class="wb-paper-fills"),
        section("Reconciliation with the backtest", recon, dom_class="wb-paper-recon"),
        section(f"Alerts about {name} and its symbols", _account_alerts(view, url), dom_class="wb-paper-alerts"),
    ]


def _account_alerts(view: AccountView, url: str, limit: int = 15) -> widgets.Widget:
    """The outbox rows whose subject is the account or one of its symbols, newest first."""
    frame = outbox.alerts_frame(url=url, limit=500)
    mine = frame[frame["subject"].isin({view.account.name, *view.account.symbols})]
    if mine.empty:
        return note("No alert about this account or its symbols in the outbox.", dom_class="wb-paper-alerts-none")
    keep = ["created", "severity", "kind", "subject", "status", "channels", "message"]
    return table_html(mine[keep], dom_class="wb-paper-alerts-table", max_rows=limit)


# ---------------------------------------------------------------- alert outbox
def outbox_panel(url: str | None = None, *, limit: int = 20) -> widgets.Widget:
    """The alert outbox: pending, sent and failed deliveries, and the latest alerts with their status."""
    url = ledger_url(url)
    if url is None:
        return section("Alert outbox", note("No ledger database yet: no alert has been recorded.",
                                            dom_class="wb-outbox-none"), dom_class="wb-outbox")
    counts = outbox.outbox_summary(url=url)
    cards = _cards([("pending deliveries", counts["pending"]), ("sent", counts["sent"]), ("failed", counts["failed"]),
                    ("not routed to a channel", counts["unrouted"]), ("misconfigured channels", counts["misconfigured"]),
                    ("alerts", counts["alerts"])], "wb-outbox-cards")
    frame = outbox.alerts_frame(url=url, limit=limit)
    keep = ["created", "severity", "kind", "subject", "status", "channels", "attempts", "error_kind", "last_error",
            "recipients", "message"]
    body = (table_html(frame[keep], dom_class="wb-outbox-table", max_rows=limit) if len(frame)
            else note("No alert recorded yet.", dom_class="wb-outbox-empty"))
    problems = [note(f"Configuration error on channel {p.channel} since {str(p.since)[:16]}: {p.error}. Not retried: "
                     f"fix the channel, then run workbench alerts retry --channel {p.channel}.",
                     dom_class="wb-outbox-problem") for p in outbox.channel_problems(url=url).itertuples(index=False)]
    return section("Alert outbox (sent and pending)", *problems, cards, body, dom_class="wb-outbox")


# ---------------------------------------------------------------- page
def _empty() -> widgets.HTML:
    box = widgets.HTML(  # the ledger is not named: viewers never see the server's paths or URLs
        f'<div class="wb-header"><h2>{_TITLE}</h2></div><div class="wb-empty"><b>No results yet.</b> No paper account '
        "in the ledger. Run <code>make run</code> to create a demo account with a "
        "year's track record, or <code>workbench paper start NAME --strategy ma_crossover --symbols SPX</code> then "
        "<code>workbench paper replay NAME --from 2018-01-02 --to 2018-12-31</code>, and reload this page.</div>")
    box.add_class("wb-empty-box")
    return box


def paper_trading(*, account: str | None = None, pipeline: str = "daily", runs_dir: str | os.PathLike | None = None,
                  url: str | None = None) -> widgets.Widget:
    """The paper-trading page: every account, then one account in detail, then the alert outbox.

    Parameters
    ----------
    account : str, optional
        Account shown first (default: the first account stepped by ``pipeline``, else the first).
    pipeline : str
        Pipeline whose accounts come first.
    runs_dir : path, optional
        Folder of the pipeline's runs (for the provenance line).
    url : str, optional
        Ledger database URL (default :func:`research.paper.db.default_url`).
    """
    url = ledger_url(url)
    accounts = accounts_frame(url) if url else pd.DataFrame()
    if accounts.empty:
        return page_root([_empty()], dom_id="paper")
    names = list(accounts["account"])
    ours = [n for n, p in zip(names, accounts["pipeline"], strict=True) if p == pipeline]
    first = account if account in names else (ours or names)[0]
    header = widgets.HTML()
    header.add_class("wb-header-box")
    detail = widgets.VBox()
    choose = dropdown(names, description="Account", dom_class="wb-paper-account", value=first)

    def show(name: str) -> None:
        views: list[AccountView] = []

        def build() -> widgets.Widget:
            views.append(load_account(name, url=url, runs_dir=runs_dir))
            return widgets.VBox(_account_panels(views[0], url))

        detail.children = [guard(f"Account {name}", build)]  # a failure shows a message, never a traceback
        header.value = _header(views[0]) if views else f'<div class="wb-header"><h2>{_TITLE}</h2></div>'

    on_change(choose, lambda ch: show(ch["new"]), names="value")
    show(first)
    listing = section("Accounts", table_html(accounts, dom_class="wb-paper-accounts-table",
                                             formats={"initial cash": ",.2f", "equity": ",.2f"},
                                             labels={"sessions": "Sessions recorded"}), dom_class="wb-paper-accounts")
    return page_root([header, listing, choose, detail, guard("Alert outbox", lambda: outbox_panel(url))], dom_id="paper")
