"""``BotWireChatCompletionContext``: an AutoGen model context that survives restarts, so an
agent started again (by a deploy, on another machine) continues its conversation."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

from autogen_core import Component
from autogen_core.model_context import ChatCompletionContext, ChatCompletionContextState
from autogen_core.models import FunctionExecutionResultMessage, LLMMessage
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from typing_extensions import Self

from botwire import AsyncMemory, _values
from botwire.autogen._messages import current
from botwire.errors import InvalidValue, VersionConflict

_MESSAGE: TypeAdapter[LLMMessage] = TypeAdapter(LLMMessage)


class BotWireChatCompletionContextConfig(BaseModel):
    """The configuration of a :class:`BotWireChatCompletionContext`."""

    session_id: str
    namespace: str = "autogen-contexts"
    url: str | None = None
    buffer_size: int | None = Field(default=None, ge=1)
    initial_messages: list[LLMMessage] | None = None


class BotWireChatCompletionContext(
    ChatCompletionContext, Component[BotWireChatCompletionContextConfig]
):
    """An AutoGen ``ChatCompletionContext`` kept in botwire: one list per session.

    Each ``add_message`` is one atomic append, whatever the session's length, so nothing is
    lost when workers add to one session at once; every message type (system, user, assistant
    with function calls and thoughts, function results) comes back equal. ``get_messages``
    returns the newest ``buffer_size`` messages, as ``BufferedChatCompletionContext`` does (never
    starting with a function result whose call was cut off), reading only those.

    Args:
        session_id: the conversation; any text, no control characters, up to 512 bytes.
        namespace: the botwire namespace that holds the sessions.
        url: the store (default ``$BOTWIRE_URL``, else the embedded file).
        buffer_size: how many of the newest messages the model sees (default: all).
        initial_messages: what a new session starts with (a session that exists keeps its
            messages).

    Raises:
        InvalidKey: a ``session_id`` that is empty, too long or has a control character.

    Example::

        context = BotWireChatCompletionContext("user-42", buffer_size=20)
        agent = AssistantAgent("assistant", model_client, model_context=context)
    """

    component_config_schema = BotWireChatCompletionContextConfig
    component_provider_override = "botwire.autogen.BotWireChatCompletionContext"

    def __init__(
        self,
        session_id: str,
        *,
        namespace: str = "autogen-contexts",
        url: str | None = None,
        buffer_size: int | None = None,
        initial_messages: Sequence[LLMMessage] | None = None,
    ) -> None:
        super().__init__()
        self.session_id = _values.check_key(session_id, "session_id")
        if buffer_size is not None:
            _values.check_int(buffer_size, "buffer_size", 1)
        self.buffer_size = buffer_size
        self.url = url
        self._memory = AsyncMemory(namespace, url)
        self._initial_messages = None if initial_messages is None else list(initial_messages)
        self._initial = None if initial_messages is None else _encode(initial_messages)
        self._started = not self._initial

    def __repr__(self) -> str:
        return (
            f"BotWireChatCompletionContext({self.session_id!r}, "
            f"namespace={self._memory.namespace!r})"
        )

    async def add_message(self, message: LLMMessage) -> None:
        """Append ``message`` in one atomic write.

        Raises:
            InvalidValue: not an AutoGen ``LLMMessage`` (nothing is written).
        """
        (item,) = _encode([message])
        await self._start()
        await self._memory.append(self.session_id, item)

    async def get_messages(self) -> list[LLMMessage]:
        """The newest ``buffer_size`` messages (all without one), oldest first; a memory
        message of ``BotWireMemory`` only while it applies (until the next user message)."""
        await self._start()
        if self.buffer_size is None:
            return current(_decode(await self._memory.get(self.session_id, [])))
        # read the newest messages only: enough of them to fill the buffer once the memory
        # messages that no longer apply are left out
        wanted = self.buffer_size + 4
        while True:
            items = await self._memory.slice(self.session_id, -wanted, None, [])
            messages = current(_decode(items))
            if len(messages) >= self.buffer_size or len(items) < wanted:
                break
            wanted *= 2
        messages = messages[-self.buffer_size :]
        if messages and isinstance(messages[0], FunctionExecutionResultMessage):
            messages = messages[1:]  # its function call is outside the buffer
        return messages

    async def clear(self) -> None:
        """Empty the session (``initial_messages`` included, as AutoGen's contexts do)."""
        self._started = True
        await self._memory.set(self.session_id, [])

    async def save_state(self) -> Mapping[str, Any]:
        """Every message of the session (memory messages while they apply), as AutoGen's
        contexts save it."""
        await self._start()
        messages = current(_decode(await self._memory.get(self.session_id, [])))
        return ChatCompletionContextState(messages=messages).model_dump()

    async def load_state(self, state: Mapping[str, Any]) -> None:
        """Make the session hold the messages of ``state`` (one write)."""
        try:
            messages = ChatCompletionContextState.model_validate(state).messages
        except ValidationError as exc:
            raise InvalidValue(f"not a saved model context: {exc}") from None
        self._started = True
        await self._memory.set(self.session_id, _encode(messages))

    async def close(self) -> None:
        """Close this context's connections (they reopen if it is used again)."""
        await self._memory.aclose()

    async def _start(self) -> None:
        """Write ``initial_messages`` if the session does not exist yet (once per context)."""
        if self._started:
            return
        with contextlib.suppress(VersionConflict):  # the session exists: it keeps its messages
            await self._memory.set(self.session_id, self._initial, if_version=0)
        self._started = True

    def _to_config(self) -> BotWireChatCompletionContextConfig:
        return BotWireChatCompletionContextConfig(
            session_id=self.session_id,
            namespace=self._memory.namespace,
            url=self.url,
            buffer_size=self.buffer_size,
            initial_messages=self._initial_messages,
        )

    @classmethod
    def _from_config(cls, config: BotWireChatCompletionContextConfig) -> Self:
        return cls(**config.model_dump(exclude={"initial_messages"}),
                   initial_messages=config.initial_messages)  # fmt: skip


def _encode(messages: Sequence[Any]) -> list[Any]:
    items = []
    for number, message in enumerate(messages):
        if not isinstance(message, BaseModel) or "type" not in type(message).model_fields:
            raise InvalidValue(
                f"a model context holds AutoGen LLMMessages; item {number} is a "
                f"{type(message).__name__}: {message!r:.80}"
            )
        try:
            items.append(_MESSAGE.dump_python(_MESSAGE.validate_python(message), mode="json"))
        except ValidationError as exc:
            raise InvalidValue(f"item {number} is not an AutoGen LLMMessage: {exc}") from None
    return items


def _decode(items: list[Any]) -> list[LLMMessage]:
    return [_MESSAGE.validate_python(item) for item in items]
