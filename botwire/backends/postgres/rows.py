"""The PostgreSQL store's answers to the questions of the shared write logic
(:mod:`botwire.backends.common`): a key's row locked or started, list items added, dropped,
read and moved, a list or value saved, a namespace's writes counted and bytes summed. Each is a
generator of the SQL it needs, run in the write transaction of the batch that asks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botwire.backends.common import (
    LIST,
    VALUE,
    AddItems,
    CountWrites,
    DropItems,
    LockRow,
    MoveItem,
    ReadItem,
    Row,
    SaveList,
    SaveValue,
    StoredBytes,
    expiry,
    fresh_row,
    nbytes,
)
from botwire.backends.postgres.connections import Query, Steps
from botwire.backends.search import tsvector

NEW_VERSION = "greatest(%(now)s, (SELECT value + 1 FROM botwire_version_floor))"
"""A new key's version: the time, or above every version deleted before."""
LIVE = "(expires_at IS NULL OR expires_at > %(now)s)"

Doc = dict[str, str | None]
UNINDEXED: Doc = {"doc": None, "digest": None}
"""The document of a value or item kept out of the search index."""


def document(ns: str, key: str, value: str | None, language: str, searchable: bool) -> Doc:
    """What the index holds for a value or list item (its ``doc`` and ``digest``): both
    ``None`` for one kept out of the index, which no search finds nor embedder embeds."""
    return tsvector(ns, key, value, language) if searchable else UNINDEXED


def lock_row(q: LockRow, now: int, language: str) -> Steps:
    empty = fresh_row(0, q.kind)
    doc = document(q.ns, q.key, empty.value, language, q.kind == VALUE)  # (a list's: its items)
    params = {"ns": q.ns, "key": q.key, "kind": q.kind, "now": now, "value": empty.value,
              "size": empty.size, "lo": empty.list_lo, **doc}  # fmt: skip
    columns = "id, kind, value, size, list_lo, list_hi, expires_at, tsv IS NOT NULL"
    while True:
        # INSERT ... DO NOTHING locks nothing when the key exists, and a delete (or the
        # purge) may commit before the SELECT ... FOR UPDATE: then try the insert again.
        created = yield Query(
            "INSERT INTO botwire_entries (ns, key, kind, value, size, version, created_at,"
            " updated_at, list_lo, list_hi, tsv, digest) VALUES (%(ns)s, %(key)s, %(kind)s,"
            " %(value)s,"
            f" %(size)s, {NEW_VERSION}, %(now)s, %(now)s, %(lo)s, %(lo)s,"
            " %(doc)s::tsvector, %(digest)s)"
            f" ON CONFLICT (ns, key) DO NOTHING RETURNING {columns}",
            params,
        )
        if created is not None:
            return Row(*created[:6]), True
        row = yield Query(
            f"SELECT {columns} FROM botwire_entries"
            " WHERE ns = %(ns)s AND key = %(key)s FOR UPDATE",
            params,
        )
        if row is not None:
            break
    if row[6] is not None and row[6] <= now:  # expired: start afresh
        if row[1] == LIST:
            yield Query("DELETE FROM botwire_list_items WHERE entry_id = %s", (row[0],), "rowcount")
        yield Query(
            "UPDATE botwire_entries SET kind = %(kind)s, value = %(value)s, size = %(size)s,"
            " version = greatest(version + 1, %(now)s), created_at = %(now)s,"
            " updated_at = %(now)s, expires_at = NULL, ttl = NULL, list_lo = %(lo)s,"
            " list_hi = %(lo)s, tsv = %(doc)s::tsvector, digest = %(digest)s WHERE id = %(id)s",
            {**params, "id": row[0]},
            "rowcount",
        )
        return empty._replace(id=row[0]), True
    return Row(*row[:6])._replace(searchable=row[7]), False


