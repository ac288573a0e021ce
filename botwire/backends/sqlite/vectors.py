"""The embedded store's vectors for recall by meaning: the ``vectors`` table (see schema
migration 9; triggers remove a vector whose value changes or goes), written after the value
or items in the same transaction, what ``reindex`` reads and writes, and how a search reads
them: from the process's copy of its namespace's vectors (a
:class:`~botwire.backends.search.matrix.Matrix`), brought up to date from
``vector_changes``, where triggers record every vector written or gone (migration 10)."""

from __future__ import annotations

import sqlite3
from typing import Any

from botwire.backends.base import Append, Embed, Search, Unembedded, Vectors
from botwire.backends.search import chunks, search_scope
from botwire.backends.search.matrix import Matrices, Matrix, numpy_present
from botwire.backends.search.meaning import Similar, query_vector

CHANGES_KEPT = 20_000
"""How many of the latest vector changes the store keeps: a copy further behind reads its
namespace's vectors again."""
CATCH_UP_MOST = 4
CATCH_UP_LEAST = 1000
"""A copy reads its namespace's vectors again rather than catch up with more changes than
one in :data:`CATCH_UP_MOST` of its documents (or :data:`CATCH_UP_LEAST`)."""


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
        " WHERE e.ns = ?1 AND e.kind = 0 AND e.unsearched IS NULL AND (e.id, -1) > (?4, ?5) AND "
        + missing.format("e.id", "-1")
        + " UNION ALL SELECT li.entry_id, li.seq, e.key, li.value FROM entries e"
        " JOIN list_items li ON li.entry_id = e.id WHERE e.ns = ?1 AND e.kind = 1"
        " AND li.unsearched IS NULL AND (li.entry_id, li.seq) > (?4, ?5) AND "
        + missing.format("li.entry_id", "li.seq")
        + ") ORDER BY 1, 2 LIMIT ?2",
        (op.ns, op.limit, op.model, *op.after),
    ).fetchall()


def embed(conn: sqlite3.Connection, op: Embed) -> int:
    """Store each unit's vector where the value (or item) still holds the text it was made
    from, and is in the search index; how many were stored."""
    stored = 0
    for entry_id, seq, text, vector in op.units:
        holds = (
            "SELECT 1 FROM entries WHERE id = ?1 AND ns = ?5 AND kind = 0 AND value = ?3"
            " AND unsearched IS NULL"
            if seq == -1
            else "SELECT 1 FROM list_items li JOIN entries e ON e.id = li.entry_id"
            " WHERE li.entry_id = ?1 AND li.seq = ?2 AND e.ns = ?5 AND li.value = ?3"
            " AND li.unsearched IS NULL"
        )
        stored += conn.execute(
            f"INSERT OR REPLACE INTO vectors SELECT ?1, ?2, ?4, ?6 WHERE EXISTS ({holds})",
            (entry_id, seq, text, op.model, op.ns, vector),
        ).rowcount
    return stored


def similar(conn: sqlite3.Connection, op: Search, matrices: Matrices | None) -> Similar:
    """How similar each document in a meaning search's scope is to its query: from the
    process's copy of the namespace's vectors, brought up to date in the search's
    transaction, or read from the store (a scope of several namespaces, no ``matrices`` or
    no numpy, or a search that reads an older snapshot than the copy)."""
    model, query = query_vector(op)
    if op.ns is None or matrices is None or not numpy_present():
        return Similar.of_rows(query, _documents(conn, op, model))
    top, floor = conn.execute(
        "SELECT coalesce(max(stamp), 0), coalesce(min(stamp), 1) FROM vector_changes"
    ).fetchone()
    with matrices.lock:
        matrix = matrices.get(op.ns, model)
        if matrix is not None and matrix.stamp > top:  # a snapshot older than the copy
            return Similar.of_rows(query, _documents(conn, op, model))
        try:
            if matrix is not None and matrix.stamp < top:
                if _caught_up(conn, op.ns, model, matrix, floor):
                    matrix.stamp = top
                    matrices.fit()  # it may have grown
                else:
                    matrix = None
            if matrix is None:
                rows = conn.execute(
                    "SELECT v.entry_id, v.seq, e.key, v.vector FROM vectors v JOIN entries e"
                    " ON e.id = v.entry_id WHERE e.ns = ? AND v.model = ?",
                    (op.ns, model),
                )
                matrix = matrices.load(op.ns, model, top, rows)
                if matrix is None:
                    return Similar.of_rows(query, [])
        except BaseException:  # stopped halfway (a deadline): the copy is read again next time
            matrices.drop(op.ns, model)
            raise
        return matrix.similar(query, op.prefix)


def _caught_up(conn: sqlite3.Connection, ns: str, model: str, matrix: Matrix, floor: int) -> bool:
    """Bring ``matrix`` up to date with the vector changes since its stamp; ``False`` where
    it must be read again (the changes it needs were trimmed, or are too many)."""
    if floor > matrix.stamp + 1:
        return False
    most = max(CATCH_UP_LEAST, len(matrix) // CATCH_UP_MOST)
    changed = conn.execute(
        "SELECT DISTINCT entry_id, seq FROM vector_changes WHERE stamp > ? LIMIT ?",
        (matrix.stamp, most + 1),
    ).fetchall()
    if len(changed) > most:
        return False
    for entry_id, seq in changed:
        matrix.drop(entry_id, seq)
    for chunk in chunks(changed, 400):
        rows = conn.execute(
            "SELECT v.entry_id, v.seq, e.key, v.vector FROM vectors v JOIN entries e"
            " ON e.id = v.entry_id WHERE (v.entry_id, v.seq) IN"
            f" (VALUES {','.join(['(?, ?)'] * len(chunk))}) AND e.ns = ? AND v.model = ?",
            [*(number for pair in chunk for number in pair), ns, model],
        )
        for entry_id, seq, key, vector in rows:
            matrix.put(entry_id, seq, key, vector)
    return True


def _documents(conn: sqlite3.Connection, op: Search, model: str) -> list[Any]:
    """``(entry_id, seq, vector)`` of every vector in the search's scope made by ``model``."""
    from botwire.backends.sqlite.search import DIALECT  # which imports this module

    p = DIALECT.params()
    scope = " AND ".join(search_scope(op, p, DIALECT.no_slash))
    return conn.execute(
        "SELECT v.entry_id, v.seq, v.vector FROM vectors v JOIN entries e"
        f" ON e.id = v.entry_id WHERE {scope} AND v.model = {p(model)}",
        p.values,
    ).fetchall()


def trim(conn: sqlite3.Connection) -> None:
    """Delete the oldest vector changes past the latest :data:`CHANGES_KEPT` (a bounded
    batch at a time; the newest always stays, so stamps only grow)."""
    conn.execute(
        "DELETE FROM vector_changes WHERE stamp IN"
        " (SELECT stamp FROM vector_changes ORDER BY stamp LIMIT 5000)"
        " AND stamp <= (SELECT max(stamp) FROM vector_changes) - ?",
        (CHANGES_KEPT,),
    )
