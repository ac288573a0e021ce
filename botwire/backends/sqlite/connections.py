"""The embedded store's connections: one pair per thread, kept for the next thread when one
ends, opened with the store's pragmas."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading


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
    except BaseException:
        conn.close()
        raise
    return conn
