"""Which strategy families the backtest stage sweeps, and over which grids.

The daily pipeline sweeps every strategy it backtests that has a fused sweep
(:data:`research.backtest.families.FAMILIES`), each over a small default grid
(:data:`FAMILY_GRIDS`) that keeps the stage within seconds. Two pipeline parameters change that:

``sweep_families``
    ``backtested`` (default: every backtested strategy with a fused sweep), ``all`` (every
    family), ``none`` (no sweep), or a comma list (``ma_crossover,rsi_reversion``).
``sweep_grid``
    Grid overrides, ``FAMILY.PARAM=VALUES`` separated by ``;``: VALUES is ``START:STOP[:STEP]``
    (both ends included; integers or decimals) or a comma list (``0,0.02,0.05``). A parameter
    given here replaces that parameter's default values; the family's other parameters keep
    theirs. Risk levels are parameters too (``rsi_reversion.stop_loss=0,0.05,0.1``). The moving
    average crossover's ``fast`` and ``slow`` default to the ``sweep_fast``/``sweep_slow``
    parameters; ``ma_crossover.fast=...`` here overrides them.

>>> resolve_families("backtested", strategies=["ma_crossover", "rsi_reversion", "buy_and_hold"])
['ma_crossover', 'rsi_reversion']
>>> parse_sweep_grid("rsi_reversion.window=2:10:4; time_series_momentum.threshold=0,0.05")
{'rsi_reversion': {'window': [2, 6, 10]}, 'time_series_momentum': {'threshold': [0, 0.05]}}
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from research.backtest.families import FAMILIES
from research.backtest.simulate import RISK_FIELDS
from research.backtest.sweep import parse_windows

__all__ = ["FAMILY_GRIDS", "resolve_families", "parse_sweep_grid", "parse_values", "family_grids", "values_text",
           "grid_label"]

logger = logging.getLogger(__name__)

#: Default grid of each family in the pipeline (``ma_crossover`` takes ``sweep_fast``/``sweep_slow``).
#: Sizes: RSI 15 x 7 x 5 = 525 sets, Bollinger 20 x 9 = 180, momentum 50 x 4 = 200, candlestick
#: 6 x 4 = 24 (with the catalog's pattern lists).
FAMILY_GRIDS: dict[str, dict[str, list[Any]]] = {
    "rsi_reversion": {"window": list(range(2, 31, 2)), "lower": list(range(10, 41, 5)),
                      "exit_level": list(range(45, 66, 5))},
    "bollinger_breakout": {"window": list(range(5, 101, 5)), "k": [round(1.0 + 0.25 * i, 2) for i in range(9)]},
    "time_series_momentum": {"lookback": list(range(5, 251, 5)), "threshold": [0.0, 0.02, 0.05, 0.1]},
    "candlestick": {"hold": [1, 2, 3, 5, 10, 20],
                    "bullish": ["engulfing", "hammer", "morning_star", "engulfing+hammer+morning_star"]},
}
_KEYWORDS = ("backtested", "all", "none")


def resolve_families(spec: str | Iterable[str] | None, *, strategies: Iterable[str]) -> list[str]:
    """The families to sweep from the ``sweep_families`` parameter.

    Raises
    ------
    ValueError
        A name that is neither a keyword (``backtested``, ``all``, ``none``) nor a family.
    """
    names = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec or ["backtested"])
    names = [n for n in names if n] or ["backtested"]
    out: list[str] = []
    for name in names:
        if name == "backtested":
            strategies = list(strategies)
            skipped = [s for s in strategies if s not in FAMILIES]
            if skipped:
                logger.info("not swept (no fused sweep): %s", ", ".join(skipped))
            out += [s for s in strategies if s in FAMILIES]
        elif name == "all":
            out += list(FAMILIES)
        elif name == "none":
            continue
        elif name in FAMILIES:
            out.append(name)
        else:
            raise ValueError(f"sweep_families: unknown family {name!r}; expected a comma list of {sorted(FAMILIES)} "
                             f"or one of {list(_KEYWORDS)}")
    if "none" in names and len(names) > 1:
        raise ValueError(f"sweep_families: 'none' cannot be combined with other names, got {spec!r}")
    return list(dict.fromkeys(out))


def _number(text: str) -> int | float | str:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_values(text: str, *, name: str = "value") -> list[Any]:
    """``"2:10:2"`` -> ``[2, 4, 6, 8, 10]``; ``"1:2:0.5"`` -> ``[1.0, 1.5, 2.0]``; ``"0,0.05"``; text lists.

    Raises
    ------
    ValueError
        A range that is not ``START:STOP[:STEP]`` of numbers with ``START <= STOP`` and ``STEP > 0``,
        or no value.
    """
    text = str(text).strip()
    if ":" in text:
        parts = [_number(p.strip()) for p in text.split(":")]
        if len(parts) not in (2, 3) or not all(isinstance(p, int | float) for p in parts):
            raise ValueError(f"{name}: a range is START:STOP[:STEP] of numbers, got {text!r}")
        lo, hi, step = parts[0], parts[1], parts[2] if len(parts) == 3 else 1
        if step <= 0 or hi < lo:
            raise ValueError(f"{name}: a range needs START <= STOP and STEP > 0, got {text!r}")
        if all(isinstance(p, int) for p in parts):
            return list(range(int(lo), int(hi) + 1, int(step)))
        return [round(lo + i * step, 12) for i in range(int(round((hi - lo) / step)) + 1)]
    values = [_number(v.strip()) for v in text.split(",") if v.strip()]
    if not values:
        raise ValueError(f"{name}: no value in {text!r}")
    return values


def _allowed(family: str) -> list[str]:
    from research.strategies.catalog import get_strategy

    return [k for k in get_strategy(family).defaults if k != "predictions"] + list(RISK_FIELDS)


def parse_sweep_grid(spec: str | Mapping[str, Mapping[str, Any]] | None) -> dict[str, dict[str, list[Any]]]:
    """The ``sweep_grid`` parameter as ``{family: {parameter: values}}``.

    Accepts the text form (``"FAMILY.PARAM=VALUES; ..."``) or a mapping of families to mappings of
    parameters to values (lists, or text as in the text form).

    Raises
    ------
    ValueError
        An entry that is not ``FAMILY.PARAM=VALUES``, an unknown family or parameter, a bad range.
    """
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        return {}
    if isinstance(spec, str):
        items: list[tuple[str, str, Any]] = []
        for part in (p.strip() for p in spec.split(";")):
            if not part:
                continue
            key, sep, text = part.partition("=")
            family, dot, param = key.strip().partition(".")
            if not sep or not dot or not family or not param.strip():
                raise ValueError(f"sweep_grid: expected FAMILY.PARAM=VALUES (entries separated by ';'), got {part!r}")
            items.append((family, param.strip(), text))
    else:
        items = [(f, p, v) for f, params in spec.items() for p, v in dict(params).items()]
    out: dict[str, dict[str, list[Any]]] = {}
    for family, param, value in items:
        if family not in FAMILIES:
            raise ValueError(f"sweep_grid: unknown family {family!r}; families: {sorted(FAMILIES)}")
        if param not in _allowed(family):
            raise ValueError(f"sweep_grid: {family} has no parameter {param!r}; parameters: {_allowed(family)}")
        label = f"sweep_grid {family}.{param}"
        values = parse_values(value, name=label) if isinstance(value, str) else list(value)
        if not values:
            raise ValueError(f"{label}: no value")
        out.setdefault(family, {})[param] = values
    return out


def family_grids(families: Sequence[str], *, fast: str | Iterable[int], slow: str | Iterable[int],
                 overrides: Mapping[str, Mapping[str, list[Any]]] | None = None) -> dict[str, dict[str, list[Any]]]:
    """The grid of each family: its default (:data:`FAMILY_GRIDS`, ``fast``/``slow`` for the
    crossover) with ``overrides`` replacing single parameters.

    Raises
    ------
    ValueError
        ``overrides`` names a family that is not swept.
    """
    overrides = dict(overrides or {})
    extra = sorted(set(overrides) - set(families))
    if extra:
        raise ValueError(f"sweep_grid names {extra}, which sweep_families does not sweep ({list(families)})")
    out = {}
    for family in families:
        base = ({"fast": parse_windows(fast), "slow": parse_windows(slow)} if family == "ma_crossover"
                else {k: list(v) for k, v in FAMILY_GRIDS[family].items()})
        out[family] = {**base, **{k: list(v) for k, v in overrides.get(family, {}).items()}}
    return out


def values_text(values: Sequence[Any]) -> str:
    """``[2, 4, ..., 30]`` -> ``"2:30:2"``; ``[1.0, 1.25, ..., 3.0]`` -> ``"1:3:0.25"``; else a comma list."""
    vals = list(values)
    numeric = all(isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool) for v in vals)
    if numeric and len(vals) > 2:
        w = sorted(float(v) for v in vals)
        steps = np.diff(w)
        if np.allclose(steps, steps[0], rtol=0, atol=1e-9) and steps[0] > 0:
            step = f":{steps[0]:g}" if not np.isclose(steps[0], 1.0) else ""
            return f"{w[0]:g}:{w[-1]:g}{step}"
    return ",".join(f"{v:g}" if numeric else str(v) for v in vals)


def grid_label(grid: Mapping[str, Sequence[Any]]) -> str:
    """``{"fast": [2..100], "slow": [10, 15, ...]}`` -> ``"fast 2:100 x slow 10:250:5"``."""
    return " x ".join(f"{k} {values_text(v)}" for k, v in grid.items())
