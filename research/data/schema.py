"""The OHLCV schema and the validator every ingest goes through.

Schema (see :mod:`research.types`): a ``DatetimeIndex`` named ``timestamp`` in UTC, sorted and
unique; float64 columns ``open, high, low, close, volume`` and optionally ``adj_close``.
Daily, weekly and monthly bars are stamped at 00:00 UTC of their session date. ``volume`` may
be NaN when a source does not report it; prices may not.

Validation splits the rows it receives into three disjoint groups, so that
``received == stored + quarantined + duplicates`` always holds:

* **stored**: rows that satisfy every invariant;
* **quarantined**: rows kept aside with a reason code (:data:`REASONS`);
* **duplicates**: exact repeats of a stored row (same timestamp and values), dropped and counted.

Rows can also be **flagged** (kept, but listed in the report): suspected splits, persistent
unit shifts, bars off the calendar, and gaps against the calendar (missing bars; never filled).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from research.data.calendars import Calendar
from research.data.errors import SchemaError

__all__ = [
    "PRICE_COLUMNS",
    "COLUMNS",
    "REASONS",
    "FLAGS",
    "ValidationReport",
    "ValidationResult",
    "coerce_frame",
    "validate_ohlcv",
    "check_invariants",
]

PRICE_COLUMNS = ["open", "high", "low", "close"]
COLUMNS = [*PRICE_COLUMNS, "volume"]
OPTIONAL_COLUMNS = ["adj_close"]

#: Quarantine reason codes.
REASONS = {
    "BAD_TIMESTAMP": "timestamp missing or unparseable",
    "OFF_GRID_TIMESTAMP": "a daily or longer bar not stamped at 00:00 UTC (timezone or DST shift)",
    "DUPLICATE_CONFLICT": "same timestamp as a later row with different values (the later row is kept)",
    "NAN_PRICE": "open, high, low or close is missing",
    "NONPOSITIVE_PRICE": "a price is zero or negative",
    "NEGATIVE_VOLUME": "volume is negative",
    "OHLC_INCONSISTENT": "high below max(open, close, low) or low above min(open, close, high)",
    "UNIT_JUMP": "close jumps by 20x or more and reverts on the next bar (unit error)",
}

#: Flag codes (rows kept, listed in the report).
FLAGS = {
    "SPLIT_SUSPECT": "close-to-close ratio near a split ratio (2:1, 3:1, 1:2, ...)",
    "UNIT_SHIFT": "close changes level by 20x or more and stays there",
    "OFF_CALENDAR": "a bar on a day the calendar says is closed",
    "UNSORTED_INPUT": "rows arrived out of order and were sorted",
}

_UNIT = 20.0
_SPLIT_RATIOS = np.array([2, 3, 4, 5, 8, 10, 1 / 2, 1 / 3, 1 / 4, 1 / 5, 1 / 8, 1 / 10, 3 / 2, 2 / 3])
_TOL = 1e-9
_Flags = list[tuple[pd.Timestamp, str, str]]  # (timestamp, flag code, detail) of rows kept but flagged


@dataclass
class ValidationReport:
    """What happened to the rows of one ingest."""

    symbol: str
    source: str
    interval: str
    received: int = 0
    stored: int = 0
    quarantined: int = 0
    duplicates: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    flags: dict[str, int] = field(default_factory=dict)
    gaps: int = 0
    first: pd.Timestamp | None = None
    last: pd.Timestamp | None = None

    @property
    def accounted(self) -> bool:
        """``True`` when every received row is stored, quarantined or a duplicate."""
        return self.received == self.stored + self.quarantined + self.duplicates

    def to_dict(self) -> dict[str, object]:
        """A JSON-friendly view."""
        return {
            "symbol": self.symbol,
            "source": self.source,
            "interval": self.interval,
            "received": self.received,
            "stored": self.stored,
            "quarantined": self.quarantined,
            "duplicates": self.duplicates,
            "reasons": dict(self.reasons),
            "flags": dict(self.flags),
            "gaps": self.gaps,
            "first": None if self.first is None else self.first.isoformat(),
            "last": None if self.last is None else self.last.isoformat(),
        }


@dataclass
class ValidationResult:
    """Clean rows, quarantined rows (with ``reason`` and ``detail``), flags and the report."""

    clean: pd.DataFrame
    quarantine: pd.DataFrame
    flags: pd.DataFrame
    report: ValidationReport


def coerce_frame(raw: pd.DataFrame, *, symbol: str = "?") -> tuple[pd.DataFrame, pd.Series]:
    """Bring a raw frame to the schema's columns and dtypes.

    Returns the coerced frame (index as UTC ``DatetimeIndex``, NaT where unparseable) and a
    boolean Series marking rows whose timestamp could not be parsed.

    Raises
    ------
    SchemaError
        When a required column is missing altogether.
    """
    if not isinstance(raw, pd.DataFrame):
        raise SchemaError(f"{symbol}: expected a DataFrame of bars, got {type(raw).__name__}")
    frame = raw.copy()
    frame.columns = [str(c).strip().lower().replace(" ", "_") for c in frame.columns]
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise SchemaError(
            f"{symbol}: bars are missing column(s) {missing}; got {list(raw.columns)} "
            f"(expected {COLUMNS} and optionally {OPTIONAL_COLUMNS})"
        )
    keep = COLUMNS + [c for c in OPTIONAL_COLUMNS if c in frame.columns]
    frame = frame[keep]
    for col in keep:
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    index = pd.to_datetime(pd.Index(frame.index), errors="coerce", utc=True)
    frame.index = pd.DatetimeIndex(index, name="timestamp").as_unit("ns")
    bad_ts = pd.Series(frame.index.isna(), index=range(len(frame)))
    return frame, bad_ts


def validate_ohlcv(
    raw: pd.DataFrame,
    *,
    symbol: str,
    source: str,
    interval: str = "1d",
    calendar: Calendar | None = None,
) -> ValidationResult:
    """Validate raw bars; see the module docstring for the rules and the accounting."""
    report = ValidationReport(symbol=symbol, source=source, interval=interval, received=len(raw))
    frame, bad_ts = coerce_frame(raw, symbol=symbol)
    reasons = _Reasons(len(frame))
    _check_rows(frame, bad_ts, reasons, interval=interval)
    dup_exact = _duplicates(frame, reasons)
    flags: _Flags = []
    kept, kept_pos = _sorted_rows(frame, reasons.valid & ~dup_exact, flags)
    kept = _drop_spikes(kept, kept_pos, reasons)
    _level_flags(kept, flags)
    if calendar is not None and len(kept) and interval in ("1d", "1h"):  # 1h: checked on the 24/7 calendar
        _calendar_flags(kept, calendar, interval, report, flags)
    return _result(frame, kept, reasons, dup_exact, flags, report)


class _Reasons:
    """Why each received row is quarantined (``""`` while it is valid); the first reason found wins."""

    def __init__(self, n: int) -> None:
        self.code = np.full(n, "", dtype=object)
        self.detail = np.full(n, "", dtype=object)

    @property
    def valid(self) -> np.ndarray:
        """Rows no check has quarantined (yet)."""
        return self.code == ""

    def mark(self, mask: np.ndarray, code: str, text: np.ndarray | str = "") -> None:
        """Quarantine the still-valid rows of ``mask`` with ``code`` and ``text`` (one per row or shared)."""
        new = mask & (self.code == "")
        self.code[new] = code
        self.detail[new] = text[new] if isinstance(text, np.ndarray) else text


def _check_rows(frame: pd.DataFrame, bad_ts: pd.Series, reasons: _Reasons, *, interval: str) -> None:
    """The checks of one row on its own: timestamp, prices, volume, OHLC consistency."""
    reasons.mark(bad_ts.to_numpy(), "BAD_TIMESTAMP", "unparseable timestamp")
    if interval in ("1d", "1wk", "1mo"):
        idx = frame.index
        off = ~idx.isna() & (idx != idx.normalize())
        reasons.mark(np.asarray(off), "OFF_GRID_TIMESTAMP", np.asarray(idx.astype(str), dtype=object))

    prices = frame[PRICE_COLUMNS].to_numpy()
    reasons.mark(np.isnan(prices).any(axis=1), "NAN_PRICE")
    reasons.mark((prices <= 0).any(axis=1), "NONPOSITIVE_PRICE")
    reasons.mark(frame["volume"].to_numpy() < 0, "NEGATIVE_VOLUME")
    o, h, lo, c = prices.T
    scale = np.nanmax(np.abs(prices), axis=1, initial=0.0) * _TOL
    bad_ohlc = (h < np.maximum.reduce([o, c, lo]) - scale) | (lo > np.minimum.reduce([o, c, h]) + scale)
    reasons.mark(bad_ohlc, "OHLC_INCONSISTENT")


def _duplicates(frame: pd.DataFrame, reasons: _Reasons) -> np.ndarray:
    """Among rows still valid, identical repeats of a later row are returned (to drop and count),
    conflicting ones quarantined (the last occurrence is kept)."""
    n = len(frame)
    valid = reasons.valid
    dup_exact = np.zeros(n, dtype=bool)
    if not valid.any():
        return dup_exact
    sub = frame[valid].copy()
    sub["_pos"] = np.arange(n)[valid]
    ts_dup = sub.index.duplicated(keep="last")
    if ts_dup.any():
        cols = [c for c in sub.columns if c != "_pos"]
        last_rows = sub[~ts_dup]
        last_by_ts = last_rows[cols]
        cand = sub[ts_dup]
        ref = last_by_ts.loc[cand.index, cols].to_numpy()
        same = ((cand[cols].to_numpy() == ref) | (np.isnan(cand[cols].to_numpy()) & np.isnan(ref))).all(axis=1)
        pos = cand["_pos"].to_numpy()
        dup_exact[pos[same]] = True
        conflict = np.zeros(n, dtype=bool)
        conflict[pos[~same]] = True
        reasons.mark(conflict, "DUPLICATE_CONFLICT", "a later row has the same timestamp")
    return dup_exact


def _sorted_rows(frame: pd.DataFrame, keep: np.ndarray, flags: _Flags) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows to keep sorted by time (flagged when they were not), with their input positions."""
    kept = frame[keep]
    if not kept.index.is_monotonic_increasing:
        flags.append((kept.index.min(), "UNSORTED_INPUT", "rows sorted by timestamp"))
    kept = kept.sort_index(kind="stable")
    kept_pos = np.arange(len(frame))[keep][np.argsort(frame.index[keep].asi8, kind="stable")]
    return kept, kept_pos


