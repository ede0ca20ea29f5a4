"""Pipeline specs: YAML files that declare stages, their notebooks and typed parameters.

A spec looks like this (paths are relative to the spec file)::

    name: daily
    description: End-of-day research on the sample universe.
    parameters:                      # shared parameters, set once for every stage
      symbols: {type: "list[str]", default: [SPX, IXIC, GOOG, MSFT], help: the universe}
      source:  {type: str, default: sample}
      as_of:   {type: date, default: null}        # null: resolved when the run starts
      epochs:  {type: int, default: 3, min: 1}     # declared bounds, checked before any stage runs
      preset:  {type: str, default: pipeline, choices: [tiny, pipeline, research]}
      lr:      0.01                               # shorthand: the type is the default's type
    stages:
      - name: ingest
        notebook: daily/01-ingest.ipynb
        timeout: 300                 # seconds of wall time for the whole stage (kernel included)
        retries: 1                   # extra attempts after a failure or a timeout
        backoff: 5                   # seconds before the first retry, doubled on each next one
        parameters:                  # stage-only parameters: typed by their value, or declared
          min_rows: {default: 200, min: 1}
        reads: []                    # outputs of earlier stages this stage needs
        writes: [data_report, prices]
    hooks: {after_run: [research.alerts.delivery:after_run]}  # see research.workflow.hooks

Each stage notebook has exactly one cell tagged ``parameters``. A stage receives the shared
parameters its ``parameters`` cell declares, its own ``parameters``, and the built-ins
``output_dir`` (the run's ``outputs/`` folder) and ``as_of``; ``run_id`` and ``pipeline`` are
passed when the cell declares them. Everything is checked before any kernel starts:
unknown keys, wrong types (against the spec and against the notebook's own defaults), a
missing or duplicated ``parameters`` cell, and keys or values that look like secrets (papermill
writes parameters into the executed notebook, so secrets are read from the environment inside
the notebook instead).

Parameter types: ``str``, ``int``, ``float``, ``bool``, ``date`` (an ISO date or date-time,
kept as a string), ``list[str]``, ``list[int]``, ``list[float]``. A declared parameter (shared,
or a stage parameter written as a mapping) may bound its values: ``min`` and ``max``
(inclusive, numbers; for lists each element), ``exclusive_min`` / ``exclusive_max`` (strict
bounds, e.g. ``exclusive_min: 0`` for "> 0"), ``choices`` (the allowed values) and, for lists,
``min_items``. A value out
of bounds, from the spec or from ``-p``, is refused before any stage runs with the parameter,
the value and the allowed range. On the command line,
``-p key=value`` sets a shared parameter and ``-p stage.key=value`` a stage parameter; the
value is parsed by the declared type (lists as ``a,b,c`` or JSON).
"""

from __future__ import annotations

import ast
import datetime as dt
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from research.config import get_settings
from research.workflow.hooks import HookError, Hooks, parse_hooks

__all__ = [
    "SpecError", "Param", "Stage", "PipelineSpec", "RunPlan", "load_spec", "plan_run",
    "notebook_parameters", "parse_overrides", "coerce", "looks_secret", "TYPES", "BUILTINS",
]

TYPES = ("str", "int", "float", "bool", "date", "list[str]", "list[int]", "list[float]")
#: Parameters the runner sets itself: name -> required in every stage notebook.
BUILTINS = {"output_dir": True, "as_of": True, "run_id": False, "pipeline": False}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_STAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_SECRET_KEY = re.compile(
    r"(secret|passw|token|api_?key|apikey|credential|private_?key|access_?key|auth_|bearer|cookie)",
    re.IGNORECASE,
)
_PARAM_KEYS = {"type", "default", "help", "min", "max", "exclusive_min", "exclusive_max", "choices", "min_items"}
_BOUND_KEYS = ("min", "max", "exclusive_min", "exclusive_max")
_STAGE_KEYS = {"name", "notebook", "parameters", "timeout", "retries", "backoff", "reads", "writes", "description"}
_SPEC_KEYS = {"name", "description", "parameters", "stages", "hooks"}


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


