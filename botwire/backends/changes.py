"""The change log, once for every store: what each write records, and who wrote it.

Every write that changes something adds one record to the store's log in the same transaction
as the write (:class:`~botwire.backends.base.Change`): its namespace and key, the kind of
change, the key's new version, the time, the actor and the request id, and what was written.
A batch that fails records nothing, as it writes nothing. Each engine keeps the log in a table
of its own (its ``changes`` module) and reads it in commit order.

Botwire's own namespaces (those holding ``/``, such as the server's tokens) are not logged.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import getpass
import json
import os
import socket
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator
from contextvars import ContextVar
from typing import Any, NamedTuple, Protocol

from botwire._values import parse_time
from botwire.backends.base import (
    AddChange,
    Append,
    Change,
    ChangePage,
    Changes,
    Clear,
    Delete,
    Expire,
    Incr,
    Op,
    Put,
    Restore,
)
from botwire.backends.common import fields_match, page_takes
from botwire.errors import InvalidRequest

actor: ContextVar[str | None] = ContextVar("botwire_actor", default=None)
"""Who the batch being run writes for: the server sets ``token:NAME`` around each request;
unset, a process writes as :func:`local_actor`."""
request_id: ContextVar[str | None] = ContextVar("botwire_request_id", default=None)
"""The id of the request whose batch is being run (the server sets it)."""

RETENTION = 7 * 86_400.0
"""How long the log keeps a change, by default: seven days (``?history=`` on a store URL)."""
TRIM_BATCH = 1_000
"""Most changes one trim deletes (trims run with the purge of expired keys, once a second)."""

_local: tuple[int, str] | None = None


def versions_kept(text: str | None) -> int | None:
    """How many changes of each key the log keeps, from a URL's ``?history_versions=``
    (``None``: as many as its time retention allows)."""
    if text is None:
        return None
    if not text.isdigit() or not 1 <= int(text) <= 1_000_000:
        raise InvalidRequest(
            f"?history_versions= takes how many changes of each key to keep (1 or more), "
            f"not {text!r}"
        )
    return int(text)


def moment(text: str, now: int, what: str) -> int:
    """A time a person names, as microseconds: a span back from ``now`` (``90s``, ``30m``,
    ``1h``, ``2d``) or an ISO 8601 time (``2026-12-01T09:00:00Z``; UTC when it names no zone)."""
    units = {"s": 1.0, "m": 60.0, "h": 3_600.0, "d": 86_400.0}
    refusal = InvalidRequest(
        f"{what} takes a span back from now (30m, 1h, 2d) or an ISO 8601 time, not {text!r}"
    )
    number = text[:-1].replace(".", "", 1)
    if text[-1:] in units and number.isascii() and number.isdigit():
        span = float(text[:-1]) * units[text[-1]]
        if not span < 400 * 366 * 86_400:  # four centuries back: before any change
            raise refusal
        return now - int(span * 1_000_000)
    try:
        return parse_time(text, what) or 0
    except (ValueError, OverflowError):
        raise refusal from None


def token_actor(name: str | None) -> str | None:
    """The actor the log names for ``name``: a bare token name becomes ``token:NAME``; an
    actor as the log writes it (``local:...``, ``system:ttl``, ``anonymous``) stays."""
    if name is None or ":" in name or name == "anonymous":
        return name
    return f"token:{name}"


def audit_span(since: str | None, until: str | None, now: int) -> tuple[int | None, int | None]:
    """The audit's time range from what a person typed; refused when it is empty or in the
    future."""
    start = None if since is None else moment(since, now, "since")
    end = None if until is None else moment(until, now, "until")
    if start is not None and start > now:
        raise InvalidRequest("since is in the future: nothing has happened there yet")
    if start is not None and end is not None and end <= start:
        raise InvalidRequest("until must come after since")
    return start, end


def retention(text: str | None) -> float:
    """Seconds the log keeps a change, from a URL's ``?history=``: seconds, or a number of
    days (``30d``) or hours (``12h``); default :data:`RETENTION`; ``off``: ``0``, this
    process logs nothing (cheaper writes; nothing to watch or restore)."""
    if text is None:
        return RETENTION
    if text == "off":
        return 0.0
    units = {"d": 86_400.0, "h": 3_600.0, "s": 1.0}
    number, unit = (text[:-1], units[text[-1]]) if text[-1:] in units else (text, 1.0)
    try:
        seconds = float(number) * unit
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < 1e11:
        raise InvalidRequest(
            f"?history= takes how long to keep changes (seconds, 30d or 12h) or off, not {text!r}"
        )
    return seconds


def local_actor() -> str:
    """``local:user@host:pid``: a process writing to a store directly."""
    global _local
    pid = os.getpid()
    if _local is None or _local[0] != pid:  # a forked child is another writer
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no name for this uid (a container, say)
            user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
        _local = (pid, f"local:{user}@{socket.gethostname()}:{pid}")
    return _local[1]


def current_actor() -> str:
    return actor.get() or local_actor()


class Record(NamedTuple):
    """What one write adds to the log (the engine adds the version, time and actor)."""

    ns: str
    key: str | None
    op: str
    value: str | None
    detail: str | None = None
    version: int | None = None
    """The key's new version, when the write answered it (else the engine reads it)."""
    at: int | None = None
    """When it happened, for a change imported with its history (else: the batch's time)."""
    actor: str | None = None
    """Who made it, for a change imported with its history (else: :func:`current_actor`)."""
    request_id: str | None = None


