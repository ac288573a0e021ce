"""The embedded store's full-text index (FTS5): catching it up with what writes noted, and
ranked queries over it.

Each document is a row of ``search_fts`` whose words carry its namespace's tag
(:func:`~botwire.backends.search.ns_tag`), so a search reads its own namespace's part of the
index only; its length (distinct words) is a column beside it. A value's document has its
entry's id as rowid, a list item's minus its ``search_docs`` id.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from botwire.backends.base import Search, SearchHit, prefix_upper_bound
from botwire.backends.search import (
    SEARCH_OFF,
    Counts,
    JsonFields,
    Scalar,
    bm25_sql,
    budget_terms,
    chunks,
    conditions,
    fts_document,
    ns_tag,
    parse_query,
    search_hits,
    search_scope,
)
from botwire.errors import InvalidRequest

SEARCH_BATCH = 2000
"""Most documents one catch-up during writes indexes."""


class SearchBehind(Exception):
    """A search read a snapshot in which writes had noted documents not indexed yet."""


class _SQLiteJson(JsonFields):
    """Fields of JSON text through SQLite's JSON functions (``json_type`` tells ``true`` from
    ``1``, and ``integer``/``real`` from ``text``)."""

    def equal(self, field: str, value: Scalar) -> tuple[str, list[Any]]:
        path = f'$."{field}"'
        if value is None or isinstance(value, bool):
            return "json_type(VALUE, ?) = ?", [path, json.dumps(value)]
        kinds = "('text')" if isinstance(value, str) else "('integer', 'real')"
        return f"(json_type(VALUE, ?) IN {kinds} AND json_extract(VALUE, ?) = ?)", [
            path, path, value]  # fmt: skip

    def compare(self, field: str, op: str, value: str | int | float) -> tuple[str, list[Any]]:
        path = f'$."{field}"'
        kinds = "('text')" if isinstance(value, str) else "('integer', 'real')"
        return f"(json_type(VALUE, ?) IN {kinds} AND json_extract(VALUE, ?) {op} ?)", [
            path, path, value]  # fmt: skip

    def one_of(self, field: str, values: list[Scalar]) -> tuple[str, list[Any]]:
        # IN lists by JSON type rather than one OR per value: SQLite caps how deep an
        # expression nests, and a thousand ORs pass it.
        path = f'$."{field}"'
        texts = [v for v in values if isinstance(v, str)]
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        parts: list[str] = []
        params: list[Any] = []
        for found, kinds in ((texts, "('text')"), (numbers, "('integer', 'real')")):
            if found:
                marks = ",".join("?" * len(found))
                parts.append(
                    f"(json_type(VALUE, ?) IN {kinds} AND json_extract(VALUE, ?) IN ({marks}))"
                )
                params += [path, path, *found]
        for other in {json.dumps(v) for v in values if v is None or isinstance(v, bool)}:
            parts.append("json_type(VALUE, ?) = ?")
            params += [path, other]
        return "(" + " OR ".join(parts) + ")", params


JSON = _SQLiteJson()


def catch_up(conn: sqlite3.Connection, limit: int | None) -> int:
    """Bring the documents that writes noted in ``search_pending`` (the oldest ``limit``
    notes, or all) into the FTS5 index, in the current write transaction; return how many
    notes were handled.

    Each noted document is reconciled with what the store holds now, so the order and the
    number of writes that noted it do not matter. A value's document has the entry's id as
    its rowid; a list item's has minus its ``search_docs`` id.
    """
    if limit is None:  # everything: notes this adds (entry ids in use again) too
        handled = 0
        while indexed := catch_up(conn, SEARCH_BATCH):
            handled += indexed
        return handled
    sql = "SELECT rowid, entry_id, seq FROM search_pending ORDER BY rowid LIMIT ?"
    notes = conn.execute(sql, (limit,)).fetchall()
    if not notes:
        return 0
    gone = sorted({(entry_id,) for _, entry_id, seq in notes if seq == -2})
    conn.executemany("DELETE FROM search_fts WHERE rowid = ?", gone)
    conn.executemany(
        "DELETE FROM search_fts WHERE rowid IN (SELECT -id FROM search_docs WHERE entry_id = ?)",
        gone,
    )
    conn.executemany("DELETE FROM search_docs WHERE entry_id = ?", gone)
    # An entry id freed by a delete may be in use again: note the new entry's documents.
    conn.executemany(
        "INSERT INTO search_pending SELECT id, -1 FROM entries WHERE id = ? AND kind = 0",
        gone,
    )
    conn.executemany(
        "INSERT INTO search_pending SELECT entry_id, seq FROM list_items WHERE entry_id = ?",
        gone,
    )
    docs = sorted({(entry_id, seq) for _, entry_id, seq in notes if seq != -2})
    texts = documents(conn, docs)
    values = [entry_id for entry_id, seq in docs if seq == -1]
    rows = [(entry_id, *texts[(entry_id, -1)]) for entry_id in values
            if (entry_id, -1) in texts]  # fmt: skip
    conn.executemany(
        "DELETE FROM search_fts WHERE rowid = ?",
        [(entry_id,) for entry_id in values if (entry_id, -1) not in texts],
    )
    items = [doc for doc in docs if doc[1] >= 0]
    known = dict(
        ((entry_id, seq), doc_id)
        for chunk in chunks(items, 400)
        for entry_id, seq, doc_id in conn.execute(
            "SELECT entry_id, seq, id FROM search_docs WHERE (entry_id, seq) IN "
            f"(VALUES {','.join(['(?, ?)'] * len(chunk))})",
            [number for doc in chunk for number in doc],
        )
    )
    gone_items = [doc_id for doc, doc_id in known.items() if doc not in texts]
    conn.executemany("DELETE FROM search_fts WHERE rowid = ?", [(-i,) for i in gone_items])
    conn.executemany("DELETE FROM search_docs WHERE id = ?", [(i,) for i in gone_items])
    (next_id,) = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM search_docs").fetchone()
    new = []
    for doc in items:
        if doc not in texts:
            continue
        doc_id = known.get(doc)
        if doc_id is None:
            doc_id, next_id = next_id, next_id + 1
            new.append((doc_id, *doc))
        rows.append((-doc_id, *texts[doc]))
    conn.executemany("INSERT INTO search_docs (id, entry_id, seq) VALUES (?, ?, ?)", new)
    conn.executemany(
        "INSERT OR REPLACE INTO search_fts (rowid, doc, length) VALUES (?, ?, ?)", rows
    )
    conn.execute("DELETE FROM search_pending WHERE rowid <= ?", (notes[-1][0],))
    return len(notes)


def documents(
    conn: sqlite3.Connection, docs: list[tuple[int, int]]
) -> dict[tuple[int, int], tuple[str, int]]:
    """The indexed text and length of each document that exists now."""
    found: dict[tuple[int, int], tuple[str, int]] = {}
    values = [entry_id for entry_id, seq in docs if seq == -1]
    for chunk in chunks(values, 500):
        for entry_id, ns, key, value in conn.execute(
            "SELECT id, ns, key, value FROM entries WHERE kind = 0 AND id IN "
            f"({','.join(['?'] * len(chunk))})",
            chunk,
        ):
            if (indexed := fts_document(ns, key, value)) is not None:
                found[(entry_id, -1)] = indexed
    items = [doc for doc in docs if doc[1] >= 0]
    for chunk in chunks(items, 400):
        for entry_id, seq, ns, key, value in conn.execute(
            "SELECT i.entry_id, i.seq, e.ns, e.key, i.value FROM list_items i"
            " JOIN entries e ON e.id = i.entry_id WHERE (i.entry_id, i.seq) IN"
            f" (VALUES {','.join(['(?, ?)'] * len(chunk))})",
            [number for doc in chunk for number in doc],
        ):
            if (indexed := fts_document(ns, key, value)) is not None:
                found[(entry_id, seq)] = indexed
    return found


def search(conn: sqlite3.Connection, op: Search, now: int, counts: Counts) -> list[SearchHit]:
    """Run a search in the current transaction (see :class:`SearchBehind`); ``counts`` keeps
    what rarity needs (how many documents a namespace holds, and hold a word) between
    searches."""
    (enabled,) = conn.execute("SELECT enabled FROM search_state").fetchone()
    if not enabled:
        raise InvalidRequest(SEARCH_OFF)
    query = parse_query(op.query, op.match)
    if query.groups and conn.execute("SELECT 1 FROM search_pending LIMIT 1").fetchone():
        raise SearchBehind  # the index must hold every write first (a listing reads none)
    scope, scope_params = search_scope(op, "?", "instr(e.ns, '/') = 0")
    if query.groups:
        namespaces = [op.ns] if op.ns is not None else _namespaces(conn, op.ns_prefix)
        if not namespaces:
            return []
        tags = [ns_tag(ns) for ns in namespaces]
        markers = [f'"{tag}"' for tag in tags]
        groups = query.fts5_groups(tags)
        for expression in counts.missing([*markers, *groups]):
            (count,) = conn.execute(f"SELECT count(*) FROM {_MATCH}", (expression,)).fetchone()
            counts.put(expression, count)
        weights = counts.weights(markers, groups)
        documents = "LEFT JOIN search_docs d ON m.rowid < 0 AND d.id = -m.rowid"  # a list item's
        if query.any:  # each document weighs the rarity of the groups it holds
            matched = " UNION ALL ".join([f"SELECT rowid, ? AS weight, length FROM {_MATCH}"]
                                         * len(groups))  # fmt: skip
            candidates = (
                "SELECT coalesce(d.entry_id, m.rowid), coalesce(d.seq, -1), sum(m.weight),"
                f" max(m.length) FROM ({matched}) m {documents} GROUP BY m.rowid",
                [value for pair in zip(weights, groups, strict=True) for value in pair],
            )
        else:  # each document holds them all
            candidates = (
                "SELECT coalesce(d.entry_id, m.rowid), coalesce(d.seq, -1), ?, m.length"
                f" FROM (SELECT rowid, length FROM {_MATCH}) m {documents}",
                [sum(weights), " AND ".join(f"({group})" for group in groups)],
            )
        return ranked(conn, op, now, candidates, scope, scope_params)
    if not query.listing:  # only punctuation or emoji: nothing to find
        return []
    within = " AND ".join(scope)
    listing = (  # an empty query: every key in scope, newest first
        f"SELECT e.id, -1, 0.0, 1 FROM entries e WHERE e.kind = 0 AND {within}"
        " UNION ALL SELECT li.entry_id, li.seq, 0.0, 1 FROM list_items li"
        f" JOIN entries e ON e.id = li.entry_id WHERE {within}"
    )
    return ranked(conn, op, now, (listing, [*scope_params, *scope_params]), scope, scope_params)


_MATCH = "search_fts WHERE search_fts MATCH ?"


def _namespaces(conn: sqlite3.Connection, prefix: str) -> list[str]:
    """The namespaces that start with ``prefix`` (one index lookup each)."""
    upper = prefix_upper_bound(prefix)
    below = "" if upper is None else " AND ns < ?2"
    rows = conn.execute(
        "WITH RECURSIVE n(ns) AS ("
        f" SELECT min(ns) FROM entries WHERE ns >= ?1{below}"
        f" UNION ALL SELECT (SELECT min(ns) FROM entries WHERE ns > n.ns{below})"
        " FROM n WHERE n.ns IS NOT NULL)"
        " SELECT ns FROM n WHERE ns IS NOT NULL AND instr(ns, '/') = 0",
        [prefix] if upper is None else [prefix, upper],
    ).fetchall()
    return [ns for (ns,) in rows]


def ranked(
    conn: sqlite3.Connection,
    op: Search,
    now: int,
    candidates: tuple[str, list[Any]],
    scope: list[str],
    scope_params: list[Any],
) -> list[SearchHit]:
    """The keys among ``candidates`` (SQL for documents: ``entry_id, seq, weight, length``)
    that pass the filters, best first, each with its best items, and their values as far as
    the read budget allows."""
    where, where_params = JSON.where(conditions(op.where) if op.where else [])
    where = where.replace("VALUE", "coalesce(li.value, e.value)")
    items = ("LEFT JOIN list_items li ON c.seq >= 0 AND li.entry_id = c.entry_id"
             " AND li.seq = c.seq") if where else ""  # fmt: skip
    filters = " AND ".join(["(e.expires_at IS NULL OR e.expires_at > ?)",
                            "(c.seq >= 0 OR e.kind = 0)", *scope])  # fmt: skip
    free, allowance = budget_terms()
    score = bm25_sql("weight", "length", "avg(length) OVER ()")
    rows = conn.execute(
        f"""
        WITH c(entry_id, seq, weight, length) AS ({candidates[0]}),
        f AS (
            SELECT c.entry_id, c.seq, c.weight, c.length, e.updated_at FROM c
            JOIN entries e ON e.id = c.entry_id {items}
            WHERE {filters} {where}
        ),
        r AS (SELECT entry_id, seq, {score} AS score, updated_at FROM f),
        top AS (
            SELECT entry_id, max(score) AS best, max(updated_at) AS at FROM r GROUP BY entry_id
            ORDER BY best DESC, at DESC, entry_id DESC LIMIT ?
        ),
        ranked AS (
            SELECT r.entry_id, r.seq, row_number() OVER (
                PARTITION BY r.entry_id ORDER BY r.score DESC, r.seq DESC) AS n
            FROM r JOIN top USING (entry_id)
        ),
        o AS (
            SELECT top.entry_id, top.best, r.seq, CASE WHEN r.seq >= 0 THEN li.size
                ELSE e.size END AS size, row_number() OVER w AS pos, sum(CASE WHEN r.seq >= 0
                THEN li.size ELSE e.size END) OVER w AS cum
            FROM top JOIN ranked r ON r.entry_id = top.entry_id AND r.n <= ?
            JOIN entries e ON e.id = top.entry_id
            LEFT JOIN list_items li ON r.seq >= 0 AND li.entry_id = r.entry_id AND li.seq = r.seq
            WINDOW w AS (ORDER BY top.best DESC, top.at DESC, top.entry_id DESC, r.n
                         ROWS UNBOUNDED PRECEDING)
        )
        SELECT e.ns, e.key, o.best, e.updated_at, e.created_at, e.kind, e.list_lo, o.seq, o.size,
            CASE WHEN ? IS NULL OR (? AND o.pos = 1) OR o.cum <= ?
            THEN coalesce(li.value, e.value) END
        FROM o JOIN entries e ON e.id = o.entry_id
        LEFT JOIN list_items li ON o.seq >= 0 AND li.entry_id = o.entry_id AND li.seq = o.seq
        ORDER BY o.pos
        """,
        [*candidates[1], now, *scope_params, *where_params, op.limit, op.limit,
         allowance, free, allowance],
    ).fetchall()  # fmt: skip
    return search_hits(rows)
