"""Typed errors of the data layer. Every message names the source, symbol and range."""

from __future__ import annotations

__all__ = [
    "DataError",
    "InvalidRequestError",
    "SymbolNotFoundError",
    "SourceError",
    "RateLimitError",
    "SourceUnavailableError",
    "BadResponseError",
    "EmptyResultError",
    "CircuitOpenError",
    "SchemaError",
    "StoreError",
    "CorruptDatasetError",
]


class DataError(Exception):
    """Base class of every data-layer error."""


class InvalidRequestError(DataError, ValueError):
    """The request itself is wrong (empty range, start after end, unknown interval).

    Raised before any network request is made.
    """


class SymbolNotFoundError(DataError, KeyError):
    """The source does not know the symbol (or the store holds no such dataset)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class SchemaError(DataError, ValueError):
    """A frame does not have the columns or dtypes the workbench expects."""


class StoreError(DataError, OSError):
    """The store could not be read or written (read-only directory, disk full, lock timeout)."""


class CorruptDatasetError(StoreError):
    """A stored file does not match the sha256 its manifest records, or cannot be decoded.

    Carries ``path``; the remedy is to ingest the dataset again with ``refresh=True``.
    """

    def __init__(self, message: str, *, path: str = "") -> None:
        super().__init__(message)
        self.path = path

    def __str__(self) -> str:  # OSError would format its args as a tuple
        return str(self.args[0]) if self.args else ""


class SourceError(DataError):
    """A live source failed. Carries ``source``, ``symbol`` and a ``retryable`` flag."""

    retryable = False

    def __init__(self, message: str, *, source: str = "", symbol: str = "") -> None:
        super().__init__(message)
        self.source = source
        self.symbol = symbol


class RateLimitError(SourceError):
    """HTTP 429 or the source's own rate-limit answer.

    ``retry_after`` is in seconds; ``retry_at`` (when known) is the wall-clock instant, in
    seconds since the epoch, from which the source may be asked again.
    """

    retryable = True

    def __init__(
        self, message: str, *, source: str = "", symbol: str = "", retry_after: float | None = None,
        retry_at: float | None = None,
    ) -> None:
        super().__init__(message, source=source, symbol=symbol)
        self.retry_after = retry_after
        self.retry_at = retry_at


class SourceUnavailableError(SourceError):
    """5xx, connection reset, timeout: the source may answer later."""

    retryable = True


class BadResponseError(SourceError):
    """The source answered 200 with something that is not data (HTML, truncated JSON)."""


class EmptyResultError(SourceError):
    """The source answered with no rows for the range ("possibly delisted")."""


class CircuitOpenError(SourceError):
    """Calls to the source are suspended after repeated failures."""
