"""Recall by meaning: what an embedder reads of a value, and the exact search over the stored
vectors that every engine shares.

A value's (or list item's) text for its embedder is every string of it that search indexes
(see :func:`~botwire.backends.search.text.strings`), in order; a value without any has no
vector. A search reads the vectors of its scope made by the query's model (never another
model's), scores each by its cosine similarity with the query (vectors are unit length: the
dot product), and hands the best documents to :func:`~botwire.backends.search.sql.ranked_sql`
as candidates, which applies the search's filters and shapes its hits exactly as a word search
does. When the filters leave fewer keys than the search may show, it takes more candidates,
up to every vector in scope.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Callable, Generator, Sequence
from typing import Any

from botwire.backends.base import Search
from botwire.backends.search.filters import Params
from botwire.backends.search.sql import Dialect, ranked_sql, shown_keys
from botwire.backends.search.text import is_text, strings
from botwire.errors import InvalidRequest

FIRST_CANDIDATES = 200
"""Documents a meaning search first hands to the ranking (at least 8 per key it may show)."""


def embed_text(json_text: str) -> str | None:
    """What an embedder reads of a value given as JSON text; ``None`` when it holds no text."""
    value = json.loads(json_text)
    found = [value] if isinstance(value, str) else list(strings(value))
    text = "\n".join(string for string in found if string.strip() and is_text(string))
    return text or None


def similarities(query: bytes, vectors: Sequence[bytes]) -> list[float]:
    """The cosine similarity of each of ``vectors`` with ``query`` (all unit length)."""
    if not vectors:
        return []
    try:
        import numpy as np
    except ImportError:  # exact, only slower
        q = array("f", query)
        return [sum(a * b for a, b in zip(array("f", v), q, strict=False)) for v in vectors]
    matrix = np.frombuffer(b"".join(vectors), dtype=np.float32).reshape(len(vectors), -1)
    scores: Any = matrix @ np.frombuffer(query, dtype=np.float32)
    return [float(x) for x in scores]


def check_meaning(op: Search) -> str:
    """The model of a meaning search's query vector; a clear error when it has none."""
    if op.vectors is None or not op.vectors.items or op.vectors.items[0] is None:
        raise InvalidRequest(
            "a search by meaning needs an embedder: Memory(..., embedder=...), or a server "
            "started with --embedder"
        )
    return op.vectors.model


Statement = tuple[str, Any]
"""SQL and its parameters, for the engine to run in the search's transaction."""


def meaning_steps(
    d: Dialect, op: Search, now: int, documents: Callable[[Params, str], str]
) -> Generator[Statement, list[Any], list[Any]]:
    """The rows of :func:`ranked_sql` (for :func:`search_hits`) of a meaning search, as
    statements to run: first ``documents(p, model)``, the engine's SQL that reads
    ``(entry_id, seq, vector)`` of every vector in the search's scope (:func:`search_scope`,
    on ``e``) made by ``model``; then the ranking of the most similar, more of them while the
    filters leave too few keys."""
    model = check_meaning(op)
    assert op.vectors is not None and op.vectors.items[0] is not None
    p = d.params()
    found = yield documents(p, model), p.values
    scores = similarities(op.vectors.items[0], [vector for _, _, vector in found])
    order = sorted(range(len(scores)), key=scores.__getitem__, reverse=True)
    take = max(FIRST_CANDIDATES, shown_keys(op) * 8)
    while True:
        # The chosen documents as literals (numbers this code made): any number of them fits
        # in one statement, where parameters would not.
        rows = ", ".join(
            f"({int(found[i][0])}, {int(found[i][1])}, {float(scores[i])!r}, 1,"
            f" {d.no_digest}, 1)"
            for i in order[:take]
        )  # fmt: skip
        candidates = f"VALUES {rows}" if rows else (
            f"SELECT 0, 0, 0.0, 1, {d.no_digest}, 1 WHERE 1 = 0"
        )  # fmt: skip
        p = d.params()
        ranked = yield ranked_sql(d, p, op, now, candidates), p.values
        if len({(row[0], row[1]) for row in ranked}) >= op.limit or take >= len(order):
            return ranked
        take *= 4
