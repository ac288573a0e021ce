"""What an adapter shows a model from earlier sessions: the memories relevant to the message it is
about to answer, found by search, and, when fewer than asked for match, the newest others, so
that a model with memories is never shown nothing.

Every adapter that recalls (AutoGen's memory, the AG2 capability, the LangChain retriever, the
MCP and CrewAI tools) asks here, so they all find the same memories for the same message: a
relevance search (``match="any"``: rare words weigh more, common ones little, each text once)
over the places the adapter keeps memories (:class:`Source`), in one round trip; by words and
meaning together (``mode="auto"``) where the store has an embedder (``BOTWIRE_EMBEDDER``, the
memory's ``embedder=``, or the server's ``--embedder``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from botwire._memory import AsyncMemory, Memory
from botwire._plans import _MemoryBase, _Plan
from botwire.backends.base import Search
from botwire.backends.search import (
    COMMON_WORDS,
    MAX_QUERY_WORDS,
    Hit,
    hits,
    parse_query,
    search_op,
    words,
)
from botwire.errors import InvalidRequest


class Source(NamedTuple):
    """Where an adapter keeps memories: a namespace, or one list in it (``key``: each item a
    memory), or its keys that start with ``prefix``; with ``where``, only the dict values (and
    list items) that pass the filter (see :meth:`Memory.search`)."""

    memory: _MemoryBase
    key: str | None = None
    prefix: str | None = None
    where: Mapping[str, Any] | None = None


class Recalled(NamedTuple):
    """One memory shown to a model."""

    namespace: str
    key: str
    position: int | None
    """The item's position, for a memory that is an item of a list."""
    value: Any
    relevant: bool
    """Found by the search; ``False``: one of the newest others, shown because fewer matched."""
    around: tuple[Any, ...] = ()
    """With ``context``: the items before and after it in its list (a chat turn's question
    and answer), the memory itself among them."""


def question(text: str) -> str:
    """``text`` (a message to answer) as a search query: its words, no phrases, and at most
    the last :data:`MAX_QUERY_WORDS` telling ones of a long message (its question is most
    often at its end)."""
    plain = text.replace('"', " ")
    try:
        parse_query(plain, "any")
    except InvalidRequest:
        found = words(plain)
        telling = [w for w in dict.fromkeys(reversed(found)) if w not in COMMON_WORDS]
        plain = " ".join(reversed(telling[:MAX_QUERY_WORDS]))
    return plain


def _plan(sources: Sequence[Source], text: str, k: int, fill: bool, context: int) -> _Plan[Any]:
    if not sources:
        raise InvalidRequest("recall needs at least one source of memories")
    backend = sources[0].memory.backend
    if any(source.memory.backend is not backend for source in sources):
        raise InvalidRequest("the sources of one recall share a store")
    asked = question(text)
    asks: list[tuple[Search, Source]] = []
    for source in sources:
        prefix = source.key if source.key is not None else source.prefix
        ns = source.memory.namespace
        where = source.where
        if asked.strip():
            found = search_op(ns, asked, prefix, where, k, "any", context=context, mode="auto")
            asks.append((found, source))
        if fill:  # an empty query: the newest first
            asks.append((search_op(ns, "", prefix, where, k), source))

    def finish(results: list[Any]) -> list[Recalled]:
        relevant: list[tuple[float, Recalled]] = []
        newest: list[tuple[float, Recalled]] = []
        for (op, source), found in zip(asks, results, strict=True):
            for hit in hits(found):
                at = hit.updated_at.timestamp() if hit.updated_at else 0.0
                for memory in _memories(hit, source, bool(op.query), context):
                    if memory.relevant:
                        relevant.append((hit.score, memory))
                    else:
                        newest.append((at, memory))
        shown: list[Recalled] = []
        seen: set[tuple[str, str, int | None]] = set()
        for group in (relevant, newest):
            for _, memory in sorted(group, key=lambda pair: -pair[0]):
                place = (memory.namespace, memory.key, memory.position)
                if place not in seen and len(shown) < k:
                    seen.add(place)
                    shown.append(memory)
        return shown

    return _Plan([op for op, _ in asks], finish)


def _memories(hit: Hit, source: Source, relevant: bool, context: int) -> list[Recalled]:
    if source.key is not None and hit.key != source.key:
        return []  # a key that only starts like the list's
    if hit.items is None:
        return [Recalled(hit.namespace, hit.key, None, hit.value, relevant)]
    window = {item.position: item.value for item in hit.context or []}
    return [
        Recalled(hit.namespace, hit.key, item.position, item.value, relevant,
                 tuple(window[p] for p in sorted(window) if abs(p - item.position) <= context))
        for item in hit.items
    ]  # fmt: skip


def recall(
    sources: Sequence[Source], text: str, k: int = 5, *, fill: bool = True, context: int = 0
) -> list[Recalled]:
    """The ``k`` memories of ``sources`` most relevant to ``text``, best first; with ``fill``,
    when fewer match, the newest others after them (so that nothing is shown only when there
    are no memories). ``context``: bring each list memory's neighbours (see
    :attr:`Recalled.around`). One round trip; the sources share a store."""
    memory = sources[0].memory if sources else None
    if not isinstance(memory, Memory):
        raise TypeError("recall takes the sources of a Memory; arecall those of an AsyncMemory")
    return memory._run(_plan(sources, text, k, fill, context))


async def arecall(
    sources: Sequence[Source], text: str, k: int = 5, *, fill: bool = True, context: int = 0
) -> list[Recalled]:
    """Async twin of :func:`recall`."""
    memory = sources[0].memory if sources else None
    if not isinstance(memory, AsyncMemory):
        raise TypeError("arecall takes the sources of an AsyncMemory; recall those of a Memory")
    return await memory._run(_plan(sources, text, k, fill, context))


def matched_words(query: str, memory: Recalled) -> list[str]:
    """The words of ``query`` (as a relevance search reads it, common words aside) that a
    recalled memory holds in its value or its key, in any form: what a tool tells a model about
    a match."""
    from botwire.backends.search import DEFAULT_LANGUAGE, strings, terms

    parsed = parse_query(question(query), "any")
    value = memory.value
    text = value if isinstance(value, str) else " ".join(strings(value))
    present = set(terms(words(text) + words(memory.key), DEFAULT_LANGUAGE))
    found = []
    for group, common in zip(parsed.groups, parsed.common or [False] * len(parsed.groups),
                             strict=True):  # fmt: skip
        if not common and all(t in present for t in terms(group, DEFAULT_LANGUAGE)):
            found.append(" ".join(group))
    return found


__all__ = [
    "Recalled",
    "Source",
    "arecall",
    "matched_words",
    "question",
    "recall",
]
