"""PostgreSQL's change log, and the rule that keeps a reader from skipping a change.

Positions come from a sequence, handed out while transactions run, and transactions commit in
any order: position 99 may commit after 100. So a reader never reads past a *horizon*:

1. Every write transaction takes a shared advisory lock (:data:`LOG_LOCK`) before it draws a
   position, and holds it until it commits or rolls back.
2. A reader first reads the sequence's last position ``M`` (every position up to ``M`` has
   been drawn), then takes the lock exclusively for an instant: that waits until every
   transaction that held it shared has ended, so every position up to ``M`` is now committed
   or gone for good. Only then does it read the log, up to ``M``.

A position above ``M`` is drawn after the reader read ``M`` and is left for its next read; a
position up to ``M`` is read in full. So a reader paging on with each page's cursor sees each
change once, in the order of the positions, and positions of one key grow in commit order
(a transaction that writes a key waits for the one that wrote it before to commit, and only
then draws its position). Writers never wait for each other on the lock (they share it); a
writer starting while a reader waits for the lock queues behind that reader for an instant.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import psycopg

from botwire.backends import changes
from botwire.backends.base import (
    AddChange,
    Change,
    ChangePage,
    Changes,
    History,
    prefix_upper_bound,
)
from botwire.backends.changes import TRIM_BATCH, Record, current_actor, page, request_id
from botwire.backends.postgres.connections import Query, Steps

LOG_LOCK = 0x626F7478
"""The advisory lock of the log (writers share it, a reader takes it for an instant)."""
_COLUMNS = "seq, ns, key, op, version, at, actor, request_id"


def channel(schema: str | None) -> str:
    """The channel writers notify when they commit changes (one per schema)."""
    suffix = hashlib.sha256((schema or "").encode()).hexdigest()[:16] if schema else "public"
    return f"botwire_changes_{suffix}"


def add(records: Iterable[Record], now: int, schema: str | None, keep: int | None = None) -> Steps:
    """Log ``records`` in the current write transaction, in one statement, with each key's
    version now (a removal's: none), and notify followers (PostgreSQL sends the notification
    when the transaction commits); with ``keep``, only each key's newest ``keep`` changes stay.

    Run it last in a batch, just before its commit: the log's shared lock is held from here to
    the commit, and a reader waiting for it holds back new writers meanwhile."""
    who, request = current_actor(), request_id.get()
    rows = [
        (r.ns, r.key, r.op, r.version, *((r.at, r.actor, r.request_id) if r.actor
                                         else (now, who, request)), r.value, r.detail)
        for r in records
    ]  # fmt: skip
    if not rows:
        return
    columns = list(zip(*rows, strict=True))
    yield Query(
        "WITH held AS MATERIALIZED (SELECT pg_advisory_xact_lock_shared(%(lock)s),"
        " pg_notify(%(channel)s, '')),"
        " r AS (SELECT * FROM unnest(%(ns)s::text[], %(key)s::text[], %(op)s::text[],"
        " %(version)s::bigint[], %(at)s::bigint[], %(actor)s::text[], %(request)s::text[],"
        " %(value)s::text[], %(detail)s::text[]) WITH ORDINALITY"
        " AS r(ns, key, op, version, at, actor, request_id, value, detail, n))"
        " INSERT INTO botwire_changes (ns, key, op, version, at, actor, request_id, value, detail)"
        " SELECT r.ns, r.key, r.op, CASE WHEN r.op IN ('delete', 'clear', 'expired') THEN NULL"
        " ELSE coalesce(r.version, (SELECT e.version FROM botwire_entries e"
        " WHERE e.ns = r.ns AND e.key = r.key)) END, r.at, r.actor, r.request_id, r.value,"
        " r.detail FROM held, r ORDER BY r.n",
        {"lock": LOG_LOCK, "channel": channel(schema), "ns": list(columns[0]),
         "key": list(columns[1]), "op": list(columns[2]), "version": list(columns[3]),
         "at": list(columns[4]), "actor": list(columns[5]), "request": list(columns[6]),
         "value": list(columns[7]), "detail": list(columns[8])},
        "rowcount",
    )  # fmt: skip
    if keep is not None:
        for ns, key in dict.fromkeys((row[0], row[1]) for row in rows if row[1] is not None):
            yield Query(
                "DELETE FROM botwire_changes WHERE ns = %(ns)s AND key = %(key)s AND seq <="
                " (SELECT seq FROM botwire_changes WHERE ns = %(ns)s AND key = %(key)s"
                " ORDER BY seq DESC LIMIT 1 OFFSET %(keep)s)",
                {"ns": ns, "key": key, "keep": keep},
                "rowcount",
            )


def rewrites(op: object, pending: list[Record]) -> bool:
    """Whether ``op`` writes a key whose logged change waits for its version to be read at
    the batch's end (log those first, or they would read the version ``op`` makes)."""
    ns, key = getattr(op, "ns", None), getattr(op, "key", None)
    return any(
        r.version is None and r.ns == ns and key in (None, r.key) and r.op in ("append", "incr",
                                                                                "expire")
        for r in pending
    )  # fmt: skip


