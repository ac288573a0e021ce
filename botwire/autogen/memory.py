"""``BotWireMemory``: AutoGen agent memory that survives restarts and is shared by every process
that points at the same store."""

from __future__ import annotations

import json
from typing import Any

from autogen_core import CancellationToken, Component
from autogen_core.memory import Memory as AgentMemory
from autogen_core.memory import (
    MemoryContent,
    MemoryMimeType,
    MemoryQueryResult,
    UpdateContextResult,
)
from autogen_core.model_context import ChatCompletionContext
from autogen_core.models import SystemMessage, UserMessage
from pydantic import BaseModel, Field
from typing_extensions import Self

from botwire import AsyncMemory, Memory, _values
from botwire._recall import Source, arecall
from botwire.autogen._messages import header, memory_header
from botwire.backends.search import coverage, strings
from botwire.errors import InvalidRequest, InvalidValue
from botwire.telemetry import traced

KEY = "memories"
"""The list that holds a namespace's memories, oldest first (one atomic append per memory)."""

FIELDS = {
    MemoryMimeType.TEXT: "text",
    MemoryMimeType.MARKDOWN: "markdown",
    MemoryMimeType.JSON: "json",
}
"""Each memory is stored as ``{field: content, "metadata": {...}}``: the field names its MIME
type, and only its content and metadata are text to search."""
KINDS = {field: mime for mime, field in FIELDS.items()}
SUPPORTED = ", ".join(mime.value for mime in FIELDS)


class BotWireMemoryConfig(BaseModel):
    """The configuration of a :class:`BotWireMemory` (the token comes from the environment,
    ``BOTWIRE_TOKEN``, never from a config)."""

    namespace: str
    url: str | None = None
    k: int = Field(default=5, ge=1, le=1000)
    score_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    name: str | None = None


class BotWireMemory(AgentMemory, Component[BotWireMemoryConfig]):
    """An AutoGen ``Memory`` kept in botwire: facts an agent is given before each reply.

    ``add`` stores text, markdown and JSON content (with its metadata) exactly; ``query`` finds
    the ``k`` most relevant with botwire's search for questions (rare words weigh more than
    common ones, any form of a word, newest first among equals); ``update_context`` puts the
    most relevant to the last user message in ONE system message, numbered, followed by the
    newest others when fewer than ``k`` are relevant, so that an agent with memories is never
    shown none; and it replaces that message on the next call instead of adding another.

    Compared with AutoGen's ``ListMemory``, which it can replace: ``name``, ``content`` (read
    and replace every memory), ``add``, ``clear`` and an empty ``query`` (every memory, oldest
    first) behave alike. On purpose, ``query`` with text ranks by relevance, and
    ``update_context`` shows at most ``k`` memories (the relevant first) in one message that it
    replaces, where ``ListMemory`` shows them all, oldest first, and adds a message every turn.

    Args:
        namespace: the botwire namespace that holds these memories (one per user, say).
        url: the store (default ``$BOTWIRE_URL``, else the embedded file).
        k: most memories a query returns, and ``update_context`` shows.
        score_threshold: leave out memories that hold less than this share (0.0 to 1.0) of the
            query's telling words; ``0.5``: at least half of them. With it, ``update_context``
            shows only those (no newest others).
        name: the memory's name (``ListMemory``'s); default: the namespace.

    Example::

        memory = BotWireMemory("user-42")
        await memory.add(MemoryContent(content="Prefers metric units", mime_type="text/plain"))
        agent = AssistantAgent("assistant", model_client, memory=[memory])
    """

    component_type = "memory"
    component_config_schema = BotWireMemoryConfig
    component_provider_override = "botwire.autogen.BotWireMemory"

    def __init__(
        self,
        namespace: str,
        *,
        url: str | None = None,
        k: int = 5,
        score_threshold: float | None = None,
        name: str | None = None,
    ) -> None:
        self._memory = AsyncMemory(namespace, url)
        self._config = BotWireMemoryConfig(
            namespace=namespace,
            url=url,
            k=_values.check_int(k, "k", 1, 1000),
            score_threshold=_check_threshold(score_threshold),
            name=name,
        )

    def __repr__(self) -> str:
        return f"BotWireMemory({self._memory.namespace!r})"

    @property
    def name(self) -> str:
        """The memory's name (as ``ListMemory`` has one): the namespace unless given."""
        return self._config.name or self._memory.namespace

    @property
    def content(self) -> list[MemoryContent]:
        """Every memory, oldest first, as ``ListMemory.content``. (It reads the store as it
        is called, without ``await``; in async code, ``await query("")`` gives the same.)"""
        stored = Memory(self._memory.namespace, backend=self._memory.backend).get(KEY, [])
        return [_decode(record) for record in stored]

    @content.setter
    def content(self, memories: list[MemoryContent]) -> None:
        records = [_encode(memory) for memory in memories]  # every one checked first
        Memory(self._memory.namespace, backend=self._memory.backend).set(KEY, records)

    @property
    def header(self) -> str:
        """How the system message that ``update_context`` writes begins."""
        return header(self._memory.namespace)

    @traced("botwire.autogen.memory.add")
    async def add(
        self, content: MemoryContent, cancellation_token: CancellationToken | None = None
    ) -> None:
        """Store ``content`` (text, markdown or JSON, with its metadata) in one atomic write.

        Raises:
            InvalidValue: another MIME type (images, binary), content that does not match its
                type, or metadata JSON cannot carry; nothing is written.
        """
        await self._memory.append(KEY, _encode(content))

    @traced("botwire.autogen.memory.query")
    async def query(
        self,
        query: str | MemoryContent = "",
        cancellation_token: CancellationToken | None = None,
        **kwargs: Any,
    ) -> MemoryQueryResult:
        """The ``k`` memories most relevant to ``query`` (its text, for a ``MemoryContent``);
        with no text, every memory, oldest first (as ``ListMemory.query``).

        Keyword arguments ``k`` and ``score_threshold`` override the memory's own.

        Raises:
            InvalidRequest: content with no text (an image), or another keyword argument.
        """
        k = kwargs.pop("k", self._config.k)
        threshold = kwargs.pop("score_threshold", self._config.score_threshold)
        if kwargs:
            raise InvalidRequest(f"query takes k and score_threshold, not {sorted(kwargs)}")
        text = query if isinstance(query, str) else _text(query)
        k = _values.check_int(k, "k", 1, 1000)
        threshold = _check_threshold(threshold)
        if not text.strip():
            everything = await self._memory.get(KEY, [])
            return MemoryQueryResult(results=[_decode(record) for record in everything])
        return MemoryQueryResult(results=await self._recall(text, k, threshold, fill=False))

    async def _recall(
        self, text: str, k: int, threshold: float | None, *, fill: bool
    ) -> list[MemoryContent]:
        # a threshold can leave out some of the best-ranked: ask for more than k then
        wanted = k if threshold is None else min(1000, 4 * k + 20)
        found = await arecall([Source(self._memory, key=KEY)], text, wanted,
                              fill=fill and threshold is None)  # fmt: skip
        values = [memory.value for memory in found]
        if threshold is not None:
            values = [v for v in values if coverage(text, " ".join(strings(v))) >= threshold]
        return [_decode(value) for value in values[:k]]

    @traced("botwire.autogen.memory.update_context")
    async def update_context(self, model_context: ChatCompletionContext) -> UpdateContextResult:
        """Put the memories relevant to the last user message in ``model_context`` (then the
        newest others, up to ``k``), as one numbered system message that replaces the one an
        earlier call added."""
        visible = await model_context.get_messages()
        text = next((_text(m) for m in reversed(visible) if isinstance(m, UserMessage)), None)
        found = [] if text is None else await self._recall(
            text, self._config.k, self._config.score_threshold, fill=True
        )  # fmt: skip
        if any(memory_header(message) == self.header for message in visible):
            # the earlier message still shows: take it out (a BotWireChatCompletionContext
            # already leaves out those a newer user message follows)
            state = dict(await model_context.save_state())
            kept = [m for m in state["messages"] if memory_header(m) != self.header]
            await model_context.load_state({**state, "messages": kept})
        if found:
            lines = [f"{n}. {_render(memory)}" for n, memory in enumerate(found, 1)]
            await model_context.add_message(SystemMessage(content=self.header + "\n".join(lines)))
        return UpdateContextResult(memories=MemoryQueryResult(results=found))

    @traced("botwire.autogen.memory.clear")
    async def clear(self) -> None:
        """Delete every memory."""
        await self._memory.delete(KEY)

    async def close(self) -> None:
        """Close this memory's connections (they reopen if it is used again)."""
        await self._memory.aclose()

    def _to_config(self) -> BotWireMemoryConfig:
        return self._config.model_copy()

    @classmethod
    def _from_config(cls, config: BotWireMemoryConfig) -> Self:
        return cls(**config.model_dump())


