"""botwire's exceptions.

Every error botwire raises on purpose is a :class:`BotWireError`::

    BotWireError
    ├── InvalidKey            (also ValueError)  empty, too long or control characters
    ├── InvalidValue          (also TypeError)   not JSON: set, bytes, datetime, NaN, ...
    ├── ValueTooLarge         (also ValueError)  above the value size limit
    ├── WrongType             (also TypeError)   incr on a non-integer, append on a non-list
    ├── VersionConflict                          a conditional write lost the race
    ├── QuotaExceeded                            a namespace quota is used up (retry_after)
    ├── Unauthorized                             no token, or a token the server does not know
    ├── Forbidden                                a token outside its namespace scope
    ├── InvalidRequest        (also ValueError)  any other request the store refuses
    ├── BackendUnavailable                       the store cannot be reached or opened
    │   └── Overloaded                           a request ran past the server's time limit
    └── MissingExtra          (also ImportError) an optional part whose packages are missing

Errors raised by a driver (sqlite3, psycopg, httpx) are translated once, where the backend
calls it, into the most specific of these.
"""

from __future__ import annotations


class BotWireError(Exception):
    """Base class of every error botwire raises on purpose."""


class InvalidKey(BotWireError, ValueError):
    """A key or namespace breaks a naming rule; the message names the rule."""


class InvalidValue(BotWireError, TypeError):
    """A value that JSON cannot carry exactly (set, bytes, datetime, NaN, non-str dict keys)."""


class ValueTooLarge(BotWireError, ValueError):
    """A value (or an appended item) is larger than the store's size limit.

    Attributes:
        size: bytes of the value's JSON text, when known.
        limit: the limit it passed, in bytes, when known.
    """

    def __init__(self, message: str, *, size: int | None = None, limit: int | None = None) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit


class WrongType(BotWireError, TypeError):
    """The stored value has the wrong type for the operation (incr on text, append on a dict)."""


class VersionConflict(BotWireError):
    """A write with ``if_version`` found another version; nothing was written.

    Attributes:
        key: the key that changed.
        expected: the version the caller asked for.
        actual: the version found, ``0`` when the key is absent.
    """

    def __init__(self, message: str, *, key: str = "", expected: int = 0, actual: int = 0) -> None:
        super().__init__(message)
        self.key = key
        self.expected = expected
        self.actual = actual


class QuotaExceeded(BotWireError):
    """A namespace quota is used up.

    Attributes:
        retry_after: seconds until the quota admits writes again, or ``None`` when waiting
            will not help (a bytes-stored quota needs deletes instead).
        quota: which quota: ``"writes_per_day"`` or ``"bytes"``.
    """

    def __init__(
        self, message: str, *, retry_after: float | None = None, quota: str = "writes_per_day"
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.quota = quota


class Unauthorized(BotWireError):
    """The server wants a bearer token and got none, or one it does not accept."""


class Forbidden(BotWireError):
    """The token is valid but not for this namespace or not for writing."""


class InvalidRequest(BotWireError, ValueError):
    """The store refused a request as malformed."""


class BackendUnavailable(BotWireError):
    """The store could not be reached or opened; the message names it (passwords masked)."""


class Overloaded(BackendUnavailable):
    """The server stopped a request that ran longer than it allows (``max_request_seconds``);
    nothing it would have written was written.

    Attributes:
        retry_after: seconds to wait before trying again.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class MissingExtra(BotWireError, ImportError):
    """An optional part of botwire (an integration, the server) whose packages are not
    installed; the message says what to install."""

    def __init__(self, needs: str, extra: str) -> None:
        from botwire._version import install_hint

        super().__init__(f"{needs}: {install_hint(extra)}")
        self.extra = extra


__all__ = [
    "BackendUnavailable",
    "BotWireError",
    "Forbidden",
    "InvalidKey",
    "InvalidRequest",
    "InvalidValue",
    "MissingExtra",
    "Overloaded",
    "QuotaExceeded",
    "Unauthorized",
    "ValueTooLarge",
    "VersionConflict",
    "WrongType",
]
