"""Market data: sources, validation, the cached store, and ``load_prices``.

See :mod:`research.types` for the OHLCV schema and :mod:`research.data.schema` for validation.

Names are imported on first use: a module that needs only the calendars or the freshness rule
(a parameter sweep, say) does not load the store, pyarrow or the settings (pydantic).
"""

from __future__ import annotations

from research.lazy import lazy_exports

_ERRORS = ("DataError", "InvalidRequestError", "SymbolNotFoundError", "SchemaError", "StoreError",
           "CorruptDatasetError", "SourceError", "RateLimitError", "SourceUnavailableError", "BadResponseError",
           "EmptyResultError", "CircuitOpenError")
_EXPORTS: dict[str, str | tuple[str, str]] = {
    "load_prices": "loader", "close_matrix": "loader", "ingest_many": "loader",
    "Store": "store", "StaleDataWarning": "store",
    "validate_ohlcv": "schema", "ValidationReport": "schema", "ValidationResult": "schema",
    "Source": "sources", "get_source": "sources",
    "Calendar": "calendars", "EQUITY": "calendars", "CRYPTO": "calendars", "get_calendar": "calendars",
    **dict.fromkeys(_ERRORS, "errors"),
}
__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
