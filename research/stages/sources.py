"""The source of a market pipeline's run (the ``parameters`` hook of ``pipelines/hourly.yaml``).

``source: auto`` means: the crypto exchange in the settings (``ccxt``, ``WORKBENCH_CCXT_EXCHANGE``)
when it answers, else synthetic bars. The engine calls :func:`resolve_source` once, before the
as-of date is worked out, so every stage of the run reads the same source; the choice and the
reason (which source was passed over, and why) go into the ``source_note`` parameter, which the
ingest stage writes into ``data_report`` and the summary publishes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from research.data.sources import choose_source

__all__ = ["resolve_source"]

log = logging.getLogger(__name__)


def resolve_source(shared: Mapping[str, Any]) -> dict[str, Any]:
    """``{"source": <the source taken>, "source_note": <which, and why>}`` for a run's parameters."""
    name = shared.get("source") or "sample"
    chosen, note = choose_source(name, symbols=list(shared.get("symbols") or []), interval=shared.get("interval") or "1d")
    if chosen != name:
        log.info("source %s: %s", name, note)
    updates: dict[str, Any] = {"source": chosen}
    if "source_note" in shared:
        updates["source_note"] = note
    return updates
