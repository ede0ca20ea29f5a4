"""CSV files that are safe to open in a spreadsheet (OWASP's rule against CSV injection).

A text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read by
Excel, LibreOffice and Google Sheets as a formula; every CSV the workbench writes for people is
written through :func:`to_csv`, which prefixes such cells with a single quote (``'=1+2``), in
the header, the index and every text column, and quotes every cell holding a line break. Numbers are left as they are: numeric columns are
never touched, and a text cell that is just a number (``-12.5``, ``+3e-4``) is not a formula.

Example
-------
>>> import pandas as pd
>>> print(to_csv(pd.DataFrame({"name": ["=HYPERLINK(1)", "ok"], "pnl": [-1.5, 2.0]}), index=False,
...              lineterminator="\\n"), end="")
name,pnl
'=HYPERLINK(1),-1.5
ok,2.0
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import IO, Any

import pandas as pd

__all__ = ["FORMULA_START", "escape_cell", "escape_formulas", "to_csv"]

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet evaluate a cell."""
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def escape_cell(value: Any) -> Any:
    """``value`` with a leading ``'`` if it is text a spreadsheet would evaluate; anything else as it is."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def _escape_index(index: pd.Index) -> pd.Index:
    if isinstance(index, pd.MultiIndex):
        return pd.MultiIndex.from_tuples([tuple(escape_cell(v) for v in t) for t in index],
                                         names=[escape_cell(n) for n in index.names])
    if pd.api.types.is_numeric_dtype(index.dtype) or pd.api.types.is_datetime64_any_dtype(index.dtype):
        return index.rename(escape_cell(index.name))
    return pd.Index([escape_cell(v) for v in index], name=escape_cell(index.name), dtype=object)


def escape_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells, column names and index labels cannot run as formulas."""
    out = frame.copy()
    for i in range(out.shape[1]):
        s = out.iloc[:, i]
        if pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_datetime64_any_dtype(s.dtype):
            continue
        out.isetitem(i, s.astype(object).map(escape_cell))
    out.columns = _escape_index(out.columns)
    out.index = _escape_index(out.index)
    return out


def to_csv(frame: pd.DataFrame, path_or_buf: str | Path | IO[str] | None = None, **kwargs: Any) -> str | None:
    """``frame.to_csv(path_or_buf, **kwargs)`` with every formula-like text cell escaped.

    Lines end with ``\\r\\n`` (RFC 4180) unless ``lineterminator`` is given: the CSV writer then
    quotes every cell holding a carriage return or a newline, so no cell can start a new row
    (whose first cell would not be escaped).
    """
    kwargs.setdefault("lineterminator", "\r\n")
    return escape_formulas(frame).to_csv(path_or_buf, **kwargs)