@dataclass(frozen=True)
class Stage:
    """One stage: a notebook run with papermill."""

    name: str
    notebook: Path
    parameters: dict = field(default_factory=dict)
    timeout: float = 600.0
    retries: int = 0
    backoff: float = 2.0
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    description: str = ""
    declared: dict = field(default_factory=dict)  # stage parameters declared as mappings: name -> Param


@dataclass(frozen=True)
class PipelineSpec:
    """A parsed pipeline spec."""

    name: str
    path: Path
    parameters: dict[str, Param]
    stages: tuple[Stage, ...]
    description: str = ""
    sha256: str = ""
    hooks: Hooks = field(default_factory=Hooks)

    def stage(self, name: str) -> Stage:
        """The stage called ``name`` (``KeyError`` lists the stages)."""
        for st in self.stages:
            if st.name == name:
                return st
        raise KeyError(f"pipeline {self.name!r} has no stage {name!r}; stages: {[s.name for s in self.stages]}")


@dataclass(frozen=True)
class RunPlan:
    """Validated parameters: the shared values and what each stage will receive."""

    spec: PipelineSpec
    shared: dict
    stage_parameters: dict[str, dict]


# ---------------------------------------------------------------- types and coercion
def _type_of(value: Any) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, (list, tuple)):
        kinds = {_type_of(v) for v in value}
        if kinds <= {"int"} and value:
            return "list[int]"
        if kinds <= {"int", "float"} and value:
            return "list[float]"
        return "list[str]"
    return None


_DATE_ONLY = re.compile(r"^\s*\d{4}-\d{2}-\d{2}\s*$")


def canonical_date(text: object) -> str:
    """``text`` as an ISO date or date-time label, in UTC without a zone; ``ValueError`` if not a date.

    A date (``2019-03-01``, a :class:`datetime.date`) stays a date; a date-time stays a
    date-time, midnight included (``2019-03-01T00:00:00``: an hourly run in the 00:xx hour is
    that instant, not the whole day). The same labels as the market rooms' as-of value
    (:attr:`research.data.asof.AsOf.label`), written here because the engine imports no room.
    """
    import pandas as pd

    from research.timeutil import to_naive_utc

    is_date = (isinstance(text, str) and bool(_DATE_ONLY.match(text))) or (
        isinstance(text, dt.date) and not isinstance(text, dt.datetime))
    try:
        ts = pd.Timestamp(text.strip() if isinstance(text, str) else text)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not an ISO date or date-time: {text!r}") from exc
    if ts is pd.NaT:
        raise ValueError(f"not an ISO date or date-time: {text!r}")
    return to_naive_utc(ts).strftime("%Y-%m-%d") if is_date else ts.strftime("%Y-%m-%dT%H:%M:%S")


def _scalar(kind: str, value: Any) -> Any:
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


def _secret_values() -> set[str]:
    return get_settings().secret_values(looks_secret)


def _check_not_secret(where: str, key: str, value: Any, secrets: set[str]) -> list[str]:
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


# ---------------------------------------------------------------- notebooks
@dataclass(frozen=True)
class NotebookParam:
    """A name declared in a notebook's ``parameters`` cell, with its default's type."""

    name: str
    type: str | None
    default: Any = None


