"""The embedded store's vectors for recall by meaning: the ``vectors`` table (see schema
migration 9; triggers remove a vector whose value changes or goes), written after the value
or items in the same transaction, and what ``reindex`` reads and writes."""

from __future__ import annotations

import sqlite3
from typing import Any

from botwire.backends.base import Append, Embed, Unembedded, Vectors


def of_value(conn: sqlite3.Connection, ns: str, key: str, vectors: Vectors) -> None:
    """Store the vector of the value just written (a value without text has none)."""
    if vectors.items[0] is not None:
        conn.execute(
            "INSERT OR REPLACE INTO vectors SELECT id, -1, ?, ? FROM entries"
            " WHERE ns = ? AND key = ?",
            (vectors.model, vectors.items[0], ns, key),
        )


def of_appended(conn: sqlite3.Connection, op: Append, vectors: Vectors) -> None:
    """Store the vectors of the items just appended: the newest, ``hi - n`` to ``hi - 1``,
    those a window kept (a first item kept may have moved among them: its text tells)."""
    count = len(op.values)
    conn.executemany(
        "INSERT OR REPLACE INTO vectors SELECT li.entry_id, li.seq, ?, ? FROM entries e"
        " JOIN list_items li ON li.entry_id = e.id AND li.seq = e.list_hi - ?"
        " WHERE e.ns = ? AND e.key = ? AND li.value = ?",
        [(vectors.model, vector, count - n, op.ns, op.key, op.values[n])
         for n, vector in enumerate(vectors.items) if vector is not None],
    )  # fmt: skip


def unembedded(conn: sqlite3.Connection, op: Unembedded) -> list[Any]:
    """A page of the values and items of ``op.ns`` without a vector of ``op.model``."""
    missing = "NOT EXISTS (SELECT 1 FROM vectors v WHERE v.entry_id = {} AND v.seq = {}"
    missing += " AND v.model = ?3)"
    return conn.execute(
        "SELECT * FROM (SELECT e.id, -1, e.key, e.value FROM entries e"
        " WHERE e.ns = ?1 AND e.kind = 0 AND (e.id, -1) > (?4, ?5) AND "
        + missing.format("e.id", "-1")
        + " UNION ALL SELECT li.entry_id, li.seq, e.key, li.value FROM entries e"
        " JOIN list_items li ON li.entry_id = e.id WHERE e.ns = ?1 AND e.kind = 1"
        " AND (li.entry_id, li.seq) > (?4, ?5) AND "
        + missing.format("li.entry_id", "li.seq")
        + ") ORDER BY 1, 2 LIMIT ?2",
        (op.ns, op.limit, op.model, *op.after),
    ).fetchall()


def embed(conn: sqlite3.Connection, op: Embed) -> int:
    """Store each unit's vector where the value (or item) still holds the text it was made
    from; how many were stored."""
    stored = 0
    for entry_id, seq, text, vector in op.units:
        holds = (
            "SELECT 1 FROM entries WHERE id = ?1 AND ns = ?5 AND kind = 0 AND value = ?3"
            if seq == -1
            else "SELECT 1 FROM list_items li JOIN entries e ON e.id = li.entry_id"
            " WHERE li.entry_id = ?1 AND li.seq = ?2 AND e.ns = ?5 AND li.value = ?3"
        )
        stored += conn.execute(
            f"INSERT OR REPLACE INTO vectors SELECT ?1, ?2, ?4, ?6 WHERE EXISTS ({holds})",
            (entry_id, seq, text, op.model, op.ns, vector),
        ).rowcount
    return stored
