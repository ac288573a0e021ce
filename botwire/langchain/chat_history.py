"""``BotWireChatHistory``: a LangChain chat history that survives restarts and is shared by
every worker of a bot."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import (
    BaseMessage,
    message_chunk_to_message,
    message_to_dict,
    messages_from_dict,
)

from botwire import AsyncMemory, Memory, _values
from botwire._memory import on_store
from botwire.errors import InvalidValue, ValueTooLarge, WrongType
from botwire.telemetry import traced

LEADING = {"type": "system"}
"""A window never drops the system message that opens a conversation."""
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
"""The largest message by default, in bytes of JSON (``botwire serve`` takes requests up to
8 MiB, and stores values up to its own ``--max-value-bytes``)."""
AS_TEXT = "botwire_json"
"""A message whose metadata JSON cannot hold (NaN, infinities) is stored as its JSON text,
under this field, beside its ``type``."""
MAX_SESSION_BYTES = 64 * 1024
"""The longest session id, in bytes of UTF-8."""


class BotWireChatHistory(BaseChatMessageHistory):
    """A LangChain ``BaseChatMessageHistory`` kept in botwire: one list per session.

    ``add_messages`` is one atomic append, whatever the session's length, so workers that write
    one session at once lose nothing and keep each one's order; the async methods use
    ``AsyncMemory`` (real async I/O on a server or PostgreSQL). Messages are stored as
    LangChain's own ``message_to_dict`` and come back equal, every field included; a streamed
    ``AIMessageChunk`` is stored as the ``AIMessage`` it adds up to.

    Args:
        session_id: the conversation; any text (spaces, ``:``, ``/``, unicode), no control
            characters, up to 64 kB (an id over 512 bytes is kept under a key made of its
            start and its hash).
        namespace: the botwire namespace that holds the sessions.
        url: the store (default ``$BOTWIRE_URL``, else the embedded file).
        memory: an existing ``Memory`` or ``AsyncMemory`` whose store (and connections) to
            use instead of ``url``; the sessions stay in ``namespace``.
        max_messages: keep only the newest ``max_messages`` messages, and a system message
            that opened the conversation (it counts toward the limit).
        ttl: seconds (or a timedelta) after which an idle session expires; every write
            restarts it.
        max_message_bytes: the largest message, in bytes of its JSON (default 8 MiB; a
            server also holds each to its own ``--max-value-bytes``).

    Raises:
        InvalidKey: a ``session_id`` that is empty, too long or has a control character.

    A message whose metadata holds ``NaN`` or an infinity is stored as LangChain's own
    serializer writes it (JSON text with ``NaN``/``Infinity``) and comes back equal.

    Example::

        from langchain_core.runnables.history import RunnableWithMessageHistory
        chain = RunnableWithMessageHistory(
            prompt | model, lambda session_id: BotWireChatHistory(session_id, max_messages=50),
            input_messages_key="question", history_messages_key="history",
        )
    """

    def __init__(
        self,
        session_id: str,
        *,
        namespace: str = "langchain-sessions",
        url: str | None = None,
        memory: Memory | AsyncMemory | None = None,
        max_messages: int | None = None,
        ttl: float | timedelta | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        super().__init__()
        self.session_id = _values.check_key(session_id, "session_id", MAX_SESSION_BYTES)
        self._key = _key_of(self.session_id)
        if max_messages is not None:
            _values.check_int(max_messages, "max_messages", 1)
        self.max_messages = max_messages
        self.ttl = _values.check_ttl(ttl)
        self.max_message_bytes = _values.check_int(max_message_bytes, "max_message_bytes", 1)
        self._memory = on_store(Memory, namespace, url, memory, self.max_message_bytes)
        self._amemory = on_store(AsyncMemory, namespace, url, self._memory)

    def __repr__(self) -> str:
        return f"BotWireChatHistory({self.session_id!r}, namespace={self._memory.namespace!r})"

    # -- reading -------------------------------------------------------------------------------

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        """The session's messages, oldest first."""
        return self._decode(self._memory.get(self._key))

    async def aget_messages(self) -> list[BaseMessage]:
        """The session's messages, oldest first (native async)."""
        return self._decode(await self._amemory.get(self._key))

    def _decode(self, stored: Any) -> list[BaseMessage]:
        items = self._as_list(stored)
        return messages_from_dict([_message_dict(item) for item in items])

    def _as_list(self, stored: Any) -> list[Any]:
        """The stored message dicts. The hosted BotWire SDK wrote a session as one string of
        JSON (``messages_to_dict`` output); it reads the same until the first write converts it."""
        if stored is None:
            return []
        if isinstance(stored, str):
            try:
                stored = json.loads(stored)
            except ValueError:
                stored = None
        if not isinstance(stored, list):
            raise WrongType(
                f"session {self.session_id!r} in namespace {self._memory.namespace!r} holds "
                "something else than a chat history; use another session_id or clear() it"
            )
        return stored

    # -- writing -------------------------------------------------------------------------------

    @traced("botwire.langchain.chat_history.add_messages")
    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append ``messages`` in one atomic write.

        Raises:
            InvalidValue: an item is not a LangChain message (nothing is written).
            ValueTooLarge: a message is larger than ``max_message_bytes`` (nothing is written).
        """
        items = self._encode(messages)
        if not items:
            return
        with self._naming_the_limit():
            try:
                self._memory.append(self._key, *items, **self._window())
            except WrongType:  # a session the hosted SDK wrote: made a list in place, atomically
                self._memory.update(self._key, self._as_list)
                self._memory.append(self._key, *items, **self._window())

    @traced("botwire.langchain.chat_history.add_messages")
    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append ``messages`` in one atomic write (native async)."""
        items = self._encode(messages)
        if not items:
            return
        with self._naming_the_limit():
            try:
                await self._amemory.append(self._key, *items, **self._window())
            except WrongType:
                await self._amemory.update(self._key, self._as_list)
                await self._amemory.append(self._key, *items, **self._window())

    @contextmanager
    def _naming_the_limit(self) -> Iterator[None]:
        """A message over the limit: the error names this class's parameter."""
        try:
            yield
        except ValueTooLarge as exc:
            if exc.limit != self.max_message_bytes:
                raise  # a server's own limit: its message says so
            raise ValueTooLarge(
                f"a message is {exc.size} bytes of JSON, over this history's limit of "
                f"{exc.limit} (raise it with BotWireChatHistory(max_message_bytes=...))",
                size=exc.size,
                limit=exc.limit,
            ) from None

    @traced("botwire.langchain.chat_history.clear")
    def clear(self) -> None:
        """Delete the session."""
        self._memory.delete(self._key)

    @traced("botwire.langchain.chat_history.clear")
    async def aclear(self) -> None:
        """Delete the session (native async)."""
        await self._amemory.delete(self._key)

    def _window(self) -> dict[str, Any]:
        return {"max_len": self.max_messages, "ttl": self.ttl, "keep_first": LEADING}

    @staticmethod
    def _encode(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
        if isinstance(messages, BaseMessage):
            messages = [messages]
        items: list[dict[str, Any]] = []
        for number, message in enumerate(messages):
            if not isinstance(message, BaseMessage):
                raise InvalidValue(
                    f"add_messages takes LangChain messages; item {number} is a "
                    f"{type(message).__name__}: {message!r:.80}"
                )
            item = message_to_dict(message_chunk_to_message(message))
            try:
                json.dumps(item, allow_nan=False)
                items.append(item)
            except ValueError:  # NaN or an infinity: kept as LangChain's serializer writes it,
                # beside its type (a window's keep_first still sees a system message)
                items.append({"type": item["type"], AS_TEXT: json.dumps(item)})
            except TypeError:
                items.append(item)  # the store says what it cannot hold
        return items


def _message_dict(item: Any) -> Any:
    """A stored message as ``messages_from_dict`` reads it."""
    if isinstance(item, dict) and AS_TEXT in item:
        return json.loads(item[AS_TEXT])
    return item


def _key_of(session_id: str) -> str:
    """The key of a session: its id, or for an id too long for a key, its start and hash
    (``%~`` and 64 hex digits)."""
    if len(session_id.encode("utf-8")) <= _values.MAX_KEY_BYTES:
        return session_id
    digest = hashlib.sha256(session_id.encode("utf-8")).hexdigest()
    start = session_id.encode("utf-8")[: _values.MAX_KEY_BYTES - 66].decode("utf-8", "ignore")
    return f"{start}%~{digest}"
