"""What both SQL engines share: the documents they index, the ranking they compute, what
rarity needs counted, and how a search's rows become hits within the read budget."""

from __future__ import annotations

import base64
import functools
import hashlib
import math
import time
from collections.abc import Generator, Iterator, Sequence
from typing import Any, NamedTuple

from botwire.backends.base import Search, SearchHit, prefix_upper_bound
from botwire.backends.common import LIST, VALUE, read_budget
from botwire.backends.search.filters import JsonFields, Params, conditions
from botwire.backends.search.text import (
    DEFAULT_LANGUAGE,
    _indexable,
    terms,
    value_words,
    words,
)
from botwire.errors import ValueTooLarge

SEARCH_OFF = (
    "full-text search is off for this store; turn it on for every process with "
    "?search=on in the store's URL (its values are then indexed again)"
)


TAG_CHARS = 10


@functools.lru_cache(maxsize=4096)
def ns_tag(ns: str) -> str:
    """The namespace's tag: 10 letters and digits (50 bits of its hash) that start each of its
    words in the index. A search looks up its own namespace's words only, so what it finds,
    how it ranks and what it costs never depend on another namespace's data. (Two namespaces
    of one store share a tag once in a quadrillion pairs; their hits still keep apart, as a
    search checks each hit's namespace.)"""
    digest = hashlib.blake2b(ns.encode("utf-8", "surrogatepass"), digest_size=7).digest()
    return base64.b32encode(digest).decode("ascii").lower()[:TAG_CHARS]


class Indexed(NamedTuple):
    """What a store's index holds of a key's value (or one list item)."""

    tag: str
    """The namespace's tag (:func:`ns_tag`)."""
    terms: list[str]
    """The key's and the value's words, as the store's language indexes them."""
    digest: str | None
    """A hash of the value's words (not the key's): values that read alike have the same;
    ``None`` for a value with no words. A relevance search shows them once."""


def indexed(
    ns: str, key: str, json_text: str | None, language: str = DEFAULT_LANGUAGE
) -> Indexed | None:
    """What a store indexes for a key's value (or one list item); ``None`` for botwire's own
    namespaces (``/tokens``), which are never found."""
    if "/" in ns:
        return None
    value = value_words(json_text)
    digest = None
    if value:
        text = " ".join(value).encode("utf-8", "surrogatepass")
        digest = hashlib.blake2b(text, digest_size=8).hexdigest()
    found = terms(_indexable(words(key) + value), language)
    return Indexed(ns_tag(ns), found, digest)


def fts_document(
    ns: str, key: str, json_text: str | None, language: str = DEFAULT_LANGUAGE
) -> tuple[str, int, str | None] | None:
    """What SQLite's index holds for a key's value (or one list item): its terms, each behind
    the namespace's tag, after the tag alone (which every document of the namespace holds,
    so that counting it counts them) and before its :func:`length_token`; its length
    (distinct terms); and its digest."""
    found = indexed(ns, key, json_text, language)
    if found is None:
        return None
    tag = found.tag
    length = len(set(found.terms))
    terms_text = "".join(" " + tag + term for term in found.terms)
    return f"{tag}{terms_text} {length_token(tag, length)}", length, found.digest


def length_token(tag: str, length: int) -> str:
    """The word of SQLite's index that a document of ``length`` distinct terms in the
    namespace of ``tag`` holds (``1`` never starts a tag, nor a term): a search reads the
    shortest documents that match first, which rank highest, and counts how many of each
    length a namespace holds, for the ranking's average length."""
    return f"1{tag}{length}"


def tsvector(
    ns: str, key: str, json_text: str | None, language: str = DEFAULT_LANGUAGE
) -> dict[str, str | None]:
    """What PostgreSQL's index holds for a key's value (or one list item): ``doc``, the text
    of a ``tsvector`` of the same terms as :func:`fts_document`, with their positions (and
    its length word last), and its ``digest`` (both ``None`` for botwire's own namespaces)."""
    found = indexed(ns, key, json_text, language)
    if found is None:
        return {"doc": None, "digest": None}
    tag = found.tag
    positions: dict[str, list[int]] = {tag: [1]}
    for position, term in enumerate(found.terms, 2):
        positions.setdefault(tag + term, []).append(position)
    positions[length_token(tag, len(positions) - 1)] = [len(found.terms) + 2]
    doc = " ".join(f"'{lexeme}':{','.join(map(str, at))}" for lexeme, at in positions.items())
    return {"doc": doc, "digest": found.digest}


