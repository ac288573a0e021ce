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


def add(
    records: Iterable[Record], now: int, schema: str | None, keep: int | None = None
) -> Steps:
    """Log ``records`` in the current write transaction, with each key's version now, and
    notify followers (PostgreSQL sends the notification when the transaction commits); with
    ``keep``, only each key's newest ``keep`` changes stay."""
    who, request = current_actor(), request_id.get()
    for r in records:
        made = (r.at, r.actor, r.request_id) if r.actor else (now, who, request)
        yield Query(
            "WITH held AS MATERIALIZED (SELECT pg_advisory_xact_lock_shared(%(lock)s),"
            " pg_notify(%(channel)s, ''))"
            " INSERT INTO botwire_changes"
            " (ns, key, op, version, at, actor, request_id, value, detail)"
            " SELECT %(ns)s, %(key)s, %(op)s, coalesce(%(version)s, (SELECT version"
            " FROM botwire_entries WHERE ns = %(ns)s AND key = %(key)s)), %(at)s, %(actor)s,"
            " %(request)s, %(value)s, %(detail)s FROM held",
            {"lock": LOG_LOCK, "channel": channel(schema), "ns": r.ns, "key": r.key, "op": r.op,
             "at": made[0], "actor": made[1], "request": made[2], "value": r.value,
             "detail": r.detail, "version": r.version},
            "rowcount",
        )  # fmt: skip
        if keep is not None and r.key is not None:
            yield Query(
                "DELETE FROM botwire_changes WHERE ns = %(ns)s AND key = %(key)s AND seq <="
                " (SELECT seq FROM botwire_changes WHERE ns = %(ns)s AND key = %(key)s"
                " ORDER BY seq DESC LIMIT 1 OFFSET %(keep)s)",
                {"ns": r.ns, "key": r.key, "keep": keep},
                "rowcount",
            )


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
    return {"namespaces": namespaces, "keys": keys, "bytes": int(size), "changes": changes,
            "change_bytes": int(change_bytes), "oldest_change": oldest}  # fmt: skip


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