def imported(op: AddChange) -> Record:
    """The record an :class:`AddChange` adds, as it was made."""
    return Record(op.ns, op.key, op.op, op.value, op.detail, op.version, op.at, op.actor,
                  op.request_id)  # fmt: skip


def logs(ns: str) -> bool:
    """Whether the writes of namespace ``ns`` are logged: botwire's own (a ``/`` in the name:
    the server's tokens) are not."""
    return "/" not in ns


def record(op: Op, result: Any) -> Record | None:
    """What ``op``, which answered ``result``, adds to the log; ``None`` when it changed
    nothing (a delete of a missing key, an expire of one), or is not a write."""
    ns = getattr(op, "ns", None)
    if not isinstance(ns, str) or not logs(ns):
        return None  # not a write of one namespace, or one of botwire's own
    if isinstance(op, Put):
        return Record(op.ns, op.key, "set", op.value, None, result)
    if isinstance(op, Append):
        window = f'{{"length":{int(result)},"max_len":{json.dumps(op.max_len)},' + (
            f'"keep_first":{op.keep_first or "null"}}}'
        )
        return Record(op.ns, op.key, "append", "[" + ",".join(op.values) + "]", window)
    if isinstance(op, Incr):
        return Record(op.ns, op.key, "incr", str(result))
    if isinstance(op, Restore):
        return Record(op.ns, op.key, "import", op.value, None, result)
    if isinstance(op, Delete) and result:
        return Record(op.ns, op.key, "delete", None)
    if isinstance(op, Expire) and result:
        return Record(op.ns, op.key, "expire", json.dumps(op.ttl))
    if isinstance(op, Clear) and result:
        return Record(op.ns, None, "clear", None)
    return None


TTL_ACTOR = "system:ttl"
"""Who removes a key whose ttl ran out (whichever batch happened to purge it)."""


def expired(ns: str, key: str, now: int) -> Record | None:
    """What a key removed because its ttl ran out adds to the log."""
    return Record(ns, key, "expired", None, at=now, actor=TTL_ACTOR) if logs(ns) else None


def page(rows: list[tuple[object, ...]], op: Changes, horizon: int) -> ChangePage:
    """The page of ``rows`` (read up to ``horizon``) that fits the batch's read budget, and
    where to read on: after its last change, or, when nothing up to the horizon is left for
    this reader, after the horizon."""
    found: list[Change] = []
    for row in rows:
        value = row[8]
        if isinstance(value, str) and not page_takes(len(value.encode()), len(found)):
            return ChangePage(found, found[-1].seq)
        found.append(Change(*row))  # type: ignore[arg-type]
    if len(rows) < op.limit:
        return ChangePage(found, max(op.since, horizon))
    return ChangePage(found, found[-1].seq)


