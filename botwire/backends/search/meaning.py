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
import math
from array import array
from collections import Counter
from collections.abc import Generator, Sequence
from typing import Any, NamedTuple

from botwire.backends.base import Search, SearchHit
from botwire.backends.common import LIST
from botwire.backends.search.sql import Dialect, ranked_sql, shown_keys
from botwire.backends.search.text import is_text, strings
from botwire.errors import InvalidRequest

FIRST_CANDIDATES = 200
"""Documents a meaning search first hands to the ranking (at least 2 per key it may show)."""
LIST_CANDIDATES = 8
"""Documents per key a meaning search hands to the ranking at most for its lists' items."""


def embed_text(json_text: str) -> str | None:
    """What an embedder reads of a value given as JSON text; ``None`` when it holds no text."""
    value = json.loads(json_text)
    found = [value] if isinstance(value, str) else list(strings(value))
    text = "\n".join(string for string in found if string.strip() and is_text(string))
    return text or None


class Spread(NamedTuple):
    """How similar the documents in a search's scope are to its query: how many, their mean
    similarity and its standard deviation."""

    documents: int
    mean: float
    deviation: float


class Similar:
    """How similar each document in a search's scope is to its query: the documents' entry
    ids and seqs, and their scores (cosine similarities), side by side (numpy arrays, or
    lists without numpy)."""

    def __init__(self, entry_ids: Any, seqs: Any, scores: Any) -> None:
        self.entry_ids, self.seqs, self.scores = entry_ids, seqs, scores

    @classmethod
    def of_rows(cls, query: bytes, rows: Sequence[Any]) -> Similar:
        """The similarity to ``query`` of the documents of ``rows``: ``(entry_id, seq,
        vector)``, every vector unit length (the cosine is the dot product)."""
        entry_ids = [row[0] for row in rows]
        seqs = [row[1] for row in rows]
        try:
            import numpy as np
        except ImportError:  # exact, only slower
            q = array("f", query)
            scores = [sum(a * b for a, b in zip(array("f", row[2]), q, strict=False))
                      for row in rows]  # fmt: skip
            return cls(entry_ids, seqs, scores)
        if not rows:
            return cls(entry_ids, seqs, np.zeros(0, dtype=np.float32))
        matrix = np.frombuffer(b"".join(row[2] for row in rows), dtype=np.float32)
        matrix = matrix.reshape(len(rows), -1)
        return cls(entry_ids, seqs, matrix @ np.frombuffer(query, dtype=np.float32))

    def __len__(self) -> int:
        return len(self.scores)

    def best(self, take: int) -> list[list[Any]]:
        """The ``take`` most similar documents, most similar first: ``[entry_id, seq,
        score]``."""
        order: Any
        if isinstance(self.scores, list):
            order = sorted(range(len(self.scores)), key=self.scores.__getitem__, reverse=True)
            order = order[:take]
        else:
            import numpy as np

            order = np.arange(len(self.scores))
            if take < len(order):
                order = np.argpartition(-self.scores, take)[:take]
            order = order[np.argsort(-self.scores[order], kind="stable")]
        return [[int(self.entry_ids[i]), int(self.seqs[i]), float(self.scores[i])] for i in order]

    def short(self, rows: list[Any], limit: int) -> bool:
        """Whether a list among ``rows`` (:func:`ranked_sql`'s) shows fewer items than
        ``limit`` while more of its items are in scope."""
        shown: dict[int, int] = {}
        for row in rows:
            if row[5] == LIST and not row[10]:  # kind, near
                shown[row[15]] = shown.get(row[15], 0) + 1  # by entry id
        short = [entry for entry, items in shown.items() if items < limit]
        if not short:
            return False
        if isinstance(self.entry_ids, list):
            held = Counter(entry for entry in self.entry_ids if entry in shown)
        else:
            import numpy as np

            found = self.entry_ids[np.isin(self.entry_ids, short)]
            held = Counter(int(entry) for entry in found)
        return any(shown[entry] < held[entry] for entry in short)

    def spread(self) -> Spread:
        """The :class:`Spread` of the similarities."""
        if not len(self.scores):
            return Spread(0, 0.0, 1.0)
        if isinstance(self.scores, list):
            mean = math.fsum(self.scores) / len(self.scores)
            square = math.fsum((x - mean) ** 2 for x in self.scores)
            deviation = math.sqrt(square / len(self.scores))
        else:
            mean = float(self.scores.mean(dtype="float64"))
            deviation = float(self.scores.std(dtype="float64"))
        return Spread(len(self.scores), mean, deviation or 1.0)


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
    d: Dialect, op: Search, now: int, similar: Similar
) -> Generator[Statement, list[Any], list[Any]]:
    """The rows of :func:`ranked_sql` (for :func:`search_hits`) of a meaning search, as
    statements to run, from how ``similar`` each document in its scope is to its query:
    the ranking of the most similar, more of them while the filters leave too few keys (or,
    up to :data:`LIST_CANDIDATES` a key, while a list shows fewer items than it may)."""
    take = max(FIRST_CANDIDATES, shown_keys(op) * 2)
    while True:
        chosen = similar.best(take)
        p = d.params()
        triples = d.scored.format(p(json.dumps(chosen)))
        candidates = f"SELECT s.*, 1, {d.no_digest}, 1 FROM ({triples}) s"
        ranked = yield ranked_sql(d, p, op, now, candidates), p.values
        enough = len({(row[0], row[1]) for row in ranked}) >= op.limit
        items = take >= shown_keys(op) * LIST_CANDIDATES or not similar.short(ranked, op.limit)
        if take >= len(similar) or (enough and items):
            return ranked
        take *= 4


