"""The backtest engine: strategies, sizing and risk rules executed through vectorbt.

Execution model
---------------
A direction decided at the close of bar ``t`` fills at the **open of bar t + 1**
(``timing="next_open"``, the default). Other timings are opt-in and recorded with the result:
``"next_close"`` (fill at the close of ``t + 1``) and ``"same_close"`` (fill at the close of
``t`` itself, only honest when the signal is known before that close; a warning says so).

* Orders are target weights of the book's equity valued at the fill price (vectorbt
  ``from_orders`` with ``size_type="targetpercent"``), bought at ``price * (1 + slippage)``,
  sold at ``price * (1 - slippage)``, paying ``fees`` on the traded value. A buy that the cash
  cannot cover is filled partially (``all_in`` spends all cash, fees included).
* An order is sent when a symbol's target weight changes (or on a ``rebalance`` bar); the
  weight is sampled when a position opens and held, not traded back to target as prices drift.
* A bar whose execution price is missing or not positive gets no order; the change waits for
  the next bar with a valid price. An asset with no prices at all is excluded with a warning
  (its NaNs never reach the book's totals).
* Stops and the drawdown halt follow :mod:`research.strategies.stops` (adverse fill when a bar
  reaches both stop and take-profit).
* Equity is valued at each bar's close (the last valid close through gaps).

Books
-----
By default every symbol is its own book with ``init_cash`` (results per symbol). With
``shared_cash=True`` all symbols share one book (``"portfolio"``): target weights are fractions
of the whole book, gross exposure is capped at 1 unless ``max_gross`` says otherwise (so
``all_in`` splits the book equally among open positions), sells are executed before buys.

Symbol order
------------
Results never depend on the order of the price columns. The symbols are simulated in name
order (sorted as strings): in a shared book, buys on the same bar are sequenced by estimated
order value with ties in that order, which decides who is filled first when cash runs short.
The result keeps the caller's column order for ``equity``, ``returns``, ``positions``,
``weights``, ``stats`` and ``params["symbols"]``; ``trades`` list each symbol's trades in name
order, ``orders`` are in execution order (by bar, then the book's call sequence), and
``portfolio`` (vectorbt's) has its columns in name order.

Example
-------
>>> prices = load_prices("SPX")
>>> res = backtest(prices, "ma_crossover", params={"fast": 20, "slow": 50}, fees=0.001)
>>> res.summary()["Sharpe Ratio"]                      # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from research.backtest.result import BacktestResult, assemble
from research.data import calendars
from research.data.calendars import infer_periods_per_year
from research.data.freshness import STALE_BARS, stale_frame
from research.risk.metrics import summary as risk_summary
from research.strategies.catalog import get_strategy
from research.strategies.signals import Signals
from research.strategies.sizing import apply_caps, position_magnitude
from research.strategies.stops import REASONS, RiskRules, RiskSchedule, plan_fills
from research.timeutil import to_naive_utc_index

__all__ = ["backtest", "BacktestResult", "TIMINGS", "as_fields", "infer_periods_per_year"]

TIMINGS: dict[str, tuple[int, str]] = {
    "next_open": (1, "open"),
    "next_close": (1, "close"),
    "same_close": (0, "close"),
}
_FIELDS = ("open", "high", "low", "close")

PriceInput = pd.DataFrame | pd.Series | Mapping[str, pd.DataFrame]
"""What :func:`as_fields` (and so :func:`backtest`) accepts as prices."""
RiskInput = RiskRules | RiskSchedule | Mapping[str, float] | None
"""What :func:`backtest` accepts as risk rules."""


# --------------------------------------------------------------------------- inputs

def as_fields(prices: PriceInput) -> dict[str, pd.DataFrame]:
    """Wide frames per field (``open, high, low, close``...) from any price input.

    Accepts one symbol's OHLCV frame (flat columns), a ``(field, symbol)`` MultiIndex frame
    from :func:`research.data.load_prices`, a wide close matrix, a close Series, or a mapping
    of field to wide frame.
    """
    if isinstance(prices, Mapping):
        out = {str(k): _frame(v) for k, v in prices.items()}
    elif isinstance(prices, pd.Series):
        out = {"close": prices.to_frame(name=prices.name if prices.name is not None else "asset")}
    elif isinstance(prices, pd.DataFrame) and isinstance(prices.columns, pd.MultiIndex):
        out = {str(f): prices[f] for f in prices.columns.get_level_values(0).unique()}
    elif isinstance(prices, pd.DataFrame) and "close" in prices.columns:
        name = prices.attrs.get("symbol") or "asset"
        out = {str(c): pd.DataFrame(prices[c].to_numpy().reshape(-1, 1), index=prices.index, columns=[name])
               for c in prices.columns}
    elif isinstance(prices, pd.DataFrame):
        out = {"close": prices}
    else:
        raise TypeError(f"prices must be a DataFrame, Series or mapping of frames, not {type(prices).__name__}")
    recorded = getattr(prices, "attrs", None)
    for frame in out.values() if recorded else ():  # what the prices record (their calendar) goes along
        if frame is not prices:
            frame.attrs = {**recorded, **frame.attrs}
    if "close" not in out:
        raise ValueError(f"prices need a 'close' field; got fields {sorted(out)}")
    close = out["close"]
    if not close.index.is_monotonic_increasing or close.index.has_duplicates:
        raise ValueError("prices must have a sorted index without duplicate timestamps")
    for name, frame in out.items():
        if not frame.index.equals(close.index) or not frame.columns.equals(close.columns):
            raise ValueError(
                f"{name} must have the same index and columns as close "
                f"(close: {close.shape[0]} rows x {close.shape[1]} columns; {name}: {frame.shape[0]} x {frame.shape[1]})"
            )
    return {k: v if all(d == np.float64 for d in v.dtypes.to_numpy()) else v.astype("float64") for k, v in out.items()}


def _frame(x: pd.DataFrame | pd.Series) -> pd.DataFrame:
    return x.to_frame() if isinstance(x, pd.Series) else x


def drop_empty(fields: dict[str, pd.DataFrame], exec_field: str, *,
               stacklevel: int = 3) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """``fields`` without the symbols that never price (all-NaN close or no positive ``exec_field``), and those symbols.

    Each excluded symbol is warned about, ``stacklevel`` frames up (the caller's caller by default).
    """
    close, px = fields["close"], fields[exec_field]
    mask = close.isna().all().to_numpy() | ~(px > 0).any().to_numpy()
    bad = [c for c, b in zip(close.columns, mask, strict=True) if b]
    for sym in bad:
        warnings.warn(f"{sym}: no valid prices; excluded from the backtest", stacklevel=stacklevel)
    if len(bad) == close.shape[1]:
        raise ValueError(f"no symbol has valid prices (excluded: {bad})")
    keep = [c for c in close.columns if c not in bad]
    return {k: v[keep] for k, v in fields.items()}, [str(b) for b in bad]


def resolve_signals(strategy: str | Signals, fields: dict[str, pd.DataFrame], params: Mapping[str, Any]) -> Signals:
    """The :class:`Signals` of ``strategy`` (a catalog name run on ``fields``, or signals given as they are)."""
    if isinstance(strategy, Signals):
        sig = strategy
    elif isinstance(strategy, str):
        sig = get_strategy(strategy).run(fields, **dict(params))
    else:
        raise TypeError(f"strategy must be a registered name or Signals, not {type(strategy).__name__}")
    close = fields["close"]
    d = sig.direction
    if d.shape[1] == 1 and close.shape[1] == 1 and d.columns[0] != close.columns[0]:
        d = d.set_axis(close.columns, axis=1)  # one symbol: match by position (e.g. a Series named "close")
    missing = [c for c in close.columns if c not in d.columns]
    if missing:
        raise ValueError(f"signals have no column for {missing} (signals columns: {list(d.columns)})")
    if not d.index.equals(close.index):
        if len(d.index.intersection(close.index)) == 0:
            raise ValueError(
                f"signals and prices share no timestamp (signals: {d.index.min()} to {d.index.max()}; "
                f"prices: {close.index.min()} to {close.index.max()})"
            )
        d = d.reindex(close.index).fillna(0.0)  # flat where the signals say nothing
    return Signals(d[list(close.columns)], name=sig.name, params=sig.params)


def rebalance_mask(index: pd.Index, rebalance: str | int | None) -> np.ndarray:
    """Per bar, whether the book rebalances to target: ``None`` never (only signal changes trade), "daily" every bar, "weekly" / "monthly" / "quarterly" the first bar of each period, an int every N bars."""
    n = len(index)
    if rebalance is None:
        return np.zeros(n, dtype=bool)
    if isinstance(rebalance, int | np.integer) and not isinstance(rebalance, bool):
        if rebalance < 1:
            raise ValueError(f"rebalance every N bars needs N >= 1, got {rebalance}")
        return (np.arange(n) % int(rebalance)) == 0
    periods = {"daily": None, "weekly": "W", "monthly": "M", "quarterly": "Q"}
    if rebalance not in periods:
        raise ValueError(f"rebalance must be None, an int, or one of {sorted(periods)}; got {rebalance!r}")
    if periods[rebalance] is None:
        return np.ones(n, dtype=bool)
    idx = to_naive_utc_index(index)
    p = idx.to_period(periods[rebalance])
    return np.r_[True, p[1:] != p[:-1]]


def bar_span(index: pd.Index, start: object, end: object) -> slice:
    """The slice of ``index`` from ``start`` to ``end``, both ends included (``None``: open)."""
    lo = 0 if start is None else int(index.searchsorted(_stamp(start, index), side="left"))
    hi = len(index) if end is None else int(index.searchsorted(_stamp(end, index), side="right"))
    if hi - lo < 2:
        raise ValueError(f"the range [{start}, {end}] holds {max(hi - lo, 0)} bars; need at least 2 "
                         f"(prices: {index[0]} to {index[-1]})")
    return slice(lo, hi)


def _stamp(value: object, index: pd.Index) -> object:
    if not isinstance(index, pd.DatetimeIndex):
        return value
    ts = pd.Timestamp(value)
    if index.tz is not None and ts.tzinfo is None:
        ts = ts.tz_localize(index.tz)
    return ts


# --------------------------------------------------------------------------- simulation

@dataclass
class Plan:
    """What the bar loop executes, one row per bar and one column per symbol.

    Attributes
    ----------
    held : ndarray
        Direction held after each bar (-1, 0, 1).
    fill : ndarray
        Fill price where the rules of :func:`~research.strategies.stops.plan_fills` fill; NaN elsewhere.
    reason : ndarray
        Index into :data:`research.strategies.stops.REASONS` of each such fill (0 where none).
    size : ndarray
        Target weight each order asks for; NaN where no order is sent.
    price : ndarray
        Fill price before slippage; NaN where the bar has no valid execution price.
    """

    held: np.ndarray
    fill: np.ndarray
    reason: np.ndarray
    size: np.ndarray
    price: np.ndarray


def build_plan(fields, dir_exec, mag_exec, exec_px, rules, fill_at_open, halt_from, rebalance, caps, shared,
               stale=None) -> Plan:
    """Held positions, fills, their reasons, sizes and prices for every bar: what the bar loop executes.

    ``stale`` (bool, per execution bar) marks symbols stale when decided: they get no target (so
    no share of the gross cap) and no order, and a held position in one is kept.
    """
    close = fields["close"].to_numpy()
    held, fill, reason = plan_fills(
        dir_exec, exec_px, open=fields.get("open", fields["close"]).to_numpy(),
        high=fields.get("high", fields["close"]).to_numpy(), low=fields.get("low", fields["close"]).to_numpy(),
        close=close, fill_at_open=fill_at_open, halt_from=halt_from,
        levels=rules.levels_on(fields["close"].index, fields["close"].columns),
    )
    prev = np.vstack([np.zeros((1, held.shape[1]), dtype=held.dtype), held[:-1]])
    key = (held != prev) | rebalance[:, None]
    mag = pd.DataFrame(np.where(key, mag_exec, np.nan)).ffill().fillna(0.0).to_numpy()
    w = held * mag
    if stale is not None:
        w = np.where(stale, 0.0, w)
    w = pd.DataFrame(w, index=fields["close"].index, columns=fields["close"].columns)
    max_position, max_gross = caps
    w = apply_caps(w, max_position=max_position, max_gross=max_gross if max_gross is not None else (1.0 if shared else None))
    w = w.to_numpy()
    valid = (np.isfinite(exec_px) & (exec_px > 0)) | np.isfinite(fill)
    executed = pd.DataFrame(np.where(valid, w, np.nan)).ffill().shift(1).fillna(0.0).to_numpy()
    send = valid & ((w != executed) | (rebalance[:, None] & (w != 0)) | np.isfinite(fill))
    if stale is not None:
        send &= ~stale
    size = np.where(send, w, np.nan)
    price = np.where(np.isfinite(fill), fill, np.where(valid, exec_px, np.nan))
    return Plan(held, fill, reason, size, price)


def _simulate(fields, plan: Plan, *, fees, slippage, init_cash, shared, whole_shares):
    import vectorbt as vbt

    close = fields["close"]
    kwargs: dict[str, Any] = {}
    if shared:
        kwargs.update(group_by=True, cash_sharing=True, call_seq="auto")
    return vbt.Portfolio.from_orders(
        close=close, size=plan.size, size_type="targetpercent", price=plan.price, fees=fees,
        slippage=slippage, init_cash=init_cash, direction="both", size_granularity=1.0 if whole_shares else np.nan,
        freq=None, **kwargs,
    )


def _halt_from(pf, shared: bool, max_dd: float, init_cash: float, columns) -> np.ndarray | None:
    value = pf.value()
    frame = value.to_frame() if isinstance(value, pd.Series) else value
    arr = frame.to_numpy()
    peak = np.maximum(np.fmax.accumulate(np.nan_to_num(arr, nan=-np.inf), axis=0), init_cash)
    hit = arr / peak - 1.0 <= -max_dd
    n = arr.shape[0]
    first = np.where(hit.any(axis=0), hit.argmax(axis=0) + 1, n + 1)
    if (first > n).all():
        return None
    return np.full(len(columns), first[0]) if shared else first


# --------------------------------------------------------------------------- public

def backtest(
    prices: PriceInput, strategy: str | Signals = "ma_crossover", *, params: Mapping[str, Any] | None = None,
    sizing: str = "all_in", sizing_params: Mapping[str, Any] | None = None, risk: RiskInput = None,
    fees: float = 0.0, slippage: float = 0.0, init_cash: float = 100_000.0, timing: str = "next_open",
    shared_cash: bool = False, rebalance: str | int | None = None, max_position: float | None = None,
    max_gross: float | None = None, whole_shares: bool = False, periods_per_year: float | None = None,
    benchmark: pd.Series | str | None = None, start: object = None, end: object = None, stale_bars: int | None = STALE_BARS,
) -> BacktestResult:
    """Run a strategy on one or many symbols and report equity, trades and risk.

    Parameters
    ----------
    prices : DataFrame, Series or mapping
        OHLCV of one symbol, ``load_prices([...])`` (field, symbol) columns, or a wide close
        matrix (then only the ``*_close`` timings work). See :func:`as_fields`.
    strategy : str or Signals
        A registered strategy name (:data:`research.strategies.STRATEGIES`) or ready signals
        (e.g. from :func:`research.strategies.prediction_signals`; bars they do not cover are flat).
    params : mapping, optional
        Strategy parameters (strings are converted, so CLI values work).
    sizing : str
        Sizer name (:data:`research.strategies.SIZERS`); ``sizing_params`` are its options.
    risk : RiskRules, RiskSchedule or mapping, optional
        Stop-loss, take-profit, trailing stop, max-drawdown halt (decimal fractions; stop levels per bar: a RiskSchedule).
    fees, slippage : float
        Proportional fee on traded value and adverse price slippage (0.001 = 0.1%).
    init_cash : float
        Starting cash of each book.
    timing : {"next_open", "next_close", "same_close"}
        When a close-of-``t`` decision fills (see the module docstring).
    shared_cash : bool
        One book for all symbols instead of one per symbol.
    rebalance : None, int, or {"daily", "weekly", "monthly", "quarterly"}
        Also trade held positions back to their (re-sampled) target weight on these bars.
    max_position, max_gross : float, optional
        Caps on ``|weight|`` per symbol and on the sum of ``|weight|`` per bar.
    whole_shares : bool
        Trade whole shares only.
    periods_per_year : float, optional
        Annualisation; by default the calendar the prices carry (``attrs``), else inferred from
        the index (:func:`research.data.calendars.periods_per_year`).
    benchmark : Series or "hold", optional
        Benchmark returns for beta/alpha; ``"hold"`` = equal-weight buy and hold of the symbols.
    start, end : timestamp, optional
        Trade only bars in ``[start, end]``; earlier bars still warm the strategy up (the
        decision at the close before ``start`` fills at ``start``). The book starts flat.
    stale_bars : int, optional
        A symbol whose last bar lags the deciding bar by more than this many bars of its calendar gets no target
        and no order; a position held in it is kept at its last price (:mod:`research.data.freshness`). ``None``: off.

    Returns
    -------
    BacktestResult
    """
    return _run(prices, strategy, _Options(
        params=params, sizing=sizing, sizing_params=sizing_params, risk=risk, fees=fees, slippage=slippage,
        init_cash=init_cash, timing=timing, shared_cash=shared_cash, rebalance=rebalance, max_position=max_position,
        max_gross=max_gross, whole_shares=whole_shares, periods_per_year=periods_per_year, benchmark=benchmark,
        start=start, end=end, stale_bars=stale_bars,
    ))


@dataclass(frozen=True, slots=True)
class _Options:
    """The options of one :func:`backtest` call, as the caller gave them."""

    params: Mapping[str, Any] | None
    sizing: str
    sizing_params: Mapping[str, Any] | None
    risk: RiskRules | RiskSchedule | Mapping[str, float] | None
    fees: float
    slippage: float
    init_cash: float
    timing: str
    shared_cash: bool
    rebalance: str | int | None
    max_position: float | None
    max_gross: float | None
    whole_shares: bool
    periods_per_year: float | None
    benchmark: pd.Series | str | None
    start: object
    end: object
    stale_bars: int | None


def _run(prices: PriceInput, strategy: str | Signals, o: _Options) -> BacktestResult:
    """The body of :func:`backtest`: check, decide in name order, simulate, report in the caller's order."""
    shift, exec_field = _check_options(o.timing, fees=o.fees, slippage=o.slippage, init_cash=o.init_cash)
    rules = o.risk if isinstance(o.risk, RiskRules | RiskSchedule) else RiskRules(**dict(o.risk or {}))
    fields, excluded, given = _fields_in_name_order(prices, exec_field, o.timing)
    ppy = calendars.periods_per_year(fields["close"], override=o.periods_per_year or None)
    sig = resolve_signals(strategy, fields, o.params or {})
    sp = sizing_options(o.sizing, o.sizing_params, ppy)
    magnitude = position_magnitude(sig, fields, o.sizing, sp)
    fields, dir_exec, mag_exec, stale = _execution_window(fields, sig.direction, magnitude, shift=shift, o=o)
    plan, pf = _plan_and_simulate(fields, dir_exec, mag_exec, stale, rules, exec_field=exec_field, o=o)
    record = _record(o, sig, sp, rules, ppy, fields, given, excluded)
    result = assemble(pf, plan, fields, record, benchmark=o.benchmark, shared=o.shared_cash,
                      summary=risk_summary, reasons=REASONS, excluded=excluded)
    return _in_given_order(result, given, o.shared_cash)


def _check_options(timing: str, *, fees: float, slippage: float, init_cash: float) -> tuple[int, str]:
    """The bar shift and execution field of ``timing``, after checking it and the costs (warns on ``same_close``)."""
    if timing not in TIMINGS:
        raise ValueError(f"timing must be one of {sorted(TIMINGS)}, got {timing!r}")
    if timing == "same_close":
        warnings.warn("timing='same_close' fills at the close that produced the signal: only valid if "
                      "the signal is known before that close", stacklevel=4)
    for name, value in (("fees", fees), ("slippage", slippage)):
        if not (np.isfinite(value) and 0 <= value < 1):
            raise ValueError(f"{name} must be a fraction in [0, 1), got {value!r}")
    if not init_cash > 0:
        raise ValueError(f"init_cash must be positive, got {init_cash!r}")
    return TIMINGS[timing]


def _fields_in_name_order(prices: PriceInput, exec_field: str, timing: str) -> tuple[dict[str, pd.DataFrame], list[str], list[str]]:
    """The priced symbols' fields in name order, the symbols excluded, and the caller's column order."""
    fields = as_fields(prices)
    if exec_field not in fields:
        raise ValueError(f"timing {timing!r} needs {exec_field!r} prices; got fields {sorted(fields)} "
                         f"(use timing='next_close' with close-only data)")
    fields, excluded = drop_empty(fields, exec_field, stacklevel=5)
    given = [str(c) for c in fields["close"].columns]
    fields = {k: v[sorted(v.columns, key=str)] for k, v in fields.items()}  # see "Symbol order"
    return fields, excluded, given


def sizing_options(sizing: str, sizing_params: Mapping[str, Any] | None, periods_per_year: float) -> dict[str, Any]:
    """The sizer's options as given; ``vol_target`` annualises with the prices' ``periods_per_year`` unless told."""
    sp = dict(sizing_params or {})
    if sizing == "vol_target":
        sp.setdefault("periods_per_year", periods_per_year)
    return sp


def _execution_window(fields: dict[str, pd.DataFrame], direction: pd.DataFrame, magnitude: pd.DataFrame, *,
                      shift: int, o: _Options) -> tuple[dict[str, pd.DataFrame], np.ndarray, np.ndarray, np.ndarray]:
    """The traded bars ``[start, end]``: their fields, and each decision (direction, magnitude, staleness) moved to the bar it fills on."""
    rows = bar_span(fields["close"].index, o.start, o.end)
    stale = stale_frame(fields["close"], stale_bars=o.stale_bars).shift(shift, fill_value=False).to_numpy()[rows]
    dir_exec = direction.shift(shift).fillna(0.0).to_numpy().astype(np.int8)[rows]
    mag_exec = magnitude.shift(shift).fillna(0.0).to_numpy()[rows]
    return {k: v.iloc[rows] for k, v in fields.items()}, dir_exec, mag_exec, stale


def _plan_and_simulate(fields: dict[str, pd.DataFrame], dir_exec: np.ndarray, mag_exec: np.ndarray,
                       stale: np.ndarray, rules: RiskRules, *, exec_field: str, o: _Options) -> tuple[Plan, Any]:
    """The order plan and vectorbt's portfolio of it; planned and simulated again from the bar the drawdown halt fires."""
    exec_px = fields[exec_field].to_numpy()
    rb = rebalance_mask(fields["close"].index, o.rebalance)
    caps = (o.max_position, o.max_gross)
    args = (fields, dir_exec, mag_exec, exec_px, rules, exec_field == "open")
    plan = build_plan(*args, None, rb, caps, o.shared_cash, stale)
    sim = {"fees": o.fees, "slippage": o.slippage, "init_cash": o.init_cash, "shared": o.shared_cash,
           "whole_shares": o.whole_shares}
    pf = _simulate(fields, plan, **sim)
    if rules.max_drawdown is not None:
        halt = _halt_from(pf, o.shared_cash, rules.max_drawdown, o.init_cash, fields["close"].columns)
        if halt is not None:
            plan = build_plan(*args, halt, rb, caps, o.shared_cash, stale)
            pf = _simulate(fields, plan, **sim)
    return plan, pf


def _record(o: _Options, sig: Signals, sizing_params: dict[str, Any], rules: RiskRules, ppy: float,
            fields: dict[str, pd.DataFrame], given: list[str], excluded: list[str]) -> dict[str, Any]:
    """What the result records of its run (``params``): strategy, options as resolved, symbols, traded range."""
    return {
        "strategy": sig.name, "params": dict(sig.params), "sizing": o.sizing, "sizing_params": sizing_params,
        "risk": rules.to_dict(), "fees": o.fees, "slippage": o.slippage, "init_cash": o.init_cash,
        "timing": o.timing, "shared_cash": o.shared_cash, "rebalance": o.rebalance, "max_position": o.max_position,
        "max_gross": o.max_gross, "whole_shares": o.whole_shares, "periods_per_year": ppy, "stale_bars": o.stale_bars,
        "symbols": given, "excluded": excluded,
        "start": str(fields["close"].index[0]), "end": str(fields["close"].index[-1]),
    }


def _in_given_order(result: BacktestResult, given: list[str], shared: bool) -> BacktestResult:
    """Per-symbol columns back in the caller's order (the simulation ran in name order)."""
    result.positions = result.positions[[*given, "cash"]]
    result.weights = result.weights[given]
    if not shared:
        result.equity, result.returns = result.equity[given], result.returns[given]
        attrs = result.stats.attrs
        result.stats = result.stats.loc[given]
        result.stats.attrs = attrs
    return result
