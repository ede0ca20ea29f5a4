"""The as-of date of a market pipeline's run (the ``as_of`` hook of ``pipelines/daily.yaml``).

The engine calls :func:`resolve_as_of` with a run's shared parameters (see
:mod:`research.workflow.hooks`); the date is then fixed for the whole run and every stage.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from research.data.asof import AsOf

__all__ = ["resolve_as_of"]


def resolve_as_of(shared: Mapping[str, Any]) -> str:
    """The as-of label of a run (:attr:`AsOf.label <research.data.asof.AsOf.label>`): the ``as_of``
    parameter, else a default from the data.

    Offline sources (sample, synthetic) default to the last bar any of ``symbols`` has at
    ``interval`` (a daily bar: its whole session; an hourly bar: that instant), so a run on
    bundled data is reproducible; live sources default to today (daily bars) or the current
    hour (hourly bars: an instant, also in the 00:xx hour, never the whole day), in UTC.
    """
    interval = shared.get("interval") or "1d"
    if shared.get("as_of"):
        return AsOf.parse(shared["as_of"], interval=interval).label
    symbols = shared.get("symbols") or []
    source_name = shared.get("source") or "sample"
    if symbols and source_name in {"sample", "synthetic"}:
        from research.data import get_source

        src = get_source(source_name)
        last = max(src.fetch(s, None, None, interval).index.max() for s in symbols)
        return AsOf.parse(last, interval=interval).label
    return AsOf.now(interval=interval).label