def query_vector(op: Search) -> tuple[str, bytes]:
    """The model and the vector of a meaning search's query; a clear error when it has none."""
    model = check_meaning(op)
    assert op.vectors is not None and op.vectors.items[0] is not None
    return model, op.vectors.items[0]


# -- hybrid: both rankings, fused --------------------------------------------------------------

HYBRID_POOL = 30
"""Keys each ranking hands to the fusion (at least; more when a search shows more)."""
MEANING_WEIGHT = 1.0
"""How much a standard deviation of similarity weighs beside one of word relevance, where a
search does not say (an embedder's own is calibrated)."""


def pooled(op: Search) -> Search:
    """The search each ranking of a hybrid search runs: its pool of keys."""
    return op._replace(limit=max(op.limit, HYBRID_POOL))


def fuse(
    words: list[SearchHit],
    meaning: list[SearchHit],
    spread: Spread,
    limit: int,
    weight: float | None = None,
) -> list[SearchHit]:
    """The hits of a hybrid search from those of its two rankings (each its pool of keys, best
    first), ``limit`` of them with each list's best ``limit`` items.

    Each ranking's scores are taken as standard scores over every document in the search's
    scope: a similarity against the mean and deviation of all of them (``spread``), a word
    relevance against the same over the documents, where one that holds no word of the query
    scores 0. A key's hybrid score is its words' standard score plus ``weight`` times its
    meaning's (a key outside the words' pool counts as holding no word of the query, one
    outside the meaning's pool as that pool's last). A key shows when it holds a word of the
    query or, by meaning (where meaning weighs), stands out from the average document.
    ``weight`` is the embedder's, calibrated
    (:mod:`~botwire.backends.search.calibration`): from 0 (words alone) for a model that
    would only blur the words' ranking, up to meaning alone for one that beats it.
    """
    weight = MEANING_WEIGHT if weight is None else weight
    count = max(spread.documents, len(words), 1)
    scores = [hit.score for hit in words]
    mean = math.fsum(scores) / count
    square = math.fsum((x - mean) ** 2 for x in scores) + (count - len(scores)) * mean**2
    deviation = math.sqrt(square / count) or 1.0
    by_words = {(hit.ns, hit.key): (hit.score - mean) / deviation for hit in words}
    by_meaning = {(h.ns, h.key): (h.score - spread.mean) / spread.deviation for h in meaning}
    no_words = -mean / deviation  # as a document that holds no word of the query
    no_meaning = min(by_meaning.values(), default=0.0)
    found = {(hit.ns, hit.key): hit for hit in meaning}
    found.update({(hit.ns, hit.key): hit for hit in words})  # a list's items as words found
    fused = {
        key: by_words.get(key, no_words) + weight * by_meaning.get(key, no_meaning) for key in found
    }
    ranked = sorted(found, key=lambda key: (-fused[key], -found[key].updated_at))
    best = [key for key in ranked if key in by_words or (weight > 0 and by_meaning[key] > 0)]
    return [_trimmed(found[key]._replace(score=fused[key]), limit) for key in best[:limit]]


def _trimmed(hit: SearchHit, limit: int) -> SearchHit:
    """``hit`` with its best ``limit`` items only."""
    if hit.items is None or len(hit.items) <= limit:
        return hit
    return hit._replace(items=hit.items[:limit])
