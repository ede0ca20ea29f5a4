"""One defaults tree: signatures, the CLI, the pipeline specs and the stage notebooks agree with it.

Each check names both places when they disagree; the fix is to change ``research.defaults``
and the place the message names, never one of them alone.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
from pathlib import Path

import pytest
import yaml

from research import defaults as D

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted((ROOT / "pipelines").glob("*.yaml"))
_NOT_IN_TREE = object()
_SET_BY_RUNNER = {"output_dir", "as_of", "pipeline", "run_id"}


def _defaults(func) -> dict:
    return {n: p.default for n, p in inspect.signature(func).parameters.items() if p.default is not inspect.Parameter.empty}


def _same(a, b) -> bool:
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return list(a) == list(b)
    return a == b and (a is None) == (b is None)


def test_the_tree_is_plain_data_and_lookup_names_what_is_missing():
    assert D.lookup("pipelines.daily.backtest.fees") == 0.001
    with pytest.raises(KeyError, match="pipelines.weekly"):
        D.lookup("pipelines.weekly.backtest")


def test_backtest_signatures_read_the_tree():
    from research.backtest.engine import backtest
    from research.backtest.sweep import sweep_ma_crossover
    from research.backtest.walkforward import walk_forward

    for func in (backtest, sweep_ma_crossover, walk_forward):
        found = _defaults(func)
        for key, value in D.BACKTEST.items():
            assert found[key] == value, f"{func.__module__}.{func.__name__}({key}={found[key]!r}) but research.defaults.BACKTEST[{key!r}] = {value!r}"


def test_the_cli_options_read_the_tree():
    from research.cli.backtest import backtest_command, sweep_command

    names = {"fees": "fees", "slippage": "slippage", "cash": "init_cash", "timing": "timing"}
    for command in (backtest_command, sweep_command):
        found = _defaults(command)
        for option, key in names.items():
            assert found[option] == D.BACKTEST[key], f"workbench {command.__name__} --{option} default {found[option]!r} but BACKTEST[{key!r}] = {D.BACKTEST[key]!r}"


def test_one_declaration_of_the_lstm_hyperparameters():
    from research.experiments.training_config import TrainingConfig
    from research.models.lstm import LSTMParams

    model = {f.name: f.default for f in dataclasses.fields(LSTMParams)}
    assert model == D.LSTM, "LSTMParams declares other defaults than research.defaults.LSTM"
    training = {f.name: f.default for f in dataclasses.fields(TrainingConfig)}
    for key, value in {**{k: v for k, v in D.LSTM.items() if k in training}, **D.TRAINING}.items():
        assert _same(training[key], value), f"TrainingConfig.{key} = {training[key]!r} but the tree says {value!r}"
    assert TrainingConfig().lstm_params() == {k: v for k, v in D.LSTM.items() if k in training}


def _spec_params(spec: dict) -> dict[str, dict]:
    """``{"shared": {...}, <stage>: {...}}`` of a spec's parameter defaults."""

    def values(params: dict | None) -> dict:
        return {k: (v.get("default") if isinstance(v, dict) else v) for k, v in (params or {}).items()}

    out = {"shared": values(spec.get("parameters"))}
    for stage in spec.get("stages", []):
        if stage.get("parameters"):
            out[stage["name"]] = values(stage["parameters"])
    return out


@pytest.mark.parametrize("path", SPECS, ids=[p.name for p in SPECS])
def test_every_spec_default_is_the_trees(path):
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    tree = D.PIPELINES.get(spec["name"])
    assert tree is not None, f"{path.name}: research.defaults.PIPELINES has no {spec['name']!r}"
    for group, params in _spec_params(spec).items():
        for key, value in params.items():
            expected = tree.get(group, {}).get(key, _NOT_IN_TREE)
            assert expected is not _NOT_IN_TREE, f"{path.name}: {group}.{key} is not in research.defaults.PIPELINES[{spec['name']!r}]"
            assert _same(value, expected), f"{path.name}: {group}.{key} = {value!r} but research.defaults says {expected!r}"


def _parameters_cell(notebook: Path) -> dict:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    cell = next(c for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))
    out = {}
    for node in ast.parse("".join(cell["source"])).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            out[node.targets[0].id] = ast.literal_eval(node.value)
    return out


def test_generated_stage_notebooks_hold_the_daily_defaults():
    spec = yaml.safe_load((ROOT / "pipelines" / "daily.yaml").read_text(encoding="utf-8"))
    tree = D.PIPELINES["daily"]
    checked = 0
    for stage in spec["stages"]:
        known = {**tree["shared"], **tree.get(stage["name"], {})}
        cell = _parameters_cell(ROOT / "pipelines" / stage["notebook"])
        for key, value in cell.items():
            if key in known and key not in _SET_BY_RUNNER:
                checked += 1
                assert _same(value, known[key]), f"{stage['notebook']}: {key} = {value!r} but research.defaults says {known[key]!r}"
    assert checked >= 20


def test_stage_functions_default_to_the_daily_pipeline():
    from research.alerts.rules import AlertRules
    from research.stages import steps as stages

    tree = D.PIPELINES["daily"]
    for name in ("ingest", "model", "backtest", "risk", "signals"):
        found = _defaults(getattr(stages, f"{name}_stage"))
        for key, value in {**tree["shared"], **tree.get(name, {})}.items():
            if key in found and found[key] is not None:
                assert _same(found[key], value), f"stages.{name}_stage({key}={found[key]!r}) but research.defaults says {value!r}"
    rules = {f.name: f.default for f in dataclasses.fields(AlertRules)}
    for key, value in tree["signals"].items():
        if key in rules:
            assert rules[key] == value, f"AlertRules.{key} = {rules[key]!r} but research.defaults says {value!r}"
