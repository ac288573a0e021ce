"""``Memory`` and ``AsyncMemory``: a namespaced key-value memory that survives restarts.

Both classes share :class:`_MemoryBase`, which validates input and turns each call into a *plan*:
the operations to run and how to read their results. ``Memory`` runs plans with
``backend.execute`` and ``AsyncMemory`` with ``backend.aexecute``; nothing else differs.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, Literal, TypeVar

from botwire import _values, config
from botwire._search import Hit, hits, search_op
from botwire.backends import Backend, open_backend
from botwire.backends.base import (
    Append,
    Clear,
    Delete,
    Expire,
    Get,
    Incr,
    KeyInfo,
    ListNamespaces,
    Op,
    Put,
    Record,
    Search,
    Slice,
    Steps,
    all_keys,
    arun_steps,
    run_steps,
)
from botwire.errors import InvalidRequest, VersionConflict

T = TypeVar("T")
Ttl = float | int | timedelta | None

log = logging.getLogger("botwire")
_UPDATE_ATTEMPTS = 100


@dataclass(frozen=True)
class Entry:
    """A stored value with its version and timestamps (UTC), as :meth:`Memory.entry` returns it."""

    key: str
    value: Any
    version: int
    """Grows on every write of the key, and stays ahead of any version the key had before it
    was deleted; pass it to ``set(..., if_version=...)``."""
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None


def _entry(key: str, record: Record | None) -> Entry | None:
    if record is None:
        return None
    return Entry(
        key,
        _decode(record),
        record.version,
        _values.utc_datetime(record.created_at),
        _values.utc_datetime(record.updated_at),
        None if record.expires_at is None else _values.utc_datetime(record.expires_at),
    )


class _Plan(Generic[T]):
    """The operations behind one call, and how to turn their results into its return value."""

    __slots__ = ("finish", "ops")

    def __init__(self, ops: list[Op], finish: Callable[[list[Any]], T]) -> None:
        self.ops = ops
        self.finish = finish


def _first(results: list[Any]) -> Any:
    return results[0]


class _MemoryBase:
    """Everything ``Memory`` and ``AsyncMemory`` share: validation and the operations to run."""

    def __init__(
        self,
        namespace: str,
        url: str | None = None,
        *,
        base_url: str | None = None,
        token: str | None = None,
        timeout: float = 30.0,
        max_value_bytes: int | None = None,
        backend: Backend | None = None,
    ) -> None:
        self.namespace = _values.check_namespace(namespace)
        if url is not None and base_url is not None and url != base_url:
            raise InvalidRequest("pass url= or base_url= (its alias), not both")
        self.max_value_bytes = config.max_value_bytes(max_value_bytes)
        if backend is None:
            self.url = config.resolve_url(url or base_url)
            backend = open_backend(self.url, token=token, timeout=timeout)
        else:
            self.url = url or base_url or backend.url
        self._backend = backend
        self._debug = config.debug_enabled()
        if self._debug and not log.handlers:
            log.addHandler(logging.StreamHandler())
            log.setLevel(logging.DEBUG)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.namespace!r}, url={config.mask_url(self.url)!r})"

    @property
    def backend(self) -> Backend:
        """The store this memory reads and writes."""
        return self._backend

    def _key(self, key: object) -> str:
        return _values.check_key(key)

    def _encode(self, value: Any, key: str) -> str:
        return _values.encode_value(value, self.max_value_bytes, key)

    def _log(self, ops: Sequence[Op], started: float, error: BaseException | None) -> None:
        elapsed = (time.perf_counter() - started) * 1000
        names = ",".join(sorted({type(op).__name__ for op in ops}))
        keys = [getattr(op, "key", None) for op in ops[:3]]
        outcome = f" failed: {error!r}" if error else ""
        log.debug(
            "botwire %s ns=%r keys=%r%s (%d ops) %.3f ms%s",
            names,
            self.namespace,
            keys,
            "..." if len(ops) > 3 else "",
            len(ops),
            elapsed,
            outcome,
        )

    # -- plans: the operations behind each call and how to read their results ----------------

    def _plan_set(
        self, key: str, value: Any, ttl: Ttl, if_version: int | None, keep_ttl: bool = False
    ) -> _Plan[int]:
        if if_version is not None:
            _values.check_int(if_version, "if_version", 0)
        seconds = _values.check_ttl(ttl)
        key = self._key(key)
        op = Put(self.namespace, key, self._encode(value, key), seconds, if_version, keep_ttl)
        return _Plan([op], _first)

    def _plan_get(self, key: str, default: Any, refresh_ttl: bool) -> _Plan[Any]:
        def finish(results: list[Any]) -> Any:
            record = results[0]
            return default if record is None else _decode(record)

        return _Plan([Get(self.namespace, self._key(key), True, refresh_ttl, False)], finish)

    def _plan_entry(self, key: str) -> _Plan[Entry | None]:
        key = self._key(key)
        return _Plan([Get(self.namespace, key)], lambda results: _entry(key, results[0]))

    def _plan_entries(self, keys: Iterable[str], refresh_ttl: bool) -> _Plan[dict[str, Entry]]:
        names = [self._key(key) for key in _values.check_iterable(keys, "keys")]

        def finish(results: list[Any]) -> dict[str, Entry]:
            found = (_entry(key, record) for key, record in zip(names, results, strict=True))
            return {entry.key: entry for entry in found if entry is not None}

        return _Plan([Get(self.namespace, key, refresh_ttl=refresh_ttl) for key in names], finish)

    def _plan_contains(self, key: str) -> _Plan[bool]:
        return _Plan([Get(self.namespace, self._key(key), False)], lambda r: r[0] is not None)

    def _plan_ttl(self, key: str) -> _Plan[float | None]:
        key = self._key(key)

        def finish(results: list[Any]) -> float | None:
            record: Record | None = results[0]
            if record is None or record.expires_at is None:
                return None
            remaining = record.expires_at / 1_000_000 - float(self._backend.clock())
            if record.ttl is not None:
                remaining = min(remaining, record.ttl)
            return max(remaining, 0.0)

        return _Plan([Get(self.namespace, key, False)], finish)

    def _plan_delete(self, key: str) -> _Plan[bool]:
        return _Plan([Delete(self.namespace, self._key(key))], _first)

    def _plan_get_many(self, keys: Iterable[str]) -> _Plan[dict[str, Any]]:
        names = [self._key(key) for key in _values.check_iterable(keys, "keys")]

        def finish(results: list[Any]) -> dict[str, Any]:
            return {
                key: _decode(record)
                for key, record in zip(names, results, strict=True)
                if record is not None
            }

        return _Plan([Get(self.namespace, key) for key in names], finish)

    def _plan_set_many(self, mapping: Mapping[str, Any], ttl: Ttl) -> _Plan[None]:
        if not isinstance(mapping, Mapping):
            raise InvalidRequest(
                f"set_many needs a mapping of keys to values, not {type(mapping).__name__}"
            )
        seconds = _values.check_ttl(ttl)
        ops: list[Op] = []
        for key, value in mapping.items():
            key = self._key(key)
            ops.append(Put(self.namespace, key, self._encode(value, key), seconds))
        return _Plan(ops, lambda results: None)

    def _plan_delete_many(self, keys: Iterable[str]) -> _Plan[int]:
        ops: list[Op] = [
            Delete(self.namespace, self._key(key)) for key in _values.check_iterable(keys, "keys")
        ]
        return _Plan(ops, sum)

    def _plan_append(
        self,
        key: str,
        values: tuple[Any, ...],
        max_len: int | None,
        ttl: Ttl,
        keep_first: Mapping[str, Any] | None,
    ) -> _Plan[int]:
        if not values:
            raise InvalidRequest("append needs at least one value")
        if max_len is not None:
            _values.check_int(max_len, "max_len", 1)
        seconds = _values.check_ttl(ttl)
        first = None if keep_first is None else _values.check_fields(keep_first, "keep_first")
        key = self._key(key)
        items = tuple(self._encode(value, key) for value in values)
        op = Append(self.namespace, key, items, max_len, seconds, first)
        return _Plan([op], _first)

    def _plan_incr(self, key: str, by: int) -> _Plan[int]:
        return _Plan([Incr(self.namespace, self._key(key), _values.check_int(by, "by"))], _first)

    def _plan_expire(self, key: str, ttl: Ttl) -> _Plan[bool]:
        seconds = _values.check_ttl(ttl, allow_now=True)
        return _Plan([Expire(self.namespace, self._key(key), seconds)], _first)

    def _keys_steps(
        self,
        prefix: str | None,
        after: str | None = None,
        reverse: bool = False,
        limit: int | None = None,
    ) -> Steps[list[KeyInfo]]:
        if after is not None:
            after = _values.check_key(after, "after")
        if limit is not None:
            _values.check_int(limit, "limit", 1)
        return all_keys(self.namespace, _values.check_prefix(prefix), after, bool(reverse), limit)

    def _plan_slice(
        self, key: str, start: int | None, stop: int | None, default: Any
    ) -> _Plan[Any]:
        for bound, name in ((start, "start"), (stop, "stop")):
            if bound is not None:
                _values.check_int(bound, name)

        def finish(results: list[Any]) -> Any:
            text = results[0]
            return default if text is None else _values.decode_value(text)

        return _Plan([Slice(self.namespace, self._key(key), start, stop)], finish)

    def _plan_search(
        self,
        query: str,
        prefix: str | None,
        where: Mapping[str, Any] | None,
        limit: int,
        match: str,
    ) -> _Plan[list[Hit]]:
        op = search_op(self.namespace, query, prefix, where, limit, match)
        return _Plan([op], lambda results: hits(results[0]))

    def _plan_clear(self) -> _Plan[int]:
        return _Plan([Clear(self.namespace)], _first)

    def _plan_update_write(self, key: str, record: Record | None, new: Any) -> _Plan[int]:
        """Write ``new`` only if the key is still as ``record`` found it, keeping its expiry."""
        return self._plan_set(key, new, None, 0 if record is None else record.version, True)

    def _plan_read(self, key: str) -> _Plan[Record | None]:
        return _Plan([Get(self.namespace, self._key(key))], _first)


def _decode(record: Record) -> Any:
    assert record.value is not None  # every Get that feeds this asks for the value
    return _values.decode_value(record.value)


def _current(record: Record | None, default: Any) -> Any:
    return default if record is None else _decode(record)


def _backoff(attempt: int) -> float:
    return min(0.001 * 2.0**attempt, 0.05) * random.random()


def _lost_every_race(key: str, last: VersionConflict | None) -> VersionConflict:
    return VersionConflict(
        f"update of {key!r} lost the race {_UPDATE_ATTEMPTS} times: other writers change it "
        "faster than fn runs; retry later, or use incr/append for counters and lists",
        key=key,
        expected=0 if last is None else last.expected,
        actual=0 if last is None else last.actual,
    )


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

    Example::

        mem = Memory("telegram-bot")
        mem.set("user_42_prefs", {"language": "en"}, ttl=3600)
        mem.get("user_42_prefs")   # {'language': 'en'}, after a restart too
    """

    def _execute(self, ops: list[Op]) -> list[Any]:
        if not self._debug:
            return self._backend.execute(ops)
        started, error = time.perf_counter(), None
        try:
            return self._backend.execute(ops)
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._log(ops, started, error)

    def _run(self, plan: _Plan[T]) -> T:
        return plan.finish(self._execute(plan.ops))

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

    def set(self, key: str, value: Any, ttl: Ttl = None, *, if_version: int | None = None) -> int:
        """Store ``value`` (any JSON value) under ``key``; return the key's new version.

        Args:
            ttl: seconds (int, float or timedelta) until the key expires; ``None`` keeps it.
            if_version: write only if the stored version is still this (``0``: only if absent).

        Raises:
            InvalidValue: (a TypeError) the value is not JSON; nothing is written.
            ValueTooLarge: the value's JSON is above ``max_value_bytes``.
            VersionConflict: ``if_version`` did not match.
        """
        return self._run(self._plan_set(key, value, ttl, if_version))

    def get(self, key: str, default: Any = None, *, refresh_ttl: bool = False) -> Any:
        """The value of ``key``, or ``default`` when it is missing or expired.

        ``refresh_ttl=True`` restarts the key's expiry with the ttl it was written with.
        """
        return self._run(self._plan_get(key, default, refresh_ttl))

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

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The values of ``keys`` that exist, in one round trip."""
        return self._run(self._plan_get_many(keys))

    def entries(self, keys: Iterable[str], *, refresh_ttl: bool = False) -> dict[str, Entry]:
        """The :class:`Entry` (value, version, timestamps) of each of ``keys`` that exists, in
        one round trip; ``refresh_ttl`` restarts each one's expiry, as ``get`` does."""
        return self._run(self._plan_entries(keys, refresh_ttl))

    def set_many(self, mapping: Mapping[str, Any], ttl: Ttl = None) -> None:
        """Store every item of ``mapping`` atomically, in one round trip."""
        self._run(self._plan_set_many(mapping, ttl))

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

        Raises:
            WrongType: ``key`` holds something else than a list; nothing changes.

        Example::

            mem.append("chat:42", {"role": "user", "content": "hi"}, max_len=50, ttl=86400)
        """
        return self._run(self._plan_append(key, values, max_len, ttl, keep_first))

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
        raise _lost_every_race(key, last)

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
    ) -> list[Hit]:
        """Keys whose key or text matches ``query``, most relevant first, then newest first.

        Every word must match, in any case and with or without accents; ``"quoted words"``
        match as a phrase; the last word also matches as a prefix (``pyth`` finds ``Python``).
        Other characters (``*``, ``-``, ``AND``, a stray quote) are plain text. With
        ``match="any"``, any word is enough and keys that match more words rank higher, which
        finds what is relevant to a question; its common words (``what``, ``is``) are left
        out unless nothing else is left. Each item of a
        list is searched on its own, and a list's hit carries its matching ``items`` (with
        their positions) instead of the whole list. An empty query lists every key that
        passes the filters, newest first.

        Args:
            prefix: only keys that start with it.
            where: conditions on top-level fields of dict values (and list items):
                ``{"role": "user", "stars": {"$gte": 4}, "tag": {"$in": ["a", "b"]}}``
                (``$eq``, ``$ne``, ``$gt``, ``$gte``, ``$lt``, ``$lte``, ``$in``).
            limit: most keys to return (1 to 1,000), and most items per list.
            match: ``"all"`` (every word must match) or ``"any"`` (one is enough).

        Example::

            mem.search("travel plans", where={"role": "user"}, limit=5)
        """
        return self._run(self._plan_search(query, prefix, where, limit, match))


class AsyncMemory(_MemoryBase):
    """``Memory`` with ``async`` methods; same arguments, same behaviour.

    Example::

        mem = AsyncMemory("discord-bot")
        await mem.append("chat:42", {"role": "user", "text": "hi"}, max_len=100)
        history = await mem.get("chat:42", [])
    """

    async def _execute(self, ops: list[Op]) -> list[Any]:
        if not self._debug:
            return await self._backend.aexecute(ops)
        started, error = time.perf_counter(), None
        try:
            return await self._backend.aexecute(ops)
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._log(ops, started, error)

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
        self, key: str, value: Any, ttl: Ttl = None, *, if_version: int | None = None
    ) -> int:
        """Store ``value`` under ``key``; see :meth:`Memory.set`."""
        return await self._run(self._plan_set(key, value, ttl, if_version))

    async def get(self, key: str, default: Any = None, *, refresh_ttl: bool = False) -> Any:
        """The value of ``key`` or ``default``; see :meth:`Memory.get`."""
        return await self._run(self._plan_get(key, default, refresh_ttl))

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

    async def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The values of ``keys`` that exist, in one round trip."""
        return await self._run(self._plan_get_many(keys))

    async def entries(self, keys: Iterable[str], *, refresh_ttl: bool = False) -> dict[str, Entry]:
        """The entries of ``keys`` that exist; see :meth:`Memory.entries`."""
        return await self._run(self._plan_entries(keys, refresh_ttl))

    async def set_many(self, mapping: Mapping[str, Any], ttl: Ttl = None) -> None:
        """Store every item of ``mapping`` atomically, in one round trip."""
        await self._run(self._plan_set_many(mapping, ttl))

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
    ) -> int:
        """Atomically append to the list at ``key``; see :meth:`Memory.append`."""
        return await self._run(self._plan_append(key, values, max_len, ttl, keep_first))

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
        raise _lost_every_race(key, last)

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
    ) -> list[Hit]:
        """Ranked full-text search; see :meth:`Memory.search`."""
        return await self._run(self._plan_search(query, prefix, where, limit, match))