def read(op: Changes) -> Steps:
    """A page of the log after ``op.since``, oldest first, up to the horizon. Each statement
    runs on its own (no transaction around them), so the last sees what committed before it."""
    row = yield Query("SELECT last_value, is_called FROM botwire_change_seq")
    horizon = int(row[0]) if row[1] else 0
    yield Query("SELECT pg_advisory_xact_lock(%s)", (LOG_LOCK,), "rowcount")
    if op.since < 0:  # from now on: where the log ends
        return ChangePage([], horizon)
    params: dict[str, object] = {"since": op.since, "horizon": horizon, "limit": op.limit}
    sql = (
        f"SELECT {_COLUMNS}, {'value' if op.values else 'NULL'} FROM botwire_changes"
        " WHERE seq > %(since)s AND seq <= %(horizon)s"
    )
    if op.ns is not None:
        sql += " AND ns = %(ns)s"
        params["ns"] = op.ns
    elif op.ns_prefix:
        sql += " AND " + _starts("ns", op.ns_prefix, params)
    if op.prefix:  # a clear (no key) changes every key
        sql += f" AND (key IS NULL OR {_starts('key', op.prefix, params)})"
    for name, condition, value in (("actor", "actor = %(actor)s", op.actor),
                                   ("from_at", "at >= %(from_at)s", op.from_at),
                                   ("to_at", "at < %(to_at)s", op.to_at)):  # fmt: skip
        if value is not None:
            sql += f" AND {condition}"
            params[name] = value
    rows = yield Query(sql + " ORDER BY seq LIMIT %(limit)s", params, "all")
    return page(rows, op, horizon)


def _starts(column: str, prefix: str, params: dict[str, object]) -> str:
    """SQL for ``column`` starting with ``prefix`` (its parameters added to ``params``)."""
    params[f"{column}_lo"] = prefix
    upper = prefix_upper_bound(prefix)
    if upper is None:
        return f"{column} >= %({column}_lo)s"
    params[f"{column}_hi"] = upper
    return f"({column} >= %({column}_lo)s AND {column} < %({column}_hi)s)"


def imported(op: AddChange, now: int, schema: str | None) -> Steps:
    """Add an imported change; its position."""
    yield from add([changes.imported(op)], now, schema)
    row = yield Query("SELECT currval('botwire_change_seq')")
    return int(row[0])


def trim(before: int) -> Steps:
    """Delete those of the oldest :data:`TRIM_BATCH` changes made before ``before`` (a bounded
    read however large the log)."""
    yield Query(
        "DELETE FROM botwire_changes WHERE seq IN (SELECT seq FROM botwire_changes"
        " ORDER BY seq LIMIT %s) AND at < %s",
        (TRIM_BATCH, before),
        "rowcount",
    )


def stats(now: int) -> Steps:
    """What the store holds: see :class:`~botwire.backends.base.Stats`."""
    namespaces, keys, size = yield Query(
        "SELECT count(DISTINCT ns), count(*), coalesce(sum(size), 0) FROM botwire_entries"
        " WHERE strpos(ns, '/') = 0 AND (expires_at IS NULL OR expires_at > %s)",
        (now,),
    )
    changes, change_bytes, oldest = yield Query(
        "SELECT count(*), coalesce(sum(octet_length(value)), 0), min(at) FROM botwire_changes"
    )
    (vectors,) = yield Query(
        "SELECT coalesce(jsonb_object_agg(model, count), '{}') FROM (SELECT model, count(*)"
        " FROM (SELECT vector_model AS model FROM botwire_entries WHERE vector_model IS NOT NULL"
        " UNION ALL SELECT vector_model FROM botwire_list_items WHERE vector_model IS NOT NULL)"
        " v GROUP BY model) c"
    )
    return {"namespaces": namespaces, "keys": keys, "bytes": int(size), "changes": changes,
            "change_bytes": int(change_bytes), "oldest_change": oldest,
            "vectors": dict(vectors)}  # fmt: skip


def history(op: History) -> Steps:
    """A key's changes, newest first, with their values."""
    rows = yield Query(
        f"SELECT {_COLUMNS}, value, detail FROM botwire_changes"
        " WHERE ns = %(ns)s AND (key = %(key)s OR key IS NULL)"
        " AND seq < %(before)s ORDER BY seq DESC LIMIT %(limit)s",
        {"ns": op.ns, "key": op.key, "limit": op.limit,
         "before": 2**63 - 1 if op.before is None else op.before},
        "all",
    )  # fmt: skip
    return [Change(*row) for row in rows]


class Watcher:
    """Wakes a follower when a write commits changes: it listens on the schema's
    :func:`channel` on a connection of its own."""

    def __init__(self, conninfo: str, kwargs: dict[str, Any], schema: str | None) -> None:
        self.conn = psycopg.connect(conninfo, **kwargs)
        self.conn.execute(f'LISTEN "{channel(schema)}"')
        self.heard = 0

    def mark(self) -> object:
        for _ in self.conn.notifies(timeout=0):
            self.heard += 1
        return self.heard

    def wait(self, mark: object, timeout: float) -> bool:
        if self.mark() != mark:
            return True
        for _ in self.conn.notifies(timeout=timeout, stop_after=1):
            self.heard += 1
        return self.heard != mark

    def close(self) -> None:
        self.conn.close()
