"""The batch wire format shared by the HTTP backend and ``botwire serve``.

A batch travels as ``{"ops": [...]}`` and comes back as ``{"results": [...]}``. Values travel as
their JSON text inside a JSON string, so neither side decodes a value it only passes along.
Errors come back as ``{"detail": message, "error": class name, ...}`` with an HTTP status.
"""

from __future__ import annotations

from typing import Any

from botwire import errors
from botwire.backends.base import (
    OP_NAMES,
    AddChange,
    Append,
    Change,
    ChangePage,
    Changes,
    Get,
    History,
    KeyInfo,
    KeyPage,
    ListKeys,
    ListNamespaces,
    NamespaceInfo,
    Op,
    Put,
    Record,
    Search,
    SearchHit,
)
from botwire.errors import BotWireError, InvalidRequest

MAX_PAGE = 1000


NEWER_FIELDS: dict[type, tuple[str, ...]] = {
    ListKeys: ("by_update",),
    ListNamespaces: ("sizes",),
    Put: ("vectors", "searchable"),
    Append: ("vectors", "searchable"),
    Search: ("mode", "vectors", "weight"),
}
"""Fields a client sends only when they differ from their defaults: a server from before them
understands every request that does not use them (and ignores them in one that does)."""


def op_to_json(op: Op) -> dict[str, Any]:
    """An operation as the JSON object the batch endpoint takes."""
    data = op._asdict()
    defaults = type(op)._field_defaults
    for name in NEWER_FIELDS.get(type(op), ()):
        if data[name] == defaults[name]:
            del data[name]
    if type(op) is AddChange:  # its own kind of change travels as "change"
        data["change"] = data.pop("op")
    data["op"] = OP_NAMES[type(op)]
    return data


# -- results --------------------------------------------------------------------------------


def result_to_json(result: Any) -> Any:
    """A result as JSON data (records and key pages become objects)."""
    if isinstance(result, Record):
        return result._asdict()
    if isinstance(result, ChangePage):
        return {"changes": [list(change) for change in result.changes], "cursor": result.cursor}
    if isinstance(result, list) and result and isinstance(result[0], Change):
        return [list(change) for change in result]
    if isinstance(result, KeyPage):
        keys = [list(info) if info.value is not None else list(info[:3]) for info in result.keys]
        return {"keys": keys, "next_cursor": result.next_cursor}
    return result


def result_from_json(op: Op, data: Any) -> Any:
    """The inverse of :func:`result_to_json`, for the operation that produced it."""
    if type(op) is Get:
        return None if data is None else Record(**data)
    if type(op) is ListKeys:
        return KeyPage([KeyInfo(*item) for item in data["keys"]], data["next_cursor"])
    if type(op) is ListNamespaces and op.sizes:
        return [NamespaceInfo(*item) for item in data]
    if type(op) is Changes:
        return ChangePage([Change(*change) for change in data["changes"]], data["cursor"])
    if type(op) is History:
        return [Change(*change) for change in data]
    if type(op) is Search:  # each hit travels as an array of its fields
        return [_hit(*fields) for fields in data]
    return data


def _hit(
    ns: str,
    key: str,
    score: float,
    value: str | None,
    items: Any,
    updated_at: int,
    created_at: int,
    context: Any = None,
) -> SearchHit:
    """A search hit from its fields (a server of an earlier release sends no ``context``)."""
    return SearchHit(
        ns, key, score, value, None if items is None else [tuple(i) for i in items],
        updated_at, created_at, None if context is None else [tuple(i) for i in context],
    )  # fmt: skip


# -- errors ---------------------------------------------------------------------------------

STATUS: dict[type, int] = {
    errors.InvalidKey: 400,
    errors.InvalidValue: 400,
    errors.WrongType: 409,
    errors.InvalidRequest: 400,
    errors.ValueTooLarge: 413,
    errors.VersionConflict: 412,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.BackendUnavailable: 503,
}


def error_status(exc: BotWireError) -> int:
    """The HTTP status for an error."""
    if isinstance(exc, errors.QuotaExceeded):
        return 413 if exc.quota == "bytes" else 429
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def error_to_json(exc: BotWireError) -> dict[str, Any]:
    """An error as the JSON body the server sends."""
    body: dict[str, Any] = {"detail": str(exc), "error": type(exc).__name__}
    if isinstance(exc, errors.VersionConflict):
        body.update(key=exc.key, expected=exc.expected, actual=exc.actual)
    if isinstance(exc, errors.QuotaExceeded):
        body.update(retry_after=exc.retry_after, quota=exc.quota)
    if isinstance(exc, errors.ValueTooLarge):
        body.update(size=exc.size, limit=exc.limit)
    if isinstance(exc, errors.Overloaded):
        body.update(retry_after=exc.retry_after)
    return body


_BY_STATUS: dict[int, type[BotWireError]] = {
    401: errors.Unauthorized,
    403: errors.Forbidden,
    412: errors.VersionConflict,
    413: errors.ValueTooLarge,
    429: errors.QuotaExceeded,
}


def error_from_json(status: int, body: Any, retry_after: str | None = None) -> BotWireError:
    """The error a server response stands for."""
    detail = body.get("detail") if isinstance(body, dict) else None
    if not isinstance(detail, str):
        detail = f"the server answered {status}: {detail or body!r}"
    name = body.get("error") if isinstance(body, dict) else None
    cls = getattr(errors, name, None) if isinstance(name, str) else None
    if not (isinstance(cls, type) and issubclass(cls, BotWireError)):
        cls = _BY_STATUS.get(status, errors.BackendUnavailable if status >= 500 else InvalidRequest)
    if cls is errors.VersionConflict:
        return errors.VersionConflict(
            detail, key=body.get("key", ""), expected=body.get("expected", 0),
            actual=body.get("actual", 0),
        )  # fmt: skip
    if cls is errors.ValueTooLarge:
        size, limit = body.get("size"), body.get("limit")
        return errors.ValueTooLarge(
            detail,
            size=size if isinstance(size, int) else None,
            limit=limit if isinstance(limit, int) else None,
        )
    if cls is errors.Overloaded:
        wait = body.get("retry_after") if isinstance(body, dict) else None
        seconds = float(wait) if isinstance(wait, (int, float)) else None
        return errors.Overloaded(detail, retry_after=seconds)
    if cls is errors.QuotaExceeded:
        wait = body.get("retry_after") if isinstance(body, dict) else None
        if wait is None and retry_after:
            wait = float(retry_after)
        return errors.QuotaExceeded(
            detail, retry_after=wait, quota=body.get("quota", "writes_per_day")
        )
    return cls(detail)
