"""Results: the hits a search returns, decoded, and the search operation a call builds."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from botwire._values import check_int, check_prefix, check_ttl, decode_value, utc_datetime
from botwire.backends.base import Search, SearchHit
from botwire.backends.search.filters import check_where
from botwire.backends.search.query import MAX_LIMIT, parse_query
from botwire.errors import InvalidRequest


@dataclass(frozen=True)
class Item:
    """One item of a list value that matched: its position in the list and its value."""

    position: int
    value: Any


@dataclass(frozen=True)
class Hit:
    """A key that matched a search, best first.

    ``value`` is the key's value; for a list, ``value`` is ``None`` and ``items`` holds the
    items that matched (best first), not the whole list. ``score`` is the relevance: higher
    is better (BM25, the same on every store; see the README's Search section).
    """

    key: str
    value: Any
    score: float
    items: list[Item] | None = None
    namespace: str = field(default="")
    created_at: datetime | None = None
    updated_at: datetime | None = None
    """When the key was first written, and last (UTC)."""
    context: list[Item] | None = None
    """With ``context=n``, a list's matching items and the ``n`` items before and after each,
    in list order (a chat turn with the question before it and the answer after it)."""


MAX_CONTEXT = 50
"""Most items before and after a matching item that a search brings with it."""


MODES = ("words", "meaning", "hybrid", "auto")
"""How a search ranks: by the words of the query, by its meaning (an embedder's vectors), by
both (see :func:`botwire.backends.search.meaning.fuse`), or ``auto``: by both where the store
has an embedder (the memory's, or the server's), else by words."""


def search_op(
    ns: str | None,
    query: str,
    prefix: str | None,
    where: object,
    limit: int,
    match: str = "all",
    *,
    context: int = 0,
    recency: float | timedelta | None = None,
    distinct: bool | None = None,
    mode: str = "words",
) -> Search:
    """A :class:`Search` operation, every argument checked (``InvalidRequest`` says which)."""
    parse_query(query, match)
    if mode not in MODES:
        raise InvalidRequest(f"mode is one of {', '.join(map(repr, MODES))}, not {mode!r}")
    if distinct is not None and not isinstance(distinct, bool):
        raise InvalidRequest(f"distinct is True, False or None, not {distinct!r}")
    return Search(
        ns,
        query,
        check_prefix(prefix),
        check_where(where),
        check_int(limit, "limit", 1, MAX_LIMIT),
        match=match,
        context=check_int(context, "context", 0, MAX_CONTEXT),
        recency=None if recency is None else check_ttl(recency),
        distinct=distinct,
        mode=None if mode == "words" else mode,
    )


def hits(found: list[SearchHit]) -> list[Hit]:
    """The hits a store answered, with their values decoded."""
    decoded = []
    for hit in found:
        value = None if hit.value is None else decode_value(hit.value)
        items = context = None
        if hit.items is not None:
            items = [Item(position, decode_value(text)) for position, text in hit.items]
            if hit.context is not None:
                around = [Item(position, decode_value(text)) for position, text in hit.context]
                context = sorted(items + around, key=lambda item: item.position)
        decoded.append(Hit(hit.key, value, hit.score, items, hit.ns,
                           utc_datetime(hit.created_at), utc_datetime(hit.updated_at),
                           context))  # fmt: skip
    return decoded
