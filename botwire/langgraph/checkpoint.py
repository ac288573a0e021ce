"""``BotWireSaver``: a LangGraph checkpointer on any botwire store.

Each thread is a botwire namespace (``{namespace_prefix}:{thread_id}``, ``/`` and ``%``
escaped), so a thread is listed, copied and deleted as one. In it, a checkpoint is one key,
``c|{checkpoint_ns}|{checkpoint_id}`` (``|`` and ``%`` escaped in the namespace; checkpoint ids
sort by time), holding the checkpoint and its metadata as LangGraph's serializer writes them,
and the pending writes of a checkpoint are one list, ``w|{checkpoint_ns}|{checkpoint_id}``:
``put_writes`` is one atomic append, whatever the step wrote.

Every method is written once, as steps (``botwire.langgraph._steps``).
"""

from __future__ import annotations

import base64
import builtins
import random
from collections.abc import AsyncIterator, Iterator, Sequence
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
    PendingWrite,
    get_checkpoint_id,
    get_checkpoint_metadata,
    writes_sort_key,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from botwire import _values
from botwire.errors import InvalidRequest
from botwire.langgraph._names import escape, unescape
from botwire.langgraph._steps import Call, Driver, Steps

PAGE = 100
"""Checkpoints read per round trip when listing."""


def _checkpoints(checkpoint_ns: str) -> str:
    return f"c|{escape(checkpoint_ns, '|')}|"


def _writes_key(checkpoint_ns: str, checkpoint_id: str) -> str:
    return f"w|{escape(checkpoint_ns, '|')}|{checkpoint_id}"


def _parse(key: str) -> tuple[str, str]:
    """The ``(checkpoint_ns, checkpoint_id)`` of a checkpoint key."""
    _, ns, checkpoint_id = key.split("|")
    return unescape(ns), checkpoint_id