def notebook_parameters(path: str | os.PathLike) -> dict[str, NotebookParam]:
    """The names, defaults and types declared in the notebook's one ``parameters`` cell.

    Raises
    ------
    SpecError
        The notebook is missing or unreadable, has no cell tagged ``parameters`` or more
        than one, or that cell is not plain assignments.
    """
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"notebook {path} does not exist")
    cells = [c for c in _notebook_cells(path) if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise SpecError(f"notebook {path.name} has no cell tagged 'parameters'; papermill cannot inject its parameters")
    if len(cells) > 1:
        raise SpecError(f"notebook {path.name} has {len(cells)} cells tagged 'parameters'; expected exactly one")
    try:
        source = cells[0].get("source", "")
        tree = ast.parse("".join(source) if isinstance(source, list) else source)
    except SyntaxError as exc:
        raise SpecError(f"the parameters cell of {path.name} is not valid Python: {exc}") from exc
    out: dict[str, NotebookParam] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, value_node, annotation = node.targets[0].id, node.value, None
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            name, value_node, annotation = node.target.id, node.value, node.annotation
        else:
            raise SpecError(
                f"the parameters cell of {path.name} must hold only 'name = literal' lines; "
                f"line {node.lineno} is {ast.unparse(node)[:60]!r}"
            )
        try:
            default = ast.literal_eval(value_node) if value_node is not None else None
        except ValueError:
            default = None
        kind = _type_of(default)
        if annotation is not None and ast.unparse(annotation) in {"str", "int", "float", "bool"}:
            kind = ast.unparse(annotation)
        out[name] = NotebookParam(name, kind, default)
    return out


def _notebook_cells(path: Path) -> list[dict]:
    """The cells of a notebook file: read as JSON (format 4), else converted by nbformat.

    A format-4 notebook is plain JSON; reading it directly keeps a spec check free of
    nbformat's schema validation, which takes seconds to import.
    """
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(doc, dict) and doc.get("nbformat") == 4 and isinstance(doc.get("cells"), list):
            return [c for c in doc["cells"] if isinstance(c, dict)]
        import nbformat

        return list(nbformat.read(path, as_version=4).cells)
    except Exception as exc:  # JSON and nbformat raise several types for a broken file
        raise SpecError(f"notebook {path} is not a readable .ipynb: {exc}") from exc


def _compatible(spec_type: str, nb_type: str | None) -> bool:
    if nb_type is None or spec_type == nb_type:
        return True
    if spec_type == "date" and nb_type == "str":
        return True
    if spec_type == "int" and nb_type == "float":
        return True
    if spec_type.startswith("list[") and nb_type.startswith("list["):
        return nb_type == "list[str]" or spec_type in {"list[int]", nb_type}
    return False


# ---------------------------------------------------------------- loading
def _bounds(name: str, kind: str, raw: Mapping) -> dict:
    out: dict[str, Any] = {}
    for key in _BOUND_KEYS:
        if raw.get(key) is None:
            continue
        bound = raw[key]
        if kind not in {"int", "float", "list[int]", "list[float]"}:
            raise SpecError(f"parameter {name!r}: {key} applies to numbers, not to type {kind}")
        if isinstance(bound, bool) or not isinstance(bound, (int, float)):
            raise SpecError(f"parameter {name!r}: {key} must be a number, got {bound!r}")
        out[key] = bound
    if raw.get("min_items") is not None:
        if not kind.startswith("list[") or isinstance(raw["min_items"], bool) or not isinstance(raw["min_items"], int):
            raise SpecError(f"parameter {name!r}: min_items must be an integer and applies to lists, not to type {kind}")
        out["min_items"] = raw["min_items"]
    if raw.get("choices") is not None:
        choices = raw["choices"]
        if not isinstance(choices, list) or not choices:
            raise SpecError(f"parameter {name!r}: choices must be a non-empty list, got {choices!r}")
        inner = kind[5:-1] if kind.startswith("list[") else kind
        try:
            out["choices"] = tuple(coerce(inner, c) for c in choices)
        except ValueError as exc:
            raise SpecError(f"parameter {name!r}: choices {exc}") from None
    return out


def _param(name: str, raw: Any) -> Param:
    if isinstance(raw, Mapping):
        unknown = set(raw) - _PARAM_KEYS
        if unknown:
            raise SpecError(f"parameter {name!r}: unknown keys {sorted(unknown)}; expected {sorted(_PARAM_KEYS)}")
        kind = raw.get("type") or _type_of(raw.get("default"))
        if kind is None:
            raise SpecError(f"parameter {name!r} needs a type (its default is null)")
        if kind not in TYPES:
            raise SpecError(f"parameter {name!r} has unknown type {kind!r}; expected one of {list(TYPES)}")
        try:
            default = coerce(kind, raw.get("default"))
        except ValueError as exc:
            raise SpecError(f"parameter {name!r}: default {exc}") from None
        param = Param(name, kind, default, str(raw.get("help", "")), **_bounds(name, kind, raw))
        problem = param.check(default)
        if problem:
            raise SpecError(f"the default of {problem}")
        return param
    kind = _type_of(raw)
    if kind is None:
        raise SpecError(f"parameter {name!r}: write {{type: ..., default: ...}} for a default of {raw!r}")
    return Param(name, kind, coerce(kind, raw))


def _stage(raw: Any, base: Path, index: int) -> Stage:
    if not isinstance(raw, Mapping):
        raise SpecError(f"stage #{index + 1} must be a mapping, got {raw!r}")
    unknown = set(raw) - _STAGE_KEYS
    if unknown:
        raise SpecError(f"stage #{index + 1}: unknown keys {sorted(unknown)}; expected {sorted(_STAGE_KEYS)}")
    name = raw.get("name")
    if not isinstance(name, str) or not _STAGE_NAME.match(name):
        raise SpecError(f"stage #{index + 1}: name must be lower-case letters, digits, - or _; got {name!r}")
    if not raw.get("notebook"):
        raise SpecError(f"stage {name!r} has no notebook")
    params = raw.get("parameters") or {}
    if not isinstance(params, Mapping):
        raise SpecError(f"stage {name!r}: parameters must be a mapping, got {params!r}")
    declared = {}
    for key, value in params.items():
        if isinstance(value, Mapping):  # {default: ..., min: ..., choices: ...}
            try:
                declared[key] = _param(str(key), value)
            except SpecError as exc:
                raise SpecError(f"stage {name!r}: {exc}") from None
    params = {k: (declared[k].default if k in declared else v) for k, v in params.items()}
    try:
        timeout, retries, backoff = float(raw.get("timeout", 600)), int(raw.get("retries", 0)), float(raw.get("backoff", 2.0))
    except (TypeError, ValueError) as exc:
        raise SpecError(f"stage {name!r}: timeout, retries and backoff must be numbers ({exc})") from None
    if timeout <= 0 or retries < 0 or backoff < 0:
        raise SpecError(f"stage {name!r}: timeout must be > 0 and retries, backoff >= 0")
    lists = {}
    for key in ("reads", "writes"):
        value = raw.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise SpecError(f"stage {name!r}: {key} must be a list of output names, got {value!r}")
        lists[key] = tuple(value)
    return Stage(
        name=name, notebook=(base / str(raw["notebook"])).resolve(), parameters=dict(params),
        timeout=timeout, retries=retries, backoff=backoff, reads=lists["reads"], writes=lists["writes"],
        description=str(raw.get("description", "")), declared=declared,
    )


def load_spec(path: str | os.PathLike, *, load_hooks: bool = True) -> PipelineSpec:
    """Parse and check a pipeline spec file (structure only; see :func:`plan_run`).

    ``load_hooks=False`` checks the hooks without importing their modules
    (:func:`research.workflow.hooks.find_hook`): a quick refusal before the run loads them.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise SpecError(f"pipeline spec {path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{path.name} is not valid YAML: {exc}") from exc
    if not isinstance(raw, Mapping):
        raise SpecError(f"{path.name} must be a mapping with name, parameters and stages")
    unknown = set(raw) - _SPEC_KEYS
    if unknown:
        raise SpecError(f"{path.name}: unknown top-level keys {sorted(unknown)}; expected {sorted(_SPEC_KEYS)}")
    name = raw.get("name") or path.stem
    if not isinstance(name, str) or not _STAGE_NAME.match(name):
        raise SpecError(f"{path.name}: pipeline name must be lower-case letters, digits, - or _; got {name!r}")
    params_raw = raw.get("parameters") or {}
    if not isinstance(params_raw, Mapping):
        raise SpecError(f"{path.name}: parameters must be a mapping")
    params = {}
    for key, value in params_raw.items():
        if not isinstance(key, str) or not _NAME.match(key):
            raise SpecError(f"{path.name}: parameter name {key!r} is not a Python identifier")
        if key in BUILTINS and key != "as_of":
            raise SpecError(f"{path.name}: {key!r} is set by the runner and cannot be a spec parameter")
        params[key] = _param(key, value)
    params.setdefault("as_of", Param("as_of", "date", None, "as-of date; resolved at run start when null"))
    if params["as_of"].type != "date":
        raise SpecError(f"{path.name}: as_of must have type date, not {params['as_of'].type}")
    stages_raw = raw.get("stages")
    if not isinstance(stages_raw, list) or not stages_raw:
        raise SpecError(f"{path.name}: stages must be a non-empty list")
    stages = tuple(_stage(s, path.parent, i) for i, s in enumerate(stages_raw))
    names = [s.name for s in stages]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SpecError(f"{path.name}: stage names must be unique; repeated: {dupes}")
    written: set[str] = set()
    for st in stages:
        missing = [r for r in st.reads if r not in written]
        if missing:
            raise SpecError(f"stage {st.name!r} reads {missing}, which no earlier stage writes")
        written.update(st.writes)
    try:
        hooks = parse_hooks(raw.get("hooks"), load=load_hooks)
    except HookError as exc:
        raise SpecError(f"{path.name}: {exc}") from exc
    return PipelineSpec(
        name=name, path=path, parameters=params, stages=stages,
        description=str(raw.get("description", "")), sha256=hashlib.sha256(text.encode()).hexdigest(),
        hooks=hooks,
    )


# ---------------------------------------------------------------- planning
def parse_overrides(items: Iterable[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    """``["k=v", "stage.k=v"]`` as a dict (values stay strings until typed by the spec)."""
    if items is None:
        return {}
    if isinstance(items, Mapping):
        return dict(items)
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SpecError(f"parameter override must look like key=value or stage.key=value, got {item!r}")
        out[key.strip()] = value
    return out


def _stage_overrides(spec: PipelineSpec, overrides: dict) -> tuple[dict, dict[str, dict], list[str]]:
    shared, per_stage, errors = {}, {s.name: {} for s in spec.stages}, []
    for key, value in overrides.items():
        if "." in key:
            stage, _, name = key.partition(".")
            if stage not in per_stage:
                errors.append(f"-p {key}: no stage {stage!r}; stages: {list(per_stage)}")
            elif name not in spec.stage(stage).parameters:
                errors.append(f"-p {key}: stage {stage!r} has no parameter {name!r}; it has {sorted(spec.stage(stage).parameters)}")
            else:
                per_stage[stage][name] = value
        elif key not in spec.parameters:
            errors.append(f"-p {key}: unknown parameter; {spec.name} takes {sorted(spec.parameters)} (or stage.key for stage parameters)")
        else:
            shared[key] = value
    return shared, per_stage, errors


def plan_run(spec: PipelineSpec, overrides: Iterable[str] | Mapping[str, Any] | None = None) -> RunPlan:
    """Validate every parameter of every stage before anything runs.

    Raises
    ------
    SpecError
        Listing every problem found: unknown keys, wrong types, secrets, notebooks without a
        ``parameters`` cell or missing a built-in, shared parameters no stage uses.
    """
    secrets = _secret_values()
    shared_over, stage_over, errors = _stage_overrides(spec, parse_overrides(overrides))
    shared = _shared_values(spec, shared_over, secrets, errors)
    stage_params: dict[str, dict] = {}
    used: set[str] = set()
    for st in spec.stages:
        try:
            declared = notebook_parameters(st.notebook)
        except SpecError as exc:
            errors.append(f"stage {st.name!r}: {exc}")
            continue
        missing = [b for b, required in BUILTINS.items() if required and b not in declared]
        if missing:
            errors.append(f"stage {st.name!r}: notebook {st.notebook.name} must declare {missing} in its parameters cell")
        values = _inherited_values(spec, st, declared, shared, used, errors)
        values.update(_own_values(st, declared, stage_over[st.name], secrets, errors))
        stage_params[st.name] = values
    unused = sorted(set(spec.parameters) - used - {"as_of"})
    if unused:
        errors.append(f"shared parameters {unused} are declared by no stage notebook")
    if errors:
        raise SpecError(f"pipeline {spec.name!r} refused before execution:\n  - " + "\n  - ".join(errors))
    return RunPlan(spec=spec, shared=shared, stage_parameters=stage_params)


def _shared_values(spec: PipelineSpec, overrides: dict, secrets: set[str], errors: list[str]) -> dict:
    """The pipeline's shared parameters, overridden, typed and checked; problems go to ``errors``."""
    shared = {}
    for name, param in spec.parameters.items():
        try:
            shared[name] = coerce(param.type, overrides.get(name, param.default))
        except ValueError as exc:
            errors.append(f"parameter {name!r} ({param.type}): {exc}")
        else:
            problem = param.check(shared[name])
            if problem:
                errors.append(problem + (" (from -p)" if name in overrides else ""))
        errors += _check_not_secret(spec.name, name, shared.get(name), secrets)
    return shared


def _inherited_values(spec: PipelineSpec, st: Stage, declared: dict[str, NotebookParam], shared: dict,
                      used: set[str], errors: list[str]) -> dict:
    """The shared parameters a stage's notebook declares (noted in ``used``), type-checked against it."""
    values = {}
    for name, param in spec.parameters.items():
        if name in declared:
            used.add(name)
            if shared.get(name) is not None and not _compatible(param.type, declared[name].type):
                errors.append(f"stage {st.name!r}: {name!r} is {param.type} in the spec but {declared[name].type} in {st.notebook.name}")
            values[name] = shared.get(name)
    return values


def _own_values(st: Stage, declared: dict[str, NotebookParam], overrides: dict, secrets: set[str],
                errors: list[str]) -> dict:
    """A stage's own parameters, overridden, typed and checked against its spec bounds and its
    notebook's parameters cell; a refused one is left out and its problem goes to ``errors``."""
    values = {}
    for name, raw in st.parameters.items():
        found = _check_not_secret(f"stage {st.name!r}", name, overrides.get(name, raw), secrets)
        if found:
            errors += found
            continue
        if name not in declared:
            errors.append(f"stage {st.name!r}: unknown parameter {name!r}; {st.notebook.name} declares {sorted(declared)}")
            continue
        if name in BUILTINS:
            errors.append(f"stage {st.name!r}: {name!r} is set by the runner")
            continue
        bounds = st.declared.get(name)
        kind = (bounds.type if bounds else None) or _type_of(raw) or declared[name].type or "str"
        try:
            value = coerce(kind, overrides.get(name, raw))
        except ValueError as exc:
            errors.append(f"stage {st.name!r}: parameter {name!r} ({kind}): {exc}")
            continue
        problem = bounds.check(value) if bounds else None
        if problem:
            errors.append(f"stage {st.name!r}: {problem}")
            continue
        if not _compatible(kind, declared[name].type):
            errors.append(f"stage {st.name!r}: {name!r} is {kind} in the spec but {declared[name].type} in {st.notebook.name}")
        values[name] = value
    return values
