"""``BotWireStorage``: CrewAI's own memory (``crewai.Memory``) kept in botwire.

CrewAI 1.x gives a crew one memory (``Memory(storage=...)``) whose records (text, a scope path,
categories, metadata, importance, an embedding) live in a ``StorageBackend``; by default a
LanceDB directory under ``./.crewai`` on one machine. ``BotWireStorage`` is that backend on a
botwire namespace: each record one key (its id), so crews on every machine that points at the
same store (a server, PostgreSQL) share one memory, and it survives restarts.

Vector search is exact: the records of the scope searched are read and ranked by cosine
similarity to the query's embedding.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from crewai.memory.storage.backend import EmbeddingDimensionMismatchError
from crewai.memory.types import MemoryRecord, ScopeInfo

from botwire._memory import AsyncMemory, Memory, on_store
from botwire.errors import VersionConflict
from botwire.telemetry import traced

PAGE = 500
"""Records read per round trip."""


def _in_scope(scope: str, prefix: str | None) -> bool:
    """Whether ``scope`` is ``prefix`` or below it, path segment by segment (``/team`` holds
    ``/team/a``, not ``/teams``)."""
    if prefix is None or not prefix.strip("/"):
        return True
    prefix = "/" + prefix.strip("/")
    return scope == prefix or scope.startswith(prefix + "/")


def _matches(
    record: MemoryRecord,
    categories: list[str] | None,
    metadata_filter: dict[str, Any] | None,
    older_than: datetime | None = None,
) -> bool:
    if categories and not any(c in record.categories for c in categories):
        return False
    if metadata_filter and any(record.metadata.get(k) != v for k, v in metadata_filter.items()):
        return False
    return older_than is None or record.created_at < older_than


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norms if norms else 0.0


class BotWireStorage:
    """A CrewAI memory ``StorageBackend`` on a botwire namespace.

    Args:
        namespace: the namespace that holds the records (one per crew, team or user).
        url: the store (default ``$BOTWIRE_URL``, else the embedded file).
        memory: an existing ``Memory`` whose store (and connections) to use instead of ``url``.

    Example::

        from crewai import Crew, Memory
        memory = Memory(storage=BotWireStorage("acme-crew", url="http://memory:8765"))
        crew = Crew(agents=[...], tasks=[...], memory=memory)
    """

    def __init__(
        self,
        namespace: str = "crewai-memory",
        *,
        url: str | None = None,
        memory: Memory | AsyncMemory | None = None,
    ) -> None:
        self._memory = on_store(Memory, namespace, url, memory)

    def __repr__(self) -> str:
        return f"BotWireStorage({self._memory.namespace!r})"

    # -- records -------------------------------------------------------------------------------

    @staticmethod
    def _dump(record: MemoryRecord) -> dict[str, Any]:
        return {**record.model_dump(mode="json"), "embedding": record.embedding}

    @staticmethod
    def _load(value: Any) -> MemoryRecord:
        return MemoryRecord.model_validate(value)

    def _records(self, scope_prefix: str | None = None) -> Iterator[MemoryRecord]:
        """Every record in ``scope_prefix``, a page of keys and values per round trip."""
        for value in self._memory.items().values():
            if not isinstance(value, dict):
                continue  # not a record: something else shares the namespace
            record = self._load(value)
            if _in_scope(record.scope, scope_prefix):
                yield record

    # -- the StorageBackend protocol -----------------------------------------------------------

    @traced("botwire.crewai.storage.save")
    def save(self, records: list[MemoryRecord]) -> None:
        """Store ``records`` atomically (a record with an existing id replaces it)."""
        if records:
            self._memory.set_many({record.id: self._dump(record) for record in records})

    def update(self, record: MemoryRecord) -> None:
        """Replace the record with ``record.id``."""
        self._memory.set(record.id, self._dump(record))

    def touch_records(self, record_ids: list[str]) -> None:
        """Mark records as just recalled (``last_accessed``); a record deleted or changed
        meanwhile is left as it is."""
        now = datetime.utcnow().isoformat()
        for key, entry in self._memory.entries(record_ids).items():
            if not isinstance(entry.value, dict):
                continue
            try:
                touched = {**entry.value, "last_accessed": now}
                self._memory.set(key, touched, if_version=entry.version)
            except VersionConflict:
                continue

    def get_record(self, record_id: str) -> MemoryRecord | None:
        value = self._memory.get(record_id)
        return None if value is None else self._load(value)

    @traced("botwire.crewai.storage.search")
    def search(
        self,
        query_embedding: list[float],
        scope_prefix: str | None = None,
        categories: list[str] | None = None,
        metadata_filter: dict[str, Any] | None = None,
        limit: int = 10,
        min_score: float = 0.0,
    ) -> list[tuple[MemoryRecord, float]]:
        """The records nearest ``query_embedding`` (cosine similarity), best first."""
        scored = []
        for record in self._records(scope_prefix):
            if not record.embedding or not _matches(record, categories, metadata_filter):
                continue
            if len(record.embedding) != len(query_embedding):
                raise EmbeddingDimensionMismatchError(len(record.embedding), len(query_embedding))
            score = _cosine(record.embedding, query_embedding)
            if score >= min_score:
                scored.append((record, score))
        scored.sort(key=lambda pair: pair[1], reverse=True)
        return scored[:limit]

    def delete(
        self,
        scope_prefix: str | None = None,
        categories: list[str] | None = None,
        record_ids: list[str] | None = None,
        older_than: datetime | None = None,
        metadata_filter: dict[str, Any] | None = None,
    ) -> int:
        """Delete the records that match every criterion given; return how many."""
        doomed = [
            record.id
            for record in self._records(scope_prefix)
            if (not record_ids or record.id in record_ids)
            and _matches(record, categories, metadata_filter, older_than)
        ]
        return sum(
            self._memory.delete_many(doomed[start : start + PAGE])
            for start in range(0, len(doomed), PAGE)
        )

    def list_records(
        self, scope_prefix: str | None = None, limit: int = 200, offset: int = 0
    ) -> list[MemoryRecord]:
        """Records in a scope, newest first."""
        if limit <= 0 or offset < 0:
            return []
        records = sorted(self._records(scope_prefix), key=lambda r: r.created_at, reverse=True)
        return records[offset : offset + limit]

    def get_scope_info(self, scope: str) -> ScopeInfo:
        path = "/" + scope.strip("/") if scope.strip("/") else "/"
        records = list(self._records(path))
        return ScopeInfo(
            path=path,
            record_count=len(records),
            categories=sorted({c for record in records for c in record.categories}),
            oldest_record=min((r.created_at for r in records), default=None),
            newest_record=max((r.created_at for r in records), default=None),
            child_scopes=self._children(path, records),
        )

    def list_scopes(self, parent: str = "/") -> list[str]:
        path = "/" + parent.strip("/") if parent.strip("/") else "/"
        return self._children(path, list(self._records(path)))

    @staticmethod
    def _children(path: str, records: list[MemoryRecord]) -> list[str]:
        """The immediate child scopes of ``path`` that hold records."""
        base = path.rstrip("/") + "/"
        children = set()
        for record in records:
            if record.scope.startswith(base):
                first = record.scope[len(base) :].split("/", 1)[0]
                if first:
                    children.add(base + first)
        return sorted(children)

    def list_categories(self, scope_prefix: str | None = None) -> dict[str, int]:
        counts: dict[str, int] = {}
        for record in self._records(scope_prefix):
            for category in record.categories:
                counts[category] = counts.get(category, 0) + 1
        return counts

    def count(self, scope_prefix: str | None = None) -> int:
        if scope_prefix is None or not scope_prefix.strip("/"):
            return len(self._memory.keys())
        return sum(1 for _ in self._records(scope_prefix))

    def reset(self, scope_prefix: str | None = None) -> None:
        """Delete every record (in ``scope_prefix``)."""
        if scope_prefix is None or not scope_prefix.strip("/"):
            self._memory.clear()
        else:
            self.delete(scope_prefix=scope_prefix)

    def close(self) -> None:
        """Nothing to close: the store's connections are shared."""

    # -- async: the same, off the event loop ---------------------------------------------------

    @traced("botwire.crewai.storage.save")
    async def asave(self, records: list[MemoryRecord]) -> None:
        await asyncio.to_thread(self.save, records)

    @traced("botwire.crewai.storage.search")
    async def asearch(
        self,
        query_embedding: list[float],
        scope_prefix: str | None = None,
        categories: list[str] | None = None,
        metadata_filter: dict[str, Any] | None = None,
        limit: int = 10,
        min_score: float = 0.0,
    ) -> list[tuple[MemoryRecord, float]]:
        return await asyncio.to_thread(
            self.search, query_embedding, scope_prefix, categories, metadata_filter, limit,
            min_score,
        )  # fmt: skip

    async def adelete(
        self,
        scope_prefix: str | None = None,
        categories: list[str] | None = None,
        record_ids: list[str] | None = None,
        older_than: datetime | None = None,
        metadata_filter: dict[str, Any] | None = None,
    ) -> int:
        return await asyncio.to_thread(
            self.delete, scope_prefix, categories, record_ids, older_than, metadata_filter
        )
