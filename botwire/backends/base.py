"""The storage contract: operations, their results, and the one primitive every backend implements.

A backend runs a batch of operations atomically: either every operation in the batch takes effect,
or (when one of them raises) none does. ``Memory`` builds operations; the HTTP backend ships a batch
to ``botwire serve`` in one request; the server runs it on its own backend. Operations are small
NamedTuples and carry values as JSON text, already validated by :mod:`botwire._values`.

Times inside the contract are integer microseconds since the Unix epoch, so that every engine
stores them exactly.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple


class Get(NamedTuple):
    """Read one key. Result: :class:`Record` or ``None`` when missing or expired."""

    ns: str
    key: str
    value: bool = True
    """``False`` fetches everything but the value (membership, ttl)."""
    refresh_ttl: bool = False
    """Restart the key's expiry from now with its own ttl (a sliding expiry)."""


class Put(NamedTuple):
    """Write one value. Result: the new version (int).

    Raises ``VersionConflict`` when ``if_version`` is given and the stored version differs
    (``0`` means: only when the key is absent).
    """

    ns: str
    key: str
    value: str
    ttl: float | None = None
    if_version: int | None = None
    keep_ttl: bool = False
    """With ``ttl=None``: keep the key's current expiry instead of removing it."""


class Delete(NamedTuple):
    """Delete one key. Result: ``True`` when a live key was deleted."""

    ns: str
    key: str


class Append(NamedTuple):
    """Append JSON texts to a list, then keep only the newest ``max_len``. Result: the length."""

    ns: str
    key: str
    values: tuple[str, ...]
    max_len: int | None = None


class Incr(NamedTuple):
    """Add ``by`` to an integer (a missing key counts as 0). Result: the new integer."""

    ns: str
    key: str
    by: int = 1


class Expire(NamedTuple):
    """Set (``ttl`` seconds) or drop (``None``) an expiry. Result: ``True`` if the key exists."""

    ns: str
    key: str
    ttl: float | None


class ListKeys(NamedTuple):
    """One page of live keys in key order. Result: :class:`KeyPage`."""

    ns: str
    prefix: str = ""
    limit: int = 1000
    after: str | None = None
    """Cursor: list the keys that sort after this one."""


class Clear(NamedTuple):
    """Delete every key of a namespace. Result: how many live keys were deleted."""

    ns: str


class ListNamespaces(NamedTuple):
    """Namespaces that hold live keys, sorted. Result: ``list[str]``."""

    prefix: str = ""


class Restore(NamedTuple):
    """Write a value with its original timestamps (import). Result: the new version."""

    ns: str
    key: str
    value: str
    created_at: int
    updated_at: int
    expires_at: int | None = None
    ttl: float | None = None


Op = Get | Put | Delete | Append | Incr | Expire | ListKeys | Clear | ListNamespaces | Restore
OP_NAMES: dict[type, str] = {
    Get: "get",
    Put: "put",
    Delete: "delete",
    Append: "append",
    Incr: "incr",
    Expire: "expire",
    ListKeys: "list_keys",
    Clear: "clear",
    ListNamespaces: "list_namespaces",
    Restore: "restore",
}
"""Each operation's name: on the wire, and as ``_<name>`` the backend method that runs it."""
WRITE_OPS: tuple[type, ...] = (Put, Delete, Append, Incr, Expire, Clear, Restore)
"""Operations that change the store (and count against a writes quota)."""


class Record(NamedTuple):
    """A stored key as a backend returns it."""

    value: str | None
    """JSON text, or ``None`` when the Get asked for no value."""
    version: int
    created_at: int
    updated_at: int
    expires_at: int | None
    size: int
    """Bytes of the value's JSON text."""
    ttl: float | None = None
    """The ttl (seconds) the key was written with, which ``refresh_ttl`` restarts."""


class KeyInfo(NamedTuple):
    """One key in a listing."""

    key: str
    size: int
    updated_at: int


class KeyPage(NamedTuple):
    """A page of keys and the cursor of the next page (``None`` on the last page)."""

    keys: list[KeyInfo]
    next_cursor: str | None


class Quotas(NamedTuple):
    """Per-namespace limits a backend enforces inside its write transactions."""

    writes_per_day: int | None = None
    bytes: int | None = None


def handlers(backend: object) -> dict[type, Callable[..., Any]]:
    """``{operation type: backend._<name>}`` for every operation, for a backend's dispatch."""
    return {op: getattr(backend, f"_{name}") for op, name in OP_NAMES.items()}


def is_write(ops: Sequence[Op]) -> bool:
    """Whether a batch changes the store."""
    return any(isinstance(op, WRITE_OPS) or (type(op) is Get and op.refresh_ttl) for op in ops)


def prefix_upper_bound(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with ``prefix``.

    ``None`` when there is none (the prefix is empty or ends in the last code point).
    """
    stripped = prefix.rstrip("\U0010ffff")
    if not stripped:
        return None
    nxt = ord(stripped[-1]) + 1
    if 0xD800 <= nxt <= 0xDFFF:  # lone surrogates cannot be stored; skip past them
        nxt = 0xE000
    return stripped[:-1] + chr(nxt)


class Backend(ABC):
    """A store that runs batches of operations atomically.

    Implement :meth:`execute`; :meth:`aexecute` defaults to running it in a worker thread, and
    backends with native async I/O override it.
    """

    url: str
    """Where the store lives, with any password masked."""
    clock: Callable[[], float] = time.time
    """The store's clock, seconds since the epoch."""

    @abstractmethod
    def execute(self, ops: Sequence[Op]) -> list[Any]:
        """Run ``ops`` in one atomic transaction and return one result per operation."""

    async def aexecute(self, ops: Sequence[Op]) -> list[Any]:
        """Async twin of :meth:`execute`."""
        return await asyncio.to_thread(self.execute, ops)

    def migrate(self) -> int:
        """Bring the store's schema up to date; return how many migrations ran."""
        return 0

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. The backend reopens them if used again."""

    async def aclose(self) -> None:
        """Async twin of :meth:`close`."""
        self.close()
