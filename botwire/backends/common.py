"""Logic that every SQL backend shares: sizes, list and counter writes, quota checks and the
errors the contract defines.

Where an operation needs several statements, its logic is written once here as a generator of
*questions* (:class:`LockRow`, :class:`AddItems`, ...; :class:`CountWrites`, ...): the backend
answers each one with its own SQL inside the batch's transaction and sends the answer back. The
SQL differs between engines; the decisions (what a list becomes, how its size changes, which
error to raise) are made here, once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Generator, Sequence
from contextvars import ContextVar
from typing import Any, NamedTuple, TypeVar

from botwire._values import MAX_INT64, to_json
from botwire.backends.base import (
    Append,
    Incr,
    KeyInfo,
    ListKeys,
    Op,
    Put,
    Quotas,
    Restore,
    changes,
)
from botwire.errors import (
    InvalidRequest,
    Overloaded,
    QuotaExceeded,
    ValueTooLarge,
    VersionConflict,
    WrongType,
)

T = TypeVar("T")


class ReadBudget:
    """How many bytes of values a batch may still read: ``botwire serve`` caps what one request
    answers, so that a small request cannot make a huge answer (a thousand reads of one large
    value). A batch may always read one value, whatever its size; the values it reads after
    that must fit in ``limit`` with it.

    A store charges each value against the budget in :data:`read_budget`, if one is set, before
    it reads the value (its size is on the key's row), and raises :class:`ValueTooLarge` when
    it would not fit.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.restart()

    def restart(self) -> None:
        """A new attempt at the batch (after a retry) starts with the whole budget."""
        self.spent = 0
        self.reads = 0

    def left(self) -> int | None:
        """Bytes the next value may have (``None``: any, it is the first)."""
        return None if self.reads == 0 else self.limit - self.spent

    def charge(self, size: int) -> None:
        """Count a value of ``size`` bytes, or refuse it."""
        left = self.left()
        if left is not None and size > left:
            raise ValueTooLarge(
                f"the batch would answer with more than {self.limit} bytes of values "
                "(the server's max_response_bytes); read fewer or smaller keys per request",
                size=self.spent + size,
                limit=self.limit,
            )
        self.spent += size
        self.reads += 1


read_budget: ContextVar[ReadBudget | None] = ContextVar("botwire_read_budget", default=None)
"""The budget of the batch being run (set by the server around each request's batch)."""


def page_takes(size: int, taken: int) -> bool:
    """Whether a listing that reads values takes one more of ``size`` bytes, with ``taken``
    values on its page already: charged to the batch's :data:`read_budget`, if one is set. A
    page ends (``False``) at the first value that would not fit; a page with no value yet
    raises ``ValueTooLarge`` instead, as a read of that value would."""
    budget = read_budget.get()
    if budget is None:
        return True
    left = budget.left()
    if taken and left is not None and size > left:
        return False
    budget.charge(size)
    return True


deadline: ContextVar[float | None] = ContextVar("botwire_deadline", default=None)
"""When (``time.monotonic()``) the batch being run must be done: the server sets it around each
request's batch, and a store stops a search that runs past it (:func:`ran_out`)."""


def ran_out(limit: float | None = None) -> Overloaded:
    """The error for a batch stopped at its :data:`deadline`."""
    seconds = f" of {limit:g} s" if limit is not None else ""
    return Overloaded(
        f"the request ran past the server's time limit{seconds} and was stopped, nothing "
        "written; narrow it (fewer words, a namespace rather than a prefix, a filter) or retry "
        "later",
        retry_after=1.0,
    )


PURGE_BATCH = 500
"""Most expired keys a purge deletes in one write transaction."""
DAY_US = 86_400_000_000


def expiry(now: int, ttl: float | None) -> int | None:
    """When a key written at ``now`` with ``ttl`` seconds expires.

    A positive ttl lasts at least a microsecond; ``0`` (``expire(key, 0)``) expires it now.
    """
    if ttl is None:
        return None
    return now if ttl <= 0 else now + max(1, math.ceil(ttl * 1_000_000))


def nbytes(text: str) -> int:
    """Bytes of ``text`` in UTF-8."""
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def list_size(
    size: int, length: int, added: Sequence[int], removed: int, removed_bytes: int
) -> int:
    """Bytes of a list's JSON text after items are added and removed.

    ``size`` and ``length`` describe the list before; ``added`` holds the sizes of new items.
    The text of ``n`` items is ``2 + sum(item sizes) + (n - 1)`` bytes (brackets and commas).
    """
    items = size - length - 1 if length else 0
    items += sum(added) - removed_bytes
    length += len(added) - removed
    return items + length + 1 if length else 2


def _type_name(value: Any) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a bool",
        float: "a float",
        int: "an integer",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def not_an_integer(key: str, value: Any) -> WrongType:
    """The error for ``incr`` on something else than an integer."""
    return WrongType(f"cannot incr {key!r}: it holds {_type_name(value)}, not an integer")


def not_a_list(key: str, value: Any, verb: str = "append to") -> WrongType:
    """The error for ``append`` to (or ``slice`` of) something else than a list."""
    return WrongType(f"cannot {verb} {key!r}: it holds {_type_name(value)}, not a list")


def version_conflict(key: str, expected: int, actual: int) -> VersionConflict:
    """The error for a write whose ``if_version`` no longer holds."""
    wanted = "to be absent" if expected == 0 else f"at version {expected}"
    found = "absent" if actual == 0 else f"at version {actual}"
    return VersionConflict(
        f"{key!r} was expected {wanted} but is {found}; read it again and retry",
        key=key,
        expected=expected,
        actual=actual,
    )


class CountWrites(NamedTuple):
    """Question from :func:`quota_checks`: add ``writes`` to the namespace's count for ``day``
    (locking it for the transaction) and answer the new total."""

    ns: str
    day: int
    writes: int


class StoredBytes(NamedTuple):
    """Question from :func:`quota_checks`: answer the bytes of the namespace's live values."""

    ns: str
    now: int


QuotaChecks = Generator[CountWrites | StoredBytes, int | None, None]


def quota_checks(quotas: Quotas, ops: Sequence[Op], now: int) -> QuotaChecks:
    """Enforce ``quotas`` for a batch, asking the backend what it needs to know.

    A generator: it yields :class:`CountWrites` and :class:`StoredBytes` questions, the backend
    answers each with ``send`` from inside the batch's transaction, and it raises
    :class:`QuotaExceeded` when a limit is passed, so a refused batch leaves no trace and the
    limits hold across every process that shares the store. Writes are counted whenever a quota
    is on: the count's row lock is what serialises one namespace's writers. Namespaces with a
    ``/`` are botwire's own and exempt.
    """
    writes: dict[str, int] = {}
    grows: set[str] = set()
    for op in ops:
        if changes(op):
            ns: str = op.ns  # type: ignore[union-attr,assignment]  # every write names one
            if "/" not in ns:
                writes[ns] = writes.get(ns, 0) + 1
                if isinstance(op, (Put, Append, Incr, Restore)):
                    grows.add(ns)
    day = now // DAY_US
    for ns in sorted(writes):  # a fixed order, so two batches never wait for each other
        total = (yield CountWrites(ns, day, writes[ns])) or 0
        if quotas.writes_per_day is not None and total > quotas.writes_per_day:
            retry_after = ((day + 1) * DAY_US - now) / 1_000_000
            raise QuotaExceeded(
                f"namespace {ns!r} used its {quotas.writes_per_day} writes for today (UTC); "
                f"retry in {retry_after:.0f} s",
                retry_after=retry_after,
                quota="writes_per_day",
            )
        if quotas.bytes is not None and ns in grows:
            used = (yield StoredBytes(ns, now)) or 0
            if used > quotas.bytes:
                raise QuotaExceeded(
                    f"namespace {ns!r} would hold {used} bytes, above its quota of "
                    f"{quotas.bytes}; delete keys to make room",
                    quota="bytes",
                )


# -- lists and counters: the logic, written once ---------------------------------------------

VALUE = 0
"""``kind`` of a row that holds JSON text in ``value``."""
LIST = 1
"""``kind`` of a row whose items are rows of their own, ``list_lo <= seq < list_hi``."""


class Row(NamedTuple):
    """A key's row, as the shared write logic needs it."""

    id: int
    kind: int
    value: str | None
    size: int
    list_lo: int | None
    list_hi: int | None
    searchable: bool = True
    """Whether a value's row is in the search index (a list's items have their own)."""


def fresh_row(entry_id: int, kind: int) -> Row:
    """The row of a key (re)started as an empty value of ``kind``: ``[]`` or the integer 0."""
    if kind == LIST:
        return Row(entry_id, LIST, None, 2, 0, 0)
    return Row(entry_id, VALUE, "0", 1, None, None)


class LockRow(NamedTuple):
    """Question: the key's live row, locked for the rest of the transaction. A missing or
    expired key is (re)started as an empty value of ``kind`` (``LIST``: ``[]``; ``VALUE``:
    ``0``) with no expiry and a fresh version. Answer: ``(Row, created)``."""

    ns: str
    key: str
    kind: int


class AddItems(NamedTuple):
    """Question: store ``values`` as the list items ``first_seq``, ``first_seq + 1``, ...
    of the key ``key`` in ``ns`` (a store that indexes items as it writes them needs both).
    Answer: ``None``."""

    entry_id: int
    first_seq: int
    values: Sequence[str]
    ns: str
    key: str
    searchable: bool = True
    """``False``: the items stay out of the search index."""


class DropItems(NamedTuple):
    """Question: delete the list items ``from_seq <= seq < below_seq``. Answer:
    ``(count, bytes)`` of the deleted items."""

    entry_id: int
    from_seq: int
    below_seq: int


class ReadItem(NamedTuple):
    """Question: the JSON text of the list item ``seq``. Answer: ``str``."""

    entry_id: int
    seq: int


class MoveItem(NamedTuple):
    """Question: renumber the list item ``from_seq`` as ``to_seq`` (free). Answer: ``None``."""

    entry_id: int
    from_seq: int
    to_seq: int


class SaveList(NamedTuple):
    """Question: record the list's new size and item range, a new version and the update
    time; with ``ttl``, restart its expiry (else it stays). Answer: ``None``."""

    entry_id: int
    size: int
    lo: int
    hi: int
    ttl: float | None = None


class SaveValue(NamedTuple):
    """Question: replace the row's value with the JSON text ``text``, with a new version and
    update time (its expiry stays). Answer: ``None``."""

    entry_id: int
    text: str


RowQuestion = LockRow | AddItems | DropItems | ReadItem | MoveItem | SaveList | SaveValue
RowSteps = Generator[RowQuestion, Any, T]


def append_steps(op: Append) -> RowSteps[int]:
    """``append``: add the values to the list, keep the newest ``max_len`` (and, with
    ``keep_first``, a first item that matches it); return the length. A JSON list written by
    ``set`` becomes rows of items the first time."""
    row, _ = yield LockRow(op.ns, op.key, LIST)
    if row.kind == VALUE:
        current = json.loads(row.value or "null")
        if not isinstance(current, list):
            raise not_a_list(op.key, current)
        lo, hi = 0, len(current)
        if current:
            items = [to_json(item) for item in current]  # the value's, as it was written
            yield AddItems(row.id, 0, items, op.ns, op.key, row.searchable)
    else:
        lo, hi = row.list_lo or 0, row.list_hi or 0
    yield AddItems(row.id, hi, op.values, op.ns, op.key, op.searchable)
    size = list_size(row.size, hi - lo, [nbytes(v) for v in op.values], 0, 0)
    hi += len(op.values)
    if op.max_len is not None and hi - lo > op.max_len:
        new_lo = hi - op.max_len
        keep = False
        if op.keep_first is not None:
            first = yield ReadItem(row.id, lo)
            keep = fields_match(json.loads(first), json.loads(op.keep_first))
        if keep:  # the first item stays: it moves up to just before the newest max_len - 1
            removed, removed_bytes = yield DropItems(row.id, lo + 1, new_lo + 1)
            yield MoveItem(row.id, lo, new_lo)
        else:
            removed, removed_bytes = yield DropItems(row.id, lo, new_lo)
        size = list_size(size, hi - lo, [], int(removed), int(removed_bytes))
        lo = new_lo
    yield SaveList(row.id, size, lo, hi, op.ttl)
    return hi - lo


def fields_match(item: Any, fields: dict[str, Any]) -> bool:
    """Whether ``item`` is an object holding each of ``fields`` with an equal JSON value
    (``1`` equals ``1.0`` but not ``true``)."""
    return isinstance(item, dict) and all(
        name in item and json_equal(item[name], want) for name, want in fields.items()
    )


def json_equal(a: Any, b: Any) -> bool:
    """Equality of decoded JSON values, where booleans are not numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b) and (isinstance(a, (int, float)) == isinstance(b, (int, float)))


def incr_steps(op: Incr) -> RowSteps[int]:
    """``incr``: add ``by`` to the integer at ``key`` (missing counts as 0); return it."""
    row, created = yield LockRow(op.ns, op.key, VALUE)
    current = 0 if created else ([] if row.kind == LIST else json.loads(row.value or "null"))
    if type(current) is not int:
        raise not_an_integer(op.key, current)
    total = current + op.by
    if not -MAX_INT64 <= total <= MAX_INT64:  # counters are 64-bit, as in Redis
        raise InvalidRequest(
            f"incr of {op.key!r} by {op.by} would leave the range of a 64-bit integer "
            f"(it holds {current})"
        )
    yield SaveValue(row.id, str(total))
    return total


def item_range(lo: int, hi: int, start: int | None, stop: int | None) -> tuple[int, int]:
    """The item sequence numbers ``[first, last)`` of ``items[start:stop]`` of a list whose
    items are numbered ``lo`` to ``hi - 1``."""
    first, last, _ = slice(start, stop).indices(hi - lo)
    return lo + first, lo + max(first, last)


def sliced_value(key: str, json_text: str, start: int | None, stop: int | None) -> str:
    """``[start:stop]`` of a list stored as one JSON value (written by ``set``)."""
    value = json.loads(json_text)
    if not isinstance(value, list):
        raise not_a_list(key, value, "slice")
    return to_json(value[start:stop])


def page_cursor(info: KeyInfo, op: ListKeys) -> str:
    """The cursor of a listing's next page, after ``info``: its key, or in a listing by last
    change ``"<updated_at>:<key>"``."""
    return f"{info.updated_at}:{info.key}" if op.by_update else info.key


def update_cursor(after: str) -> tuple[int, str]:
    """The last change and key a by-update listing's cursor names (:func:`page_cursor`).

    Raises:
        InvalidRequest: it is not such a cursor.
    """
    moment, sep, key = after.partition(":")
    if not (sep and moment.isascii() and moment.isdigit() and int(moment[:20]) <= MAX_INT64):
        raise InvalidRequest(f"cursor {after!r} is not a cursor of a listing by last change")
    return int(moment), key