def add_items(q: AddItems, now: int, language: str) -> Steps:
    docs = [document(q.ns, q.key, value, language, q.searchable) for value in q.values]
    yield Query(
        "INSERT INTO botwire_list_items (entry_id, seq, value, tsv, digest)"
        " SELECT %s, seq, value, doc::tsvector, digest FROM unnest(%s::bigint[], %s::text[],"
        " %s::text[], %s::text[]) AS t(seq, value, doc, digest)",
        (q.entry_id, list(range(q.first_seq, q.first_seq + len(q.values))), list(q.values),
         [doc["doc"] for doc in docs], [doc["digest"] for doc in docs]),
        "rowcount",
    )  # fmt: skip


def drop_items(q: DropItems, now: int) -> Steps:
    removed, removed_bytes = yield Query(
        "WITH gone AS (DELETE FROM botwire_list_items WHERE entry_id = %s AND seq >= %s"
        " AND seq < %s RETURNING octet_length(value) AS bytes)"
        " SELECT count(*), coalesce(sum(bytes), 0) FROM gone",
        (q.entry_id, q.from_seq, q.below_seq),
    )
    return int(removed), int(removed_bytes)


def read_item(q: ReadItem, now: int) -> Steps:
    (text,) = yield Query(
        "SELECT value FROM botwire_list_items WHERE entry_id = %s AND seq = %s",
        (q.entry_id, q.seq),
    )
    return str(text)


def move_item(q: MoveItem, now: int) -> Steps:
    yield Query(
        "UPDATE botwire_list_items SET seq = %s WHERE entry_id = %s AND seq = %s",
        (q.to_seq, q.entry_id, q.from_seq),
        "rowcount",
    )


def save_list(q: SaveList, now: int) -> Steps:
    yield Query(
        "UPDATE botwire_entries SET kind = 1, value = NULL, tsv = NULL, digest = NULL,"
        " size = %(size)s,"
        " list_lo = %(lo)s, list_hi = %(hi)s, version = greatest(version + 1, %(now)s),"
        " updated_at = %(now)s,"
        " expires_at = CASE WHEN %(ttl)s::float8 IS NULL THEN expires_at"
        " ELSE %(expires_at)s END, ttl = coalesce(%(ttl)s, ttl) WHERE id = %(id)s",
        {"size": q.size, "lo": q.lo, "hi": q.hi, "now": now, "ttl": q.ttl,
         "expires_at": expiry(now, q.ttl), "id": q.entry_id},
        "rowcount",
    )  # fmt: skip


def save_value(q: SaveValue, now: int) -> Steps:
    yield Query(
        "UPDATE botwire_entries SET kind = 0, value = %s, size = %s,"
        " version = greatest(version + 1, %s), updated_at = %s WHERE id = %s",
        (q.text, nbytes(q.text), now, now, q.entry_id),
        "rowcount",
    )


def count_writes(q: CountWrites, now: int) -> Steps:
    (writes,) = yield Query(
        "INSERT INTO botwire_quota_usage AS q (ns, day, writes) VALUES (%s, %s, %s)"
        " ON CONFLICT (ns, day) DO UPDATE SET writes = q.writes + EXCLUDED.writes"
        " RETURNING writes",
        tuple(q),
    )
    return int(writes)


def stored_bytes(q: StoredBytes, now: int) -> Steps:
    (used,) = yield Query(
        f"SELECT coalesce(sum(size), 0) FROM botwire_entries WHERE ns = %(ns)s AND {LIVE}",
        {"ns": q.ns, "now": q.now},
    )
    return int(used)


def answers(language: Callable[[], str]) -> dict[type, Callable[[Any, int], Steps]]:
    """Each question's answer, in a store whose language ``language()`` says (it is read when
    the schema is checked, after the answers are made)."""
    return {
        LockRow: lambda q, now: lock_row(q, now, language()),
        AddItems: lambda q, now: add_items(q, now, language()),
        DropItems: drop_items,
        ReadItem: read_item,
        MoveItem: move_item,
        SaveList: save_list,
        SaveValue: save_value,
        CountWrites: count_writes,
        StoredBytes: stored_bytes,
    }
