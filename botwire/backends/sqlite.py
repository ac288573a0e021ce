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
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from botwire._values import to_json
from botwire.backends.base import (
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
    handlers,
    is_write,
    prefix_upper_bound,
)
from botwire.backends.common import (
    PURGE_BATCH,
    CountWrites,
    Micros,
    QuotaChecks,
    expiry,
    list_size,
    nbytes,
    not_a_list,
    not_an_integer,
    quota_checks,
    version_conflict,
)
from botwire.errors import BackendUnavailable

SCHEMA_VERSION = 1
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
]

_ROW = "id, kind, value, version, created_at, updated_at, expires_at, size, ttl, list_lo, list_hi"
_LIVE = "(expires_at IS NULL OR expires_at > ?)"
_ONE_WRITE_STATEMENT = (Put, Delete, Expire, Restore)

# One statement for a plain set: an upsert keeps the common write to a single round through
# the engine. Columns named bare inside DO UPDATE are the row as it was.
_UPSERT = """
INSERT INTO entries (ns, key, kind, value, size, version, created_at, updated_at, expires_at, ttl)
VALUES (?1, ?2, 0, ?3, ?4, ?5, ?5, ?5, ?6, ?7)
ON CONFLICT (ns, key) DO UPDATE SET
    kind = 0, value = excluded.value, size = excluded.size,
    version = max(version + 1, excluded.version),
    created_at = CASE WHEN expires_at <= ?5 THEN ?5 ELSE created_at END,
    updated_at = ?5,
    expires_at = CASE WHEN ?8 AND (expires_at IS NULL OR expires_at > ?5) THEN expires_at
                      ELSE excluded.expires_at END,
    ttl = CASE WHEN ?8 AND (expires_at IS NULL OR expires_at > ?5) THEN ttl ELSE excluded.ttl END,
    list_lo = NULL, list_hi = NULL
"""


