"""Market data: sources, validation, the cached store, and ``load_prices``.

See :mod:`research.types` for the OHLCV schema and :mod:`research.data.schema` for validation.
"""

from research.data.calendars import CRYPTO, EQUITY, Calendar, get_calendar
from research.data.errors import (
    BadResponseError,
    CircuitOpenError,
    CorruptDatasetError,
    DataError,
    EmptyResultError,
    InvalidRequestError,
    RateLimitError,
    SchemaError,
    SourceError,
    SourceUnavailableError,
    StoreError,
    SymbolNotFoundError,
)
from research.data.loader import close_matrix, ingest_many, load_prices
from research.data.schema import ValidationReport, ValidationResult, validate_ohlcv
from research.data.sources import Source, get_source
from research.data.store import StaleDataWarning, Store

__all__ = [
    "load_prices", "close_matrix", "ingest_many", "Store", "StaleDataWarning",
    "validate_ohlcv", "ValidationReport", "ValidationResult", "Source", "get_source",
    "Calendar", "EQUITY", "CRYPTO", "get_calendar",
    "DataError", "InvalidRequestError", "SymbolNotFoundError", "SchemaError", "StoreError",
    "CorruptDatasetError", "SourceError", "RateLimitError", "SourceUnavailableError", "BadResponseError",
    "EmptyResultError", "CircuitOpenError",
]
