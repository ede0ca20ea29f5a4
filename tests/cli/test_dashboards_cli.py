"""The ``workbench dashboards`` command (the server itself is exercised in tests/browser)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from research.cli import app
from research.viz.panels import server

runner = CliRunner()


@pytest.fixture
def served(monkeypatch):
    calls = []
    monkeypatch.setattr(server, "serve", lambda **kwargs: calls.append(kwargs))
    monkeypatch.delenv(server.TOKEN_ENV, raising=False)
    return calls


def test_help_says_what_it_serves_and_how():
    result = runner.invoke(app, ["dashboards", "--help"])
    assert result.exit_code == 0
    for text in ("Voila", "127.0.0.1", "--port", "--ip", "--open", "--token", "--pool-size"):
        assert text in result.output


def test_defaults_to_loopback(served):
    result = runner.invoke(app, ["dashboards"])
    assert result.exit_code == 0, result.output
    (call,) = served
    assert call["ip"] == "127.0.0.1" and call["port"] == server.DEFAULT_PORT
    assert call["open_browser"] is False and call["token"] is None


def test_public_bind_without_token_is_refused(served):
    result = runner.invoke(app, ["dashboards", "--ip", "0.0.0.0"])
    assert result.exit_code == 2
    assert "refusing to serve" in result.output and server.TOKEN_ENV in result.output
    assert served == []


def test_public_bind_with_a_token_from_the_environment(served, monkeypatch):
    monkeypatch.setenv(server.TOKEN_ENV, "t0ken-long-enough-for-a-bind")
    result = runner.invoke(app, ["dashboards", "--ip", "0.0.0.0", "--port", "9000", "--open", "--pool-size", "0"])
    assert result.exit_code == 0, result.output
    (call,) = served
    assert call["token"] == "t0ken-long-enough-for-a-bind" and call["port"] == 9000 and call["open_browser"] is True
    assert call["pool_size"] == 0
    assert "t0ken-long-enough-for-a-bind" not in result.output


def test_a_short_token_is_refused_with_how_to_make_one(served, monkeypatch):
    monkeypatch.setenv(server.TOKEN_ENV, "t0ken")
    result = runner.invoke(app, ["dashboards", "--ip", "0.0.0.0", "--port", "9000", "--pool-size", "0"])
    assert result.exit_code == 2 and served == []
    assert "at least 16 characters" in result.output and "t0ken" not in result.output