# -- a key's value at a point of its history ----------------------------------------------------

_GONE = ("delete", "clear", "expired")
_WHOLE = ("set", "import", "incr")


def target(changes: list[Change], version: int | None, at: int | None) -> int | None:
    """The index in ``changes`` (a key's, newest first) of the change that left the key as it
    was at ``version`` (the newest change that has it) or at time ``at``; ``None``: none."""
    for index, change in enumerate(changes):
        if (change.version == version) if version is not None else (change.at <= (at or 0)):
            return index
    return None


def base(changes: list[Change], start: int) -> int | None:
    """The index of the newest change at or before ``changes[start]`` (a key's, newest first)
    that leaves the key's value whole: a write of the value, a removal, or an append to an
    empty list; ``None``: the log no longer reaches one."""
    for index in range(start, len(changes)):
        change = changes[index]
        if change.op in _WHOLE or change.op in _GONE:
            return index
        if change.op == "append" and _starts_list(change):
            return index
    return None


def _starts_list(change: Change) -> bool:
    """Whether an append found the list empty (or absent): its length is its items'."""
    window = json.loads(change.detail or "{}")
    items = json.loads(change.value or "[]")
    fits = window.get("max_len") is None or window.get("keep_first") is None
    return window.get("length") == len(items) and (fits or len(items) < window["max_len"])


def replay(changes: list[Change]) -> tuple[bool, Any]:
    """A key's state after ``changes`` (oldest first, the first leaving its value whole):
    ``(True, value)``, or ``(False, None)`` when it did not exist."""
    present, value = False, None
    for change in changes:
        if change.op in _GONE:
            present, value = False, None
        elif change.op in _WHOLE:
            present, value = True, json.loads(change.value or "null")
        elif change.op == "append":
            items = json.loads(change.value or "[]")
            value = [*(value if present and isinstance(value, list) else []), *items]
            present = True
            window = json.loads(change.detail or "{}")
            max_len, keep = window.get("max_len"), window.get("keep_first")
            if max_len is not None and len(value) > max_len:
                if keep is not None and fields_match(value[0], keep):
                    value = [value[0], *value[len(value) - max_len + 1 :]]
                else:
                    value = value[len(value) - max_len :]
    return present, value


def alone(ops: Any) -> None:
    """Refuse a batch in which a :class:`Changes` read does not stand alone (each engine reads
    the log at its own horizon, outside any other transaction)."""
    if len(ops) > 1 and any(type(op) is Changes for op in ops):
        raise InvalidRequest("a 'changes' read runs alone in its batch")


# -- following the log -------------------------------------------------------------------------

POLL_SECONDS = 0.001
"""How often a SQLite watcher looks whether another connection committed (a cheap pragma)."""
WAIT_SECONDS = 1.0
"""Longest a follower waits before it reads the log again, a wake-up or not."""
PAUSE_PER_CHANGE = 0.001
MAX_PAUSE = 0.05
"""How long a :class:`Broadcast` waits after a wake-up that found several changes (1 ms for
each after the first, up to 50 ms) before it reads again: a change that comes alone is
passed on at once, and under a stream of writes its followers wake about 20 times a second,
each time for all that came, rather than once for every write."""


class Watcher(Protocol):
    """Tells a follower when the store may hold a new change: take a :meth:`mark`, read the log,
    and when the read found nothing new, :meth:`wait` until the store moved past the mark.
    Nothing committed after the mark is missed, however close behind it."""

    def mark(self) -> object:
        """Where the store is now (opaque)."""

    def wait(self, mark: object, timeout: float) -> bool:
        """Return ``True`` once the store has moved past ``mark``, ``False`` after ``timeout``
        seconds."""

    def close(self) -> None:
        """Release what the watcher holds (a connection)."""


RING = 2_000
"""Changes a feed keeps for its followers (one that falls further behind reads the store)."""


