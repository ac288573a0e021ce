"""The embedded store's connections: one pair per thread, kept for the next thread when one
ends, opened with the store's pragmas."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import weakref


class ThreadConnections:
    """One thread's connections. When the thread ends (its thread-local storage, which holds
    this, goes away) they go to the backend's idle connections for the next thread, or close;
    never in a child process after ``fork``."""

    __slots__ = ("__weakref__", "idle", "nowait", "pid", "wait")

    def __init__(self, idle: Idle) -> None:
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


class Idle:
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


_CHECKPOINTING = threading.Lock()
"""Held by a checkpoint thread while it calls SQLite, and by ``fork``: a child never starts
with SQLite's own locks held by a thread it does not have."""
if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(
        before=_CHECKPOINTING.acquire,
        after_in_parent=_CHECKPOINTING.release,
        after_in_child=_CHECKPOINTING.release,
    )


class Checkpoints:
    """Copies the write-ahead log back into the file in a thread of its own. SQLite's own
    (automatic) checkpoint runs in the commit that takes the log past 1,000 pages, and that
    commit waits for the copy and its two ``fsync`` calls, which on a slow disk cost more
    than a hundred writes. Here every :data:`CHECK_EVERY` write commits of a process wake
    this thread, which copies what the log holds. (How much that is only SQLite knows
    without a lock: the log's index, the ``-shm`` file, is not to be opened beside it, since
    closing any descriptor of a file drops every POSIX lock the process holds on it,
    SQLite's included.) The log starts afresh only after a checkpoint that no write ran
    beside (under writes that never pause, a copy never quite reaches the log's end): the
    store's connections leave that to SQLite's automatic checkpoint at
    :data:`BACKSTOP_PAGES`, which finds most of the log copied already, so the log stays
    around 16 MB at most. A process that writes fewer than :data:`CHECK_EVERY` times leaves
    its log to that checkpoint, and to the one SQLite makes when the file's last connection
    closes.

    The thread ends when the store closes or is garbage collected."""

    CHECK_EVERY = 64
    """Write commits of this process between two checkpoints of the thread: short copies,
    which more often reach the log's end between two writes, so that the next starts the log
    afresh before the backstop's checkpoint holds a commit up."""
    BACKSTOP_PAGES = 4_000
    """Log pages from which the commit that adds them checkpoints (``wal_autocheckpoint``)."""

    def __init__(self, path: str, timeout: float, synchronous: str, owner: object) -> None:
        self.path, self.timeout, self.synchronous = path, timeout, synchronous
        self._commits = 0
        self._due = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._finalizer = weakref.finalize(owner, self._stop)

    def committed(self) -> None:
        """A write committed: every :data:`CHECK_EVERY`, the thread copies the log. Never
        raises (the write is done): without a thread, SQLite's backstop checkpoints."""
        self._commits += 1  # writers of a process take turns (the backend's write lock)
        if self._commits < self.CHECK_EVERY:
            return
        self._commits = 0
        if self._thread is None:
            with self._lock:
                if self._thread is None and not self._closed:
                    thread = threading.Thread(
                        target=self._run, name="botwire-checkpoints", daemon=True
                    )
                    try:
                        thread.start()
                    except RuntimeError:  # no thread to be had (a container's limit)
                        return
                    self._thread = thread
        self._due.set()

    def _run(self) -> None:
        conn = None
        try:
            with _CHECKPOINTING:
                conn = open_connection(self.path, self.timeout, self.synchronous)
            while True:
                self._due.wait()
                self._due.clear()
                if self._closed:
                    return
                with _CHECKPOINTING:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except Exception:  # the file went away or is locked: the backstop
            with self._lock:  # checkpoints meanwhile, and the next wake-up starts a thread
                self._thread = None
        finally:
            if conn is not None:
                with _CHECKPOINTING:
                    conn.close()

    def _stop(self) -> None:
        self._closed = True
        self._due.set()

    def close(self) -> None:
        """Stop the thread, after the checkpoint it may be running (waiting at most the
        store's ``timeout``: a thread still opening its connection ends on its own)."""
        self._finalizer.detach()
        with self._lock:
            self._stop()
            thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.timeout)


def busy(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


def open_connection(path: str, timeout: float, synchronous: str) -> sqlite3.Connection:
    """A new connection to the file at ``path`` (its folder made if needed), in WAL mode with
    the store's ``synchronous`` setting; transactions begin when botwire says so. A search's
    intermediate results stay in memory (many SQLite builds write each to a temporary file,
    which costs more than the search itself)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("PRAGMA temp_store=MEMORY")
        conn.execute(f"PRAGMA wal_autocheckpoint={Checkpoints.BACKSTOP_PAGES}")
    except BaseException:
        conn.close()
        raise
    return conn
