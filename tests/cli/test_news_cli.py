"""``workbench news fetch | list | show`` (each with ``--json``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from research.cli import app, main
from tests.data.fakes.server import FakeServer, Reply

runner = CliRunner()
RSS = (Path(__file__).parents[1] / "news" / "data" / "yahoo_finance_rss.xml").read_bytes()


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("NEWSAPI_KEY", raising=False)
    return tmp_path


def _json(args: list[str]) -> object:
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def test_fetch_list_and_show_synthetic_news():
    out = _json(["news", "fetch", "SPX", "ETH-USD", "--start", "2010-01-01", "--end", "2010-06-30", "--json"])
    assert out["synthetic"] is True and out["report"]["duplicates"] == 0 and out["symbols"]["SPX"]["items"] > 100
    listed = _json(["news", "list", "--json"])
    assert [row["source"] for row in listed] == ["synthetic"] and listed[0]["symbols"] == ["ETH-USD", "SPX"]
    shown = _json(["news", "show", "SPX", "--rows", "3", "--json"])
    assert len(shown["latest"]) == 3 and shown["synthetic"] is True
    assert shown["latest"][0]["available"] >= shown["latest"][1]["available"]
    text = runner.invoke(app, ["news", "fetch", "SPX", "--start", "2010-01-01", "--end", "2010-06-30"]).output
    assert "SYNTHETIC" in text and "nothing fetched" in text
    assert "synthetic" in runner.invoke(app, ["news", "list"]).output
    assert "SPX:" in runner.invoke(app, ["news", "show", "SPX", "--rows", "2"]).output


def test_fetch_from_a_feed_and_from_a_file(tmp_path, monkeypatch):
    with FakeServer() as srv:
        srv.route(r"/aapl", Reply(200, RSS, {"Content-Type": "application/rss+xml"}))
        cfg = tmp_path / "news.yaml"
        cfg.write_text(f"feeds:\n  - name: aapl\n    url: {srv.url}/aapl\n    symbols: [AAPL]\nkeywords:\n  MSFT: [Microsoft]\n")
        monkeypatch.setenv("WORKBENCH_NEWS_CONFIG", str(cfg))
        out = _json(["news", "fetch", "AAPL", "MSFT", "--source", "rss", "--json"])
    assert out["report"]["quarantined"] == 2 and out["symbols"] == {
        "AAPL": {"items": 4, "mean_sentiment": out["symbols"]["AAPL"]["mean_sentiment"]},
        "MSFT": {"items": 1, "mean_sentiment": out["symbols"]["MSFT"]["mean_sentiment"]}}
    assert _json(["news", "show", "AAPL", "--source", "rss", "--json"])["quarantined"] == 2
    archive = tmp_path / "mine.csv"
    archive.write_text("date,title,symbol\n2024-01-02,Acme beats estimates,ACME\n")
    out = _json(["news", "fetch", "ACME", "--source", "files", "--path", str(archive), "--json"])
    assert out["symbols"]["ACME"]["items"] == 1 and out["symbols"]["ACME"]["mean_sentiment"] > 0


@pytest.mark.parametrize(("args", "says"), [
    (["news", "fetch", "AAPL", "--source", "newsapi"], "NEWSAPI_KEY=<your key>"),
    (["news", "fetch", "--source", "files"], "--path FILE"),
    (["news", "show", "AAPL", "--source", "rss"], "workbench news fetch SYMBOL --source rss"),
    (["news", "fetch", "--source", "nope"], "unknown news source 'nope'"),
])
def test_user_errors_are_one_line_with_exit_code_2(args, says, capsys):
    with pytest.raises(SystemExit) as info:
        main(args)
    err = capsys.readouterr().err
    assert info.value.code == 2 and says in err and len(err.strip().splitlines()) == 1