def _seq(change: Change) -> int:
    return change.seq


class Feed:
    """The changes one selection (namespace, prefixes, values) picks, read once for every
    follower of it in the process: the :class:`Broadcast` thread appends them as they commit;
    a follower whose position is within :attr:`start`..:attr:`cursor` takes them from here."""

    def __init__(self, op: Changes, end: int) -> None:
        self.op = op._replace(since=end)
        self.start = end
        """The ring holds every change of the selection after this position."""
        self.cursor = end
        """... up to this one."""
        self.ring: list[Change] = []
        self.followers = 0
        self.waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def moved(self, position: int) -> bool:
        """Whether the feed has read past ``position``."""
        return self.cursor > position

    def after(self, position: int) -> list[Change] | None:
        """The changes after ``position``; ``None`` when the ring no longer reaches back."""
        if position < self.start:
            return None
        return self.ring[bisect.bisect_right(self.ring, position, key=_seq) :]

    def add(self, page: ChangePage) -> None:
        self.ring += page.changes
        self.cursor = page.cursor
        if len(self.ring) > RING:
            self.start = self.ring[-RING - 1].seq
            del self.ring[:-RING]


class Broadcast:
    """One watcher of a store for a whole process, however many follow it: a thread waits on
    it, reads each :class:`Feed` once per wake-up, and wakes the feed's followers. The thread
    runs while someone follows."""

    def __init__(self, make: Callable[[], Watcher], execute: Callable[[list[Op]], list[Any]]):
        self.make = make
        self.execute = execute
        self.feeds: dict[Changes, Feed] = {}
        self.changed = threading.Condition()
        self.thread: threading.Thread | None = None

    def join(self, op: Changes) -> Feed:
        """The feed of ``op``'s selection (made, and the thread started, when none runs). The
        store is read, and the watcher made, outside the lock that followers wait on."""
        selection = op._replace(since=0, limit=BATCH_READ)
        with self.changed:
            feed = self.feeds.get(selection)
            if feed is not None:
                feed.followers += 1
                return feed
        (end,) = self.execute([selection._replace(since=-1)])
        with self.changed:
            feed = self.feeds.setdefault(selection, Feed(selection, end.cursor))
            feed.followers += 1
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, daemon=True)
                self.thread.start()
        return feed

    def leave(self, feed: Feed) -> None:
        with self.changed:
            feed.followers -= 1
            if feed.followers == 0:
                self.feeds.pop(feed.op._replace(since=0), None)

    def _run(self) -> None:
        """Read every feed, then wait for the store to move on, while anyone follows; a
        watcher that fails (its connection lost) is made again, after a pause."""
        watcher: Watcher | None = None
        try:
            while True:
                with self.changed:
                    feeds = list(self.feeds.values())
                    if not feeds:
                        self.thread = None
                        return
                try:
                    if watcher is None:
                        watcher = self.make()
                    mark = watcher.mark()
                    found = sum([self._read(feed) for feed in feeds])
                    if found > 1:  # writes come fast: let the next wake-up carry more of them
                        time.sleep(min(MAX_PAUSE, (found - 1) * PAUSE_PER_CHANGE))
                    watcher.wait(mark, WAIT_SECONDS)
                except Exception:  # the store went away: followers wait, this thread retries
                    if watcher is not None:
                        with contextlib.suppress(Exception):
                            watcher.close()
                    watcher = None
                    time.sleep(WAIT_SECONDS)
        finally:
            if watcher is not None:
                watcher.close()
            with self.changed:
                if self.thread is threading.current_thread():
                    self.thread = None

    def _read(self, feed: Feed) -> int:
        """Read what committed for ``feed`` since it was last read, and wake its followers;
        return how many changes that was."""
        found = 0
        while True:
            (page,) = self.execute([feed.op._replace(since=feed.cursor)])
            with self.changed:
                moved = page.cursor != feed.cursor
                feed.add(page)
                if moved:
                    self.changed.notify_all()
                    for loop, event in feed.waiters:
                        loop.call_soon_threadsafe(event.set)
            found += len(page.changes)
            if len(page.changes) < feed.op.limit:
                return found


