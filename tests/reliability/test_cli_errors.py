"""CLI user errors: one line on stderr (what, which input, what to do), a non-zero exit code
(2 for input errors), no traceback unless ``--debug`` or ``WORKBENCH_DEBUG=1``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from research.cli import main
from research.data import Store
from research.data.resilience import CircuitBreaker, Guard, RetryPolicy
from research.data.sources.synthetic import synthetic_ohlcv

GROUP = "cli and files"
ROOT = Path(__file__).parents[2]


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    root = tmp_path / "data"
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(root))
    monkeypatch.delenv("WORKBENCH_DEBUG", raising=False)
    return root


@pytest.fixture
def files(tmp_path):
    d = tmp_path / "files"
    d.mkdir()
    (d / "EMPTY.csv").write_bytes(b"")
    (d / "BIN.csv").write_bytes(bytes(range(256)) * 40)
    pd.DataFrame({"when": ["2024-01-02"], "px": [1.0], "qty": [3]}).to_csv(d / "COLS.csv", index=False)
    (d / "HEADER.csv").write_text("Date,Open,High,Low,Close,Volume\n")
    days = pd.bdate_range("2024-03-04", "2024-03-15")
    stamps = [pd.Timestamp(x).tz_localize("America/New_York").isoformat() for x in days]  # -05:00 then -04:00
    pd.DataFrame({"Date": stamps, "Open": 10.0, "High": 11.0, "Low": 9.0, "Close": 10.5, "Volume": 100}).to_csv(
        d / "NYDST.csv", index=False)
    return d


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(argv)
    out = capsys.readouterr()
    code = info.value.code
    return (0 if code is None else int(code)), out.out, out.err


def one_error_line(err: str) -> list[str]:
    return [line.split("\r")[-1].strip() for line in err.replace("\r", "\n\r").split("\n") if "error:" in line]


def check(case, name: str, argv: list[str], capsys, *, code: int, needles: list[str]) -> str:
    got, out, err = run(argv, capsys)
    lines = one_error_line(err)
    text = lines[0] if lines else err.strip()[-160:]
    ok = (got == code and len(lines) == 1 and "Traceback" not in err + out
          and all(n.lower() in text.lower() for n in needles))
    case(GROUP, name, f"exit {code}, one line with {needles}", f"exit {got}: {text[:110]}", ok)
    return text


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_network_for_yahoo(data_dir, capsys, case, monkeypatch, tmp_path):
    import research.data.resilience as resilience
    import research.data.sources.yahoo as yahoo
    from tests.data.fakes.server import FakeServer
    from tests.data.fakes.yahoo import reset_yfinance, yahoo_session

    reset_yfinance(str(tmp_path / "yf"))
    with FakeServer() as dead:
        session = yahoo_session(dead)
    session.get_adapter("https://x").port = _closed_port()  # nothing listens: connection refused
    monkeypatch.setattr(yahoo, "_DEFAULT_SESSION", session)
    monkeypatch.setitem(resilience._GUARDS, "yahoo", Guard(
        "yahoo", policy=RetryPolicy(attempts=2, base_delay=0.01, deadline=10, timeout=2),
        breaker=CircuitBreaker(failure_threshold=50), sleep=lambda s: None))
    check(case, "no network: data fetch AAPL --source yahoo", ["data", "fetch", "AAPL", "--source", "yahoo"],
          capsys, code=1, needles=["yahoo AAPL", "network"])


@pytest.mark.parametrize("name,symbol,needles", [
    ("empty file", "EMPTY", ["EMPTY.csv", "empty", "expected"]),
    ("binary file", "BIN", ["BIN.csv", "not a text CSV", "expected"]),
    ("wrong column names", "COLS", ["COLS.csv", "['when', 'px', 'qty']", "column_map"]),
    ("header only, no rows", "HEADER", ["HEADER.csv", "no rows"]),
    ("no file for the symbol", "NOPE", ["NOPE", "tried"]),
])
def test_bad_files_are_one_line(data_dir, files, capsys, case, name, symbol, needles):
    check(case, f"data fetch, {name}", ["data", "fetch", symbol, "--source", "files", "--directory", str(files)],
          capsys, code=2, needles=needles)


def test_validate_of_a_binary_file(data_dir, files, capsys, case):
    check(case, "data validate, binary file", ["data", "validate", str(files / "BIN.csv")], capsys,
          code=2, needles=["BIN.csv"])


@pytest.mark.parametrize("name,argv,needles", [
    ("bad interval", ["data", "fetch", "SPX", "--interval", "7m"], ["interval", "7m"]),
    ("start after end", ["data", "fetch", "SPX", "--start", "2020-02-01", "--end", "2020-01-01"], ["after"]),
    ("unknown source", ["data", "fetch", "SPX", "--source", "nope"], ["nope"]),
])
def test_bad_requests_are_usage_errors(data_dir, capsys, case, name, argv, needles):
    check(case, f"data fetch, {name}", argv, capsys, code=2, needles=needles)


def test_read_only_data_folder(data_dir, capsys, case, read_only_fs):
    read_only_fs()
    check(case, "read-only data folder: data fetch SPX", ["data", "fetch", "SPX"], capsys,
          code=1, needles=["not writable", "WORKBENCH_DATA_DIR"])


def test_corrupt_stored_file(data_dir, capsys, case):
    store = Store(data_dir)
    store.write("synthetic", "1d", "BAD", synthetic_ohlcv("BAD", bars=50))
    path = store.path("synthetic", "1d", "BAD")
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0x10
    path.write_bytes(bytes(data))
    check(case, "corrupt stored file: data show", ["data", "show", "BAD", "--source", "synthetic"], capsys,
          code=1, needles=["corrupt", "BAD", "refresh"])


def test_dst_offsets_in_a_csv_load(data_dir, files, capsys, case):
    code, out, err = run(["data", "fetch", "NYDST", "--source", "files", "--directory", str(files)], capsys)
    stored = Store(data_dir).read("files", "1d", "NYDST")
    dates = [str(t.date()) for t in stored.index]
    want = [str(d.date()) for d in pd.bdate_range("2024-03-04", "2024-03-15")]
    case(GROUP, "CSV with -05:00/-04:00 offsets (DST)", f"exit 0, {len(want)} session dates",
         f"exit {code}, {len(dates)} dates {dates[4:6]}", code == 0 and dates == want)


def _console(argv: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "research", *argv], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **env}, timeout=120)


def test_debug_shows_the_traceback(data_dir, files, case):
    argv = ["data", "fetch", "EMPTY", "--source", "files", "--directory", str(files)]
    env = {"WORKBENCH_DATA_DIR": str(data_dir)}
    plain = _console(argv, env)
    debug = _console(["--debug", *argv], env)
    by_env = _console(argv, {**env, "WORKBENCH_DEBUG": "1"})
    observed = (plain.returncode, "Traceback" in plain.stderr, debug.returncode, "Traceback" in debug.stderr,
                "Traceback" in by_env.stderr)
    case(GROUP, "console script: plain / --debug / WORKBENCH_DEBUG=1", (2, False, 2, True, True), observed,
         observed == (2, False, 2, True, True))


def test_ctrl_c_is_one_line(data_dir, capsys, case, monkeypatch):
    import research.data.loader as loader

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(loader, "ingest_many", interrupted)
    monkeypatch.setattr("research.data.ingest_many", interrupted)
    code, out, err = run(["data", "fetch", "SPX"], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    case(GROUP, "Ctrl-C during data fetch", "exit 130, at most one line, no traceback",
         f"exit {code}, {len(lines)} line(s)", code == 130 and len(lines) <= 1 and "Traceback" not in err + out)


def test_show_of_a_dataset_not_stored(data_dir, capsys, case):
    check(case, "data show of a dataset not stored", ["data", "show", "NOPE"], capsys, code=2,
          needles=["NOPE", "workbench data fetch NOPE"])


def test_fetch_without_symbols_from_a_live_source(data_dir, capsys, case):
    check(case, "data fetch with no symbols from yahoo", ["data", "fetch", "--source", "yahoo"], capsys, code=2,
          needles=["name the symbols", "yahoo"])


@pytest.mark.parametrize("name,argv,needles", [
    ("files source without --directory", ["data", "fetch", "SPX", "--source", "files"], ["--directory"]),
    ("a start that is not a date", ["data", "fetch", "SPX", "--start", "2020-13-45"], ["--start", "2020-13-45", "YYYY-MM-DD"]),
])
def test_more_input_errors(data_dir, capsys, case, name, argv, needles):
    check(case, f"data fetch, {name}", argv, capsys, code=2, needles=needles)


def test_list_marks_a_corrupt_dataset(data_dir, capsys, case):
    store = Store(data_dir)
    store.write("synthetic", "1d", "OK", synthetic_ohlcv("OK", bars=20))
    store.path("synthetic", "1d", "BROKEN").write_bytes(b"PAR1 not a parquet file PAR1")
    code, out, err = run(["data", "list"], capsys)
    ok = code == 0 and "Traceback" not in out + err and "corrupt" in out and "OK" in out
    case(GROUP, "data list with a corrupt dataset", "exit 0, the dataset marked corrupt", f"exit {code}, corrupt shown: {'corrupt' in out}", ok)
