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
    Dialect,
    JsonFields,
    Params,
    Rank,
    Scalar,
    chunks,
    fts_document,
    length_token,
    listing_sql,
    ns_tag,
    parse_query,
    ranked_sql,
    ranking_plan,
    search_hits,
)
from botwire.backends.search.matrix import Matrices
from botwire.backends.search.meaning import Spread, fuse, meaning_steps, pooled
from botwire.backends.search.query import Weighed
from botwire.backends.sqlite import vectors
from botwire.errors import InvalidRequest

SEARCH_BATCH = 2000
"""Most documents one catch-up during writes indexes."""


class SearchBehind(Exception):
    """A search read a snapshot in which writes had noted documents not indexed yet."""


class _SQLiteJson(JsonFields):
    """Fields of JSON text through SQLite's JSON functions: ``json_extract`` reads the field
    (``true`` as ``1``, and a string as text, which SQLite orders after every number), then
    ``json_type`` tells ``true`` from ``1`` and ``integer``/``real`` from ``text``, for the
    values that passed (the cheaper test first)."""

    def equal(self, path: tuple[str, ...], value: Scalar, p: Params) -> str:
        at = self._at(path, p)
        if value is None or isinstance(value, bool):
            return f"json_type(VALUE, {at}) = {p(json.dumps(value))}"
        kinds = "('text')" if isinstance(value, str) else "('integer', 'real')"
        return f"(json_extract(VALUE, {at}) = {p(value)} AND json_type(VALUE, {at}) IN {kinds})"

    def compare(self, path: tuple[str, ...], op: str, value: str | int | float, p: Params) -> str:
        at = self._at(path, p)
        kinds = "('text')" if isinstance(value, str) else "('integer', 'real')"
        return f"(json_extract(VALUE, {at}) {op} {p(value)} AND json_type(VALUE, {at}) IN {kinds})"

    def one_of(self, path: tuple[str, ...], values: list[Scalar], p: Params) -> str:
        # IN lists by JSON type rather than one OR per value: SQLite caps how deep an
        # expression nests, and a thousand ORs pass it.
        at = self._at(path, p)
        texts = [v for v in values if isinstance(v, str)]
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        parts: list[str] = []
        for found, kinds in ((texts, "('text')"), (numbers, "('integer', 'real')")):
            if found:
                marks = ", ".join(p(v) for v in found)
                found_sql = f"json_extract(VALUE, {at}) IN ({marks})"
                parts.append(f"({found_sql} AND json_type(VALUE, {at}) IN {kinds})")
        others = sorted({json.dumps(v) for v in values if v is None or isinstance(v, bool)})
        if others:
            parts.append(f"json_type(VALUE, {at}) IN ({', '.join(p(o) for o in others)})")
        return "(" + " OR ".join(parts) + ")"

    @staticmethod
    def _at(path: tuple[str, ...], p: Params) -> str:
        """The field's JSON path, as a parameter (``$."home"."city"``)."""
        return p("$" + "".join(f'."{name}"' for name in path))


DIALECT = Dialect(
    entries="entries",
    items="list_items",
    item_size="li.size",
    power="pow",
    no_slash="instr(e.ns, '/') = 0",
    json=_SQLiteJson(),
    style=":{}",
    no_digest="NULL",
    scored="SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each({})",
    indexed="VALUE.unsearched IS NULL",
)


_LOGGED_VALUES = (
    "INSERT INTO search_queue SELECT e.id, -1 FROM change_log c"
    " JOIN entries e ON e.ns = c.ns AND e.key = c.key"
    " WHERE c.seq > ?1 AND c.seq <= ?2 AND e.kind = 0 AND instr(e.ns, '/') = 0"
    " AND (SELECT enabled FROM search_state)"
)
"""Note the values of the keys that the log's changes after ``?1``, up to ``?2``, changed: a
logged set or incr notes its document through its change (schema migration 12), which a
later change of the key may have replaced in the log (``history_versions``)."""

