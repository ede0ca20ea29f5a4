"""A hypothesis fuzz of the ``files`` source through the store.

Whatever the file holds (random bytes, CSV-ish text, random column names and values), an
ingest either stores valid bars or raises one of the workbench's typed errors
(:class:`~research.data.errors.DataError`); never another exception, and a failed ingest
leaves nothing in the store.
"""

from __future__ import annotations

import gzip
import tempfile
from collections import Counter
from datetime import date
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from research.data import DataError, Store
from research.data.schema import check_invariants
from research.data.sources.files import FilesSource

GROUP = "cli and files"
FUZZ = settings(max_examples=120, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

NAMES = ["Date", "date", "timestamp", "Open", "open", "High", "Low", "Close", "close", "Adj Close", "Volume",
         "vol", "v", "c", "price", "", " ", "Unnamed: 0", "DATE", "Open ", "x"]
CELLS = st.one_of(
    st.sampled_from(["2024-01-02", "2024-01-03T00:00:00-05:00", "2024-03-11T00:00:00-04:00", "2024-01-04 16:00",
                     "2024-13-45", "NaN", "", "null", "1e308", "-1", "0", "inf", "abc", "1,5", "\"", "2024-01-05Z"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-10**20, 10**20).map(str),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=12),
)


def _csv(header: list[str], rows: list[list[str]], sep: str) -> str:
    lines = [sep.join(header)] + [sep.join(r) for r in rows]
    return "\n".join(lines) + "\n"


CSV_TEXT = st.builds(
    _csv,
    st.lists(st.one_of(st.sampled_from(NAMES), st.text(max_size=8)), min_size=0, max_size=9),
    st.lists(st.lists(CELLS, min_size=0, max_size=9), max_size=25),
    st.sampled_from([",", ";", "\t", ", "]),
)

GOOD_ROW = st.tuples(st.dates(date(1990, 1, 1), date(2030, 12, 31)) | st.dates(), st.floats(0.01, 1e6), st.floats(0.0, 0.5), st.floats(0.0, 0.5), st.floats(0, 1e9))


def _valid_ish(names: list[str], rows: list[tuple]) -> str:
    body = [",".join(names)]
    for day, close, up, down, vol in rows:
        body.append(f"{day.isoformat()},{close},{close * (1 + up)},{close * (1 - down)},{close},{vol}")
    return "\n".join(body) + "\n"


ALIASES = [["Date", "date", "DATE", "timestamp", "Datetime", "day"], ["Open", "open", "o", " Open"],
           ["High", "high", "h", "HIGH "], ["Low", "low", "l"], ["Close", "close", "c", "Last", "price"],
           ["Volume", "volume", "vol", "v"]]
NAME_FOR = [st.integers(0, 9).flatmap(lambda k, a=a: st.text(max_size=6) if k == 0 else st.sampled_from(a))
            for a in ALIASES]

VALID_ISH = st.builds(
    _valid_ish,
    st.tuples(*NAME_FOR).map(list),
    st.lists(GOOD_ROW, min_size=0, max_size=30),
)


class Tally:
    def __init__(self) -> None:
        self.outcomes: Counter[str] = Counter()
        self.bad: list[str] = []

    def ingest(self, content: bytes, suffix: str = ".csv") -> None:
        with tempfile.TemporaryDirectory() as tmp:
            folder, root = Path(tmp) / "in", Path(tmp) / "data"
            folder.mkdir()
            (folder / f"FZ{suffix}").write_bytes(content)
            store = Store(root)
            try:
                res = store.ingest(FilesSource(folder), "FZ")
            except DataError:
                leftovers = [p.name for p in root.rglob("*") if p.is_file() and not p.name.endswith(".lock")]
                self._note("typed error", f"store written on error: {leftovers}" if leftovers else None)
                return
            except Exception as exc:  # noqa: BLE001 - the fuzz counts what escapes
                self._note("untyped", f"{type(exc).__name__}: {exc} for {content[:80]!r}")
                return
            problems = check_invariants(store.read("files", "1d", "FZ"))
            ok = not problems and res.report.accounted
            self._note("loaded", None if ok else f"{problems} accounted={res.report.accounted} for {content[:80]!r}")

    def _note(self, outcome: str, problem: str | None) -> None:
        self.outcomes[outcome] += 1
        if problem:
            self.bad.append(problem)


def _record(case, name: str, tally: Tally) -> None:
    n = sum(tally.outcomes.values())
    observed = (f"{n} files: {tally.outcomes['loaded']} loaded, {tally.outcomes['typed error']} typed errors, "
                f"{tally.outcomes['untyped']} untyped, {len(tally.bad)} problems {tally.bad[:2]}")
    case(GROUP, name, "valid bars or a typed error; 0 untyped; 0 partial writes", observed,
         not tally.bad and tally.outcomes["untyped"] == 0)


def test_random_bytes(case):
    tally = Tally()

    @FUZZ
    @given(st.binary(max_size=2048), st.sampled_from([".csv", ".csv.gz", ".parquet"]), st.booleans())
    def run(data: bytes, suffix: str, gzipped: bool) -> None:
        if suffix == ".csv.gz" and gzipped:
            data = gzip.compress(data)
        tally.ingest(data, suffix)

    run()
    _record(case, "fuzz: random bytes (csv, csv.gz, parquet)", tally)


def test_random_csv_text(case):
    tally = Tally()

    @FUZZ
    @given(CSV_TEXT)
    def run(text: str) -> None:
        tally.ingest(text.encode("utf-8", "surrogatepass"))

    run()
    _record(case, "fuzz: random CSV-ish text", tally)


def test_random_column_names_over_valid_rows(case):
    tally = Tally()

    @FUZZ
    @given(VALID_ISH)
    def run(text: str) -> None:
        tally.ingest(text.encode("utf-8", "surrogatepass"))

    run()
    _record(case, "fuzz: random column names over valid rows", tally)
    assert tally.outcomes["loaded"] > 0, "the generator never produced a loadable file"


def test_offsets_changing_across_dst_parse_daily_and_hourly(tmp_path, case):
    import pandas as pd

    days = pd.bdate_range("2024-03-06", "2024-03-13")  # New York springs forward on 2024-03-10
    hours = pd.date_range("2024-03-09 22:00", "2024-03-10 05:00", freq="h", tz="America/New_York")
    for name, stamps in [("D", [pd.Timestamp(d).tz_localize("America/New_York").isoformat() for d in days]),
                         ("H", [t.isoformat() for t in hours])]:
        pd.DataFrame({"Date": stamps, "Open": 10.0, "High": 11.0, "Low": 9.0, "Close": 10.5, "Volume": 1.0}).to_csv(
            tmp_path / f"{name}.csv", index=False)
    daily = FilesSource(tmp_path).fetch("D", None, None, "1d")
    hourly = FilesSource(tmp_path).fetch("H", None, None, "1h")
    ok = (list(daily.index) == [pd.Timestamp(d, tz="UTC") for d in days]
          and list(hourly.index) == list(hours.tz_convert("UTC")))
    case(GROUP, "offsets -05:00/-04:00 in one column (1d and 1h)", "session dates; UTC instants",
         f"{len(daily)} dates, {len(hourly)} hours, ok={ok}", ok)


def test_spreadsheet_exports_load(tmp_path, case):
    """Excel-style exports: a byte-order mark, ``;`` with decimal commas, day-first dates."""
    import pandas as pd

    days = pd.bdate_range("2024-01-01", "2024-02-15")
    rows = [f"{d:%d/%m/%Y};10,5;11,25;9,75;10,5;1000" for d in days]
    (tmp_path / "EU.csv").write_text("\n".join(["Date;Open;High;Low;Close;Volume", *rows]) + "\n", encoding="utf-8-sig")
    (tmp_path / "BOM.csv").write_text("Date,Open,High,Low,Close,Volume\n2024-01-02,1,2,0.5,1.5,10\n", encoding="utf-8-sig")
    store = Store(tmp_path / "data")
    eu = store.ingest(FilesSource(tmp_path), "EU")
    bom = store.ingest(FilesSource(tmp_path), "BOM")
    ok = (list(eu.frame.index) == [pd.Timestamp(d, tz="UTC") for d in days] and eu.frame["high"].eq(11.25).all()
          and eu.report.quarantined == 0 and len(bom.frame) == 1)
    case(GROUP, "spreadsheet exports (BOM; ';' and decimal comma; dd/mm/yyyy)", f"{len(days)} + 1 bars, 0 quarantined",
         f"{len(eu.frame)} + {len(bom.frame)} bars, {eu.report.quarantined} quarantined", ok)
