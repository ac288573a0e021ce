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
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from botwire.backends import changes
from botwire.backends.base import (
    INHERITED,
    AddChange,
    Append,
    Backend,
    Change,
    ChangePage,
    Changes,
    Clear,
    Delete,
    Embed,
    Expire,
    Get,
    History,
    Incr,
    KeyInfo,
    KeyPage,
    ListKeys,
    ListNamespaces,
    NamespaceInfo,
    Op,
    Put,
    Quotas,
    Record,
    Restore,
    Search,
    SearchHit,
    Slice,
    Stats,
    Unembedded,
    handlers,
    is_write,
    prefix_upper_bound,
)
from botwire.backends.common import (
    DAY_US,
    LIST,
    PURGE_BATCH,
    VALUE,
    append_steps,
    deadline,
    expiry,
    incr_steps,
    item_range,
    nbytes,
    page_cursor,
    page_takes,
    quota_checks,
    ran_out,
    read_budget,
    sliced_value,
    update_cursor,
    version_conflict,
)
from botwire.backends.search import Counts, check_language
from botwire.backends.search.matrix import Matrices
from botwire.backends.sqlite import changes as log
from botwire.backends.sqlite import schema, search, vectors
from botwire.backends.sqlite.connections import (
    Checkpoints,
    Idle,
    ThreadConnections,
    busy,
    open_connection,
)
from botwire.backends.sqlite.rows import ANSWERS, LIVE, NAMING_ANSWERS, NEW_VERSION, list_texts
from botwire.errors import BackendUnavailable, InvalidRequest

_ROW = "id, kind, value, version, created_at, updated_at, expires_at, size, ttl"
_GET = f"SELECT {_ROW} FROM entries WHERE ns = ? AND key = ?"
_VECTORS_TOP = "SELECT coalesce(max(stamp), 0) FROM vector_changes"
_GET_VALUE = "SELECT kind, value, expires_at FROM entries WHERE ns = ? AND key = ?"
LIGHT_OPS = 16
"""Most operations of a batch that runs on the event loop (see :meth:`SQLiteBackend.aexecute`)."""
SEARCH_CATCH_UP = 500
"""Documents one process's writes note for the search index before a write catches it up
(see migration 3), :data:`CATCH_UP_BATCH` at a time: a search finds little left to index
first."""
CATCH_UP_BATCH = 1000
"""Most notes a write (or a purge) indexes: about 20 ms here, so that no write waits long."""


# One statement for a plain set: an upsert keeps the common write to a single round through
# the engine. Columns named bare inside DO UPDATE are the row as it was.
_UPSERT = f"""
INSERT INTO entries (ns, key, kind, value, size, version, created_at, updated_at, expires_at, ttl,
    unsearched {{named_column}})
VALUES (?1, ?2, 0, ?3, ?4, {NEW_VERSION}, ?5, ?5, ?6, ?7, ?9 {{named_value}})
ON CONFLICT (ns, key) DO UPDATE SET
    kind = 0, value = excluded.value, size = excluded.size, unsearched = ?9,
    version = max(version + 1, ?5),
    created_at = CASE WHEN expires_at <= ?5 THEN ?5 ELSE created_at END,
    updated_at = ?5,
    expires_at = CASE WHEN ?8 AND (expires_at IS NULL OR expires_at > ?5) THEN expires_at
                      ELSE excluded.expires_at END,
    ttl = CASE WHEN ?8 AND (expires_at IS NULL OR expires_at > ?5) THEN ttl ELSE excluded.ttl END,
    list_lo = NULL, list_hi = NULL {{named}}
"""
_UPDATE_IF_VERSION = (
    "UPDATE entries SET kind = 0, value = ?3, size = ?4, unsearched = ?9,"
    " version = max(version + 1, ?5), updated_at = ?5,"
    " expires_at = CASE WHEN ?8 THEN expires_at ELSE ?6 END,"
    " ttl = CASE WHEN ?8 THEN ttl ELSE ?7 END, list_lo = NULL, list_hi = NULL {named}"
    " WHERE ns = ?1 AND key = ?2 AND version = ?10"
    " AND (expires_at IS NULL OR expires_at > ?5) RETURNING version"
)


