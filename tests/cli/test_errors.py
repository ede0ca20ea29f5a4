"""Errors that name their cause: each kind of failure gives one line naming the component and
what to do, with its own exit code; "a bug in the workbench" only for what is one."""

from __future__ import annotations

import socket
import sqlite3
import time

import pytest
import sqlalchemy as sa

from research.cli import main
from research.cli.errors import diagnose
from research.config import refresh_settings


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(argv)
    out = capsys.readouterr()
    return int(info.value.code or 0), out.out, out.err


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(autouse=True)
def _plain(monkeypatch, tmp_path):
    monkeypatch.delenv("WORKBENCH_DEBUG", raising=False)
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "data"))
    refresh_settings()


# ---------------------------------------------------------------- infrastructure


@pytest.mark.parametrize("url, needles", [
    ("nonsense", ["database URL", "WORKBENCH_LEDGER_URL", "not valid"]),
    ("foo://host/db", ["database URL", "foo", "WORKBENCH_LEDGER_URL"]),
])
def test_a_malformed_ledger_url_is_a_configuration_error(monkeypatch, capsys, url, needles):
    monkeypatch.setenv("WORKBENCH_LEDGER_URL", url)
    code, _, err = run(["paper", "list"], capsys)
    line = one_line(err)
    assert code == 2 and all(n in line for n in needles) and "a bug in the workbench" not in line


@pytest.mark.parametrize("url, driver, package", [
    ("mysql+mysqldb://u@127.0.0.1/db", "MySQLdb", "mysqlclient"),
    ("postgresql+pg8000://u@127.0.0.1/db", "pg8000", "pg8000"),
])
def test_a_missing_database_driver_names_the_driver_and_the_package(monkeypatch, capsys, url, driver, package):
    monkeypatch.setenv("WORKBENCH_LEDGER_URL", url)
    code, _, err = run(["paper", "list"], capsys)
    line = one_line(err)
    assert code == 1 and f"driver {driver} is not installed" in line and f"pip install {package}" in line
    assert "a bug in the workbench" not in line


def test_an_unreachable_database_names_it_with_the_password_masked(monkeypatch, capsys):
    pytest.importorskip("psycopg2")
    monkeypatch.setenv("WORKBENCH_LEDGER_URL", f"postgresql://desk:hunter2@127.0.0.1:{_closed_port()}/book")
    code, _, err = run(["paper", "list"], capsys)
    line = one_line(err)
    assert code == 1 and "ledger database at postgresql://desk:***@127.0.0.1" in line and "cannot be reached" in line
    assert "hunter2" not in err and "a bug in the workbench" not in line


def test_a_full_database_says_it_is_full():
    engine = sa.create_engine("sqlite://")
    with pytest.raises(sa.exc.OperationalError) as info:  # a real "database or disk is full" from SQLite
        with engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA max_page_count = 2")
            conn.exec_driver_sql("CREATE TABLE t (x TEXT)")
            for _ in range(100):
                conn.exec_driver_sql("INSERT INTO t VALUES (?)", ("x" * 4000,))
    assert isinstance(info.value.orig, sqlite3.OperationalError)
    from research.paper.db import LedgerError

    try:  # as the ledger reports it: its own error, the database's as the cause
        raise LedgerError("session 2018-01-03 of 'acct' could not be written") from info.value
    except LedgerError as wrapped:
        found = diagnose(wrapped)
    assert found.kind == "infrastructure" and found.code == 1 and "is full" in found.text and "free space" in found.text


def test_no_space_left_on_a_device_is_named():
    with pytest.raises(OSError) as info, open("/dev/full", "w") as f:  # noqa: PTH123
        f.write("x")
        f.flush()
    found = diagnose(info.value)
    assert found.kind == "infrastructure" and "no space left" in found.text and "a bug in the workbench" not in found.text


def test_a_lost_dask_scheduler_is_named_not_called_a_bug():
    import dask
    from distributed import Client, LocalCluster

    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}), LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        future = client.submit(time.sleep, 5)
        time.sleep(0.5)
        client.sync(cluster.scheduler.close)
        with pytest.raises(Exception) as info:  # noqa: B017 - whatever distributed raises is the case
            future.result(timeout=60)
    found = diagnose(info.value)
    assert found.kind == "infrastructure" and "Dask scheduler" in found.text and "--cluster local" in found.text
    assert "a bug in the workbench" not in found.text


