"""LangGraph's store filters: what they mean (:func:`matches`, the semantics of LangGraph's
``InMemoryStore``), and a botwire ``where`` filter that narrows a search to the items that may
pass one (:func:`narrowing`), so that the store filters in SQL and this module decides.

LangGraph compares with Python's ``==`` (``True`` equals ``1``, a missing field equals
``None``) and orders by ``float()`` (``"2"`` passes ``{"$gte": 2}``); botwire's ``where``
compares values of one JSON type. So the narrowing filter lets through each value LangGraph may
count (a number, and for an order also a string or a boolean), and :func:`matches` decides.
"""

from __future__ import annotations

import math
from typing import Any

from botwire._values import has_control
from botwire.backends.search import MAX_FIELD_CHARS
from botwire.errors import InvalidRequest

OPERATORS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte")
ORDERS = ("$gt", "$gte", "$lt", "$lte")
MAX_NARROWING = 16
"""Most conditions of a LangGraph filter a narrowing filter carries (the rest is decided here)."""
MAX_PATH = 5
"""Deepest field (inside fields) a narrowing filter reaches."""
EXACT_INTS = 2**53
"""Integers up to this size compare alike as JSON numbers and as Python's."""


def check_filter(filter: dict[str, Any]) -> None:
    """Refuse an operator LangGraph's stores do not know, and an order (``$gt``...) with what
    is not a number, wherever they are in ``filter`` (whose own keys are fields, any name)."""
    if not isinstance(filter, dict):
        raise InvalidRequest(f"a filter is a dict of fields to values, not {filter!r:.60}")
    for wanted in filter.values():
        _check_test(wanted)


def _check_test(wanted: Any) -> None:
    if isinstance(wanted, (list, tuple)):
        for item in wanted:
            _check_test(item)
    if not isinstance(wanted, dict):
        return
    if not any(isinstance(key, str) and key.startswith("$") for key in wanted):
        check_filter(wanted)  # fields inside a field
        return
    for key, operand in wanted.items():
        if key not in OPERATORS:
            raise InvalidRequest(f"unknown filter operator {key!r}; use one of {OPERATORS}")
        if key in ORDERS and _number(operand) is None:
            raise InvalidRequest(f"filter: {key} compares numbers, and {operand!r:.40} is not one")


def matches(record: Any, filter: dict[str, Any] | None) -> bool:
    """Whether a stored item passes a LangGraph filter."""
    if not filter:
        return True
    if not isinstance(record, dict):
        return False
    return all(_compare(record.get(key), wanted) for key, wanted in filter.items())


def _compare(value: Any, wanted: Any) -> bool:
    """LangGraph's filter semantics (those of its stores): operators, nested dicts, lists."""
    if isinstance(wanted, dict):
        if any(key.startswith("$") for key in wanted):
            return all(_apply(value, op, operand) for op, operand in wanted.items())
        if not isinstance(value, dict):
            return False
        return all(_compare(value.get(key), sub) for key, sub in wanted.items())
    if isinstance(wanted, (list, tuple)):
        return (
            isinstance(value, (list, tuple))
            and len(value) == len(wanted)
            and all(_compare(v, w) for v, w in zip(value, wanted, strict=False))
        )
    return bool(value == wanted)


def _apply(value: Any, op: str, operand: Any) -> bool:
    if op == "$eq":
        return bool(value == operand)
    if op == "$ne":
        return bool(value != operand)
    if op in ORDERS:
        left, right = _number(value), _number(operand)
        if left is None or right is None:  # LangGraph's stores raise; here it is no match
            return False
        return {"$gt": left > right, "$gte": left >= right, "$lt": left < right,
                "$lte": left <= right}[op]  # fmt: skip
    raise InvalidRequest(f"unknown filter operator {op!r}; use one of {OPERATORS}")


def _number(value: Any) -> float | None:
    """``float(value)``, as LangGraph orders values; ``None`` where there is none."""
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None


# -- narrowing: a botwire where filter every match passes ---------------------------------------


def narrowing(filter: dict[str, Any] | None) -> dict[str, Any] | None:
    """A botwire ``where`` filter that every item passing LangGraph's ``filter`` passes too
    (most often, exactly those); ``None`` where no condition of it narrows."""
    clauses: list[dict[str, Any]] = []
    for key, wanted in (filter or {}).items():
        clauses.extend(_clauses((key,), wanted))
    clauses = clauses[:MAX_NARROWING]  # fewer conditions narrow less, never wrongly
    return {"$and": clauses} if clauses else None


def _clauses(path: tuple[str, ...], wanted: Any) -> list[dict[str, Any]]:
    if len(path) > MAX_PATH or not all(_plain(name) for name in path):
        return []
    if isinstance(wanted, dict):
        if any(key.startswith("$") for key in wanted):
            return [c for op, operand in wanted.items() for c in _operator(path, op, operand)]
        return [c for key, sub in wanted.items() for c in _clauses((*path, key), sub)]
    if isinstance(wanted, (list, tuple)):
        return []
    return _equal(path, wanted)


def _equal(path: tuple[str, ...], wanted: Any) -> list[dict[str, Any]]:
    """Equal as Python's ``==`` is: ``True``, ``1`` and ``1.0`` alike; ``None`` also when the
    field is missing (not narrowed)."""
    if isinstance(wanted, str):
        return [_at(path, wanted)]
    if not _exact(wanted):
        return []
    if wanted in (0, 1):  # also the boolean that equals it
        return [_at(path, {"$in": [int(wanted), bool(wanted)]})]
    return [_at(path, wanted)]


def _operator(path: tuple[str, ...], op: str, operand: Any) -> list[dict[str, Any]]:
    if op == "$eq":
        return [] if isinstance(operand, (dict, list, tuple)) else _equal(path, operand)
    if op == "$ne":  # botwire's $ne lets more through (it tells 1 from True): it narrows
        exact = operand is None or isinstance(operand, str) or _exact(operand)
        return [_at(path, {"$ne": operand})] if exact else []
    number = _number(operand)
    if op not in ORDERS or number is None or not math.isfinite(number):
        return []
    return [{"$or": [  # a number in order, or what float() may read: a string, a boolean
        _at(path, {op: number}), _at(path, {"$gte": ""}), _at(path, {"$in": [True, False]}),
    ]}]  # fmt: skip


def _exact(value: Any) -> bool:
    """A boolean, or a number that botwire's ``where`` compares as Python does."""
    if isinstance(value, bool):
        return True
    if isinstance(value, int):
        return abs(value) <= EXACT_INTS
    return isinstance(value, float) and math.isfinite(value)


def _plain(name: Any) -> bool:
    """A field name botwire's ``where`` takes as it is."""
    return (
        isinstance(name, str) and 0 < len(name) <= MAX_FIELD_CHARS and not name.startswith("$")
        and '"' not in name and "\\" not in name and not has_control(name)
    )  # fmt: skip


def _at(path: tuple[str, ...], test: Any) -> dict[str, Any]:
    """``test`` on the field at ``path``, as a ``where`` filter."""
    for name in reversed(path):
        test = {name: test}
    assert isinstance(test, dict)
    return test
