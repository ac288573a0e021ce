"""A store with an embedder: the vectors of what a batch writes go with it, in its
transaction, and a search by meaning gets its query's vector.

A memory given ``embedder=`` runs its batches through :class:`Embedding`, and so does a
server started with ``--embedder`` (its clients send text). The texts of one batch are
embedded in one call, before the batch runs: a write then waits for the embedder, as it must
for its vectors to be written with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Sequence
from typing import Any

from botwire.backends.base import (
    Append,
    Backend,
    Change,
    Changes,
    Embed,
    Op,
    Put,
    Search,
    Unembedded,
    Vectors,
)
from botwire.backends.search.meaning import embed_text
from botwire.embedders import Embedder
from botwire.errors import BackendUnavailable

log = logging.getLogger("botwire")

REINDEX_PAGE = 500
"""Values and items a reindex reads, embeds and stores at a time (one transaction each)."""
MEANING = ("meaning", "hybrid", "auto")
"""The search modes that need the query's vector."""


class Embedding(Backend):
    """``backend``, with ``embedder`` making the vectors of its writes and searches."""

    def __init__(self, backend: Backend, embedder: Embedder) -> None:
        super().__init__()
        self.backend, self.embedder = backend, embedder
        self.url = backend.url
        self.clock = backend.clock
        self.indexer = Indexer(self) if embedder.background else None

    def __repr__(self) -> str:
        return f"Embedding({self.backend!r}, {self.embedder!r})"

    def execute(self, ops: Sequence[Op]) -> list[Any]:
        if self.indexer is not None:  # values get their vectors later, in the background
            results = self._execute(ops)
            self.indexer.written(ops)
            return results
        return self._execute(ops)

    async def aexecute(self, ops: Sequence[Op]) -> list[Any]:
        if self.indexer is not None:
            results = await self._aexecute(ops)
            self.indexer.written(ops)
            return results
        return await self._aexecute(ops)

    def _execute(self, ops: Sequence[Op]) -> list[Any]:
        texts, fill = _texts(ops, self.indexer is None)
        if not texts:
            return self.backend.execute(ops)
        try:
            vectors = self.embedder.documents(texts[0]) if texts[0] else []
            queries = [self.embedder.query(text) for text in texts[1]]
            model, weight = self.embedder.fingerprint, self._weight(ops)
        except BackendUnavailable:
            raise
        except Exception as exc:
            raise self._failed(exc) from exc
        results = self.backend.execute(fill(model, vectors, queries, weight))
        for ns in self._to_look(ops, model):
            steps = _unembedded(ns, model)
            with _never_fails(), contextlib.suppress(StopIteration):
                page = next(steps)
                while True:
                    page = steps.send(self.backend.execute([page])[0])
        return results

    async def _aexecute(self, ops: Sequence[Op]) -> list[Any]:
        texts, fill = _texts(ops, self.indexer is None)
        if not texts:
            return await self.backend.aexecute(ops)
        try:
            vectors = await self.embedder.adocuments(texts[0]) if texts[0] else []
            queries = [await self.embedder.aquery(text) for text in texts[1]]
            model = await self.embedder.afingerprint()
            weight = await asyncio.to_thread(self._weight, ops)
        except BackendUnavailable:
            raise
        except Exception as exc:
            raise self._failed(exc) from exc
        results = await self.backend.aexecute(fill(model, vectors, queries, weight))
        for ns in self._to_look(ops, model):
            steps = _unembedded(ns, model)
            with _never_fails(), contextlib.suppress(StopIteration):
                page = next(steps)
                while True:
                    page = steps.send((await self.backend.aexecute([page]))[0])
        return results

    def _to_look(self, ops: Sequence[Op], model: str) -> list[str]:
        """The namespaces searched by meaning whose values without a vector of ``model`` this
        process has not looked for yet (none with a background embedder, whose backlog is
        expected)."""
        if self.indexer is not None:
            return []
        found = [op.ns for op in ops if type(op) is Search and op.mode in MEANING
                 and op.ns is not None and (self.url, op.ns, model) not in _looked]  # fmt: skip
        if len(_looked) > 100_000:  # a server of many namespaces: look again, in time
            _looked.clear()
        _looked.update((self.url, ns, model) for ns in found)
        return list(dict.fromkeys(found))

    def _failed(self, exc: Exception) -> BackendUnavailable:
        """What a batch raises when the embedder fails (it ran none of its operations): the
        store is as good as unreachable for it (a server answers 503), whatever the cause."""
        return BackendUnavailable(
            f"the embedder {self.embedder!r} failed, so nothing was written or searched: "
            f"{type(exc).__name__}: {exc}"
        )

    def _weight(self, ops: Sequence[Op]) -> float | None:
        """The embedder's weight in a hybrid search, where the batch holds one."""
        if not any(type(op) is Search and op.mode in ("hybrid", "auto") for op in ops):
            return None
        from botwire.backends.search.calibration import hybrid_weight

        return hybrid_weight(self.backend, self.embedder)

    def reindex(self, ns: str, progress: Callable[[int], None] | None = None) -> int:
        """Embed what ``ns`` holds without a vector of this embedder's model (values written
        before it was configured, or by another model), a page at a time; return how many
        vectors were stored. ``progress(n)`` after each page: the values and items it read."""
        model = self.embedder.fingerprint
        after, stored = (0, -2), 0
        while True:
            (page,) = self.backend.execute([Unembedded(ns, model, after, REINDEX_PAGE)])
            if not page:
                return stored
            texts = [(unit, text) for unit in page if (text := embed_text(unit[3])) is not None]
            vectors = self.embedder.documents([text for _, text in texts])
            units = tuple((unit[0], unit[1], unit[3], vector)
                          for (unit, _), vector in zip(texts, vectors, strict=True))  # fmt: skip
            if units:
                (count,) = self.backend.execute([Embed(ns, model, units)])
                stored += count
            if progress is not None:
                progress(len(page))
            after = (page[-1][0], page[-1][1])

    def now(self) -> int:
        return self.backend.now()

    def watcher(self) -> Any:
        return self.backend.watcher()

    def follow(self, op: Changes) -> Generator[Change, None, None]:
        return self.backend.follow(op)

    def afollow(self, op: Changes) -> AsyncIterator[Change]:
        return self.backend.afollow(op)

    def afollow_batches(
        self, op: Changes, idle: float | None = None
    ) -> AsyncIterator[list[Change]]:
        return self.backend.afollow_batches(op, idle)

    def migrate(self, progress: Callable[[int, int], None] | None = None) -> int:
        return self.backend.migrate(progress)

    def close(self) -> None:
        self.backend.close()

    async def aclose(self) -> None:
        await self.backend.aclose()


