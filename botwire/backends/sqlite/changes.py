"""The embedded store's change log: a table written in each write's transaction.

Positions are row ids, given inside the write transaction; SQLite lets one writer at a time
commit, so a later position is a later commit, and a reader that has read up to a position
never sees a smaller one appear afterwards. A trim never deletes the newest row, so a position
is never given twice.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable

from botwire.backends import changes
from botwire.backends.base import (
    AddChange,
    Change,
    ChangePage,
    Changes,
    History,
    prefix_upper_bound,
)
from botwire.backends.changes import (
    POLL_SECONDS,
    TRIM_BATCH,
    Record,
    current_actor,
    page,
    request_id,
)
from botwire.backends.sqlite.connections import open_connection
from botwire.errors import BotWireError

_COLUMNS = "seq, ns, key, op, version, at, actor, request_id"
# A key's newest change: its entry names it (last_change), or, once the key is gone,
# removed_heads; each change names the key's change before it (prev).
_HEAD = (
    "coalesce((SELECT last_change FROM entries WHERE ns = ?1 AND key = ?2),"
    " (SELECT seq FROM removed_heads WHERE ns = ?1 AND key = ?2))"
)

NEXT = "(SELECT coalesce(max(seq), 0) + 1 FROM change_log)"
"""The position the next change takes: positions are row ids, one above the largest."""

NAMED = f"prev_change = last_change, last_change = {NEXT}"
"""What a write of a key's row sets to name the change it is about to add (see :func:`add`)."""

_COLUMNS_WRITTEN = "ns, key, op, version, at, actor, request_id, value, detail, prev"
_ADD = (
    f"INSERT INTO change_log ({_COLUMNS_WRITTEN}) VALUES (?1, ?2, ?3,"
    " coalesce(?9, (SELECT version FROM entries WHERE ns = ?1 AND key = ?2)),"
    f" ?4, ?5, ?6, ?7, ?8, {_HEAD})"
)
_ADD_NAMED = (
    f"INSERT INTO change_log ({_COLUMNS_WRITTEN}) SELECT ?1, ?2, ?3,"
    " coalesce(?9, version), ?4, ?5, ?6, ?7, ?8, prev_change"
    " FROM entries WHERE ns = ?1 AND key = ?2"
)

_HEAD_MOVED = "UPDATE entries SET last_change = ?3 WHERE ns = ?1 AND key = ?2"
_GONE_HEAD_MOVED = "INSERT OR REPLACE INTO removed_heads VALUES (?1, ?2, ?3)"

_CHAIN = (
    "WITH RECURSIVE chain (seq, shown) AS ("
    " SELECT coalesce((SELECT seq FROM change_log WHERE seq = ?3 AND ns = ?1 AND key = ?2),"
    f" {_HEAD}), 0"
    " UNION ALL SELECT c.prev, chain.shown + (c.seq < ?3) FROM change_log c JOIN chain"
    " ON c.seq = chain.seq WHERE c.prev IS NOT NULL AND chain.shown < ?4)"
)
"""The positions of key ?2's changes in namespace ?1, newest first (the oldest may be one that
was trimmed), each with how many of those before it are older than position ?3; followed until
?4 of those are found; from ?3 on when it is a change of the key (a page's last). A trim deletes
the oldest changes, so a chain ends where one is gone."""


def add(
    conn: sqlite3.Connection,
    records: Iterable[Record],
    now: int,
    keep: int | None = None,
    named: bool = False,
) -> None:
    """Log ``records`` in the current write transaction, with each key's version now, each
    its key's newest change; with ``keep``, only each key's newest ``keep`` changes stay.

    ``named``: the write of each record's key named the change already, in the statement
    that wrote its row (:data:`NAMED`), as a set does; else the key's row (or, when the key
    is gone, removed_heads) is pointed at the change here (schema migrations 8 and 11).
    """
    who, request = current_actor(), request_id.get()
    for r in records:
        made = (r.at, r.actor, r.request_id) if r.actor else (now, who, request)
        params = (r.ns, r.key, r.op, *made, r.value, r.detail, r.version)
        if not named:
            seq = conn.execute(_ADD, params).lastrowid
            if r.key is not None and not conn.execute(_HEAD_MOVED, (r.ns, r.key, seq)).rowcount:
                conn.execute(_GONE_HEAD_MOVED, (r.ns, r.key, seq))
        elif conn.execute(_ADD_NAMED, params).rowcount != 1:
            raise BotWireError(f"the change of {r.key!r} in {r.ns!r} found no row to log it by")
        if keep is not None and r.key is not None:
            conn.execute(
                f"{_CHAIN} DELETE FROM change_log WHERE seq IN (SELECT seq FROM chain"
                " WHERE shown >= ?5)",  # before every position: shown counts the newer ones
                (r.ns, r.key, 2**63 - 1, 2**62, keep),
            )


