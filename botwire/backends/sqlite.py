"""The embedded store: one SQLite file shared by every thread and process on this machine.

Connections are opened with ``isolation_level=None`` (we say when transactions begin), one per
thread, and opened anew in a child after ``fork``. The file is in WAL mode, so readers never block
the one writer; writes run in ``BEGIN IMMEDIATE`` so a writer takes the lock before it reads what it
will change, which is what makes ``append``/``incr``/``if_version`` atomic across processes.
``synchronous=NORMAL`` (the default) means a committed write survives the crash of any process; on
a power cut the last transactions may roll back but the file stays intact. ``synchronous=FULL``
(``sqlite:///path?synchronous=full``) survives power cuts too, at the cost of an fsync per commit.

Lists are stored one row per item (``list_items``) with the item range (``list_lo``, ``list_hi``)
on the key's row, so appending costs the same at 10 items as at 10,000.

Each thread's connections close when the thread ends; a child process after ``fork`` leaves the
parent's connections alone and opens its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from botwire.backends.base import (
    INHERITED,
    Append,
    Backend,
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
    Quotas,
    Record,
    Restore,
    Search,
    SearchHit,
    Slice,
    handlers,
    is_write,
    prefix_upper_bound,
)
from botwire.backends.common import (
    LIST,
    PURGE_BATCH,
    VALUE,
    AddItems,
    CountWrites,
    DropItems,
    LockRow,
    MoveItem,
    ReadItem,
    Row,
    SaveList,
    SaveValue,
    StoredBytes,
    append_steps,
    expiry,
    fresh_row,
    incr_steps,
    item_range,
    nbytes,
    quota_checks,
    read_budget,
    sliced_value,
    version_conflict,
)
from botwire.backends.search import (
    SEARCH_OFF,
    JsonFields,
    Scalar,
    conditions,
    indexed_text,
    parse_query,
    search_hits,
    search_scope,
)
from botwire.errors import BackendUnavailable, InvalidRequest

_QUEUE_EVERYTHING = """
    INSERT INTO search_pending SELECT id, -1 FROM entries WHERE kind = 0 AND instr(ns, '/') = 0;
    INSERT INTO search_pending
        SELECT i.entry_id, i.seq FROM list_items i JOIN entries e ON e.id = i.entry_id
        WHERE instr(e.ns, '/') = 0;