def _drop_spikes(kept: pd.DataFrame, kept_pos: np.ndarray, reasons: _Reasons) -> pd.DataFrame:
    """Quarantine closes that jump >= 20x against both neighbours; repeated until none is left
    (two adjacent bad rows can hide each other), so stored rows re-validate unchanged."""
    close = kept["close"].to_numpy()
    while len(close) >= 3:
        ratio = close[1:] / close[:-1]
        big = (ratio >= _UNIT) | (ratio <= 1 / _UNIT)
        spike = np.zeros(len(close), dtype=bool)
        back = close[1:-1] / close[2:]
        spike[1:-1] = big[:-1] & (((ratio[:-1] >= _UNIT) & (back >= _UNIT)) | ((ratio[:-1] <= 1 / _UNIT) & (back <= 1 / _UNIT)))
        if not spike.any():
            break
        unit = np.zeros(len(reasons.code), dtype=bool)
        unit[kept_pos[spike]] = True
        reasons.mark(unit, "UNIT_JUMP", "close jumps 20x and reverts")
        kept, kept_pos = kept[~spike], kept_pos[~spike]
        close = kept["close"].to_numpy()
    return kept


def _level_flags(kept: pd.DataFrame, flags: _Flags) -> None:
    """Flag lasting level changes of 20x or more, and close-to-close ratios near a split ratio."""
    close = kept["close"].to_numpy()
    if len(close) < 2:
        return
    ratio = close[1:] / close[:-1]
    big = (ratio >= _UNIT) | (ratio <= 1 / _UNIT)
    ts = kept.index[1:]
    for t in ts[big]:
        flags.append((t, "UNIT_SHIFT", "close changed level by 20x or more"))
    near = np.abs(ratio[:, None] / _SPLIT_RATIOS[None, :] - 1).min(axis=1) < 0.03 if len(ratio) else np.array([], bool)
    split = near & ((ratio > 1.8) | (ratio < 1 / 1.8)) & ~big
    for t, r in zip(ts[split], ratio[split], strict=True):
        flags.append((t, "SPLIT_SUSPECT", f"close ratio {r:.3f}"))


