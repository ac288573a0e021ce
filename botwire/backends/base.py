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
import contextlib
import os
import threading
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Sequence,
)
from typing import Any, NamedTuple, TypeVar

T = TypeVar("T")


class Get(NamedTuple):
    """Read one key. Result: :class:`Record` or ``None`` when missing or expired."""

    ns: str
    key: str
    value: bool = True
    """``False`` fetches everything but the value (membership, ttl)."""
    refresh_ttl: bool = False
    """Restart the key's expiry from now with its own ttl (a sliding expiry)."""
    meta: bool = True
    """``False``: the caller reads the value alone, so a store may answer a :class:`Record`
    whose version, timestamps and size are left at 0 (a cheaper read)."""


class Vectors(NamedTuple):
    """What an embedder (:mod:`botwire.embedders`) made of a write's values, or of a search's
    query: unit-length float32 vectors, packed, and the fingerprint of the model."""

    model: str
    items: tuple[bytes | None, ...]
    """One per value (``None``: a value without text, which has none)."""


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
    vectors: Vectors | None = None
    """The value's vector, stored with it for recall by meaning."""
    searchable: bool = True
    """``False``: the value stays out of the search index (words and meaning)."""


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
    ttl: float | None = None
    """Restart the key's expiry: it expires ``ttl`` seconds from now. ``None`` keeps it."""
    keep_first: str | None = None
    """JSON text of an object. When ``max_len`` trims the list and its first item is an object
    holding each of these fields with an equal value, the first item stays (and counts)."""
    vectors: Vectors | None = None
    """A vector for each of ``values``, stored with its item for recall by meaning."""
    searchable: bool = True
    """``False``: the items stay out of the search index (words and meaning)."""


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
    """One page of live keys in key order (``reverse``: from the last). Result:
    :class:`KeyPage`."""

    ns: str
    prefix: str = ""
    limit: int = 1000
    after: str | None = None
    """Cursor: list the keys that come after this one in the listing's order."""
    reverse: bool = False
    values: bool = False
    """Read each key's value too (:attr:`KeyInfo.value`). Values count against the batch's read
    budget (:class:`~botwire.backends.common.ReadBudget`): a page ends early, with a cursor,
    at a value that would not fit, and a page that fits none raises ``ValueTooLarge``."""
    by_update: bool = False
    """Order by last change, newest first (``reverse``: oldest first), then by key; ``after``
    is then a cursor as :func:`page_cursor` makes it."""


class Clear(NamedTuple):
    """Delete every key of a namespace. Result: how many live keys were deleted."""

    ns: str


class ListNamespaces(NamedTuple):
    """Namespaces that hold live keys, sorted. Result: ``list[str]``, or with ``sizes``
    ``list[NamespaceInfo]``."""

    prefix: str = ""
    sizes: bool = False


class Restore(NamedTuple):
    """Write a value with its original timestamps (import). Result: the new version."""

    ns: str
    key: str
    value: str
    created_at: int
    updated_at: int
    expires_at: int | None = None
    ttl: float | None = None


class Slice(NamedTuple):
    """Read part of a list: the items ``[start:stop]``, Python's slice rules (negative counts
    from the end). Result: their JSON text (``"[...]"``), or ``None`` when the key is missing.

    Raises ``WrongType`` when the key holds something else than a list.
    """

    ns: str
    key: str
    start: int | None = None
    stop: int | None = None