BEHIND = (
    "SELECT EXISTS (SELECT 1 FROM search_queue)"
    " OR (SELECT coalesce(max(seq), 0) FROM change_log) > (SELECT logged_upto FROM search_state)"
)
"""Whether writes noted documents that the index does not hold yet."""


def catch_up(conn: sqlite3.Connection, limit: int | None) -> int:
    """Bring the documents that writes noted (the oldest ``limit`` notes, or all) into the
    FTS5 index, in the current write transaction; return how many notes were handled.

    Writes note documents in ``search_queue`` (triggers), and a logged write of a value in
    the log: the index takes up the log's changes after ``search_state.logged_upto`` as notes
    of the queue. Each noted document is reconciled with what the store holds now, so the
    order and the number of writes that noted it do not matter. A value's document has the
    entry's id as its rowid; a list item's has minus its ``search_docs`` id.
    """
    take_up_log(conn, limit)
    if limit is None:  # everything: notes this adds (entry ids in use again) too
        handled = 0
        while indexed := catch_up(conn, SEARCH_BATCH):
            handled += indexed
        return handled
    sql = "SELECT rowid, entry_id, seq FROM search_queue ORDER BY rowid LIMIT ?"
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
        "INSERT INTO search_queue SELECT id, -1 FROM entries WHERE id = ? AND kind = 0",
        gone,
    )
    conn.executemany(
        "INSERT INTO search_queue SELECT entry_id, seq FROM list_items WHERE entry_id = ?",
        gone,
    )
    docs = sorted({(entry_id, seq) for _, entry_id, seq in notes if seq != -2})
    (language,) = conn.execute("SELECT language FROM search_state").fetchone()
    texts = documents(conn, docs, language)
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
        "INSERT OR REPLACE INTO search_fts (rowid, doc, length, digest) VALUES (?, ?, ?, ?)", rows
    )
    conn.execute("DELETE FROM search_queue WHERE rowid <= ?", (notes[-1][0],))
    return len(notes)


def take_up_log(conn: sqlite3.Connection, limit: int | None = None) -> None:
    """Note in the queue the documents of the oldest ``limit`` positions of the log (or all)
    that the index has not taken up yet."""
    (done, end) = conn.execute(
        "SELECT logged_upto, (SELECT coalesce(max(seq), 0) FROM change_log) FROM search_state"
    ).fetchone()
    if end <= done:
        return
    upto = end if limit is None else min(end, done + limit)
    conn.execute(_LOGGED_VALUES, (done, upto))
    conn.execute("UPDATE search_state SET logged_upto = ?", (upto,))


def documents(
    conn: sqlite3.Connection, docs: list[tuple[int, int]], language: str
) -> dict[tuple[int, int], tuple[str, int, str | None]]:
    """The indexed text (in the store's ``language``), length and digest of each document that
    exists now."""
    found: dict[tuple[int, int], tuple[str, int, str | None]] = {}
    values = [entry_id for entry_id, seq in docs if seq == -1]
    for chunk in chunks(values, 500):
        for entry_id, ns, key, value in conn.execute(
            "SELECT id, ns, key, value FROM entries WHERE kind = 0 AND unsearched IS NULL"
            " AND id IN "
            f"({','.join(['?'] * len(chunk))})",
            chunk,
        ):
            if (indexed := fts_document(ns, key, value, language)) is not None:
                found[(entry_id, -1)] = indexed
    items = [doc for doc in docs if doc[1] >= 0]
    for chunk in chunks(items, 400):
        for entry_id, seq, ns, key, value in conn.execute(
            "SELECT i.entry_id, i.seq, e.ns, e.key, i.value FROM list_items i"
            " JOIN entries e ON e.id = i.entry_id WHERE i.unsearched IS NULL"
            " AND (i.entry_id, i.seq) IN"
            f" (VALUES {','.join(['(?, ?)'] * len(chunk))})",
            [number for doc in chunk for number in doc],
        ):
            if (indexed := fts_document(ns, key, value, language)) is not None:
                found[(entry_id, seq)] = indexed
    return found


