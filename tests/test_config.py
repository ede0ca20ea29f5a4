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
    assert s.coingecko_demo_api_key == "CG-secret-123" and s.freshness_ttl == 60
    assert "CG-secret-123" not in repr(s) and "***" in repr(s)
    monkeypatch.setenv("COINGECKO_DEMO_API_KEY", "from-env")
    assert get_settings().coingecko_demo_api_key == "from-env"


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
