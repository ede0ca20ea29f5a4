"""A CLI that starts at once: the root knows its commands by a static table and imports a
command's module only when that command is used; ``workbench config`` shows every setting."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from research.cli import COMMANDS, app, load_command, main
from research.config import refresh_settings

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("plotly", "ipywidgets", "tensorflow", "keras", "mlflow", "pandas", "numpy", "papermill", "nbformat",
         "distributed", "sqlalchemy", "voila", "research.viz", "research.data", "research.paper",
         "research.workflow", "research.models")


def _loaded_after(code: str) -> list[str]:
    """The heavy modules in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    probe = textwrap.dedent(f"""
        import sys
        try:
            {code}
        except SystemExit:
            pass
        heavy = {HEAVY!r}
        print(sorted({{m.split('.')[0] if not m.startswith('research') else '.'.join(m.split('.')[:2])
                      for m in sys.modules if any(m == h or m.startswith(h + '.') for h in heavy)}}))
    """)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    return eval(out.stdout.strip().splitlines()[-1])  # a list literal printed by the probe


def test_import_research_cli_loads_nothing_heavy():
    assert _loaded_after("import research.cli") == []


@pytest.mark.parametrize("argv", [["--help"], ["nosuch"], ["backtest", "x", "--fees", "abc"], ["dashboards", "--port", "x"],
                                  ["paper", "replay", "a", "--from", "2019-01-01", "--to", "2018-01-01"],
                                  ["data", "fetch", "--start", "2020-13-45"]])
def test_help_and_refused_arguments_load_nothing_heavy(argv):
    assert _loaded_after(f"from research.cli import main; main({argv!r})") == []


@pytest.mark.parametrize("param", ["epochs=abc", "nope=1", "interval=2d"])
def test_a_refused_pipeline_parameter_loads_no_library(param):
    """The plan check reads the spec and its hooks' sources; only the engine's spec module loads."""
    code = f"from research.cli import main; main(['pipeline', 'run', 'pipelines/daily.yaml', '-p', {param!r}])"
    assert [m for m in _loaded_after(code) if m != "research.workflow"] == []


def test_the_command_table_is_what_the_modules_register():
    root = typer.main.get_command(app)
    ctx = typer.Context(root)
    assert root.list_commands(ctx)[: len(COMMANDS)] == list(COMMANDS)
    for name, (_module, short) in COMMANDS.items():
        command = load_command(name)
        assert command.name == name
        assert command.get_short_help_str(limit=1000) == short, name


def test_group_help_still_lists_its_commands():
    result = CliRunner().invoke(app, ["paper", "--help"])
    assert result.exit_code == 0
    for sub in ("start", "replay", "show", "check", "export"):
        assert sub in result.output


def test_a_misspelt_command_is_refused_with_a_suggestion(capsys):
    with pytest.raises(SystemExit) as info:
        main(["dat"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1 and "Did you mean 'data'?" in err


def test_config_shows_each_setting_and_its_origin(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    monkeypatch.delenv("WORKBENCH_LEDGER_URL", raising=False)
    monkeypatch.delenv("NEWSAPI_KEY", raising=False)
    monkeypatch.setenv("WORKBENCH_CCXT_EXCHANGE", "kraken")
    url = f"sqlite:///{tmp_path / 'book.db'}"
    (tmp_path / ".env").write_text(f"WORKBENCH_LEDGER_URL={url}\nNEWSAPI_KEY=news-key-secret\n")
    refresh_settings()
    with pytest.raises(SystemExit) as info:
        main(["config"])
    out = capsys.readouterr().out
    assert info.value.code == 0
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines()}
    assert lines["WORKBENCH_LEDGER_URL"] == [".env", url]
    assert lines["WORKBENCH_CCXT_EXCHANGE"] == ["environment", "kraken"]
    assert lines["NEWSAPI_KEY"] == [".env", "**********"] and "news-key-secret" not in out
    with pytest.raises(SystemExit):
        main(["config", "--json"])
    rows = {r["variable"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["WORKBENCH_LEDGER_URL"]["origin"] == ".env" and rows["WORKBENCH_LEDGER_URL"]["value"] == url
    assert rows["WORKBENCH_FRESHNESS_TTL"]["origin"] in ("default", "environment")


def test_the_dashboards_help_names_the_servers_port():
    from research.viz.panels.server import DEFAULT_PORT

    result = CliRunner().invoke(app, ["dashboards", "--help"])
    assert result.exit_code == 0 and f"default {DEFAULT_PORT}" in result.output


def test_every_command_module_is_in_the_table():
    """A module of research/cli with a register() function is reached through COMMANDS (else it is never loaded)."""
    import ast

    modules = {module for module, _ in COMMANDS.values()}
    for path in sorted((ROOT / "research" / "cli").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if any(isinstance(n, ast.FunctionDef) and n.name == "register" for n in tree.body):
            assert f"research.cli.{path.stem}" in modules, f"add the commands of {path.name} to research.cli.COMMANDS"