Fill = Callable[[str, list[bytes], list[bytes], float | None], list[Op]]


_looked: set[tuple[str, str, str]] = set()
"""The stores, namespaces and models whose values without a vector this process looked for."""


@contextlib.contextmanager
def _never_fails() -> Iterator[None]:
    """A look that fails (the store went away meanwhile) costs the search nothing."""
    try:
        yield
    except Exception:
        log.debug("looking for values without a vector failed", exc_info=True)


LOOKED_PAGES = 2
"""Pages of values without a vector that the first search by meaning of a namespace reads
(:func:`_unembedded`): a namespace of numbers only is not read to its end."""


def _unembedded(ns: str, model: str) -> Generator[Unembedded, list[Any], None]:
    """Look for values (and list items) of ``ns`` with text and without a vector of
    ``model`` (each :class:`Unembedded` sent its page back), and warn once where there are:
    a search by meaning does not see them until a reindex embeds them."""
    after = (0, -2)
    for _ in range(LOOKED_PAGES):
        page = yield Unembedded(ns, model, after, REINDEX_PAGE)
        if any(embed_text(unit[3]) is not None for unit in page):
            log.warning(
                "namespace %r holds values without a vector of the model %s (written before "
                "the embedder, without it, or with another model): a search by meaning does "
                "not see them until they are embedded: Memory(%r, ..., embedder=...).reindex(), "
                "or botwire reindex %s --embedder NAME",
                ns, model, ns, ns,
            )  # fmt: skip
            return
        if len(page) < REINDEX_PAGE:
            return
        after = (page[-1][0], page[-1][1])


