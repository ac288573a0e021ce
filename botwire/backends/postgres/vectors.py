"""The PostgreSQL store's vectors for recall by meaning: columns of the rows they belong to
(``vector``, ``vector_model``: see schema migration 12), written after the value or items in
the same transaction, and what ``reindex`` reads and writes."""

from __future__ import annotations

from typing import Any

from botwire.backends.base import Append, Embed, Unembedded, Vectors
from botwire.backends.postgres.connections import Query, Steps


def of_value(ns: str, key: str, vectors: Vectors) -> Steps:
    """Store the vector of the value just written (a value without text has none)."""
    if vectors.items[0] is not None:
        yield Query(
            "UPDATE botwire_entries SET vector = %s, vector_model = %s WHERE ns = %s AND key = %s",
            (vectors.items[0], vectors.model, ns, key),
            "rowcount",
        )


def of_appended(op: Append, vectors: Vectors) -> Steps:
    """Store the vectors of the items just appended: the newest, ``hi - n`` to ``hi - 1``,
    those a window kept (a first item kept may have moved among them: its text tells)."""
    kept = [n for n, vector in enumerate(vectors.items) if vector is not None]
    yield Query(
        "UPDATE botwire_list_items li SET vector = v.vector, vector_model = %s"
        " FROM botwire_entries e, unnest(%s::bytea[], %s::bigint[], %s::text[])"
        " AS v(vector, back, value) WHERE e.ns = %s AND e.key = %s"
        " AND li.entry_id = e.id AND li.seq = e.list_hi - v.back AND li.value = v.value",
        (vectors.model, [vectors.items[n] for n in kept], [len(op.values) - n for n in kept],
         [op.values[n] for n in kept], op.ns, op.key),
        "rowcount",
    )  # fmt: skip


def unembedded(op: Unembedded) -> Steps:
    """A page of the values and items of ``op.ns`` without a vector of ``op.model`` (and
    indexed: not written with ``searchable=False``)."""
    rows = yield Query(
        "SELECT * FROM (SELECT e.id, -1::bigint AS seq, e.key, e.value FROM botwire_entries e"
        " WHERE e.ns = %(ns)s AND e.kind = 0 AND e.tsv IS NOT NULL"
        " AND (e.id, -1) > (%(id)s, %(seq)s)"
        " AND e.vector_model IS DISTINCT FROM %(model)s"
        " UNION ALL SELECT li.entry_id, li.seq, e.key, li.value FROM botwire_entries e"
        " JOIN botwire_list_items li ON li.entry_id = e.id WHERE e.ns = %(ns)s"
        " AND e.kind = 1 AND li.tsv IS NOT NULL AND (li.entry_id, li.seq) > (%(id)s, %(seq)s)"
        " AND li.vector_model IS DISTINCT FROM %(model)s) u ORDER BY 1, 2 LIMIT %(limit)s",
        {"ns": op.ns, "model": op.model, "id": op.after[0], "seq": op.after[1],
         "limit": op.limit},
        "all",
    )  # fmt: skip
    return [tuple(row) for row in rows]


def embed(op: Embed) -> Steps:
    """Store each unit's vector where the value (or item) still holds the text it was made
    from, and is in the search index; how many were stored."""
    stored = 0
    for entry_id, seq, text, vector in op.units:
        if seq == -1:
            sql = (
                "UPDATE botwire_entries SET vector = %s, vector_model = %s"
                " WHERE id = %s AND ns = %s AND kind = 0 AND value = %s AND tsv IS NOT NULL"
            )
            params: tuple[Any, ...] = (vector, op.model, entry_id, op.ns, text)
        else:
            sql = (
                "UPDATE botwire_list_items li SET vector = %s, vector_model = %s"
                " FROM botwire_entries e WHERE li.entry_id = %s AND li.seq = %s"
                " AND e.id = li.entry_id AND e.ns = %s AND li.value = %s AND li.tsv IS NOT NULL"
            )
            params = (vector, op.model, entry_id, seq, op.ns, text)
        stored += yield Query(sql, params, "rowcount")
    return stored
