"""Filters on the fields of dict values (``where``), checked once and written in each engine's
SQL."""

from __future__ import annotations

import functools
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, NamedTuple

from botwire._values import has_control
from botwire.errors import InvalidRequest

OPERATORS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in")
COMBINATORS = ("$and", "$or")
MAX_CONDITIONS = 64
"""Most conditions a ``where`` filter holds, in all."""
MAX_DEPTH = 8
"""Deepest a ``where`` filter nests: fields inside fields, ``$and`` and ``$or``."""
MAX_IN = 1000
"""Most values an ``$in`` condition lists."""
MAX_FIELD_CHARS = 256
Scalar = str | int | float | bool | None


class Condition(NamedTuple):
    """One condition of a ``where`` filter: the field at ``path`` (a top-level field, then the
    fields inside it) ``op`` ``value`` (``$in``: value is a list)."""

    path: tuple[str, ...]
    op: str
    value: Any


class AnyOf(NamedTuple):
    """``$or``: one of the ``choices`` holds, each a list of clauses that must all hold."""

    choices: tuple[tuple[Clause, ...], ...]


Clause = Condition | AnyOf


def check_where(where: object) -> str | None:
    """A ``where`` filter as canonical JSON text (for an operation), after checking it.

    ``{"field": value, "other": {"$gt": 3}, "tag": {"$in": ["a", "b"]}}``: every condition on
    a field of a dict value (or list item) must hold; ``{"home": {"city": "Porto"}}`` is a
    condition on a field inside a field; ``{"$or": [where, ...]}`` holds when one of its
    filters does (``$and`` when all do). Values are strings, numbers, booleans or null;
    ``$gt`` and friends compare numbers with numbers and strings with strings.
    """
    if where is None:
        return None
    conditions(where)
    return json.dumps(where, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def conditions(where: object) -> list[Clause]:
    """The clauses of a ``where`` filter (a mapping, or its JSON text), all of which must
    hold."""
    if isinstance(where, str):
        return list(_parsed(where))
    return _clauses(where, (), [0], 0)


@functools.lru_cache(maxsize=256)
def _parsed(text: str) -> tuple[Clause, ...]:
    """The clauses of a filter's JSON text (an operation's ``where``), parsed once: a bot
    filters with the same few over and over."""
    return tuple(_clauses(json.loads(text), (), [0], 0))


def _clauses(where: object, path: tuple[str, ...], counted: list[int], depth: int) -> list[Clause]:
    """The clauses of a ``where`` dict on the fields inside the field at ``path``."""
    if depth > MAX_DEPTH:
        raise InvalidRequest(f"where nests at most {MAX_DEPTH} levels deep")
    if not isinstance(where, Mapping):
        raise InvalidRequest(f"where must be a dict of field names to values, not {where!r:.60}")
    found: list[Clause] = []
    for name, test in where.items():
        if not path and name in COMBINATORS:
            choices = _choices(name, test, counted, depth)
            if name == "$or":
                found.append(AnyOf(choices))
            else:
                found.extend(clause for choice in choices for clause in choice)
            continue
        if not isinstance(name, str) or name.startswith("$"):
            where_ = "a field" if path else "a where filter"
            raise InvalidRequest(
                f"where: unknown operator {name!r:.40} in {where_}; use one of "
                f"{OPERATORS} on a field, {COMBINATORS} on a whole filter"
            )
        _check_field(name)
        field = (*path, name)
        if (
            isinstance(test, Mapping)
            and test
            and all(isinstance(op, str) and op.startswith("$") for op in test)
        ):
            for op, value in test.items():
                if op not in OPERATORS:
                    raise InvalidRequest(f"where: unknown operator {op!r}; use one of {OPERATORS}")
                found.append(Condition(field, op, _operand(name, op, value)))
                counted[0] += 1
        elif isinstance(test, Mapping):
            if not test:
                raise InvalidRequest(f"where: {name!r} has an empty condition")
            if any(isinstance(op, str) and op.startswith("$") for op in test):
                raise InvalidRequest(
                    f"where: {name!r} mixes operators and fields; put the fields' conditions "
                    'in a $and: {"$and": [{...}, {...}]}'
                )
            found.extend(_clauses(test, field, counted, depth + 1))
        else:
            found.append(Condition(field, "$eq", _operand(name, "$eq", test)))
            counted[0] += 1
        if counted[0] > MAX_CONDITIONS:
            raise InvalidRequest(f"where holds at most {MAX_CONDITIONS} conditions")
    return found


def _choices(
    name: str, test: object, counted: list[int], depth: int
) -> tuple[tuple[Clause, ...], ...]:
    if not isinstance(test, list) or not test:
        raise InvalidRequest(f"where: {name} takes a non-empty list of where filters")
    return tuple(tuple(_clauses(choice, (), counted, depth + 1)) for choice in test)


def _check_field(name: str) -> None:
    long = len(name) > MAX_FIELD_CHARS
    if not name or '"' in name or "\\" in name or has_control(name) or long:
        raise InvalidRequest(
            f"where: {name!r:.80} is not a field name (up to {MAX_FIELD_CHARS} characters, "
            "no quotes, backslashes or control characters)"
        )


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
    """How one engine reads a field of a value's JSON text in SQL (``where``): ``path`` is the
    top-level field, then the fields inside it.

    ``VALUE`` in the SQL it writes stands for the value's JSON text; the caller replaces it.
    """

    @abstractmethod
    def equal(self, path: tuple[str, ...], value: Scalar, p: Params) -> str:
        """SQL true when the field holds ``value`` (a JSON scalar of the same type)."""

    @abstractmethod
    def compare(self, path: tuple[str, ...], op: str, value: str | int | float, p: Params) -> str:
        """SQL true when the field ``op`` (``<``, ``>``, ...) ``value``: numbers with numbers,
        strings with strings."""

    def one_of(self, path: tuple[str, ...], values: list[Scalar], p: Params) -> str:
        """SQL true when the field holds one of ``values`` (``$in``)."""
        return "(" + " OR ".join(self.equal(path, item, p) for item in values) + ")"

    def where(self, found: list[Clause], p: Params) -> str:
        """A whole filter: ``AND`` and each clause."""
        return "".join(f" AND {self.clause(clause, p)}" for clause in found)

    def clause(self, clause: Clause, p: Params) -> str:
        if isinstance(clause, AnyOf):
            return "(" + " OR ".join(
                "(" + (" AND ".join(self.clause(c, p) for c in choice) or "TRUE") + ")"
                for choice in clause.choices
            ) + ")"  # fmt: skip
        path, op, value = clause
        if op == "$eq":
            return self.equal(path, value, p)
        if op == "$ne":
            return f"NOT coalesce({self.equal(path, value, p)}, FALSE)"
        if op == "$in":
            return self.one_of(path, value, p)
        if isinstance(value, bool) or value is None:
            return "FALSE"  # order holds between numbers, or between strings, only
        return self.compare(path, _ORDER[op], value, p)


_ORDER = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