class BotWireSaver(BaseCheckpointSaver[str]):
    """A LangGraph checkpointer kept in botwire: threads survive restarts and are shared by
    every process on the store (the embedded file, ``botwire serve`` or PostgreSQL).

    Args:
        url: the store (default ``$BOTWIRE_URL``, else the embedded file).
        namespace_prefix: the threads' namespaces start with it.
        ttl: seconds (or a timedelta) after which a checkpoint and its writes expire: a
            thread left idle that long is gone; an active one keeps its recent history.
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
        self._driver = Driver(url)

    def __repr__(self) -> str:
        return f"BotWireSaver(namespace_prefix={self.namespace_prefix!r})"

    def _namespace(self, thread_id: object) -> str:
        """The namespace of a thread (``/`` and ``%`` escaped)."""
        thread = _values.check_key(str(thread_id), "thread_id")
        return _values.check_namespace(f"{self.namespace_prefix}:{escape(thread, '/')}")

    def _thread_of(self, namespace: str) -> str:
        return unescape(namespace[len(self.namespace_prefix) + 1 :])

    def _run(self, steps: Steps) -> Any:
        return self._driver.run(steps)

    async def _arun(self, steps: Steps) -> Any:
        return await self._driver.arun(steps)

    # -- the interface, sync and async ---------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint ``config`` names, or its thread's latest, with its pending writes."""
        return self._run(self._get_tuple(config))  # type: ignore[no-any-return]

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

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint (one write) and return the config that names it."""
        return self._run(self._put(config, checkpoint, metadata))  # type: ignore[no-any-return]

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Async :meth:`put`."""
        return await self._arun(self._put(config, checkpoint, metadata))  # type: ignore[no-any-return]

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's writes for a checkpoint in one atomic append."""
        self._run(self._put_writes(config, writes, task_id, task_path))

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Async :meth:`put_writes`."""
        await self._arun(self._put_writes(config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        """Delete a thread: every checkpoint and write, in every namespace, at once."""
        self._run(self._delete_thread(thread_id))

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
        """``keep_latest``: keep each namespace's newest checkpoint (and its writes);
        ``delete``: delete the threads."""
        self._run(self._prune(thread_ids, strategy))

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Async :meth:`prune`."""
        await self._arun(self._prune(thread_ids, strategy))

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
        thread = config["configurable"]["thread_id"]
        namespace = self._namespace(thread)
        checkpoint_ns = config["configurable"].get("checkpoint_ns", "")
        checkpoint_id = get_checkpoint_id(config)
        if not checkpoint_id:
            latest = yield Call(namespace, "keys", (_checkpoints(checkpoint_ns),),
                                {"reverse": True, "limit": 1})  # fmt: skip
            if not latest:
                return None
            checkpoint_id = _parse(latest[0])[1]
        key = _checkpoints(checkpoint_ns) + checkpoint_id
        pair = [key, _writes_key(checkpoint_ns, checkpoint_id)]
        found = yield Call(namespace, "get_many", (pair,))
        if key not in found:
            return None
        writes = found.get(_writes_key(checkpoint_ns, checkpoint_id), [])
        return self._tuple(thread, checkpoint_ns, checkpoint_id, found[key], writes)

    def _list(
        self,
        config: RunnableConfig | None,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> Steps:
        if limit is not None and limit <= 0:
            return []
        if config is None:
            namespaces = yield Call(None, "list_namespaces", (f"{self.namespace_prefix}:",))
            threads = [self._thread_of(ns) for ns in namespaces]
        else:
            threads = [config["configurable"]["thread_id"]]
        configurable = config["configurable"] if config else {}
        only_ns = configurable.get("checkpoint_ns")
        only_id = configurable.get("checkpoint_id")
        before_id = get_checkpoint_id(before) if before else None
        found: builtins.list[CheckpointTuple] = []
        for thread in threads:
            namespace = self._namespace(thread)
            prefix = "c|" if only_ns is None else _checkpoints(only_ns)
            cursor = None
            if only_ns is not None and before_id:
                cursor = prefix + before_id
            while limit is None or len(found) < limit:
                page = PAGE if filter or limit is None else min(PAGE, limit - len(found))
                keys = yield Call(namespace, "keys", (prefix,),
                                  {"after": cursor, "reverse": True, "limit": page})  # fmt: skip
                if not keys:
                    break
                cursor = keys[-1]
                named = [(key, *_parse(key)) for key in keys]
                named = [
                    (key, ns, cid) for key, ns, cid in named
                    if (not only_id or cid == only_id) and (not before_id or cid < before_id)
                ]  # fmt: skip
                wanted = [key for key, _, _ in named]
                wanted += [_writes_key(ns, cid) for _, ns, cid in named]
                values = yield Call(namespace, "get_many", (wanted,))
                for key, ns, cid in named:
                    if key not in values:
                        continue  # deleted since it was listed
                    writes = values.get(_writes_key(ns, cid), [])
                    item = self._tuple(thread, ns, cid, values[key], writes)
                    if filter and not all(item.metadata.get(k) == v for k, v in filter.items()):
                        continue
                    found.append(item)
                    if limit is not None and len(found) >= limit:
                        break
                if len(keys) < page:
                    break
        return found

    def _put(
        self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata
    ) -> Steps:
        thread = config["configurable"]["thread_id"]
        checkpoint_ns = config["configurable"].get("checkpoint_ns", "")
        merged = get_checkpoint_metadata(config, metadata)
        record = {
            "checkpoint": self._dump(checkpoint),
            "metadata": self._dump(merged),
            "parent": config["configurable"].get("checkpoint_id"),
            "run_id": merged.get("run_id"),
        }
        key = _checkpoints(checkpoint_ns) + checkpoint["id"]
        yield Call(self._namespace(thread), "set", (key, record), {"ttl": self.ttl})
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
        configurable = config["configurable"]
        items = [
            {"task": task_id, "idx": WRITES_IDX_MAP.get(channel, idx), "channel": channel,
             "value": self._dump(value), "path": path}
            for idx, (channel, value) in enumerate(writes)
        ]  # fmt: skip
        if items:
            namespace = self._namespace(configurable["thread_id"])
            key = _writes_key(configurable.get("checkpoint_ns", ""), configurable["checkpoint_id"])
            yield Call(namespace, "append", (key, *items), {"ttl": self.ttl})

    def _delete_thread(self, thread_id: str) -> Steps:
        yield Call(self._namespace(thread_id), "clear")

    def _delete_for_runs(self, run_ids: Sequence[str]) -> Steps:
        runs = set(run_ids)
        if not runs:
            return
        namespaces = yield Call(None, "list_namespaces", (f"{self.namespace_prefix}:",))
        for namespace in namespaces:
            keys = yield Call(namespace, "keys", ("c|",))
            records = (yield Call(namespace, "get_many", (keys,))) if keys else {}
            doomed = [key for key, record in records.items() if record.get("run_id") in runs]
            doomed += [_writes_key(*_parse(key)) for key in list(doomed)]
            if doomed:
                yield Call(namespace, "delete_many", (doomed,))

    def _copy_thread(self, source: str, target: str) -> Steps:
        keys = yield Call(self._namespace(source), "keys")
        if keys:
            values = yield Call(self._namespace(source), "get_many", (keys,))
            yield Call(self._namespace(target), "set_many", (values,), {"ttl": self.ttl})

    def _prune(self, thread_ids: Sequence[str], strategy: str) -> Steps:
        if strategy not in ("keep_latest", "delete"):
            raise InvalidRequest(f"prune: strategy is 'keep_latest' or 'delete', not {strategy!r}")
        for thread in thread_ids:
            namespace = self._namespace(thread)
            if strategy == "delete":
                yield Call(namespace, "clear")
                continue
            keys = yield Call(namespace, "keys", ("c|",))
            newest: dict[str, str] = {}
            for key in keys:  # in key order: the last of each namespace is its newest
                newest[_parse(key)[0]] = key
            kept = set(newest.values())
            doomed = [key for key in keys if key not in kept]
            doomed += [_writes_key(*_parse(key)) for key in list(doomed)]
            if doomed:
                yield Call(namespace, "delete_many", (doomed,))

    # -- records -------------------------------------------------------------------------------

    def _dump(self, value: Any) -> builtins.list[str]:
        kind, data = self.serde.dumps_typed(value)
        return [kind, base64.b64encode(data).decode("ascii")]

    def _load(self, dumped: builtins.list[str]) -> Any:
        kind, data = dumped
        return self.serde.loads_typed((kind, base64.b64decode(data)))

    def _tuple(
        self,
        thread: str,
        checkpoint_ns: str,
        checkpoint_id: str,
        record: Any,
        writes: builtins.list[Any],
    ) -> CheckpointTuple:
        def config(checkpoint: str) -> RunnableConfig:
            return {"configurable": {"thread_id": thread, "checkpoint_ns": checkpoint_ns,
                                     "checkpoint_id": checkpoint}}  # fmt: skip

        parent = record.get("parent")
        return CheckpointTuple(
            config=config(checkpoint_id),
            checkpoint=self._load(record["checkpoint"]),
            metadata=self._load(record["metadata"]),
            parent_config=config(parent) if parent else None,
            pending_writes=self._pending(writes),
        )

    def _pending(self, writes: builtins.list[Any]) -> builtins.list[PendingWrite]:
        """The writes of a checkpoint as LangGraph reads them: the first of each (task, index)
        for a regular write, the last for a special one (an error, an interrupt), in
        ``writes_sort_key`` order."""
        chosen: dict[tuple[str, int], Any] = {}
        for item in writes:
            slot = (item["task"], item["idx"])
            if slot[1] >= 0 and slot in chosen:
                continue
            chosen[slot] = item
        ordered = sorted(
            chosen.values(), key=lambda w: writes_sort_key(w["path"], w["task"], w["idx"])
        )
        return [(w["task"], w["channel"], self._load(w["value"])) for w in ordered]