def _calendar_flags(kept: pd.DataFrame, calendar: Calendar, interval: str, report: ValidationReport,
                    flags: _Flags) -> None:
    """Count the calendar's sessions missing from ``kept`` (``report.gaps``); flag bars on closed days."""
    expected = calendar.expected(kept.index[0], kept.index[-1], interval)
    if len(expected):
        report.gaps = int((~expected.isin(kept.index)).sum())
        off_cal = kept.index[~kept.index.isin(expected)]
        for t in off_cal:
            flags.append((t, "OFF_CALENDAR", f"{calendar.name} calendar is closed"))


def _result(frame: pd.DataFrame, kept: pd.DataFrame, reasons: _Reasons, dup_exact: np.ndarray,
            flags: _Flags, report: ValidationReport) -> ValidationResult:
    """The quarantine and flag frames, and the report's accounting of every received row."""
    bad = ~reasons.valid
    quarantine = frame[bad].copy()
    quarantine["reason"] = reasons.code[bad].astype(str)
    quarantine["detail"] = reasons.detail[bad].astype(str)
    flag_frame = pd.DataFrame(flags, columns=["timestamp", "flag", "detail"])

    report.stored = len(kept)
    report.quarantined = len(quarantine)
    report.duplicates = int(dup_exact.sum())
    report.reasons = {k: int(v) for k, v in quarantine["reason"].value_counts().items()}
    report.flags = {k: int(v) for k, v in flag_frame["flag"].value_counts().items()}
    if len(kept):
        report.first, report.last = kept.index[0], kept.index[-1]
    kept.attrs = {}
    return ValidationResult(clean=kept, quarantine=quarantine, flags=flag_frame, report=report)