def read(conn: sqlite3.Connection, op: Changes) -> ChangePage:
    """A page of the log after ``op.since``, oldest first."""
    sql = f"SELECT {_COLUMNS}, {'value' if op.values else 'NULL'} FROM change_log WHERE seq > ?"
    params: list[object] = [op.since]
    if op.ns is not None:
        sql += " AND ns = ?"
        params.append(op.ns)
    elif op.ns_prefix:
        sql += " AND " + _starts("ns", op.ns_prefix, params)
    if op.prefix:  # a clear (no key) changes every key
        sql += f" AND (key IS NULL OR {_starts('key', op.prefix, params)})"
    audit = (("actor = ?", op.actor), ("at >= ?", op.from_at), ("at < ?", op.to_at))
    for condition, value in audit:
        if value is not None:
            sql += f" AND {condition}"
            params.append(value)
    sql += " ORDER BY seq LIMIT ?"
    params.append(op.limit)
    (horizon,) = conn.execute("SELECT coalesce(max(seq), 0) FROM change_log").fetchone()
    if op.since < 0:  # from now on: where the log ends
        return ChangePage([], horizon)
    return page(conn.execute(sql, params).fetchall(), op, horizon)


class Watcher:
    """Wakes a follower when another connection (of any process) commits to the file: SQLite
    bumps ``PRAGMA data_version`` of this watcher's own connection then."""

    def __init__(self, path: str, timeout: float) -> None:
        self.conn = open_connection(path, timeout, "NORMAL")

    def mark(self) -> object:
        return self.conn.execute("PRAGMA data_version").fetchone()[0]

    def wait(self, mark: object, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while self.mark() == mark:
            if time.monotonic() >= end:
                return False
            time.sleep(POLL_SECONDS)
        return True

    def close(self) -> None:
        self.conn.close()


def _starts(column: str, prefix: str, params: list[object]) -> str:
    """SQL for ``column`` starting with ``prefix`` (its parameters added to ``params``)."""
    params.append(prefix)
    upper = prefix_upper_bound(prefix)
    if upper is None:
        return f"{column} >= ?"
    params.append(upper)
    return f"({column} >= ? AND {column} < ?)"


def imported(conn: sqlite3.Connection, op: AddChange, now: int) -> int:
    """Add an imported change; its position."""
    add(conn, [changes.imported(op)], now)
    (seq,) = conn.execute("SELECT max(seq) FROM change_log").fetchone()
    return int(seq)


def trim(conn: sqlite3.Connection, before: int) -> None:
    """Delete the oldest changes made before ``before``, at most :data:`TRIM_BATCH` (a bounded
    read however large the log), up to the first one made since: the log loses a prefix only,
    so every key's chain of changes stays whole back to where it ends (an imported change
    keeps its old time, and a clock may step back), and none that the search index has not
    taken up yet (see ``search.catch_up``). The heads of gone keys whose changes went go
    too."""
    conn.execute(
        "DELETE FROM change_log WHERE seq IN (SELECT seq FROM change_log ORDER BY seq LIMIT ?1)"
        " AND seq < coalesce((SELECT min(seq) FROM (SELECT seq, at FROM change_log ORDER BY seq"
        " LIMIT ?1) WHERE at >= ?2), 9223372036854775807)"
        " AND seq < (SELECT max(seq) FROM change_log)"  # the newest stays: see above
        " AND seq <= (SELECT CASE WHEN enabled THEN logged_upto ELSE seq END FROM search_state)",
        (TRIM_BATCH, before),
    )
    conn.execute(
        "DELETE FROM removed_heads WHERE seq < (SELECT coalesce(min(seq), 0) FROM change_log)"
    )


def stats(conn: sqlite3.Connection, now: int) -> dict[str, int | None]:
    """What the store holds: see :class:`~botwire.backends.base.Stats`."""
    namespaces, keys, size = conn.execute(
        "SELECT count(DISTINCT ns), count(*), coalesce(sum(size), 0) FROM entries"
        " WHERE instr(ns, '/') = 0 AND (expires_at IS NULL OR expires_at > ?)",
        (now,),
    ).fetchone()
    changes, change_bytes, oldest = conn.execute(
        "SELECT count(*), coalesce(sum(length(CAST(value AS BLOB))), 0), min(at) FROM change_log"
    ).fetchone()
    vectors = dict(conn.execute("SELECT model, count(*) FROM vectors GROUP BY model"))
    return {"namespaces": namespaces, "keys": keys, "bytes": size, "changes": changes,
            "change_bytes": change_bytes, "oldest_change": oldest, "vectors": vectors}  # fmt: skip


def history(conn: sqlite3.Connection, op: History) -> list[Change]:
    """A key's changes and its namespace's clears, newest first, with their values."""
    before = 2**63 - 1 if op.before is None else op.before
    rows = conn.execute(
        f"{_CHAIN} SELECT {_COLUMNS}, value, detail FROM change_log"
        " WHERE seq IN (SELECT seq FROM chain) AND seq < ?3"
        f" UNION ALL SELECT {_COLUMNS}, value, detail FROM change_log"
        " WHERE ns = ?1 AND key IS NULL AND seq < ?3"
        " ORDER BY seq DESC LIMIT ?4",
        (op.ns, op.key, before, op.limit),
    )
    return [Change(*row) for row in rows]
