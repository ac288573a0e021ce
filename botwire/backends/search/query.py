"""Queries: what a user or a model typed, as groups of words to look for."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import zip_longest
from typing import NamedTuple

from botwire.backends.search.text import (
    COMMON_WORDS,
    DEFAULT_LANGUAGE,
    _runs,
    terms,
    words,
)
from botwire.errors import InvalidRequest

MAX_QUERY_CHARS = 1000
MAX_QUERY_WORDS = 32
"""Most words a search looks for: each one is a lookup in the index."""
MAX_COMMON_WORDS = 8
"""Most common words (``the``, ``my``) a ``match="any"`` query keeps beside its telling ones."""
COMMON_WEIGHT = 0.2
"""What a common word weighs beside telling words, as a share of its rarity."""
COMMON_MIN_RARITY = 1.0
"""A common word held by more than a third of the documents (its rarity below this) is left
out of a search: it would tell them apart little, and cost as much as finding them all."""
MAX_LIMIT = 1000
MATCHES = ("all", "any")


class Weighed(NamedTuple):
    """A group of a query as a search looks it up."""

    expression: str
    """The group in the engine's syntax."""
    weight: float
    telling: bool
    """``False`` for a common word, which alone does not make a document a match."""


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
    common: tuple[bool, ...] = ()
    """With ``match="any"``, which groups are common words (:data:`COMMON_WORDS`) beside
    telling ones: they weigh :data:`COMMON_WEIGHT` of their rarity, so that they add to a
    document that holds the telling words, and never outrank one."""

    def weighed(self, expressions: Sequence[str], rarities: Sequence[float]) -> list[Weighed]:
        """The groups a search looks up (each group's ``expression`` in the engine's syntax),
        with their weights in the ranking from their ``rarities``: a common word weighs
        :data:`COMMON_WEIGHT` of its rarity, and one that most documents hold is left out."""
        found = []
        for expression, rarity, common in zip_longest(expressions, rarities, self.common):
            if not common:
                found.append(Weighed(expression, rarity, True))
            elif rarity >= COMMON_MIN_RARITY:
                found.append(Weighed(expression, rarity * COMMON_WEIGHT, False))
        return found

    def fts5_groups(self, tags: Sequence[str], language: str = DEFAULT_LANGUAGE) -> list[str]:
        """Each group as an FTS5 ``MATCH`` expression over the namespaces of ``tags``, in a
        store of ``language``: every word a quoted token, so that none is an operator."""
        return [
            " OR ".join(f'"{" ".join(tag + t for t in phrase)}"{star}' for tag in tags
                        for phrase, star in alternatives)
            for alternatives in self._alternatives(language, "*")
        ]  # fmt: skip

    def tsquery_groups(self, tags: Sequence[str], language: str = DEFAULT_LANGUAGE) -> list[str]:
        """Each group as a PostgreSQL ``tsquery`` over the namespaces of ``tags``, in a store
        of ``language``: every word a quoted lexeme (a ``tsquery`` literal, which no text
        search configuration changes)."""

        def lexemes(tag: str, phrase: tuple[str, ...]) -> str:
            return " <-> ".join(f"'{tag}{term}'" for term in phrase)

        return [
            " | ".join(f"({lexemes(tag, phrase)}{star})" for tag in tags
                       for phrase, star in alternatives)
            for alternatives in self._alternatives(language, ":*")
        ]  # fmt: skip

    def _alternatives(self, language: str, star: str) -> list[list[tuple[tuple[str, ...], str]]]:
        """For each group, the phrases of indexed terms that match it, each with the mark of a
        prefix or none: its terms; and for the last word when it is a prefix, the word typed so
        far as the beginning of a term, or its whole term (``hiking`` is also ``hike``). The
        index holds terms, so a prefix typed past a word's stem finds it no more (``happin``
        does not find ``happiness``, whose term is ``happi``)."""
        found = []
        last = len(self.groups) - 1
        for number, group in enumerate(self.groups):
            phrase = tuple(terms(group, language))
            if self.prefix and number == last:
                found.append([((group[0],), star)] + ([(phrase, "")] if phrase != group else []))
            else:
                found.append([(phrase, "")])
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
    common: tuple[bool, ...] = ()
    if check_match(match) == "any":
        flags = [len(g) == 1 and g[0] in COMMON_WORDS for g in parsed.groups]
        if not all(flags):  # common words count for little beside telling ones, and a few do
            kept = [n for n, flag in enumerate(flags) if not flag or n in _first_common(flags)]
            prefix = parsed.prefix and kept[-1] == len(parsed.groups) - 1 and not flags[-1]
            common = tuple(flags[n] for n in kept)
            parsed = parsed._replace(groups=tuple(parsed.groups[n] for n in kept), prefix=prefix)
        parsed = parsed._replace(any=True, common=common)
    if sum(len(g) for g, c in zip_longest(parsed.groups, common) if not c) > MAX_QUERY_WORDS:
        raise InvalidRequest(
            f"a search query has at most {MAX_QUERY_WORDS} words (besides common ones such as "
            "'the' with match='any'); keep the words that tell what to find"
        )
    return parsed


def _first_common(flags: list[bool]) -> set[int]:
    """The positions of the first :data:`MAX_COMMON_WORDS` common words."""
    return set([n for n, flag in enumerate(flags) if flag][:MAX_COMMON_WORDS])


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


def coverage(query: str, text: str, language: str = DEFAULT_LANGUAGE) -> float:
    """The share of ``query``'s words (and phrases) that ``text`` contains, from 0.0 to 1.0, as
    ``match="any"`` reads the query in a store of ``language``: a relevance that means the
    same on every store."""
    parsed = parse_query(query, "any")
    if not parsed.groups:
        return 0.0
    found = terms(words(text), language)
    present = set(found)
    raw = set(words(text))
    last = len(parsed.groups) - 1
    telling = [
        n for n, common in zip_longest(range(len(parsed.groups)), parsed.common) if not common
    ]
    matched = 0
    for number in telling:
        group = parsed.groups[number]
        wanted = tuple(terms(group, language))
        if len(group) == 1:
            if wanted[0] in present or (
                parsed.prefix and number == last and any(w.startswith(group[0]) for w in raw)
            ):
                matched += 1
        elif any(tuple(found[i : i + len(wanted)]) == wanted for i in range(len(found))):
            matched += 1
    return matched / len(telling)
