"""``Memory`` and ``AsyncMemory``: a namespaced key-value memory that survives restarts.

Both run the plans of :class:`~botwire._plans._MemoryBase`: ``Memory`` with
``backend.execute`` and ``AsyncMemory`` with ``backend.aexecute``; nothing else differs.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, Literal, TypeVar

from botwire import _values, config, telemetry
from botwire._plans import (
    Change,
    ChangesPage,
    Entry,
    T,
    Ttl,
    _backoff,
    _current,
    _lost_every_race,
    _MemoryBase,
    _Plan,
    change_of,
    embedding,
)
from botwire.backends import open_backend
from botwire.backends.base import (
    Get,
    ListNamespaces,
    Op,
    Search,
    arun_steps,
    run_steps,
)
from botwire.backends.search import Hit, hits, search_op
from botwire.errors import InvalidRequest, ValueTooLarge, VersionConflict

_UPDATE_ATTEMPTS = 100


class Memory(_MemoryBase):
    """A namespaced key-value memory that survives restarts and is shared by every process.

    Args:
        namespace: the memory's name (no ``/``); keys of one namespace never meet another's.
        url: where the store is: ``None`` uses ``$BOTWIRE_URL``, else an embedded SQLite file
            in the user data directory; ``sqlite:///path``, ``postgresql://...`` or
            ``http(s)://host:port`` (a ``botwire serve``).
        base_url: alias of ``url``, for code written against the hosted BotWire SDK.
        token: bearer token for a server (default ``$BOTWIRE_TOKEN``).
        timeout: seconds to wait for the store.
        max_value_bytes: largest value in bytes of JSON (default 1 MiB or
            ``$BOTWIRE_MAX_VALUE_BYTES``).
        embedder: turns text into vectors for ``search(..., mode="meaning")``: a callable
            ``list[str] -> list[list[float]]`` (sync or async), a ``"module:function"`` name
            (``"botwire.embedders:wordllama"``), a LangChain ``Embeddings``, or LangGraph's
            index config (see :mod:`botwire.embedders`). Each value (and list item) written
            through this memory is stored with its vector, in the same transaction.

    Example::

        mem = Memory("telegram-bot")
        mem.set("user_42_prefs", {"language": "en"}, ttl=3600)
        mem.get("user_42_prefs")   # {'language': 'en'}, after a restart too
    """

    def _execute(self, ops: list[Op]) -> list[Any]:
        if not self._debug and not telemetry.ENABLED:
            return self._backend.execute(ops)
        with self._observing(ops):
            return self._backend.execute(ops)

    def _run(self, plan: _Plan[T]) -> T:
        return plan.finish(self._execute(plan.ops))

    def backlog(self, wait: float = 0) -> int:
        """How many values and list items this process wrote that wait for their vectors (an
        embedder with ``background=True`` embeds them after the write; 0 for any other);
        with ``wait``, first wait up to that many seconds for none to be left."""
        from botwire.backends.embedding import Embedding

        indexer = self._backend.indexer if isinstance(self._backend, Embedding) else None
        if indexer is None:
            return 0
        if wait:
            indexer.wait(wait)
        return indexer.backlog

    def reindex(self, progress: Callable[[int], None] | None = None) -> int:
        """Give every value and list item of the namespace a vector of the memory's embedder:
        those written before it was configured, or with another model (a search compares a
        model's vectors only). Return how many vectors were stored; ``progress(n)`` after
        each page of ``n`` values and items read. Values written meanwhile get theirs as they
        are written.

        Raises:
            InvalidRequest: the memory has no embedder (``Memory(..., embedder=...)``), or it is
                a server's (the server embeds: ``botwire reindex`` on its store).
        """
        from botwire.backends.embedding import Embedding

        if not isinstance(self._backend, Embedding):
            raise InvalidRequest(
                "reindex needs the memory's embedder: Memory(..., embedder=...) on the store "
                "itself (for a server's store: botwire reindex --db URL --embedder NAME)"
            )
        return self._backend.reindex(self.namespace, progress)

    def close(self) -> None:
        """Release the connections to the store; they are opened again if the memory is used.

        ``with Memory(...) as mem:`` closes them at the end of the block. Memories on the same
        URL share connections, so this releases theirs too (they reopen them when used).
        """
        self._backend.close()

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def set(
        self,
        key: str,
        value: Any,
        ttl: Ttl = None,
        *,
        if_version: int | None = None,
        searchable: bool = True,
    ) -> int:
        """Store ``value`` (any JSON value) under ``key``; return the key's new version.

        Args:
            ttl: seconds (int, float or timedelta) until the key expires; ``None`` keeps it.
            if_version: write only if the stored version is still this (``0``: only if absent).
            searchable: ``False`` keeps the value out of the search index, by words and by
                meaning (cheaper writes, a smaller store: for data nobody searches); a later
                searchable write of the key puts it back.

        Raises:
            InvalidValue: (a TypeError) the value is not JSON; nothing is written.
            ValueTooLarge: the value's JSON is above ``max_value_bytes``.
            VersionConflict: ``if_version`` did not match.
        """
        return self._run(self._plan_set(key, value, ttl, if_version, searchable=searchable))

    def get(
        self,
        key: str,
        default: Any = None,
        *,
        refresh_ttl: bool = False,
        version: int | None = None,
        at: datetime | None = None,
    ) -> Any:
        """The value of ``key``, or ``default`` when it is missing or expired.

        ``refresh_ttl=True`` restarts the key's expiry with the ttl it was written with.
        ``version=`` (a version the key had) or ``at=`` (an aware datetime) read what the key
        held then, rebuilt from the change log: ``default`` where the log holds nothing of the
        key at or before that point (it did not exist, or the log no longer keeps that time),
        ``InvalidRequest`` where the log holds the point but no longer the whole value it was
        built from (an append whose list began before the log's retention).
        """
        if version is None and at is None:
            return self._run(self._plan_get(key, default, refresh_ttl))
        state, _ = run_steps(self._execute, self._state_steps(key, version, at))
        return default if state is None or not state[0] else state[1]

    def restore(self, key: str, *, version: int | None = None, at: datetime | None = None) -> int:
        """Write what ``key`` held at ``version`` (or at time ``at``) as its new version, if
        nothing wrote it since this call read it, keeping its expiry; return the new version.

        Raises:
            InvalidRequest: the key held nothing then, or the log no longer reaches back.
            VersionConflict: another writer changed it meanwhile (read, and try again).
        """
        state, current = run_steps(self._execute, self._state_steps(key, version, at))
        return self._run(self._plan_restore(key, state, current))

    def entry(self, key: str) -> Entry | None:
        """The value with its version and timestamps, or ``None`` when missing."""
        return self._run(self._plan_entry(key))

    def has(self, key: str) -> bool:
        """Whether ``key`` holds a live value, without fetching it (also ``key in memory``)."""
        return self._run(self._plan_contains(key))

    __contains__ = has

    def delete(self, key: str) -> bool:
        """Delete ``key``; ``True`` when there was something to delete."""
        return self._run(self._plan_delete(key))

    def keys(
        self,
        prefix: str | None = None,
        *,
        after: str | None = None,
        reverse: bool = False,
        limit: int | None = None,
    ) -> list[str]:
        """The live keys (those starting with ``prefix``), sorted, across all pages.

        Args:
            after: only the keys that come after this one in the listing's order.
            reverse: from the last key down (``keys("msg:", reverse=True, limit=1)``: the
                newest of keys that sort by time).
            limit: at most this many.
        """
        steps = self._keys_steps(prefix, after, reverse, limit)
        return [info.key for info in run_steps(self._execute, steps)]

    list_keys = keys

    def items(
        self,
        prefix: str | None = None,
        *,
        after: str | None = None,
        reverse: bool = False,
        limit: int | None = None,
    ) -> dict[str, Any]:
        """The live keys (those starting with ``prefix``) with their values, in the order
        :meth:`keys` lists them: a range read, each page of keys and values in one round trip
        (a server ends a page early at its ``max_response_bytes``). Arguments as for
        :meth:`keys`.

        Example::

            mem.items("msg:", reverse=True, limit=20)   # the newest 20 messages, newest first
        """
        steps = self._keys_steps(prefix, after, reverse, limit, values=True)
        return self._items(run_steps(self._execute, steps))

    def changes(
        self, since: int = 0, *, prefix: str | None = None, limit: int = 100, values: bool = True
    ) -> ChangesPage:
        """The changes of this memory after position ``since``, oldest first, in one round
        trip: a page of at most ``limit`` (up to 1,000), and the ``cursor`` to pass as
        ``since`` next. Paging on with each cursor sees every committed change once, in commit
        order, on every store; a change from before the log's retention is gone.

        Args:
            prefix: only the keys that start with it (a ``clear`` shows too).
            values: carry what each change wrote (``Change.value``).

        Example::

            page = mem.changes(since=cursor)
            for change in page.changes:
                print(change.op, change.key, change.value)
            cursor = page.cursor
        """
        return self._run(self._plan_changes(since, prefix, limit, values))

    def history(self, key: str, *, limit: int = 20) -> list[Change]:
        """What the change log holds of ``key``: its changes, newest first, with what each
        wrote, who wrote it and when."""
        return self._run(self._plan_history(key, limit))

    def watch(self, since: int | None = None, *, prefix: str | None = None) -> Iterator[Change]:
        """Every change of this memory as it commits, from any process or machine on the store,
        forever: after position ``since`` (a ``Change.seq`` or a page's cursor), or with
        ``None`` from now on. Leave the loop to stop; the store's connection for it closes.

        On the embedded store a change arrives within milliseconds of its commit, on
        PostgreSQL through LISTEN/NOTIFY, through ``botwire serve`` as server-sent events.

        Example::

            for change in mem.watch():
                print(change.actor, change.op, change.key, change.value)
        """
        changes = self._backend.follow(self._watch_op(since, prefix))
        try:
            for change in changes:
                yield change_of(change)
        finally:
            changes.close()

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The values of ``keys`` that exist, in one round trip (one snapshot); values more
        than a server answers at once (its ``max_response_bytes``) come in parts."""
        plan = self._plan_get_many(keys)
        try:
            return self._run(plan)
        except ValueTooLarge:
            if len(plan.ops) < 2:
                raise
        names = [op.key for op in plan.ops if isinstance(op, Get)]
        half = len(names) // 2
        return {**self.get_many(names[:half]), **self.get_many(names[half:])}

    def entries(self, keys: Iterable[str], *, refresh_ttl: bool = False) -> dict[str, Entry]:
        """The :class:`Entry` (value, version, timestamps) of each of ``keys`` that exists, in
        one round trip; ``refresh_ttl`` restarts each one's expiry, as ``get`` does."""
        return self._run(self._plan_entries(keys, refresh_ttl))

    def set_many(
        self, mapping: Mapping[str, Any], ttl: Ttl = None, *, searchable: bool = True
    ) -> None:
        """Store every item of ``mapping`` atomically, in one round trip (``searchable`` as
        for :meth:`set`)."""
        self._run(self._plan_set_many(mapping, ttl, searchable))

    def delete_many(self, keys: Iterable[str]) -> int:
        """Delete ``keys`` atomically; return how many existed."""
        return self._run(self._plan_delete_many(keys))

    def append(
        self,
        key: str,
        *values: Any,
        max_len: int | None = None,
        ttl: Ttl = None,
        keep_first: Mapping[str, Any] | None = None,
        searchable: bool = True,
    ) -> int:
        """Atomically append ``values`` to the list at ``key`` (created when missing).

        The cost does not grow with the list's length. Returns the new length.

        Args:
            max_len: keep only the newest ``max_len`` items (a window).
            ttl: restart the key's expiry: it expires ``ttl`` seconds from now (an idle chat
                expires; every append keeps it alive). ``None`` keeps its expiry.
            keep_first: when ``max_len`` trims the list, keep its first item if that is a dict
                holding these fields with equal values (``{"role": "system"}`` keeps the
                system prompt that opened a chat); it counts toward ``max_len``.
            searchable: ``False`` keeps these items out of the search index (see
                :meth:`set`); the list's other items keep their own.

        Raises:
            WrongType: ``key`` holds something else than a list; nothing changes.

        Example::

            mem.append("chat:42", {"role": "user", "content": "hi"}, max_len=50, ttl=86400)
        """
        return self._run(self._plan_append(key, values, max_len, ttl, keep_first, searchable))

    def incr(self, key: str, by: int = 1) -> int:
        """Atomically add ``by`` to the integer at ``key`` (missing counts as 0); return it.

        Raises:
            WrongType: ``key`` holds something else than an integer; nothing changes.
        """
        return self._run(self._plan_incr(key, by))

    def slice(
        self, key: str, start: int | None = None, stop: int | None = None, default: Any = None
    ) -> Any:
        """The items ``[start:stop]`` of the list at ``key`` (Python's slice rules: ``-20``
        starts 20 from the end), reading only those; ``default`` when the key is missing.

        Raises:
            WrongType: ``key`` holds something else than a list.

        Example::

            mem.slice("chat:42", -20)   # the newest 20 messages, whatever the chat's length
        """
        return self._run(self._plan_slice(key, start, stop, default))

    def update(self, key: str, fn: Callable[[Any], Any], default: Any = None) -> Any:
        """Atomically replace the value with ``fn(value)`` (``fn(default)`` when missing).

        ``fn`` may run more than once when other writers change the key meanwhile; no update
        is lost. Returns the value written. Exceptions from ``fn`` propagate; nothing is written.
        """
        last: VersionConflict | None = None
        for attempt in range(_UPDATE_ATTEMPTS):
            record = self._run(self._plan_read(key))
            new = fn(_current(record, default))
            try:
                self._run(self._plan_update_write(key, record, new))
                return new
            except VersionConflict as conflict:
                last = conflict
                time.sleep(_backoff(attempt))
        raise _lost_every_race(key, last, _UPDATE_ATTEMPTS)

    def expire(self, key: str, ttl: Ttl) -> bool:
        """Expire ``key`` in ``ttl`` seconds (``None``: never; ``0`` or less: now); ``False``
        when it is missing."""
        return self._run(self._plan_expire(key, ttl))

    def ttl(self, key: str) -> float | None:
        """Seconds until ``key`` expires; ``None`` when it never expires or is missing."""
        return self._run(self._plan_ttl(key))

    def clear(self) -> int:
        """Delete every key of this namespace; return how many there were."""
        return self._run(self._plan_clear())

    def search(
        self,
        query: str,
        *,
        prefix: str | None = None,
        where: Mapping[str, Any] | None = None,
        limit: int = 10,
        match: Literal["all", "any"] = "all",
        context: int = 0,
        recency: Ttl = None,
        distinct: bool | None = None,
        mode: Literal["words", "meaning", "hybrid", "auto"] = "words",
    ) -> list[Hit]:
        """Keys whose key or text matches ``query``, most relevant first, then newest first.

        Every word must match, in any case, with or without accents, and in any form of it
        (``hiking`` finds ``hiked``, ``grew`` finds ``grow``: the store's language, English by
        default); ``"quoted words"`` match as a phrase; the last word also matches as a prefix
        (``pyth`` finds ``Python``). Other characters (``*``, ``-``, ``AND``, a stray quote)
        are plain text. With ``match="any"``, any word is enough, which finds what is relevant
        to a question: rare words weigh more than common ones, keys that hold the question's
        telling words come first, and its common words (``what``, ``my``) count for little
        and, alone, only as a last resort. Each item of a list is searched on its own, and a
        list's hit carries its matching ``items`` (with their positions) instead of the whole
        list. An empty query lists every key that passes the filters, newest first.

        Args:
            prefix: only keys that start with it.
            where: conditions on top-level fields of dict values (and list items):
                ``{"role": "user", "stars": {"$gte": 4}, "tag": {"$in": ["a", "b"]}}``
                (``$eq``, ``$ne``, ``$gt``, ``$gte``, ``$lt``, ``$lte``, ``$in``).
            limit: most keys to return (1 to 1,000), and most items per list.
            match: ``"all"`` (every word must match) or ``"any"`` (one is enough).
            context: with each matching list item, the ``context`` items before and after it
                (up to 50), in ``Hit.context``: a chat turn with its question and answer.
            recency: a half-life (seconds or timedelta): a hit's score halves for each one
                since it was written, so that among equally relevant hits the newer wins.
            distinct: leave out keys (and list items) whose text reads as a better hit's;
                ``None``: yes with ``match="any"``, no otherwise.
            mode: ``"words"`` (the default); ``"meaning"``: the keys (and list items) whose
                text means what the query means, by the memory's embedder
                (``Memory(..., embedder=...)``), most similar first (``Hit.score``: the
                cosine similarity; only what was written with that embedder has vectors);
                ``"hybrid"``: both rankings fused (``Hit.score``: the sum of each one's
                standard score, see :func:`botwire.backends.search.meaning.fuse`);
                ``"auto"``: hybrid where the store has an embedder (this memory's, or the
                server's), else words.

        Example::

            mem.search("travel plans", where={"role": "user"}, limit=5)
            mem.search("what did I say about Lisbon?", match="any", context=1)
        """
        return self._run(
            self._plan_search(query, prefix, where, limit, match, context, recency, distinct, mode)
        )


class AsyncMemory(_MemoryBase):
    """``Memory`` with ``async`` methods; same arguments, same behaviour.

    Example::

        mem = AsyncMemory("discord-bot")
        await mem.append("chat:42", {"role": "user", "text": "hi"}, max_len=100)
        history = await mem.get("chat:42", [])
    """

    async def _execute(self, ops: list[Op]) -> list[Any]:
        if not self._debug and not telemetry.ENABLED:
            return await self._backend.aexecute(ops)
        with self._observing(ops):
            return await self._backend.aexecute(ops)

    async def _run(self, plan: _Plan[T]) -> T:
        return plan.finish(await self._execute(plan.ops))

    async def aclose(self) -> None:
        """Release the connections this event loop holds to the store (and the sync ones).

        ``async with AsyncMemory(...) as mem:`` does it at the end of the block. Without it,
        connections are closed when the event loop shuts down (``asyncio.run`` does that).
        """
        await self._backend.aclose()

    async def __aenter__(self) -> AsyncMemory:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def set(
        self,
        key: str,
        value: Any,
        ttl: Ttl = None,
        *,
        if_version: int | None = None,
        searchable: bool = True,
    ) -> int:
        """Store ``value`` under ``key``; see :meth:`Memory.set`."""
        plan = self._plan_set(key, value, ttl, if_version, searchable=searchable)
        return await self._run(plan)

    async def get(
        self,
        key: str,
        default: Any = None,
        *,
        refresh_ttl: bool = False,
        version: int | None = None,
        at: datetime | None = None,
    ) -> Any:
        """The value of ``key``, or ``default``; see :meth:`Memory.get`."""
        if version is None and at is None:
            return await self._run(self._plan_get(key, default, refresh_ttl))
        state, _ = await arun_steps(self._execute, self._state_steps(key, version, at))
        return default if state is None or not state[0] else state[1]

    async def restore(
        self, key: str, *, version: int | None = None, at: datetime | None = None
    ) -> int:
        """Write what ``key`` held then as its new version; see :meth:`Memory.restore`."""
        state, current = await arun_steps(self._execute, self._state_steps(key, version, at))
        return await self._run(self._plan_restore(key, state, current))

    async def entry(self, key: str) -> Entry | None:
        """The value with its version and timestamps; see :meth:`Memory.entry`."""
        return await self._run(self._plan_entry(key))

    async def has(self, key: str) -> bool:
        """Whether ``key`` holds a live value, without fetching it."""
        return await self._run(self._plan_contains(key))

    async def delete(self, key: str) -> bool:
        """Delete ``key``; see :meth:`Memory.delete`."""
        return await self._run(self._plan_delete(key))

    async def keys(
        self,
        prefix: str | None = None,
        *,
        after: str | None = None,
        reverse: bool = False,
        limit: int | None = None,
    ) -> list[str]:
        """The live keys, sorted; see :meth:`Memory.keys`."""
        steps = self._keys_steps(prefix, after, reverse, limit)
        return [info.key for info in await arun_steps(self._execute, steps)]

    list_keys = keys

    async def items(
        self,
        prefix: str | None = None,
        *,
        after: str | None = None,
        reverse: bool = False,
        limit: int | None = None,
    ) -> dict[str, Any]:
        """The live keys with their values, in key order; see :meth:`Memory.items`."""
        steps = self._keys_steps(prefix, after, reverse, limit, values=True)
        return self._items(await arun_steps(self._execute, steps))

    async def changes(
        self, since: int = 0, *, prefix: str | None = None, limit: int = 100, values: bool = True
    ) -> ChangesPage:
        """A page of this memory's changes after ``since``; see :meth:`Memory.changes`."""
        return await self._run(self._plan_changes(since, prefix, limit, values))

    async def history(self, key: str, *, limit: int = 20) -> list[Change]:
        """A key's changes, newest first; see :meth:`Memory.history`."""
        return await self._run(self._plan_history(key, limit))

    async def watch(
        self, since: int | None = None, *, prefix: str | None = None
    ) -> AsyncIterator[Change]:
        """Every change of this memory as it commits; see :meth:`Memory.watch`. To leave the
        loop early, close it: ``async with contextlib.aclosing(amem.watch()) as changes:``."""
        changes = self._backend.afollow(self._watch_op(since, prefix))
        try:
            async for change in changes:
                yield change_of(change)
        finally:
            await changes.aclose()  # type: ignore[attr-defined]

    async def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The values of ``keys`` that exist; see :meth:`Memory.get_many`."""
        plan = self._plan_get_many(keys)
        try:
            return await self._run(plan)
        except ValueTooLarge:
            if len(plan.ops) < 2:
                raise
        names = [op.key for op in plan.ops if isinstance(op, Get)]
        half = len(names) // 2
        return {**await self.get_many(names[:half]), **await self.get_many(names[half:])}

    async def entries(self, keys: Iterable[str], *, refresh_ttl: bool = False) -> dict[str, Entry]:
        """The entries of ``keys`` that exist; see :meth:`Memory.entries`."""
        return await self._run(self._plan_entries(keys, refresh_ttl))

    async def set_many(
        self, mapping: Mapping[str, Any], ttl: Ttl = None, *, searchable: bool = True
    ) -> None:
        """Store every item of ``mapping`` atomically; see :meth:`Memory.set_many`."""
        await self._run(self._plan_set_many(mapping, ttl, searchable))

    async def delete_many(self, keys: Iterable[str]) -> int:
        """Delete ``keys`` atomically; return how many existed."""
        return await self._run(self._plan_delete_many(keys))

    async def append(
        self,
        key: str,
        *values: Any,
        max_len: int | None = None,
        ttl: Ttl = None,
        keep_first: Mapping[str, Any] | None = None,
        searchable: bool = True,
    ) -> int:
        """Atomically append to the list at ``key``; see :meth:`Memory.append`."""
        plan = self._plan_append(key, values, max_len, ttl, keep_first, searchable)
        return await self._run(plan)

    async def incr(self, key: str, by: int = 1) -> int:
        """Atomically add ``by`` to the integer at ``key``; see :meth:`Memory.incr`."""
        return await self._run(self._plan_incr(key, by))

    async def slice(
        self, key: str, start: int | None = None, stop: int | None = None, default: Any = None
    ) -> Any:
        """The items ``[start:stop]`` of the list at ``key``; see :meth:`Memory.slice`."""
        return await self._run(self._plan_slice(key, start, stop, default))

    async def update(
        self, key: str, fn: Callable[[Any], Any | Awaitable[Any]], default: Any = None
    ) -> Any:
        """Atomically replace the value with ``fn(value)``; ``fn`` may be async.

        See :meth:`Memory.update`.
        """
        last: VersionConflict | None = None
        for attempt in range(_UPDATE_ATTEMPTS):
            record = await self._run(self._plan_read(key))
            new = fn(_current(record, default))
            if inspect.isawaitable(new):
                new = await new
            try:
                await self._run(self._plan_update_write(key, record, new))
                return new
            except VersionConflict as conflict:
                last = conflict
                await asyncio.sleep(_backoff(attempt))
        raise _lost_every_race(key, last, _UPDATE_ATTEMPTS)

    async def expire(self, key: str, ttl: Ttl) -> bool:
        """Expire ``key`` in ``ttl`` seconds (``None``: never); see :meth:`Memory.expire`."""
        return await self._run(self._plan_expire(key, ttl))

    async def ttl(self, key: str) -> float | None:
        """Seconds until ``key`` expires; see :meth:`Memory.ttl`."""
        return await self._run(self._plan_ttl(key))

    async def clear(self) -> int:
        """Delete every key of this namespace; return how many there were."""
        return await self._run(self._plan_clear())

    async def search(
        self,
        query: str,
        *,
        prefix: str | None = None,
        where: Mapping[str, Any] | None = None,
        limit: int = 10,
        match: Literal["all", "any"] = "all",
        context: int = 0,
        recency: Ttl = None,
        distinct: bool | None = None,
        mode: Literal["words", "meaning", "hybrid", "auto"] = "words",
    ) -> list[Hit]:
        """Ranked full-text search; see :meth:`Memory.search`."""
        return await self._run(
            self._plan_search(query, prefix, where, limit, match, context, recency, distinct, mode)
        )


M = TypeVar("M", Memory, AsyncMemory)


def on_store(
    kind: type[M],
    namespace: str,
    url: str | None = None,
    memory: _MemoryBase | None = None,
    max_value_bytes: int | None = None,
) -> M:
    """A ``kind`` (``Memory`` or ``AsyncMemory``) on ``namespace``: on the store of ``memory``
    when given (sharing its connections and value limit), else on ``url``'s. For adapters whose
    users pass ``url=`` or ``memory=``; ``max_value_bytes``: the adapter's own value limit."""
    if memory is None:
        return kind(namespace, url, max_value_bytes=max_value_bytes)
    if not isinstance(memory, _MemoryBase):
        raise TypeError(f"memory= takes a botwire Memory or AsyncMemory, not {type(memory)}")
    limit = max_value_bytes or memory.max_value_bytes
    return kind(namespace, backend=memory.backend, max_value_bytes=limit)


def list_namespaces(
    prefix: str | None = None, *, url: str | None = None, token: str | None = None
) -> list[str]:
    """The namespaces that hold live keys (those starting with ``prefix``), sorted.

    Args:
        prefix: only namespaces that start with it.
        url: the store, as for ``Memory`` (default ``$BOTWIRE_URL``, else the embedded store).
        token: for a server: it lists only the namespaces the token may use.
    """
    backend = open_backend(config.resolve_url(url), token=token)
    (names,) = backend.execute([ListNamespaces(_values.check_prefix(prefix, "namespace prefix"))])
    return list(names)


async def alist_namespaces(
    prefix: str | None = None, *, url: str | None = None, token: str | None = None
) -> list[str]:
    """Async twin of :func:`list_namespaces`."""
    backend = open_backend(config.resolve_url(url), token=token)
    ops = [ListNamespaces(_values.check_prefix(prefix, "namespace prefix"))]
    (names,) = await backend.aexecute(ops)
    return list(names)


def search_namespaces(
    query: str,
    namespace_prefix: str,
    *,
    url: str | None = None,
    prefix: str | None = None,
    where: Mapping[str, Any] | None = None,
    limit: int = 10,
    match: Literal["all", "any"] = "all",
    token: str | None = None,
    context: int = 0,
    recency: Ttl = None,
    distinct: bool | None = None,
    mode: Literal["words", "meaning", "hybrid", "auto"] = "words",
    embedder: Any = None,
) -> list[Hit]:
    """:meth:`Memory.search` across every namespace that starts with ``namespace_prefix``
    (``"user:"`` for a bot that keeps one namespace per user); each hit names its namespace.

    A ``Memory`` stands for one namespace, so this searches the store, as
    :func:`list_namespaces` lists it. On a server, the token must grant every namespace the
    prefix covers (``user:`` needs a token for ``user:`` or ``*``). ``context``, ``recency``,
    ``distinct`` and ``mode`` are as for :meth:`Memory.search`, ``embedder`` as for
    ``Memory`` (the query's vector, for ``mode="meaning"`` and ``"hybrid"``).
    """
    backend = embedding(open_backend(config.resolve_url(url), token=token), embedder)
    op = search_op(None, query, prefix, where, limit, match, context=context, recency=recency,
                   distinct=distinct, mode=mode)  # fmt: skip
    (found,) = backend.execute([_across(op, namespace_prefix)])
    return hits(found)


async def asearch_namespaces(
    query: str,
    namespace_prefix: str,
    *,
    url: str | None = None,
    prefix: str | None = None,
    where: Mapping[str, Any] | None = None,
    limit: int = 10,
    match: Literal["all", "any"] = "all",
    token: str | None = None,
    context: int = 0,
    recency: Ttl = None,
    distinct: bool | None = None,
    mode: Literal["words", "meaning", "hybrid", "auto"] = "words",
    embedder: Any = None,
) -> list[Hit]:
    """Async twin of :func:`search_namespaces`."""
    backend = embedding(open_backend(config.resolve_url(url), token=token), embedder)
    op = search_op(None, query, prefix, where, limit, match, context=context, recency=recency,
                   distinct=distinct, mode=mode)  # fmt: skip
    (found,) = await backend.aexecute([_across(op, namespace_prefix)])
    return hits(found)


def _across(op: Search, namespace_prefix: str) -> Search:
    """``op`` across every namespace that starts with ``namespace_prefix``."""
    return op._replace(ns_prefix=_values.check_prefix(namespace_prefix, "namespace prefix"))