# -- ranking: one formula for every store -------------------------------------------------------

K1 = 1.2
B = 0.75


def idf(docs: int, df: int) -> float:
    """How rare a word is: BM25's ``idf`` of a word found in ``df`` of ``docs`` documents,
    always above zero."""
    docs = max(docs, df)
    return math.log(1.0 + (docs - df + 0.5) / (df + 0.5))


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    """``items`` in lists of ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Counts:
    """How many documents match an expression of the index (a namespace's tag: how many it
    holds, the ``N`` of a word's rarity; a word: how many hold it, its ``df``), and how long
    a namespace's documents are (:meth:`lengths`), counted by a store now and then and
    remembered for :attr:`TTL` seconds: rarity need not be exact to the last write, and
    counting a common word costs as much as finding it."""

    TTL = 30.0

    def __init__(self) -> None:
        self._counts: dict[str, tuple[float, Any]] = {}

    def take(self, expressions: Sequence[str]) -> tuple[Counts, list[str]]:
        """A search's own counts: a copy of those of ``expressions`` counted lately (another
        thread may replace or drop them meanwhile), and the others, to count (and
        :meth:`put` in both)."""
        now = time.monotonic()
        mine, missing = Counts(), []
        for expression in dict.fromkeys(expressions):
            found = self._counts.get(expression)
            if found is None or now - found[0] > self.TTL:
                missing.append(expression)
            else:
                mine._counts[expression] = found
        return mine, missing

    def put(self, expression: str, count: Any) -> None:
        if len(self._counts) > 100_000:
            self._counts.clear()
        self._counts[expression] = (time.monotonic(), count)

    def __getitem__(self, expression: str) -> Any:
        return self._counts[expression][1]

    @staticmethod
    def lengths(marker: str) -> str:
        """The expression under which a store puts the lengths of the documents of a
        namespace (its ``marker``): ``{length: documents}``."""
        return f"lengths {marker}"

    def average_length(self, markers: Sequence[str]) -> float:
        """The average length (distinct terms) of the documents of the namespaces whose
        markers are given, BM25's ``avgdl`` (at least 1); their :meth:`lengths` counted
        before."""
        docs = total = 0
        for marker in markers:
            for length, count in self[self.lengths(marker)].items():
                docs += count
                total += length * count
        return max(1.0, total / docs) if docs else 1.0

    def rarities(self, markers: Sequence[str], groups: Sequence[str]) -> list[float]:
        """The rarity of each group of words, among the documents of the namespaces whose
        markers (tags) are given; every expression counted before."""
        docs = sum(self[marker] for marker in markers)
        return [idf(docs, self[group]) for group in groups]


class Dialect(NamedTuple):
    """What differs between the engines in the SQL that ranks a search (:func:`ranked_sql`)."""

    entries: str
    """The table of keys."""
    items: str
    """The table of list items."""
    item_size: str
    """SQL for the bytes of the list item ``li``."""
    power: str
    """The name of SQL's power function."""
    no_slash: str
    """SQL true when ``e.ns`` holds no ``/`` (botwire's own namespaces do)."""
    json: JsonFields
    style: str
    """A parameter's placeholder, with ``{}`` for its name."""
    no_digest: str
    """SQL for a document without a digest (a typed ``NULL``)."""
    scored: str
    """SQL that reads ``(entry_id, seq, score)`` rows from a JSON array of such triples, given
    as the parameter ``{}`` (one parameter, whatever their number)."""
    indexed: str
    """SQL true when the value of ``e`` (``VALUE`` read as ``e``), or the list item ``li``
    (read as ``li``), is in the search index (not written with ``searchable=False``)."""

    def params(self) -> Params:
        return Params(self.style)


