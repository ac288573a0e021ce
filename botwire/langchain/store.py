"""``BotWireStore`` and ``BotWireByteStore``: LangChain key-value stores on botwire."""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import timedelta
from typing import Any, Generic, TypeVar

from langchain_core.stores import BaseStore

from botwire import AsyncMemory, Memory, _values
from botwire._memory import on_store
from botwire.errors import InvalidValue, WrongType
from botwire.telemetry import traced

V = TypeVar("V")


class _BotWireBaseStore(BaseStore[str, V], Generic[V]):
    """The batch calls of a LangChain ``BaseStore``, each one round trip to botwire."""

    def __init__(
        self,
        namespace: str,
        *,
        url: str | None = None,
        memory: Memory | AsyncMemory | None = None,
        ttl: float | timedelta | None = None,
    ) -> None:
        self.ttl = _values.check_ttl(ttl)
        self._memory = on_store(Memory, namespace, url, memory)
        self._amemory = on_store(AsyncMemory, namespace, url, self._memory)

    def _encode(self, value: V) -> Any:
        return value

    _text = True
    """Whether the values are text to search (bytes are not: they stay out of the index)."""

    def _decode(self, key: str, stored: Any) -> V:
        return stored  # type: ignore[no-any-return]

    def _found(self, keys: Sequence[str], found: dict[str, Any]) -> list[V | None]:
        return [self._decode(key, found[key]) if key in found else None for key in keys]

    def _pairs(self, key_value_pairs: Sequence[tuple[str, V]]) -> dict[str, Any]:
        return {key: self._encode(value) for key, value in key_value_pairs}

    @traced("botwire.langchain.store.mget")
    def mget(self, keys: Sequence[str]) -> list[V | None]:
        """The values of ``keys`` (``None`` where missing), in one round trip."""
        return self._found(keys, self._memory.get_many(keys))

    @traced("botwire.langchain.store.mget")
    async def amget(self, keys: Sequence[str]) -> list[V | None]:
        """Async twin of :meth:`mget`."""
        return self._found(keys, await self._amemory.get_many(keys))

    @traced("botwire.langchain.store.mset")
    def mset(self, key_value_pairs: Sequence[tuple[str, V]]) -> None:
        """Store every pair atomically, in one round trip (with the store's ``ttl``)."""
        self._memory.set_many(self._pairs(key_value_pairs), ttl=self.ttl, searchable=self._text)

    @traced("botwire.langchain.store.mset")
    async def amset(self, key_value_pairs: Sequence[tuple[str, V]]) -> None:
        """Async twin of :meth:`mset`."""
        pairs = self._pairs(key_value_pairs)
        await self._amemory.set_many(pairs, ttl=self.ttl, searchable=self._text)

    @traced("botwire.langchain.store.mdelete")
    def mdelete(self, keys: Sequence[str]) -> None:
        """Delete ``keys`` atomically, in one round trip; missing keys are no error."""
        self._memory.delete_many(keys)

    @traced("botwire.langchain.store.mdelete")
    async def amdelete(self, keys: Sequence[str]) -> None:
        """Async twin of :meth:`mdelete`."""
        await self._amemory.delete_many(keys)

    def yield_keys(self, *, prefix: str | None = None) -> Iterator[str]:
        """Every key (that starts with ``prefix``), in key order; a round trip per 1,000."""
        yield from self._memory.keys(prefix)

    async def ayield_keys(self, *, prefix: str | None = None) -> AsyncIterator[str]:
        """Async twin of :meth:`yield_keys`."""
        for key in await self._amemory.keys(prefix):
            yield key


class BotWireStore(_BotWireBaseStore[Any]):
    """A LangChain ``BaseStore[str, Any]`` in a botwire namespace: values are any JSON value.

    Args:
        namespace: the botwire namespace that holds the keys.
        url: the store (default ``$BOTWIRE_URL``, else the embedded file).
        memory: an existing ``Memory`` or ``AsyncMemory`` whose store to use instead of ``url``.
        ttl: seconds (or a timedelta) each value lives after it is set.

    Example::

        store = BotWireStore("agent-cache")
        store.mset([("plan", {"steps": 3})])
        store.mget(["plan", "missing"])      # [{'steps': 3}, None]
    """


class BotWireByteStore(_BotWireBaseStore[bytes]):
    """A LangChain ``ByteStore`` (``BaseStore[str, bytes]``): bytes stored losslessly (as
    base64 text, kept out of the search index), e.g. the cache of ``CacheBackedEmbeddings``.

    Example::

        from langchain_classic.embeddings import CacheBackedEmbeddings
        cached = CacheBackedEmbeddings.from_bytes_store(
            embeddings, BotWireByteStore("embedding-cache"), namespace=embeddings.model
        )
    """

    _text = False

    def _encode(self, value: bytes) -> Any:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise InvalidValue(f"a ByteStore stores bytes, not {type(value).__name__}")
        return base64.b64encode(value).decode("ascii")

    def _decode(self, key: str, stored: Any) -> bytes:
        if isinstance(stored, str):
            with contextlib.suppress(binascii.Error):
                return base64.b64decode(stored, validate=True)
        raise WrongType(
            f"{key!r} in namespace {self._memory.namespace!r} was not written by a "
            "BotWireByteStore (it holds no base64 bytes)"
        )
