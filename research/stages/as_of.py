"""The as-of date of a market pipeline's run (the ``as_of`` hook of ``pipelines/daily.yaml``).

The engine calls :func:`resolve_as_of` with a run's shared parameters (see
:mod:`research.workflow.hooks`); the date is then fixed for the whole run and every stage.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from research.workflow.spec import canonical_date

__all__ = ["resolve_as_of"]


def resolve_as_of(shared: Mapping[str, Any]) -> str:
    """The as-of date of a run: the ``as_of`` parameter, else a default from the data.

    Offline sources (sample, synthetic) default to the last bar any of ``symbols`` has at
    ``interval``, so a run on bundled data is reproducible; live sources default to today
    (daily bars) or the current hour (hourly bars), in UTC.
    """
    if shared.get("as_of"):
        return canonical_date(shared["as_of"])
    interval = shared.get("interval") or "1d"
    symbols = shared.get("symbols") or []
    source_name = shared.get("source") or "sample"
    if symbols and source_name in {"sample", "synthetic"}:
        from research.data import get_source

        src = get_source(source_name)
        last = max(src.fetch(s, None, None, interval).index.max() for s in symbols)
        return canonical_date(last)
    now = pd.Timestamp.now(tz="UTC")
    return canonical_date(now.floor("h") if interval == "1h" else now.normalize())