def score_of(weight: float, length: int, average_length: float) -> float:
    """The score :func:`ranked_sql` gives a document of ``length`` that holds words of summed
    rarity ``weight`` (without ``recency``): lower for a longer one."""
    return weight * (K1 + 1) / (1.0 + K1 * ((1 - B) + B * length / average_length))


class ShortestFirst:
    """How a search whose words match many documents ranks only the shortest of them: a
    document's score falls as its length grows (without ``recency``), so a match longer than
    those ranked scores at most :meth:`unseen`, and the ranking of the shortest is the
    search's when each hit scores more than that (:meth:`proven`); else four times as many
    are ranked, and every match once that reaches about half the documents. Each engine
    renders "only documents up to this length" in its own syntax (the length words of
    :func:`length_token`, in :attr:`Rank.within`); :func:`ranking_plan` drives it.

    ``tier`` says which documents are cut by length (see :class:`Rank`): with 1, those that
    hold a telling word, the only ones ranked; with 0, those of common words only, beside
    every document that holds a telling word (whose keys rank first, each by its best such
    document: so they are all found whatever the cut).
    """

    def __init__(
        self, op: Search, weighed: Sequence[Any], counts: Counts, markers: Sequence[str], tier: int
    ) -> None:
        self.op, self.tier, self.counts, self.markers = op, tier, counts, markers
        self.average = counts.average_length(markers)
        found: dict[int, int] = {}
        for marker in markers:
            for length, docs in counts[Counts.lengths(marker)].items():
                found[length] = found.get(length, 0) + docs
        self.lengths = sorted(found.items())
        """How many documents of the namespaces have each length, shortest first."""
        docs = sum(count for _, count in self.lengths)
        cut = [group for group in weighed if group.telling == (tier == 1) or tier == 1]
        self.weight = sum(group.weight for group in cut)
        """The most the groups of a document that is cut can weigh."""
        matches = [counts[group.expression] for group in cut if group.telling or tier == 0]
        if op.match == "any":  # how many documents match, about (words taken as independent)
            self.matches = sum(matches)
        else:
            self.matches = int(docs * math.prod(min(1.0, m / max(docs, 1)) for m in matches))
        self.wanted = max(SHORTEST_FIRST, 8 * shown_keys(op)) // 4
        self.last: int | None = None

    def longest(self) -> int | None:
        """The length up to which to rank next (four times as many matches as the last
        time); ``None``: rank every match (``recency``, or about half the documents)."""
        if self.op.recency is not None or self.matches < SHORTEST_FROM:
            return None
        self.wanted *= 4
        share = self.wanted / max(self.matches, 1)
        docs = sum(count for _, count in self.lengths)
        held = 0
        for length, count in self.lengths[:-1]:
            held += count
            if held >= share * docs and (self.last is None or length > self.last):
                self.last = length if held < docs / 2 else None
                return self.last
        return None

    def tokens(self, tags: Sequence[str], longest: int) -> list[str]:
        """The length words of every length up to ``longest`` in the namespaces of ``tags``:
        every length, not only those counted, which a document written since may have."""
        return [length_token(tag, length) for tag in tags for length in range(longest + 1)]

    def unseen(self) -> float:
        """The best score a document that was cut can have."""
        assert self.last is not None
        return score_of(self.weight, self.last + 1, self.average)

    def proven(self, rows: list[Any]) -> frozenset[tuple[str, str]] | None:
        """Whether ``rows`` (:func:`ranked_sql`'s, of the shortest) are the search's (see
        :func:`proven`)."""
        return proven(self.op, rows, self.tier, self.unseen())


