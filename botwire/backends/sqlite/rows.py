"""The embedded store's answers to the questions of the shared write logic
(:mod:`botwire.backends.common`): a key's row locked or started, list items added, dropped,
read and moved, a list or value saved, a namespace's writes counted and bytes summed. Each runs
in the write transaction (``BEGIN IMMEDIATE``) of the batch that asks."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from botwire.backends.common import (
    LIST,
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
from botwire.backends.search import chunks
from botwire.backends.sqlite.changes import NAMED

LIVE = "(expires_at IS NULL OR expires_at > ?)"
NEW_VERSION = "max(?5, (SELECT value + 1 FROM version_floor))"
"""A new key's version: the time (``?5``), or above every version deleted before."""


def list_texts(conn: sqlite3.Connection, entry_ids: list[int]) -> dict[int, str]:
    """The JSON text of each of these lists, a statement per 500 of them."""
    items: dict[int, list[str]] = {entry_id: [] for entry_id in entry_ids}
    for chunk in chunks(entry_ids, 500):
        for entry_id, value in conn.execute(
            "SELECT entry_id, value FROM list_items WHERE entry_id IN"
            f" ({','.join(['?'] * len(chunk))}) ORDER BY entry_id, seq",
            chunk,
        ):
            items[entry_id].append(value)
    return {entry_id: "[" + ",".join(values) + "]" for entry_id, values in items.items()}


def lock_row(conn: sqlite3.Connection, q: LockRow, now: int) -> tuple[Row, bool]:
    # The transaction holds the write lock already (BEGIN IMMEDIATE): nothing to lock.
    empty = fresh_row(0, q.kind)
    row = conn.execute(
        "SELECT id, kind, value, size, list_lo, list_hi, expires_at, unsearched FROM entries"
        " WHERE ns = ? AND key = ?",
        (q.ns, q.key),
    ).fetchone()
    if row is None:
        (entry_id,) = conn.execute(
            "INSERT INTO entries (ns, key, kind, value, size, version, created_at,"
            f" updated_at, list_lo, list_hi) VALUES (?1, ?2, ?3, ?4, ?6, {NEW_VERSION},"
            " ?5, ?5, ?7, ?7) RETURNING id",
            (q.ns, q.key, q.kind, empty.value, now, empty.size, empty.list_lo),
        ).fetchone()
        return empty._replace(id=entry_id), True
    if row[6] is not None and row[6] <= now:  # expired: start afresh
        if row[1] == LIST:
            conn.execute("DELETE FROM list_items WHERE entry_id = ?", (row[0],))
        conn.execute(
            "UPDATE entries SET kind = ?, value = ?, size = ?, version = max(version + 1, ?),"
            " created_at = ?, updated_at = ?, expires_at = NULL, ttl = NULL, list_lo = ?,"
            " list_hi = ?, unsearched = NULL WHERE id = ?",
            (q.kind, empty.value, empty.size, now, now, now, empty.list_lo, empty.list_lo,
             row[0]),
        )  # fmt: skip
        return empty._replace(id=row[0]), True
    return Row(*row[:6])._replace(searchable=row[7] is None), False


def add_items(conn: sqlite3.Connection, q: AddItems, now: int) -> None:
    unsearched = None if q.searchable else 1
    conn.executemany(
        "INSERT INTO list_items (entry_id, seq, value, size, unsearched) VALUES (?, ?, ?, ?, ?)",
        [(q.entry_id, q.first_seq + i, value, nbytes(value), unsearched)
         for i, value in enumerate(q.values)],
    )  # fmt: skip


def drop_items(conn: sqlite3.Connection, q: DropItems, now: int) -> tuple[int, int]:
    sizes = conn.execute(
        "DELETE FROM list_items WHERE entry_id = ? AND seq >= ? AND seq < ? RETURNING size",
        (q.entry_id, q.from_seq, q.below_seq),
    ).fetchall()
    return len(sizes), sum(size for (size,) in sizes)


def read_item(conn: sqlite3.Connection, q: ReadItem, now: int) -> str:
    (text,) = conn.execute(
        "SELECT value FROM list_items WHERE entry_id = ? AND seq = ?", (q.entry_id, q.seq)
    ).fetchone()
    return str(text)


def move_item(conn: sqlite3.Connection, q: MoveItem, now: int) -> None:
    conn.execute(
        "UPDATE list_items SET seq = ? WHERE entry_id = ? AND seq = ?",
        (q.to_seq, q.entry_id, q.from_seq),
    )


_SAVE_LIST = (
    "UPDATE entries SET kind = 1, value = NULL, size = ?1, list_lo = ?2, list_hi = ?3,"
    " version = max(version + 1, ?4), updated_at = ?4,"
    " expires_at = CASE WHEN ?6 IS NULL THEN expires_at ELSE ?5 END,"
    " ttl = coalesce(?6, ttl) {named} WHERE id = ?7"
)
_SAVE_VALUE = (
    "UPDATE entries SET kind = 0, value = ?1, size = ?2, version = max(version + 1, ?3),"
    " updated_at = ?3 {named} WHERE id = ?4"
)


def _saves(named: str) -> dict[type, Callable[[sqlite3.Connection, Any, int], Any]]:
    """The answers that save a row, which set ``named`` too."""
    save_list, save_value = _SAVE_LIST.format(named=named), _SAVE_VALUE.format(named=named)

    def list_saved(conn: sqlite3.Connection, q: SaveList, now: int) -> None:
        conn.execute(save_list, (q.size, q.lo, q.hi, now, expiry(now, q.ttl), q.ttl, q.entry_id))

    def value_saved(conn: sqlite3.Connection, q: SaveValue, now: int) -> None:
        conn.execute(save_value, (q.text, nbytes(q.text), now, q.entry_id))

    return {SaveList: list_saved, SaveValue: value_saved}


def count_writes(conn: sqlite3.Connection, q: CountWrites, now: int) -> int:
    (writes,) = conn.execute(
        "INSERT INTO quota_usage (ns, day, writes) VALUES (?, ?, ?)"
        " ON CONFLICT (ns, day) DO UPDATE SET writes = writes + excluded.writes"
        " RETURNING writes",
        q,
    ).fetchone()
    return int(writes)


def stored_bytes(conn: sqlite3.Connection, q: StoredBytes, now: int) -> int:
    (used,) = conn.execute(
        f"SELECT coalesce(sum(size), 0) FROM entries WHERE ns = ? AND {LIVE}", q
    ).fetchone()
    return int(used)


ANSWERS: dict[type, Callable[[sqlite3.Connection, Any, int], Any]] = {
    LockRow: lock_row,
    AddItems: add_items,
    DropItems: drop_items,
    ReadItem: read_item,
    MoveItem: move_item,
    **_saves(""),
    CountWrites: count_writes,
    StoredBytes: stored_bytes,
}
"""Each question's answer, by its type."""
NAMING_ANSWERS = {**ANSWERS, **_saves(f", {NAMED}")}
"""The answers for a write that is logged: the row saved names the change (see
``changes.add``)."""