class Search(NamedTuple):
    """Ranked full-text search. Result: ``list[SearchHit]``, best first, then newest first.

    ``query`` is parsed by :func:`botwire.backends.search.parse_query` (empty: every key,
    newest first); ``where`` is the JSON text of a filter on the fields of dict values (and
    list items). Searches ``ns``, or with ``ns=None`` every namespace that starts with
    ``ns_prefix``. A list value's hit carries its best ``limit`` matching items, not the list.
    """

    ns: str | None
    query: str
    prefix: str = ""
    """Only keys that start with this."""
    where: str | None = None
    limit: int = 10
    ns_prefix: str = ""
    match: str = "all"
    """``"all"``: every word of the query must match; ``"any"``: one is enough."""
    context: int = 0
    """For each matching list item, also the items up to this many places before and after it
    (``SearchHit.context``)."""
    recency: float | None = None
    """A half-life in seconds: a hit's score halves for every half-life since it was written,
    so that among equally relevant hits the newer wins."""
    distinct: bool | None = None
    """Leave out a key (or list item) whose value repeats a better hit's; ``None``: yes for a
    relevance search (``match="any"``), no otherwise."""
    mode: str | None = None
    """``"meaning"``: rank by the similarity of the stored vectors to ``vectors`` (the query's);
    ``"hybrid"``: by both, fused; ``"auto"``: hybrid when ``vectors`` is given, else words;
    ``None``: by words."""
    vectors: Vectors | None = None
    """The query's vector (one item), for ``mode="meaning"`` and ``"hybrid"``."""
    weight: float | None = None
    """With ``mode="hybrid"``: how much the meaning ranking weighs beside the words' (the
    embedder's calibrated weight; ``None``: 1)."""


class Changes(NamedTuple):
    """The change log after position ``since``, oldest first: of namespace ``ns``, or with
    ``ns=None`` of every namespace that starts with ``ns_prefix``; only keys that start with
    ``prefix``. Result: :class:`ChangePage`. It runs alone in its batch.

    A reader that pages on with each page's ``cursor`` sees every committed change once, in
    commit order (each store proves it in its own way: see its ``changes`` module)."""

    ns: str | None
    since: int = 0
    prefix: str = ""
    limit: int = 100
    ns_prefix: str = ""
    values: bool = False
    """Carry each change's value (:attr:`Change.value`); they count against the read budget."""
    actor: str | None = None
    """Only the changes this actor made (the audit; needs an admin token through a server)."""
    from_at: int | None = None
    """Only the changes made at or after this time (microseconds; the audit, as ``actor``)."""
    to_at: int | None = None
    """Only the changes made before this time (microseconds; the audit, as ``actor``)."""


class History(NamedTuple):
    """A key's recorded changes (and the clears of its namespace), newest first, with their
    values; only those older than position ``before`` when it is given. Result:
    ``list[Change]``."""

    ns: str
    key: str
    limit: int = 20
    before: int | None = None


class AddChange(NamedTuple):
    """Add a change to the log as given, with a new position (an import of a dump's history:
    its times and actors are the original ones). Result: the position."""

    ns: str
    key: str | None
    op: str
    version: int | None
    at: int
    actor: str
    request_id: str | None
    value: str | None
    detail: str | None = None


class Unembedded(NamedTuple):
    """The values and list items of ``ns`` that hold no vector of ``model`` (none, or another
    model's), in ``(entry_id, seq)`` order after ``after`` (``seq`` -1: a value). Result:
    ``list[tuple[entry_id, seq, key, JSON text]]``, at most ``limit``."""

    ns: str
    model: str
    after: tuple[int, int] = (0, -2)
    limit: int = 500


class Embed(NamedTuple):
    """Store the vectors of existing values and list items of ``ns``: each unit is
    ``(entry_id, seq, JSON text it was made from, vector)``, stored only where the value (or
    item) still holds that text. Result: how many were stored."""

    ns: str
    model: str
    units: tuple[tuple[int, int, str, bytes], ...]


class Stats(NamedTuple):
    """What the whole store holds. Result: ``dict`` of ``namespaces``, ``keys``, ``bytes``
    (of values), ``changes`` (records in the log), ``change_bytes`` (of their values),
    ``oldest_change`` (microseconds, or ``None``), and ``vectors`` (how many each model's
    fingerprint has: ``{model: count}``)."""