BATCH_READ = 500
"""Changes a feed, or a follower behind it, reads per round trip."""


def _selected(op: Changes, changes: list[Change]) -> list[Change]:
    """The feed's changes as ``op`` asked for them (with or without values)."""
    return changes if op.values else [change._replace(value=None) for change in changes]


def follow(
    execute: Callable[[list[Op]], list[Any]], op: Changes, broadcast: Broadcast
) -> Generator[Change, None, None]:
    """Every change ``op`` selects after ``op.since`` (``-1``: from now on), oldest first,
    forever: from the process's shared feed of that selection, or read from the store while
    the follower is further behind than the feed reaches."""
    feed = broadcast.join(op._replace(values=True))
    try:
        position = op.since if op.since >= 0 else execute([op])[0].cursor
        while True:
            with broadcast.changed:
                found = feed.after(position)
                if found == [] and feed.cursor <= position:
                    moved = functools.partial(feed.moved, position)
                    broadcast.changed.wait_for(moved, WAIT_SECONDS)
                    continue
                reached = feed.cursor
            if found is None:  # behind the ring: read the store
                (page,) = execute([op._replace(since=position, limit=BATCH_READ)])
                yield from page.changes
                position = page.cursor
                continue
            yield from _selected(op, found)
            position = max(position, reached)
    finally:
        broadcast.leave(feed)


def _leave_joined(broadcast: Broadcast, joining: asyncio.Future[Feed]) -> None:
    if not joining.cancelled() and joining.exception() is None:
        broadcast.leave(joining.result())


async def afollow(
    aexecute: Callable[[list[Op]], Awaitable[list[Any]]], op: Changes, broadcast: Broadcast
) -> AsyncIterator[Change]:
    """Async :func:`follow`: it waits on an event the broadcast thread sets, never in a
    worker thread."""
    async with contextlib.aclosing(afollow_batches(aexecute, op, broadcast)) as batches:
        async for batch in batches:
            for change in batch:
                yield change


async def afollow_batches(
    aexecute: Callable[[list[Op]], Awaitable[list[Any]]],
    op: Changes,
    broadcast: Broadcast,
    idle: float | None = None,
) -> AsyncGenerator[list[Change], None]:
    """:func:`afollow`, as the lists of changes found at each wake-up; an empty list after
    ``idle`` seconds without one (a stream's heartbeat), never when ``idle`` is ``None``."""
    joining = asyncio.ensure_future(asyncio.to_thread(broadcast.join, op._replace(values=True)))
    try:
        feed = await asyncio.shield(joining)
    except asyncio.CancelledError:  # left while joining: leave once the join is done
        joining.add_done_callback(functools.partial(_leave_joined, broadcast))
        raise
    event = asyncio.Event()
    waiter = (asyncio.get_running_loop(), event)
    try:
        position = op.since if op.since >= 0 else (await aexecute([op]))[0].cursor
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            with broadcast.changed:
                found = feed.after(position)
                reached = feed.cursor
                if found == [] and reached <= position:
                    event.clear()
                    feed.waiters.add(waiter)
            if found == [] and reached <= position:
                if idle is not None and loop.time() - last >= idle:
                    last = loop.time()
                    yield []
                    continue
                wait = (
                    WAIT_SECONDS if idle is None else min(WAIT_SECONDS, last + idle - loop.time())
                )
                timer = loop.call_later(wait, event.set)  # a timer, not a task per wait
                try:
                    await event.wait()
                finally:
                    timer.cancel()
                continue
            if found is None:
                (page,) = await aexecute([op._replace(since=position, limit=BATCH_READ)])
                if page.changes:
                    last = loop.time()
                    yield page.changes
                position = page.cursor
                continue
            if selected := list(_selected(op, found)):
                last = loop.time()
                yield selected
            position = max(position, reached)
    finally:
        with broadcast.changed:
            feed.waiters.discard(waiter)
        broadcast.leave(feed)