class RarestFirst:
    """How a relevance search ranks the documents of common words only (tier 0) without
    reading those of its most common words: a document that holds none of the rarer ones
    (:meth:`rarest`) weighs at most the others' weights together, and scores at most
    :meth:`unseen` at the shortest length the namespaces' documents had when they were
    counted (shorter ones written since are ranked too: :meth:`shorter`); the ranking of the
    rest is the search's when each hit of that tier scores more (:func:`proven`). Each round
    takes rarer words that cover four times as many documents as the last, until that would
    be all of them."""

    def __init__(
        self,
        op: Search,
        weighed: Sequence[Any],
        counts: Counts,
        markers: Sequence[str],
        tags: Sequence[str],
    ) -> None:
        self.op, self.counts, self.tags = op, counts, tags
        self.average = counts.average_length(markers)
        lengths = [n for m in markers for n, docs in counts[Counts.lengths(m)].items() if docs]
        self.shortest = max(1, min(lengths, default=1))
        self.common = sorted((g for g in weighed if not g.telling), key=lambda g: -g.weight)
        self.taken = 0
        self.wanted = max(SHORTEST_FIRST, 8 * shown_keys(op)) // 4

    def rarest(self) -> list[Any] | None:
        """The common groups whose documents to rank next (with every document of a telling
        word); ``None``: rank every match (``recency``, or they would be all)."""
        if self.op.recency is not None:
            return None
        self.wanted *= 4
        held = 0
        for taken, group in enumerate(self.common[:-1], 1):
            held += self.counts[group.expression]
            if held >= self.wanted and taken > self.taken:
                break
        else:
            return None
        self.taken = taken
        return self.common[:taken]

    def shorter(self) -> list[str]:
        """The length words of documents shorter than the shortest counted (ranked whatever
        words they hold)."""
        return [length_token(tag, n) for tag in self.tags for n in range(self.shortest)]

    def unseen(self) -> float:
        """The best score a document of none of the groups ranked can have."""
        rest = sum(group.weight for group in self.common[self.taken :])
        return score_of(rest, self.shortest, self.average)


def proven(
    op: Search, rows: list[Any], tier: int, unseen: float
) -> frozenset[tuple[str, str]] | None:
    """Whether ``rows`` (:func:`ranked_sql`'s, of the documents a ranking did not cut) are the
    search's, where a document of ``tier`` that was cut scores at most ``unseen``: ``None``
    when they may not be; else the lists (namespace, key) whose items may lack some that were
    cut (each key of that tier scores above ``unseen``, and so does each list's
    ``limit``-th item, or the list is given)."""
    keys: dict[tuple[str, str], list[tuple[int, float]]] = {}
    lists: set[tuple[str, str]] = set()
    for ns, key, best, _, _, kind, _, _, _, _, near, key_tier, item_tier, score, *_ in rows:
        found = keys.setdefault((ns, key), [])
        if key_tier < tier or (key_tier == tier and best <= unseen):
            return None
        if kind == LIST:
            lists.add((ns, key))
            if not near:
                found.append((item_tier, score))
    if len(keys) < op.limit:
        return None

    def short(items: list[tuple[int, float]]) -> bool:
        last_tier, last_score = items[-1]
        return last_tier < tier or (last_tier == tier and last_score <= unseen)

    return frozenset(key for key in lists if len(keys[key]) < op.limit or short(keys[key]))


class Rank(NamedTuple):
    """A ranking of a search's matches that :func:`ranking_plan` asks its engine for: the
    rows of :func:`ranked_sql` over the documents that match the search's groups, ``tier``
    saying which of them ``within`` cuts, and with every match of ``lists``."""

    within: list[str] | None
    """Length words: the documents that ``tier`` names must hold one (the shortest);
    ``None``: any length."""
    tier: int
    """1: only the documents that hold a telling word (common words then weigh in those
    only); 0: all, where ``within`` cuts those of common words only (with ``rarest``: those
    of common words only that hold none of ``rarest`` and have none of those lengths)."""
    lists: frozenset[tuple[str, str]]
    """And, whatever they hold, every document that matches of these lists (namespace, key)."""
    rarest: tuple[Any, ...] | None = None
    """With tier 0, groups of common words: a document of common words only must hold one."""