def _sets(named: bool) -> tuple[str, str]:
    """The statements of a set (the upsert; the update of a conditional set), which, when it is
    logged (``named``), name its change in its row (see ``changes.add``)."""
    column, value, sets = (
        (", last_change", f", {log.NEXT}", f", {log.NAMED}") if named else ("",) * 3
    )
    upsert = _UPSERT.format(named_column=column, named_value=value, named=sets)
    return upsert, _UPDATE_IF_VERSION.format(named=sets)


_SETS = {False: _sets(False), True: _sets(True)}
_NAMED = (Put, Append, Incr)
"""The writes that name their change in the row they write, when it is logged (see
``changes.add``): a set in its upsert, an append and an incr as they save the row."""


def _notes(ops: Sequence[Op]) -> int:
    """About how many documents ``ops`` note for the search index (a clear: enough to catch
    up at the next write)."""
    notes = 0
    for op in ops:
        if isinstance(op, Append):
            notes += 2 * len(op.values) if op.searchable else 0
        else:
            notes += SEARCH_CATCH_UP if type(op) is Clear else 1
    return notes


def _may_write(ops: Sequence[Op]) -> bool:
    """Whether a batch writes, or may (a search first indexes what writes noted). A single
    plain ``get``, the most frequent batch, is answered first, at the cost of one check."""
    if len(ops) == 1 and type(ops[0]) is Get and not ops[0].refresh_ttl:
        return False
    return is_write(ops) or any(type(op) is Search for op in ops)


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
        language: what the index holds of each word, for every process of the store
            (:data:`~botwire.backends.search.LANGUAGES`): ``"english"`` (a new store's), its
            stem, or ``"simple"``, the word itself; ``None`` leaves it as the store has it.
            A change indexes every document again.

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
        language: str | None = None,
        history: float = changes.RETENTION,
        history_versions: int | None = None,
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
        self.history = history
        """Seconds the change log keeps a change."""
        if history_versions is not None and history_versions < 1:
            raise InvalidRequest(
                f"history_versions is how many changes of each key to keep (1 or more), "
                f"not {history_versions!r}"
            )
        self.history_versions = history_versions
        """Changes of each key the log keeps (``None``: all, within :attr:`history`)."""
        self.search = search
        self.language = None if language is None else check_language(language)
        self._local = threading.local()
        self._threads: weakref.WeakSet[ThreadConnections] = weakref.WeakSet()
        self._idle = Idle()
        self._opening = threading.Lock()
        self._writing = threading.Lock()
        """Held by this process's thread that writes: the others queue here, handed the turn at
        once, rather than polling SQLite's lock with sleeps (other processes still do)."""
        self._next_purge = 0
        self._heavy = 0
        """Batches that :meth:`aexecute` sent to worker threads and are running there."""
        self._noted = 0
        """Documents this process's writes noted for the index since it last caught up (an
        estimate: one per value written, two per item appended, whose window may drop one)."""
        self._counts = Counts()
        self._matrices = Matrices()
        self._checkpoints = self._checkpointer()
        self._handlers: dict[type, Callable[[sqlite3.Connection, Any, int], Any]] = handlers(self)

    # -- connections -------------------------------------------------------------------------

    def _checkpointer(self) -> Checkpoints:
        """A new checkpoint thread's handle for the file (started by the writes)."""
        return Checkpoints(self.path, self.timeout, self.synchronous, self)

    def _connection(self, wait: bool = True) -> sqlite3.Connection:
        """This thread's connection; ``wait=False`` gives one that never waits for a lock."""
        mine: ThreadConnections | None = getattr(self._local, "mine", None)
        if mine is None:
            mine = self._local.mine = ThreadConnections(self._idle)
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
                    if not busy(exc) or time.monotonic() > deadline:
                        raise self._unavailable(exc) from exc
                    time.sleep(0.01)
                except (sqlite3.Error, OSError) as exc:
                    raise self._unavailable(exc) from exc

    def _connect(self) -> sqlite3.Connection:
        conn = open_connection(self.path, self.timeout, self.synchronous)
        try:
            schema.migrate(conn, self.path)
            if self.search is not None or self.language is not None:
                schema.configure_search(conn, self.search, self.language)
        except BaseException:
            conn.close()
            raise
        return conn

    def _unavailable(self, exc: Exception) -> BackendUnavailable:
        return BackendUnavailable(
            f"cannot open the SQLite store {self.path!r}: {exc}. Check that the folder is "
            "writable and the file is a botwire store."
        )

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
        conn.execute("BEGIN IMMEDIATE")
        try:
            search.take_up_log(conn)  # the log's notes join the queue's, counted with them
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        (total,) = conn.execute("SELECT count(*) FROM search_queue").fetchone()
        done = 0
        while True:
            conn.execute("BEGIN IMMEDIATE")
            try:
                indexed = self._catch_up(conn, search.SEARCH_BATCH)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            done += indexed
            if progress is not None:
                progress(min(done, total), total)
            if indexed < search.SEARCH_BATCH:
                return schema.SCHEMA_VERSION - int(before)

    def close(self) -> None:
        """Close this process's connections; the next call reopens them."""
        with self._lock:
            threads, self._threads = list(self._threads), weakref.WeakSet()
            self._local = threading.local()
            idle, self._idle = self._idle, Idle()
            checkpoints = self._checkpoints
            self._checkpoints = self._checkpointer()
        idle.close()
        checkpoints.close()
        for mine in threads:
            if mine.pid == os.getpid():
                mine.close()

    def _after_fork(self) -> None:
        INHERITED.extend(self._threads)
        INHERITED.append(self._idle)  # the parent's: never closed here
        self._threads = weakref.WeakSet()
        self._idle = Idle()
        self._writing = threading.Lock()  # a thread of the parent may have held these
        self._opening = threading.Lock()
        self._local = threading.local()
        self._checkpoints = self._checkpointer()

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
        """Run a light batch (:meth:`_light`) on the event loop when no other process holds
        the lock, anything else in a thread.

        SQLite answers a light batch in microseconds, far less than a hop to a worker thread
        costs, so it first runs right here with a busy timeout of zero. Only when another writer
        holds the lock (``SQLITE_BUSY``, nothing done yet) does it wait, in a thread, as
        ``execute``. A search, a large batch, a clear, or a batch whose turn it is to index or
        purge runs in a thread from the start: the event loop stays free for other requests.
        While one of those runs, light batches go to threads too: on the event loop, each of
        their calls into SQLite would wait for the interpreter's lock behind the busy thread,
        and every other request with them.
        """
        if not self._light(ops):  # on the loop, it would keep every other request waiting
            with self._lock:
                self._heavy += 1
            return await asyncio.to_thread(self._execute_heavy, ops)
        if self._heavy:
            return await asyncio.to_thread(self.execute, ops)
        writing = _may_write(ops)
        if writing and not self._writing.acquire(blocking=False):
            return await asyncio.to_thread(self.execute, ops)  # another thread is writing
        try:
            return self._run(self._connection(wait=False), ops)
        except sqlite3.OperationalError as exc:
            if not busy(exc):
                raise self._translate(exc) from exc
        except (sqlite3.Error, OverflowError, UnicodeError) as exc:
            raise self._translate(exc) from exc
        finally:
            if writing:
                self._writing.release()
        return await asyncio.to_thread(self.execute, ops)

    def _execute_heavy(self, ops: Sequence[Op]) -> list[Any]:
        """:meth:`execute` in a worker thread, counted in :attr:`_heavy` until it ends (not
        when the request that waits for it goes away)."""
        try:
            return self.execute(ops)
        finally:
            with self._lock:
                self._heavy -= 1

    def _light(self, ops: Sequence[Op]) -> bool:
        """Whether a batch costs little enough to run on the event loop: a few operations, no
        search or clear, and, for a write, no index catch-up or purge due with it (a read
        carries neither)."""
        if len(ops) > LIGHT_OPS or any(type(op) in (Search, Clear) for op in ops):
            return False
        return not is_write(ops) or (
            self._noted < SEARCH_CATCH_UP and self.now() < self._next_purge
        )

    def watcher(self) -> log.Watcher:
        """A connection that sees when another commits (see :meth:`Backend.follow`)."""
        self._connection()  # the file exists and is migrated
        return log.Watcher(self.path, self.timeout)

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
        changes.alone(ops)
        searching = any(type(op) is Search for op in ops)
        try:
            return self._in_transaction(conn, ops, now, is_write(ops), searching)
        except search.SearchBehind:  # a read saw documents waiting: index them first, in a write
            return self._in_transaction(conn, ops, now, True, True)

    def _in_transaction(
        self, conn: sqlite3.Connection, ops: Sequence[Op], now: int, write: bool, searching: bool
    ) -> list[Any]:
        run = self._handlers
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            committed = None  # where the vectors stood at the last commit (see _search)
            if write and searching:
                committed = conn.execute(_VECTORS_TOP).fetchone()[0]
            if write:
                self._purge_if_due(conn, now)
                if not searching and self._noted >= SEARCH_CATCH_UP:
                    self._catch_up(conn, CATCH_UP_BATCH)
                self._noted += _notes(ops)
            results = []
            for op in ops:
                if type(op) is not Search:
                    result = run[type(op)](conn, op, now)
                else:
                    if write:  # the index first takes up every write, the batch's own too
                        self._catch_up(conn, None)
                    result = self._search_in_time(conn, op, now, committed)
                if write and self.history and (change := changes.record(op, result)):
                    log.add(conn, [change], now, self.history_versions, type(op) in _NAMED)
                results.append(result)
            if self.quotas is not None and write:
                self._answer(conn, quota_checks(self.quotas, ops, now), now)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        if write:
            self._checkpoints.committed()
        return results

    def _search_in_time(
        self, conn: sqlite3.Connection, op: Search, now: int, committed: int | None = None
    ) -> Any:
        """A search, stopped when it runs past the batch's :data:`deadline`."""
        end = deadline.get()
        if end is None:
            return self._search(conn, op, now, committed)
        conn.set_progress_handler(lambda: time.monotonic() > end, 1000)
        try:
            return self._search(conn, op, now, committed)
        except sqlite3.OperationalError as exc:
            if "interrupt" in str(exc):
                raise ran_out() from exc
            raise
        finally:
            conn.set_progress_handler(None, 0)

    def _purge_if_due(self, conn: sqlite3.Connection, now: int) -> None:
        if now >= self._next_purge:
            self._next_purge = now + 1_000_000
            self._purge(conn, now)

    def _purge(self, conn: sqlite3.Connection, now: int) -> None:
        """Delete a bounded number of expired keys; runs at most once a second per process."""
        gone = conn.execute(
            "DELETE FROM entries WHERE id IN "
            "(SELECT id FROM entries WHERE expires_at <= ? LIMIT ?) RETURNING ns, key",
            (now, PURGE_BATCH),
        ).fetchall()
        if self.history:
            log.add(conn, [r for ns, key in gone if (r := changes.expired(ns, key, now))], now)
            log.trim(conn, now - int(self.history * 1_000_000))
        vectors.trim(conn)
        conn.execute("DELETE FROM quota_usage WHERE day < ?", (now // 86_400_000_000 - 1,))
        self._catch_up(conn, CATCH_UP_BATCH)

    def _catch_up(self, conn: sqlite3.Connection, limit: int | None) -> int:
        """Index what writes noted (see :func:`search.catch_up`), the oldest ``limit`` notes
        or all; the count of documents noted starts again, or, where ``limit`` left notes
        waiting, stays due, so that the next write goes on."""
        handled = search.catch_up(conn, limit)
        self._noted = SEARCH_CATCH_UP if handled == limit else 0
        return handled

    # -- answers to the questions of the shared logic (common.py) -----------------------------

    def _answer(self, conn: sqlite3.Connection, steps: Any, now: int, logged: bool = False) -> Any:
        """Run the shared logic's ``steps``; for a write that is ``logged``, the row it saves
        names its change (see ``changes.add``)."""
        answers = NAMING_ANSWERS if logged else ANSWERS
        answer: Any = None
        while True:
            try:
                question = steps.send(answer)
            except StopIteration as done:
                return done.value
            answer = answers[type(question)](conn, question, now)

    # -- operations --------------------------------------------------------------------------

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
            value = list_texts(conn, [row[0]])[row[0]] if row[1] == LIST else row[2]
        return Record(value, row[3], row[4], row[5], expires_at, row[7], row[8])

    def _get(self, conn: sqlite3.Connection, op: Get, now: int) -> Record | None:
        return self._record(conn, op, conn.execute(_GET, (op.ns, op.key)).fetchone(), now)

    def _logged(self, ns: str) -> bool:
        """Whether a write of namespace ``ns`` adds a change to the log (then a write of
        :data:`_NAMED` names it in the row it writes)."""
        return bool(self.history) and changes.logs(ns)

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
            None if op.searchable else 1,
        )
        upsert, update = _SETS[self._logged(op.ns)]
        if op.if_version is None:
            row = conn.execute(upsert + " RETURNING version", params).fetchone()
        elif op.if_version == 0:
            row = conn.execute(
                upsert + " WHERE expires_at <= ?5 RETURNING version", params
            ).fetchone()
        else:
            row = conn.execute(update, (*params, op.if_version)).fetchone()
        if row is None:
            found = conn.execute(
                f"SELECT version FROM entries WHERE ns = ? AND key = ? AND {LIVE}",
                (op.ns, op.key, now),
            ).fetchone()
            raise version_conflict(op.key, op.if_version or 0, 0 if found is None else found[0])
        if op.vectors is not None:
            vectors.of_value(conn, op.ns, op.key, op.vectors)
        return int(row[0])

    def _restore(self, conn: sqlite3.Connection, op: Restore, now: int) -> int:
        (version,) = conn.execute(
            "INSERT INTO entries (ns, key, kind, value, size, version, created_at, updated_at,"
            f" expires_at, ttl) VALUES (?1, ?2, 0, ?3, ?4, {NEW_VERSION}, ?6, ?7, ?8, ?9)"
            " ON CONFLICT (ns, key) DO UPDATE SET kind = 0, value = excluded.value,"
            " size = excluded.size, version = max(version + 1, ?5),"
            " created_at = excluded.created_at, updated_at = excluded.updated_at,"
            " expires_at = excluded.expires_at, ttl = excluded.ttl, list_lo = NULL, list_hi = NULL,"
            " unsearched = NULL RETURNING version",
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
        length = int(self._answer(conn, append_steps(op), now, self._logged(op.ns)))
        if op.vectors is not None:
            vectors.of_appended(conn, op, op.vectors)
        return length

    def _incr(self, conn: sqlite3.Connection, op: Incr, now: int) -> int:
        return int(self._answer(conn, incr_steps(op), now, self._logged(op.ns)))

    def _expire(self, conn: sqlite3.Connection, op: Expire, now: int) -> bool:
        cursor = conn.execute(
            f"UPDATE entries SET expires_at = ?, ttl = ? WHERE ns = ? AND key = ? AND {LIVE}",
            (expiry(now, op.ttl), op.ttl, op.ns, op.key, now),
        )
        return cursor.rowcount > 0

    def _list_keys(self, conn: sqlite3.Connection, op: ListKeys, now: int) -> KeyPage:
        columns = "key, size, updated_at, kind, value, id" if op.values else "key, size, updated_at"
        sql = f"SELECT {columns} FROM entries WHERE ns = ? AND {LIVE} AND key >= ?"
        params: list[Any] = [op.ns, now, op.prefix]
        upper = prefix_upper_bound(op.prefix)
        if upper is not None:
            sql += " AND key < ?"
            params.append(upper)
        if op.by_update:
            if op.after is not None:
                moment, key = update_cursor(op.after)
                older, later = (">", "<") if op.reverse else ("<", ">")
                sql += f" AND (updated_at {older} ? OR (updated_at = ? AND key {later} ?))"
                params += [moment, moment, key]
            sql += " ORDER BY updated_at" + (", key DESC" if op.reverse else " DESC, key")
        else:
            if op.after is not None:
                sql += " AND key < ?" if op.reverse else " AND key > ?"
                params.append(op.after)
            sql += " ORDER BY key DESC" if op.reverse else " ORDER BY key"
        rows = conn.execute(sql + " LIMIT ?", [*params, op.limit + 1]).fetchall()
        more = len(rows) > op.limit
        rows = rows[: op.limit]
        if op.values:
            for taken, row in enumerate(rows):
                if not page_takes(row[1], taken):
                    more = True
                    rows = rows[:taken]
                    break
            lists = list_texts(conn, [row[5] for row in rows if row[3] == LIST])
            rows = [(key, size, updated_at, lists[entry_id] if kind == LIST else value)
                    for key, size, updated_at, kind, value, entry_id in rows]  # fmt: skip
        keys = [KeyInfo(*row) for row in rows]
        return KeyPage(keys, page_cursor(keys[-1], op) if more else None)

    def _clear(self, conn: sqlite3.Connection, op: Clear, now: int) -> int:
        (live,) = conn.execute(
            f"SELECT count(*) FROM entries WHERE ns = ? AND {LIVE}", (op.ns, now)
        ).fetchone()
        conn.execute("DELETE FROM entries WHERE ns = ?", (op.ns,))
        return int(live)

    def _slice(self, conn: sqlite3.Connection, op: Slice, now: int) -> str | None:
        row = conn.execute(
            f"SELECT id, kind, value, list_lo, list_hi FROM entries"
            f" WHERE ns = ? AND key = ? AND {LIVE}",
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

    def _changes(self, conn: sqlite3.Connection, op: Changes, now: int) -> ChangePage:
        return log.read(conn, op)

    def _history(self, conn: sqlite3.Connection, op: History, now: int) -> list[Change]:
        return log.history(conn, op)

    def _unembedded(self, conn: sqlite3.Connection, op: Unembedded, now: int) -> list[Any]:
        return vectors.unembedded(conn, op)

    def _embed(self, conn: sqlite3.Connection, op: Embed, now: int) -> int:
        return vectors.embed(conn, op)

    def _add_change(self, conn: sqlite3.Connection, op: AddChange, now: int) -> int:
        return log.imported(conn, op, now)

    def _stats(self, conn: sqlite3.Connection, op: Stats, now: int) -> dict[str, int | None]:
        return log.stats(conn, now)

    def _search(
        self, conn: sqlite3.Connection, op: Search, now: int, committed: int | None = None
    ) -> list[SearchHit]:
        """A search; in a write transaction, ``committed`` is where the vector changes stood
        when it began: the process's copies of the vectors follow what is committed only, so
        a search after this transaction's own vector changes reads them from the store."""
        matrices: Matrices | None = self._matrices
        by_meaning = op.mode is not None and op.mode != "words"
        if (
            by_meaning
            and committed is not None
            and conn.execute(_VECTORS_TOP).fetchone()[0] > committed
        ):
            matrices = None
        return search.search(conn, op, now, self._counts, matrices)

    def _list_namespaces(
        self, conn: sqlite3.Connection, op: ListNamespaces, now: int
    ) -> list[str] | list[NamespaceInfo]:
        params: list[Any] = [now, op.prefix]
        where = f"{LIVE} AND ns >= ?"
        upper = prefix_upper_bound(op.prefix)
        if upper is not None:
            where += " AND ns < ?"
            params.append(upper)
        if not op.sizes:
            sql = f"SELECT DISTINCT ns FROM entries WHERE {where} ORDER BY ns"
            return [ns for (ns,) in conn.execute(sql, params) if "/" not in ns]
        rows = conn.execute(
            "SELECT ns, count(*), coalesce(sum(size), 0), coalesce((SELECT writes FROM quota_usage"
            f" q WHERE q.ns = e.ns AND q.day = ?), 0) FROM entries e WHERE {where}"
            " GROUP BY ns ORDER BY ns",
            [now // DAY_US, *params],
        )
        return [NamespaceInfo(*row) for row in rows if "/" not in row[0]]