Op = (
    Get | Put | Delete | Append | Incr | Expire | ListKeys | Clear | ListNamespaces | Restore
    | Slice | Search | Changes | History | Stats | AddChange | Unembedded | Embed
)  # fmt: skip
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
    Slice: "slice",
    Search: "search",
    Changes: "changes",
    History: "history",
    Stats: "stats",
    AddChange: "add_change",
    Unembedded: "unembedded",
    Embed: "embed",
}
"""Each operation's name: on the wire, and as ``_<name>`` the backend method that runs it."""
WRITE_OPS: tuple[type, ...] = (
    Put, Delete, Append, Incr, Expire, Clear, Restore, AddChange, Embed
)  # fmt: skip
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
    value: str | None = None
    """The value's JSON text, when the listing asked for values (``ListKeys.values``)."""


class NamespaceInfo(NamedTuple):
    """A namespace with what it holds (:class:`ListNamespaces` with ``sizes``)."""

    ns: str
    keys: int
    bytes: int
    """Of its live values."""
    writes_today: int
    """Writes since midnight UTC, as the writes quota counts them (0 while no quota is on)."""


class KeyPage(NamedTuple):
    """A page of keys and the cursor of the next page (``None`` on the last page)."""

    keys: list[KeyInfo]
    next_cursor: str | None


class SearchHit(NamedTuple):
    """A key that matched a :class:`Search`, as a backend returns it."""

    ns: str
    key: str
    score: float
    value: str | None
    """The value's JSON text; ``None`` for a list (see ``items``)."""
    items: list[tuple[int, str]] | None
    """A list's matching items: ``(position, JSON text)``, best first."""
    updated_at: int
    created_at: int
    context: list[tuple[int, str]] | None = None
    """A list's items around its matching ones (``Search.context``), in list order."""


class Change(NamedTuple):
    """One recorded write, as the change log holds it (:class:`Changes`, :class:`History`)."""

    seq: int
    """Its position in the store's log: grows with every change, in commit order."""
    ns: str
    key: str | None
    """``None`` for a ``clear`` (of the whole namespace)."""
    op: str
    """``set``, ``delete``, ``append``, ``incr``, ``expire``, ``clear``, ``import`` or
    ``expired`` (a key whose ttl ran out, removed)."""
    version: int | None
    """The key's version after the change (``None`` once it is gone)."""
    at: int
    actor: str
    """Who wrote: a server token's name (``token:NAME``), or ``local:user@host:pid``."""
    request_id: str | None
    value: str | None
    """JSON text of what was written, when asked for: a ``set``'s value, an ``append``'s items
    (a list), an ``incr``'s new number, an ``expire``'s ttl in seconds (``null``: none)."""
    detail: str | None = None
    """JSON text of what replaying the change needs besides its value: an ``append``'s
    window, ``{"max_len": n, "keep_first": {...} | null}`` (read by :class:`History`)."""


class ChangePage(NamedTuple):
    """A page of changes, and the position to read on from (``Changes.since``)."""

    changes: list[Change]
    cursor: int


class Quotas(NamedTuple):
    """Per-namespace limits a backend enforces inside its write transactions."""

    writes_per_day: int | None = None
    bytes: int | None = None


def handlers(backend: object) -> dict[type, Callable[..., Any]]:
    """``{operation type: backend._<name>}`` for every operation, for a backend's dispatch."""
    return {op: getattr(backend, f"_{name}") for op, name in OP_NAMES.items()}


def changes(op: Op) -> bool:
    """Whether an operation changes the store: every write, and a ``get`` that restarts a key's
    expiry (``refresh_ttl``). Such operations count against write quotas and need a token that
    may write."""
    return isinstance(op, WRITE_OPS) or (type(op) is Get and op.refresh_ttl)


def is_write(ops: Sequence[Op]) -> bool:
    """Whether a batch changes the store."""
    return any(changes(op) for op in ops)