"""
"""Every document of the store, for the index to catch up with."""

MIGRATIONS: list[str] = [
    # 1: the first schema.
    """
    CREATE TABLE entries (
        id INTEGER PRIMARY KEY,
        ns TEXT NOT NULL,
        key TEXT NOT NULL,
        kind INTEGER NOT NULL,      -- 0: JSON text in value; 1: a list, items in list_items
        value TEXT,
        size INTEGER NOT NULL,      -- bytes of the value's JSON text
        version INTEGER NOT NULL,
        created_at INTEGER NOT NULL,  -- microseconds since the epoch
        updated_at INTEGER NOT NULL,
        expires_at INTEGER,
        ttl REAL,                   -- seconds the key was written with, for refresh_ttl
        list_lo INTEGER,            -- lists: items have lo <= seq < hi
        list_hi INTEGER,
        UNIQUE (ns, key)
    );
    CREATE INDEX entries_expiry ON entries (expires_at) WHERE expires_at IS NOT NULL;
    CREATE TABLE list_items (
        entry_id INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (entry_id, seq)
    ) WITHOUT ROWID;
    CREATE TRIGGER entries_delete_items AFTER DELETE ON entries WHEN old.kind = 1
    BEGIN DELETE FROM list_items WHERE entry_id = old.id; END;
    CREATE TRIGGER entries_replace_items AFTER UPDATE OF kind ON entries
    WHEN old.kind = 1 AND new.kind = 0
    BEGIN DELETE FROM list_items WHERE entry_id = old.id; END;
    CREATE TABLE quota_usage (
        ns TEXT NOT NULL,
        day INTEGER NOT NULL,
        writes INTEGER NOT NULL,
        PRIMARY KEY (ns, day)
    ) WITHOUT ROWID;
    """,
    # 2 (2026-11): a version floor for the whole store. Deleting a key (or purging it) raises
    # the floor to its version, and a key is created with a version above the floor, so a key
    # deleted and created again gets a version above any it had, whatever the clocks of the
    # processes that wrote it say.
    """
    CREATE TABLE version_floor (value INTEGER NOT NULL);
    INSERT INTO version_floor SELECT coalesce(max(version), 0) FROM entries;
    CREATE TRIGGER entries_version_floor AFTER DELETE ON entries
    BEGIN UPDATE version_floor SET value = old.version WHERE value < old.version; END;
    """,
    # 3 (2026-11): full-text search. FTS5 holds one document per value and per list item. A
    # transaction that writes one FTS5 row costs about four times a plain upsert (FTS5 writes a
    # segment per commit), while rows added in batches cost little, so writes only note the
    # documents they change in search_pending (triggers, so that every write path does), in
    # their own transaction, and the index catches up in batches: before every search, in the
    # search's transaction (never stale), and now and then during writes. Existing values are
    # queued here and indexed the same way.
    """
    CREATE VIRTUAL TABLE search_fts USING fts5(doc, tokenize = 'unicode61');
    CREATE TABLE search_docs (      -- list items' documents: rowid -id in search_fts
        id INTEGER PRIMARY KEY,     -- (a value's document has its entry's id as rowid)
        entry_id INTEGER NOT NULL,
        seq INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX search_docs_of ON search_docs (entry_id, seq);
    CREATE TABLE search_pending (   -- a queue, in rowid order; a document may be noted twice
        entry_id INTEGER NOT NULL,
        seq INTEGER NOT NULL        -- -1: the value; -2: the entry is gone; else an item
    );
    CREATE TABLE search_state (enabled INTEGER NOT NULL);
    INSERT INTO search_state VALUES (1);
    CREATE TRIGGER search_entry_new AFTER INSERT ON entries
    WHEN instr(new.ns, '/') = 0 AND (SELECT enabled FROM search_state)
    BEGIN INSERT INTO search_pending VALUES (new.id, -1); END;
    CREATE TRIGGER search_entry_changed AFTER UPDATE OF value, kind ON entries
    WHEN instr(new.ns, '/') = 0 AND (SELECT enabled FROM search_state)
    BEGIN INSERT INTO search_pending VALUES (new.id, -1); END;
    CREATE TRIGGER search_entry_gone AFTER DELETE ON entries
    WHEN instr(old.ns, '/') = 0 AND (SELECT enabled FROM search_state)
    BEGIN INSERT INTO search_pending VALUES (old.id, -2); END;
    CREATE TRIGGER search_item_new AFTER INSERT ON list_items
    WHEN (SELECT enabled FROM search_state)
    BEGIN INSERT INTO search_pending VALUES (new.entry_id, new.seq); END;
    CREATE TRIGGER search_item_gone AFTER DELETE ON list_items
    WHEN (SELECT enabled FROM search_state)
        AND EXISTS (SELECT 1 FROM entries WHERE id = old.entry_id)
    BEGIN INSERT INTO search_pending VALUES (old.entry_id, old.seq); END;
    CREATE TRIGGER search_item_moved AFTER UPDATE OF seq ON list_items
    WHEN (SELECT enabled FROM search_state)
    BEGIN INSERT INTO search_pending VALUES (old.entry_id, old.seq);
          INSERT INTO search_pending VALUES (new.entry_id, new.seq); END;
    """
    + _QUEUE_EVERYTHING,
]
SCHEMA_VERSION = len(MIGRATIONS)

_ROW = "id, kind, value, version, created_at, updated_at, expires_at, size, ttl"
_GET = f"SELECT {_ROW} FROM entries WHERE ns = ? AND key = ?"
_GET_VALUE = "SELECT kind, value, expires_at FROM entries WHERE ns = ? AND key = ?"
_LIVE = "(expires_at IS NULL OR expires_at > ?)"
_NEW_VERSION = "max(?5, (SELECT value + 1 FROM version_floor))"
"""A new key's version: the time (``?5``), or above every version deleted before."""
_ONE_WRITE_STATEMENT = (Put, Delete, Expire, Restore)
SEARCH_CATCH_UP = 256
"""Write batches of one process between two catch-ups of the search index (see migration 3)."""
SEARCH_BATCH = 2000
"""Most documents one catch-up during writes indexes."""


class _SearchBehind(Exception):
    """A search read a snapshot in which writes had noted documents not indexed yet."""


def _documents_of(matches: list[tuple[int, float]]) -> tuple[str, list[Any]]:
    """SQL for the documents that FTS5 matched (rowids with scores): ``(entry_id, seq,
    score)``, with its parameters."""
    values = ",".join(["(?, ?)"] * len(matches))
    return (
        f"SELECT coalesce(d.entry_id, m.rowid), coalesce(d.seq, -1), m.score"
        f" FROM (SELECT column1 AS rowid, column2 AS score FROM (VALUES {values})) m"
        " LEFT JOIN search_docs d ON m.rowid < 0 AND d.id = -m.rowid",
        [number for match in matches for number in match],
    )


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _SQLiteJson(JsonFields):
    """Fields of JSON text through SQLite's JSON functions (``json_type`` tells ``true`` from
    ``1``, and ``integer``/``real`` from ``text``)."""

    def equal(self, field: str, value: Scalar) -> tuple[str, list[Any]]:
        path = f'$."{field}"'
        if value is None or isinstance(value, bool):
            return "json_type(VALUE, ?) = ?", [path, json.dumps(value)]
        kinds = "('text')" if isinstance(value, str) else "('integer', 'real')"
        return f"(json_type(VALUE, ?) IN {kinds} AND json_extract(VALUE, ?) = ?)", [
            path, path, value]  # fmt: skip

    def compare(self, field: str, op: str, value: str | int | float) -> tuple[str, list[Any]]:
        path = f'$."{field}"'
        kinds = "('text')" if isinstance(value, str) else "('integer', 'real')"
        return f"(json_type(VALUE, ?) IN {kinds} AND json_extract(VALUE, ?) {op} ?)", [
            path, path, value]  # fmt: skip


_JSON = _SQLiteJson()

# One statement for a plain set: an upsert keeps the common write to a single round through
# the engine. Columns named bare inside DO UPDATE are the row as it was.
_UPSERT = f"""
INSERT INTO entries (ns, key, kind, value, size, version, created_at, updated_at, expires_at, ttl)
VALUES (?1, ?2, 0, ?3, ?4, {_NEW_VERSION}, ?5, ?5, ?6, ?7)
ON CONFLICT (ns, key) DO UPDATE SET
    kind = 0, value = excluded.value, size = excluded.size,
    version = max(version + 1, ?5),
    created_at = CASE WHEN expires_at <= ?5 THEN ?5 ELSE created_at END,
    updated_at = ?5,
    expires_at = CASE WHEN ?8 AND (expires_at IS NULL OR expires_at > ?5) THEN expires_at
                      ELSE excluded.expires_at END,
    ttl = CASE WHEN ?8 AND (expires_at IS NULL OR expires_at > ?5) THEN ttl ELSE excluded.ttl END,
    list_lo = NULL, list_hi = NULL
"""


class _ThreadConnections:
    """One thread's connections. When the thread ends (its thread-local storage, which holds
    this, goes away) they go to the backend's idle connections for the next thread, or close;
    never in a child process after ``fork``."""

    __slots__ = ("__weakref__", "idle", "nowait", "pid", "wait")

    def __init__(self, idle: _Idle) -> None:
        self.idle = idle
        self.wait, self.nowait = idle.take()
        self.pid = os.getpid()

    def close(self) -> None:
        for conn in (self.wait, self.nowait):
            if conn is not None:
                conn.close()
        self.wait = self.nowait = None

    def __del__(self) -> None:
        if self.pid == os.getpid():
            with contextlib.suppress(Exception):  # at exit, sqlite3 may be gone already
                if not self.idle.give(self.wait, self.nowait):
                    self.close()


class _Idle:
    """The connections of threads that ended, for threads that start: opening a connection
    costs milliseconds, and thread pools (LangGraph's, a server's) start threads often."""

    SIZE = 8

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pairs: list[tuple[sqlite3.Connection | None, sqlite3.Connection | None]] = []
        self._closed = False

    def take(self) -> tuple[sqlite3.Connection | None, sqlite3.Connection | None]:
        with self._lock:
            return self._pairs.pop() if self._pairs else (None, None)

    def give(self, wait: sqlite3.Connection | None, nowait: sqlite3.Connection | None) -> bool:
        """Keep a pair for the next thread; ``False`` when full or closed (close it then)."""
        if wait is None and nowait is None:
            return True
        with self._lock:
            if self._closed or len(self._pairs) >= self.SIZE:
                return False
            self._pairs.append((wait, nowait))
            return True

    def close(self) -> None:
        with self._lock:
            pairs, self._pairs, self._closed = self._pairs, [], True
        for pair in pairs:
            for conn in pair:
                if conn is not None:
                    conn.close()


def _statements(script: str) -> Iterator[str]:
    """The statements of a SQL script, one at a time (a trigger's body holds semicolons)."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            yield statement
            statement = ""
    if statement.strip():
        yield statement


def _may_write(ops: Sequence[Op]) -> bool:
    """Whether a batch writes, or may (a search first indexes what writes noted). A single
    plain ``get``, the most frequent batch, is answered first, at the cost of one check."""
    if len(ops) == 1 and type(ops[0]) is Get and not ops[0].refresh_ttl:
        return False
    return is_write(ops) or any(type(op) is Search for op in ops)


def _busy(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


class SQLiteBackend(Backend):
    """A SQLite file used by many threads and processes at once.

    Args:
        path: the database file; its folder is created if needed.
        timeout: seconds a writer waits for another process's lock before giving up.
        synchronous: ``"NORMAL"`` (crash-safe, the default) or ``"FULL"`` (power-cut-safe).
        clock: seconds since the epoch; tests inject a fake one to move time.
        quotas: per-namespace limits, enforced in the write transaction.
        search: turn full-text indexing on or off for the whole store (every process that
            uses it), from the first connection on; ``None`` leaves it as the store has it
            (on, for a new store). Off makes writes cheaper; ``search`` then refuses.

    Raises:
        InvalidRequest: ``path`` is ``:memory:`` (each connection would get its own empty
            database, and nothing would survive the process).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float = 30.0,
        synchronous: str = "NORMAL",
        clock: Callable[[], float] = time.time,
        quotas: Quotas | None = None,
        search: bool | None = None,
    ) -> None:
        super().__init__()
        self.path = os.fspath(path)
        if self.path in ("", ":memory:") or self.path.startswith("file::memory:"):
            raise InvalidRequest(
                "botwire's SQLite store is a file that survives restarts and is shared by "
                "threads and processes; an in-memory database is neither. Use a file, e.g. "
                "sqlite:///memory.db (or a temporary folder's file in tests)."
            )
        self.url = "sqlite:///" + self.path
        self.timeout = timeout
        self.synchronous = synchronous.upper()
        if self.synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise InvalidRequest(f"synchronous must be NORMAL or FULL, not {synchronous!r}")
        self.clock = clock
        self.quotas = quotas
        self.search = search
        self._local = threading.local()
        self._threads: weakref.WeakSet[_ThreadConnections] = weakref.WeakSet()
        self._idle = _Idle()
        self._opening = threading.Lock()
        self._writing = threading.Lock()
        """Held by this process's thread that writes: the others queue here, handed the turn at
        once, rather than polling SQLite's lock with sleeps (other processes still do)."""
        self._next_purge = 0
        self._writes = 0
        """Write batches since this process last caught the search index up."""
        self._handlers: dict[type, Callable[[sqlite3.Connection, Any, int], Any]] = handlers(self)
        self._answers: dict[type, Callable[[sqlite3.Connection, Any, int], Any]] = {
            LockRow: self._lock_row,
            AddItems: self._add_items,
            DropItems: self._drop_items,
            ReadItem: self._read_item,
            MoveItem: self._move_item,
            SaveList: self._save_list,
            SaveValue: self._save_value,
            CountWrites: self._count_writes,
            StoredBytes: self._stored_bytes,
        }

    # -- connections -------------------------------------------------------------------------

    def _connection(self, wait: bool = True) -> sqlite3.Connection:
        """This thread's connection; ``wait=False`` gives one that never waits for a lock."""
        mine: _ThreadConnections | None = getattr(self._local, "mine", None)
        if mine is None:
            mine = self._local.mine = _ThreadConnections(self._idle)
            with self._lock:
                self._threads.add(mine)
        conn = mine.wait if wait else mine.nowait
        if conn is None:
            conn = self._open()
            if wait:
                mine.wait = conn
            else:
                conn.execute("PRAGMA busy_timeout=0")
                mine.nowait = conn
        return conn

    def _open(self) -> sqlite3.Connection:
        """A new connection, set up (and the file migrated, the first time). Threads of this
        process open one at a time; switching a new file to WAL can find another process's
        lock without waiting for it, so that is tried again until ``timeout``."""
        deadline = time.monotonic() + self.timeout
        with self._opening:
            while True:
                try:
                    return self._connect()
                except sqlite3.OperationalError as exc:
                    if not _busy(exc) or time.monotonic() > deadline:
                        raise self._unavailable(exc) from exc
                    time.sleep(0.01)
                except (sqlite3.Error, OSError) as exc:
                    raise self._unavailable(exc) from exc

    def _connect(self) -> sqlite3.Connection:
        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        conn = sqlite3.connect(
            self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            self._migrate(conn)
            if self.search is not None:
                self._set_search(conn, self.search)
        except BaseException:
            conn.close()
            raise
        return conn

    def _unavailable(self, exc: Exception) -> BackendUnavailable:
        return BackendUnavailable(
            f"cannot open the SQLite store {self.path!r}: {exc}. Check that the folder is "
            "writable and the file is a botwire store."
        )

    def _migrate(self, conn: sqlite3.Connection) -> None:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise BackendUnavailable(
                f"{self.path!r} has schema version {version}, newer than this botwire "
                f"({SCHEMA_VERSION}); upgrade botwire to use it"
            )
        conn.execute("BEGIN IMMEDIATE")
        try:
            (version,) = conn.execute("PRAGMA user_version").fetchone()  # another process may
            for number in range(version, SCHEMA_VERSION):  # have migrated it
                for statement in _statements(MIGRATIONS[number]):
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _set_search(self, conn: sqlite3.Connection, enabled: bool) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            (current,) = conn.execute("SELECT enabled FROM search_state").fetchone()
            if bool(current) != enabled:
                conn.execute("UPDATE search_state SET enabled = ?", (int(enabled),))
                if enabled:  # every document is indexed again
                    for statement in _statements(_QUEUE_EVERYTHING):
                        conn.execute(statement)
                else:
                    conn.execute("DELETE FROM search_fts")
                    conn.execute("DELETE FROM search_docs")
                    conn.execute("DELETE FROM search_pending")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def migrate(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Open the file, which migrates it, then index what the search index lacks (a store
        of an earlier release: all its values); return how many migrations ran.

        ``progress(done, total)`` is called as documents are indexed.
        """
        before = 0
        if os.path.exists(self.path):
            with sqlite3.connect(self.path) as conn:
                (before,) = conn.execute("PRAGMA user_version").fetchone()
        conn = self._connection()
        (total,) = conn.execute("SELECT count(*) FROM search_pending").fetchone()
        done = 0
        while True:
            conn.execute("BEGIN IMMEDIATE")
            try:
                indexed = self._catch_up(conn, SEARCH_BATCH)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            done += indexed
            if progress is not None:
                progress(min(done, total), total)
            if indexed < SEARCH_BATCH:
                return SCHEMA_VERSION - int(before)

    def close(self) -> None:
        """Close this process's connections; the next call reopens them."""
        with self._lock:
            threads, self._threads = list(self._threads), weakref.WeakSet()
            self._local = threading.local()
            idle, self._idle = self._idle, _Idle()
        idle.close()
        for mine in threads:
            if mine.pid == os.getpid():
                mine.close()

    def _after_fork(self) -> None:
        INHERITED.extend(self._threads)
        INHERITED.append(self._idle)  # the parent's: never closed here
        self._threads = weakref.WeakSet()
        self._idle = _Idle()
        self._writing = threading.Lock()  # a thread of the parent may have held these
        self._opening = threading.Lock()
        self._local = threading.local()

    # -- the primitive -----------------------------------------------------------------------

    def execute(self, ops: Sequence[Op]) -> list[Any]:
        """Run ``ops`` in one transaction (``BEGIN IMMEDIATE`` when any of them writes)."""
        conn = self._connection()
        try:
            if not _may_write(ops):
                return self._run(conn, ops)
            with self._writing:
                return self._run(conn, ops)
        except (sqlite3.Error, OverflowError, UnicodeError) as exc:
            raise self._translate(exc) from exc

    async def aexecute(self, ops: Sequence[Op]) -> list[Any]:
        """Run ``ops`` on the event loop when no other process holds the lock, else in a thread.

        SQLite answers in microseconds, far less than a hop to a worker thread costs, so the
        batch first runs right here with a busy timeout of zero. Only when another writer holds
        the lock (``SQLITE_BUSY``, nothing done yet) does it wait, in a thread, as ``execute``.
        """
        writing = _may_write(ops)
        if writing and not self._writing.acquire(blocking=False):
            return await asyncio.to_thread(self.execute, ops)  # another thread is writing
        try:
            return self._run(self._connection(wait=False), ops)
        except sqlite3.OperationalError as exc:
            if not _busy(exc):
                raise self._translate(exc) from exc
        except (sqlite3.Error, OverflowError, UnicodeError) as exc:
            raise self._translate(exc) from exc
        finally:
            if writing:
                self._writing.release()
        return await asyncio.to_thread(self.execute, ops)

    def _translate(self, exc: Exception) -> BackendUnavailable | InvalidRequest:
        if isinstance(exc, (sqlite3.DataError, OverflowError, UnicodeError)):
            return InvalidRequest(f"the SQLite store refused the request: {exc}")
        return BackendUnavailable(
            f"the SQLite store {self.path!r} failed: {exc}. If it says 'locked', another "
            f"process held the write lock longer than timeout={self.timeout}s."
        )

    def _run(self, conn: sqlite3.Connection, ops: Sequence[Op]) -> list[Any]:
        if (budget := read_budget.get()) is not None:
            budget.restart()
        op = ops[0] if len(ops) == 1 else None
        if type(op) is Get and not op.refresh_ttl:
            if not op.meta and op.value:  # the value alone: three columns instead of nine
                row = conn.execute(_GET_VALUE, (op.ns, op.key)).fetchone()
                if row is None or (row[2] is not None and row[2] <= self.now()):
                    return [None]
                if row[0] != LIST:
                    return [Record(row[1], 0, 0, 0, row[2], 0, None)]
            row = conn.execute(_GET, (op.ns, op.key)).fetchone()
            if row is None or row[1] != LIST or not op.value:
                return [self._record(conn, op, row, None)]
            # A list's items are rows of their own: the entry and its items are read again
            # below, in one transaction, so that they come from one snapshot.
        now = self.now()
        if (
            type(op) in _ONE_WRITE_STATEMENT
            and self.quotas is None
            and self._writes < SEARCH_CATCH_UP
        ):
            # One statement is atomic by itself: no BEGIN/COMMIT, as a plain upsert.
            self._purge_if_due(conn, now, transaction=False)
            self._writes += 1
            return [self._handlers[type(op)](conn, op, now)]
        searching = any(type(op) is Search for op in ops)
        try:
            return self._in_transaction(conn, ops, now, is_write(ops), searching)
        except _SearchBehind:  # a read saw documents waiting: index them first, in a write
            return self._in_transaction(conn, ops, now, True, True)

    def _in_transaction(
        self, conn: sqlite3.Connection, ops: Sequence[Op], now: int, write: bool, searching: bool
    ) -> list[Any]:
        run = self._handlers
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            if write:
                self._purge_if_due(conn, now, transaction=True)
                if searching:
                    self._catch_up(conn, None)
                elif self._writes >= SEARCH_CATCH_UP:
                    self._catch_up(conn, SEARCH_BATCH)
                self._writes += 1
            results = [run[type(op)](conn, op, now) for op in ops]
            if self.quotas is not None and write:
                self._answer(conn, quota_checks(self.quotas, ops, now), now)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return results

    def _purge_if_due(self, conn: sqlite3.Connection, now: int, transaction: bool) -> None:
        if now < self._next_purge:
            return
        self._next_purge = now + 1_000_000
        if transaction:
            self._purge(conn, now)
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            self._purge(conn, now)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _purge(self, conn: sqlite3.Connection, now: int) -> None:
        """Delete a bounded number of expired keys; runs at most once a second per process."""
        conn.execute(
            "DELETE FROM entries WHERE id IN "
            "(SELECT id FROM entries WHERE expires_at <= ? LIMIT ?)",
            (now, PURGE_BATCH),
        )
        conn.execute("DELETE FROM quota_usage WHERE day < ?", (now // 86_400_000_000 - 1,))
        self._catch_up(conn, SEARCH_BATCH)

    # -- the search index ----------------------------------------------------------------------

    def _catch_up(self, conn: sqlite3.Connection, limit: int | None) -> int:
        """Bring the documents that writes noted in ``search_pending`` (the oldest ``limit``
        notes, or all) into the FTS5 index, in the current write transaction; return how many
        notes were handled.

        Each noted document is reconciled with what the store holds now, so the order and the
        number of writes that noted it do not matter. A value's document has the entry's id as
        its rowid; a list item's has minus its ``search_docs`` id.
        """
        self._writes = 0
        if limit is None:  # everything: notes this adds (entry ids in use again) too
            handled = 0
            while indexed := self._catch_up(conn, SEARCH_BATCH):
                handled += indexed
            return handled
        sql = "SELECT rowid, entry_id, seq FROM search_pending ORDER BY rowid LIMIT ?"
        notes = conn.execute(sql, (limit,)).fetchall()
        if not notes:
            return 0
        gone = sorted({(entry_id,) for _, entry_id, seq in notes if seq == -2})
        conn.executemany("DELETE FROM search_fts WHERE rowid = ?", gone)
        conn.executemany(
            "DELETE FROM search_fts WHERE rowid IN"
            " (SELECT -id FROM search_docs WHERE entry_id = ?)",
            gone,
        )
        conn.executemany("DELETE FROM search_docs WHERE entry_id = ?", gone)
        # An entry id freed by a delete may be in use again: note the new entry's documents.
        conn.executemany(
            "INSERT INTO search_pending SELECT id, -1 FROM entries WHERE id = ? AND kind = 0",
            gone,
        )
        conn.executemany(
            "INSERT INTO search_pending SELECT entry_id, seq FROM list_items WHERE entry_id = ?",
            gone,
        )
        docs = sorted({(entry_id, seq) for _, entry_id, seq in notes if seq != -2})
        texts = self._documents(conn, docs)
        values = [entry_id for entry_id, seq in docs if seq == -1]
        rows = [(entry_id, *texts[(entry_id, -1)]) for entry_id in values
                if (entry_id, -1) in texts]  # fmt: skip
        conn.executemany(
            "DELETE FROM search_fts WHERE rowid = ?",
            [(entry_id,) for entry_id in values if (entry_id, -1) not in texts],
        )
        items = [doc for doc in docs if doc[1] >= 0]
        known = dict(
            ((entry_id, seq), doc_id)
            for chunk in _chunks(items, 400)
            for entry_id, seq, doc_id in conn.execute(
                "SELECT entry_id, seq, id FROM search_docs WHERE (entry_id, seq) IN "
                f"(VALUES {','.join(['(?, ?)'] * len(chunk))})",
                [number for doc in chunk for number in doc],
            )
        )
        gone_items = [doc_id for doc, doc_id in known.items() if doc not in texts]
        conn.executemany("DELETE FROM search_fts WHERE rowid = ?", [(-i,) for i in gone_items])
        conn.executemany("DELETE FROM search_docs WHERE id = ?", [(i,) for i in gone_items])
        (next_id,) = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM search_docs").fetchone()
        new = []
        for doc in items:
            if doc not in texts:
                continue
            doc_id = known.get(doc)
            if doc_id is None:
                doc_id, next_id = next_id, next_id + 1
                new.append((doc_id, *doc))
            rows.append((-doc_id, *texts[doc]))
        conn.executemany("INSERT INTO search_docs (id, entry_id, seq) VALUES (?, ?, ?)", new)
        conn.executemany("INSERT OR REPLACE INTO search_fts (rowid, doc) VALUES (?, ?)", rows)
        conn.execute("DELETE FROM search_pending WHERE rowid <= ?", (notes[-1][0],))
        return len(notes)

    @staticmethod
    def _documents(
        conn: sqlite3.Connection, docs: list[tuple[int, int]]
    ) -> dict[tuple[int, int], tuple[str]]:
        """The text of each document that exists now (as a one-item tuple, for SQL)."""
        found: dict[tuple[int, int], tuple[str]] = {}
        values = [entry_id for entry_id, seq in docs if seq == -1]
        for chunk in _chunks(values, 500):
            for entry_id, ns, key, value in conn.execute(
                "SELECT id, ns, key, value FROM entries WHERE kind = 0 AND id IN "
                f"({','.join(['?'] * len(chunk))})",
                chunk,
            ):
                if (text := indexed_text(ns, key, value)) is not None:
                    found[(entry_id, -1)] = (text,)
        items = [doc for doc in docs if doc[1] >= 0]
        for chunk in _chunks(items, 400):
            for entry_id, seq, ns, key, value in conn.execute(
                "SELECT i.entry_id, i.seq, e.ns, e.key, i.value FROM list_items i"
                " JOIN entries e ON e.id = i.entry_id WHERE (i.entry_id, i.seq) IN"
                f" (VALUES {','.join(['(?, ?)'] * len(chunk))})",
                [number for doc in chunk for number in doc],
            ):
                if (text := indexed_text(ns, key, value)) is not None:
                    found[(entry_id, seq)] = (text,)
        return found

    # -- answers to the questions of the shared logic (common.py) -----------------------------

    def _answer(self, conn: sqlite3.Connection, steps: Any, now: int) -> Any:
        answer: Any = None
        while True:
            try:
                question = steps.send(answer)
            except StopIteration as done:
                return done.value
            answer = self._answers[type(question)](conn, question, now)

    def _lock_row(self, conn: sqlite3.Connection, q: LockRow, now: int) -> tuple[Row, bool]:
        # The transaction holds the write lock already (BEGIN IMMEDIATE): nothing to lock.
        empty = fresh_row(0, q.kind)
        row = conn.execute(
            "SELECT id, kind, value, size, list_lo, list_hi, expires_at FROM entries"
            " WHERE ns = ? AND key = ?",
            (q.ns, q.key),
        ).fetchone()
        if row is None:
            (entry_id,) = conn.execute(
                "INSERT INTO entries (ns, key, kind, value, size, version, created_at,"
                f" updated_at, list_lo, list_hi) VALUES (?1, ?2, ?3, ?4, ?6, {_NEW_VERSION},"
                " ?5, ?5, ?7, ?7) RETURNING id",
                (q.ns, q.key, q.kind, empty.value, now, empty.size, empty.list_lo),
            ).fetchone()
            return empty._replace(id=entry_id), True
        if row[6] is not None and row[6] <= now:  # expired: start afresh
            if row[1] == LIST:
                conn.execute("DELETE FROM list_items WHERE entry_id = ?", (row[0],))
            conn.execute(
                "UPDATE entries SET kind = ?, value = ?, size = ?, version = max(version + 1, ?),"
                " created_at = ?, updated_at = ?, expires_at = NULL, ttl = NULL, list_lo = ?,"
                " list_hi = ? WHERE id = ?",
                (q.kind, empty.value, empty.size, now, now, now, empty.list_lo, empty.list_lo,
                 row[0]),
            )  # fmt: skip
            return empty._replace(id=row[0]), True
        return Row(*row[:6]), False

    @staticmethod
    def _add_items(conn: sqlite3.Connection, q: AddItems, now: int) -> None:
        conn.executemany(
            "INSERT INTO list_items (entry_id, seq, value) VALUES (?, ?, ?)",
            [(q.entry_id, q.first_seq + i, value) for i, value in enumerate(q.values)],
        )

    @staticmethod
    def _drop_items(conn: sqlite3.Connection, q: DropItems, now: int) -> tuple[int, int]:
        sizes = conn.execute(
            "DELETE FROM list_items WHERE entry_id = ? AND seq >= ? AND seq < ?"
            " RETURNING length(CAST(value AS BLOB))",
            (q.entry_id, q.from_seq, q.below_seq),
        ).fetchall()
        return len(sizes), sum(size for (size,) in sizes)

    @staticmethod
    def _read_item(conn: sqlite3.Connection, q: ReadItem, now: int) -> str:
        (text,) = conn.execute(
            "SELECT value FROM list_items WHERE entry_id = ? AND seq = ?", (q.entry_id, q.seq)
        ).fetchone()
        return str(text)

    @staticmethod
    def _move_item(conn: sqlite3.Connection, q: MoveItem, now: int) -> None:
        conn.execute(
            "UPDATE list_items SET seq = ? WHERE entry_id = ? AND seq = ?",
            (q.to_seq, q.entry_id, q.from_seq),
        )

    @staticmethod
    def _save_list(conn: sqlite3.Connection, q: SaveList, now: int) -> None:
        conn.execute(
            "UPDATE entries SET kind = 1, value = NULL, size = ?1, list_lo = ?2, list_hi = ?3,"
            " version = max(version + 1, ?4), updated_at = ?4,"
            " expires_at = CASE WHEN ?6 IS NULL THEN expires_at ELSE ?5 END,"
            " ttl = coalesce(?6, ttl) WHERE id = ?7",
            (q.size, q.lo, q.hi, now, expiry(now, q.ttl), q.ttl, q.entry_id),
        )

    @staticmethod
    def _save_value(conn: sqlite3.Connection, q: SaveValue, now: int) -> None:
        conn.execute(
            "UPDATE entries SET kind = 0, value = ?, size = ?, version = max(version + 1, ?),"
            " updated_at = ? WHERE id = ?",
            (q.text, nbytes(q.text), now, now, q.entry_id),
        )

    @staticmethod
    def _count_writes(conn: sqlite3.Connection, q: CountWrites, now: int) -> int:
        (writes,) = conn.execute(
            "INSERT INTO quota_usage (ns, day, writes) VALUES (?, ?, ?)"
            " ON CONFLICT (ns, day) DO UPDATE SET writes = writes + excluded.writes"
            " RETURNING writes",
            q,
        ).fetchone()
        return int(writes)

    @staticmethod
    def _stored_bytes(conn: sqlite3.Connection, q: StoredBytes, now: int) -> int:
        (used,) = conn.execute(
            f"SELECT coalesce(sum(size), 0) FROM entries WHERE ns = ? AND {_LIVE}", q
        ).fetchone()
        return int(used)

    # -- operations --------------------------------------------------------------------------

    @staticmethod
    def _list_text(conn: sqlite3.Connection, entry_id: int) -> str:
        items = conn.execute(
            "SELECT value FROM list_items WHERE entry_id = ? ORDER BY seq", (entry_id,)
        ).fetchall()
        return "[" + ",".join([item for (item,) in items]) + "]"

    def _record(
        self, conn: sqlite3.Connection, op: Get, row: Any, now: int | None
    ) -> Record | None:
        """The :class:`Record` of a row read by ``_GET``; ``None`` when missing or expired.
        ``now``: the batch's time (``None``: read the clock only if the row expires)."""
        if row is None:
            return None
        expires_at = row[6]
        if expires_at is not None and expires_at <= (self.now() if now is None else now):
            return None
        if op.refresh_ttl and row[8] is not None:
            assert now is not None  # a refresh runs in a batch, which has its time
            expires_at = expiry(now, row[8])
            conn.execute("UPDATE entries SET expires_at = ? WHERE id = ?", (expires_at, row[0]))
        value = None
        if op.value:
            if (budget := read_budget.get()) is not None:
                budget.charge(row[7])
            value = self._list_text(conn, row[0]) if row[1] == LIST else row[2]
        return Record(value, row[3], row[4], row[5], expires_at, row[7], row[8])

    def _get(self, conn: sqlite3.Connection, op: Get, now: int) -> Record | None:
        return self._record(conn, op, conn.execute(_GET, (op.ns, op.key)).fetchone(), now)

    def _put(self, conn: sqlite3.Connection, op: Put, now: int) -> int:
        keep = op.keep_ttl and op.ttl is None
        params = (
            op.ns,
            op.key,
            op.value,
            nbytes(op.value),
            now,
            expiry(now, op.ttl),
            op.ttl,
            keep,
        )
        if op.if_version is None:
            row = conn.execute(_UPSERT + " RETURNING version", params).fetchone()
        elif op.if_version == 0:
            row = conn.execute(
                _UPSERT + " WHERE expires_at <= ?5 RETURNING version", params
            ).fetchone()
        else:
            row = conn.execute(
                "UPDATE entries SET kind = 0, value = ?3, size = ?4,"
                " version = max(version + 1, ?5), updated_at = ?5,"
                " expires_at = CASE WHEN ?8 THEN expires_at ELSE ?6 END,"
                " ttl = CASE WHEN ?8 THEN ttl ELSE ?7 END, list_lo = NULL, list_hi = NULL"
                " WHERE ns = ?1 AND key = ?2 AND version = ?9"
                " AND (expires_at IS NULL OR expires_at > ?5) RETURNING version",
                (*params, op.if_version),
            ).fetchone()
        if row is None:
            found = conn.execute(
                f"SELECT version FROM entries WHERE ns = ? AND key = ? AND {_LIVE}",
                (op.ns, op.key, now),
            ).fetchone()
            raise version_conflict(op.key, op.if_version or 0, 0 if found is None else found[0])
        return int(row[0])

    def _restore(self, conn: sqlite3.Connection, op: Restore, now: int) -> int:
        (version,) = conn.execute(
            "INSERT INTO entries (ns, key, kind, value, size, version, created_at, updated_at,"
            f" expires_at, ttl) VALUES (?1, ?2, 0, ?3, ?4, {_NEW_VERSION}, ?6, ?7, ?8, ?9)"
            " ON CONFLICT (ns, key) DO UPDATE SET kind = 0, value = excluded.value,"
            " size = excluded.size, version = max(version + 1, ?5),"
            " created_at = excluded.created_at, updated_at = excluded.updated_at,"
            " expires_at = excluded.expires_at, ttl = excluded.ttl, list_lo = NULL, list_hi = NULL"
            " RETURNING version",
            (
                op.ns,
                op.key,
                op.value,
                nbytes(op.value),
                now,
                op.created_at,
                op.updated_at,
                op.expires_at,
                op.ttl,
            ),
        ).fetchone()
        return int(version)

    def _delete(self, conn: sqlite3.Connection, op: Delete, now: int) -> bool:
        row = conn.execute(
            "DELETE FROM entries WHERE ns = ? AND key = ? RETURNING expires_at", (op.ns, op.key)
        ).fetchone()
        return row is not None and (row[0] is None or row[0] > now)

    def _append(self, conn: sqlite3.Connection, op: Append, now: int) -> int:
        return int(self._answer(conn, append_steps(op), now))

    def _incr(self, conn: sqlite3.Connection, op: Incr, now: int) -> int:
        return int(self._answer(conn, incr_steps(op), now))

    def _expire(self, conn: sqlite3.Connection, op: Expire, now: int) -> bool:
        cursor = conn.execute(
            f"UPDATE entries SET expires_at = ?, ttl = ? WHERE ns = ? AND key = ? AND {_LIVE}",
            (expiry(now, op.ttl), op.ttl, op.ns, op.key, now),
        )
        return cursor.rowcount > 0

    def _list_keys(self, conn: sqlite3.Connection, op: ListKeys, now: int) -> KeyPage:
        sql = f"SELECT key, size, updated_at FROM entries WHERE ns = ? AND {_LIVE} AND key >= ?"
        params: list[Any] = [op.ns, now, op.prefix]
        upper = prefix_upper_bound(op.prefix)
        if upper is not None:
            sql += " AND key < ?"
            params.append(upper)
        if op.after is not None:
            sql += " AND key < ?" if op.reverse else " AND key > ?"
            params.append(op.after)
        sql += " ORDER BY key DESC LIMIT ?" if op.reverse else " ORDER BY key LIMIT ?"
        params.append(op.limit + 1)
        rows = conn.execute(sql, params).fetchall()
        more = len(rows) > op.limit
        keys = [KeyInfo(*row) for row in rows[: op.limit]]
        return KeyPage(keys, keys[-1].key if more else None)

    def _clear(self, conn: sqlite3.Connection, op: Clear, now: int) -> int:
        (live,) = conn.execute(
            f"SELECT count(*) FROM entries WHERE ns = ? AND {_LIVE}", (op.ns, now)
        ).fetchone()
        conn.execute("DELETE FROM entries WHERE ns = ?", (op.ns,))
        return int(live)

    def _slice(self, conn: sqlite3.Connection, op: Slice, now: int) -> str | None:
        row = conn.execute(
            f"SELECT id, kind, value, list_lo, list_hi FROM entries"
            f" WHERE ns = ? AND key = ? AND {_LIVE}",
            (op.ns, op.key, now),
        ).fetchone()
        if row is None:
            return None
        entry_id, kind, value, lo, hi = row
        if kind == VALUE:
            text = sliced_value(op.key, value, op.start, op.stop)
        else:
            first, last = item_range(lo, hi, op.start, op.stop)
            items = conn.execute(
                "SELECT value FROM list_items WHERE entry_id = ? AND seq >= ? AND seq < ?"
                " ORDER BY seq",
                (entry_id, first, last),
            ).fetchall()
            text = "[" + ",".join([item for (item,) in items]) + "]"
        if (budget := read_budget.get()) is not None:
            budget.charge(nbytes(text))
        return text

    def _search(self, conn: sqlite3.Connection, op: Search, now: int) -> list[SearchHit]:
        (enabled,) = conn.execute("SELECT enabled FROM search_state").fetchone()
        if not enabled:
            raise InvalidRequest(SEARCH_OFF)
        query = parse_query(op.query, op.match)
        if query.groups and conn.execute("SELECT 1 FROM search_pending LIMIT 1").fetchone():
            raise _SearchBehind  # the index must hold every write first (a listing reads none)
        where, where_params = _JSON.where(conditions(op.where) if op.where else [])
        where = where.replace("VALUE", "coalesce(li.value, e.value)")
        scope, scope_params = search_scope(op, "?", "instr(e.ns, '/') = 0")
        filters = ["(e.expires_at IS NULL OR e.expires_at > ?)", "(c.seq >= 0 OR e.kind = 0)",
                   *scope]  # fmt: skip
        params: list[Any] = [now, *scope_params]
        if query.groups:
            match = query.fts5()
            # FTS5 finds its best documents quickly (ORDER BY rank LIMIT): join and group only
            # those; when there are more, and filters or a long list leave too few keys,
            # search them all.
            cap = op.limit * 5 + 50
            matched = "SELECT rowid, -rank AS score FROM search_fts WHERE search_fts MATCH ?"
            best = conn.execute(f"{matched} ORDER BY rank LIMIT ?", (match, cap + 1)).fetchall()
            if not best:
                return []
            if len(best) <= cap:  # every match is here
                return self._ranked(conn, op, _documents_of(best), filters, params, where,
                                    where_params)  # fmt: skip
            hits = self._ranked(
                conn, op, _documents_of(best[:cap]), filters, params, where, where_params
            )
            if len(hits) >= op.limit:
                return hits
            everything = (f"SELECT coalesce(d.entry_id, m.rowid), coalesce(d.seq, -1), m.score"
                          f" FROM ({matched}) m LEFT JOIN search_docs d"
                          " ON m.rowid < 0 AND d.id = -m.rowid", [match])  # fmt: skip
            return self._ranked(conn, op, everything, filters, params, where, where_params)
        if not query.listing:  # only punctuation or emoji: nothing to find
            return []
        within = " AND ".join(scope)
        candidates: tuple[str, list[Any]] = (  # an empty query: every key in scope, newest first
            f"SELECT e.id, -1, 0.0 FROM entries e WHERE e.kind = 0 AND {within}"
            " UNION ALL SELECT li.entry_id, li.seq, 0.0 FROM list_items li"
            f" JOIN entries e ON e.id = li.entry_id WHERE {within}",
            [*scope_params, *scope_params],
        )
        return self._ranked(conn, op, candidates, filters, params, where, where_params)

    @staticmethod
    def _ranked(
        conn: sqlite3.Connection,
        op: Search,
        candidates: tuple[str, list[Any]],
        filters: list[str],
        params: list[Any],
        where: str,
        where_params: list[Any],
    ) -> list[SearchHit]:
        """The keys among ``candidates`` (SQL for documents with scores, and its parameters)
        that pass the filters, best first, each with its best items."""
        rows = conn.execute(
            f"""
            WITH c(entry_id, seq, score) AS ({candidates[0]}),
            f AS (
                SELECT c.entry_id, c.seq, c.score, e.updated_at FROM c
                JOIN entries e ON e.id = c.entry_id
                LEFT JOIN list_items li ON c.seq >= 0 AND li.entry_id = c.entry_id
                    AND li.seq = c.seq
                WHERE {" AND ".join(filters)} {where}
            ),
            top AS (
                SELECT entry_id, max(score) AS best FROM f GROUP BY entry_id
                ORDER BY best DESC, max(updated_at) DESC, entry_id DESC LIMIT ?
            ),
            ranked AS (
                SELECT f.entry_id, f.seq, f.score, row_number() OVER (
                    PARTITION BY f.entry_id ORDER BY f.score DESC, f.seq DESC) AS n
                FROM f JOIN top USING (entry_id)
            )
            SELECT top.entry_id, top.best, e.ns, e.key, e.updated_at, e.created_at, e.kind,
                   e.value,
                   e.list_lo, r.seq, li.value, e.size
            FROM top JOIN entries e ON e.id = top.entry_id
            JOIN ranked r ON r.entry_id = top.entry_id AND r.n <= ?
            LEFT JOIN list_items li ON r.seq >= 0 AND li.entry_id = r.entry_id AND li.seq = r.seq
            ORDER BY top.best DESC, e.updated_at DESC, top.entry_id DESC, r.n
            """,
            [*candidates[1], *params, *where_params, op.limit, op.limit],
        ).fetchall()
        return search_hits(rows)

    def _list_namespaces(self, conn: sqlite3.Connection, op: ListNamespaces, now: int) -> list[str]:
        sql = f"SELECT DISTINCT ns FROM entries WHERE {_LIVE} AND ns >= ?"
        params: list[Any] = [now, op.prefix]
        upper = prefix_upper_bound(op.prefix)
        if upper is not None:
            sql += " AND ns < ?"
            params.append(upper)
        rows = conn.execute(sql + " ORDER BY ns", params).fetchall()
        return [ns for (ns,) in rows if "/" not in ns]
