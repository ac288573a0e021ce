"""The PostgreSQL store's full-text search: a tsvector per value and list item, whose words carry
their namespace's tag (:func:`~botwire.backends.search.ns_tag`), matched with a tsquery and
ranked in one statement."""

from __future__ import annotations

import json

from botwire.backends.base import Search, prefix_upper_bound
from botwire.backends.postgres.connections import Query, Steps
from botwire.backends.search import (
    Counts,
    Dialect,
    JsonFields,
    Params,
    Rank,
    Scalar,
    listing_sql,
    ns_tag,
    parse_query,
    ranked_sql,
    ranking_plan,
    search_hits,
    search_scope,
)
from botwire.backends.search.meaning import Similar, fuse, meaning_steps, pooled, query_vector
from botwire.backends.search.query import Weighed


class _PostgresJson(JsonFields):
    """Fields of JSON text through ``jsonb``: equality is JSON equality (``1`` equals ``1.0``,
    not ``true``)."""

    def equal(self, path: tuple[str, ...], value: Scalar, p: Params) -> str:
        return f"((VALUE)::jsonb #> {self._at(path, p)}) = {p(json.dumps(value))}::jsonb"

    def compare(self, path: tuple[str, ...], op: str, value: str | int | float, p: Params) -> str:
        at = self._at(path, p)
        if isinstance(value, str):
            return (
                f"(jsonb_typeof((VALUE)::jsonb #> {at}) = 'string'"
                f' AND ((VALUE)::jsonb #>> {at}) COLLATE "C" {op} {p(value)})'
            )
        return (
            f"(jsonb_typeof((VALUE)::jsonb #> {at}) = 'number'"
            f" AND ((VALUE)::jsonb #>> {at})::numeric {op} {p(value)}::numeric)"
        )

    @staticmethod
    def _at(path: tuple[str, ...], p: Params) -> str:
        """The field's path, as a ``text[]`` parameter."""
        return f"{p(list(path))}::text[]"


DIALECT = Dialect(
    entries="botwire_entries",
    items="botwire_list_items",
    item_size="octet_length(li.value)",
    power="power",
    no_slash="strpos(e.ns, '/') = 0",
    json=_PostgresJson(),
    style="%({})s",
    no_digest="NULL::text",
    scored="SELECT (x ->> 0)::bigint, (x ->> 1)::bigint, (x ->> 2)::float8"
    " FROM jsonb_array_elements({}::jsonb) x",
    indexed="VALUE.tsv IS NOT NULL",
)


def search(op: Search, now: int, counts: Counts, language: str) -> Steps:
    """A search in a store of ``language``: what rarity needs when not counted lately, then
    one statement that finds the documents in the namespaces' part of the index, ranks them
    and reads the hits."""
    if op.mode == "auto":  # by both where the store has an embedder (it gave a vector)
        op = op._replace(mode=None if op.vectors is None else "hybrid")
    if op.mode == "meaning":
        rows, _ = yield from _by_meaning(op, now)
        return search_hits(rows, op.context > 0)
    if op.mode == "hybrid":
        pool = pooled(op)
        words = yield from search(pool._replace(mode=None), now, counts, language)
        rows, spread = yield from _by_meaning(pool, now)
        return fuse(words, search_hits(rows, op.context > 0), spread, op.limit, op.weight)
    query = parse_query(op.query, op.match)
    p = DIALECT.params()
    if query.groups:
        if op.ns is not None:
            namespaces = [op.ns]
        else:
            namespaces = [ns for (ns,) in (yield _namespaces(op.ns_prefix))]
        if not namespaces:
            return []
        tags = [ns_tag(ns) for ns in namespaces]
        markers = [f"'{tag}'" for tag in tags]
        groups = query.tsquery_groups(tags, language)
        # The search's own counts (see Counts.take), those not counted lately counted now.
        mine, missing = counts.take([Counts.lengths(marker) for marker in markers] + groups)
        if unknown := [marker for marker in markers if Counts.lengths(marker) in missing]:
            lengths: dict[str, dict[int, int]] = {marker: {} for marker in unknown}
            for number, length, docs in (yield _lengths(unknown)):
                lengths[unknown[number - 1]][length] = docs
            for marker, found in lengths.items():
                counts.put(Counts.lengths(marker), found)
                mine.put(Counts.lengths(marker), found)
        for marker in markers:
            mine.put(marker, sum(mine[Counts.lengths(marker)].values()))
        if unknown := [expression for expression in missing if expression in groups]:
            (found,) = yield _counts(unknown)
            for expression, count in zip(unknown, found, strict=True):
                counts.put(expression, int(count))
                mine.put(expression, int(count))
        counts = mine
        weighed = query.weighed(groups, counts.rarities(markers, groups))
        average = counts.average_length(markers)
        plan = ranking_plan(op, weighed, counts, markers, tags)
        rank = next(plan)
        while True:
            try:
                rank = plan.send((yield _ranking(op, now, weighed, average, rank)))
            except StopIteration as done:
                return search_hits(done.value, op.context > 0)
    if query.listing:  # an empty query: every key in scope, newest first
        listing = listing_sql(DIALECT, p, op, now)
        sql = ranked_sql(DIALECT, p, op, now, listing, filtered=True)
    else:  # only punctuation or emoji: nothing to find
        return []
    rows = yield Query(sql, p.values, "all")
    return search_hits(rows, op.context > 0)