def resendable(ops: Sequence[Op]) -> bool:
    """Whether a batch may run again when the first run's answer was lost, giving an answer
    as true as the first run's would have been.

    Reads qualify, and so do unconditional writes of a whole value (``put``, ``restore``): their
    answer is the version of the value the caller wrote. ``delete`` and ``clear`` do not (the
    second run would find nothing to delete), nor ``append``, ``incr`` and conditional writes.
    Both the HTTP client (after a broken connection) and PostgreSQL (after a broken connection
    in a statement that commits by itself) resend only such batches; any other batch whose
    outcome is unknown raises ``BackendUnavailable`` and says so.
    """
    return all(
        isinstance(op, (Get, ListKeys, ListNamespaces, Restore, Changes, History, Stats))
        or (isinstance(op, Put) and op.if_version is None)
        for op in ops
    )


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


Steps = Generator[list[Op], list[Any], T]
"""A call that needs several batches, each depending on the last (paging through keys): it
yields a batch, receives its results, and returns its answer. :func:`run_steps` and
:func:`arun_steps` drive it on a sync or an async ``execute``."""


def run_steps(execute: Callable[[list[Op]], list[Any]], steps: Steps[T]) -> T:
    """Drive ``steps``, running each batch it yields with ``execute``."""
    try:
        ops = next(steps)
        while True:
            ops = steps.send(execute(ops))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def arun_steps(execute: Callable[[list[Op]], Awaitable[list[Any]]], steps: Steps[T]) -> T:
    """Async twin of :func:`run_steps`."""
    try:
        ops = next(steps)
        while True:
            ops = steps.send(await execute(ops))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def together(steps: Sequence[Steps[Any]]) -> Steps[list[Any]]:
    """Several steps as one: each batch it yields holds the batches all of them wait on, in
    order, so independent reads share their round trips (and a transaction); it returns
    their answers in order. For reads: writes would commit, or fail, together."""
    answers: list[Any] = [None] * len(steps)
    waiting: dict[int, list[Op]] = {}

    def advance(index: int, results: list[Any] | None) -> None:
        try:
            step = steps[index]
            waiting[index] = next(step) if results is None else step.send(results)
        except StopIteration as done:
            answers[index] = done.value

    for index in range(len(steps)):
        advance(index, None)
    while waiting:
        batches, waiting = waiting, {}
        results = yield [op for batch in batches.values() for op in batch]
        start = 0
        for index, batch in batches.items():
            advance(index, results[start : start + len(batch)])
            start += len(batch)
    return answers


PAGE_SIZE = 1000
"""Keys per ``ListKeys`` page."""


def all_keys(
    ns: str,
    prefix: str = "",
    after: str | None = None,
    reverse: bool = False,
    limit: int | None = None,
    values: bool = False,
) -> Steps[list[KeyInfo]]:
    """The live keys of ``ns`` that start with ``prefix`` and come after ``after``, in key
    order (``reverse``: from the last), at most ``limit`` of them (with their values when
    ``values``), page by page."""
    found: list[KeyInfo] = []
    while limit is None or len(found) < limit:
        size = PAGE_SIZE if limit is None else min(PAGE_SIZE, limit - len(found))
        (page,) = yield [ListKeys(ns, prefix, size, after, reverse, values)]
        found.extend(page.keys)
        if page.next_cursor is None:
            break
        after = page.next_cursor
    return found


_shutdown_hooks: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, list[AsyncGenerator[None, None]]
] = weakref.WeakKeyDictionary()


async def _await_at_shutdown(callback: Callable[[], Awaitable[None]]) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        await callback()