def search(
    conn: sqlite3.Connection,
    op: Search,
    now: int,
    counts: Counts,
    matrices: Matrices | None = None,
) -> list[SearchHit]:
    """Run a search in the current transaction (see :class:`SearchBehind`); ``counts`` keeps
    what rarity needs (how many documents a namespace holds, how long they are, and how many
    hold a word) between searches, ``matrices`` the process's copies of the namespaces'
    vectors (:func:`~botwire.backends.sqlite.vectors.similar`).

    A search whose words match many documents ranks the shortest that match first (the
    highest scores: see :class:`ShortestFirst`), and all of them only where those cannot
    prove its hits."""
    if op.mode == "auto":  # by both where the store has an embedder (it gave a vector)
        op = op._replace(mode=None if op.vectors is None else "hybrid")
    if op.mode == "meaning":
        return search_hits(_by_meaning(conn, op, now, matrices)[0], op.context > 0)
    if op.mode == "hybrid":
        pool = pooled(op)
        words = search(conn, pool._replace(mode=None), now, counts)
        rows, spread = _by_meaning(conn, pool, now, matrices)
        return fuse(words, search_hits(rows, op.context > 0), spread, op.limit, op.weight)
    enabled, language = conn.execute("SELECT enabled, language FROM search_state").fetchone()
    if not enabled:
        raise InvalidRequest(SEARCH_OFF)
    query = parse_query(op.query, op.match)
    if query.groups and conn.execute(BEHIND).fetchone()[0]:
        raise SearchBehind  # the index must hold every write first (a listing reads none)
    if query.listing:  # an empty query: every key in scope, newest first
        p = DIALECT.params()
        listing = listing_sql(DIALECT, p, op, now)
        sql = ranked_sql(DIALECT, p, op, now, listing, filtered=True)
        return search_hits(conn.execute(sql, p.values).fetchall(), op.context > 0)
    if not query.groups:  # only punctuation or emoji: nothing to find
        return []
    namespaces = [op.ns] if op.ns is not None else _namespaces(conn, op.ns_prefix)
    if not namespaces:
        return []
    tags = [ns_tag(ns) for ns in namespaces]
    markers = [f'"{tag}"' for tag in tags]
    groups = query.fts5_groups(tags, language)
    counts = _count(conn, counts, tags, markers, groups)
    weighed = query.weighed(groups, counts.rarities(markers, groups))
    ranking = _Ranking(conn, op, now, weighed, counts.average_length(markers))
    plan = ranking_plan(op, weighed, counts, markers, tags)
    rank = next(plan)
    while True:
        try:
            rank = plan.send(ranking.rows(rank))
        except StopIteration as done:
            return search_hits(done.value, op.context > 0)


def _by_meaning(
    conn: sqlite3.Connection, op: Search, now: int, matrices: Matrices | None
) -> tuple[list[Any], Spread]:
    """The ranked rows of a meaning search and the spread of its similarities
    (:func:`meaning_steps`)."""
    similar = vectors.similar(conn, op, matrices)
    steps = meaning_steps(DIALECT, op, now, similar)
    statement = next(steps)
    while True:
        try:
            statement = steps.send(conn.execute(*statement).fetchall())
        except StopIteration as done:
            return list(done.value), similar.spread()