M = TypeVar("M", Memory, AsyncMemory)


def on_store(
    kind: type[M], namespace: str, url: str | None = None, memory: _MemoryBase | None = None
) -> M:
    """A ``kind`` (``Memory`` or ``AsyncMemory``) on ``namespace``: on the store of ``memory``
    when given (sharing its connections and value limit), else on ``url``'s. For adapters whose
    users pass ``url=`` or ``memory=``."""
    if memory is None:
        return kind(namespace, url)
    if not isinstance(memory, _MemoryBase):
        raise TypeError(f"memory= takes a botwire Memory or AsyncMemory, not {type(memory)}")
    return kind(namespace, backend=memory.backend, max_value_bytes=memory.max_value_bytes)


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
) -> list[Hit]:
    """:meth:`Memory.search` across every namespace that starts with ``namespace_prefix``
    (``"user:"`` for a bot that keeps one namespace per user); each hit names its namespace.

    A ``Memory`` stands for one namespace, so this searches the store, as
    :func:`list_namespaces` lists it. On a server, the token must grant every namespace the
    prefix covers (``user:`` needs a token for ``user:`` or ``*``).
    """
    backend = open_backend(config.resolve_url(url), token=token)
    (found,) = backend.execute(
        [_cross_search(query, namespace_prefix, prefix, where, limit, match)]
    )
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
) -> list[Hit]:
    """Async twin of :func:`search_namespaces`."""
    backend = open_backend(config.resolve_url(url), token=token)
    op = _cross_search(query, namespace_prefix, prefix, where, limit, match)
    (found,) = await backend.aexecute([op])
    return hits(found)


def _cross_search(
    query: str,
    namespace_prefix: str,
    prefix: str | None,
    where: Mapping[str, Any] | None,
    limit: int,
    match: str = "all",
) -> Search:
    ns_prefix = _values.check_prefix(namespace_prefix, "namespace prefix")
    return search_op(None, query, prefix, where, limit, match)._replace(ns_prefix=ns_prefix)


def __getattr__(name: str) -> object:
    if name == "memory_tools":  # the hosted SDK's path: from botwire.memory import memory_tools
        from botwire.crewai import memory_tools

        return memory_tools
    raise AttributeError(f"module 'botwire.memory' has no attribute {name!r}")