def ranking_plan(
    op: Search,
    weighed: Sequence[Any],
    counts: Counts,
    markers: Sequence[str],
    tags: Sequence[str],
) -> Generator[Rank, list[Any], list[Any]]:
    """The rankings a search of ``weighed`` groups runs (each :class:`Rank` sent the rows of
    its ranking back), to return the rows of its hits.

    A relevance search (``match="any"``) whose telling words are looked up beside common
    ones first ranks the documents that hold a telling word, as a common word alone makes a
    document a match of the lowest tier only: the search's keys when they are enough, with
    every match of the lists among them that show fewer items than the search may (their
    items of common words only). Else it ranks every match: those of common words only
    holding the rarer of them first (:class:`RarestFirst`). Each ranking takes the shortest
    documents first (:class:`ShortestFirst`)."""
    mixed = {group.telling for group in weighed} == {True, False}
    if not (mixed and op.match == "any"):
        return (yield from _shortest_first(op, weighed, counts, markers, tags, tier=1))
    if TELLING_FIRST:
        rows = yield from _shortest_first(op, weighed, counts, markers, tags, tier=1)
        if _complete(op, rows):
            return rows
        rarest = RarestFirst(op, weighed, counts, markers, tags)
        while (groups := rarest.rarest()) is not None:
            shorter = rarest.shorter()
            rows = yield Rank(shorter, 0, frozenset(), tuple(groups))
            if (found := proven(op, rows, 0, rarest.unseen())) is not None:
                return (yield Rank(shorter, 0, found, tuple(groups))) if found else rows
    return (yield from _shortest_first(op, weighed, counts, markers, tags, tier=0))


def _shortest_first(
    op: Search,
    weighed: Sequence[Any],
    counts: Counts,
    markers: Sequence[str],
    tags: Sequence[str],
    tier: int,
) -> Generator[Rank, list[Any], list[Any]]:
    shortest = ShortestFirst(op, weighed, counts, markers, tier)
    while (longest := shortest.longest()) is not None:
        within = shortest.tokens(tags, longest)
        rows = yield Rank(within, tier, frozenset())
        if (proven := shortest.proven(rows)) is not None:  # and every match of the lists
            return (yield Rank(within, tier, proven)) if proven else rows  # short of items
    rows = yield Rank(None, tier, frozenset())
    mixed = {group.telling for group in weighed} == {True, False}
    lists = _short_lists(rows, op.limit) if tier == 1 and mixed else frozenset()
    if lists and _complete(op, rows):  # their items of common words only
        rows = yield Rank(None, tier, lists)
    return rows


def _complete(op: Search, rows: list[Any]) -> bool:
    """Whether the keys of ``rows`` (:func:`ranked_sql`'s, of the documents that hold a
    telling word) are the search's: as many as it shows, or as many as it ranks before it
    leaves out those that repeat a better one's value (no key of common words only would
    be ranked)."""
    keys = len({(row[0], row[1]) for row in rows})
    return keys >= op.limit or (bool(rows) and rows[0][14] >= shown_keys(op))


def _short_lists(rows: list[Any], limit: int) -> frozenset[tuple[str, str]]:
    """The lists among ``rows`` (:func:`ranked_sql`'s) that show fewer than ``limit`` items."""
    shown: dict[tuple[str, str], int] = {}
    for ns, key, _, _, _, kind, _, _, _, _, near, *_ in rows:
        if kind == LIST:
            shown[(ns, key)] = shown.get((ns, key), 0) + (not near)
    return frozenset(key for key, items in shown.items() if items < limit)


SHORTEST_FIRST = 500
"""How many of the shortest matches a search that matches many documents ranks first (or
more: see :class:`ShortestFirst`)."""
TELLING_FIRST = True
"""Whether a relevance search whose telling words are looked up beside common ones ranks the
documents that hold a telling word first (see :func:`ranking_plan`)."""
SHORTEST_FROM = 1000
"""How many documents a search must match, about, to rank the shortest first: fewer are
ranked as quickly as the length words are read."""


