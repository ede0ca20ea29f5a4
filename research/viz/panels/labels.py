"""How recorded parameter sets and metrics are spelled on the pages (shared by the explorer's panels)."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping

import pandas as pd

__all__ = ["canonical_params", "params_label", "curve_index", "metric_text", "METRIC_GROUPS", "METRIC_LABELS", "PROBABILITY_KEYS",
           "grouped_metrics", "TRADE_FORMATS", "TRADE_LABELS"]

#: Trade columns shown with their own precision (prices and P&L in the account's currency units).
TRADE_FORMATS = {"entry_price": ",.2f", "exit_price": ",.2f", "pnl": ",.2f", "return": "+.2%"}
#: Trade column headings (the rest are labelled by :func:`research.viz.panels.tables.column_label`).
TRADE_LABELS = {"entry_time": "Entry", "exit_time": "Exit", "pnl": "P&L", "return": "Return"}


def canonical_params(params: object) -> str:
    """One spelling per parameter set: JSON with sorted keys (``'{}'`` for none)."""
    if isinstance(params, str):
        try:
            params = json.loads(params) if params.strip() else {}
        except json.JSONDecodeError:
            return params
    if params is None or (isinstance(params, float) and pd.isna(params)):
        params = {}
    return json.dumps(params, sort_keys=True)


def params_label(params: str) -> str:
    """``'{"fast": 10, "slow": 50}'`` -> ``'fast=10, slow=50'``."""
    try:
        value = json.loads(params)
    except (TypeError, json.JSONDecodeError):
        return str(params)
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "default"
    return str(value)


def curve_index(equity: pd.DataFrame) -> dict[tuple[str, str, str | None], str]:
    out: dict[tuple[str, str, str | None], str] = {}
    for col in equity.columns:
        parts = str(col).split("|", 2)
        if len(parts) >= 2:
            out[(parts[0], parts[1], canonical_params(parts[2]) if len(parts) == 3 else None)] = col
    return out


def metric_text(key: str, value: object) -> str:
    """A metric in its unit: percentages with 2 decimals and %, counts whole, ratios 2 decimals."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        from research.viz.panels.layout import cell_text

        return cell_text(value)  # yes/no, dates, ISO timestamps as dates
    if key in PROBABILITY_KEYS:  # a probability in [0, 1], shown as one: "62%", not "0.62"
        return f"{100 * value:.0f}%"
    if key.endswith("[%]"):
        return f"{value:,.2f}%"
    if key.startswith("#") or key.endswith(("[bars]", "[days]")):
        return f"{value:,.0f}"
    if key.endswith(("[$]", "[USD]")) or "Equity" in key or "Value" in key:
        return f"{value:,.2f}"
    return f"{value:,.2f}" if abs(value) < 1e5 else f"{value:,.0f}"


#: Metrics that are probabilities recorded in [0, 1] (shown as percentages).
PROBABILITY_KEYS = frozenset({"Deflated Sharpe Ratio", "Probabilistic Sharpe Ratio", "deflated_sharpe", "pbo"})

#: The metrics a summary table shows, by group, in this order (the rest stay in its CSV download).
METRIC_GROUPS = (
    ("Portfolio", ("Strategy", "Book", "Start", "End", "# Periods")),
    ("Returns", ("Total Return [%]", "Return (Ann.) [%]", "Sharpe Ratio", "Sortino Ratio", "Calmar Ratio")),
    ("Risk", ("Volatility (Ann.) [%]", "VaR 95% (hist.) [%]", "CVaR 95% (hist.) [%]", "VaR 99% (hist.) [%]",
              "CVaR 99% (hist.) [%]", "Skew", "Kurtosis (excess)")),
    ("Drawdown", ("Max. Drawdown [%]", "Current Drawdown [%]", "Max. Drawdown Duration [bars]")),
    ("Benchmark", ("Benchmark", "Benchmark Return (Ann.) [%]", "Beta", "Alpha (Ann.) [%]", "Tracking Error (Ann.) [%]",
                   "Information Ratio")),
    ("Trading", ("# Trades", "Win Rate [%]", "Profit Factor", "Exposure Time [%]", "Turnover (Ann.) [%]")),
)
#: How those metrics are named on a page (the unit goes with the value: "12.35%", "2,391").
METRIC_LABELS = {
    "Start": "First bar", "End": "Last bar", "# Periods": "Bars",
    "Total Return [%]": "Total return", "Return (Ann.) [%]": "Annual return", "Sharpe Ratio": "Sharpe ratio",
    "Sortino Ratio": "Sortino ratio", "Calmar Ratio": "Calmar ratio", "Volatility (Ann.) [%]": "Annual volatility",
    "VaR 95% (hist.) [%]": "VaR 95% per bar (historical)", "CVaR 95% (hist.) [%]": "CVaR 95% per bar (historical)",
    "VaR 99% (hist.) [%]": "VaR 99% per bar (historical)", "CVaR 99% (hist.) [%]": "CVaR 99% per bar (historical)",
    "Kurtosis (excess)": "Excess kurtosis", "Max. Drawdown [%]": "Max. drawdown",
    "Current Drawdown [%]": "Current drawdown", "Max. Drawdown Duration [bars]": "Longest drawdown (bars)",
    "Benchmark Return (Ann.) [%]": "Benchmark annual return", "Alpha (Ann.) [%]": "Annual alpha",
    "Tracking Error (Ann.) [%]": "Tracking error (ann.)", "Information Ratio": "Information ratio",
    "# Trades": "Trades", "Win Rate [%]": "Win rate", "Profit Factor": "Profit factor",
    "Exposure Time [%]": "Time in the market", "Turnover (Ann.) [%]": "Annual turnover",
}


def _absent(value: object) -> bool:
    return value is None or value == "" or (isinstance(value, float) and pd.isna(value))


def grouped_metrics(values: Mapping[str, object], *, skip: Collection[str] = ()) -> pd.DataFrame:
    """A short summary table of metrics (``"Sharpe Ratio"``, ``"Max. Drawdown [%]"``...): columns
    group (named on its first row only), metric and value, in the order of :data:`METRIC_GROUPS`
    with :data:`METRIC_LABELS` and :func:`metric_text` (percentages with %, counts whole, dates as
    dates). Metrics without a value are counted in one last row; metrics outside the groups (and
    ``skip``) are left out: the table's CSV download holds them all."""
    rows, missing = [], []
    for group, keys in METRIC_GROUPS:
        first = True
        for key in keys:
            if key in skip or key not in values:
                continue
            if _absent(values[key]):
                missing.append(key)
                continue
            rows.append((group if first else "", METRIC_LABELS.get(key, key), metric_text(key, values[key])))
            first = False
    if missing:
        names = ", ".join(METRIC_LABELS.get(k, k).lower() for k in missing[:3])
        rows.append(("", f"{len(missing)} more", f"not available for this run (e.g. {names})"))
    return pd.DataFrame(rows, columns=["group", "metric", "value"])
