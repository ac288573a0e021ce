"""Validation of keys, namespaces, values and ttls: one place for every backend and the server."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from botwire.errors import InvalidKey, InvalidRequest, InvalidValue, ValueTooLarge

MAX_KEY_BYTES = 512
"""Longest key, in bytes of UTF-8."""
MAX_NAMESPACE_BYTES = 256
"""Longest namespace, in bytes of UTF-8."""
MAX_TTL = 100 * 365.25 * 86400
"""Longest ttl: a hundred years, in seconds."""
DEFAULT_MAX_VALUE_BYTES = 1024 * 1024
RAISE_LIMIT = "raise it with max_value_bytes= or BOTWIRE_MAX_VALUE_BYTES"
"""How a client raises its value limit (a server's errors name the server's setting)."""
"""Largest value (and largest appended item), in bytes of its JSON text: 1 MiB by default."""
MAX_INT64 = 2**63 - 1
"""Largest version, length or count the stores keep (a signed 64-bit integer)."""
MAX_TIME_US = 253_402_300_799_999_999
"""The last microsecond of the year 9999: the latest time a store keeps (and ISO 8601 writes)."""

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
to_json = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode
"""Compact JSON text, exactly as botwire stores it."""
_CONTAINERS = (dict, list, tuple)


def has_control(text: str) -> bool:
    """Whether ``text`` holds a control character (C0, DEL or C1)."""
    return _CONTROL.search(text) is not None


_valid_keys: dict[str, None] = {}
"""Keys found valid lately (up to 4,096): a bot reads and writes the same keys over and over,
and a key found valid once is valid for good."""


def check_key(key: object, what: str = "key", max_bytes: int = MAX_KEY_BYTES) -> str:
    """Return ``key`` when it is a valid key, else raise :class:`InvalidKey` naming the rule."""
    if type(key) is str and max_bytes == MAX_KEY_BYTES and key in _valid_keys:
        return key
    if not isinstance(key, str):
        raise InvalidKey(f"{what} must be a str, not {type(key).__name__}")
    if not key:
        raise InvalidKey(f"{what} must not be empty")
    if _CONTROL.search(key):
        raise InvalidKey(f"{what} {key!r} contains a control character (such as \\n or NUL)")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidKey(f"{what} {key!r} is not valid Unicode (lone surrogate)") from None
    if size > max_bytes:
        raise InvalidKey(f"{what} is {size} bytes long; the limit is {max_bytes} bytes of UTF-8")
    if max_bytes == MAX_KEY_BYTES and type(key) is str:
        if len(_valid_keys) >= 4096:
            _valid_keys.clear()
        _valid_keys[key] = None
    return key


def check_prefix(prefix: object, what: str = "prefix", max_bytes: int = MAX_KEY_BYTES) -> str:
    """``prefix`` (``None`` reads as ``""``) when it could start a key: a key's rules, but empty
    is allowed."""
    if prefix is None or prefix == "":
        return ""
    return check_key(prefix, what, max_bytes)


def check_namespace(namespace: object) -> str:
    """Return ``namespace`` when valid: a key's rules, plus no ``/``."""
    check_key(namespace, "namespace", MAX_NAMESPACE_BYTES)
    assert isinstance(namespace, str)
    if "/" in namespace:
        raise InvalidKey(f"namespace {namespace!r} must not contain '/'")
    return namespace


def encode_value(
    value: Any, max_bytes: int = DEFAULT_MAX_VALUE_BYTES, key: str | None = None
) -> str:
    """Encode ``value`` as JSON text that decodes to an equal value of the same types.

    ``key`` (where the value goes) is named in the errors, with the path to the part of the
    value that is wrong: ``value['a'][2] of key 'prefs': set is not JSON``.

    Raises:
        InvalidValue: the value is not JSON (set, bytes, datetime, NaN, non-str dict keys, ...).
        ValueTooLarge: its JSON text is larger than ``max_bytes``.
    """
    of_key = "" if key is None else f" of key {key!r}"
    try:
        text = to_json(value)
        if isinstance(value, _CONTAINERS):  # after dumps, which refuses circular references
            _check_containers(value)
        size = len(text) if text.isascii() else len(text.encode("utf-8"))
    except (TypeError, ValueError, RecursionError, UnicodeEncodeError):
        path, problem = _not_json(value)
        raise InvalidValue(
            f"{path}{of_key}: {problem}; a value must be JSON: str, int, float, bool, None, "
            "list or dict"
        ) from None
    if size > max_bytes:
        raise ValueTooLarge(
            f"value{of_key} is {size} bytes of JSON; the limit is {max_bytes} bytes "
            f"({RAISE_LIMIT})",
            size=size,
            limit=max_bytes,
        )
    return text


