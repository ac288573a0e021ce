"""Full-text search: what is indexed, how text and queries are normalised, how filters read.

Every engine shares this; each only renders a parsed query and a filter in its own SQL
(FTS5 ``MATCH`` on SQLite, ``tsquery`` on PostgreSQL).

- A *document* is the key and every string of a value (dict values, list elements, nested;
  not numbers or booleans, nor strings of over 100 characters with no space, such as tokens
  and base64 data), or, for an append-list, the key and the strings of one item: a
  10,000-message chat is searchable message by message.
- Text is folded before the engine sees it: lower case, accents removed (``café`` → ``cafe``),
  compatibility forms unified, words of letters and digits only (emoji and punctuation fall
  away), and each CJK character a word of its own, so that both engines tokenise alike and a
  CJK phrase matches inside a sentence that has no spaces.
- A query is words that must all match; ``"quoted words"`` must match as a phrase; the last
  bare word also matches as a prefix (``pyth`` finds ``Python``). With ``match="any"`` a
  document matches when any of them does, and more matches rank higher: the way to find what
  is relevant to a question (``"what does the user like to eat?"``), whose common words
  (``what``, ``the``: :data:`COMMON_WORDS`) are left out unless nothing else is left.
  Anything else a user or a model may type (``*``, ``-``, ``:``, ``(``, ``AND``, ``NEAR``, a
  stray quote) is text, never engine syntax, so a query never fails to parse.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
import re
import time
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from botwire._values import check_int, check_prefix, decode_value, has_control, utc_datetime
from botwire.backends.base import Search, SearchHit, prefix_upper_bound
from botwire.backends.common import LIST, VALUE, read_budget
from botwire.errors import InvalidRequest, ValueTooLarge

MAX_QUERY_CHARS = 1000
MAX_QUERY_WORDS = 32
"""Most words a search looks for: each one is a lookup in the index."""
MAX_LIMIT = 1000
MATCHES = ("all", "any")

_COMMON = """a about above after again all am an and any are as at be been before being below
    between both but by can could did do does doing down during each few for from further had
    has have having he her here hers herself him himself his how i if in into is it its itself
    just me more most my myself no nor not now of off on once only or other our ours ourselves
    out over own same she should so some such than that the their theirs them themselves then
    there these they this those through to too under until up very was we were what when where
    which while who whom why will with would you your yours yourself yourselves"""
COMMON_WORDS = frozenset(_COMMON.split())
"""English words too common to tell documents apart, left out of ``match="any"`` queries."""

_CJK = re.compile(
    "[\u2e80-\u2fdf\u3005\u3007\u3040-\u30ff\u3100-\u312f\u3131-\u318f\u31a0-\u31bf"
    "\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7af\uf900-\ufaff"
    "\U00020000-\U0003134f]"
)


_ACCENTS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
"""Combining diacritical marks: the accents that folding removes (not the marks of Indic or
Hebrew script, nor the voicing marks of Japanese kana, which are part of their letters)."""
_ASCII_WORD = re.compile(r"[a-z0-9]+")


def fold(text: str) -> str:
    """``text`` in lower case without accents, compatibility forms unified (``ﬁ`` → ``fi``)."""
    if text.isascii():
        return text.lower()
    bare = _ACCENTS.sub("", unicodedata.normalize("NFKD", text))
    return unicodedata.normalize("NFC", bare).casefold()


def _runs(text: str) -> list[list[str]]:
    """The words of ``text``, grouped by the run of letters, digits and marks they came from:
    a run with CJK characters gives several words (each CJK character one of them)."""
    folded = fold(text)
    if folded.isascii():
        return [[run] for run in _ASCII_WORD.findall(folded)]
    runs: list[list[str]] = []
    run: list[str] = []
    word: list[str] = []
    for char in folded + " ":
        kind = unicodedata.category(char)[0]
        if kind in "LNM" and char != "_":
            if _CJK.match(char):
                if word:
                    run.append("".join(word))
                    word = []
                run.append(char)
            else:
                word.append(char)
            continue
        if word:
            run.append("".join(word))
            word = []
        if run:
            runs.append(run)
            run = []
    return runs


def words(text: str) -> list[str]:
    """The words of ``text`` as the index keeps them (see the module's docstring)."""
    folded = fold(text)
    if folded.isascii():
        return _ASCII_WORD.findall(folded)
    return [word for run in _runs(folded) for word in run]


def strings(value: Any) -> Iterator[str]:
    """Every string in a decoded JSON value: dict values and list elements, nested."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))


TOKEN_CHARS = 100
"""A string longer than this with no space in it is not text (an id, a token, base64 data):
it is not indexed."""
_SPACE = re.compile(r"\s")


def is_text(string: str) -> bool:
    """Whether a string of a value is indexed (see :data:`TOKEN_CHARS`)."""
    return len(string) <= TOKEN_CHARS or _SPACE.search(string) is not None


MAX_INDEXED_WORDS = 10_000
"""A document's first 10,000 words are indexed; the rest of a longer text is stored but not
found by search (the same on every store)."""
MAX_WORD_CHARS = 64
"""Words longer than this are not indexed (nor found): no one searches for them."""


def document_words(key: str, json_text: str | None) -> list[str]:
    """The words a store indexes for a key and a value (or list item) given as JSON text: the
    key's and the value's text (see the module's docstring), the first
    :data:`MAX_INDEXED_WORDS` words of :data:`MAX_WORD_CHARS` characters or fewer."""
    parts = [key]
    if json_text is not None:
        value = json.loads(json_text)
        found = [value] if isinstance(value, str) else strings(value)
        parts.extend(string for string in found if is_text(string))
    found_words = [word for word in words(" ".join(parts)) if len(word) <= MAX_WORD_CHARS]
    return found_words[:MAX_INDEXED_WORDS]


def document(key: str, json_text: str | None) -> str:
    """:func:`document_words`, separated by spaces."""
    return " ".join(document_words(key, json_text))


class ParsedQuery(NamedTuple):
    """A query as groups of words that must all match: one word, or a phrase of several."""

    groups: tuple[tuple[str, ...], ...]
    prefix: bool
    """Whether the last group (a single word) also matches as a prefix."""
    listing: bool = False
    """An empty query: every key (that passes the filters) matches, newest first. A query of
    only punctuation or emoji matches nothing."""
    any: bool = False
    """Whether one group matching is enough (``match="any"``)."""

    def fts5_groups(self, tags: Sequence[str]) -> list[str]:
        """Each group as an FTS5 ``MATCH`` expression over the namespaces of ``tags``: every
        word a quoted token, so that none is an operator."""
        last = len(self.groups) - 1
        found = []
        for number, group in enumerate(self.groups):
            star = "*" if self.prefix and number == last else ""
            found.append(" OR ".join(f'"{" ".join(tag + w for w in group)}"{star}' for tag in tags))
        return found

    def tsquery_groups(self, tags: Sequence[str]) -> list[str]:
        """Each group as a PostgreSQL ``tsquery`` over the namespaces of ``tags``, every word a
        quoted lexeme (a ``tsquery`` literal, which no text search configuration changes)."""
        last = len(self.groups) - 1
        found = []
        for number, group in enumerate(self.groups):
            star = ":*" if self.prefix and number == last else ""
            alternatives = [" <-> ".join(f"'{tag}{w}'" for w in group) + star for tag in tags]
            found.append(" | ".join(f"({a})" for a in alternatives))
        return found


def check_match(match: object) -> str:
    """``match`` if it is ``"all"`` or ``"any"``."""
    if match not in MATCHES:
        raise InvalidRequest(f'match must be "all" (every word) or "any" (any word), not {match!r}')
    return str(match)


def parse_query(text: str, match: str = "all") -> ParsedQuery:
    """Parse what a user or a model typed; never raises on syntax (see the module's docs)."""
    if not isinstance(text, str):
        raise InvalidRequest(f"a search query must be a str, not {type(text).__name__}")
    if len(text) > MAX_QUERY_CHARS:
        raise InvalidRequest(f"a search query has at most {MAX_QUERY_CHARS} characters")
    parsed = _parse(text)
    if check_match(match) == "any":
        telling = [g for g in parsed.groups if len(g) > 1 or g[0] not in COMMON_WORDS]
        if telling:
            prefix = parsed.prefix and telling[-1] == parsed.groups[-1]
            parsed = parsed._replace(groups=tuple(telling), prefix=prefix)
        parsed = parsed._replace(any=True)
    if sum(len(group) for group in parsed.groups) > MAX_QUERY_WORDS:
        raise InvalidRequest(
            f"a search query has at most {MAX_QUERY_WORDS} words (besides common ones such as "
            "'the' with match='any'); keep the words that tell what to find"
        )
    return parsed


def _parse(text: str) -> ParsedQuery:
    groups: list[tuple[str, ...]] = []
    prefix = False
    for number, segment in enumerate(text.split('"')):
        if number % 2 == 1:  # inside quotes: one phrase
            phrase = tuple(words(segment))
            if phrase:
                groups.append(phrase)
                prefix = False
            continue
        for run in _runs(segment):  # a run with CJK characters is a phrase of them
            groups.append(tuple(run))
            prefix = len(run) == 1
    if groups:  # a group given twice counts once; a prefix stays last
        last = groups[-1]
        groups = list(dict.fromkeys(groups))
        if prefix and groups[-1] != last:
            groups.remove(last)
            groups.append(last)
    return ParsedQuery(tuple(groups), prefix, not text.strip())


def coverage(query: str, text: str) -> float:
    """The share of ``query``'s words (and phrases) that ``text`` contains, from 0.0 to 1.0, as
    ``match="any"`` reads the query: a relevance that means the same on every store."""
    parsed = parse_query(query, "any")
    if not parsed.groups:
        return 0.0
    found = words(text)
    present = set(found)
    last = len(parsed.groups) - 1
    matched = 0
    for number, group in enumerate(parsed.groups):
        if len(group) == 1:
            word = group[0]
            if word in present or (
                parsed.prefix and number == last and any(w.startswith(word) for w in present)
            ):
                matched += 1
        elif any(tuple(found[i : i + len(group)]) == group for i in range(len(found))):
            matched += 1
    return matched / len(parsed.groups)


# -- filters on the fields of dict values ----------------------------------------------------

OPERATORS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in")
MAX_CONDITIONS = 64
"""Most conditions a ``where`` filter holds."""
MAX_IN = 1000
"""Most values an ``$in`` condition lists."""
MAX_FIELD_CHARS = 256
Scalar = str | int | float | bool | None


class Condition(NamedTuple):
    """One field of a ``where`` filter: ``field op value`` (``$in``: value is a list)."""

    field: str
    op: str
    value: Any


def check_where(where: object) -> str | None:
    """A ``where`` filter as canonical JSON text (for an operation), after checking it.

    ``{"field": value, "other": {"$gt": 3}, "tag": {"$in": ["a", "b"]}}``: every condition on
    a top-level field of a dict value (or list item) must hold. Values are strings, numbers,
    booleans or null; ``$gt`` and friends compare numbers with numbers and strings with strings.
    """
    if where is None:
        return None
    conditions(where)
    return json.dumps(where, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def conditions(where: object) -> list[Condition]:
    """The conditions of a ``where`` filter (a mapping, or its JSON text)."""
    if isinstance(where, str):
        where = json.loads(where)
    if not isinstance(where, Mapping):
        raise InvalidRequest(f"where must be a dict of field names to values, not {where!r:.60}")
    found = []
    for name, test in where.items():
        if (
            not isinstance(name, str) or not name or '"' in name or "\\" in name
            or has_control(name) or len(name) > MAX_FIELD_CHARS
        ):  # fmt: skip
            raise InvalidRequest(
                f"where: {name!r:.80} is not a field name (up to {MAX_FIELD_CHARS} characters, "
                "no quotes, backslashes or control characters)"
            )
        if isinstance(test, Mapping):
            if not test:
                raise InvalidRequest(f"where: {name!r} has an empty condition")
            for op, value in test.items():
                if op not in OPERATORS:
                    raise InvalidRequest(f"where: unknown operator {op!r}; use one of {OPERATORS}")
                found.append(Condition(name, op, _operand(name, op, value)))
        else:
            found.append(Condition(name, "$eq", _operand(name, "$eq", test)))
        if len(found) > MAX_CONDITIONS:
            raise InvalidRequest(f"where holds at most {MAX_CONDITIONS} conditions")
    return found


def _operand(name: str, op: str, value: Any) -> Any:
    if op == "$in":
        if not isinstance(value, list) or not value or len(value) > MAX_IN:
            raise InvalidRequest(
                f"where: {name!r} $in takes a non-empty list of up to {MAX_IN} values"
            )
        return [_scalar(name, item) for item in value]
    return _scalar(name, value)


def _scalar(name: str, value: Any) -> Scalar:
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, (int, float)) and value == value and abs(value) != float("inf"):
        return value
    raise InvalidRequest(f"where: {name!r} compares with {value!r:.40}; use a string, number, "
                         "boolean or null")  # fmt: skip


# -- what both SQL engines share ------------------------------------------------------------

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


def fts_document(ns: str, key: str, json_text: str | None) -> tuple[str, int] | None:
    """What SQLite's index holds for a key's value (or one list item): its words, each behind
    the namespace's tag, after the tag alone (which every document of the namespace holds,
    so that counting it counts them), and its length (distinct words). ``None`` for botwire's
    own namespaces (``/tokens``), which are never found."""
    if "/" in ns:
        return None
    tag = ns_tag(ns)
    found = document_words(key, json_text)
    return " ".join([tag, *(tag + word for word in found)]), len(set(found))


def tsvector(ns: str, key: str, json_text: str | None) -> str | None:
    """What PostgreSQL's index holds for a key's value (or one list item), as the text of a
    ``tsvector``: the same words as :func:`fts_document`, with their positions."""
    if "/" in ns:
        return None
    tag = ns_tag(ns)
    positions: dict[str, list[int]] = {tag: [1]}
    for position, word in enumerate(document_words(key, json_text), 2):
        positions.setdefault(tag + word, []).append(position)
    return " ".join(f"'{lexeme}':{','.join(map(str, at))}" for lexeme, at in positions.items())


# -- ranking: one formula for every store -------------------------------------------------------

K1 = 1.2
B = 0.75


def idf(docs: int, df: int) -> float:
    """How rare a word is: BM25's ``idf`` of a word found in ``df`` of ``docs`` documents,
    always above zero."""
    docs = max(docs, df)
    return math.log(1.0 + (docs - df + 0.5) / (df + 0.5))


def bm25_sql(weight: str, length: str, average: str) -> str:
    """SQL for a document's score: the summed rarity ``weight`` of the words it holds, by
    BM25's measure for a document of ``length`` distinct words among matches of ``average``
    length (each word counted once per document)."""
    return f"({weight}) * {K1 + 1} / (1.0 + {K1} * ({1 - B} + {B} * ({length}) / ({average})))"


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    """``items`` in lists of ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Counts:
    """How many documents match an expression of the index (a namespace's tag: how many it
    holds, the ``N`` of a word's rarity; a word: how many hold it, its ``df``), counted by a
    store now and then and remembered for :attr:`TTL` seconds: rarity need not be exact to
    the last write, and counting a common word costs as much as finding it."""

    TTL = 30.0

    def __init__(self) -> None:
        self._counts: dict[str, tuple[float, int]] = {}

    def missing(self, expressions: Sequence[str]) -> list[str]:
        """Those of ``expressions`` not counted lately."""
        now = time.monotonic()
        return [
            e for e in dict.fromkeys(expressions)
            if (found := self._counts.get(e)) is None or now - found[0] > self.TTL
        ]  # fmt: skip

    def put(self, expression: str, count: int) -> None:
        if len(self._counts) > 100_000:
            self._counts.clear()
        self._counts[expression] = (time.monotonic(), count)

    def __getitem__(self, expression: str) -> int:
        return self._counts[expression][1]

    def weights(self, markers: Sequence[str], groups: Sequence[str]) -> list[float]:
        """The rarity of each group of words, among the documents of the namespaces whose
        markers (tags) are given; every expression counted before."""
        docs = sum(self[marker] for marker in markers)
        return [idf(docs, self[group]) for group in groups]


def budget_terms() -> tuple[bool, int | None]:
    """How the values of a search's hits fit the batch's read budget, for its SQL: whether
    the first may have any size, and how many bytes the values may add up to (``None``: no
    budget). A hit whose value would not fit comes without it, and :func:`search_hits`
    refuses the search before anything is read (see :class:`ReadBudget`)."""
    budget = read_budget.get()
    if budget is None:
        return False, None
    return budget.reads == 0, budget.limit - budget.spent


class JsonFields(ABC):
    """How one engine reads a top-level field of a value's JSON text in SQL (``where``).

    ``VALUE`` in the SQL it writes stands for the value's JSON text; the backend replaces it.
    """

    placeholder = "?"

    @abstractmethod
    def equal(self, field: str, value: Scalar) -> tuple[str, list[Any]]:
        """SQL true when the field holds ``value`` (a JSON scalar of the same type)."""

    @abstractmethod
    def compare(self, field: str, op: str, value: str | int | float) -> tuple[str, list[Any]]:
        """SQL true when the field ``op`` (``<``, ``>``, ...) ``value``: numbers with numbers,
        strings with strings."""

    def one_of(self, field: str, values: list[Scalar]) -> tuple[str, list[Any]]:
        """SQL true when the field holds one of ``values`` (``$in``)."""
        tests = [self.equal(field, item) for item in values]
        return "(" + " OR ".join(t for t, _ in tests) + ")", [p for _, ps in tests for p in ps]

    def where(self, found: list[Condition]) -> tuple[str, list[Any]]:
        """A whole filter: ``AND`` and each condition, with its parameters."""
        parts: list[str] = []
        params: list[Any] = []
        for condition in found:
            sql, values = self.condition(condition)
            parts.append(f" AND {sql}")
            params.extend(values)
        return "".join(parts), params

    def condition(self, condition: Condition) -> tuple[str, list[Any]]:
        field, op, value = condition
        if op == "$eq":
            return self.equal(field, value)
        if op == "$ne":
            sql, params = self.equal(field, value)
            return f"NOT coalesce({sql}, FALSE)", params
        if op == "$in":
            return self.one_of(field, value)
        if isinstance(value, bool) or value is None:
            return "FALSE", []  # order holds between numbers, or between strings, only
        return self.compare(field, _ORDER[op], value)


_ORDER = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def search_scope(op: Search, mark: str, no_slash: str) -> tuple[list[str], list[Any]]:
    """The SQL conditions (on ``e``, the entries) and parameters of the keys a search covers:
    its namespace, or those that start with its namespace prefix (never botwire's own, which
    hold a ``/``: ``no_slash`` says so in the engine's SQL), and its key prefix. ``mark`` is
    the engine's parameter placeholder."""
    scope: list[str] = []
    params: list[Any] = []
    if op.ns is not None:
        scope.append(f"e.ns = {mark}")
        params.append(op.ns)
    else:
        scope.append(f"e.ns >= {mark} AND {no_slash}")
        params.append(op.ns_prefix)
        if (upper := prefix_upper_bound(op.ns_prefix)) is not None:
            scope.append(f"e.ns < {mark}")
            params.append(upper)
    if op.prefix:
        scope.append(f"e.key >= {mark}")
        params.append(op.prefix)
        if (upper := prefix_upper_bound(op.prefix)) is not None:
            scope.append(f"e.key < {mark}")
            params.append(upper)
    return scope, params


def search_hits(rows: list[Any]) -> list[SearchHit]:
    """Hits from the rows of a search, best first, one row per matching document:
    ``(ns, key, best score, updated_at, created_at, kind, list_lo, item seq, size, value)``;
    the documents of one key follow each other, its best items first. ``value`` is ``None``
    where it did not fit the read budget (see :func:`budget_terms`): then nothing is
    returned, and the budget says why."""
    hits: list[SearchHit] = []
    last = None
    budget = read_budget.get()
    for ns, key, best, updated, created, kind, lo, seq, size, value in rows:
        if budget is not None:
            budget.charge(size)
        if value is None:  # the charge above refused it; a guard for a store that erred
            raise ValueTooLarge("a search's values do not fit the read budget", size=size)
        if (ns, key) != last:
            last = (ns, key)
            if kind == VALUE:
                hits.append(SearchHit(ns, key, float(best), value, None, updated, created))
                continue
            hits.append(SearchHit(ns, key, float(best), None, [], updated, created))
        items = hits[-1].items
        if kind == LIST and items is not None:
            items.append((seq - (lo or 0), value))
    return hits


# -- results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One item of a list value that matched: its position in the list and its value."""

    position: int
    value: Any


@dataclass(frozen=True)
class Hit:
    """A key that matched a search, best first.

    ``value`` is the key's value; for a list, ``value`` is ``None`` and ``items`` holds the
    items that matched (best first), not the whole list. ``score`` is the engine's relevance
    (higher is better; comparable within one result, not between stores).
    """

    key: str
    value: Any
    score: float
    items: list[Item] | None = None
    namespace: str = field(default="")
    created_at: datetime | None = None
    updated_at: datetime | None = None
    """When the key was first written, and last (UTC)."""


def search_op(
    ns: str | None, query: str, prefix: str | None, where: object, limit: int, match: str = "all"
) -> Search:
    """A :class:`Search` operation, every argument checked (``InvalidRequest`` says which)."""
    parse_query(query, match)
    return Search(
        ns,
        query,
        check_prefix(prefix),
        check_where(where),
        check_int(limit, "limit", 1, MAX_LIMIT),
        match=match,
    )


def hits(found: list[SearchHit]) -> list[Hit]:
    """The hits a store answered, with their values decoded."""
    decoded = []
    for hit in found:
        value = None if hit.value is None else decode_value(hit.value)
        items = None
        if hit.items is not None:
            items = [Item(position, decode_value(text)) for position, text in hit.items]
        decoded.append(Hit(hit.key, value, hit.score, items, hit.ns,
                           utc_datetime(hit.created_at), utc_datetime(hit.updated_at)))  # fmt: skip
    return decoded