def ranked_sql(
    d: Dialect,
    p: Params,
    op: Search,
    now: int,
    candidates: str,
    *,
    average_length: float = 1.0,
    filtered: bool = False,
) -> str:
    """The SQL that ranks a search's ``candidates`` (a statement that yields documents:
    ``entry_id, seq, weight, length, digest, tier``) and reads its hits, for the rows of
    :func:`search_hits`. Every engine runs this one statement:

    - it keeps the documents in the search's scope, live, that pass its filters (unless the
      candidates are ``filtered`` already, as :func:`listing_sql`'s are);
    - scores each by BM25 (the summed rarity ``weight`` of the words it holds, for its
      ``length`` beside the ``average_length`` of the namespaces' documents:
      :func:`score_of`), less for age with ``recency``;
    - ranks the keys by their best document: those that hold a telling word (``tier``: not
      only common words, see :class:`~botwire.backends.search.query.Weighed`) first, by their
      best document that does, then the others by their best, then the newest; with
      ``distinct``, a key whose value (or a list item whose value) reads as a better one's
      (the same ``digest``) is left out;
    - takes each key's best ``limit`` items, and with ``context``, the items around them;
    - reads values as far as the batch's read budget allows (:func:`search_hits` refuses the
      rest before anything is read).
    """
    where = items = ""
    filters = "TRUE"
    if not filtered:
        where = d.json.where(conditions(op.where) if op.where else [], p)
        where = where.replace("VALUE", "coalesce(li.value, e.value)")
        items = (f"LEFT JOIN {d.items} li ON c.seq >= 0 AND li.entry_id = c.entry_id"
                 " AND li.seq = c.seq") if where else ""  # fmt: skip
        live = f"(e.expires_at IS NULL OR e.expires_at > {p(now)})"
        scope = search_scope(op, p, d.no_slash)
        filters = " AND ".join([live, "(c.seq >= 0 OR e.kind = 0)", *scope])
    score = (f"weight * {K1 + 1} / (1.0 + {K1} * ({1 - B} + {B} * length"
             f" / {p(float(average_length))}))")  # fmt: skip
    if op.recency is not None:
        age = f"({p(now)} - updated_at) / {p(op.recency * 1_000_000)}"
        score = f"({score}) * {d.power}(0.5, {age})"
    distinct = is_distinct(op)
    # A digest never starts with '#'.
    same_value = (
        "CASE WHEN b.kind = 0 AND b.digest IS NOT NULL THEN b.digest ELSE '#' || b.entry_id END"
    )
    same_item = "CASE WHEN r.seq >= 0 AND r.digest IS NOT NULL THEN r.digest ELSE '#' || r.seq END"
    if not distinct:
        same_value, same_item = "b.entry_id", "r.seq"
    near = (
        f"SELECT DISTINCT s.entry_id, li.seq FROM shown s JOIN {d.items} li"
        f" ON li.entry_id = s.entry_id AND li.seq BETWEEN s.seq - {p(op.context)}"
        f" AND s.seq + {p(op.context)} WHERE s.seq >= 0 AND NOT EXISTS"
        " (SELECT 1 FROM shown x WHERE x.entry_id = li.entry_id AND x.seq = li.seq)"
        if op.context
        else "SELECT entry_id, seq FROM shown WHERE 1 = 0"
    )
    free, allowance = budget_terms()
    readable = "TRUE" if allowance is None else (
        f"(w.pos = 1 AND {'TRUE' if free else 'FALSE'}) OR w.cum <= {int(allowance)}"
    )  # fmt: skip
    size = f"CASE WHEN o.seq >= 0 THEN {d.item_size} ELSE e.size END"
    return f"""
        WITH c(entry_id, seq, weight, length, digest, tier) AS ({candidates}),
        f AS (
            SELECT c.entry_id, c.seq, c.weight, c.length, c.digest, c.tier, e.updated_at, e.kind
            FROM c
            JOIN {d.entries} e ON e.id = c.entry_id {items}
            WHERE {filters} {where}
        ),
        r AS (SELECT entry_id, seq, {score} AS score, updated_at, kind, digest, tier FROM f),
        best AS (
            SELECT entry_id, max(tier) AS tier,
                coalesce(max(CASE WHEN tier = 1 THEN score END), max(score)) AS best,
                max(updated_at) AS at,
                max(kind) AS kind,
                max(digest) AS digest FROM r GROUP BY entry_id
            ORDER BY tier DESC, best DESC, at DESC, entry_id DESC
            LIMIT {p(shown_keys(op))}
        ),
        top AS (
            SELECT entry_id, tier, best, at FROM (
                SELECT b.entry_id, b.tier, b.best, b.at, row_number() OVER (
                    PARTITION BY {same_value}
                    ORDER BY b.tier DESC, b.best DESC, b.at DESC, b.entry_id DESC) AS copy
                FROM best b
            ) t WHERE copy = 1 ORDER BY tier DESC, best DESC, at DESC, entry_id DESC
            LIMIT {p(op.limit)}
        ),
        ranked AS (
            SELECT entry_id, seq, tier, score, row_number() OVER (
                PARTITION BY entry_id ORDER BY tier DESC, score DESC, seq DESC) AS n
            FROM (
                SELECT r.entry_id, r.seq, r.score, r.tier, row_number() OVER (
                    PARTITION BY r.entry_id, {same_item}
                    ORDER BY r.tier DESC, r.score DESC, r.seq DESC
                ) AS copy
                FROM r JOIN top t ON t.entry_id = r.entry_id
            ) x WHERE copy = 1
        ),
        shown AS (SELECT entry_id, seq, n, tier, score FROM ranked WHERE n <= {p(op.limit)}),
        near(entry_id, seq) AS ({near}),
        o AS (
            SELECT t.entry_id, t.tier, t.best, t.at, s.seq, s.n, 0 AS near, s.tier AS item_tier,
                s.score FROM top t
            JOIN shown s ON s.entry_id = t.entry_id
            UNION ALL SELECT t.entry_id, t.tier, t.best, t.at, n.seq, n.seq, 1, 0, 0 FROM top t
            JOIN near n ON n.entry_id = t.entry_id
        ),
        w AS (
            SELECT o.entry_id, o.tier, o.best, o.seq, o.near, o.item_tier, o.score,
                {size} AS size,
                row_number() OVER win AS pos, sum({size}) OVER win AS cum
            FROM o JOIN {d.entries} e ON e.id = o.entry_id
            LEFT JOIN {d.items} li ON o.seq >= 0 AND li.entry_id = o.entry_id AND li.seq = o.seq
            WINDOW win AS (ORDER BY o.tier DESC, o.best DESC, o.at DESC, o.entry_id DESC, o.near,
                           o.n
                           ROWS UNBOUNDED PRECEDING)
        )
        SELECT e.ns, e.key, w.best, e.updated_at, e.created_at, e.kind, e.list_lo, w.seq, w.size,
            CASE WHEN {readable} THEN coalesce(li.value, e.value) END, w.near, w.tier,
            w.item_tier, w.score, (SELECT count(*) FROM best), e.id
        FROM w JOIN {d.entries} e ON e.id = w.entry_id
        LEFT JOIN {d.items} li ON w.seq >= 0 AND li.entry_id = w.entry_id AND li.seq = w.seq
        ORDER BY w.pos
        """


