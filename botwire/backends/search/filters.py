"""Filters on the fields of dict values (``where``), checked once and written in each engine's
SQL."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, NamedTuple

from botwire._values import has_control
from botwire.errors import InvalidRequest

OPERATORS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in")
MAX_CONDITIONS = 64
"""Most conditions a ``where`` filter holds."""
MAX_IN = 1000
"""Most values an ``$in`` condition lists."""
MAX_FIELD_CHARS = 256
Scalar = str | int | float | bool | None


class Condition(NamedTuple):
    """One field of a ``where`` filter: ``field op value`` (``$in``: value is a list)."""

    field: str
    op: str
    value: Any


def check_where(where: object) -> str | None:
    """A ``where`` filter as canonical JSON text (for an operation), after checking it.

    ``{"field": value, "other": {"$gt": 3}, "tag": {"$in": ["a", "b"]}}``: every condition on
    a top-level field of a dict value (or list item) must hold. Values are strings, numbers,
    booleans or null; ``$gt`` and friends compare numbers with numbers and strings with strings.
    """
    if where is None:
        return None
    conditions(where)
    return json.dumps(where, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def conditions(where: object) -> list[Condition]:
    """The conditions of a ``where`` filter (a mapping, or its JSON text)."""
    if isinstance(where, str):
        where = json.loads(where)
    if not isinstance(where, Mapping):
        raise InvalidRequest(f"where must be a dict of field names to values, not {where!r:.60}")
    found = []
    for name, test in where.items():
        if (
            not isinstance(name, str) or not name or '"' in name or "\\" in name
            or has_control(name) or len(name) > MAX_FIELD_CHARS
        ):  # fmt: skip
            raise InvalidRequest(
                f"where: {name!r:.80} is not a field name (up to {MAX_FIELD_CHARS} characters, "
                "no quotes, backslashes or control characters)"
            )
        if isinstance(test, Mapping):
            if not test:
                raise InvalidRequest(f"where: {name!r} has an empty condition")
            for op, value in test.items():
                if op not in OPERATORS:
                    raise InvalidRequest(f"where: unknown operator {op!r}; use one of {OPERATORS}")
                found.append(Condition(name, op, _operand(name, op, value)))
        else:
            found.append(Condition(name, "$eq", _operand(name, "$eq", test)))
        if len(found) > MAX_CONDITIONS:
            raise InvalidRequest(f"where holds at most {MAX_CONDITIONS} conditions")
    return found


def _operand(name: str, op: str, value: Any) -> Any:
    if op == "$in":
        if not isinstance(value, list) or not value or len(value) > MAX_IN:
            raise InvalidRequest(
                f"where: {name!r} $in takes a non-empty list of up to {MAX_IN} values"
            )
        return [_scalar(name, item) for item in value]
    return _scalar(name, value)


def _scalar(name: str, value: Any) -> Scalar:
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, (int, float)) and value == value and abs(value) != float("inf"):
        return value
    raise InvalidRequest(f"where: {name!r} compares with {value!r:.40}; use a string, number, "
                         "boolean or null")  # fmt: skip


class Params:
    """The values of one SQL statement, each named as it is added: ``p(value)`` returns the
    placeholder to write in the SQL, in the engine's style (``:p0`` for SQLite, ``%(p0)s``
    for psycopg), and :attr:`values` is what to run it with."""

    def __init__(self, style: str) -> None:
        self.style = style
        """A placeholder with ``{}`` for its name."""
        self.values: dict[str, Any] = {}

    def __call__(self, value: Any) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return self.style.format(name)


class JsonFields(ABC):
    """How one engine reads a top-level field of a value's JSON text in SQL (``where``).

    ``VALUE`` in the SQL it writes stands for the value's JSON text; the caller replaces it.
    """

    @abstractmethod
    def equal(self, field: str, value: Scalar, p: Params) -> str:
        """SQL true when the field holds ``value`` (a JSON scalar of the same type)."""

    @abstractmethod
    def compare(self, field: str, op: str, value: str | int | float, p: Params) -> str:
        """SQL true when the field ``op`` (``<``, ``>``, ...) ``value``: numbers with numbers,
        strings with strings."""

    def one_of(self, field: str, values: list[Scalar], p: Params) -> str:
        """SQL true when the field holds one of ``values`` (``$in``)."""
        return "(" + " OR ".join(self.equal(field, item, p) for item in values) + ")"

    def where(self, found: list[Condition], p: Params) -> str:
        """A whole filter: ``AND`` and each condition."""
        return "".join(f" AND {self.condition(condition, p)}" for condition in found)

    def condition(self, condition: Condition, p: Params) -> str:
        field, op, value = condition
        if op == "$eq":
            return self.equal(field, value, p)
        if op == "$ne":
            return f"NOT coalesce({self.equal(field, value, p)}, FALSE)"
        if op == "$in":
            return self.one_of(field, value, p)
        if isinstance(value, bool) or value is None:
            return "FALSE"  # order holds between numbers, or between strings, only
        return self.compare(field, _ORDER[op], value, p)


_ORDER = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
