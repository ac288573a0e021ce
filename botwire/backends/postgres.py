"""The PostgreSQL store: many servers and clients on many machines share one database.

psycopg 3 with a connection pool, sync and native async. Each operation is written once, as a
generator that yields the SQL it needs and receives the rows; a small driver runs it on a sync or
an async connection, so the two never drift apart.

Concurrency: transactions run at READ COMMITTED and lock the rows they change
(``SELECT ... FOR UPDATE``), so ``append``/``incr``/``if_version`` are atomic across processes;
serialization failures and deadlocks are retried whole, never surfaced. Values are stored as their
exact JSON text (``text``, not ``jsonb``), so integers stay integers, strings that look like JSON
stay strings and objects keep their key order. Expired rows are purged in small batches with
``SKIP LOCKED``, so purging never waits for (or blocks) a writer.

URL: ``postgresql://user:password@host:5432/db``; ``?schema=NAME`` keeps botwire's tables in
their own schema (created if missing); ``?migrate=false`` refuses to migrate on first use
(run ``botwire migrate --url ...`` instead).
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
import weakref
from collections.abc import Callable, Generator, Sequence
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

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
    expiry,
    list_size,
    nbytes,
    not_a_list,
    not_an_integer,
    quota_checks,
    version_conflict,
)
from botwire.config import mask_url
from botwire.errors import BackendUnavailable, InvalidRequest

MIGRATIONS: list[str] = [
    # 1: the first schema. Keys sort by code point (COLLATE "C"), as on every backend.
    """
    CREATE TABLE botwire_entries (
        id BIGSERIAL PRIMARY KEY,
        ns TEXT COLLATE "C" NOT NULL,
        key TEXT COLLATE "C" NOT NULL,
        kind SMALLINT NOT NULL,
        value TEXT,
        size BIGINT NOT NULL,
        version BIGINT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        expires_at BIGINT,
        ttl DOUBLE PRECISION,
        list_lo BIGINT,
        list_hi BIGINT,
        UNIQUE (ns, key)
    );
    CREATE INDEX botwire_entries_expiry ON botwire_entries (expires_at)
        WHERE expires_at IS NOT NULL;
    CREATE TABLE botwire_list_items (
        entry_id BIGINT NOT NULL REFERENCES botwire_entries (id) ON DELETE CASCADE,
        seq BIGINT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (entry_id, seq)
    );
    CREATE FUNCTION botwire_drop_items() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM botwire_list_items WHERE entry_id = OLD.id;
        RETURN NULL;
    END $$;
    CREATE TRIGGER botwire_entries_replace_items AFTER UPDATE OF kind ON botwire_entries
        FOR EACH ROW WHEN (OLD.kind = 1 AND NEW.kind = 0) EXECUTE FUNCTION botwire_drop_items();
    CREATE TABLE botwire_quota_usage (
        ns TEXT COLLATE "C" NOT NULL,
        day BIGINT NOT NULL,
        writes BIGINT NOT NULL,
        PRIMARY KEY (ns, day)
    );
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)
_LOCK_ID = 0x626F7477  # advisory lock that serialises migrations ("botw")
_RETRIES = 10
_RETRYABLE = (pg_errors.SerializationFailure, pg_errors.DeadlockDetected)
_ONE_STATEMENT = (Get, Put, Delete, Expire, Restore, ListKeys, ListNamespaces, Clear)

_LIVE = "(expires_at IS NULL OR expires_at > %(now)s)"
_COLUMNS = (
    "id, kind, value, version, created_at, updated_at, expires_at, size, ttl, list_lo, list_hi"
)
_LIST_TEXT = (
    "(SELECT '[' || coalesce(string_agg(i.value, ',' ORDER BY i.seq), '') || ']'"
    " FROM botwire_list_items i WHERE i.entry_id = e.id)"
)
_UPSERT = """
INSERT INTO botwire_entries AS e (ns, key, kind, value, size, version, created_at, updated_at,
                                  expires_at, ttl)
VALUES (%(ns)s, %(key)s, 0, %(value)s, %(size)s, %(now)s, %(now)s, %(now)s, %(expires_at)s, %(ttl)s)
ON CONFLICT (ns, key) DO UPDATE SET
    kind = 0, value = EXCLUDED.value, size = EXCLUDED.size,
    version = greatest(e.version + 1, EXCLUDED.version),
    created_at = CASE WHEN e.expires_at <= %(now)s THEN %(now)s ELSE e.created_at END,
    updated_at = %(now)s,
    expires_at = CASE WHEN %(keep)s AND (e.expires_at IS NULL OR e.expires_at > %(now)s)
                      THEN e.expires_at ELSE EXCLUDED.expires_at END,
    ttl = CASE WHEN %(keep)s AND (e.expires_at IS NULL OR e.expires_at > %(now)s)
               THEN e.ttl ELSE EXCLUDED.ttl END,
    list_lo = NULL, list_hi = NULL
"""


