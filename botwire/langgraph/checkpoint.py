"""``BotWireSaver``: a LangGraph checkpointer on any botwire store.

Each thread is a botwire namespace (``{namespace_prefix}:{thread_id}``, ``/`` and ``%``
escaped; a thread id too long for a namespace is cut and ends in its hash), so a thread is
listed, copied and deleted as one. In it, for a checkpoint of ``checkpoint_ns`` with id ``id``
(``|`` and ``%`` escaped in the namespace; checkpoint ids sort by time):

- ``c|{checkpoint_ns}|{id}``: its head, small whatever the state: parent, run id, thread id,
  metadata, the channels whose values it holds, and the checkpoint itself when it takes at most
  :data:`INLINE_CHECKPOINT` characters serialized;
- ``p|{checkpoint_ns}|{id}|c|{n}``: a larger checkpoint as LangGraph's serializer writes it, in
  pieces of :data:`PIECE` characters (so no single value holds a whole state, and a state has
  no size limit);
- ``w|{checkpoint_ns}|{id}``: its pending writes, one list: each ``put_writes`` is atomic, the
  first making the list (in one row) and the others appending to it, whatever the step wrote
  (a write too large for one item keeps its value in pieces, ``p|{checkpoint_ns}|{id}|w|...``,
  written before it).

A checkpoint's pieces are written with its head, in one atomic batch; a state too large for one
request is written in several, pieces first and the head last, so a checkpoint appears whole or
not at all. A checkpoint of one piece (under about 190 KB) is read in one round trip with its
writes, a thread's latest too (with a page of its DeltaChannel history, where that was needed
before). Heads written by earlier releases, which hold the whole checkpoint or keep it in
pieces whatever its size, are read as well. Nothing is written to the search index
(``searchable=False``).

Every method is written once, as steps (``botwire.langgraph._steps``).
"""

from __future__ import annotations

import base64
import builtins
import copy
import hashlib
import random
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from datetime import timedelta
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
    get_checkpoint_id,
    get_checkpoint_metadata,
    writes_sort_key,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from botwire import _values
from botwire.errors import InvalidRequest, ValueTooLarge, VersionConflict
from botwire.langgraph._keys import (
    BATCH,
    PAGE,
    Back,
    heads_prefix,
    in_groups,
    parse_key,
    pieces_prefix,
    request_length,
    writes_key_of,
)
from botwire.langgraph._names import escape, unescape
from botwire.langgraph._steps import Call, Driver, Steps
from botwire.telemetry import traced

PIECE = 256 * 1024
"""Characters of a serialized value (base64) per stored piece."""
INLINE_CHECKPOINT = 2 * 1024
"""Characters of a serialized checkpoint (base64) its head holds; a longer one goes in pieces,
so that heads, which listings and a DeltaChannel's history read by the page, stay small."""
REMEMBERED = 1_024
"""Threads whose DeltaChannels a saver remembers rebuilding (see ``BotWireSaver._latest``), and
writes lists it remembers making."""
DELETE_BATCH = 1_000
"""Keys deleted per round trip (a server takes at most 10,000 operations a batch)."""
MAX_THREAD_BYTES = 64 * 1024
"""The longest thread id, in bytes of UTF-8 (once escaped)."""


_LATEST_PAGE: ContextVar[tuple[Any, str, str, Back, dict[str, Any]] | None] = ContextVar(
    "botwire_langgraph_latest_page", default=None
)
"""The page of heads and writes the latest checkpoint was last read with, in this context:
``(saver, namespace, checkpoint key, reader, what was read)``."""


def _remember(seen: dict[tuple[str, str], None], key: tuple[str, str]) -> None:
    """Add ``key`` to what a saver remembers, forgetting all once it holds :data:`REMEMBERED`."""
    if len(seen) >= REMEMBERED:
        seen.clear()
    seen[key] = None


