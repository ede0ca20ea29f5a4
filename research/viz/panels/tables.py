"""Tables on a dashboard page, written for a reader: column headings in words, numbers with
thousands separators and one precision per column (never scientific notation), timestamps as
dates, missing values empty, and a link downloading every row as CSV."""

from __future__ import annotations

import datetime
import html
import logging
import math
import re
from typing import Any

import ipywidgets as widgets
import numpy as np
import pandas as pd

from research.timeutil import to_naive_utc

__all__ = ["LABELS", "column_label", "number_text", "time_text", "cell_text", "table_html", "set_table",
           "csv_link", "table_row"]

log = logging.getLogger(__name__)


def _format_times(column: pd.Series) -> pd.Series:
    stamps = pd.to_datetime(column, utc=True)
    daily = bool((stamps.dropna() == stamps.dropna().dt.normalize()).all())
    return stamps.dt.strftime("%Y-%m-%d" if daily else "%Y-%m-%d %H:%M")


#: Column names whose label is not their words in sentence case (keys lower case).
LABELS = {
    "pnl": "P&L", "pnl_pct": "P&L [%]", "realised_pnl": "Realised P&L", "realized_pnl": "Realised P&L",
    "unrealised_pnl": "Unrealised P&L", "unrealized_pnl": "Unrealised P&L", "qty": "Quantity", "as_of": "As of",
    "order_id": "Order", "run_id": "Run", "mlflow_run_id": "MLflow run", "id": "ID", "var": "VaR", "cvar": "CVaR",
    "entry_time": "Entry", "exit_time": "Exit", "bar_time": "Bar", "return": "Return", "last_error": "Last error",
    "periods_per_year": "Bars per year", "n_obs": "Bars", "ts": "Time", "timestamp": "Time",
}
#: Words spelled their own way inside a snake_case name.
_WORDS = {"pnl": "P&L", "qty": "quantity", "id": "ID", "pct": "%", "usd": "USD", "var": "VaR", "cvar": "CVaR",
          "oos": "out-of-sample", "ann": "ann.", "mlflow": "MLflow", "ohlc": "OHLC", "sma": "SMA", "ema": "EMA",
          "rsi": "RSI", "macd": "MACD", "pbo": "PBO", "dsr": "DSR"}
_SNAKE = re.compile(r"[a-z][a-z0-9_ ]*?(?P<unit>\s*\[[^\]]*\])?")
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?")
_NUMBER_TEXT = re.compile(r"[+-]?(\d{1,3}(,\d{3})*|\d+)(\.\d+)?\s?%?")
_SCIENTIFIC = re.compile(r"\de[+-]?\d", re.IGNORECASE)


def column_label(name: object) -> str:
    """How a column is headed on a page: ``"entry_price"`` -> ``"Entry price"``, ``"pnl"`` -> ``"P&L"``,
    ``"depth [%]"`` -> ``"Depth [%]"`` (:data:`LABELS` first); names that are not lower-case words
    (``"Sharpe Ratio"``, ``"fast=7, slow=60"``) are kept as they are."""
    text = str(name)
    if text.lower() in LABELS:
        return LABELS[text.lower()]
    found = _SNAKE.fullmatch(text)
    if not found:
        return text
    unit = found["unit"] or ""
    words = [_WORDS.get(w, w) for w in re.split(r"[_ ]+", text[: len(text) - len(unit)].strip()) if w]
    if not words:
        return text
    label = " ".join(words)
    return label[:1].upper() + label[1:] + unit


def _missing_value(value: object) -> bool:
    if value is None or value is pd.NaT:
        return True
    try:
        return bool(pd.isna(value)) if not isinstance(value, (str, bytes)) else False
    except (TypeError, ValueError):
        return False


def _decimals(size: float) -> int:
    """Decimals for a number of this size: none from 100,000, 2 from 1, 4 significant digits below 1."""
    if size >= 1e5:
        return 0
    if size >= 1 or size == 0:
        return 2
    return min(10, 3 - math.floor(math.log10(size)))


