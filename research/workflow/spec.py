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

import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from research.workflow.hooks import HookError, Hooks, parse_hooks
from research.workflow.parameters_cell import NotebookParam, notebook_parameters
from research.workflow.params import (
    TYPES,
    Param,
    SpecError,
    canonical_date,
    coerce,
    compatible,
    looks_secret,
    secret_problems,
    secret_values,
    type_of,
)

__all__ = [
    "SpecError", "Param", "Stage", "PipelineSpec", "RunPlan", "load_spec", "plan_run",
    "notebook_parameters", "parse_overrides", "coerce", "looks_secret", "TYPES", "BUILTINS",
    "canonical_date", "NotebookParam",
]

#: Parameters the runner sets itself: name -> required in every stage notebook.
BUILTINS = {"output_dir": True, "as_of": True, "run_id": False, "pipeline": False}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_STAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_PARAM_KEYS = {"type", "default", "help", "min", "max", "exclusive_min", "exclusive_max", "choices", "min_items"}
_BOUND_KEYS = ("min", "max", "exclusive_min", "exclusive_max")
_STAGE_KEYS = {"name", "notebook", "parameters", "timeout", "retries", "backoff", "reads", "writes", "description"}
_SPEC_KEYS = {"name", "description", "parameters", "stages", "hooks"}


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
        kind = raw.get("type") or type_of(raw.get("default"))
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
    kind = type_of(raw)
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
    secrets = secret_values()
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
        errors += secret_problems(spec.name, name, shared.get(name), secrets)
    return shared


def _inherited_values(spec: PipelineSpec, st: Stage, declared: dict[str, NotebookParam], shared: dict,
                      used: set[str], errors: list[str]) -> dict:
    """The shared parameters a stage's notebook declares (noted in ``used``), type-checked against it."""
    values = {}
    for name, param in spec.parameters.items():
        if name in declared:
            used.add(name)
            if shared.get(name) is not None and not compatible(param.type, declared[name].type):
                errors.append(f"stage {st.name!r}: {name!r} is {param.type} in the spec but {declared[name].type} in {st.notebook.name}")
            values[name] = shared.get(name)
    return values


def _own_values(st: Stage, declared: dict[str, NotebookParam], overrides: dict, secrets: set[str],
                errors: list[str]) -> dict:
    """A stage's own parameters, overridden, typed and checked against its spec bounds and its
    notebook's parameters cell; a refused one is left out and its problem goes to ``errors``."""
    values = {}
    for name, raw in st.parameters.items():
        found = secret_problems(f"stage {st.name!r}", name, overrides.get(name, raw), secrets)
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
        kind = (bounds.type if bounds else None) or type_of(raw) or declared[name].type or "str"
        try:
            value = coerce(kind, overrides.get(name, raw))
        except ValueError as exc:
            errors.append(f"stage {st.name!r}: parameter {name!r} ({kind}): {exc}")
            continue
        problem = bounds.check(value) if bounds else None
        if problem:
            errors.append(f"stage {st.name!r}: {problem}")
            continue
        if not compatible(kind, declared[name].type):
            errors.append(f"stage {st.name!r}: {name!r} is {kind} in the spec but {declared[name].type} in {st.notebook.name}")
        values[name] = value
    return values
