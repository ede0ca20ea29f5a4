"""Settings: precedence, .env parsing, masked secrets."""

from __future__ import annotations

from pathlib import Path

from research.config import get_settings, read_dotenv


def test_environment_wins_and_paths_resolve(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    monkeypatch.setenv("WORKBENCH_DATA_DIR", "elsewhere")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    s = get_settings()
    assert s.home == tmp_path and s.data_dir == tmp_path / "elsewhere"
    assert s.tracking_uri == f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    assert s.store_dir == tmp_path / "elsewhere" / "store"
    assert get_settings(data_dir=tmp_path / "x").data_dir == tmp_path / "x"


def test_dotenv_is_read_and_keys_are_masked(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    monkeypatch.delenv("COINGECKO_DEMO_API_KEY", raising=False)
    (tmp_path / ".env").write_text("# comment\nexport COINGECKO_DEMO_API_KEY='CG-secret-123'\nWORKBENCH_FRESHNESS_TTL=60\n")
    s = get_settings()
    assert s.coingecko_demo_api_key.get_secret_value() == "CG-secret-123" and s.freshness_ttl == 60
    assert "CG-secret-123" not in repr(s) and "***" in repr(s)
    monkeypatch.setenv("COINGECKO_DEMO_API_KEY", "from-env")
    assert get_settings().coingecko_demo_api_key.get_secret_value() == "from-env"


def test_read_dotenv_missing_file_is_empty(tmp_path):
    assert read_dotenv(Path(tmp_path / "none")) == {}


def test_settings_are_resolved_once_per_state_of_env_and_dotenv(monkeypatch, tmp_path):
    from research.config import refresh_settings

    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    monkeypatch.delenv("WORKBENCH_FRESHNESS_TTL", raising=False)
    first = get_settings()
    assert get_settings() is first  # nothing changed: not read again
    (tmp_path / ".env").write_text("WORKBENCH_FRESHNESS_TTL=60\n")
    assert get_settings().freshness_ttl == 60  # the file changed
    monkeypatch.setenv("WORKBENCH_FRESHNESS_TTL", "30")
    assert get_settings().freshness_ttl == 30  # the environment changed
    refresh_settings()
    assert get_settings() is not first and get_settings().freshness_ttl == 30


# ---------------------------------------------------------------- one door for every setting

import ast  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

from research.config import (  # noqa: E402
    Settings,
    SettingsError,
    describe_settings,
    refresh_settings,
    settings_markdown,
)

ROOT = Path(__file__).resolve().parent.parent
# Process plumbing: variables handed to child processes or libraries, not workbench settings.
PLUMBING = {"TF_CPP_MIN_LOG_LEVEL", "MLFLOW_DISABLE_TELEMETRY", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "KERAS_BACKEND", "OMP_NUM_THREADS",
            "NUMBA_CACHE_DIR", "XDG_CACHE_HOME"}  # numba's cache folder (research.kernel_cache keys it)
# Reads of the environment by a non-literal key, allowed where the key is plumbing:
# compute.cluster.describe reports the worker thread limits (WORKER_ENV); the runner saves and
# restores the variables its kernels inherit.
DYNAMIC_READS = {"research/compute/cluster.py", "research/workflow/runner.py"}


def _environment_reads(path: Path) -> list[tuple[int, str]]:
    """(line, key) of every read of ``os.environ`` / ``os.getenv`` in ``path`` (key '?' if not a literal)."""
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        lines = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
        text = "\n".join(line for cell in lines for line in cell.splitlines() if not line.lstrip().startswith(("%", "!")))
    else:
        text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    found = []

    def key_of(node: ast.AST) -> str:
        return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else "?"

    def is_environ(node: ast.AST) -> bool:
        return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
            isinstance(node, ast.Name) and node.id == "environ")

    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner, attr = node.func.value, node.func.attr
            if is_environ(owner) and attr in ("get", "items", "keys", "values", "copy", "pop") and attr != "pop":
                found.append((node.lineno, key_of(node.args[0]) if node.args else "*"))
            elif attr == "getenv":
                found.append((node.lineno, key_of(node.args[0]) if node.args else "?"))
        elif isinstance(node, ast.Subscript) and is_environ(node.value) and isinstance(node.ctx, ast.Load):
            found.append((node.lineno, key_of(node.slice)))
    return found


def test_nothing_but_the_settings_reads_the_environment_for_a_setting():
    settings_vars = {field.json_schema_extra["env"] for field in Settings.model_fields.values()}
    bad = []
    for folder in ("research", "pipelines", "dashboards", "notebooks"):
        for path in sorted([*(ROOT / folder).rglob("*.py"), *(ROOT / folder).rglob("*.ipynb")]):
            rel = path.relative_to(ROOT).as_posix()
            if rel == "research/config.py":
                continue
            for line, key in _environment_reads(path):
                if key in PLUMBING:
                    continue
                if key in ("?", "*") and rel in DYNAMIC_READS:
                    continue
                if key in settings_vars or key.startswith("WORKBENCH_") or key in ("?", "*") or key.endswith("_KEY"):
                    bad.append(f"{rel}:{line} reads {key}")
    assert not bad, "read these through research.config.get_settings():\n" + "\n".join(bad)


def test_the_environment_check_sees_the_old_reads(tmp_path):
    # the reads this module's rule replaced, as they were written: each is caught
    old = tmp_path / "old.py"
    old.write_text('import os\nurl = os.environ.get("WORKBENCH_LEDGER_URL")\nk = os.getenv("NEWSAPI_KEY")\n'
                   'd = os.environ["WORKBENCH_DEBUG"]\ns = {v for k, v in os.environ.items()}\n'
                   'os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")\n')
    assert _environment_reads(old) == [(2, "WORKBENCH_LEDGER_URL"), (3, "NEWSAPI_KEY"), (4, "WORKBENCH_DEBUG"), (5, "*")]


@pytest.fixture
def home(monkeypatch, tmp_path):
    """A project folder of its own, with no setting in the environment."""
    for name in Settings.model_fields:
        monkeypatch.delenv(Settings.model_fields[name].json_schema_extra["env"], raising=False)
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    refresh_settings()
    return tmp_path


def test_ledger_url_in_dotenv_reaches_the_ledger(home):
    from research.paper import db

    url = f"sqlite:///{home / 'elsewhere' / 'book.db'}"
    (home / "elsewhere").mkdir()
    (home / ".env").write_text(f"WORKBENCH_LEDGER_URL={url}\n")
    assert db.default_url() == url
    from research.paper.book import list_accounts

    assert str(db.connect().url) == url
    assert list_accounts() == [] and (home / "elsewhere" / "book.db").exists()  # the book is there
    row = next(r for r in describe_settings() if r["setting"] == "ledger_url")
    assert row["origin"] == ".env" and row["value"] == url


def test_precedence_override_environment_dotenv_default(home, monkeypatch):
    (home / ".env").write_text("WORKBENCH_TF_THREADS=3\nWORKBENCH_CCXT_EXCHANGE=kraken\nWORKBENCH_DASK_SCHEDULER=tcp://a:1\n")
    monkeypatch.setenv("WORKBENCH_CCXT_EXCHANGE", "coinbase")
    monkeypatch.setenv("WORKBENCH_DASK_SCHEDULER", "tcp://b:2")
    s = get_settings(dask_scheduler="tcp://c:3")
    assert (s.tf_threads, s.ccxt_exchange, s.dask_scheduler, s.freshness_ttl) == (3, "coinbase", "tcp://c:3", 43200)
    assert [s.origin(n) for n in ("tf_threads", "ccxt_exchange", "dask_scheduler", "freshness_ttl")] == [
        ".env", "environment", "override", "default"]


def test_every_setting_is_read_from_dotenv(home):
    """A value in .env reaches every field (the door the ledger URL missed)."""
    samples = {"data_dir": "d", "runs_dir": "r", "tracking_uri": "sqlite:///x.db", "artifact_root": "a",
               "mlflow_ui_url": "http://ui:5000", "public_tracking_url": "https://mlflow.example", "ledger_url": "sqlite:///l.db", "freshness_ttl": "5",
               "dask_scheduler": "tcp://h:8786", "tf_threads": "4", "ccxt_exchange": "kraken",
               "ccxt_api_url": "http://127.0.0.1:9/", "alerts_config": "al.yaml", "news_config": "news/n.yaml",
               "figures": "page", "debug": "1", "pipeline_run": "run-1",
               "coingecko_api_key": "k1-aaaaaaaa", "coingecko_demo_api_key": "k2-aaaaaaaa",
               "newsapi_key": "k3-aaaaaaaa", "dashboards_token": "k4-aaaaaaaa", "webhook_secret": "k5-aaaaaaaa",
               "smtp_password": "k6-aaaaaaaa"}
    assert set(samples) == set(Settings.model_fields) - {"home"}
    env = {n: Settings.model_fields[n].json_schema_extra["env"] for n in samples}
    (home / ".env").write_text("".join(f"{env[n]}={v}\n" for n, v in samples.items()))
    s = get_settings()
    for row in describe_settings(s):
        if row["setting"] != "home":
            assert row["origin"] == ".env", row
    assert s.webhook_secret.get_secret_value() == "k5-aaaaaaaa" and s.secret("WORKBENCH_SMTP_PASSWORD") is not None
    assert s.data_dir == home / "d" and s.alerts_config == home / "al.yaml" and s.debug is True
    assert {"k1-aaaaaaaa", "k6-aaaaaaaa"} <= s.secret_values(lambda name: False)


def test_secrets_are_masked_everywhere_they_are_shown(home):
    (home / ".env").write_text("NEWSAPI_KEY=news-secret-123\nWORKBENCH_LEDGER_URL=postgresql://u:pw-secret@h/db\n")
    s = get_settings()
    shown = json.dumps(describe_settings(s)) + repr(s) + str(s)
    assert "news-secret-123" not in shown and "pw-secret" not in json.dumps(describe_settings(s))
    assert s.newsapi_key.get_secret_value() == "news-secret-123"


def test_a_wrong_value_names_its_variable_and_where_it_was_set(home, monkeypatch):
    (home / ".env").write_text("WORKBENCH_TF_THREADS=many\n")
    with pytest.raises(SettingsError, match=r"WORKBENCH_TF_THREADS='many' \(from \.env\)"):
        get_settings()
    monkeypatch.setenv("WORKBENCH_DASHBOARDS_TOKEN", "x")
    (home / ".env").write_text("WORKBENCH_FIGURES=sideways\n")
    with pytest.raises(SettingsError, match="WORKBENCH_FIGURES='sideways' \\(from \\.env\\)"):
        get_settings()


def test_the_configuration_page_is_generated_from_the_settings():
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert page == settings_markdown(), "regenerate: python -m research.config --markdown > docs/configuration.md"
    for field in Settings.model_fields.values():
        assert f"`{field.json_schema_extra['env']}`" in page


def test_python_m_research_config_prints_the_page():
    out = subprocess.run([sys.executable, "-m", "research.config", "--markdown"], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    assert out == settings_markdown()


def test_stage_kernels_inherit_the_project_and_read_its_dotenv(home, monkeypatch):
    """The runner hands its kernels the project folder: a kernel in another folder reads the same .env."""
    import os

    from research.workflow import runner

    url = f"sqlite:///{home / 'book.db'}"
    (home / ".env").write_text(f"WORKBENCH_LEDGER_URL={url}\n")
    monkeypatch.delenv("WORKBENCH_HOME")
    monkeypatch.setattr("research.config.project_root", lambda: home)  # as the runner resolved it
    refresh_settings()
    with runner._kernel_environment("sqlite:///t.db", "run-1"):
        kernel_env = dict(os.environ)
    assert kernel_env["WORKBENCH_HOME"] == str(home) and kernel_env["WORKBENCH_PIPELINE_RUN"] == "run-1"
    out = subprocess.run([sys.executable, "-c", "from research.config import get_settings as g; s = g(); "
                          "print(s.ledger_url, s.origin('ledger_url'), s.pipeline_run)"],
                         env=kernel_env, cwd="/", capture_output=True, text=True, check=True).stdout.split()
    assert out == [url, ".env", "run-1"]
    assert "WORKBENCH_HOME" not in os.environ  # restored after the run


def test_every_variable_the_documentation_names_is_a_setting():
    """README, docs, Makefile and pipeline files name only variables the settings read."""
    import re

    settings_vars = {field.json_schema_extra["env"] for field in Settings.model_fields.values()}
    build_only = {"WORKBENCH_DOCS_EXECUTE"}  # mkdocs.yml: whether the docs build executes the tutorials
    files = [ROOT / "README.md", ROOT / "Makefile", *(ROOT / "docs").glob("*.md"), *(ROOT / "pipelines").rglob("*")]
    named = {m for f in files if f.is_file() for m in re.findall(r"WORKBENCH_[A-Z_]+", f.read_text(errors="ignore"))}
    assert named - settings_vars - build_only == set()