def on_loop_shutdown(callback: Callable[[], Awaitable[None]]) -> None:
    """Arrange for ``await callback()`` when the running event loop shuts down.

    ``asyncio.run`` (and every runner that calls ``loop.shutdown_asyncgens()`` before closing
    its loop) finalises the async generators still suspended in the loop; one of them, started
    here and kept referenced until then, runs ``callback`` in that loop. Connection pools made
    for a loop are closed this way instead of being left open when the loop is gone.
    """
    loop = asyncio.get_running_loop()
    hook = _await_at_shutdown(callback)
    step = hook.asend(None)  # its first step registers it with the loop, then it waits
    with contextlib.suppress(StopIteration):
        step.send(None)
    _shutdown_hooks.setdefault(loop, []).append(hook)


INHERITED: list[object] = []
"""Connections a child process inherited through ``fork``: kept referenced and never used, so
that neither garbage collection nor ``close()`` in the child touches sockets and files that the
parent still uses."""

_backends: weakref.WeakSet[Backend] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for backend in list(_backends):
        backend._lock = threading.Lock()  # another thread may have held it during the fork
        backend._after_fork()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Backend(ABC):
    """A store that runs batches of operations atomically.

    Implement :meth:`execute`; :meth:`aexecute` defaults to running it in a worker thread, and
    backends with native async I/O override it. A subclass calls ``super().__init__()``, which
    registers it for :meth:`_after_fork`.
    """

    url: str
    """Where the store lives, with any password masked."""
    clock: Callable[[], float] = time.time
    """The store's clock, seconds since the epoch."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._broadcast: tuple[int, Any] | None = None
        _backends.add(self)

    def _after_fork(self) -> None:  # noqa: B027 - optional hook
        """In a child process after ``fork``: forget the parent's connections (hand them to
        :data:`INHERITED`) so that the next call opens the child's own."""

    def now(self) -> int:
        """The store's time in integer microseconds: one reading serves a whole batch, so every
        operation in it judges expiry, and stamps what it writes, with the same time."""
        return int(self.clock() * 1_000_000)

    @abstractmethod
    def execute(self, ops: Sequence[Op]) -> list[Any]:
        """Run ``ops`` in one atomic transaction and return one result per operation."""

    async def aexecute(self, ops: Sequence[Op]) -> list[Any]:
        """Async twin of :meth:`execute`."""
        return await asyncio.to_thread(self.execute, ops)

    def watcher(self) -> Any:
        """A :class:`~botwire.backends.changes.Watcher` of this store, for :meth:`follow`."""
        raise NotImplementedError(f"{type(self).__name__} cannot be watched")

    def follow(self, op: Changes) -> Generator[Change, None, None]:
        """Every change ``op`` selects after ``op.since`` (``-1``: from now on), as they
        commit, forever; closing the iterator stops it. The followers of a process share one
        watcher of the store, and those of one selection one read of each change."""
        from botwire.backends.changes import follow

        return follow(self.execute, op, self._broadcast_of_process())

    def afollow(self, op: Changes) -> AsyncIterator[Change]:
        """Async :meth:`follow`."""
        from botwire.backends.changes import afollow

        return afollow(self.aexecute, op, self._broadcast_of_process())

    def afollow_batches(
        self, op: Changes, idle: float | None = None
    ) -> AsyncIterator[list[Change]]:
        """:meth:`afollow`, as the lists of changes found at each wake-up; an empty list after
        ``idle`` seconds without one (never when ``None``)."""
        from botwire.backends.changes import afollow_batches

        return afollow_batches(self.aexecute, op, self._broadcast_of_process(), idle)

    def _broadcast_of_process(self) -> Any:
        from botwire.backends.changes import Broadcast

        with self._lock:
            if self._broadcast is None or self._broadcast[0] != os.getpid():  # not a parent's
                self._broadcast = (os.getpid(), Broadcast(self.watcher, self.execute))
            return self._broadcast[1]

    def migrate(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Bring the store's schema up to date; return how many migrations ran.

        ``progress(done, total)`` follows work through existing data (indexing it, say).
        """
        return 0

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. The backend reopens them if used again."""

    async def aclose(self) -> None:
        """Async twin of :meth:`close`."""
        self.close()
