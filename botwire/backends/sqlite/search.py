"""The embedded store's full-text index (FTS5): catching it up with what writes noted, and
ranked queries over it."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

from botwire.backends.base import Search, SearchHit
from botwire.backends.search import (
    SEARCH_OFF,
    JsonFields,
    Scalar,
    conditions,
    indexed_text,
    parse_query,
    search_hits,
    search_scope,
)
from botwire.errors import InvalidRequest

SEARCH_BATCH = 2000
"""Most documents one catch-up during writes indexes."""


class SearchBehind(Exception):
    """A search read a snapshot in which writes had noted documents not indexed yet."""


def documents_of(matches: list[tuple[int, float]]) -> tuple[str, list[Any]]:
    """SQL for the documents that FTS5 matched (rowids with scores): ``(entry_id, seq,
    score)``, with its parameters."""
    values = ",".join(["(?, ?)"] * len(matches))
    return (
        f"SELECT coalesce(d.entry_id, m.rowid), coalesce(d.seq, -1), m.score"
        f" FROM (SELECT column1 AS rowid, column2 AS score FROM (VALUES {values})) m"
        " LEFT JOIN search_docs d ON m.rowid < 0 AND d.id = -m.rowid",
        [number for match in matches for number in match],
    )


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


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
    conn.executemany("INSERT OR REPLACE INTO search_fts (rowid, doc) VALUES (?, ?)", rows)
    conn.execute("DELETE FROM search_pending WHERE rowid <= ?", (notes[-1][0],))
    return len(notes)


def documents(
    conn: sqlite3.Connection, docs: list[tuple[int, int]]
) -> dict[tuple[int, int], tuple[str]]:
    """The text of each document that exists now (as a one-item tuple, for SQL)."""
    found: dict[tuple[int, int], tuple[str]] = {}
    values = [entry_id for entry_id, seq in docs if seq == -1]
    for chunk in chunks(values, 500):
        for entry_id, ns, key, value in conn.execute(
            "SELECT id, ns, key, value FROM entries WHERE kind = 0 AND id IN "
            f"({','.join(['?'] * len(chunk))})",
            chunk,
        ):
            if (text := indexed_text(ns, key, value)) is not None:
                found[(entry_id, -1)] = (text,)
    items = [doc for doc in docs if doc[1] >= 0]
    for chunk in chunks(items, 400):
        for entry_id, seq, ns, key, value in conn.execute(
            "SELECT i.entry_id, i.seq, e.ns, e.key, i.value FROM list_items i"
            " JOIN entries e ON e.id = i.entry_id WHERE (i.entry_id, i.seq) IN"
            f" (VALUES {','.join(['(?, ?)'] * len(chunk))})",
            [number for doc in chunk for number in doc],
        ):
            if (text := indexed_text(ns, key, value)) is not None:
                found[(entry_id, seq)] = (text,)
    return found


def search(conn: sqlite3.Connection, op: Search, now: int) -> list[SearchHit]:
    """Run a search in the current transaction (see :class:`SearchBehind`)."""
    (enabled,) = conn.execute("SELECT enabled FROM search_state").fetchone()
    if not enabled:
        raise InvalidRequest(SEARCH_OFF)
    query = parse_query(op.query, op.match)
    if query.groups and conn.execute("SELECT 1 FROM search_pending LIMIT 1").fetchone():
        raise SearchBehind  # the index must hold every write first (a listing reads none)
    where, where_params = JSON.where(conditions(op.where) if op.where else [])
    where = where.replace("VALUE", "coalesce(li.value, e.value)")
    scope, scope_params = search_scope(op, "?", "instr(e.ns, '/') = 0")
    filters = ["(e.expires_at IS NULL OR e.expires_at > ?)", "(c.seq >= 0 OR e.kind = 0)",
               *scope]  # fmt: skip
    params: list[Any] = [now, *scope_params]
    if query.groups:
        match = query.fts5()
        # FTS5 finds its best documents quickly (ORDER BY rank LIMIT): join and group only
        # those; when there are more, and filters or a long list leave too few keys,
        # search them all.
        cap = op.limit * 5 + 50
        matched = "SELECT rowid, -rank AS score FROM search_fts WHERE search_fts MATCH ?"
        best = conn.execute(f"{matched} ORDER BY rank LIMIT ?", (match, cap + 1)).fetchall()
        if not best:
            return []
        if len(best) <= cap:  # every match is here
            return ranked(conn, op, documents_of(best), filters, params, where,
                                where_params)  # fmt: skip
        hits = ranked(conn, op, documents_of(best[:cap]), filters, params, where, where_params)
        if len(hits) >= op.limit:
            return hits
        everything = (f"SELECT coalesce(d.entry_id, m.rowid), coalesce(d.seq, -1), m.score"
                      f" FROM ({matched}) m LEFT JOIN search_docs d"
                      " ON m.rowid < 0 AND d.id = -m.rowid", [match])  # fmt: skip
        return ranked(conn, op, everything, filters, params, where, where_params)
    if not query.listing:  # only punctuation or emoji: nothing to find
        return []
    within = " AND ".join(scope)
    candidates: tuple[str, list[Any]] = (  # an empty query: every key in scope, newest first
        f"SELECT e.id, -1, 0.0 FROM entries e WHERE e.kind = 0 AND {within}"
        " UNION ALL SELECT li.entry_id, li.seq, 0.0 FROM list_items li"
        f" JOIN entries e ON e.id = li.entry_id WHERE {within}",
        [*scope_params, *scope_params],
    )
    return ranked(conn, op, candidates, filters, params, where, where_params)


def ranked(
    conn: sqlite3.Connection,
    op: Search,
    candidates: tuple[str, list[Any]],
    filters: list[str],
    params: list[Any],
    where: str,
    where_params: list[Any],
) -> list[SearchHit]:
    """The keys among ``candidates`` (SQL for documents with scores, and its parameters)
    that pass the filters, best first, each with its best items."""
    rows = conn.execute(
        f"""
        WITH c(entry_id, seq, score) AS ({candidates[0]}),
        f AS (
            SELECT c.entry_id, c.seq, c.score, e.updated_at FROM c
            JOIN entries e ON e.id = c.entry_id
            LEFT JOIN list_items li ON c.seq >= 0 AND li.entry_id = c.entry_id
                AND li.seq = c.seq
            WHERE {" AND ".join(filters)} {where}
        ),
        top AS (
            SELECT entry_id, max(score) AS best FROM f GROUP BY entry_id
            ORDER BY best DESC, max(updated_at) DESC, entry_id DESC LIMIT ?
        ),
        ranked AS (
            SELECT f.entry_id, f.seq, f.score, row_number() OVER (
                PARTITION BY f.entry_id ORDER BY f.score DESC, f.seq DESC) AS n
            FROM f JOIN top USING (entry_id)
        )
        SELECT top.entry_id, top.best, e.ns, e.key, e.updated_at, e.created_at, e.kind,
               e.value,
               e.list_lo, r.seq, li.value, e.size
        FROM top JOIN entries e ON e.id = top.entry_id
        JOIN ranked r ON r.entry_id = top.entry_id AND r.n <= ?
        LEFT JOIN list_items li ON r.seq >= 0 AND li.entry_id = r.entry_id AND li.seq = r.seq
        ORDER BY top.best DESC, e.updated_at DESC, top.entry_id DESC, r.n
        """,
        [*candidates[1], *params, *where_params, op.limit, op.limit],
    ).fetchall()
    return search_hits(rows)