def _ranking(
    op: Search, now: int, weighed: list[Weighed], average_length: float, rank: Rank
) -> Query:
    """The statement that ranks a search's matches (:func:`ranked_sql`) as ``rank`` asks."""
    p = DIALECT.params()
    finding = " | " if op.match == "any" else " & "  # a document holds one group, or all
    combined = telling = finding.join(f"({g.expression})" for g in weighed)
    if op.match == "any":  # each document weighs the rarity of the groups it holds
        weight = " + ".join(
            f"CASE WHEN X.tsv @@ {p(g.expression)}::tsquery THEN {p(g.weight)}::float8 ELSE 0 END"
            for g in weighed
        )
        telling = " | ".join(f"({g.expression})" for g in weighed if g.telling)
        tier = f"CASE WHEN X.tsv @@ {p(telling)}::tsquery THEN 1 ELSE 0 END"
    else:  # each document holds them all
        weight, tier = f"{p(sum(g.weight for g in weighed))}::float8", "1"
    within = None if rank.within is None else " | ".join(f"'{t}'" for t in rank.within)
    if rank.tier == 1:  # documents that hold a telling word, cut by length
        found = p(telling if within is None else f"({telling}) & ({within})")
    elif within is None and not rank.rarest:
        found = p(combined)
    else:  # those of common words only: of the rarest, or of these lengths
        common = " | ".join(f"({g.expression})" for g in weighed if not g.telling)
        ways = [f"({telling})", *(f"({g.expression})" for g in rank.rarest or ())]
        if within is not None:
            ways.append(f"(({common}) & ({within}))")
        found = p(" | ".join(ways))
    # The query joins as a row rather than appears as a constant: the planner then looks it
    # up in the GIN index, where its estimate of a tagged word would scan the table.
    candidates = (
        f"SELECT e.id, -1::bigint, {weight.replace('X.', 'e.')}, length(e.tsv) - 2, e.digest,"
        f" {tier.replace('X.', 'e.')}"
        f" FROM (VALUES ({found}::tsquery)) q(query)"
        " JOIN botwire_entries e ON e.tsv @@ q.query WHERE e.kind = 0"
        f" UNION ALL SELECT i.entry_id, i.seq, {weight.replace('X.', 'i.')},"
        f" length(i.tsv) - 2, i.digest, {tier.replace('X.', 'i.')}"
        f" FROM (VALUES ({found}::tsquery)) q(query)"
        " JOIN botwire_list_items i ON i.tsv @@ q.query"
    )
    if rank.lists:  # UNION: an item found both ways once
        pairs = ", ".join(f"({p(ns)}, {p(key)})" for ns, key in sorted(rank.lists))
        candidates = (
            f"{candidates} UNION SELECT i.entry_id, i.seq, {weight.replace('X.', 'i.')},"
            f" length(i.tsv) - 2, i.digest, {tier.replace('X.', 'i.')}"
            " FROM botwire_entries e JOIN botwire_list_items i ON i.entry_id = e.id"
            f" WHERE (e.ns, e.key) IN (VALUES {pairs}) AND i.tsv @@ {p(combined)}::tsquery"
        )
    sql = ranked_sql(DIALECT, p, op, now, candidates, average_length=average_length)
    return Query(sql, p.values, "all")


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


def _lengths(markers: list[str]) -> Query:
    """How many documents of each length (distinct terms) the namespaces of ``markers``
    (tsquery texts) hold: rows of the marker's number (from 1), a length, and a count."""
    return Query(
        "SELECT q.n, length(d.tsv) - 2, count(*) FROM unnest(%s::text[]) WITH ORDINALITY"
        " AS q(t, n), LATERAL (SELECT tsv FROM botwire_entries WHERE tsv @@ q.t::tsquery"
        " AND kind = 0 UNION ALL SELECT tsv FROM botwire_list_items WHERE tsv @@ q.t::tsquery)"
        " d GROUP BY 1, 2",
        (markers,),
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


def _by_meaning(op: Search, now: int) -> Steps:
    """The ranked rows of a meaning search and the :class:`Spread` of its similarities
    (:func:`meaning_steps`), from the vectors of the values and list items in its scope."""
    model, query = query_vector(op)
    p = DIALECT.params()
    scope = " AND ".join(search_scope(op, p, DIALECT.no_slash))
    documents = (
        f"SELECT e.id, -1, e.vector FROM botwire_entries e WHERE {scope}"
        f" AND e.vector_model = {p(model)}"
        " UNION ALL SELECT li.entry_id, li.seq, li.vector FROM botwire_list_items li"
        f" JOIN botwire_entries e ON e.id = li.entry_id WHERE {scope}"
        f" AND li.vector_model = {p(model)}"
    )
    similar = Similar.of_rows(query, (yield Query(documents, p.values, "all")))
    steps = meaning_steps(DIALECT, op, now, similar)
    statement = next(steps)
    while True:
        rows = yield Query(statement[0], statement[1], "all")
        try:
            statement = steps.send(rows)
        except StopIteration as done:
            return done.value, similar.spread()
