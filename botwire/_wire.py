"""The batch wire format shared by the HTTP backend and ``botwire serve``.

A batch travels as ``{"ops": [...]}`` and comes back as ``{"results": [...]}``. Values travel as
their JSON text inside a JSON string, so neither side decodes a value it only passes along.
Errors come back as ``{"detail": message, "error": class name, ...}`` with an HTTP status.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from botwire import _values, errors
from botwire.backends.base import (
    OP_NAMES,
    Append,
    Clear,
    Delete,
    Expire,
    Get,
    Incr,
    KeyInfo,
    KeyPage,
    ListKeys,
    ListNamespaces,
    Op,
    Put,
    Record,
    Restore,
)
from botwire.errors import BotWireError, InvalidRequest

OP_TYPES: dict[str, type] = {name: cls for cls, name in OP_NAMES.items()}
MAX_PAGE = 1000


def op_to_json(op: Op) -> dict[str, Any]:
    """An operation as the JSON object the batch endpoint takes."""
    data = op._asdict()
    data["op"] = OP_NAMES[type(op)]
    return data


# -- decoding and validating what a client sent --------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def check_json_text(text: object, max_bytes: int) -> str:
    """``text`` when it is the JSON text of a value within the size limit."""
    if not isinstance(text, str):
        raise InvalidRequest("a value must travel as its JSON text, in a string")
    try:
        json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise errors.InvalidValue("value is not valid JSON text") from None
    size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise errors.ValueTooLarge(f"value is {size} bytes of JSON; the limit is {max_bytes} bytes")
    return text


def _optional(data: dict[str, Any], name: str, check: Callable[[Any], Any]) -> Any:
    value = data.get(name)
    return None if value is None else check(value)


def _flag(data: dict[str, Any], name: str) -> bool:
    value = data.get(name, False)
    if not isinstance(value, bool):
        raise InvalidRequest(f"{name} must be true or false")
    return value


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name, "")
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} must be a string")
    return value


def op_from_json(data: object, max_value_bytes: int) -> Op:
    """Validate one operation a client sent; raise a :class:`BotWireError` naming what is wrong."""
    if not isinstance(data, dict):
        raise InvalidRequest("each operation must be a JSON object")
    kind = data.get("op")
    if kind == "list_namespaces":
        return ListNamespaces(_text(data, "prefix"))
    if kind not in OP_TYPES:
        raise InvalidRequest(f"unknown operation {kind!r}; expected one of {sorted(OP_TYPES)}")
    ns = _values.check_namespace(data.get("ns"))
    if kind == "clear":
        return Clear(ns)
    if kind == "list_keys":
        limit = _values.check_int(data.get("limit", MAX_PAGE), "limit")
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidRequest(f"limit must be between 1 and {MAX_PAGE}")
        after = _optional(data, "after", lambda v: _text({"after": v}, "after"))
        return ListKeys(ns, _text(data, "prefix"), limit, after)
    key = _values.check_key(data.get("key"))
    ttl = _values.check_ttl(data.get("ttl"))
    if kind == "get":
        return Get(ns, key, data.get("value", True) is not False, _flag(data, "refresh_ttl"))
    if kind == "delete":
        return Delete(ns, key)
    if kind == "put":
        value = check_json_text(data.get("value"), max_value_bytes)
        if_version = _optional(data, "if_version", lambda v: _values.check_int(v, "if_version"))
        return Put(ns, key, value, ttl, if_version, _flag(data, "keep_ttl"))
    if kind == "append":
        values = data.get("values")
        if not isinstance(values, list) or not values:
            raise InvalidRequest("append needs a non-empty list of values")
        max_len = _optional(data, "max_len", lambda v: _values.check_int(v, "max_len"))
        if max_len is not None and max_len < 1:
            raise InvalidRequest("max_len must be at least 1")
        items = tuple(check_json_text(v, max_value_bytes) for v in values)
        return Append(ns, key, items, max_len)
    if kind == "incr":
        return Incr(ns, key, _values.check_int(data.get("by", 1), "by"))
    if kind == "expire":
        return Expire(ns, key, ttl)
    # restore
    value = check_json_text(data.get("value"), max_value_bytes)
    times = [_optional(data, f, lambda v: _values.check_int(v, "time")) for f in _RESTORE_TIMES]
    if times[0] is None or times[1] is None:
        raise InvalidRequest("restore needs created_at and updated_at")
    return Restore(ns, key, value, times[0], times[1], times[2], ttl)


_RESTORE_TIMES = ("created_at", "updated_at", "expires_at")


# -- results --------------------------------------------------------------------------------


def result_to_json(result: Any) -> Any:
    """A result as JSON data (records and key pages become objects)."""
    if isinstance(result, Record):
        return result._asdict()
    if isinstance(result, KeyPage):
        return {"keys": [list(info) for info in result.keys], "next_cursor": result.next_cursor}
    return result


def result_from_json(op: Op, data: Any) -> Any:
    """The inverse of :func:`result_to_json`, for the operation that produced it."""
    if type(op) is Get:
        return None if data is None else Record(**data)
    if type(op) is ListKeys:
        return KeyPage([KeyInfo(*item) for item in data["keys"]], data["next_cursor"])
    return data


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
    if cls is errors.QuotaExceeded:
        wait = body.get("retry_after") if isinstance(body, dict) else None
        if wait is None and retry_after:
            wait = float(retry_after)
        return errors.QuotaExceeded(
            detail, retry_after=wait, quota=body.get("quota", "writes_per_day")
        )
    return cls(detail)
