"""Logic that every backend shares: sizes, quota checks and the errors the contract defines."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Generator, Sequence
from typing import Any, NamedTuple

from botwire.backends.base import (
    Append,
    Clear,
    Delete,
    Expire,
    Incr,
    Op,
    Put,
    Quotas,
    Restore,
)
from botwire.errors import QuotaExceeded, VersionConflict, WrongType

PURGE_BATCH = 500
"""Most expired keys a purge deletes in one write transaction."""
DAY_US = 86_400_000_000


class Micros:
    """A clock in integer microseconds that never repeats or goes back within a process.

    Versions are taken from it (``max(old version + 1, now)``), so a key that is deleted and
    created again gets a version above every version it had before.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._last = 0
        self._lock = threading.Lock()

    def __call__(self) -> int:
        now = int(self.clock() * 1_000_000)
        with self._lock:
            if now <= self._last:
                now = self._last + 1
            self._last = now
        return now


def expiry(now: int, ttl: float | None) -> int | None:
    """When a key written at ``now`` with ``ttl`` seconds expires; at least a microsecond on."""
    return None if ttl is None else now + max(1, math.ceil(ttl * 1_000_000))


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


def not_a_list(key: str, value: Any) -> WrongType:
    """The error for ``append`` to something else than a list."""
    return WrongType(f"cannot append to {key!r}: it holds {_type_name(value)}, not a list")


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
        if isinstance(op, (Put, Delete, Append, Incr, Expire, Clear, Restore)):  # WRITE_OPS
            ns = op.ns
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