def _encode(content: MemoryContent) -> dict[str, Any]:
    if not isinstance(content, MemoryContent):
        raise InvalidValue(f"add takes a MemoryContent, not {type(content).__name__}")
    try:
        mime = MemoryMimeType(content.mime_type)
    except ValueError:
        mime = None
    if mime is None or mime not in FIELDS:
        given = getattr(content.mime_type, "value", content.mime_type)
        raise InvalidValue(f"BotWireMemory stores {SUPPORTED} content, not {given!r}")
    value = content.content
    wanted = (str, dict) if mime is MemoryMimeType.JSON else (str,)
    if not isinstance(value, wanted):
        raise InvalidValue(
            f"{mime.value} content must be {' or '.join(t.__name__ for t in wanted)}, "
            f"not {type(value).__name__}"
        )
    record: dict[str, Any] = {FIELDS[mime]: value}
    if content.metadata is not None:
        record["metadata"] = content.metadata
    return record


def _check_threshold(threshold: object) -> float | None:
    if threshold is None:
        return None
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, (int, float))
        or not (0.0 <= threshold <= 1.0)
    ):
        raise InvalidRequest(f"score_threshold is a share from 0.0 to 1.0, not {threshold!r}")
    return float(threshold)


def _decode(record: dict[str, Any]) -> MemoryContent:
    (field,) = (name for name in record if name in KINDS)
    return MemoryContent(
        content=record[field], mime_type=KINDS[field], metadata=record.get("metadata")
    )


def _render(memory: MemoryContent) -> str:
    content = memory.content
    return content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)


def _text(message: Any) -> str:
    """The text of a user message or a ``MemoryContent`` (the text parts of a multi-part one)."""
    content = message.content
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return json.dumps(content, ensure_ascii=False)
    if isinstance(content, list):
        return " ".join(part for part in content if isinstance(part, str))
    raise InvalidRequest(f"a query needs text, not {type(content).__name__} content")