def _texts(
    ops: Sequence[Op], values_too: bool = True
) -> tuple[tuple[list[str], list[str]] | None, Fill]:
    """What a batch needs embedded (the texts of its values, in order, unless
    ``values_too`` is false, and its meaning searches' queries), and how to put the vectors
    into its operations; ``None`` when nothing."""
    values: list[str] = []
    queries: list[str] = []
    plans: list[tuple[int, list[int | None]]] = []  # op index, each value's text or None
    for index, op in enumerate(ops):
        ns = getattr(op, "ns", None)
        if isinstance(ns, str) and "/" in ns:  # botwire's own (tokens, webhooks): never embedded
            continue
        if isinstance(op, (Put, Append)) and not op.searchable:
            continue  # kept out of the search index: no vector either
        if type(op) is Put and op.vectors is None and values_too:
            plans.append((index, [_add(values, embed_text(op.value))]))
        elif type(op) is Append and op.vectors is None and values_too:
            plans.append((index, [_add(values, embed_text(value)) for value in op.values]))
        elif type(op) is Search and op.mode in MEANING and op.vectors is None:
            plans.append((index, [-1 - len(queries)]))
            queries.append(op.query)

    def fill(
        model: str, vectors: list[bytes], found: list[bytes], weight: float | None
    ) -> list[Op]:
        filled = list(ops)
        for index, at in plans:
            op = filled[index]
            if type(op) is Search:
                query = at[0]
                assert query is not None
                vector = Vectors(model, (found[-1 - query],))
                filled[index] = op._replace(vectors=vector, weight=op.weight or weight)
                continue
            items = tuple(None if n is None else vectors[n] for n in at)
            if any(item is not None for item in items) and isinstance(op, (Put, Append)):
                filled[index] = op._replace(vectors=Vectors(model, items))
        return filled

    if not values and not queries:
        return None, fill
    return (values, queries), fill


def _add(texts: list[str], text: str | None) -> int | None:
    """Add ``text`` to ``texts``; its index (``None`` for no text)."""
    if text is None:
        return None
    texts.append(text)
    return len(texts) - 1


class Indexer:
    """Gives what a process writes its vectors after the write, in a thread of its own, for an
    embedder that is slow or remote (``Embedder(..., background=True)``): a write never waits
    for it, and a search finds a value by meaning once its vector is stored (by words at
    once). :attr:`backlog` is how many values and items written here wait; an embedder that
    fails is tried again after a pause (``RETRY_SECONDS``, doubling up to a minute), and
    nothing is lost meanwhile: what has no vector is found again by its namespace's next
    pass (or by ``reindex``)."""

    RETRY_SECONDS = 1.0

    def __init__(self, embedding: Embedding) -> None:
        self.embedding = embedding
        self._lock = threading.Condition()
        self._due: dict[str, int] = {}  # namespace: values and items written, waiting
        self._busy = 0
        self._thread: threading.Thread | None = None
        self._pid = 0

    @property
    def backlog(self) -> int:
        """Values and items written by this process that wait for their vectors."""
        with self._lock:
            return sum(self._due.values()) + self._busy

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the backlog is empty (or ``timeout`` seconds); whether it is."""
        with self._lock:
            return self._lock.wait_for(lambda: not self._due and not self._busy, timeout)

    def written(self, ops: Sequence[Op]) -> None:
        """Note the values and list items a batch wrote, for the thread to embed."""
        due: dict[str, int] = {}
        for op in ops:
            if isinstance(op, (Put, Append)) and op.searchable and "/" not in op.ns:
                count = len(op.values) if isinstance(op, Append) else 1
                due[op.ns] = due.get(op.ns, 0) + count
        if not due:
            return
        with self._lock:
            for ns, count in due.items():
                self._due[ns] = self._due.get(ns, 0) + count
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="botwire-indexer")  # fmt: skip
                self._thread.start()
            self._lock.notify_all()

    def _run(self) -> None:
        pause = self.RETRY_SECONDS
        while True:
            with self._lock:
                self._lock.wait_for(lambda: bool(self._due))
                ns, count = next(iter(self._due.items()))
                del self._due[ns]
                self._busy = count
            try:
                self.embedding.reindex(ns)
            except Exception as exc:  # the embedder or the store: try again later
                log.warning("botwire: vectors of %r wait: %s", ns, exc)
                with self._lock:
                    self._due[ns] = self._due.get(ns, 0) + count
                    self._busy = 0
                time.sleep(pause)
                pause = min(pause * 2, 60.0)
                continue
            pause = self.RETRY_SECONDS
            with self._lock:
                self._busy = 0
                self._lock.notify_all()