def _check_containers(value: Any) -> None:
    """Raise ``TypeError`` on a dict key that is not a ``str`` (``json`` would quietly turn
    ``1`` into ``"1"``, and the value would not come back as it went in), and ``ValueError`` on
    nesting deeper than :data:`_MAX_DEPTH` (``json`` writes a little deeper than every read
    can parse back)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > _MAX_DEPTH:
            raise ValueError("nested too deeply")
        if isinstance(item, dict):
            for k, v in item.items():
                if not isinstance(k, str):
                    raise TypeError(k)
                if isinstance(v, _CONTAINERS):
                    stack.append((v, depth + 1))
        else:
            stack.extend((v, depth + 1) for v in item if isinstance(v, _CONTAINERS))


_MAX_DEPTH = 500
"""How deep a value may nest (``json`` gives up around the interpreter's recursion limit, a
little sooner on reads than on writes)."""


def _not_json(value: Any) -> tuple[str, str]:
    """The path to the first part of ``value`` that is not JSON, and what is wrong with it."""
    stack: list[tuple[Any, str, frozenset[int]]] = [(value, "value", frozenset())]
    too_deep = None
    while stack:
        item, path, parents = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return path, "str is not valid Unicode (lone surrogate)"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return path, f"{item} is not JSON"
        elif isinstance(item, (bool, int)) or item is None:
            pass
        elif isinstance(item, _CONTAINERS):
            if id(item) in parents:
                return path, "it contains itself (a circular reference)"
            if len(parents) >= _MAX_DEPTH:
                too_deep = too_deep or path
                continue
            inner = parents | {id(item)}
            if isinstance(item, dict):
                for k in item:
                    if not isinstance(k, str):
                        return path, f"dict key {k!r} is not a str"
                children = [(v, f"{path}[{k!r}]") for k, v in item.items()]
            else:
                children = [(v, f"{path}[{n}]") for n, v in enumerate(item)]
            stack.extend((child, where, inner) for child, where in reversed(children))
        else:
            return path, f"{type(item).__name__} is not JSON"
    if too_deep is not None:
        return too_deep, "it is nested too deeply to store as JSON"
    return "value", "it is not JSON"


decode_value = json.loads


def decode_values(texts: list[str]) -> list[Any]:
    """Many stored JSON texts decoded at once: one parse of them joined in an array, which
    takes about half the time of one parse each."""
    if len(texts) > 1:
        try:
            return json.loads(f"[{','.join(texts)}]")  # type: ignore[no-any-return]
        except RecursionError:
            pass  # a value nested as deep as a value may be: the array is one level more
    return [json.loads(text) for text in texts]


def refuse_constant(name: str) -> Any:
    """For ``json.loads(parse_constant=...)``: ``NaN`` and ``Infinity`` are not JSON."""
    raise ValueError(f"{name} is not JSON")


def canonical_json(text: object, max_bytes: int = DEFAULT_MAX_VALUE_BYTES) -> str:
    """The JSON text ``text`` as :func:`encode_value` writes it, validated the same way.

    For values that arrive as JSON text (the server's batch route): whatever a client sends,
    the store holds exactly what ``Memory.set`` would have stored for the same value, so a
    number that overflows to infinity (``1e400``), a lone surrogate or a value above the limit
    are refused, and spacing does not change a value's size.
    """
    if not isinstance(text, str):
        raise InvalidRequest("a value must travel as its JSON text, in a string")
    try:
        value = json.loads(text, parse_constant=refuse_constant)
    except (ValueError, RecursionError):
        raise InvalidValue("value is not valid JSON text") from None
    return encode_value(value, max_bytes)


def check_fields(fields: object, what: str) -> str:
    """The JSON text of ``fields``, a mapping of field names to JSON values (a filter on the
    fields of a dict value)."""
    if not isinstance(fields, Mapping):
        raise InvalidRequest(
            f"{what} must be a dict of field names to values, not {type(fields).__name__}"
        )
    return encode_value(dict(fields))


def check_ttl(ttl: object, *, allow_now: bool = False) -> float | None:
    """Seconds (int, float or timedelta) as a positive float; ``None`` stays ``None``.

    With ``allow_now`` (``expire``), zero and negative ttls read as ``0.0``: expire now.
    """
    if ttl is None:
        return None
    if isinstance(ttl, timedelta):
        seconds = ttl.total_seconds()
    elif isinstance(ttl, (int, float)) and not isinstance(ttl, bool):
        try:
            seconds = float(ttl)
        except OverflowError:
            seconds = math.inf
    else:
        raise InvalidRequest(
            f"ttl must be seconds (int, float or timedelta), not {type(ttl).__name__}"
        )
    if allow_now and seconds <= 0:
        return 0.0
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidRequest(f"ttl must be a positive number of seconds, got {ttl!r}")
    if seconds > MAX_TTL:
        raise InvalidRequest(f"ttl must be at most {MAX_TTL:.0f} seconds (100 years), got {ttl!r}")
    return seconds


def check_int(value: object, what: str, low: int = -MAX_INT64, high: int = MAX_INT64) -> int:
    """``value`` when it is an int (not a bool) from ``low`` to ``high``, else
    :class:`InvalidRequest` (by default: anything a signed 64-bit integer holds)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidRequest(f"{what} must be an int, not {type(value).__name__}")
    if not low <= value <= high:
        raise InvalidRequest(f"{what} must be from {low} to {high}, got {value}")
    return value


def check_bool(value: object, what: str) -> bool:
    """``value`` when it is ``True`` or ``False``, else :class:`InvalidRequest`."""
    if not isinstance(value, bool):
        raise InvalidRequest(f"{what} must be True or False, not {type(value).__name__}")
    return value


def check_iterable(items: Iterable[Any], what: str) -> Iterable[Any]:
    """``items`` when it is an iterable other than a str or bytes (a classic slip)."""
    if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        raise InvalidRequest(
            f"{what} must be a list or other iterable of str, not {type(items).__name__}"
        )
    return items


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_NAIVE_EPOCH = datetime(1970, 1, 1)


def utc_datetime(us: int) -> datetime:
    """Microseconds since the epoch (how every store keeps time) as an aware UTC datetime."""
    return _EPOCH + timedelta(microseconds=us)


def datetime_us(moment: object, what: str) -> int:
    """An aware ``datetime`` as microseconds since the epoch (how every store keeps time)."""
    if not isinstance(moment, datetime):
        raise InvalidRequest(f"{what} must be a datetime, not {type(moment).__name__}")
    if moment.tzinfo is None:
        raise InvalidRequest(f"{what} must be an aware datetime (with a timezone), not naive")
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def check_time(us: object, what: str) -> int:
    """``us`` when it is a time botwire keeps: integer microseconds from 1970 to the end of 9999."""
    return check_int(us, what, 0, MAX_TIME_US)


CLOCK_SKEW_US = 3_600_000_000
"""How far ahead of this machine's clock a restored time may be (another machine's clock)."""


def check_history(created_at: int, updated_at: int, now: int) -> None:
    """Refuse restored times that could not have happened: a key updated before it was created,
    or written in the future (beyond :data:`CLOCK_SKEW_US` of clock skew)."""
    if updated_at < created_at:
        raise InvalidRequest(
            f"updated_at ({format_time(updated_at)}) is before created_at "
            f"({format_time(created_at)})"
        )
    if updated_at > now + CLOCK_SKEW_US:
        raise InvalidRequest(
            f"updated_at ({format_time(updated_at)}) is in the future; this machine's clock "
            f"says {format_time(now)}"
        )


def format_time(us: int | None) -> str | None:
    """Microseconds since the epoch as ISO 8601 UTC with microseconds (``...T10:00:00.000000Z``)."""
    if us is None:
        return None
    return (_NAIVE_EPOCH + timedelta(microseconds=us)).isoformat(timespec="microseconds") + "Z"


def parse_time(text: Any, field: str) -> int | None:
    """The inverse of :func:`format_time`."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise InvalidRequest(f"{field} must be an ISO 8601 time or null")
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return datetime_us(moment, field)