def is_distinct(op: Search) -> bool:
    """Whether a search leaves out hits that repeat a better one's value: by default, a
    relevance search (``match="any"``) does."""
    return op.match == "any" if op.distinct is None else op.distinct


def listing_sql(d: Dialect, p: Params, op: Search, now: int) -> str:
    """Candidates for an empty query, ``filtered`` (see :func:`ranked_sql`): the newest live
    keys in scope that pass the filters (as many as :func:`ranked_sql` may show: found here,
    in one pass over the keys), each value alike, and the items that pass of those that are
    lists; values and items written out of the index are never candidates."""
    within = " AND ".join(search_scope(op, p, d.no_slash))
    live = f"(e.expires_at IS NULL OR e.expires_at > {p(now)})"
    value = item = ""
    if op.where:
        found = conditions(op.where)
        value = d.json.where(found, p).replace("VALUE", "e.value")
        item = d.json.where(found, p).replace("VALUE", "li.value")
    value = f" AND {d.indexed.replace('VALUE', 'e')}{value}"
    item = f" AND {d.indexed.replace('VALUE', 'li')}{item}"
    keys = (
        f"SELECT e.id, e.kind FROM {d.entries} e WHERE {within} AND {live} AND ("
        f"(e.kind = 0 {value}) OR (e.kind = 1 AND EXISTS (SELECT 1 FROM {d.items} li"
        f" WHERE li.entry_id = e.id {item})))"
        f" ORDER BY e.updated_at DESC, e.id DESC LIMIT {p(shown_keys(op))}"
    )
    return (
        f"SELECT k.id, coalesce(li.seq, -1), 0.0, 1, {d.no_digest}, 1 FROM ({keys}) k"
        f" LEFT JOIN {d.items} li ON k.kind = 1 AND li.entry_id = k.id {item}"
    )


