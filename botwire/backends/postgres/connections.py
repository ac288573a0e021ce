"""The PostgreSQL store's connections: statements as :class:`Query` steps, the sync and async
drivers that run them, the async pool and botwire's options in the URL."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Generator
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import PoolTimeout

from botwire.backends.changes import retention, versions_kept
from botwire.backends.search import check_language
from botwire.errors import InvalidRequest


class Query(NamedTuple):
    """One statement an operation needs, and what it wants back."""

    sql: str
    params: Any = None
    fetch: str = "one"
    """``one`` (a row or None), ``all`` (rows), ``rowcount``, or ``many`` (executemany)."""


Steps = Generator[Query, Any, Any]
BEGIN = Query("BEGIN", fetch="rowcount")
BEGIN_SNAPSHOT = Query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", fetch="rowcount")
"""A batch that only reads: every statement sees the snapshot of the first (at READ COMMITTED
each would see what had committed when it began, and a batch could read half of another's)."""
COMMIT = Query("COMMIT", fetch="rowcount")


class Attempt:
    """What one attempt at a batch got to: whether a failure now leaves its outcome unknown."""

    __slots__ = ("outcome_unknown",)

    def __init__(self) -> None:
        self.outcome_unknown = False
        """Set once a statement that commits (``COMMIT``, or a statement run on its own) has
        been sent: a broken connection from then on may have lost the answer, not the write."""


class AsyncPool:
    """Async connections for one event loop: at most ``size`` at once, each opened by the
    coroutine that needs it and kept for the next one. No background tasks."""

    def __init__(self, conninfo: str, kwargs: dict[str, Any], size: int, timeout: float) -> None:
        self.conninfo = conninfo
        self.kwargs = kwargs
        self.timeout = timeout
        self._slots = asyncio.Semaphore(size)
        self._idle: list[psycopg.AsyncConnection[Any]] = []
        self.closed = False

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A connection for the duration of the block; a broken one is not kept."""
        try:
            await asyncio.wait_for(self._slots.acquire(), self.timeout)
        except asyncio.TimeoutError:  # not TimeoutError before Python 3.11
            raise PoolTimeout(f"no connection free within {self.timeout} s") from None
        conn: psycopg.AsyncConnection[Any] | None = None
        try:
            while self._idle and conn is None:
                conn = self._idle.pop()
                if conn.closed or conn.broken:
                    conn = None
            if conn is None:
                conn = await psycopg.AsyncConnection.connect(self.conninfo, **self.kwargs)
            yield conn
        finally:
            if conn is not None:
                if (
                    self.closed
                    or conn.broken
                    or conn.closed
                    or (conn.info.transaction_status != TransactionStatus.IDLE)
                ):
                    with contextlib.suppress(Exception):
                        await conn.close()
                else:
                    self._idle.append(conn)
            self._slots.release()

    async def check(self) -> None:
        """Close the idle connections: after one broke, the server may have dropped them all."""
        idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(Exception):
                await conn.close()

    async def close(self) -> None:
        """Close the idle connections, and those in use as they come back."""
        self.closed = True
        await self.check()


class Options(NamedTuple):
    """A PostgreSQL URL without botwire's own options, and those options."""

    conninfo: str
    schema: str | None
    """``?schema=``: botwire's tables in a schema of their own."""
    migrate: bool
    """``?migrate=false``: refuse to migrate on first use."""
    language: str | None
    """``?language=``: the store's language (see :mod:`botwire.backends.search`)."""
    history: float
    """``?history=``: seconds the change log keeps a change."""
    history_versions: int | None
    """``?history_versions=``: changes of each key the log keeps."""


def parse_url(url: str) -> Options:
    """Split botwire's own options (``schema``, ``migrate``, ``language``, ``history``) off a
    PostgreSQL URL."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = ("schema", "migrate", "language", "history", "history_versions")
    options = {k: v for k, v in query if k in ours}
    rest = [(k, v) for k, v in query if k not in options]
    schema = options.get("schema") or None
    if schema is not None and not (schema.isascii() and schema.replace("_", "").isalnum()):
        raise InvalidRequest(f"schema must be letters, digits and underscores, not {schema!r}")
    migrate = options.get("migrate", "true").lower() not in ("false", "0", "no")
    language = options.get("language")
    return Options(
        urlunsplit(parts._replace(query=urlencode(rest))),
        schema,
        migrate,
        None if language is None else check_language(language),
        retention(options.get("history")),
        versions_kept(options.get("history_versions")),
    )


# -- drivers: the only code that differs between sync and async ---------------------------


def run(conn: psycopg.Connection[Any], steps: Steps) -> Any:
    """Run every statement ``steps`` yields on ``conn``; roll back if it fails mid-transaction."""
    with conn.cursor() as cur:
        try:
            query = next(steps)
            while True:
                if query.fetch == "many":
                    cur.executemany(query.sql, query.params)
                    query = steps.send(None)
                    continue
                cur.execute(query.sql, query.params)
                query = steps.send(_fetch(cur, query.fetch))
        except StopIteration as done:
            return done.value
        except BaseException:
            if conn.info.transaction_status != TransactionStatus.IDLE and not conn.broken:
                with contextlib.suppress(psycopg.Error):
                    conn.rollback()
            raise


async def arun(conn: psycopg.AsyncConnection[Any], steps: Steps) -> Any:
    """Async twin of :func:`_run`."""
    async with conn.cursor() as cur:
        try:
            query = next(steps)
            while True:
                if query.fetch == "many":
                    await cur.executemany(query.sql, query.params)
                    query = steps.send(None)
                    continue
                await cur.execute(query.sql, query.params)
                query = steps.send(await _afetch(cur, query.fetch))
        except StopIteration as done:
            return done.value
        except BaseException:
            if conn.info.transaction_status != TransactionStatus.IDLE and not conn.broken:
                with contextlib.suppress(psycopg.Error):
                    await conn.rollback()
            raise


def _fetch(cur: psycopg.Cursor[Any], fetch: str) -> Any:
    if fetch == "one":
        return cur.fetchone() if cur.description else None
    if fetch == "all":
        return cur.fetchall()
    return cur.rowcount


async def _afetch(cur: psycopg.AsyncCursor[Any], fetch: str) -> Any:
    if fetch == "one":
        return await cur.fetchone() if cur.description else None
    if fetch == "all":
        return await cur.fetchall()
    return cur.rowcount


def backoff(attempt: int) -> float:
    return min(0.002 * 2.0**attempt, 0.2) * (0.5 + random.random())