class BotWireSaver(BaseCheckpointSaver[str]):
    """A LangGraph checkpointer kept in botwire: threads survive restarts and are shared by
    every process on the store (the embedded file, ``botwire serve`` or PostgreSQL).

    Args:
        url: the store (default ``$BOTWIRE_URL``, else the embedded file).
        namespace_prefix: the threads' namespaces start with it.
        ttl: seconds (or a timedelta) after which a checkpoint and its writes expire: a
            thread left idle that long is gone; an active one keeps its recent history. Not
            for graphs with ``DeltaChannel``s, which are rebuilt from older checkpoints (a put
            is refused with ``InvalidRequest``).
        serde: LangGraph's serializer (default: its ``JsonPlusSerializer``).

    Example::

        graph = builder.compile(checkpointer=BotWireSaver())
        graph.invoke({"messages": [...]}, {"configurable": {"thread_id": "user-42"}})
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        namespace_prefix: str = "langgraph-threads",
        ttl: float | timedelta | None = None,
        serde: SerializerProtocol | None = None,
    ) -> None:
        super().__init__(serde=serde)
        self.url = url
        self.namespace_prefix = _values.check_namespace(namespace_prefix)
        self.ttl = _values.check_ttl(ttl)
        self._writes_as: dict[str, Any] = {"ttl": self.ttl, "searchable": False}
        """How checkpoints are written: with the saver's ttl, out of the search index."""
        self._lists: dict[tuple[str, str], None] = {}
        """The writes lists this saver made or added to last (the parallel tasks of a step
        write to one)."""
        self._deltas: dict[tuple[str, str], None] = {}
        """The (namespace, checkpoint namespace) pairs whose DeltaChannels were rebuilt last:
        their latest checkpoint is read with a page of the history LangGraph asks for next."""
        self._driver = Driver(url)

    def __repr__(self) -> str:
        return f"BotWireSaver(namespace_prefix={self.namespace_prefix!r})"

    def _namespace(self, thread: str) -> str:
        """The namespace of a thread: ``/`` and ``%`` escaped; an id too long for a namespace
        is cut and ends in ``%~`` and its hash (which no escaped id holds)."""
        escaped = escape(thread, "/")
        if escaped:  # valid Unicode, of a sane length
            _values.check_key(escaped, "thread_id", MAX_THREAD_BYTES)
        namespace = f"{self.namespace_prefix}:{escaped}"
        if len(namespace.encode("utf-8")) > _values.MAX_NAMESPACE_BYTES:
            digest = hashlib.sha256(thread.encode("utf-8")).hexdigest()[:32]
            room = _values.MAX_NAMESPACE_BYTES - len(digest) - 2
            head = namespace.encode("utf-8")[:room].decode("utf-8", "ignore")
            if "%" in head[-2:]:  # not in the middle of an escape
                head = head[: head.rindex("%")]
            namespace = f"{head}%~{digest}"
        return _values.check_namespace(namespace)

    def _thread_of(self, namespace: str, head: Mapping[str, Any]) -> str:
        """The thread id of a checkpoint: in its head (since heads hold it), else from its
        namespace."""
        thread = head.get("thread")
        if isinstance(thread, str):
            return thread
        return unescape(namespace[len(self.namespace_prefix) + 1 :])

    def _run(self, steps: Steps) -> Any:
        return self._driver.run(steps)

    async def _arun(self, steps: Steps) -> Any:
        return await self._driver.arun(steps)

    # -- the interface, sync and async ---------------------------------------------------------

    @traced("botwire.langgraph.checkpoint.get_tuple")
    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint ``config`` names, or its thread's latest, with its pending writes."""
        return self._run(self._get_tuple(config))  # type: ignore[no-any-return]

    @traced("botwire.langgraph.checkpoint.get_tuple")
    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Async :meth:`get_tuple`."""
        return await self._arun(self._get_tuple(config))  # type: ignore[no-any-return]

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Checkpoints newest first: of ``config``'s thread (and namespace, when it names one),
        or of every thread; those whose metadata holds ``filter``, older than ``before``."""
        yield from self._run(self._list(config, filter, before, limit))

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Async :meth:`list`."""
        for item in await self._arun(self._list(config, filter, before, limit)):
            yield item

    @traced("botwire.langgraph.checkpoint.put")
    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint (one write) and return the config that names it."""
        return self._run(self._put(config, checkpoint, metadata))  # type: ignore[no-any-return]

    @traced("botwire.langgraph.checkpoint.put")
    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Async :meth:`put`."""
        return await self._arun(self._put(config, checkpoint, metadata))  # type: ignore[no-any-return]

    @traced("botwire.langgraph.checkpoint.put_writes")
    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's writes for a checkpoint, atomically."""
        self._run(self._put_writes(config, writes, task_id, task_path))

    @traced("botwire.langgraph.checkpoint.put_writes")
    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Async :meth:`put_writes`."""
        await self._arun(self._put_writes(config, writes, task_id, task_path))

    @traced("botwire.langgraph.checkpoint.delete_thread")
    def delete_thread(self, thread_id: str) -> None:
        """Delete a thread: every checkpoint and write, in every namespace, at once."""
        self._run(self._delete_thread(thread_id))

    @traced("botwire.langgraph.checkpoint.delete_thread")
    async def adelete_thread(self, thread_id: str) -> None:
        """Async :meth:`delete_thread`."""
        await self._arun(self._delete_thread(thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) that these runs made, in every thread."""
        self._run(self._delete_for_runs(run_ids))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Async :meth:`delete_for_runs`."""
        await self._arun(self._delete_for_runs(run_ids))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint and write of a thread to another, in one atomic write."""
        self._run(self._copy_thread(source_thread_id, target_thread_id))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Async :meth:`copy_thread`."""
        await self._arun(self._copy_thread(source_thread_id, target_thread_id))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``keep_latest``: keep each namespace's newest checkpoint (and its writes), and, when
        it has ``DeltaChannel``s, its ancestors back to the nearest that holds each one's value,
        so that every channel still reads whole; ``delete``: delete the threads."""
        self._run(self._prune(thread_ids, strategy))

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Async :meth:`prune`."""
        await self._arun(self._prune(thread_ids, strategy))

    def get_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        """What ``channels`` (``DeltaChannel``s) need to be rebuilt at the checkpoint ``config``
        names: the writes of its ancestors back to the nearest that holds each channel's
        value (its ``seed``), read in a few round trips whatever the depth."""
        return self._run(self._delta_history(config, channels))  # type: ignore[no-any-return]

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        """Async :meth:`get_delta_channel_history`."""
        return await self._arun(self._delta_history(config, channels))  # type: ignore[no-any-return]

    def get_next_version(self, current: str | None, channel: None) -> str:
        """Channel versions as LangGraph's own savers make them: a counter, then a random
        fraction (so two processes never agree on a version by chance)."""
        number = 0 if current is None else int(str(current).split(".")[0])
        return f"{number + 1:032}.{random.random():016}"

    def close(self) -> None:
        """Close the saver's connections (they reopen if it is used again)."""
        self._driver.close()

    # -- the steps -----------------------------------------------------------------------------

    def _get_tuple(self, config: RunnableConfig) -> Steps:
        _LATEST_PAGE.set(None)  # a page serves the history read just after it, or none
        thread = str(config["configurable"]["thread_id"])
        namespace = self._namespace(thread)
        checkpoint_ns = config["configurable"].get("checkpoint_ns", "")
        checkpoint_id = get_checkpoint_id(config)
        if checkpoint_id:
            key = heads_prefix(checkpoint_ns) + checkpoint_id
            found = yield from self._read(namespace, self._with_writes([key], first_piece=True))
        else:
            found = yield from self._latest(namespace, checkpoint_ns)
            if not found:
                return None
            key = next(iter(found))
        yield from self._read_pieces(namespace, self._parts([key], found), found)
        return self._tuple(namespace, key, found)

    def _latest(self, namespace: str, checkpoint_ns: str) -> Steps:
        """The newest checkpoint's head (first), with its writes and first piece: the newest
        key of each kind, in one round trip. The newest writes are another checkpoint's while
        a newer one is written or deleted: then its own are read by key.

        Where a DeltaChannel was rebuilt last time, a page of heads and writes comes with it,
        kept (in this context) for the history LangGraph asks for next: a thread's state is
        then read in one round trip."""
        heads_at, writes_at = heads_prefix(checkpoint_ns), writes_key_of(checkpoint_ns, "")
        deep = (namespace, checkpoint_ns) in self._deltas
        newest = {"reverse": True, "limit": PAGE if deep else 1}
        heads, writes, pieces = yield [
            Call(namespace, "items", (heads_at,), newest),
            Call(namespace, "items", (writes_at,), newest),
            Call(namespace, "items", (f"p|{escape(checkpoint_ns, '|')}|",),
                 {"reverse": True, "limit": 1}),
        ]  # fmt: skip
        if not heads:
            return {}
        key = next(iter(heads))
        if deep:
            back = Back(namespace, heads_at, writes_at)
            _LATEST_PAGE.set((self, namespace, key, back, back.take(heads, writes)))
        writes_key, first_piece = self._with_writes([key], first_piece=True)[1:]
        found = {key: heads[key], **{k: v for k, v in {**writes, **pieces}.items()
                                     if k in (writes_key, first_piece)}}  # fmt: skip
        if writes_key not in writes and any(k > writes_key for k in writes):
            # (its missing pieces are read with the others)
            found.update((yield Call(namespace, "get_many", ([writes_key],))))
        return found

    def _list(
        self,
        config: RunnableConfig | None,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> Steps:
        """Newest first by checkpoint id, across the namespaces of a thread (or of every
        thread), as SqliteSaver orders them."""
        if limit is not None and limit <= 0:
            return []
        configurable = config["configurable"] if config else {}
        if config is None:
            namespaces = yield Call(None, "list_namespaces", (f"{self.namespace_prefix}:",))
        else:
            namespaces = [self._namespace(str(configurable["thread_id"]))]
        only_ns = configurable.get("checkpoint_ns")
        only_id = configurable.get("checkpoint_id")
        before_id = get_checkpoint_id(before) if before else None
        prefix = "c|" if only_ns is None else heads_prefix(only_ns)
        candidates: builtins.list[tuple[str, str, str]] = []  # (checkpoint id, namespace, key)
        for namespace in namespaces:
            if only_ns is not None and only_id:
                keys = [prefix + only_id]
            else:  # each namespace of a thread sorts apart: all of a thread's keys, unless
                # one checkpoint namespace's newest are enough
                cursor = prefix + before_id if only_ns is not None and before_id else None
                window = limit if only_ns is not None and not filter else None
                keys = yield Call(namespace, "keys", (prefix,),
                                  {"after": cursor, "reverse": True, "limit": window})  # fmt: skip
            for key in keys:
                checkpoint_id = parse_key(key)[1]
                if (not only_id or checkpoint_id == only_id) and (
                    not before_id or checkpoint_id < before_id
                ):
                    candidates.append((checkpoint_id, namespace, key))
        candidates.sort(reverse=True)
        found: builtins.list[CheckpointTuple] = []
        for start in range(0, len(candidates), PAGE):
            page = candidates[start : start + PAGE]
            by_namespace: dict[str, builtins.list[str]] = {}
            for _, namespace, key in page:
                by_namespace.setdefault(namespace, []).append(key)
            values: dict[str, dict[str, Any]] = {}
            for namespace, keys in by_namespace.items():
                read = yield from self._read(namespace, self._with_writes(keys, first_piece=True))
                yield from self._read_pieces(namespace, self._parts(keys, read), read)
                values[namespace] = read
            for _, namespace, key in page:
                item = self._tuple(namespace, key, values[namespace])
                if item is None:
                    continue  # deleted since it was listed
                if filter and not all(item.metadata.get(k) == v for k, v in filter.items()):
                    continue
                found.append(item)
                if limit is not None and len(found) >= limit:
                    return found
        return found

    def _put(
        self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata
    ) -> Steps:
        thread = str(config["configurable"]["thread_id"])
        checkpoint_ns = config["configurable"].get("checkpoint_ns", "")
        merged = get_checkpoint_metadata(config, metadata)
        if self.ttl is not None and merged.get("counters_since_delta_snapshot"):
            raise InvalidRequest(
                "BotWireSaver(ttl=...) expires each checkpoint on its own, and a DeltaChannel is "
                "rebuilt from older checkpoints: use ttl=None for a graph with DeltaChannels "
                "(delete idle threads with delete_thread, or keep them short with prune)"
            )
        at = pieces_prefix(checkpoint_ns, checkpoint["id"])
        pieces: dict[str, str] = {}
        head = {
            "thread": thread,
            "parent": config["configurable"].get("checkpoint_id"),
            "run_id": merged.get("run_id"),
            "channels": sorted(checkpoint["channel_values"]),
            "written": sorted(checkpoint["channel_versions"]),
            "metadata": self._dump(merged, at + "m|", pieces),
            "checkpoint": self._dump(checkpoint, at + "c|", pieces, inline=INLINE_CHECKPOINT),
        }
        key = heads_prefix(checkpoint_ns) + checkpoint["id"]
        yield from self._write(self._namespace(thread), pieces, {key: head})
        return {
            "configurable": {
                "thread_id": thread,
                "checkpoint_ns": checkpoint_ns,
                "checkpoint_id": checkpoint["id"],
            }
        }

    def _put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, path: str
    ) -> Steps:
        if not writes:
            return
        configurable = config["configurable"]
        checkpoint_ns = configurable.get("checkpoint_ns", "")
        at = pieces_prefix(checkpoint_ns, configurable["checkpoint_id"])
        pieces: dict[str, str] = {}
        items = []
        for idx, (channel, value) in enumerate(writes):
            slot = WRITES_IDX_MAP.get(channel, idx)
            where = f"{at}w|{escape(task_id, '|')}|{slot}|{random.getrandbits(32):08x}|"
            items.append({"task": task_id, "idx": slot, "channel": channel,
                          "value": self._dump(value, where, pieces), "path": path})  # fmt: skip
        namespace = self._namespace(str(configurable["thread_id"]))
        if pieces:  # the pieces first: the writes appear whole or not at all
            yield from self._write(namespace, pieces, {})
        key = writes_key_of(checkpoint_ns, configurable["checkpoint_id"])
        if (namespace, key) not in self._lists:
            try:  # a checkpoint's first writes make its list in one row (cheaper than an append)
                yield Call(namespace, "set", (key, items), {**self._writes_as, "if_version": 0})
                _remember(self._lists, (namespace, key))
                return
            except (VersionConflict, ValueTooLarge):
                pass  # another task's writes came first, or these are more than one value holds
        yield Call(namespace, "append", (key, *items), self._writes_as)
        _remember(self._lists, (namespace, key))

    def _delete_thread(self, thread_id: str) -> Steps:
        yield Call(self._namespace(str(thread_id)), "clear")

    def _delete_for_runs(self, run_ids: Sequence[str]) -> Steps:
        runs = set(run_ids)
        if not runs:
            return
        namespaces = yield Call(None, "list_namespaces", (f"{self.namespace_prefix}:",))
        for namespace in namespaces:
            heads = yield Call(namespace, "items", ("c|",))
            doomed = {parse_key(key) for key, head in heads.items() if head.get("run_id") in runs}
            if doomed:
                yield from self._delete_checkpoints(namespace, doomed)

    def _copy_thread(self, source: str, target: str) -> Steps:
        namespace = self._namespace(str(source))
        values = yield Call(namespace, "items")
        into = self._namespace(str(target))
        pieces = {key: value for key, value in values.items() if key.startswith("p|")}
        yield from self._write(into, pieces, {})
        for key, items in values.items():  # each write an item of its own
            if key.startswith("w|"):
                for group in in_groups(items):
                    yield Call(into, "append", (key, *group), self._writes_as)
        heads = {key: {**value, "thread": str(target)} for key, value in values.items()
                 if key.startswith("c|")}  # fmt: skip
        yield from self._write(into, {}, heads)  # last: each checkpoint appears whole

    def _prune(self, thread_ids: Sequence[str], strategy: str) -> Steps:
        if strategy not in ("keep_latest", "delete"):
            raise InvalidRequest(f"prune: strategy is 'keep_latest' or 'delete', not {strategy!r}")
        for thread in thread_ids:
            namespace = self._namespace(str(thread))
            if strategy == "delete":
                yield Call(namespace, "clear")
                continue
            heads = yield Call(namespace, "items", ("c|",))
            keys = list(heads)
            metadata = [head["metadata"] for head in heads.values()]
            yield from self._read_pieces(namespace, metadata, heads)
            newest: dict[str, str] = {}
            for key in keys:  # in key order: the last of each namespace is its newest
                newest[parse_key(key)[0]] = key
            kept: set[tuple[str, str]] = set()
            for key in newest.values():
                kept.update(self._needed_chain(key, heads))
            doomed = {parse_key(key) for key in keys} - kept
            if doomed:
                yield from self._delete_checkpoints(namespace, doomed)

    def _delta_history(self, config: RunnableConfig, channels: Sequence[str]) -> Steps:
        if not channels:
            return {}
        thread = str(config["configurable"]["thread_id"])
        namespace = self._namespace(thread)
        checkpoint_ns = config["configurable"].get("checkpoint_ns", "")
        prefix = heads_prefix(checkpoint_ns)
        history: dict[str, DeltaChannelHistory] = {ch: {"writes": []} for ch in channels}
        target_id = get_checkpoint_id(config)
        # The ancestors are (nearly always) the checkpoints just before the target: read the
        # target's head with a page of those before it, and a page of writes (a range of
        # checkpoints has at most one writes key each, so it reaches back as far); read
        # further back only when the chain leaves what was read.
        writes_prefix = writes_key_of(checkpoint_ns, "")
        _remember(self._deltas, (namespace, checkpoint_ns))
        latest = _LATEST_PAGE.get()
        _LATEST_PAGE.set(None)
        if latest is not None and target_id and latest[:3] == (self, namespace, prefix + target_id):
            back, found = copy.copy(latest[3]), dict(latest[4])  # read with the checkpoint
        else:
            back = Back(namespace, prefix, writes_prefix)
            upto = None if target_id is None else prefix + target_id + " "  # it and before
            writes_before = None if target_id is None else writes_key_of(checkpoint_ns, target_id)
            found = yield from back.read(upto, writes_before)
        if not found:
            return history
        head = found[back.newest]
        target_id = parse_key(back.newest)[1]
        if back.newest != prefix + target_id:
            return history  # the checkpoint named is gone
        steps: builtins.list[tuple[str, builtins.list[Any], dict[str, Any]]] = []
        remaining = set(channels)
        seen = {target_id}
        parent = head.get("parent")
        while parent and remaining and parent not in seen:
            seen.add(parent)
            key = prefix + parent
            while key not in found and not back.exhausted and key < back.oldest:
                found.update((yield from back.read(back.oldest, back.oldest_writes)))
            if key not in found:
                break  # deleted: the walk ends, as at a root
            head = found[key]
            writes_key = writes_prefix + parent
            if writes_key not in found and not back.covers(writes_key):
                found.update((yield Call(namespace, "get_many", ([writes_key],))))
            written = found.get(writes_key, [])
            if any(write["channel"] in remaining for write in written):
                written = [w for w in self._chosen(written) if w["channel"] in remaining]
            else:
                written = []  # (none of the channels: nothing to choose among)
            seeded = remaining & set(self._channels(head))
            steps.append((key, written, {}))
            if seeded:
                steps[-1][2].update(dict.fromkeys(seeded))
                remaining -= seeded
            parent = head.get("parent")
        dumped = [found[key]["checkpoint"] for key, _, seeds in steps if seeds]
        dumped += [write["value"] for _, writes, _ in steps for write in writes]
        yield from self._read_pieces(namespace, dumped, found)
        for key, writes, seeds in reversed(steps):  # oldest first: a seed, then what follows
            if seeds:
                values = self._checkpoint(found[key], found)["channel_values"]
                for ch in seeds:
                    history[ch]["seed"] = values[ch]
            for write in writes:
                history[write["channel"]]["writes"].append(
                    (write["task"], write["channel"], self._load(write["value"], found))
                )
        return history

    def _needed_chain(self, key: str, heads: Mapping[str, Any]) -> builtins.list[tuple[str, str]]:
        """The checkpoint at ``key`` and, when it has ``DeltaChannel``s, its ancestors back to
        the nearest that holds each one's value: what its state is rebuilt from."""
        checkpoint_ns, checkpoint_id = parse_key(key)
        chain = [(checkpoint_ns, checkpoint_id)]
        head = heads[key]
        counters = self._load(head["metadata"], heads).get("counters_since_delta_snapshot")
        missing = set(counters or ()) & set(self._written(head)) - set(self._channels(head))
        while missing and head.get("parent"):
            key = heads_prefix(checkpoint_ns) + head["parent"]
            if key not in heads or (checkpoint_ns, head["parent"]) in chain:
                break
            chain.append((checkpoint_ns, head["parent"]))
            head = heads[key]
            missing -= set(self._channels(head))
        return chain

    def _delete_checkpoints(self, namespace: str, doomed: set[tuple[str, str]]) -> Steps:
        """Delete these checkpoints, their writes and their pieces (heads first: a checkpoint
        goes whole or not at all)."""
        pieces = yield Call(namespace, "keys", ("p|",))
        keys = [heads_prefix(ns) + cid for ns, cid in doomed]
        keys += [writes_key_of(ns, cid) for ns, cid in doomed]
        keys += [key for key in pieces if parse_key(key) in doomed]
        for start in range(0, len(keys), DELETE_BATCH):
            yield Call(namespace, "delete_many", (keys[start : start + DELETE_BATCH],))

    # -- reading and writing in pieces ---------------------------------------------------------

    def _read(self, namespace: str, keys: Sequence[str], group: int | None = None) -> Steps:
        """The values of ``keys``, ``group`` keys per round trip (default: all; values more than
        a server answers at once come in parts, as ``get_many`` reads them)."""
        found: dict[str, Any] = {}
        step = max(1, group or len(keys))
        for start in range(0, len(keys), step):
            found.update((yield Call(namespace, "get_many", (keys[start : start + step],))))
        return found

    def _read_pieces(self, namespace: str, dumped: Iterable[Any], found: dict[str, Any]) -> Steps:
        """Add to ``found`` the pieces that ``dumped`` (serialized values) need."""
        missing = self._missing(dumped, found)
        if missing:
            found.update((yield from self._read(namespace, missing, BATCH // PIECE)))

    def _write(self, namespace: str, pieces: Mapping[str, Any], last: Mapping[str, Any]) -> Steps:
        """Store ``pieces``, then ``last`` with the final batch of them: in one atomic batch
        when they fit one, else in batches of :data:`BATCH` characters."""
        groups = list(in_groups(pieces.items(), lambda piece: request_length(piece[1]))) or [[]]
        for group in groups[:-1]:
            yield Call(namespace, "set_many", (dict(group),), self._writes_as)
        batch = {**dict(groups[-1]), **last}
        if batch:
            yield Call(namespace, "set_many", (batch,), self._writes_as)

    @staticmethod
    def _with_writes(keys: Iterable[str], first_piece: bool = False) -> builtins.list[str]:
        """Checkpoint keys, with their writes' keys (and their first piece's)."""
        wanted = []
        for key in keys:
            checkpoint_ns, checkpoint_id = parse_key(key)
            wanted += [key, writes_key_of(checkpoint_ns, checkpoint_id)]
            if first_piece:
                wanted.append(f"{pieces_prefix(checkpoint_ns, checkpoint_id)}c|{0:06}")
        return wanted

    @staticmethod
    def _parts(keys: Iterable[str], found: Mapping[str, Any]) -> builtins.list[Any]:
        """What the checkpoints at ``keys`` hold in serialized form: checkpoint, metadata and
        the values of their writes."""
        dumped = []
        for key in keys:
            if key in found:
                dumped += [found[key]["checkpoint"], found[key]["metadata"]]
                writes = found.get(writes_key_of(*parse_key(key)), [])
                dumped += [write["value"] for write in writes]
        return dumped

    @staticmethod
    def _missing(dumped: Iterable[Any], found: Mapping[str, Any]) -> builtins.list[str]:
        """The keys of the pieces these serialized values need, and ``found`` lacks."""
        return [
            name
            for value in dumped
            if isinstance(value, dict)
            for name in (f"{value['at']}{n:06}" for n in range(value["pieces"]))
            if name not in found
        ]

    # -- records -------------------------------------------------------------------------------

    def _dump(
        self, value: Any, at: str, pieces: dict[str, str], *, inline: int = PIECE
    ) -> builtins.list[str] | dict[str, Any]:
        """``value`` as LangGraph's serializer writes it: ``[type, base64]`` when that takes at
        most ``inline`` characters, else ``{"kind", "at", "pieces"}`` with its pieces (keys
        from ``at``) added to ``pieces``."""
        kind, data = self.serde.dumps_typed(value)
        text = base64.b64encode(data).decode("ascii")
        if len(text) <= inline:
            return [kind, text]
        parts = [text[start : start + PIECE] for start in range(0, len(text), PIECE)] or [""]
        for number, part in enumerate(parts):
            pieces[f"{at}{number:06}"] = part
        return {"kind": kind, "at": at, "pieces": len(parts)}

    def _load(self, dumped: Any, found: Mapping[str, Any]) -> Any:
        """The inverse of :meth:`_dump`; the pieces come from ``found``. ``KeyError``: a piece
        is missing (deleted since the head was read)."""
        if isinstance(dumped, dict):
            kind = dumped["kind"]
            at = dumped["at"]
            text = "".join(found[f"{at}{n:06}"] for n in range(dumped["pieces"]))
        else:
            kind, text = dumped
        return self.serde.loads_typed((kind, base64.b64decode(text)))

    def _checkpoint(self, head: Mapping[str, Any], found: Mapping[str, Any]) -> Any:
        return self._load(head["checkpoint"], found)

    def _written(self, head: Mapping[str, Any]) -> builtins.list[str]:
        """The channels ever written by a checkpoint's time (those with a version)."""
        if "written" in head:
            return head["written"]  # type: ignore[no-any-return]
        return list(self._load(head["checkpoint"], {})["channel_versions"])

    def _channels(self, head: Mapping[str, Any]) -> builtins.list[str]:
        """The channels whose values a checkpoint holds (a head of an earlier release holds
        the checkpoint itself)."""
        if "channels" in head:
            return head["channels"]  # type: ignore[no-any-return]
        return list(self._load(head["checkpoint"], {})["channel_values"])

    def _tuple(self, namespace: str, key: str, found: Mapping[str, Any]) -> CheckpointTuple | None:
        """The checkpoint at ``key``, from what was read (``None``: it was deleted meanwhile)."""
        head = found.get(key)
        if head is None:
            return None
        checkpoint_ns, checkpoint_id = parse_key(key)
        thread = self._thread_of(namespace, head)

        def config(checkpoint: str) -> RunnableConfig:
            return {"configurable": {"thread_id": thread, "checkpoint_ns": checkpoint_ns,
                                     "checkpoint_id": checkpoint}}  # fmt: skip

        writes = self._chosen(found.get(writes_key_of(checkpoint_ns, checkpoint_id), []))
        try:
            return CheckpointTuple(
                config=config(checkpoint_id),
                checkpoint=self._checkpoint(head, found),
                metadata=self._load(head["metadata"], found),
                parent_config=config(head["parent"]) if head.get("parent") else None,
                pending_writes=[
                    (w["task"], w["channel"], self._load(w["value"], found)) for w in writes
                ],
            )
        except KeyError:
            return None  # a piece went with its checkpoint

    @staticmethod
    def _chosen(writes: builtins.list[Any]) -> builtins.list[Any]:
        """The writes of a checkpoint as LangGraph reads them: the first of each (task, index)
        for a regular write, the last for a special one (an error, an interrupt), in
        ``writes_sort_key`` order."""
        chosen: dict[tuple[str, int], Any] = {}
        for item in writes:
            slot = (item["task"], item["idx"])
            if slot[1] >= 0 and slot in chosen:
                continue
            chosen[slot] = item
        return sorted(
            chosen.values(), key=lambda w: writes_sort_key(w["path"], w["task"], w["idx"])
        )
