"""Specs and parameters are checked before any kernel starts."""

from __future__ import annotations

import pytest

from research.workflow.spec import (
    SpecError,
    coerce,
    load_spec,
    looks_secret,
    notebook_parameters,
    plan_run,
)


def test_two_stage_spec_plans_typed_parameters(tmp_path, toys):
    spec = load_spec(toys.two_stage_spec(tmp_path, "toy"))
    assert [s.name for s in spec.stages] == ["numbers", "total"]
    assert spec.parameters["n"].type == "int" and spec.parameters["as_of"].type == "date"
    plan = plan_run(spec, ["n=7", "as_of=2020-01-02T00:00:00"])
    assert plan.shared["n"] == 7 and plan.shared["as_of"] == "2020-01-02T00:00:00"  # midnight stays an instant
    assert plan_run(spec, ["as_of=2020-01-02"]).shared["as_of"] == "2020-01-02"  # a date stays its whole day
    # each stage gets only the shared parameters its notebook declares
    assert "n" in plan.stage_parameters["numbers"] and "n" not in plan.stage_parameters["total"]
    assert plan.stage_parameters["total"]["fail_if_exists"] == ""


def test_notebook_parameters_reads_names_and_types(toys):
    params = notebook_parameters(toys.NOTEBOOKS / "01-numbers.ipynb")
    assert {k: v.type for k, v in params.items()} == {"output_dir": "str", "as_of": "str", "n": "int", "scale": "float"}


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["bogus=1"], "-p bogus: unknown parameter"),
        (["n=five"], "parameter 'n' (int): expected int, got 'five'"),
        (["total.nope=1"], "stage 'total' has no parameter 'nope'"),
        (["nostage.x=1"], "no stage 'nostage'"),
        (["as_of=yesterday-ish"], "not an ISO date"),
        (["n"], "key=value"),
    ],
)
def test_bad_parameters_are_refused(tmp_path, overrides, expected, toys):
    spec = load_spec(toys.two_stage_spec(tmp_path, "toy"))
    with pytest.raises(SpecError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        plan_run(spec, overrides)


def test_notebook_without_parameters_cell_is_refused(tmp_path, toys):
    path = toys.write_spec(tmp_path, "np", [{"name": "hello", "notebook": "no-parameters.ipynb"}])
    with pytest.raises(SpecError, match="no cell tagged 'parameters'"):
        plan_run(load_spec(path))


def test_stage_parameter_unknown_to_notebook_is_refused(tmp_path, toys):
    path = toys.write_spec(tmp_path, "u", [{"name": "numbers", "notebook": "01-numbers.ipynb", "parameters": {"nn": 3}}])
    with pytest.raises(SpecError, match="unknown parameter 'nn'"):
        plan_run(load_spec(path))


def test_type_clash_with_the_notebook_default_is_refused(tmp_path, toys):
    path = toys.write_spec(tmp_path, "t", [{"name": "numbers", "notebook": "01-numbers.ipynb"}], {"n": "five"})
    with pytest.raises(SpecError, match="'n' is str in the spec but int in 01-numbers.ipynb"):
        plan_run(load_spec(path))


def test_secrets_are_never_parameters(tmp_path, monkeypatch, toys):
    path = toys.write_spec(tmp_path, "s", [{"name": "numbers", "notebook": "01-numbers.ipynb", "parameters": {"api_key": "x"}}])
    with pytest.raises(SpecError, match="looks like a secret"):
        plan_run(load_spec(path))
    monkeypatch.setenv("SOME_SERVICE_TOKEN", "s3cr3t-value-123")
    spec = load_spec(toys.two_stage_spec(tmp_path, "toy"))
    with pytest.raises(SpecError, match="equals a secret from the environment"):
        plan_run(spec, ["fail_if_exists=s3cr3t-value-123"])
    assert looks_secret("COINGECKO_API_KEY") and looks_secret("password") and not looks_secret("symbols")


def test_structural_errors(tmp_path, toys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nstages: []\n")
    with pytest.raises(SpecError, match="non-empty list"):
        load_spec(bad)
    path = toys.write_spec(tmp_path, "r", [{"name": "total", "notebook": "02-total.ipynb", "reads": ["numbers"]}])
    with pytest.raises(SpecError, match="reads \\['numbers'\\], which no earlier stage writes"):
        load_spec(path)
    path = toys.write_spec(tmp_path, "k", [{"name": "numbers", "notebook": "01-numbers.ipynb", "timeoutt": 3}])
    with pytest.raises(SpecError, match="unknown keys \\['timeoutt'\\]"):
        load_spec(path)
    path = toys.write_spec(tmp_path, "unused", [{"name": "numbers", "notebook": "01-numbers.ipynb"}], {"orphan": 1})
    with pytest.raises(SpecError, match="declared by no stage notebook"):
        plan_run(load_spec(path))
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "missing.yaml")


def test_coerce():
    assert coerce("list[str]", "SPX, IXIC") == ["SPX", "IXIC"]
    assert coerce("list[int]", "[1, 2]") == [1, 2]
    assert coerce("bool", "false") is False and coerce("bool", "yes") is True
    assert coerce("float", "0.5") == 0.5 and coerce("float", 2) == 2.0
    assert coerce("date", "2018-12-31 15:00") == "2018-12-31T15:00:00"
    with pytest.raises(ValueError, match="expected int"):
        coerce("int", 1.5)
    with pytest.raises(ValueError, match="expected bool"):
        coerce("bool", "maybe")


def test_as_of_labels_are_utc_whatever_zone_the_value_carries():
    import datetime as dt

    from research.workflow.spec import canonical_date

    # an aware date-time is the same instant in UTC, without a zone; a date stays a date
    assert canonical_date("2020-01-02T05:00:00+05:00") == "2020-01-02T00:00:00"
    assert canonical_date("2020-01-01T22:30:00-03:00") == "2020-01-02T01:30:00"
    assert canonical_date(dt.datetime(2020, 1, 2, 5, tzinfo=dt.timezone(dt.timedelta(hours=5)))) == "2020-01-02T00:00:00"
    assert coerce("date", "2020-01-02T05:00:00+05:00") == "2020-01-02T00:00:00"
    assert canonical_date("2020-01-02T05:00:00") == "2020-01-02T05:00:00"  # naive is read as UTC
    assert canonical_date("2020-01-02") == "2020-01-02"


def test_declared_bounds_refuse_out_of_range_values_before_execution(tmp_path, toys):
    path = toys.write_spec(tmp_path, "toy-bounds", [
        {"name": "numbers", "notebook": "01-numbers.ipynb", "writes": ["numbers"],
         "parameters": {"scale": {"default": 1.5, "exclusive_min": 0, "max": 10}}},
    ], {"n": {"type": "int", "default": 5, "min": 1, "max": 100}})
    spec = load_spec(path)
    assert spec.parameters["n"].allowed() == ">= 1 and <= 100"
    assert plan_run(spec, ["n=1", "numbers.scale=10"]).stage_parameters["numbers"] == {"as_of": None, "n": 1, "scale": 10.0}
    for overrides, expected in [
        (["n=-5"], "parameter 'n' = -5 is out of range: allowed >= 1 and <= 100 (from -p)"),
        (["n=101"], "parameter 'n' = 101 is out of range"),
        (["numbers.scale=0"], "stage 'numbers': parameter 'scale' = 0.0 is out of range: allowed > 0 and <= 10"),
        (["numbers.scale=nan"], "parameter 'scale' = nan is out of range"),
    ]:
        with pytest.raises(SpecError, match="refused before execution") as err:
            plan_run(spec, overrides)
        assert expected in str(err.value)


def test_bounds_and_choices_in_the_spec_are_checked_when_loading(tmp_path, toys):
    bad = [
        ({"n": {"type": "int", "default": 0, "min": 1}}, "the default of parameter 'n' = 0 is out of range"),
        ({"n": {"type": "str", "default": "a", "min": 1}}, "min applies to numbers"),
        ({"n": {"type": "int", "default": 1, "max": "ten"}}, "max must be a number"),
        ({"n": {"type": "str", "default": "c", "choices": ["a", "b"]}}, "is not allowed: expected one of ['a', 'b']"),
        ({"n": {"type": "int", "default": 1, "range": [1, 2]}}, "unknown keys ['range']"),
        ({"n": {"type": "int", "default": 1, "min_items": 1}}, "min_items must be an integer and applies to lists"),
        ({"n": {"type": "list[int]", "default": [], "min_items": 1}}, "'n' = [] has too few items"),
    ]
    for params, expected in bad:
        path = toys.write_spec(tmp_path, "toy-badbounds", [{"name": "numbers", "notebook": "01-numbers.ipynb"}], params)
        with pytest.raises(SpecError) as err:
            load_spec(path)
        assert expected in str(err.value)


@pytest.mark.parametrize("name", ["daily", "hourly"])
def test_shipped_pipelines_declare_bounds(name):
    from pathlib import Path

    spec = load_spec(Path(__file__).resolve().parents[2] / "pipelines" / f"{name}.yaml")
    assert spec.parameters["source"].choices and spec.parameters["interval"].choices
    with pytest.raises(SpecError, match="'source' = 'nowhere' is not allowed"):
        plan_run(spec, ["source=nowhere"])
    if name == "daily":
        for key in ("max_bars", "epochs", "retrain_every_days"):
            with pytest.raises(SpecError, match=f"'{key}' = -5(.0)? is out of range"):
                plan_run(spec, [f"{key}=-5"])
