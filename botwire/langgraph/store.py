"""``BotWireStore``: LangGraph long-term memory on any botwire store.

A LangGraph namespace (a tuple of labels) is a botwire namespace: ``{namespace_prefix}:`` and
each label followed by ``.`` (labels hold no ``.``; ``/``, ``%`` and control characters are
escaped), so that a prefix such as ``("users", "1")`` is the text prefix ``users.1.`` and never
matches ``("users", "10")``. An item is a key whose value is the item's own dict (so ``Memory`` and
the other integrations read it as it is), with its embeddings under ``"__vectors__"`` when the
store embeds; its timestamps are the key's own.
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from langgraph.store.base import (
    BaseStore,
    GetOp,
    IndexConfig,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
    ensure_embeddings,
    get_text_at_path,
    tokenize_path,
    validate_op_namespace,
)

from botwire import _values, config
from botwire._plans import Entry
from botwire.errors import InvalidRequest, InvalidValue
from botwire.langgraph._filters import check_filter as _check_filter
from botwire.langgraph._filters import matches as _matches
from botwire.langgraph._filters import narrowing as _narrowing
from botwire.langgraph._names import escape, unescape
from botwire.langgraph._steps import Call, Driver, Steps
from botwire.telemetry import traced

VECTORS = "__vectors__"
"""The field of a stored item that holds its embeddings (numbers: never searched as text)."""
TEXT_CANDIDATES = 1000
"""Most items one search of the store reads: a text query ranks its best this many."""


class _Found(NamedTuple):
    labels: tuple[str, ...]
    entry: Entry
    score: float | None = None


class BotWireStore(BaseStore):
    """A LangGraph ``BaseStore`` kept in botwire: facts an agent keeps across threads, shared
    by every process on the store (the embedded file, ``botwire serve`` or PostgreSQL).

    ``search`` follows LangGraph's store semantics (those of its ``InMemoryStore``): without a
    query, the newest items first; with ``index``, a query ranks by the cosine similarity of
    embeddings computed on ``put`` (numpy when installed) of the index's ``fields``, by default
    ``"$"``, the whole value; without one, a query ranks the items that share its words first
    (botwire's search for questions, with a score; by words and meaning where the store has an
    embedder: ``$BOTWIRE_EMBEDDER``, or a server's), then lists every other item, newest first.
    Filters take LangGraph's operators (``$eq``, ``$ne``, ``$gt``, ``$gte``, ``$lt``, ``$lte``),
    nested values and lists, compared as LangGraph compares; they run in the store's SQL.

    Args:
        url: the store (default ``$BOTWIRE_URL``, else the embedded file).
        namespace_prefix: the botwire namespaces of the items start with it.
        index: ``{"embed": ..., "dims": ..., "fields": [...]}`` as LangGraph's stores take it.
        ttl: LangGraph's ``TTLConfig``: ``default_ttl`` in minutes for new items, and
            ``refresh_on_read`` (default ``True``) to restart an item's expiry when it is read.

    Example::

        store = BotWireStore()
        store.put(("users", "42"), "prefs", {"units": "metric"})
        graph = builder.compile(checkpointer=BotWireSaver(), store=store)
    """

    supports_ttl = True

    def __init__(
        self,
        url: str | None = None,
        *,
        namespace_prefix: str = "langgraph",
        index: IndexConfig | None = None,
        ttl: TTLConfig | None = None,
    ) -> None:
        self.url = url
        self.namespace_prefix = _values.check_namespace(namespace_prefix)
        self.ttl_config = ttl
        self.index_config = index
        self.embeddings = ensure_embeddings(index.get("embed")) if index else None
        self._fields = _fields(index)
        self._driver = Driver(url)

    def __repr__(self) -> str:
        return f"BotWireStore(namespace_prefix={self.namespace_prefix!r})"

    # -- namespaces ----------------------------------------------------------------------------

    def _namespace(self, labels: Sequence[str]) -> str:
        encoded = "".join(escape(label, "/") + "." for label in labels)
        return _values.check_namespace(f"{self.namespace_prefix}:{encoded}")

    def _labels(self, namespace: str) -> tuple[str, ...]:
        return _labels(namespace[len(self.namespace_prefix) + 1 : -1])

    # -- the batch -----------------------------------------------------------------------------

    @traced("botwire.langgraph.store.batch")
    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run LangGraph's operations: reads first, as they see the store before the batch,
        then the writes (the last put of a key wins)."""
        ops = self._check(ops)
        texts = self._texts(ops)
        vectors = self.embeddings.embed_documents(texts) if texts and self.embeddings else []
        queries = self._queries(ops)
        asked = [self.embeddings.embed_query(q) for q in queries] if self.embeddings else []
        results: list[Result] = self._driver.run(
            self._batch(ops, dict(zip(texts, vectors, strict=True)),
                        dict(zip(queries, asked, strict=True)))
        )  # fmt: skip
        return results

    @traced("botwire.langgraph.store.batch")
    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Async :meth:`batch` (``AsyncMemory``, and the embeddings' async methods)."""
        ops = self._check(ops)
        texts = self._texts(ops)
        vectors = (await self.embeddings.aembed_documents(texts)
                   if texts and self.embeddings else [])  # fmt: skip
        queries = self._queries(ops)
        asked = [await self.embeddings.aembed_query(q) for q in queries] if self.embeddings else []
        results: list[Result] = await self._driver.arun(
            self._batch(ops, dict(zip(texts, vectors, strict=True)),
                        dict(zip(queries, asked, strict=True)))
        )  # fmt: skip
        return results

    def setup(self) -> None:
        """Create or upgrade the store's tables now. Optional: botwire does it when a store is
        first used (``PostgresStore`` and ``SqliteStore`` need the call)."""
        self._driver.backend.migrate()

    async def asetup(self) -> None:
        """Async :meth:`setup`."""
        await asyncio.to_thread(self._driver.backend.migrate)

    def close(self) -> None:
        """Close the store's connections (they reopen if it is used again)."""
        self._driver.close()

    def _check(self, ops: Iterable[Op]) -> list[Op]:
        """The batch's operations, every one checked before any runs."""
        checked = list(ops)
        for op in checked:
            if not isinstance(op, (GetOp, PutOp, SearchOp, ListNamespacesOp)):
                raise InvalidRequest(f"unknown LangGraph store operation: {op!r:.80}")
            validate_op_namespace(op)
            if isinstance(op, (GetOp, PutOp)):
                self._namespace(op.namespace)
                _values.check_key(op.key)
            if isinstance(op, SearchOp) and op.filter:
                _check_filter(op.filter)
            if isinstance(op, PutOp):
                if op.value is not None and not isinstance(op.value, dict):
                    raise InvalidValue(f"a store item's value is a dict, not {op.value!r:.60}")
                if op.value is not None:  # refused here, before any op of the batch runs
                    if VECTORS in op.value:
                        raise InvalidValue(f"{VECTORS!r} is a field botwire keeps for itself")
                    _values.encode_value(op.value, config.max_value_bytes())
                if op.ttl is not None and (not isinstance(op.ttl, (int, float)) or op.ttl <= 0):
                    raise InvalidRequest(f"ttl is a positive number of minutes, not {op.ttl!r}")
        return checked

    def _paths(self, op: PutOp) -> list[str]:
        if op.index is False or op.value is None or self.embeddings is None:
            return []
        return self._fields if op.index is None else list(op.index)

    def _texts(self, ops: list[Op]) -> list[str]:
        """The texts the batch's puts embed (each once)."""
        found: dict[str, None] = {}
        for op in ops:
            if isinstance(op, PutOp):
                for path in self._paths(op):
                    found.update(dict.fromkeys(get_text_at_path(op.value, path)))
        return list(found)

    def _queries(self, ops: list[Op]) -> list[str]:
        """The queries the batch's searches embed (none without an index)."""
        if self.embeddings is None:
            return []
        return list({op.query: None for op in ops if isinstance(op, SearchOp) and op.query})

    def _batch(
        self, ops: list[Op], vectors: dict[str, list[float]], queries: dict[str, list[float]]
    ) -> Steps:
        results: list[Result] = [None] * len(ops)
        gets: dict[tuple[str, bool], list[int]] = defaultdict(list)
        for number, op in enumerate(ops):
            if isinstance(op, GetOp):
                gets[(self._namespace(op.namespace), self._refresh(op.refresh_ttl))].append(number)
        for (namespace, refresh), numbers in gets.items():
            keys = [ops[n].key for n in numbers]  # type: ignore[union-attr]
            entries = yield Call(namespace, "entries", (keys,), {"refresh_ttl": refresh})
            for n in numbers:
                op = ops[n]
                assert isinstance(op, GetOp)
                if (entry := entries.get(op.key)) is not None:
                    results[n] = _item(op.namespace, entry)
        namespaces: list[str] | None = None
        for number, op in enumerate(ops):
            if isinstance(op, SearchOp):
                results[number] = yield from self._search(op, queries.get(op.query or ""))
            elif isinstance(op, ListNamespacesOp):
                if namespaces is None:
                    namespaces = yield Call(None, "list_namespaces", (f"{self.namespace_prefix}:",))
                results[number] = self._list_namespaces(op, namespaces)
        yield from self._write([op for op in ops if isinstance(op, PutOp)], vectors)
        return results

    def _refresh(self, asked: bool) -> bool:
        """Whether a read restarts expiries: when asked and the store has a TTL config that
        does not turn it off (without one, nothing expires unless a put said so)."""
        return bool(asked and self.ttl_config and self.ttl_config.get("refresh_on_read", True))

    def _write(self, puts: list[PutOp], vectors: dict[str, list[float]]) -> Steps:
        last = {(op.namespace, op.key): op for op in puts}
        deletes: dict[str, list[str]] = defaultdict(list)
        writes: dict[tuple[str, float | None], dict[str, Any]] = defaultdict(dict)
        for op in last.values():
            namespace = self._namespace(op.namespace)
            if op.value is None:
                deletes[namespace].append(op.key)
                continue
            record: dict[str, Any] = dict(op.value)
            embedded = self._embedded(op, vectors)
            if embedded:
                record[VECTORS] = embedded
            ttl = None if op.ttl is None else op.ttl * 60
            writes[(namespace, ttl)][op.key] = record
        for namespace, keys in deletes.items():
            yield Call(namespace, "delete_many", (keys,))
        for (namespace, ttl), records in writes.items():
            yield Call(namespace, "set_many", (records,), {"ttl": ttl})

    def _embedded(self, op: PutOp, vectors: dict[str, list[float]]) -> dict[str, list[float]]:
        found: dict[str, list[float]] = {}
        for path in self._paths(op):
            texts = get_text_at_path(op.value, path)
            for number, text in enumerate(texts):
                found[f"{path}.{number}" if len(texts) > 1 else path] = vectors[text]
        return found

    # -- search --------------------------------------------------------------------------------

    def _search(self, op: SearchOp, query_vector: list[float] | None) -> Steps:
        prefix = self._namespace(op.namespace_prefix) if op.namespace_prefix else (
            f"{self.namespace_prefix}:")  # fmt: skip
        wanted = op.offset + op.limit
        if query_vector is not None:  # every item passing the filter, by similarity
            found = yield from self._matching("", prefix, op.filter, None)
            items = _by_similarity(found, query_vector, op.offset, op.limit)
        else:  # those that match the query's words, best first; then the others, newest first
            found = []
            if op.query:
                found = yield from self._matching(op.query, prefix, op.filter, wanted)
            if len(found) < wanted:
                shown = {(f.labels, f.entry.key) for f in found}
                newest = yield from self._matching("", prefix, op.filter, wanted)
                found += [f for f in newest if (f.labels, f.entry.key) not in shown]
            items = [_search_item(f) for f in found[op.offset : wanted]]
        yield from self._touch(items, op.refresh_ttl)
        return items

    def _matching(
        self, query: str, prefix: str, filter: dict[str, Any] | None, count: int | None
    ) -> Steps:
        """The first ``count`` items under ``prefix`` (every one with ``None``) that pass
        LangGraph's ``filter``: those that match ``query``'s words, best first (the best
        :data:`TEXT_CANDIDATES` of them), or with ``query=""`` all, newest first.

        The store's search reads them, narrowed in SQL by a filter every match passes
        (:func:`_narrowing`, most often exactly the matches) and decided here; when the
        filter left too few, it reads more. Where the store's search is off, or more items
        are wanted than a search returns, every item is read."""
        where = _narrowing(filter)
        limit = min(count or TEXT_CANDIDATES, TEXT_CANDIDATES)
        while True:
            try:
                hits = yield Call(None, "search_namespaces", (query, prefix), {
                    "limit": limit, "match": "any", "where": where, "distinct": False,
                    "mode": "auto" if query else "words"})  # fmt: skip
            except InvalidRequest:  # ?search=off
                found = [] if query else (yield from self._scan(prefix))
                break
            found = [
                _Found(self._labels(hit.namespace),
                       Entry(hit.key, hit.value, 0, hit.created_at, hit.updated_at, None),
                       hit.score if query else None)
                for hit in hits if _is_item(hit.value) and _matches(hit.value, filter)
            ]  # fmt: skip
            complete = len(hits) < limit
            if complete or (count is not None and len(found) >= count) or (
                query and limit >= TEXT_CANDIDATES
            ):  # fmt: skip
                break
            if limit >= TEXT_CANDIDATES:  # more than a search returns: read them all
                found = yield from self._scan(prefix)
                break
            limit = min(limit * 4, TEXT_CANDIDATES)
        found = [f for f in found if _matches(f.entry.value, filter)]
        if not query:
            found.sort(key=lambda f: f.entry.updated_at, reverse=True)
        return found if count is None else found[:count]

    def _scan(self, prefix: str) -> Steps:
        """Every item in the namespaces that start with ``prefix``, namespace by namespace."""
        found: list[_Found] = []
        namespaces = yield Call(None, "list_namespaces", (prefix,))
        for namespace in namespaces:
            keys = yield Call(namespace, "keys")
            entries = (yield Call(namespace, "entries", (keys,))) if keys else {}
            labels = self._labels(namespace)
            found.extend(_Found(labels, e) for e in entries.values() if _is_item(e.value))
        return found

    def _touch(self, items: list[SearchItem], asked: bool) -> Steps:
        if not self._refresh(asked):
            return
        keys: dict[str, list[str]] = defaultdict(list)
        for item in items:
            keys[self._namespace(item.namespace)].append(item.key)
        for namespace, names in keys.items():
            yield Call(namespace, "entries", (names,), {"refresh_ttl": True})

    # -- namespaces ----------------------------------------------------------------------------

    def _list_namespaces(self, op: ListNamespacesOp, namespaces: list[str]) -> list[Any]:
        found = [self._labels(namespace) for namespace in namespaces]
        if op.match_conditions:
            found = [ns for ns in found if all(_does_match(c, ns) for c in op.match_conditions)]
        if op.max_depth is not None:
            found = sorted({ns[: op.max_depth] for ns in found})
        else:
            found = sorted(found)
        return found[op.offset : op.offset + op.limit]


@functools.lru_cache(maxsize=4096)
def _labels(body: str) -> tuple[str, ...]:
    """A LangGraph namespace from the part of a botwire namespace after the prefix."""
    return tuple(unescape(label) for label in body.split("."))


def _fields(index: IndexConfig | None) -> list[str]:
    """The paths of an item's value that the store embeds: the index's ``fields`` (or, as
    ``SqliteStore`` names them, ``text_fields``), by default ``"$"``, the whole value."""
    config: dict[str, Any] = dict(index or {})
    fields = config.get("fields") or config.get("text_fields") or ["$"]
    if isinstance(fields, str):
        fields = [fields]
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise InvalidRequest(f"an index's fields are a list of paths, not {fields!r:.60}")
    for path in fields:
        if path != "$":
            tokenize_path(path)
    return fields


def _is_item(value: Any) -> bool:
    return isinstance(value, dict)


def _own(value: dict[str, Any]) -> dict[str, Any]:
    """An item's value without what the store keeps beside it."""
    return {k: v for k, v in value.items() if k != VECTORS} if VECTORS in value else value


def _item(labels: tuple[str, ...], entry: Entry) -> Item:
    return Item(value=_own(entry.value), key=entry.key, namespace=labels,
                created_at=entry.created_at, updated_at=entry.updated_at)  # fmt: skip


def _search_item(found: _Found) -> SearchItem:
    entry = found.entry
    return SearchItem(found.labels, entry.key, _own(entry.value), entry.created_at,
                      entry.updated_at, found.score)  # fmt: skip


def _by_similarity(
    found: list[_Found], query: list[float], offset: int, limit: int
) -> list[SearchItem]:
    """Items by the best cosine similarity of any of their vectors to ``query``; those without
    vectors after them, oldest first, as LangGraph's ``InMemoryStore`` ranks."""
    scored: list[tuple[float, _Found]] = []
    scoreless: list[_Found] = []
    for item in found:
        vectors = list((item.entry.value.get(VECTORS) or {}).values())
        if vectors:
            scored.append((max(_cosine(query, vectors)), item))
        else:
            scoreless.append(item)
    scored.sort(key=lambda pair: pair[0], reverse=True)
    scoreless.sort(key=lambda item: item.entry.created_at)  # oldest first, as InMemoryStore
    kept = [
        _search_item(item._replace(score=score)) for score, item in scored[offset : offset + limit]
    ]
    if len(kept) < limit:
        kept.extend(_search_item(item) for item in scoreless[: limit - len(kept)])
    return kept


def _cosine(query: list[float], vectors: list[list[float]]) -> list[float]:
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy comes with most installs
        norm = math.sqrt(sum(x * x for x in query))
        found = []
        for vector in vectors:
            other = math.sqrt(sum(x * x for x in vector))
            dot = sum(a * b for a, b in zip(query, vector, strict=False))
            found.append(dot / (norm * other) if norm and other else 0.0)
        return found
    matrix = np.array(vectors, dtype=float)
    norms = np.linalg.norm(matrix, axis=1) * np.linalg.norm(np.array(query, dtype=float))
    dots = matrix @ np.array(query, dtype=float)
    similarity = np.divide(dots, norms, out=np.zeros_like(dots), where=norms != 0)
    return [float(x) for x in similarity]


def _does_match(condition: MatchCondition, labels: tuple[str, ...]) -> bool:
    path = condition.path
    if len(labels) < len(path):
        return False
    if condition.match_type == "prefix":
        pairs = zip(labels, path, strict=False)
    elif condition.match_type == "suffix":
        pairs = zip(reversed(labels), reversed(path), strict=False)
    else:
        raise InvalidRequest(f"unknown namespace match type {condition.match_type!r}")
    return all(want == "*" or have == want for have, want in pairs)
