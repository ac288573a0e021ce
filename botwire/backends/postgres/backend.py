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

Connections: a ``psycopg_pool`` pool for sync calls, and for async calls a small pool per event
loop (:class:`AsyncPool`) that opens connections in the coroutine that needs one and runs no
background task, so that a loop shutting down (``asyncio.run`` cancels every task) has nothing
of ours to cancel; it is closed when that loop shuts down. A child process after ``fork`` leaves
the parent's connections alone (closing them would end the parent's sessions) and opens its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool, PoolTimeout

from botwire.backends import changes
from botwire.backends.base import (
    INHERITED,
    AddChange,
    Append,
    Backend,
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
    Slice,
    Stats,
    Unembedded,
    handlers,
    is_write,
    on_loop_shutdown,
    prefix_upper_bound,
    resendable,
)
from botwire.backends.common import (
    DAY_US,
    PURGE_BATCH,
    VALUE,
    append_steps,
    deadline,
    expiry,
    incr_steps,
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
from botwire.backends.postgres import changes as log
from botwire.backends.postgres import rows, vectors
from botwire.backends.postgres.connections import (
    BEGIN,
    BEGIN_SNAPSHOT,
    COMMIT,
    AsyncPool,
    Attempt,
    Query,
    Steps,
    arun,
    backoff,
    parse_url,
    run,
)
from botwire.backends.postgres.rows import LIVE, NEW_VERSION, document
from botwire.backends.postgres.schema import Progress, apply_migrations, settle_language
from botwire.backends.postgres.search import search
from botwire.backends.search import DEFAULT_LANGUAGE, Counts, tsvector
from botwire.config import mask_url
from botwire.errors import BackendUnavailable, InvalidRequest

_RETRIES = 10
_RETRYABLE = (pg_errors.SerializationFailure, pg_errors.DeadlockDetected)
_ONE_STATEMENT = (Get, ListKeys, ListNamespaces, Slice, Changes)
"""Operations that run alone without a transaction around them (a write needs one: it logs
its change in the same transaction; ``changes`` must not have one, see its module)."""
_SLICE_TEXT = (
    "(SELECT '[' || coalesce(string_agg(i.value, ',' ORDER BY i.seq), '') || ']'"
    " FROM botwire_list_items i WHERE i.entry_id = e.id AND i.seq >= e.list_lo + b.first"
    " AND i.seq < e.list_lo + greatest(b.first, b.stop))"
)
"""The items of a list between the bounds ``b`` that :func:`_bound` computes."""


def _bound(name: str, default: str) -> str:
    """SQL for a slice bound ``%(name)s`` as an offset into a list of ``l.n`` items, by
    Python's rules (``None``: ``default``; negative: from the end; clamped to the list)."""
    bound = f"%({name})s::bigint"
    return (
        f"CASE WHEN {bound} IS NULL THEN {default} WHEN {bound} < 0"
        f" THEN greatest(0, l.n + {bound}) ELSE least({bound}, l.n) END"
    )


_LIST_TEXT = (
    "(SELECT '[' || coalesce(string_agg(i.value, ',' ORDER BY i.seq), '') || ']'"
    " FROM botwire_list_items i WHERE i.entry_id = e.id)"
)
_KEPT_OUT = (
    "vector = CASE WHEN %(doc)s::tsvector IS NULL THEN NULL ELSE e.vector END,"
    " vector_model = CASE WHEN %(doc)s::tsvector IS NULL THEN NULL ELSE e.vector_model END"
)
"""A value written out of the index loses its vector, even when it is the same value."""

_UPSERT = f"""
INSERT INTO botwire_entries AS e (ns, key, kind, value, size, version, created_at, updated_at,
                                  expires_at, ttl, tsv, digest)
VALUES (%(ns)s, %(key)s, 0, %(value)s, %(size)s, {NEW_VERSION}, %(now)s, %(now)s,
        %(expires_at)s, %(ttl)s, %(doc)s::tsvector, %(digest)s)
ON CONFLICT (ns, key) DO UPDATE SET
    kind = 0, value = EXCLUDED.value, size = EXCLUDED.size, tsv = EXCLUDED.tsv,
    digest = EXCLUDED.digest, {_KEPT_OUT},
    version = greatest(e.version + 1, %(now)s),
    created_at = CASE WHEN e.expires_at <= %(now)s THEN %(now)s ELSE e.created_at END,
    updated_at = %(now)s,
    expires_at = CASE WHEN %(keep)s AND (e.expires_at IS NULL OR e.expires_at > %(now)s)
                      THEN e.expires_at ELSE EXCLUDED.expires_at END,
    ttl = CASE WHEN %(keep)s AND (e.expires_at IS NULL OR e.expires_at > %(now)s)
               THEN e.ttl ELSE EXCLUDED.ttl END,
    list_lo = NULL, list_hi = NULL
"""


class PostgresBackend(Backend):
    """A PostgreSQL database shared by every process that points at it.

    Args:
        url: ``postgresql://user:password@host:port/db[?schema=NAME&migrate=false]``.
        timeout: seconds to wait for a connection (and the database) before giving up.
        clock: seconds since the epoch; tests inject a fake one.
        quotas: per-namespace limits, enforced in each write transaction.
        pool_size: most connections this process opens (per event loop, for async calls).
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
        super().__init__()
        self.url = mask_url(url)
        options = parse_url(url)
        self.conninfo, self.schema, self.auto_migrate, self.wanted_language = options[:4]
        self.history, self.history_versions = options.history, options.history_versions
        self.language = DEFAULT_LANGUAGE
        """The store's language, read when the schema is checked (first use)."""
        self.timeout = timeout
        self.clock = clock
        self.quotas = quotas
        self.pool_size = pool_size
        self._pool: ConnectionPool | None = None
        self._async_pools: dict[asyncio.AbstractEventLoop, asyncio.Task[AsyncPool]] = {}
        self._migrated = False
        self._next_purge = 0
        self._counts = Counts()
        self._handlers: dict[type, Callable[[Any, int], Steps]] = handlers(self)
        self._answers = rows.answers(lambda: self.language)

    # -- connections ------------------------------------------------------------------------

    def _connect_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"autocommit": True, "connect_timeout": max(1, int(self.timeout))}
        if "application_name" not in self.conninfo:  # ?application_name=... names a service
            kwargs["application_name"] = "botwire"
        if self.schema:
            kwargs["options"] = f'-c search_path="{self.schema}"'
        return kwargs

    def watcher(self) -> log.Watcher:
        """A connection that hears when writes commit changes (see :meth:`Backend.follow`)."""
        if not self._migrated:
            self.migrate(auto=True)
        return log.Watcher(self.conninfo, self._connect_kwargs(), self.schema)

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

    async def _async_pool(self) -> AsyncPool:
        """This event loop's pool. Coroutines that ask at once share one pool being opened."""
        loop = asyncio.get_running_loop()
        opening = self._async_pools.get(loop)
        if opening is None:
            for old in [old for old in self._async_pools if old.is_closed()]:
                del self._async_pools[old]  # a loop closed without shutting down: let it go
            opening = self._async_pools[loop] = loop.create_task(self._open_async_pool(loop))
        try:
            return await asyncio.shield(opening)
        except BaseException:
            if opening.done() and self._async_pools.get(loop) is opening:
                del self._async_pools[loop]  # it failed to open: the next call tries afresh
            raise

    async def _open_async_pool(self, loop: asyncio.AbstractEventLoop) -> AsyncPool:
        if not self._migrated:
            await asyncio.to_thread(lambda: self.migrate(auto=True))
        pool = AsyncPool(self.conninfo, self._connect_kwargs(), self.pool_size, self.timeout)

        async def close_at_shutdown() -> None:
            self._async_pools.pop(loop, None)  # the loop is ending: all of its pools go
            await pool.close()

        on_loop_shutdown(close_at_shutdown)
        return pool

    def close(self) -> None:
        """Close the sync pool; it is opened again when needed."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    async def aclose(self) -> None:
        """Close this event loop's pool, and the sync one."""
        opening = self._async_pools.pop(asyncio.get_running_loop(), None)
        if opening is not None:
            with contextlib.suppress(Exception):  # a pool that never opened has nothing to close
                await (await opening).close()
        self.close()

    def _after_fork(self) -> None:
        INHERITED.append((self._pool, self._async_pools))
        self._pool = None
        self._async_pools = {}

    def _unavailable(self, exc: BaseException, what: str = "is unavailable") -> BackendUnavailable:
        return BackendUnavailable(
            f"PostgreSQL at {self.url} {what} ({type(exc).__name__}: {exc}); check that it runs "
            "and accepts connections. botwire reconnects once it answers."
        )

    # -- migrations -------------------------------------------------------------------------

    def migrate(self, progress: Progress | None = None, *, auto: bool = False) -> int:
        """Bring the database's schema up to date; return how many migrations ran.

        With ``auto=True`` (first use) and ``?migrate=false`` in the URL, refuse instead.
        ``progress(done, total)`` follows a migration that works through existing rows.
        Processes that start at once take turns (an advisory lock), so the schema and every
        migration are made exactly once.
        """
        try:
            with (
                psycopg.connect(self.conninfo, **self._connect_kwargs()) as conn,
                conn.transaction(),
            ):
                ran = apply_migrations(
                    conn, self.schema, self.url, auto and not self.auto_migrate, progress
                )
                self.language = settle_language(conn, self.wanted_language, progress)
        except psycopg.OperationalError as exc:
            raise self._unavailable(exc) from exc
        self._migrated = True
        return ran

    # -- the primitive ----------------------------------------------------------------------

    def execute(self, ops: Sequence[Op]) -> list[Any]:
        """Run ``ops`` in one transaction; retried whole where that is safe (see
        :meth:`_after_failure`)."""
        if not ops:
            return []
        pool = self._sync_pool()
        for tries in range(_RETRIES):
            attempt = Attempt()
            try:
                with pool.connection(timeout=self.timeout) as conn:
                    return run(conn, self._batch(ops, attempt))  # type: ignore[no-any-return]
            except (psycopg.Error, UnicodeError, OverflowError) as exc:
                check = self._after_failure(exc, attempt, ops, tries)
            if check:
                pool.check()
            time.sleep(backoff(tries))
        raise BackendUnavailable(f"{self.url}: a batch kept conflicting after {_RETRIES} tries")

    async def aexecute(self, ops: Sequence[Op]) -> list[Any]:
        """Async twin of :meth:`execute`, on psycopg's async connections."""
        if not ops:
            return []
        pool = await self._async_pool()
        for tries in range(_RETRIES):
            attempt = Attempt()
            try:
                async with pool.connection() as conn:
                    return await arun(conn, self._batch(ops, attempt))  # type: ignore[no-any-return]
            except (psycopg.Error, UnicodeError, OverflowError) as exc:
                check = self._after_failure(exc, attempt, ops, tries)
            if check:
                await pool.check()
            await asyncio.sleep(backoff(tries))
        raise BackendUnavailable(f"{self.url}: a batch kept conflicting after {_RETRIES} tries")

    def _after_failure(
        self, exc: Exception, attempt: Attempt, ops: Sequence[Op], tries: int
    ) -> bool:
        """Decide what a failed attempt means: raise the error to report, or return whether to
        check the pool's connections before trying again.

        Serialization failures and deadlocks are retried. A broken connection is retried
        (twice) unless the batch may have committed and running it again would change its
        answer (:func:`~botwire.backends.base.resendable`): then the caller learns that its
        outcome is unknown instead of getting a wrong answer.
        """
        if isinstance(exc, _RETRYABLE):
            return False
        if isinstance(exc, pg_errors.QueryCanceled) and deadline.get() is not None:
            raise ran_out() from exc
        if isinstance(exc, PoolTimeout):
            raise self._unavailable(exc) from exc
        if isinstance(exc, psycopg.OperationalError):
            if attempt.outcome_unknown and not resendable(ops):
                raise self._unavailable(
                    exc, "dropped the connection while the write was committing, so it may or "
                    "may not have been written (read the key to find out)"
                ) from exc  # fmt: skip
            if tries >= 2:
                raise self._unavailable(exc) from exc
            return True
        if isinstance(exc, (psycopg.DataError, UnicodeError, OverflowError)):
            raise InvalidRequest(f"PostgreSQL refused the request: {exc}") from exc
        raise self._unavailable(exc, "failed") from exc

    def _batch(self, ops: Sequence[Op], attempt: Attempt) -> Steps:
        """Every statement of one attempt at a batch, with its transaction around them."""
        now = self.now()
        if (budget := read_budget.get()) is not None:
            budget.restart()
        if self._purge_due(now):
            yield BEGIN
            yield from self._purge(now)
            if self.history:
                yield from log.trim(now - int(self.history * 1_000_000))
            yield COMMIT
        changes.alone(ops)
        if self._one_statement(ops):  # atomic alone: no BEGIN/COMMIT round trips
            attempt.outcome_unknown = True
            op = ops[0]
            return [(yield from self._handlers[type(op)](op, now))]
        writes = is_write(ops)
        yield BEGIN if writes else BEGIN_SNAPSHOT
        end = deadline.get()
        if end is not None and any(type(op) is Search for op in ops):  # stopped at the deadline
            ms = max(1, int((end - time.monotonic()) * 1000))
            yield Query(f"SET LOCAL statement_timeout = {ms}", fetch="rowcount")
        results = []
        logged: list[changes.Record] = []  # written last, just before the commit
        for op in ops:
            if logged and log.rewrites(op, logged):
                yield from log.add(logged, now, self.schema, self.history_versions)
                logged = []
            result = yield from self._handlers[type(op)](op, now)
            if writes and self.history and (change := changes.record(op, result)):
                logged.append(change)
            results.append(result)
        if self.quotas is not None and writes:
            yield from self._answer(quota_checks(self.quotas, ops, now), now)
        yield from log.add(logged, now, self.schema, self.history_versions)
        attempt.outcome_unknown = True
        yield COMMIT
        return results

    def _one_statement(self, ops: Sequence[Op]) -> bool:
        """Whether the batch is one read that runs without a transaction around it (a ``get``
        that refreshes a ttl writes: it needs one, for its quota)."""
        return len(ops) == 1 and type(ops[0]) in _ONE_STATEMENT and not is_write(ops)

    def _purge_due(self, now: int) -> bool:
        """Whether to purge now: at most once a second per process."""
        if now < self._next_purge:
            return False
        self._next_purge = now + 1_000_000
        return True

    def _purge(self, now: int) -> Steps:
        """Delete a bounded batch of expired keys, skipping rows that writers hold.

        Runs in its own short transaction, before the batch's.
        """
        gone = yield Query(
            "DELETE FROM botwire_entries WHERE id IN (SELECT id FROM botwire_entries"
            " WHERE expires_at <= %s LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING ns, key",
            (now, PURGE_BATCH),
            "all",
        )
        if self.history:
            gone = [r for ns, key in gone if (r := changes.expired(ns, key, now))]
            yield from log.add(gone, now, self.schema)
        yield Query(
            "DELETE FROM botwire_quota_usage WHERE day < %s",
            (now // 86_400_000_000 - 1,),
            "rowcount",
        )

    # -- answers to the questions of the shared logic (common.py) -----------------------------

    def _answer(self, steps: Any, now: int) -> Steps:
        answer: Any = None
        while True:
            try:
                question = steps.send(answer)
            except StopIteration as done:
                return done.value
            answer = yield from self._answers[type(question)](question, now)

    @staticmethod
    def _changes(op: Changes, now: int) -> Steps:
        return (yield from log.read(op))

    @staticmethod
    def _history(op: History, now: int) -> Steps:
        return (yield from log.history(op))

    @staticmethod
    def _unembedded(op: Unembedded, now: int) -> Steps:
        return (yield from vectors.unembedded(op))

    @staticmethod
    def _embed(op: Embed, now: int) -> Steps:
        return (yield from vectors.embed(op))

    def _add_change(self, op: AddChange, now: int) -> Steps:
        return (yield from log.imported(op, now, self.schema))

    @staticmethod
    def _stats(op: Stats, now: int) -> Steps:
        return (yield from log.stats(now))

    # -- operations -------------------------------------------------------------------------

    def _get(self, op: Get, now: int) -> Steps:
        budget = read_budget.get() if op.value else None
        left = None if budget is None else budget.left()
        value = f"CASE WHEN e.kind = 1 THEN {_LIST_TEXT} ELSE e.value END" if op.value else "NULL"
        if left is not None:  # a value over the budget is not even read
            value = f"CASE WHEN e.size > {int(left)} THEN NULL ELSE {value} END"
        params = {"ns": op.ns, "key": op.key, "now": now}
        if op.refresh_ttl:
            row = yield Query(
                "UPDATE botwire_entries e SET expires_at = CASE WHEN ttl IS NULL THEN expires_at"
                " ELSE %(now)s + greatest(1, ceil(ttl * 1000000))::bigint END"
                f" WHERE ns = %(ns)s AND key = %(key)s AND {LIVE}"
                f" RETURNING {value}, version, created_at, updated_at, expires_at, size, ttl",
                params,
            )
        else:
            row = yield Query(
                f"SELECT {value}, version, created_at, updated_at, expires_at, size, ttl"
                f" FROM botwire_entries e WHERE ns = %(ns)s AND key = %(key)s AND {LIVE}",
                params,
            )
        if row is None:
            return None
        record = Record(*row)
        if budget is not None:
            budget.charge(record.size)
        return record

    def _put(self, op: Put, now: int) -> Steps:
        params = {
            "ns": op.ns, "key": op.key, "value": op.value, "size": nbytes(op.value), "now": now,
            "expires_at": expiry(now, op.ttl), "ttl": op.ttl,
            "keep": op.keep_ttl and op.ttl is None, "if_version": op.if_version,
            **document(op.ns, op.key, op.value, self.language, op.searchable),
        }  # fmt: skip
        if op.if_version is None:
            row = yield Query(_UPSERT + " RETURNING e.version", params)
        elif op.if_version == 0:
            row = yield Query(
                _UPSERT + " WHERE e.expires_at <= %(now)s RETURNING e.version", params
            )
        else:
            row = yield Query(
                "UPDATE botwire_entries AS e SET kind = 0, value = %(value)s, size = %(size)s,"
                " version = greatest(version + 1, %(now)s), updated_at = %(now)s,"
                " expires_at = CASE WHEN %(keep)s THEN expires_at ELSE %(expires_at)s END,"
                " ttl = CASE WHEN %(keep)s THEN ttl ELSE %(ttl)s END,"
                " list_lo = NULL, list_hi = NULL, tsv = %(doc)s::tsvector, digest = %(digest)s,"
                f" {_KEPT_OUT} WHERE ns = %(ns)s AND key = %(key)s"
                f" AND version = %(if_version)s AND {LIVE}"
                " RETURNING version",
                params,
            )
        if row is None:
            current = yield Query(
                "SELECT version FROM botwire_entries"
                f" WHERE ns = %(ns)s AND key = %(key)s AND {LIVE}",
                params,
            )
            raise version_conflict(op.key, op.if_version or 0, 0 if current is None else current[0])
        if op.vectors is not None:
            yield from vectors.of_value(op.ns, op.key, op.vectors)
        return int(row[0])

    def _restore(self, op: Restore, now: int) -> Steps:
        row = yield Query(
            "INSERT INTO botwire_entries AS e (ns, key, kind, value, size, version, created_at,"
            " updated_at, expires_at, ttl, tsv, digest) VALUES (%(ns)s, %(key)s, 0, %(value)s,"
            " %(size)s,"
            f" {NEW_VERSION}, %(created_at)s, %(updated_at)s, %(expires_at)s, %(ttl)s,"
            " %(doc)s::tsvector, %(digest)s)"
            " ON CONFLICT (ns, key) DO UPDATE SET kind = 0, value = EXCLUDED.value,"
            " tsv = EXCLUDED.tsv, digest = EXCLUDED.digest,"
            " size = EXCLUDED.size, version = greatest(e.version + 1, %(now)s),"
            " created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at,"
            " expires_at = EXCLUDED.expires_at, ttl = EXCLUDED.ttl, list_lo = NULL, list_hi = NULL"
            " RETURNING e.version",
            {"ns": op.ns, "key": op.key, "value": op.value, "size": nbytes(op.value), "now": now,
             "created_at": op.created_at, "updated_at": op.updated_at,
             "expires_at": op.expires_at, "ttl": op.ttl,
             **tsvector(op.ns, op.key, op.value, self.language)},
        )  # fmt: skip
        return int(row[0])

    def _delete(self, op: Delete, now: int) -> Steps:
        row = yield Query(
            "DELETE FROM botwire_entries WHERE ns = %s AND key = %s RETURNING expires_at",
            (op.ns, op.key),
        )
        return row is not None and (row[0] is None or row[0] > now)

    def _append(self, op: Append, now: int) -> Steps:
        """One call of the server-side ``botwire_append``; where it hands the append back (a
        value written by ``set`` to split into items), the shared steps, one query each."""
        docs = [document(op.ns, op.key, v, self.language, op.searchable) for v in op.values]
        (length,) = yield Query(
            "SELECT botwire_append(%s::text, %s::text, %s::text[], %s::text[], %s::text[],"
            " %s::bigint, %s::text, %s::float8, %s::bigint, %s::bigint)",
            (op.ns, op.key, list(op.values), [doc["doc"] for doc in docs],
             [doc["digest"] for doc in docs], op.max_len, op.keep_first, op.ttl,
             expiry(now, op.ttl), now),
        )  # fmt: skip
        if length is None:
            length = yield from self._answer(append_steps(op), now)
        if op.vectors is not None:
            yield from vectors.of_appended(op, op.vectors)
        return int(length)

    def _incr(self, op: Incr, now: int) -> Steps:
        return (yield from self._answer(incr_steps(op), now))

    def _expire(self, op: Expire, now: int) -> Steps:
        count = yield Query(
            "UPDATE botwire_entries SET expires_at = %(expires_at)s, ttl = %(ttl)s"
            f" WHERE ns = %(ns)s AND key = %(key)s AND {LIVE}",
            {"expires_at": expiry(now, op.ttl), "ttl": op.ttl, "ns": op.ns, "key": op.key,
             "now": now},
            "rowcount",
        )  # fmt: skip
        return count > 0

    def _list_keys(self, op: ListKeys, now: int) -> Steps:
        params: dict[str, Any] = {"ns": op.ns, "now": now, "prefix": op.prefix,
                                  "limit": op.limit + 1}  # fmt: skip
        value = f", CASE WHEN e.kind = 1 THEN {_LIST_TEXT} ELSE e.value END" if op.values else ""
        sql = (
            f"SELECT key, size, updated_at{value} FROM botwire_entries e"
            f" WHERE ns = %(ns)s AND {LIVE} AND key >= %(prefix)s"
        )
        upper = prefix_upper_bound(op.prefix)
        if upper is not None:
            sql += " AND key < %(upper)s"
            params["upper"] = upper
        if op.by_update:
            if op.after is not None:
                params["moment"], params["after"] = update_cursor(op.after)
                older, later = (">", "<") if op.reverse else ("<", ">")
                sql += (
                    f" AND (updated_at {older} %(moment)s"
                    f" OR (updated_at = %(moment)s AND key {later} %(after)s))"
                )
            order = " ORDER BY updated_at" + (", key DESC" if op.reverse else " DESC, key")
        else:
            if op.after is not None:
                sql += " AND key < %(after)s" if op.reverse else " AND key > %(after)s"
                params["after"] = op.after
            order = " ORDER BY key DESC" if op.reverse else " ORDER BY key"
        rows = yield Query(sql + order + " LIMIT %(limit)s", params, "all")
        more = len(rows) > op.limit
        keys: list[KeyInfo] = []
        for row in rows[: op.limit]:
            if op.values and not page_takes(row[1], len(keys)):
                more = True
                break
            keys.append(KeyInfo(*row))
        return KeyPage(keys, page_cursor(keys[-1], op) if more else None)

    def _clear(self, op: Clear, now: int) -> Steps:
        row = yield Query(
            "WITH gone AS (DELETE FROM botwire_entries WHERE ns = %(ns)s RETURNING expires_at)"
            f" SELECT count(*) FILTER (WHERE {LIVE}) FROM gone",
            {"ns": op.ns, "now": now},
        )
        return int(row[0])

    def _slice(self, op: Slice, now: int) -> Steps:
        # One statement, so that the list's bounds and its items come from one snapshot.
        row = yield Query(
            f"SELECT e.kind, e.value, CASE WHEN e.kind = 1 THEN {_SLICE_TEXT} END"
            f" FROM botwire_entries e, LATERAL (SELECT e.list_hi - e.list_lo AS n) l,"
            f" LATERAL (SELECT {_bound('start', '0')} AS first, {_bound('stop', 'l.n')} AS stop) b"
            f" WHERE e.ns = %(ns)s AND e.key = %(key)s AND {LIVE}",
            {"ns": op.ns, "key": op.key, "now": now, "start": op.start, "stop": op.stop},
        )
        if row is None:
            return None
        kind, value, text = row
        if kind == VALUE:
            text = sliced_value(op.key, value, op.start, op.stop)
        if (budget := read_budget.get()) is not None:
            budget.charge(nbytes(text))
        return text

    def _search(self, op: Search, now: int) -> Steps:
        return search(op, now, self._counts, self.language)

    def _list_namespaces(self, op: ListNamespaces, now: int) -> Steps:
        params: dict[str, Any] = {"now": now, "prefix": op.prefix, "day": now // DAY_US}
        where = f"{LIVE} AND ns >= %(prefix)s"
        upper = prefix_upper_bound(op.prefix)
        if upper is not None:
            where += " AND ns < %(upper)s"
            params["upper"] = upper
        if not op.sizes:
            sql = f"SELECT DISTINCT ns FROM botwire_entries WHERE {where} ORDER BY ns"
            rows = yield Query(sql, params, "all")
            return [ns for (ns,) in rows if "/" not in ns]
        rows = yield Query(
            "SELECT ns, count(*), coalesce(sum(size), 0)::bigint, coalesce((SELECT writes FROM"
            " botwire_quota_usage q WHERE q.ns = e.ns AND q.day = %(day)s), 0)"
            f" FROM botwire_entries e WHERE {where} GROUP BY ns ORDER BY ns",
            params,
            "all",
        )
        return [NamespaceInfo(*row) for row in rows if "/" not in row[0]]