class _Ranking:
    """The statements that rank a search's matches (:func:`ranked_sql`), as :class:`Rank`
    asks."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        op: Search,
        now: int,
        weighed: list[Weighed],
        average_length: float,
    ) -> None:
        self.conn, self.op, self.now = conn, op, now
        self.weighed, self.average_length = weighed, average_length

    def rows(self, rank: Rank) -> list[Any]:
        """The rows of the ranking ``rank`` asks for."""
        p = DIALECT.params()
        lists = ""
        if rank.lists:
            pairs = ", ".join(f"({p(ns)}, {p(key)})" for ns, key in sorted(rank.lists))
            lists = ("rowid IN (SELECT -d.id FROM search_docs d JOIN entries e"
                     f" ON e.id = d.entry_id WHERE (e.ns, e.key) IN (VALUES {pairs}))")  # fmt: skip
        telling = " OR ".join(f"({g.expression})" for g in self.weighed if g.telling)
        within = None
        if rank.within is not None:
            within = " OR ".join(f'"{token}"' for token in rank.within)

        rarest = " OR ".join(f"({g.expression})" for g in rank.rarest or ())

        def matching(columns: str, group: Weighed) -> str:
            needs = []
            ways = [e for e in (within, rarest) if e]  # to a document of common words only
            if rank.tier == 1:  # documents that hold a telling word, cut by length
                needs = ([] if group.telling else [telling]) + ([within] if within else [])
            elif ways and not group.telling and group not in (rank.rarest or ()):
                needs = [" OR ".join(f"({e})" for e in [*ways, telling])]
            restricted = " AND ".join(f"({e})" for e in [group.expression, *needs])
            found = f"SELECT {columns} FROM search_fts WHERE search_fts MATCH {p(restricted)}"
            if lists:  # UNION: a document found both ways once
                found += (f" UNION SELECT {columns} FROM search_fts"
                          f" WHERE search_fts MATCH {p(group.expression)} AND {lists}")  # fmt: skip
            return found

        if self.op.match == "any":  # each document weighs the rarity of the groups it holds
            matched = " UNION ALL ".join(  # each group's number keeps its rows apart
                matching(f"rowid, {p(group.weight)} AS weight, {int(group.telling)} AS telling,"
                         f" {number} AS grp", group)
                for number, group in enumerate(self.weighed)
            )  # fmt: skip
            # A document's length and digest read once, however many groups it holds, from
            # FTS5's table of its documents' columns (c0 to c2: doc, length, digest).
            found = ("SELECT m.rowid, m.weight, f.c1 AS length, f.c2 AS digest, m.tier FROM"
                     " (SELECT rowid, sum(weight) AS weight, max(telling) AS tier"
                     f" FROM ({matched}) GROUP BY rowid) m"
                     " JOIN search_fts_content f ON f.id = m.rowid")  # fmt: skip
        else:  # each document holds them all
            everything = " AND ".join(f"({group.expression})" for group in self.weighed)
            total = sum(group.weight for group in self.weighed)
            every = Weighed(everything, total, True)
            found = matching(f"rowid, {p(total)} AS weight, length, digest, 1 AS tier", every)
        candidates = (  # a list item's document maps to its item
            "SELECT coalesce(d.entry_id, m.rowid), coalesce(d.seq, -1), m.weight, m.length,"
            f" m.digest, m.tier FROM ({found}) m LEFT JOIN search_docs d ON m.rowid < 0"
            " AND d.id = -m.rowid"
        )
        sql = ranked_sql(
            DIALECT, p, self.op, self.now, candidates, average_length=self.average_length
        )
        return self.conn.execute(sql, p.values).fetchall()


def _count(
    conn: sqlite3.Connection, counts: Counts, tags: list[str], markers: list[str], groups: list[str]
) -> Counts:
    """The search's counts (see :meth:`Counts.take`), those ``counts`` has not counted lately
    counted now: the lengths of each namespace's documents (how many of each, from the
    index's vocabulary: the marker's count is their sum) and how many documents match each
    group."""
    mine, missing = counts.take([Counts.lengths(marker) for marker in markers] + groups)
    for tag, marker in zip(tags, markers, strict=True):
        if Counts.lengths(marker) in missing:
            prefix = length_token(tag, 0)[:-1]
            rows = conn.execute(
                "SELECT term, doc FROM search_vocab WHERE term >= ? AND term < ?",
                (prefix, prefix + ":"),  # ':' follows the digits
            ).fetchall()
            lengths = {int(term[len(prefix) :]): docs for term, docs in rows}
            counts.put(Counts.lengths(marker), lengths)
            mine.put(Counts.lengths(marker), lengths)
        mine.put(marker, sum(mine[Counts.lengths(marker)].values()))
    for expression in [e for e in missing if e in groups]:
        (count,) = conn.execute(f"SELECT count(*) FROM {_MATCH}", (expression,)).fetchone()
        counts.put(expression, count)
        mine.put(expression, count)
    return mine


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
