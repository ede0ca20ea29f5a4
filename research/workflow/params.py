"""Typed pipeline parameters: the types a spec declares, converting values to them, bounds, secrets.

Parameter types: ``str``, ``int``, ``float``, ``bool``, ``date`` (an ISO date or date-time,
kept as a string), ``list[str]``, ``list[int]``, ``list[float]``. Strings (from ``-p
key=value``) are parsed by the declared type (lists as ``a,b,c`` or JSON); a :class:`Param`
holds a declared parameter with its bounds. A parameter whose name looks like a secret, or
whose value equals a secret from the environment, is refused: papermill writes parameters into
the executed notebook. :mod:`research.workflow.spec` uses these to check a spec and a run.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from research.config import get_settings

__all__ = [
    "SpecError", "Param", "TYPES", "coerce", "canonical_date", "type_of", "compatible", "looks_secret",
    "secret_values", "secret_problems",
]

TYPES = ("str", "int", "float", "bool", "date", "list[str]", "list[int]", "list[float]")
_SECRET_KEY = re.compile(
    r"(secret|passw|token|api_?key|apikey|credential|private_?key|access_?key|auth_|bearer|cookie)",
    re.IGNORECASE,
)


class SpecError(ValueError):
    """A pipeline spec or its parameters are invalid; nothing was executed."""


@dataclass(frozen=True)
class Param:
    """A typed parameter with optional bounds (``min``/``max`` inclusive, ``exclusive_*`` strict)."""

    name: str
    type: str
    default: Any = None
    help: str = ""
    min: float | None = None
    max: float | None = None
    exclusive_min: float | None = None
    exclusive_max: float | None = None
    choices: tuple | None = None
    min_items: int | None = None

    def allowed(self) -> str:
        """The allowed values in words, e.g. ``">= 1"`` or ``"one of ['a', 'b']"`` (``""``: any)."""
        parts = [f"{op} {bound:g}" for op, bound in ((">=", self.min), (">", self.exclusive_min),
                                                       ("<=", self.max), ("<", self.exclusive_max)) if bound is not None]
        if self.choices is not None:
            parts.append(f"one of {list(self.choices)}")
        if self.min_items is not None:
            parts.append(f"at least {self.min_items} item(s)")
        return " and ".join(parts)

    def check(self, value: Any) -> str | None:
        """Why ``value`` (already coerced) is out of bounds, or ``None`` when it is allowed."""
        if value is None or not self.allowed():
            return None
        items = value if isinstance(value, list) else [value]
        if self.min_items is not None and isinstance(value, list) and len(value) < self.min_items:
            return f"parameter {self.name!r} = {value!r} has too few items: expected {self.allowed()}"
        for item in items:
            if self.choices is not None and item not in self.choices:
                return f"parameter {self.name!r} = {value!r} is not allowed: expected {self.allowed()}"
            if isinstance(item, (int, float)) and not isinstance(item, bool):
                if ((self.min is not None and item < self.min) or (self.max is not None and item > self.max)
                        or (self.exclusive_min is not None and item <= self.exclusive_min)
                        or (self.exclusive_max is not None and item >= self.exclusive_max)
                        or item != item):  # NaN is never in range
                    break
        else:
            return None
        return f"parameter {self.name!r} = {value!r} is out of range: allowed {self.allowed()}"


def type_of(value: Any) -> str | None:
    """The parameter type a YAML or notebook literal has (``None`` for ``null`` and other values)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, (list, tuple)):
        kinds = {type_of(v) for v in value}
        if kinds <= {"int"} and value:
            return "list[int]"
        if kinds <= {"int", "float"} and value:
            return "list[float]"
        return "list[str]"
    return None


def canonical_date(text: object) -> str:
    """``text`` as an ISO date or date-time label, in UTC without a zone; ``ValueError`` if not a date.

    A date (``2019-03-01``, a :class:`datetime.date`) stays a date; a date-time stays a
    date-time, midnight included (``2019-03-01T00:00:00``: an hourly run in the 00:xx hour is
    that instant, not the whole day). The same labels as the market rooms' as-of value
    (:attr:`research.data.asof.AsOf.label`), written here because the engine imports no room.
    """
    from research.timeutil import parse_date_or_time, to_naive_utc

    ts, is_date = parse_date_or_time(text)
    ts = to_naive_utc(ts)
    return ts.strftime("%Y-%m-%d") if is_date else ts.strftime("%Y-%m-%dT%H:%M:%S")


def _scalar(kind: str, value: Any) -> Any:
    """``value`` as the scalar type ``kind``; ``ValueError`` when it is not one."""
    if kind == "str":
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    elif kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "false", "yes", "no", "1", "0", "on", "off"}:
            return value.lower() in {"true", "yes", "1", "on"}
    elif kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
            return int(value)
    elif kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif kind == "date":
        if hasattr(value, "isoformat") or isinstance(value, str):
            return canonical_date(str(value))
    raise ValueError(f"expected {kind}, got {value!r}")


def coerce(kind: str, value: Any) -> Any:
    """``value`` converted to the parameter type ``kind``; ``ValueError`` says what came.

    Strings (from ``-p key=value``) are parsed; other values must already have the type
    (an ``int`` is accepted for ``float``). ``None`` stays ``None``.
    """
    if kind not in TYPES:
        raise ValueError(f"unknown type {kind!r}; expected one of {list(TYPES)}")
    if value is None:
        return None
    if kind.startswith("list["):
        inner = kind[5:-1]
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"expected {kind} as a,b,c or a JSON list, got {value!r}") from exc
            else:
                value = [v.strip() for v in text.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"expected {kind}, got {value!r}")
        return [_scalar(inner, v) for v in value]
    return _scalar(kind, value)


def looks_secret(key: str) -> bool:
    """Whether a parameter name looks like it carries a secret (token, password, API key ...)."""
    return bool(_SECRET_KEY.search(key))


def secret_values() -> set[str]:
    """The values of the secrets in the environment (settings whose names look secret)."""
    return get_settings().secret_values(looks_secret)


def secret_problems(where: str, key: str, value: Any, secrets: set[str]) -> list[str]:
    """Why parameter ``key`` = ``value`` cannot be passed (its name looks secret, or its value is one of ``secrets``); empty when it can."""
    if looks_secret(key):
        return [
            f"{where}: parameter {key!r} looks like a secret; secrets are never parameters "
            "(papermill writes parameters into the executed notebook). Read it from the "
            "environment inside the notebook, e.g. research.config.get_settings()."
        ]
    values = value if isinstance(value, list) else [value]
    if any(isinstance(v, str) and v in secrets for v in values):
        return [f"{where}: the value of {key!r} equals a secret from the environment; pass secrets through the environment, not as parameters"]
    return []


def compatible(spec_type: str, nb_type: str | None) -> bool:
    """Whether a value of the spec's type ``spec_type`` suits a notebook default of type ``nb_type``."""
    if nb_type is None or spec_type == nb_type:
        return True
    if spec_type == "date" and nb_type == "str":
        return True
    if spec_type == "int" and nb_type == "float":
        return True
    if spec_type.startswith("list[") and nb_type.startswith("list["):
        return nb_type == "list[str]" or spec_type in {"list[int]", nb_type}
    return False
