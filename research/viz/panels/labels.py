"""How recorded parameter sets and metrics are spelled on the pages (shared by the explorer's panels)."""

from __future__ import annotations

import json

import pandas as pd

__all__ = ["canonical_params", "params_label", "curve_index", "metric_text"]


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
        return str(value)
    if key.endswith("[%]"):
        return f"{value:,.2f}%"
    if key.startswith("#") or key.endswith(("[bars]", "[days]")):
        return f"{value:,.0f}"
    if key.endswith(("[$]", "[USD]")) or "Equity" in key or "Value" in key:
        return f"{value:,.2f}"
    return f"{value:,.2f}" if abs(value) < 1e5 else f"{value:,.0f}"