def check_invariants(frame: pd.DataFrame) -> list[str]:
    """Return the invariants ``frame`` breaks (empty when it is valid stored data)."""
    problems = []
    idx = frame.index
    if not isinstance(idx, pd.DatetimeIndex) or str(idx.tz) != "UTC":
        problems.append("index is not a UTC DatetimeIndex")
    elif not idx.is_monotonic_increasing or not idx.is_unique:
        problems.append("index is not sorted and unique")
    for col in COLUMNS:
        if col not in frame.columns:
            problems.append(f"missing column {col}")
        elif frame[col].dtype != np.float64:
            problems.append(f"column {col} is {frame[col].dtype}, not float64")
    if problems:
        return problems
    p = frame[PRICE_COLUMNS].to_numpy()
    if np.isnan(p).any():
        problems.append("NaN price")
    if (p <= 0).any():
        problems.append("non-positive price")
    if (frame["volume"].to_numpy() < 0).any():
        problems.append("negative volume")
    o, h, lo, c = p.T
    scale = np.abs(p).max(axis=1, initial=0.0) * _TOL
    if ((h < np.maximum.reduce([o, c, lo]) - scale) | (lo > np.minimum.reduce([o, c, h]) + scale)).any():
        problems.append("OHLC inconsistent")
    return problems