def shown_keys(op: Search) -> int:
    """How many keys :func:`ranked_sql` considers, to show ``op.limit`` of them: more where
    it leaves out those that repeat a better one's value."""
    return op.limit * 3 + 10 if is_distinct(op) else op.limit


def budget_terms() -> tuple[bool, int | None]:
    """How the values of a search's hits fit the batch's read budget, for its SQL: whether
    the first may have any size, and how many bytes the values may add up to (``None``: no
    budget). A hit whose value would not fit comes without it, and :func:`search_hits`
    refuses the search before anything is read (see :class:`ReadBudget`)."""
    budget = read_budget.get()
    if budget is None:
        return False, None
    return budget.reads == 0, budget.limit - budget.spent


def search_scope(op: Search, p: Params, no_slash: str) -> list[str]:
    """The SQL conditions (on ``e``, the entries) of the keys a search covers: its namespace,
    or those that start with its namespace prefix (never botwire's own, which start with
    ``/``: ``no_slash`` says in the engine's SQL that a namespace holds none, needed only
    where the prefix does not rule them out), and its key prefix."""
    scope: list[str] = []
    if op.ns is not None:
        scope.append(f"e.ns = {p(op.ns)}")
    else:
        scope.append(f"e.ns >= {p(op.ns_prefix)}")
        if not op.ns_prefix or op.ns_prefix.startswith("/"):
            scope.append(no_slash)
        if (upper := prefix_upper_bound(op.ns_prefix)) is not None:
            scope.append(f"e.ns < {p(upper)}")
    if op.prefix:
        scope.append(f"e.key >= {p(op.prefix)}")
        if (upper := prefix_upper_bound(op.prefix)) is not None:
            scope.append(f"e.key < {p(upper)}")
    return scope


def search_hits(rows: list[Any], context: bool = False) -> list[SearchHit]:
    """Hits from the rows of :func:`ranked_sql`, best first, one row per document read:
    ``(ns, key, best score, updated_at, created_at, kind, list_lo, item seq, size, value,
    near, ...)`` (then the key's tier, the document's tier and score, how many keys the
    ranking considered, and the entry's id, which hits do not show); the documents of one
    key follow each other, its best items first, then the items around them (``near``, with
    ``context``). ``value``
    is ``None`` where it did not fit the read budget (see :func:`budget_terms`): then nothing
    is returned, and the budget says why."""
    hits: list[SearchHit] = []
    last = None
    budget = read_budget.get()
    for ns, key, best, updated, created, kind, lo, seq, size, value, near, *_ in rows:
        if budget is not None:
            budget.charge(size)
        if value is None:  # the charge above refused it; a guard for a store that erred
            raise ValueTooLarge("a search's values do not fit the read budget", size=size)
        if (ns, key) != last:
            last = (ns, key)
            if kind == VALUE:
                hits.append(SearchHit(ns, key, float(best), value, None, updated, created))
                continue
            around: list[tuple[int, str]] | None = [] if context else None
            hits.append(SearchHit(ns, key, float(best), None, [], updated, created, around))
        hit = hits[-1]
        found = hit.context if near else hit.items
        if kind == LIST and found is not None:
            found.append((seq - (lo or 0), value))
    return hits
