"""The PostgreSQL store's full-text search: a tsvector per value and list item, matched with a
tsquery and ranked in one statement."""

from __future__ import annotations

import json
from typing import Any

from botwire.backends.base import Search
from botwire.backends.postgres.connections import Query, Steps
from botwire.backends.search import (
    JsonFields,
    Scalar,
    conditions,
    parse_query,
    search_hits,
    search_scope,
)


class _PostgresJson(JsonFields):
    """Fields of JSON text through ``jsonb``: equality is JSON equality (``1`` equals ``1.0``,
    not ``true``)."""

    placeholder = "%s"

    def equal(self, field: str, value: Scalar) -> tuple[str, list[Any]]:
        return "((VALUE)::jsonb -> %s) = %s::jsonb", [field, json.dumps(value)]

    def compare(self, field: str, op: str, value: str | int | float) -> tuple[str, list[Any]]:
        if isinstance(value, str):
            return (
                f"(jsonb_typeof((VALUE)::jsonb -> %s) = 'string'"
                f' AND ((VALUE)::jsonb ->> %s) COLLATE "C" {op} %s)',
                [field, field, value],
            )
        return (
            f"(jsonb_typeof((VALUE)::jsonb -> %s) = 'number'"
            f" AND ((VALUE)::jsonb ->> %s)::numeric {op} %s::numeric)",
            [field, field, value],
        )


JSON = _PostgresJson()


def search(op: Search, now: int) -> Steps:
    """A search's statement: tsvector matches ranked by ``ts_rank``, or a listing."""
    query = parse_query(op.query, op.match)
    where, where_params = JSON.where(conditions(op.where) if op.where else [])
    where = where.replace("VALUE", "coalesce(li.value, e.value)")
    scope, scope_params = search_scope(op, "%s", "strpos(e.ns, '/') = 0")
    filters = ["(e.expires_at IS NULL OR e.expires_at > %s)", "(c.seq >= 0 OR e.kind = 0)",
               *scope]  # fmt: skip
    params: list[Any] = [now, *scope_params]
    if query.groups:
        text = query.tsquery()
        candidates = (
            "WITH q AS (SELECT to_tsquery('simple', %s) AS query)"
            " SELECT e.id, -1::bigint, ts_rank(e.tsv, q.query) FROM botwire_entries e, q"
            " WHERE e.tsv @@ q.query AND e.kind = 0"
            " UNION ALL SELECT i.entry_id, i.seq, ts_rank(i.tsv, q.query)"
            " FROM botwire_list_items i, q WHERE i.tsv @@ q.query"
        )
        head: list[Any] = [text]
    elif not query.listing:  # only punctuation or emoji: nothing to find
        return []
    else:  # an empty query: every key in scope (that passes the filters), newest first
        within = " AND ".join(scope)
        candidates = (
            "SELECT e.id, -1::bigint, 0.0::real FROM botwire_entries e"
            f" WHERE e.kind = 0 AND {within}"
            " UNION ALL SELECT li.entry_id, li.seq, 0.0::real FROM botwire_list_items li"
            f" JOIN botwire_entries e ON e.id = li.entry_id WHERE {within}"
        )
        head = [*scope_params, *scope_params]
    rows = yield Query(
        f"""
        WITH c(entry_id, seq, score) AS ({candidates}),
        f AS (
            SELECT c.entry_id, c.seq, c.score, e.updated_at FROM c
            JOIN botwire_entries e ON e.id = c.entry_id
            LEFT JOIN botwire_list_items li ON c.seq >= 0 AND li.entry_id = c.entry_id
                AND li.seq = c.seq
            WHERE {" AND ".join(filters)} {where}
        ),
        top AS (
            SELECT entry_id, max(score) AS best FROM f GROUP BY entry_id
            ORDER BY best DESC, max(updated_at) DESC, entry_id DESC LIMIT %s
        ),
        ranked AS (
            SELECT f.entry_id, f.seq, f.score, row_number() OVER (
                PARTITION BY f.entry_id ORDER BY f.score DESC, f.seq DESC) AS n
            FROM f JOIN top USING (entry_id)
        )
        SELECT top.entry_id, top.best, e.ns, e.key, e.updated_at, e.created_at, e.kind,
               e.value,
               e.list_lo, r.seq, li.value, e.size
        FROM top JOIN botwire_entries e ON e.id = top.entry_id
        JOIN ranked r ON r.entry_id = top.entry_id AND r.n <= %s
        LEFT JOIN botwire_list_items li ON r.seq >= 0 AND li.entry_id = r.entry_id
            AND li.seq = r.seq
        ORDER BY top.best DESC, e.updated_at DESC, top.entry_id DESC, r.n
        """,
        [*head, *params, *where_params, op.limit, op.limit],
        "all",
    )
    return search_hits(rows)