class Query(NamedTuple):
    """One statement an operation needs, and what it wants back."""

    sql: str
    params: Any = None
    fetch: str = "one"
    """``one`` (a row or None), ``all`` (rows), ``rowcount``, or ``many`` (executemany)."""


Steps = Generator[Query, Any, Any]


def parse_url(url: str) -> tuple[str, str | None, bool]:
    """Split botwire's own options (``schema``, ``migrate``) off a PostgreSQL URL."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    options = {k: v for k, v in query if k in ("schema", "migrate")}
    rest = [(k, v) for k, v in query if k not in options]
    schema = options.get("schema") or None
    if schema is not None and not schema.replace("_", "").isalnum():
        raise InvalidRequest(f"schema must be letters, digits and underscores, not {schema!r}")
    migrate = options.get("migrate", "true").lower() not in ("false", "0", "no")
    return urlunsplit(parts._replace(query=urlencode(rest))), schema, migrate


class PostgresBackend(Backend):
    """A PostgreSQL database shared by every process that points at it.

    Args:
        url: ``postgresql://user:password@host:port/db[?schema=NAME&migrate=false]``.
        timeout: seconds to wait for a connection (and the database) before giving up.
        clock: seconds since the epoch; tests inject a fake one.
        quotas: per-namespace limits, enforced in each write transaction.
        pool_size: most connections this process opens.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
        quotas: Quotas | None = None,
        pool_size: int = 10,
    ) -> None:
        self.url = mask_url(url)
        self.conninfo, self.schema, self.auto_migrate = parse_url(url)
        self.timeout = timeout
        self.clock = clock
        self.quotas = quotas
        self.pool_size = pool_size
        self._micros = Micros(clock)
        self._lock = threading.Lock()
        self._pool: ConnectionPool | None = None
        self._async_pools: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, AsyncConnectionPool
        ] = weakref.WeakKeyDictionary()
        self._migrated = False
        self._next_purge = 0
        self._handlers: dict[type, Callable[[Any, int], Steps]] = handlers(self)

    # -- connections ------------------------------------------------------------------------

    def _connect_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": max(1, int(self.timeout)),
            "application_name": "botwire",
        }
        if self.schema:
            kwargs["options"] = f"-c search_path={self.schema}"
        return kwargs

    def _sync_pool(self) -> ConnectionPool:
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    if not self._migrated:
                        self.migrate(auto=True)
                    pool = ConnectionPool(
                        self.conninfo, min_size=1, max_size=self.pool_size,
                        kwargs=self._connect_kwargs(), open=False, name="botwire",
                    )  # fmt: skip
                    pool.open(wait=False)
                    self._pool = pool
        return self._pool

    async def _async_pool(self) -> AsyncConnectionPool:
        loop = asyncio.get_running_loop()
        pool = self._async_pools.get(loop)
        if pool is None:
            if not self._migrated:
                await asyncio.to_thread(self.migrate, True)
            pool = AsyncConnectionPool(
                self.conninfo, min_size=1, max_size=self.pool_size,
                kwargs=self._connect_kwargs(), open=False, name="botwire-async",
            )  # fmt: skip
            await pool.open(wait=False)
            self._async_pools[loop] = pool
        return pool

    def close(self) -> None:
        """Close the sync pool; it is opened again when needed."""
        with self._lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None

    async def aclose(self) -> None:
        """Close this event loop's pool, and the sync one."""
        pool = self._async_pools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            await pool.close()
        self.close()

    def _unavailable(self, exc: BaseException) -> BackendUnavailable:
        return BackendUnavailable(
            f"PostgreSQL at {self.url} is unavailable ({type(exc).__name__}: {exc}); check that "
            "it runs and accepts connections. botwire reconnects once it answers."
        )

    # -- migrations -------------------------------------------------------------------------

    def migrate(self, auto: bool = False) -> int:
        """Bring the database's schema up to date; return how many migrations ran.

        With ``auto=True`` (first use) and ``?migrate=false`` in the URL, refuse instead.
        """
        try:
            with psycopg.connect(self.conninfo, **self._connect_kwargs()) as conn:
                if self.schema:
                    conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
                    conn.execute(
                        "CREATE TABLE IF NOT EXISTS botwire_migrations"
                        " (version INT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                    )
                    row = conn.execute("SELECT max(version) FROM botwire_migrations").fetchone()
                    current = (row[0] if row else None) or 0
                    if current > SCHEMA_VERSION:
                        raise BackendUnavailable(
                            f"{self.url} has botwire schema {current}, newer than this botwire "
                            f"({SCHEMA_VERSION}); upgrade botwire to use it"
                        )
                    if current < SCHEMA_VERSION and auto and not self.auto_migrate:
                        raise BackendUnavailable(
                            f"{self.url} needs botwire's schema migrations; run "
                            "`botwire migrate --url ...` (automatic migration is off)"
                        )
                    for number in range(current, SCHEMA_VERSION):
                        conn.execute(MIGRATIONS[number])
                        conn.execute(
                            "INSERT INTO botwire_migrations (version) VALUES (%s)", (number + 1,)
                        )
        except psycopg.OperationalError as exc:
            raise self._unavailable(exc) from exc
        self._migrated = True
        return SCHEMA_VERSION - current

    # -- the primitive ----------------------------------------------------------------------

    def execute(self, ops: Sequence[Op]) -> list[Any]:
        """Run ``ops`` in one transaction; retried whole on serialization failures."""
        if not ops:
            return []
        pool = self._sync_pool()
        for attempt in range(_RETRIES):
            committing = False
            try:
                with pool.connection(timeout=self.timeout) as conn:
                    now = self._micros()
                    if self._purge_due(now):
                        with conn.transaction(), conn.cursor() as cur:
                            self._drive(cur, self._purge(now))
                    if self._one_statement(ops):  # atomic alone: no BEGIN/COMMIT round trips
                        with conn.cursor() as cur:
                            return [self._drive(cur, self._handlers[type(ops[0])](ops[0], now))]
                    with conn.transaction(), conn.cursor() as cur:
                        results = [
                            self._drive(cur, self._handlers[type(op)](op, now)) for op in ops
                        ]
                        self._drive(cur, self._quota_steps(ops, now))
                        committing = True
                    return results
            except _RETRYABLE:
                time.sleep(_backoff(attempt))
            except PoolTimeout as exc:
                raise self._unavailable(exc) from exc
            except psycopg.OperationalError as exc:
                if committing or attempt >= 2:  # a broken commit may have landed: don't repeat it
                    raise self._unavailable(exc) from exc
                pool.check()  # the server dropped connections: find the others it dropped
        raise BackendUnavailable(f"{self.url}: a batch kept conflicting after {_RETRIES} tries")

    async def aexecute(self, ops: Sequence[Op]) -> list[Any]:
        """Async twin of :meth:`execute`, on psycopg's async connections."""
        if not ops:
            return []
        pool = await self._async_pool()
        for attempt in range(_RETRIES):
            committing = False
            try:
                async with pool.connection(timeout=self.timeout) as conn:
                    now = self._micros()
                    if self._purge_due(now):
                        async with conn.transaction(), conn.cursor() as cur:
                            await self._adrive(cur, self._purge(now))
                    if self._one_statement(ops):
                        async with conn.cursor() as cur:
                            op = ops[0]
                            return [await self._adrive(cur, self._handlers[type(op)](op, now))]
                    async with conn.transaction(), conn.cursor() as cur:
                        results = [
                            await self._adrive(cur, self._handlers[type(op)](op, now)) for op in ops
                        ]
                        await self._adrive(cur, self._quota_steps(ops, now))
                        committing = True
                    return results
            except _RETRYABLE:
                await asyncio.sleep(_backoff(attempt))
            except PoolTimeout as exc:
                raise self._unavailable(exc) from exc
            except psycopg.OperationalError as exc:
                if committing or attempt >= 2:
                    raise self._unavailable(exc) from exc
                await pool.check()
        raise BackendUnavailable(f"{self.url}: a batch kept conflicting after {_RETRIES} tries")

    def _one_statement(self, ops: Sequence[Op]) -> bool:
        """Whether the batch is one operation that runs as one statement, with no quota to check.

        (A failed conditional ``put`` reads the current version afterwards, for its message.)
        """
        return (
            len(ops) == 1
            and type(ops[0]) in _ONE_STATEMENT
            and (self.quotas is None or not is_write(ops))
        )

    @staticmethod
    def _drive(cur: psycopg.Cursor[Any], steps: Steps) -> Any:
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

    @staticmethod
    async def _adrive(cur: psycopg.AsyncCursor[Any], steps: Steps) -> Any:
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

    def _purge_due(self, now: int) -> bool:
        """Whether to purge now: at most once a second per process."""
        if now < self._next_purge:
            return False
        self._next_purge = now + 1_000_000
        return True

    @staticmethod
    def _purge(now: int) -> Steps:
        """Delete a bounded batch of expired keys, skipping rows that writers hold.

        Runs in its own short transaction, before the batch's.
        """
        yield Query(
            "DELETE FROM botwire_entries WHERE id IN (SELECT id FROM botwire_entries"
            " WHERE expires_at <= %s LIMIT %s FOR UPDATE SKIP LOCKED)",
            (now, PURGE_BATCH),
            "rowcount",
        )
        yield Query(
            "DELETE FROM botwire_quota_usage WHERE day < %s",
            (now // 86_400_000_000 - 1,),
            "rowcount",
        )

    # -- quotas -----------------------------------------------------------------------------

    def _quota_steps(self, ops: Sequence[Op], now: int) -> Steps:
        """Quota checks, last in the batch's transaction: the usage row is locked last, in
        namespace order, so writers of one namespace queue there without deadlocks."""
        if self.quotas is None or not is_write(ops):
            return
        checks = quota_checks(self.quotas, ops, now)
        answer: int | None = None
        while True:
            try:
                question = checks.send(answer)
            except StopIteration:
                return
            if isinstance(question, CountWrites):
                row = yield Query(
                    "INSERT INTO botwire_quota_usage AS q (ns, day, writes) VALUES (%s, %s, %s)"
                    " ON CONFLICT (ns, day) DO UPDATE SET writes = q.writes + EXCLUDED.writes"
                    " RETURNING writes",
                    tuple(question),
                )
            else:
                row = yield Query(
                    "SELECT coalesce(sum(size), 0) FROM botwire_entries"
                    f" WHERE ns = %(ns)s AND {_LIVE}",
                    {"ns": question.ns, "now": question.now},
                )
            answer = int(row[0])

    # -- operations -------------------------------------------------------------------------

    def _get(self, op: Get, now: int) -> Steps:
        value = f"CASE WHEN e.kind = 1 THEN {_LIST_TEXT} ELSE e.value END" if op.value else "NULL"
        params = {"ns": op.ns, "key": op.key, "now": now}
        if op.refresh_ttl:
            row = yield Query(
                "UPDATE botwire_entries e SET expires_at = CASE WHEN ttl IS NULL THEN expires_at"
                " ELSE %(now)s + greatest(1, ceil(ttl * 1000000))::bigint END"
                f" WHERE ns = %(ns)s AND key = %(key)s AND {_LIVE}"
                f" RETURNING {value}, version, created_at, updated_at, expires_at, size, ttl",
                params,
            )
        else:
            row = yield Query(
                f"SELECT {value}, version, created_at, updated_at, expires_at, size, ttl"
                f" FROM botwire_entries e WHERE ns = %(ns)s AND key = %(key)s AND {_LIVE}",
                params,
            )
        return None if row is None else Record(*row)

    def _put(self, op: Put, now: int) -> Steps:
        params = {
            "ns": op.ns, "key": op.key, "value": op.value, "size": nbytes(op.value), "now": now,
            "expires_at": expiry(now, op.ttl), "ttl": op.ttl,
            "keep": op.keep_ttl and op.ttl is None, "if_version": op.if_version,
        }  # fmt: skip
        if op.if_version is None:
            row = yield Query(_UPSERT + " RETURNING e.version", params)
        elif op.if_version == 0:
            row = yield Query(
                _UPSERT + " WHERE e.expires_at <= %(now)s RETURNING e.version", params
            )
        else:
            row = yield Query(
                "UPDATE botwire_entries SET kind = 0, value = %(value)s, size = %(size)s,"
                " version = greatest(version + 1, %(now)s), updated_at = %(now)s,"
                " expires_at = CASE WHEN %(keep)s THEN expires_at ELSE %(expires_at)s END,"
                " ttl = CASE WHEN %(keep)s THEN ttl ELSE %(ttl)s END,"
                " list_lo = NULL, list_hi = NULL"
                f" WHERE ns = %(ns)s AND key = %(key)s AND version = %(if_version)s AND {_LIVE}"
                " RETURNING version",
                params,
            )
        if row is None:
            current = yield Query(
                "SELECT version FROM botwire_entries"
                f" WHERE ns = %(ns)s AND key = %(key)s AND {_LIVE}",
                params,
            )
            raise version_conflict(op.key, op.if_version or 0, 0 if current is None else current[0])
        return int(row[0])

    def _restore(self, op: Restore, now: int) -> Steps:
        row = yield Query(
            "INSERT INTO botwire_entries AS e (ns, key, kind, value, size, version, created_at,"
            " updated_at, expires_at, ttl) VALUES (%s, %s, 0, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (ns, key) DO UPDATE SET kind = 0, value = EXCLUDED.value,"
            " size = EXCLUDED.size, version = greatest(e.version + 1, EXCLUDED.version),"
            " created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at,"
            " expires_at = EXCLUDED.expires_at, ttl = EXCLUDED.ttl, list_lo = NULL, list_hi = NULL"
            " RETURNING e.version",
            (op.ns, op.key, op.value, nbytes(op.value), now, op.created_at, op.updated_at,
             op.expires_at, op.ttl),
        )  # fmt: skip
        return int(row[0])

    def _delete(self, op: Delete, now: int) -> Steps:
        row = yield Query(
            "DELETE FROM botwire_entries WHERE ns = %s AND key = %s RETURNING expires_at",
            (op.ns, op.key),
        )
        return row is not None and (row[0] is None or row[0] > now)

    def _locked_row(self, ns: str, key: str, now: int, kind: int) -> Steps:
        """The key's row, locked for this transaction; created (or reset, when it had expired)
        as an empty value of ``kind`` (``1``: list). Returns ``(row, created)``."""
        created = yield Query(
            "INSERT INTO botwire_entries (ns, key, kind, value, size, version, created_at,"
            " updated_at, list_lo, list_hi) VALUES (%(ns)s, %(key)s, %(kind)s, %(value)s,"
            " %(size)s, %(now)s, %(now)s, %(now)s, %(lo)s, %(lo)s)"
            " ON CONFLICT (ns, key) DO NOTHING RETURNING " + _COLUMNS,
            {"ns": ns, "key": key, "kind": kind, "now": now, "value": None if kind else "0",
             "size": 2 if kind else 1, "lo": 0 if kind else None},
        )  # fmt: skip
        if created is not None:
            return created, True
        row = yield Query(
            f"SELECT {_COLUMNS} FROM botwire_entries WHERE ns = %s AND key = %s FOR UPDATE",
            (ns, key),
        )
        if row[6] is not None and row[6] <= now:  # expired: start afresh
            yield Query("DELETE FROM botwire_list_items WHERE entry_id = %s", (row[0],), "rowcount")
            row = yield Query(
                "UPDATE botwire_entries SET kind = %(kind)s, value = %(value)s, size = %(size)s,"
                " version = greatest(version + 1, %(now)s), created_at = %(now)s,"
                " updated_at = %(now)s, expires_at = NULL, ttl = NULL, list_lo = %(lo)s,"
                f" list_hi = %(lo)s WHERE id = %(id)s RETURNING {_COLUMNS}",
                {"id": row[0], "kind": kind, "now": now, "value": None if kind else "0",
                 "size": 2 if kind else 1, "lo": 0 if kind else None},
            )  # fmt: skip
            return row, True
        return row, False

    def _append(self, op: Append, now: int) -> Steps:
        row, _ = yield from self._locked_row(op.ns, op.key, now, 1)
        entry_id, size = row[0], row[7]
        if row[1] == 0:  # a JSON value: becomes a list of rows, once
            current = json.loads(row[2])
            if not isinstance(current, list):
                raise not_a_list(op.key, current)
            lo, hi = 0, len(current)
            if current:
                yield Query(
                    "INSERT INTO botwire_list_items (entry_id, seq, value) VALUES (%s, %s, %s)",
                    [(entry_id, seq, to_json(item)) for seq, item in enumerate(current)],
                    "many",
                )
        else:
            lo, hi = row[9], row[10]
        yield Query(
            "INSERT INTO botwire_list_items (entry_id, seq, value)"
            " SELECT %s, seq, value FROM unnest(%s::bigint[], %s::text[]) AS t(seq, value)",
            (entry_id, list(range(hi, hi + len(op.values))), list(op.values)),
            "rowcount",
        )
        size = list_size(size, hi - lo, [nbytes(v) for v in op.values], 0, 0)
        hi += len(op.values)
        if op.max_len is not None and hi - lo > op.max_len:
            new_lo = hi - op.max_len
            removed, removed_bytes = yield Query(
                "WITH gone AS (DELETE FROM botwire_list_items WHERE entry_id = %s AND seq < %s"
                " RETURNING octet_length(value) AS bytes)"
                " SELECT count(*), coalesce(sum(bytes), 0) FROM gone",
                (entry_id, new_lo),
            )
            size = list_size(size, hi - lo, [], int(removed), int(removed_bytes))
            lo = new_lo
        yield Query(
            "UPDATE botwire_entries SET kind = 1, value = NULL, size = %s, list_lo = %s,"
            " list_hi = %s, version = greatest(version + 1, %s), updated_at = %s WHERE id = %s",
            (size, lo, hi, now, now, entry_id),
            "rowcount",
        )
        return hi - lo

    def _incr(self, op: Incr, now: int) -> Steps:
        row, created = yield from self._locked_row(op.ns, op.key, now, 0)
        current = 0 if created else (None if row[1] == 1 else json.loads(row[2]))
        if type(current) is not int:
            raise not_an_integer(op.key, [] if row[1] == 1 else current)
        total = current + op.by
        text = str(total)
        yield Query(
            "UPDATE botwire_entries SET value = %s, size = %s,"
            " version = greatest(version + 1, %s), updated_at = %s WHERE id = %s",
            (text, len(text), now, now, row[0]),
            "rowcount",
        )
        return total

    def _expire(self, op: Expire, now: int) -> Steps:
        count = yield Query(
            "UPDATE botwire_entries SET expires_at = %(expires_at)s, ttl = %(ttl)s"
            f" WHERE ns = %(ns)s AND key = %(key)s AND {_LIVE}",
            {"expires_at": expiry(now, op.ttl), "ttl": op.ttl, "ns": op.ns, "key": op.key,
             "now": now},
            "rowcount",
        )  # fmt: skip
        return count > 0

    def _list_keys(self, op: ListKeys, now: int) -> Steps:
        params: dict[str, Any] = {"ns": op.ns, "now": now, "prefix": op.prefix,
                                  "limit": op.limit + 1}  # fmt: skip
        sql = (
            "SELECT key, size, updated_at FROM botwire_entries"
            f" WHERE ns = %(ns)s AND {_LIVE} AND key >= %(prefix)s"
        )
        upper = prefix_upper_bound(op.prefix)
        if upper is not None:
            sql += " AND key < %(upper)s"
            params["upper"] = upper
        if op.after is not None:
            sql += " AND key > %(after)s"
            params["after"] = op.after
        rows = yield Query(sql + " ORDER BY key LIMIT %(limit)s", params, "all")
        more = len(rows) > op.limit
        keys = [KeyInfo(*row) for row in rows[: op.limit]]
        return KeyPage(keys, keys[-1].key if more else None)

    def _clear(self, op: Clear, now: int) -> Steps:
        row = yield Query(
            "WITH gone AS (DELETE FROM botwire_entries WHERE ns = %(ns)s RETURNING expires_at)"
            f" SELECT count(*) FILTER (WHERE {_LIVE}) FROM gone",
            {"ns": op.ns, "now": now},
        )
        return int(row[0])

    def _list_namespaces(self, op: ListNamespaces, now: int) -> Steps:
        params: dict[str, Any] = {"now": now, "prefix": op.prefix}
        sql = f"SELECT DISTINCT ns FROM botwire_entries WHERE {_LIVE} AND ns >= %(prefix)s"
        upper = prefix_upper_bound(op.prefix)
        if upper is not None:
            sql += " AND ns < %(upper)s"
            params["upper"] = upper
        rows = yield Query(sql + " ORDER BY ns", params, "all")
        return [ns for (ns,) in rows if "/" not in ns]


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


def _backoff(attempt: int) -> float:
    return min(0.002 * 2.0**attempt, 0.2) * (0.5 + random.random())