def number_text(value: float | int, *, decimals: int | None = None) -> str:
    """A number as a page shows it: thousands separators and never scientific notation; whole
    numbers without decimals, else :func:`_decimals` (or ``decimals``)."""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if _missing_value(value):
        return ""
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    value = float(value) + 0.0  # no "-0"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    alone = decimals is None
    if decimals is None:
        if abs(value) < 1e15 and value == int(value):
            return f"{value:,.0f}"
        decimals = _decimals(abs(value))
    text = f"{value:,.{decimals}f}"
    if alone and decimals > 2:  # a number on its own: 0.0001230 -> 0.000123
        text = text.rstrip("0")
        text += "0" * max(0, 2 - len(text.partition(".")[2]))
    if text.strip("-0.,") == "":  # no "-0.00", no "0.0000000000"
        return "0" if decimals > 2 else text.lstrip("-")
    return text


def time_text(value: Any) -> str:
    """A timestamp (or ISO string) as a date, or date and HH:MM when it is not midnight (UTC)."""
    stamp = to_naive_utc(value)
    return stamp.strftime("%Y-%m-%d" if stamp == stamp.normalize() else "%Y-%m-%d %H:%M")


def cell_text(value: Any) -> str:
    """One cell of a table as a page shows it (see :func:`_table_markup` for the rules)."""
    if isinstance(value, (bool, np.bool_, int, float, np.integer, np.floating)):
        return number_text(value)  # booleans as yes/no, NaN empty
    if _missing_value(value):
        return ""
    if isinstance(value, (pd.Timestamp, datetime.datetime, np.datetime64)):
        return time_text(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, str) and _ISO.fullmatch(value.strip()):
        try:
            return time_text(value.strip())
        except (ValueError, TypeError):
            return value
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _column_texts(column: pd.Series, fmt: str | None) -> tuple[list[str], bool]:
    """The cells of one column as text, and whether the column is numeric (right-aligned)."""
    values = list(column)
    missing = column.isna().tolist()  # once per column, not per cell and per check
    if isinstance(column.dtype, np.dtype) and column.dtype.kind in "fiu":  # a numpy number column: no per-cell test
        numeric = bool(values)
    else:
        numeric = (all(m or _is_number(v) for v, m in zip(values, missing, strict=True))
                   and any(_is_number(v) for v in values))
    if fmt is not None:
        texts = []
        for v, m in zip(values, missing, strict=True):
            if m:
                texts.append("")
                continue
            try:
                text = format(v, fmt)
            except (TypeError, ValueError):
                text = cell_text(v)
            texts.append(cell_text(v) if _SCIENTIFIC.search(text) and _is_number(v) else text)
        return texts, numeric
    if isinstance(column.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(column):
        return list(_format_times(column).fillna("")), False
    stamps = [v for v in values if isinstance(v, (pd.Timestamp, datetime.datetime))
              or (isinstance(v, str) and _ISO.fullmatch(v.strip()))]
    if stamps and len(stamps) == missing.count(False):
        try:  # a column of timestamps: one precision for the whole column
            parsed = [None if m else pd.Timestamp(v.strip() if isinstance(v, str) else v)
                      for v, m in zip(values, missing, strict=True)]
            return list(_format_times(pd.Series(parsed, dtype=object)).fillna("")), False
        except (ValueError, TypeError):
            pass
    if numeric and pd.api.types.is_float_dtype(column):  # one precision for the whole column
        finite = column[np.isfinite(column.astype("float64"))].abs()
        if len(finite) and (finite == finite.round()).all() and (finite < 1e15).all():
            decimals = 0
        else:
            nonzero = finite[finite > 0]
            decimals = _decimals(float(nonzero.median())) if len(nonzero) else 2
        return [number_text(v, decimals=decimals) for v in values], True
    texts = [cell_text(v) for v in values]
    if not numeric:  # numbers already written as text ("12.35%", "2,391") are aligned as numbers
        written = [t for t in texts if t]
        numeric = bool(written) and all(_NUMBER_TEXT.fullmatch(t) for t in written)
    return texts, numeric


def _table_markup(frame: pd.DataFrame, *, max_rows: int, formats: dict[str, str] | None,
                  labels: dict[str, str] | None = None) -> str:
    """The HTML of a table as a page shows it (the CSV download keeps the raw frame).

    Headers: ``labels[column]`` when given, else :func:`column_label`. Cells: ``formats[column]``
    (a format spec) when given, unless it would print scientific notation; else numbers by
    :func:`number_text`, booleans as yes/no, timestamps and ISO timestamp strings as a date (or
    date and HH:MM when any of the column is intraday), missing values empty.
    """
    shown = frame.head(max_rows)
    formats, labels = formats or {}, labels or {}
    columns = []
    for i, col in enumerate(shown.columns):
        texts, numeric = _column_texts(shown.iloc[:, i], formats.get(col))
        columns.append((labels.get(col, column_label(col)), texts, numeric))
    num = ' class="wb-num"'
    head = "".join(f"<th{num if numeric else ''}>{html.escape(label)}</th>" for label, _, numeric in columns)
    rows = "".join("<tr>" + "".join(f"<td{num if numeric else ''}>{html.escape(texts[r])}</td>"
                                    for _, texts, numeric in columns) + "</tr>" for r in range(len(shown)))
    markup = (f'<div class="wb-table-scroll"><table class="wb-table-inner"><thead><tr>{head}</tr></thead>'
              f"<tbody>{rows}</tbody></table></div>")
    if len(frame) > max_rows:
        markup += f'<div class="wb-note">showing {max_rows} of {len(frame)} rows</div>'
    return markup


def table_html(frame: pd.DataFrame, *, dom_class: str, max_rows: int = 30,
               formats: dict[str, str] | None = None, labels: dict[str, str] | None = None,
               csv: pd.DataFrame | None = None) -> widgets.HTML:
    """A read-only HTML table of ``frame`` (values escaped), DOM classes ``wb-table`` and ``dom_class``.

    Headers and cells are written for a reader (:func:`_table_markup`: ``labels`` and ``formats``,
    keyed by the frame's own column names, win over the defaults); the CSV download under the
    table holds the frame as it is (full precision, original column names), or ``csv`` when the
    table shown is a digest of a larger one.
    """
    box = widgets.HTML()
    box.add_class("wb-table")
    box.add_class(dom_class)
    set_table(box, frame, max_rows=max_rows, formats=formats, labels=labels, csv=csv)
    return box


def csv_link(frame: pd.DataFrame, name: str) -> str:
    """A "download CSV" link holding every row of ``frame`` (a ``data:`` URL: nothing is fetched)."""
    import base64

    from research.data.csvsafe import to_csv

    data = base64.b64encode(to_csv(frame, index=False).encode("utf-8")).decode("ascii")
    filename = html.escape(f"{name}.csv", quote=True)
    return (f'<a class="wb-download" download="{filename}" href="data:text/csv;base64,{data}">'
            f"download CSV ({len(frame)} rows)</a>")


def set_table(box: widgets.HTML, frame: pd.DataFrame, *, max_rows: int = 30,
              formats: dict[str, str] | None = None, labels: dict[str, str] | None = None,
              csv: pd.DataFrame | None = None) -> None:
    """Replace the table shown by ``box``, with a link downloading all its rows as CSV (the raw
    ``frame``, or ``csv`` when the table shown is a digest of a larger one)."""
    if not len(frame):
        box.value = '<div class="wb-note">nothing to show</div>'
        return
    name = next((c[3:] for c in box._dom_classes if c.startswith("wb-") and c != "wb-table"), "table")
    box.value = (_table_markup(frame, max_rows=max_rows, formats=formats, labels=labels)
                 + csv_link(frame if csv is None else csv, name))


def table_row(*children: widgets.Widget, dom_class: str = "wb-table-row") -> widgets.HBox:
    """Tables (or sections holding them) side by side that wrap onto the next line when the
    screen is too narrow for both: they never overlap (DOM classes ``wb-row`` and ``dom_class``)."""
    box = widgets.HBox(list(children), layout=widgets.Layout(flex_flow="row wrap", align_items="flex-start",
                                                             width="100%"))
    box.add_class("wb-row")
    box.add_class(dom_class)
    return box
