"""What a backtest produced (:class:`BacktestResult`), and how a vectorbt portfolio and the fill
plan become one (:func:`assemble`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["BacktestResult", "assemble", "trades_frame", "orders_frame"]


@dataclass
class BacktestResult:
    """Everything one backtest produced.

    Attributes
    ----------
    equity : DataFrame
        Book value at each bar's close (one column per book: a symbol, or ``"portfolio"``).
    returns : DataFrame
        Decimal per-bar returns of each book (the first bar measured from ``init_cash``).
    positions : DataFrame
        Shares held after each bar per symbol (negative = short), plus ``cash`` (all books).
    weights : DataFrame
        Value of each symbol's holding over its book's equity, after each bar.
    trades : DataFrame
        One row per trade: ``book, symbol, direction, entry_time, exit_time, size,
        entry_price, exit_price, entry_fees, exit_fees, pnl, return, status, exit_reason``;
        a trade still open at the end has ``status="open"`` and is valued at the last close.
    orders : DataFrame
        One row per fill: ``timestamp, book, symbol, side, size, price, fees, reason``.
    stats : DataFrame
        One row per book, the columns of :func:`research.risk.metrics.summary`.
    params : dict
        What ran: strategy, parameters, sizing, risk rules, costs, timing, periods per year.
    timing : str
        The execution timing used.
    excluded : list of str
        Symbols left out because they had no prices.
    portfolio : vectorbt.Portfolio
        The underlying vectorbt portfolio (for its own analytics).
    """

    equity: pd.DataFrame
    returns: pd.DataFrame
    positions: pd.DataFrame
    weights: pd.DataFrame
    trades: pd.DataFrame
    orders: pd.DataFrame
    stats: pd.DataFrame
    params: dict[str, Any]
    timing: str
    excluded: list[str] = field(default_factory=list)
    portfolio: Any = None

    @property
    def books(self) -> list[str]:
        """Names of the books (symbols, or ``["portfolio"]`` with shared cash)."""
        return list(self.stats.index)

    def summary(self, book: str | None = None) -> pd.Series:
        """The risk summary of one book (the only one when ``book`` is omitted)."""
        if book is None:
            if len(self.stats) != 1:
                raise ValueError(f"several books {self.books}: name one, e.g. summary({self.books[0]!r})")
            book = self.books[0]
        if book not in self.stats.index:
            raise KeyError(f"no book {book!r}; books are {self.books}")
        out = self.stats.loc[book].astype("float64").rename(book)
        out.attrs = {"nan_reasons": dict(self.stats.attrs.get("nan_reasons", {}).get(book, {}))}
        return out


def _frame(x: pd.Series | pd.DataFrame, name: str) -> pd.DataFrame:
    return x.to_frame(name=name) if isinstance(x, pd.Series) else x


def trades_frame(pf, index: pd.Index, symbols: Sequence[str], books: Sequence[str], exit_reason: np.ndarray,
                 reasons: Sequence[str]) -> pd.DataFrame:
    """One row per (exit) trade with times, prices, pnl, status and why it closed."""
    rec = pf.trades.records
    cols = rec["col"]
    closed = rec["status"] == 1
    exit_idx = rec["exit_idx"]
    why = [reasons[exit_reason[exit_idx[k], cols[k]]] or "rebalance" if closed[k] else "open"
           for k in range(len(rec))]
    exit_time = pd.Series(index[np.where(closed, exit_idx, 0)]).where(closed)
    return pd.DataFrame({
        "book": [books[c] for c in cols],
        "symbol": [symbols[c] for c in cols],
        "direction": np.where(rec["direction"] == 0, "long", "short"),
        "entry_time": index[rec["entry_idx"]],
        "exit_time": exit_time.to_numpy() if len(rec) else index[:0],
        "size": rec["size"],
        "entry_price": rec["entry_price"],
        "exit_price": np.where(closed, rec["exit_price"], np.nan),
        "entry_fees": rec["entry_fees"],
        "exit_fees": rec["exit_fees"],
        "pnl": rec["pnl"],
        "return": rec["return"],
        "status": np.where(closed, "closed", "open"),
        "exit_reason": why,
    })


def orders_frame(pf, index: pd.Index, symbols: Sequence[str], books: Sequence[str], reason: np.ndarray,
                 reasons: Sequence[str]) -> pd.DataFrame:
    """One row per fill: timestamp, book, symbol, side, size, price (slippage included), fees, reason."""
    rec = pf.orders.records
    idx, cols = rec["idx"], rec["col"]
    why = [reasons[reason[i, c]] or "rebalance" for i, c in zip(idx, cols, strict=True)]
    return pd.DataFrame({
        "timestamp": index[idx],
        "book": [books[c] for c in cols],
        "symbol": [symbols[c] for c in cols],
        "side": np.where(rec["side"] == 0, "buy", "sell"),
        "size": rec["size"],
        "price": rec["price"],
        "fees": rec["fees"],
        "reason": why,
    })


def _benchmark(benchmark: pd.Series | str | None, close: pd.DataFrame) -> pd.Series | None:
    if benchmark is None:
        return None
    if isinstance(benchmark, str):
        if benchmark != "hold":
            raise ValueError(f"benchmark must be a Series of returns or 'hold', got {benchmark!r}")
        return close.pct_change(fill_method=None).mean(axis=1).rename("hold")
    if not isinstance(benchmark, pd.Series):
        raise TypeError(f"benchmark must be a Series of returns or 'hold', not {type(benchmark).__name__}")
    return benchmark


def assemble(pf, plan, fields: dict[str, pd.DataFrame], record: dict[str, Any], *, benchmark, shared: bool,
             summary: Callable[..., pd.Series], reasons: Sequence[str], excluded: list[str]):
    """Build the result: equity, returns, positions, weights, trades, orders and stats per book."""
    close = fields["close"]
    index = close.index
    symbols = [str(c) for c in close.columns]
    books = ["portfolio"] * len(symbols) if shared else symbols
    equity = _frame(pf.value(), "portfolio")
    returns = _frame(pf.returns(), "portfolio")
    equity.columns = returns.columns = ["portfolio"] if shared else symbols
    assets = pf.assets()
    cash = pf.cash()
    positions = pd.DataFrame(np.asarray(assets, dtype=float).reshape(len(index), -1), index=index, columns=symbols)
    positions["cash"] = np.asarray(cash, dtype=float).reshape(len(index), -1).sum(axis=1)
    value_col = pf.asset_value(group_by=False) if shared else pf.asset_value()
    book_value = np.repeat(equity.to_numpy(), len(symbols), axis=1) if shared else equity.to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.asarray(value_col, dtype=float).reshape(len(index), -1) / book_value
    weights = pd.DataFrame(np.nan_to_num(w, nan=0.0, posinf=0.0, neginf=0.0), index=index, columns=symbols)
    trades = trades_frame(pf, index, symbols, books, plan.reason, reasons)
    orders = orders_frame(pf, index, symbols, books, plan.reason, reasons)
    bench = _benchmark(benchmark, close)
    rows, nan_reasons = {}, {}
    for book in equity.columns:
        cols = symbols if shared else [book]
        # A book lives from its first to its last priced bar: bars before a listing or after
        # the data ends are not periods of its life.
        live = close[cols].notna().any(axis=1).to_numpy()
        life = slice(int(live.argmax()), len(live) - int(live[::-1].argmax())) if live.any() else slice(0, 0)
        s = summary(returns[book].iloc[life], benchmark=bench, periods_per_year=record["periods_per_year"],
                    trades=trades.loc[trades["book"] == book, ["pnl", "return"]], positions=weights[cols].iloc[life])
        rows[book] = s
        nan_reasons[book] = s.attrs.get("nan_reasons", {})
    stats = pd.DataFrame(rows).T
    stats.index.name = "book"
    stats.attrs = {"nan_reasons": nan_reasons, "periods_per_year": record["periods_per_year"]}
    return BacktestResult(
        equity=equity, returns=returns, positions=positions, weights=weights, trades=trades, orders=orders,
        stats=stats, params=record, timing=record["timing"], excluded=excluded, portfolio=pf,
    )
