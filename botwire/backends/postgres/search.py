"""The PostgreSQL store's full-text search: a tsvector per value and list item, whose words carry
their namespace's tag (:func:`~botwire.backends.search.ns_tag`), matched with a tsquery and
ranked in one statement."""

from __future__ import annotations

import json
from typing import Any

from botwire.backends.base import Search, prefix_upper_bound
from botwire.backends.postgres.connections import Query, Steps
from botwire.backends.search import (
    Counts,
    JsonFields,
    Scalar,
    bm25_sql,
    budget_terms,
    conditions,
    ns_tag,
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


def search(op: Search, now: int, counts: Counts) -> Steps:
    """A search: what rarity needs when not counted lately, then one statement that finds
    the documents in the namespaces' part of the index, ranks them and reads the hits."""
    query = parse_query(op.query, op.match)
    scope, scope_params = search_scope(op, "%s", "strpos(e.ns, '/') = 0")
    if query.groups:
        if op.ns is not None:
            namespaces = [op.ns]
        else:
            namespaces = [ns for (ns,) in (yield _namespaces(op.ns_prefix))]
        if not namespaces:
            return []
        tags = [ns_tag(ns) for ns in namespaces]
        markers = [f"'{tag}'" for tag in tags]
        groups = query.tsquery_groups(tags)
        if missing := counts.missing([*markers, *groups]):
            (found,) = yield _counts(missing)
            for expression, count in zip(missing, found, strict=True):
                counts.put(expression, int(count))
        weights = counts.weights(markers, groups)
        combined = (" | " if query.any else " & ").join(f"({group})" for group in groups)
        if query.any:  # each document weighs the rarity of the groups it holds
            weight = " + ".join(["CASE WHEN X.tsv @@ %s::tsquery THEN %s ELSE 0 END"] * len(groups))
            weighing = [value for pair in zip(groups, weights, strict=True) for value in pair]
        else:  # each document holds them all
            weight, weighing = "%s", [sum(weights)]
        # The query joins as a row rather than appears as a constant: the planner then looks it
        # up in the GIN index, where its estimate of a tagged word would scan the table.
        candidates: tuple[str, list[Any]] = (
            f"SELECT e.id, -1::bigint, {weight.replace('X.', 'e.')}, length(e.tsv) - 1"
            " FROM (VALUES (%s::tsquery)) q(query)"
            " JOIN botwire_entries e ON e.tsv @@ q.query WHERE e.kind = 0"
            f" UNION ALL SELECT i.entry_id, i.seq, {weight.replace('X.', 'i.')},"
            " length(i.tsv) - 1 FROM (VALUES (%s::tsquery)) q(query)"
            " JOIN botwire_list_items i ON i.tsv @@ q.query",
            [*weighing, combined, *weighing, combined],
        )
    elif not query.listing:  # only punctuation or emoji: nothing to find
        return []
    else:  # an empty query: every key in scope (that passes the filters), newest first
        within = " AND ".join(scope)
        candidates = (
            "SELECT e.id, -1::bigint, 0.0::float8, 1 FROM botwire_entries e"
            f" WHERE e.kind = 0 AND {within}"
            " UNION ALL SELECT li.entry_id, li.seq, 0.0::float8, 1 FROM botwire_list_items li"
            f" JOIN botwire_entries e ON e.id = li.entry_id WHERE {within}",
            [*scope_params, *scope_params],
        )
    where, where_params = JSON.where(conditions(op.where) if op.where else [])
    where = where.replace("VALUE", "coalesce(li.value, e.value)")
    items = ("LEFT JOIN botwire_list_items li ON c.seq >= 0 AND li.entry_id = c.entry_id"
             " AND li.seq = c.seq") if where else ""  # fmt: skip
    filters = " AND ".join(["(e.expires_at IS NULL OR e.expires_at > %s)",
                            "(c.seq >= 0 OR e.kind = 0)", *scope])  # fmt: skip
    free, allowance = budget_terms()
    score = bm25_sql("weight", "length", "avg(length) OVER ()")
    rows = yield Query(
        f"""
        WITH c(entry_id, seq, weight, length) AS ({candidates[0]}),
        f AS (
            SELECT c.entry_id, c.seq, c.weight, c.length, e.updated_at FROM c
            JOIN botwire_entries e ON e.id = c.entry_id {items}
            WHERE {filters} {where}
        ),
        r AS (SELECT entry_id, seq, {score} AS score, updated_at FROM f),
        top AS (
            SELECT entry_id, max(score) AS best, max(updated_at) AS at FROM r GROUP BY entry_id
            ORDER BY best DESC, at DESC, entry_id DESC LIMIT %s
        ),
        ranked AS (
            SELECT r.entry_id, r.seq, row_number() OVER (
                PARTITION BY r.entry_id ORDER BY r.score DESC, r.seq DESC) AS n
            FROM r JOIN top USING (entry_id)
        ),
        o AS (
            SELECT top.entry_id, top.best, r.seq, CASE WHEN r.seq >= 0 THEN octet_length(li.value)
                ELSE e.size END AS size, row_number() OVER w AS pos, sum(CASE WHEN r.seq >= 0
                THEN octet_length(li.value) ELSE e.size END) OVER w AS cum
            FROM top JOIN ranked r ON r.entry_id = top.entry_id AND r.n <= %s
            JOIN botwire_entries e ON e.id = top.entry_id
            LEFT JOIN botwire_list_items li ON r.seq >= 0 AND li.entry_id = r.entry_id
                AND li.seq = r.seq
            WINDOW w AS (ORDER BY top.best DESC, top.at DESC, top.entry_id DESC, r.n
                         ROWS UNBOUNDED PRECEDING)
        )
        SELECT e.ns, e.key, o.best, e.updated_at, e.created_at, e.kind, e.list_lo, o.seq, o.size,
            CASE WHEN %s::bigint IS NULL OR (%s AND o.pos = 1) OR o.cum <= %s::bigint
            THEN coalesce(li.value, e.value) END
        FROM o JOIN botwire_entries e ON e.id = o.entry_id
        LEFT JOIN botwire_list_items li ON o.seq >= 0 AND li.entry_id = o.entry_id
            AND li.seq = o.seq
        ORDER BY o.pos
        """,
        [*candidates[1], now, *scope_params, *where_params, op.limit, op.limit,
         allowance, free, allowance],
        "all",
    )  # fmt: skip
    return search_hits(rows)


def _namespaces(prefix: str) -> Query:
    """The namespaces that start with ``prefix`` (one index lookup each)."""
    upper = prefix_upper_bound(prefix)
    below = "" if upper is None else " AND ns < %(upper)s"
    return Query(
        "WITH RECURSIVE n(ns) AS ("
        f" SELECT min(ns) FROM botwire_entries WHERE ns >= %(prefix)s{below}"
        " UNION ALL SELECT (SELECT min(ns) FROM botwire_entries"
        f" WHERE ns > n.ns{below}) FROM n WHERE n.ns IS NOT NULL)"
        " SELECT ns FROM n WHERE ns IS NOT NULL AND strpos(ns, '/') = 0",
        {"prefix": prefix, "upper": upper},
        "all",
    )


def _counts(expressions: list[str]) -> Query:
    """How many documents match each of ``expressions`` (tsquery texts)."""
    return Query(
        "SELECT array_agg((SELECT count(*) FROM botwire_entries"
        " WHERE tsv @@ t::tsquery AND kind = 0)"
        " + (SELECT count(*) FROM botwire_list_items WHERE tsv @@ t::tsquery) ORDER BY n)"
        " FROM unnest(%s::text[]) WITH ORDINALITY AS q(t, n)",
        (expressions,),
    )