def test_an_unreachable_dask_scheduler_through_the_command(capsys):
    import dask

    address = f"tcp://127.0.0.1:{_closed_port()}"
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        code, _, err = run(["sweep", "ma_crossover", "--symbol", "GOOG", "--grid", "fast=2:3", "--grid", "slow=5:6",
                            "--cluster", address, "--out", "/tmp/never-written"], capsys)
    line = one_line(err)
    assert code == 1 and f"Dask scheduler at {address}" in line and "a bug in the workbench" not in line


def test_an_unreachable_mlflow_server_is_named(monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    url = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(Exception) as info:  # noqa: B017 - MLflow's own error is the case
        MlflowClient(tracking_uri=url).search_experiments()
    found = diagnose(info.value)
    assert found.kind == "infrastructure" and f"MLflow tracking server at {url}" in found.text
    assert "MLFLOW_TRACKING_URI" in found.text and "a bug in the workbench" not in found.text


def test_debug_shows_the_traceback_of_an_infrastructure_error(monkeypatch, capsys):
    monkeypatch.setenv("WORKBENCH_LEDGER_URL", "nonsense")
    code, _, err = run(["--debug", "paper", "list"], capsys)
    assert code == 2 and "Traceback" in err and "ArgumentError" in err


# ---------------------------------------------------------------- input and usage


@pytest.mark.parametrize("argv, needles", [
    (["paper", "replay", "acct", "--from", "2019-01-01", "--to", "2018-01-01"], ["--from 2019-01-01 is after --to"]),
    (["paper", "replay", "acct", "--from", "2019-01-01", "--to", "2019-13-01"], ["--to", "2019-13-01", "not a date"]),
    (["paper", "step", "acct", "--as-of", "yesterday"], ["--as-of", "yesterday", "not a date"]),
    (["backtest", "ma_crossover", "--start", "2019-01-01", "--end", "2018-01-01"], ["is after --end"]),
    (["backtest", "ma_crossover", "--symbol", "NOPE"], ["no symbol 'NOPE'"]),
    (["backtest", "ma_crossover", "--fees", "abc"], ["--fees", "valid number"]),
    (["sweep", "--format", "xlsx"], ["--format", "csv or parquet"]),
    (["data", "fetch", "--start", "2020-02-30"], ["--start", "2020-02-30"]),
    (["paper", "nosuch"], ["No such command 'nosuch'"]),
    (["config", "--bogus"], ["No such option: --bogus"]),
])
def test_input_errors_exit_2_with_the_real_reason(capsys, argv, needles):
    code, _, err = run(argv, capsys)
    line = one_line(err)
    assert code == 2 and all(n in line for n in needles), line
    assert "a bug in the workbench" not in line


def test_a_replay_range_without_bars_is_an_input_error(capsys):
    code, _, _ = run(["paper", "start", "acct", "--strategy", "ma_crossover", "--symbols", "SPX", "--cash", "1000"],
                     capsys)
    assert code == 0
    code, _, err = run(["paper", "replay", "acct", "--from", "2030-01-01", "--to", "2030-02-01"], capsys)
    line = one_line(err)
    assert code == 2 and "no bar of SPX between 2030-01-01 and 2030-02-01" in line


def test_a_wrong_setting_is_named_with_where_it_was_set(monkeypatch, capsys):
    monkeypatch.setenv("WORKBENCH_TF_THREADS", "many")
    code, _, err = run(["config"], capsys)
    line = one_line(err)
    assert code == 2 and "WORKBENCH_TF_THREADS='many' (from the environment)" in line


# ---------------------------------------------------------------- bugs


def test_only_a_bug_is_called_a_bug():
    assert "bug in the workbench" in diagnose(ZeroDivisionError("division by zero")).text
    assert diagnose(AttributeError("x")).code == 1
    for exc in (ValueError("bad"), KeyError("k"), FileNotFoundError(2, "No such file", "f.csv")):
        assert "a bug in the workbench" not in diagnose(exc).text