class SQLiteBackend(Backend):
    """A SQLite file used by many threads and processes at once.

    Args:
        path: the database file; its folder is created if needed.
        timeout: seconds a writer waits for another process's lock before giving up.
        synchronous: ``"NORMAL"`` (crash-safe, the default) or ``"FULL"`` (power-cut-safe).
        clock: seconds since the epoch; tests inject a fake one to move time.
        quotas: per-namespace limits, enforced in the write transaction.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float = 30.0,
        synchronous: str = "NORMAL",
        clock: Callable[[], float] = time.time,
        quotas: Quotas | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self.url = "sqlite:///" + self.path
        self.timeout = timeout
        self.synchronous = synchronous.upper()
        if self.synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be NORMAL or FULL, not {synchronous!r}")
        self.clock = clock
        self._micros = Micros(clock)
        self.quotas = quotas
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._pid = os.getpid()
        self._next_purge = 0
        self._handlers: dict[type, Callable[[sqlite3.Connection, Any, int], Any]] = handlers(self)

    # -- connections -------------------------------------------------------------------------

    def _connection(self, wait: bool = True) -> sqlite3.Connection:
        """This thread's connection; ``wait=False`` gives one that never waits for a lock."""
        name = "conn" if wait else "nowait"
        conn: sqlite3.Connection | None = getattr(self._local, name, None)
        if conn is not None and self._pid == os.getpid():
            return conn
        with self._lock:
            if self._pid != os.getpid():
                # Forked: the parent's connections must not be used (nor closed) here.
                self._pid = os.getpid()
                self._connections = []
                self._local = threading.local()
            conn = self._open()
            if not wait:
                conn.execute("PRAGMA busy_timeout=0")
            self._connections.append(conn)
            setattr(self._local, name, conn)
        return conn

    def _open(self) -> sqlite3.Connection:
        try:
            folder = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(folder, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            self._migrate(conn)
        except (sqlite3.Error, OSError) as exc:
            raise BackendUnavailable(
                f"cannot open the SQLite store {self.path!r}: {exc}. Check that the folder is "
                "writable and the file is a botwire store."
            ) from exc
        return conn

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
                for statement in MIGRATIONS[number].split(";\n"):
                    if statement.strip():
                        conn.execute(statement)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def migrate(self) -> int:
        """Open the file, which migrates it; return how many migrations ran."""
        before = 0
        if os.path.exists(self.path):
            with sqlite3.connect(self.path) as conn:
                (before,) = conn.execute("PRAGMA user_version").fetchone()
        self._connection()
        return SCHEMA_VERSION - int(before)

    def close(self) -> None:
        """Close this process's connections; the next call reopens them."""
        with self._lock:
            if self._pid == os.getpid():
                for conn in self._connections:
                    conn.close()
            self._connections = []
            self._local = threading.local()

    # -- the primitive -----------------------------------------------------------------------

    def execute(self, ops: Sequence[Op]) -> list[Any]:
        """Run ``ops`` in one transaction (``BEGIN IMMEDIATE`` when any of them writes)."""
        conn = self._connection()
        try:
            return self._run(conn, ops)
        except sqlite3.OperationalError as exc:
            raise self._unavailable(exc) from exc

    async def aexecute(self, ops: Sequence[Op]) -> list[Any]:
        """Run ``ops`` on the event loop when no other process holds the lock, else in a thread.

        SQLite answers in microseconds, far less than a hop to a worker thread costs, so the
        batch first runs right here with a busy timeout of zero. Only when another writer holds
        the lock (``SQLITE_BUSY``, nothing done yet) does it wait, in a thread, as ``execute``.
        """
        try:
            return self._run(self._connection(wait=False), ops)
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise self._unavailable(exc) from exc
        return await asyncio.to_thread(self.execute, ops)

    def _run(self, conn: sqlite3.Connection, ops: Sequence[Op]) -> list[Any]:
        if len(ops) == 1:
            op = ops[0]
            if type(op) is Get and not op.refresh_ttl:  # a read needs no unique time
                return [self._get(conn, op, int(self.clock() * 1_000_000))]
            if type(op) in _ONE_WRITE_STATEMENT and self.quotas is None:
                # One statement is atomic by itself: no BEGIN/COMMIT, as a plain upsert.
                now = self._micros()
                self._purge_if_due(conn, now, transaction=False)
                return [self._handlers[type(op)](conn, op, now)]
        return self._in_transaction(conn, ops, self._micros(), is_write(ops))

    def _unavailable(self, exc: sqlite3.OperationalError) -> BackendUnavailable:
        return BackendUnavailable(
            f"the SQLite store {self.path!r} failed: {exc}. If it says 'locked', another "
            f"process held the write lock longer than timeout={self.timeout}s."
        )

    def _in_transaction(
        self, conn: sqlite3.Connection, ops: Sequence[Op], now: int, write: bool
    ) -> list[Any]:
        run = self._handlers
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            if write:
                self._purge_if_due(conn, now, transaction=True)
            results = [run[type(op)](conn, op, now) for op in ops]
            if self.quotas is not None and write:
                self._check_quotas(conn, quota_checks(self.quotas, ops, now))
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

    # -- helpers -----------------------------------------------------------------------------

    def _live_row(self, conn: sqlite3.Connection, ns: str, key: str, now: int) -> Any:
        """The key's row, or ``None``; an expired row is deleted so the key can be created."""
        row = conn.execute(
            f"SELECT {_ROW} FROM entries WHERE ns = ? AND key = ?", (ns, key)
        ).fetchone()
        if row is not None and row[6] is not None and row[6] <= now:
            conn.execute("DELETE FROM entries WHERE id = ?", (row[0],))
            return None
        return row

    def _current_version(self, conn: sqlite3.Connection, ns: str, key: str, now: int) -> int:
        row = conn.execute(
            f"SELECT version FROM entries WHERE ns = ? AND key = ? AND {_LIVE}", (ns, key, now)
        ).fetchone()
        return 0 if row is None else int(row[0])

    @staticmethod
    def _list_text(conn: sqlite3.Connection, entry_id: int) -> str:
        items = conn.execute(
            "SELECT value FROM list_items WHERE entry_id = ? ORDER BY seq", (entry_id,)
        ).fetchall()
        return "[" + ",".join([item for (item,) in items]) + "]"

    @staticmethod
    def _check_quotas(conn: sqlite3.Connection, checks: QuotaChecks) -> None:
        answer: int | None = None
        while True:
            try:
                question = checks.send(answer)
            except StopIteration:
                return
            if isinstance(question, CountWrites):
                row = conn.execute(
                    "INSERT INTO quota_usage (ns, day, writes) VALUES (?, ?, ?)"
                    " ON CONFLICT (ns, day) DO UPDATE SET writes = writes + excluded.writes"
                    " RETURNING writes",
                    question,
                ).fetchone()
            else:
                row = conn.execute(
                    f"SELECT coalesce(sum(size), 0) FROM entries WHERE ns = ? AND {_LIVE}",
                    question,
                ).fetchone()
            answer = int(row[0])

    # -- operations --------------------------------------------------------------------------

    def _get(self, conn: sqlite3.Connection, op: Get, now: int) -> Record | None:
        row = conn.execute(
            "SELECT id, kind, value, version, created_at, updated_at, expires_at, size, ttl "
            "FROM entries WHERE ns = ? AND key = ?",
            (op.ns, op.key),
        ).fetchone()
        if row is None:
            return None
        expires_at = row[6]
        if expires_at is not None and expires_at <= now:
            return None
        if op.refresh_ttl and row[8] is not None:
            expires_at = expiry(now, row[8])
            conn.execute("UPDATE entries SET expires_at = ? WHERE id = ?", (expires_at, row[0]))
        value = None
        if op.value:
            value = row[2] if row[1] == 0 else self._list_text(conn, row[0])
        return Record(value, row[3], row[4], row[5], expires_at, row[7], row[8])

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
            actual = self._current_version(conn, op.ns, op.key, now)
            raise version_conflict(op.key, op.if_version or 0, actual)
        return int(row[0])

    def _restore(self, conn: sqlite3.Connection, op: Restore, now: int) -> int:
        (version,) = conn.execute(
            "INSERT INTO entries (ns, key, kind, value, size, version, created_at, updated_at,"
            " expires_at, ttl) VALUES (?1, ?2, 0, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
            " ON CONFLICT (ns, key) DO UPDATE SET kind = 0, value = excluded.value,"
            " size = excluded.size, version = max(version + 1, excluded.version),"
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
        row = self._live_row(conn, op.ns, op.key, now)
        if row is None:
            (entry_id,) = conn.execute(
                "INSERT INTO entries (ns, key, kind, size, version, created_at, updated_at,"
                " list_lo, list_hi) VALUES (?, ?, 1, 2, ?, ?, ?, 0, 0) RETURNING id",
                (op.ns, op.key, now, now, now),
            ).fetchone()
            lo = hi = 0
            size = 2
        elif row[1] == 0:  # a JSON value: becomes a list of rows, once
            current = json.loads(row[2])
            if not isinstance(current, list):
                raise not_a_list(op.key, current)
            entry_id, lo, hi, size = row[0], 0, len(current), row[7]
            conn.executemany(
                "INSERT INTO list_items (entry_id, seq, value) VALUES (?, ?, ?)",
                [(entry_id, seq, to_json(item)) for seq, item in enumerate(current)],
            )
        else:
            entry_id, lo, hi, size = row[0], row[9], row[10], row[7]
        conn.executemany(
            "INSERT INTO list_items (entry_id, seq, value) VALUES (?, ?, ?)",
            [(entry_id, hi + i, value) for i, value in enumerate(op.values)],
        )
        size = list_size(size, hi - lo, [nbytes(v) for v in op.values], 0, 0)
        hi += len(op.values)
        if op.max_len is not None and hi - lo > op.max_len:
            new_lo = hi - op.max_len
            removed, removed_bytes = conn.execute(
                "SELECT count(*), coalesce(sum(length(CAST(value AS BLOB))), 0) FROM list_items"
                " WHERE entry_id = ? AND seq < ?",
                (entry_id, new_lo),
            ).fetchone()
            conn.execute(
                "DELETE FROM list_items WHERE entry_id = ? AND seq < ?", (entry_id, new_lo)
            )
            size = list_size(size, hi - lo, [], removed, removed_bytes)
            lo = new_lo
        conn.execute(
            "UPDATE entries SET kind = 1, value = NULL, size = ?, list_lo = ?, list_hi = ?,"
            " version = max(version + 1, ?), updated_at = ? WHERE id = ?",
            (size, lo, hi, now, now, entry_id),
        )
        return hi - lo

    def _incr(self, conn: sqlite3.Connection, op: Incr, now: int) -> int:
        row = self._live_row(conn, op.ns, op.key, now)
        if row is None:
            conn.execute(
                "INSERT INTO entries (ns, key, kind, value, size, version, created_at, updated_at)"
                " VALUES (?, ?, 0, ?, ?, ?, ?, ?)",
                (op.ns, op.key, str(op.by), len(str(op.by)), now, now, now),
            )
            return op.by
        current = None if row[1] == 1 else json.loads(row[2])
        if type(current) is not int:
            raise not_an_integer(op.key, [] if row[1] == 1 else current)
        total = current + op.by
        text = str(total)
        conn.execute(
            "UPDATE entries SET value = ?, size = ?, version = max(version + 1, ?), updated_at = ?"
            " WHERE id = ?",
            (text, len(text), now, now, row[0]),
        )
        return total

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
            sql += " AND key > ?"
            params.append(op.after)
        sql += " ORDER BY key LIMIT ?"
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

    def _list_namespaces(self, conn: sqlite3.Connection, op: ListNamespaces, now: int) -> list[str]:
        sql = f"SELECT DISTINCT ns FROM entries WHERE {_LIVE} AND ns >= ?"
        params: list[Any] = [now, op.prefix]
        upper = prefix_upper_bound(op.prefix)
        if upper is not None:
            sql += " AND ns < ?"
            params.append(upper)
        rows = conn.execute(sql + " ORDER BY ns", params).fetchall()
        return [ns for (ns,) in rows if "/" not in ns]
