"""The performance monitor: what a paper account earned, and how it compares with the backtest.

:func:`performance` reads the ledger: realised and unrealised P&L (average cost), returns,
win rate and profit factor of round trips (flat to flat, fees included), max drawdown,
exposure, turnover and costs paid (fees plus slippage against the quote). The ratios come from
:mod:`research.risk.metrics`.

:func:`reconcile` runs :func:`research.backtest.backtest` on the same strategy, parameters,
symbols, shared cash, costs and period, and reports the returns correlation, the tracking
error (annualised from the account's calendar), the difference in total return, the largest
equity difference, and one row per fill of either book with the cause of any difference:
``fill price``, ``fees``, ``size``, ``stop`` (one book stopped out, the other not), ``missed
bar`` (the backtest filled, the account did not) or ``extra fill``.

Conventions: the account's equity curve is rebuilt from its fills and cash flows, valued at
each session's close (the last valid close through gaps), exactly as the engine values its
book. The first session of an account only decides, so the backtest starts at the next bar;
the account's first return is measured from its initial cash, as the backtest's is.

:func:`drift_alerts` turns a rolling tracking error that leaves its band into alert records
(dicts with a stable ``id``) for the alert outbox.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from research.paper import book
from research.paper.trading import (
    account_periods_per_year,
    load_fields,
    risk_rules,
    stale_account_symbols,
    stale_bars,
)
from research.risk import metrics

__all__ = ["ledger_equity", "round_trips", "performance", "Reconciliation", "reconcile", "drift_alerts", "report",
           "DRIFT_WINDOW", "DRIFT_BAND"]

DRIFT_WINDOW = 20
"""Sessions in the rolling tracking error of the drift check."""
DRIFT_BAND = 0.01
"""Largest annualised rolling tracking error (1%) before a drift alert fires."""
_REL = 1e-9


def _fields(account: book.Account, fields, url) -> Mapping[str, pd.DataFrame]:
    if fields is not None:
        return fields
    last = book.last_session(account.name, url=url)
    return load_fields(account, end=last)


def ledger_equity(name: str, *, fields: Mapping[str, pd.DataFrame] | None = None,
                 url: str | None = None) -> pd.DataFrame:
    """Per session: ``cash``, each symbol's held value, and ``equity``, rebuilt from the ledger.

    Positions are the sum of fills up to each session's bar; cash is the initial cash plus
    flows minus fees minus net purchases; holdings are valued at the session's close.
    """
    account = book.get_account(name, url=url)
    sess = book.sessions(name, url=url)
    idx = pd.DatetimeIndex(sess["as_of"], name="as_of")
    cols = list(account.symbols)
    if sess.empty:
        return pd.DataFrame(columns=["cash", *cols, "equity"], index=idx, dtype="float64")
    close = _fields(account, fields, url)["close"][cols].ffill().reindex(idx, method="ffill")
    f = book.fills(name, url=url)
    signed = f["qty"].where(f["side"] == "buy", -f["qty"]) if len(f) else pd.Series(dtype="float64")
    qty = _cumulative(pd.DataFrame({"t": f.get("timestamp"), "s": f.get("symbol"), "v": signed}), idx, cols)
    flows = book.cash_flows(name, url=url)
    trade_cash = (-signed * f["price"] - f["fees"]) if len(f) else pd.Series(dtype="float64")
    cash_t = pd.concat([pd.DataFrame({"t": f.get("timestamp"), "s": "cash", "v": trade_cash}),
                        pd.DataFrame({"t": flows["timestamp"], "s": "cash", "v": flows["amount"]})])
    cash = account.initial_cash + _cumulative(cash_t, idx, ["cash"])["cash"]
    values = (qty * close.fillna(0.0)).where(qty != 0, 0.0)
    out = values.copy()
    out.insert(0, "cash", cash)
    out["equity"] = cash + values.sum(axis=1)
    return out


def _cumulative(rows: pd.DataFrame, idx: pd.DatetimeIndex, cols: list[str]) -> pd.DataFrame:
    """Running sums of ``v`` per ``s`` up to each timestamp of ``idx``."""
    rows = rows.dropna(subset=["t"])
    if rows.empty:
        return pd.DataFrame(0.0, index=idx, columns=cols)
    wide = rows.pivot_table(index="t", columns="s", values="v", aggfunc="sum").reindex(columns=cols).fillna(0.0)
    pos = idx.searchsorted(wide.index, side="left")
    keep = pos < len(idx)  # rows after the last session (an import waiting for its date) are not in the curve
    per_session = wide[keep].groupby(pos[keep]).sum()
    return per_session.reindex(range(len(idx)), fill_value=0.0).cumsum().set_axis(idx)


def round_trips(fills: pd.DataFrame, last_close: Mapping[str, float] | None = None) -> tuple[pd.DataFrame, dict]:
    """Round trips (flat to flat) with their P&L, and per-symbol realised/unrealised P&L.

    Returns
    -------
    trades : DataFrame
        ``symbol, entry_time, exit_time, pnl, status`` (``open`` trades valued at ``last_close``).
    pnl : dict
        ``realised`` and ``unrealised`` totals (average-cost method, fees in realised P&L).
    """
    trades, realised, unrealised = [], 0.0, 0.0
    for sym, g in fills.groupby("symbol", sort=True):
        pos, avg, trade_pnl, entry = 0.0, 0.0, 0.0, None
        for r in g.itertuples():
            q = r.qty if r.side == "buy" else -r.qty
            if pos == 0:
                entry, trade_pnl = r.timestamp, 0.0
            trade_pnl -= r.fees
            realised -= r.fees
            if pos == 0 or np.sign(q) == np.sign(pos):
                avg = (avg * abs(pos) + r.price * abs(q)) / (abs(pos) + abs(q))
                pos += q
                continue
            closed = min(abs(q), abs(pos))
            gain = closed * (r.price - avg) * np.sign(pos)
            realised, trade_pnl = realised + gain, trade_pnl + gain
            pos += q
            if abs(pos) <= 1e-9 * max(1.0, abs(q)):
                trades.append({"symbol": sym, "entry_time": entry, "exit_time": r.timestamp, "pnl": trade_pnl,
                               "status": "closed"})
                pos, avg = 0.0, 0.0
            elif np.sign(pos) == np.sign(q):  # reversed through zero
                avg, entry = r.price, r.timestamp
        if pos != 0:
            px = float((last_close or {}).get(sym, np.nan))
            open_pnl = pos * (px - avg) if np.isfinite(px) else 0.0
            unrealised += open_pnl
            trades.append({"symbol": sym, "entry_time": entry, "exit_time": pd.NaT, "pnl": trade_pnl + open_pnl,
                           "status": "open"})
    cols = ["symbol", "entry_time", "exit_time", "pnl", "status"]
    return pd.DataFrame(trades, columns=cols), {"realised": realised, "unrealised": unrealised}


def _returns(curve: pd.DataFrame, initial_cash: float) -> pd.Series:
    eq = curve["equity"].iloc[1:]
    prev = curve["equity"].shift(1).iloc[1:]
    return (eq / prev - 1.0).rename("paper") if len(eq) else pd.Series(dtype="float64", name="paper")


def performance(name: str, *, fields: Mapping[str, pd.DataFrame] | None = None,
                url: str | None = None) -> dict[str, Any]:
    """Headline figures of an account (keys carry units, e.g. ``Return [%]``)."""
    account = book.get_account(name, url=url)
    fields = _fields(account, fields, url)
    curve = ledger_equity(name, fields=fields, url=url)
    f = book.fills(name, url=url)
    close = curve.index[-1] if len(curve) else None
    last = fields["close"].ffill().loc[:close].iloc[-1] if close is not None else pd.Series(dtype="float64")
    trades, pnl = round_trips(f, last.to_dict())
    closed = trades[trades["status"] == "closed"]
    r = _returns(curve, account.initial_cash)
    ppy = account_periods_per_year(account)
    held = curve.drop(columns=["equity"])
    final = float(curve["equity"].iloc[-1]) if len(curve) else account.initial_cash
    return {
        "Sessions": int(len(curve)),
        "Fills": int(len(f)),
        "Initial Cash": account.initial_cash,
        "Final Equity": final,
        "Return [%]": (final / account.initial_cash - 1.0) * 100.0,
        "Realised P&L": pnl["realised"],
        "Unrealised P&L": pnl["unrealised"],
        "Fees Paid": float(f["fees"].sum()) if len(f) else 0.0,
        "Slippage Paid": float((f["qty"] * (f["price"] - f["quote"]).abs()).sum()) if len(f) else 0.0,
        "# Trades": int(len(closed)),
        "Win Rate [%]": metrics.win_rate(closed) * 100.0 if len(closed) else float("nan"),
        "Profit Factor": metrics.profit_factor(closed) if len(closed) else float("nan"),
        "Max. Drawdown [%]": metrics.max_drawdown(r) * 100.0 if len(r) else float("nan"),
        "Sharpe Ratio": metrics.sharpe_ratio(r, periods_per_year=ppy) if len(r) > 1 else float("nan"),
        "Exposure [%]": metrics.exposure(held) * 100.0 if len(held) else float("nan"),
        "Turnover (Ann.)": metrics.turnover(held, periods_per_year=ppy) if len(held) else float("nan"),
    }


@dataclass
class Reconciliation:
    """The account against a backtest of the same strategy and period.

    Attributes
    ----------
    summary : dict
        ``returns_correlation``, ``tracking_error`` (annualised), ``total_return_paper``,
        ``total_return_backtest``, ``total_return_difference`` (decimals), ``max_equity_difference``
        (currency), ``sessions`` compared, ``start`` and ``end``, ``differences`` (rows with a cause).
    curves : DataFrame
        ``paper`` and ``backtest`` equity per bar.
    returns : DataFrame
        ``paper`` and ``backtest`` returns per bar.
    trades : DataFrame
        One row per fill of either book: ``timestamp, symbol``, then ``side, qty, price, fees,
        reason`` of each (``_paper`` / ``_backtest``) and ``cause`` (empty when they agree).
    """

    summary: dict[str, Any]
    curves: pd.DataFrame
    returns: pd.DataFrame
    trades: pd.DataFrame


def _backtest(account: book.Account, fields, start, end):
    from research.backtest import backtest

    return backtest(dict(fields), account.strategy, params=account.params, sizing=account.sizing,
                    sizing_params=account.sizing_params, risk=risk_rules(account), fees=account.fees,
                    slippage=account.slippage, init_cash=account.initial_cash, shared_cash=True,
                    whole_shares=account.whole_shares, rebalance=account.risk.get("rebalance"),
                    max_position=account.risk.get("max_position"), max_gross=account.risk.get("max_gross"),
                    periods_per_year=account_periods_per_year(account), start=start, end=end, stale_bars=stale_bars(account))


def _differ(a: pd.Series, b: pd.Series) -> pd.Series:
    return ~np.isclose(a.astype(float), b.astype(float), rtol=_REL, atol=1e-9)


def _trade_table(paper: pd.DataFrame, bt: pd.DataFrame) -> pd.DataFrame:
    p = paper.rename(columns={"qty": "size"})[["timestamp", "symbol", "side", "size", "price", "fees", "reason"]]
    p = p.assign(reason=p["reason"].astype(str).str.split(";").str[0])  # "signal; clipped to cash" is a signal
    b = bt[["timestamp", "symbol", "side", "size", "price", "fees", "reason"]]
    p, b = (x.astype({"symbol": "object", "timestamp": "datetime64[ns, UTC]"}) for x in (p, b))  # either may be empty
    m = p.merge(b, on=["timestamp", "symbol"], how="outer", suffixes=("_paper", "_backtest"), indicator=True)
    m = m.rename(columns={"size_paper": "qty_paper", "size_backtest": "qty_backtest"})
    stops = ("stop_loss", "take_profit", "trailing_stop")
    cause = np.select(
        [m["_merge"] == "right_only", m["_merge"] == "left_only",
         m["reason_paper"].isin(stops) != m["reason_backtest"].isin(stops),
         _differ(m["price_paper"], m["price_backtest"]), _differ(m["qty_paper"], m["qty_backtest"]),
         _differ(m["fees_paper"], m["fees_backtest"])],
        ["missed bar", "extra fill", "stop", "fill price", "size", "fees"], default="")
    m["cause"] = cause
    return m.drop(columns="_merge").sort_values(["timestamp", "symbol"]).reset_index(drop=True)


def reconcile(name: str, *, fields: Mapping[str, pd.DataFrame] | None = None,
              url: str | None = None) -> Reconciliation | None:
    """Compare the account with a backtest of its period; None before two traded sessions."""
    account = book.get_account(name, url=url)
    fields = _fields(account, fields, url)
    curve = ledger_equity(name, fields=fields, url=url)
    if len(curve) < 3:
        return None
    start, end = curve.index[1], curve.index[-1]
    res = _backtest(account, fields, start, end)
    bt_eq = res.equity["portfolio"].rename("backtest")
    paper_eq = curve["equity"].iloc[1:].rename("paper")
    curves = pd.concat([paper_eq, bt_eq], axis=1)
    rets = pd.concat([_returns(curve, account.initial_cash), res.returns["portfolio"].rename("backtest")], axis=1)
    ppy = account_periods_per_year(account)
    trades = _trade_table(book.fills(name, url=url), res.orders)
    tr_p = float(curves["paper"].iloc[-1] / account.initial_cash - 1.0)
    tr_b = float(curves["backtest"].iloc[-1] / account.initial_cash - 1.0)
    both = rets.dropna()
    corr = float(both["paper"].corr(both["backtest"])) if len(both) > 2 else float("nan")
    summary = {
        "returns_correlation": corr,
        "tracking_error": metrics.tracking_error(both["paper"], both["backtest"], periods_per_year=ppy),
        "total_return_paper": tr_p,
        "total_return_backtest": tr_b,
        "total_return_difference": tr_p - tr_b,
        "max_equity_difference": float((curves["paper"] - curves["backtest"]).abs().max()),
        "sessions": int(len(both)),
        "start": str(start),
        "end": str(end),
        "fills_paper": int((trades["qty_paper"].notna()).sum()),
        "fills_backtest": int((trades["qty_backtest"].notna()).sum()),
        "differences": int((trades["cause"] != "").sum()),
    }
    return Reconciliation(summary, curves, rets, trades)


def drift_alerts(name: str, *, window: int = DRIFT_WINDOW, band: float = DRIFT_BAND,
                 fields: Mapping[str, pd.DataFrame] | None = None, url: str | None = None,
                 reconciliation: Reconciliation | None = None) -> list[dict[str, Any]]:
    """Alert records for each session where the rolling tracking error leaves ``[0, band]``.

    Parameters
    ----------
    name : str
        The account.
    window : int
        Sessions in the rolling window.
    band : float
        Largest acceptable annualised tracking error (0.01 = 1%).
    reconciliation : Reconciliation, optional
        Reuse a reconciliation already computed.

    Returns
    -------
    list of dict
        One per breach (the session where the tracking error crosses out of the band):
        ``id`` (stable: ``paper-drift:<account>:<as_of>``), ``kind="paper_drift"``, ``account``,
        ``as_of``, ``tracking_error``, ``band``, ``window``, ``severity``, ``message``.
    """
    if window < 2:
        raise ValueError(f"window must be at least 2 sessions, got {window}")
    if not band > 0:
        raise ValueError(f"band must be positive, got {band!r}")
    rec = reconciliation or reconcile(name, fields=fields, url=url)
    if rec is None:
        return []
    account = book.get_account(name, url=url)
    active = (rec.returns["paper"] - rec.returns["backtest"]).dropna()
    te = active.rolling(window, min_periods=window).std(ddof=1) * np.sqrt(account_periods_per_year(account))
    outside = te > band
    crossed = outside & ~outside.shift(1, fill_value=False)
    return [{
        "id": f"paper-drift:{name}:{ts:%Y-%m-%dT%H:%M}",
        "kind": "paper_drift",
        "account": name,
        "as_of": ts.isoformat(),
        "tracking_error": float(te[ts]),
        "band": float(band),
        "window": int(window),
        "severity": "warning",
        "message": (f"paper account {name} drifted from its backtest: rolling {window}-session tracking error "
                    f"{te[ts]:.2%} is above {band:.2%} as of {ts:%Y-%m-%d %H:%M}"),
    } for ts in te.index[crossed.to_numpy()]]


def stale_positions(name: str, *, fields: Mapping[str, pd.DataFrame] | None = None,
                    url: str | None = None) -> tuple[list[dict[str, Any]], float]:
    """Held positions in symbols whose data is stale at the last session, and their share of equity.

    Each is valued at its last close (the book keeps it there) and listed with that bar and its
    age: ``symbol, qty, last_bar, bars_behind, age_days, last_close, value``. The second value,
    ``stale_exposure``, is the sum of their absolute values over the session's equity (0 when
    nothing held is stale).
    """
    account = book.get_account(name, url=url)
    fields = _fields(account, fields, url)
    last = book.last_session(name, url=url)
    if last is None:
        return [], 0.0
    close = fields["close"].loc[:last]
    stale = stale_account_symbols(account, close, last)
    rows = []
    for sym, qty in book.positions(name, url=url).items():
        if qty == 0 or sym not in stale:
            continue
        px = float(close[sym].ffill().iloc[-1]) if sym in close and close[sym].notna().any() else float("nan")
        rows.append({"symbol": sym, "qty": float(qty), **stale[sym], "last_close": px, "value": float(qty) * px})
    equity = book.session_equity(name, url=url)
    total = float(equity.iloc[-1]) if len(equity) else account.initial_cash
    exposure = float(sum(abs(r["value"]) for r in rows) / total) if rows and total else 0.0
    return rows, exposure


def report(name: str, *, fields: Mapping[str, pd.DataFrame] | None = None, url: str | None = None,
           trades: int = 20) -> dict[str, Any]:
    """Everything ``workbench paper show --json`` prints: account, performance, reconciliation, fills."""
    account = book.get_account(name, url=url)
    fields = _fields(account, fields, url)
    perf = performance(name, fields=fields, url=url)
    rec = reconcile(name, fields=fields, url=url)
    f = book.fills(name, url=url)
    held = book.positions(name, url=url)
    diffs = rec.trades[rec.trades["cause"] != ""] if rec is not None else pd.DataFrame()
    stale, exposure = stale_positions(name, fields=fields, url=url)
    return {
        "account": account.to_dict(),
        "sessions": perf["Sessions"],
        "fills": perf["Fills"],
        "final_equity": perf["Final Equity"],
        "last_session": str(book.last_session(name, url=url)),
        "cash": book.cash(name, url=url),
        "positions": {s: q for s, q in held.items() if q != 0},
        "stale_positions": stale,
        "stale_exposure": exposure,
        "performance": perf,
        "reconciliation": rec.summary if rec is not None else {"returns_correlation": None, "tracking_error": None},
        "differences": diffs.head(trades).to_dict(orient="records"),
        "recent_fills": f.tail(trades).to_dict(orient="records"),
        "drift_alerts": drift_alerts(name, url=url, reconciliation=rec) if rec is not None else [],
        "checks": book.check(name, url=url, fields=fields, stale_bars=stale_bars(account)),
    }
