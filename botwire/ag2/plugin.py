"""AG2 1.x (package ``ag2``): botwire memory as a plugin for an ``Agent``, with no vector
database and no extra model call.

    from ag2 import Agent
    from botwire.ag2 import memory_plugin

    agent = Agent("assistant", prompt="...", config=..., plugins=[memory_plugin("user-42")])
    reply = await agent.ask("What is my name?")   # memories from earlier sessions shown first

Needs AG2 1.x: ``pip install -e '.[ag2]'`` (in a botwire checkout).
"""

from __future__ import annotations

from botwire.errors import MissingExtra

try:
    from ag2 import Plugin, tool
    from ag2.events import ModelRequest, TextInput
    from ag2.middleware import BaseMiddleware, Middleware
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingExtra("botwire's AG2 integration needs ag2 1.x", "ag2") from exc

import asyncio
from typing import Annotated, Any

from pydantic import Field, WithJsonSchema

from botwire._memory import AsyncMemory, Memory, on_store
from botwire._recall import Source, recall
from botwire._values import check_int
from botwire.ag2._common import Message, describe_turn, function, is_turn
from botwire.tools import Arg, MemoryTools, memory_block


def memory_plugin(
    namespace: str,
    *,
    url: str | None = None,
    memory: Memory | AsyncMemory | None = None,
    k: int = 5,
    remember_conversations: bool = True,
    read_only: bool = False,
) -> Plugin:
    """Durable, shared memory for AG2 ``Agent``s, as a plugin.

    Before each model call of a turn, the model is shown the memories relevant to the message
    the agent answers (botwire's search for questions): the facts of ``namespace``, and the
    turns of earlier conversations in it, in any process (each with the turn around it). The
    block is added to the prompt for that call only, never to the conversation. Each
    conversation (an AG2 stream) is kept as it goes, one list per stream, under
    ``{namespace}:conversations``. The plugin also brings the memory tools (``remember``,
    ``recall``, ``list_memory``, ``forget``, ``search_memory``, ``append_note``).

    Args:
        namespace: the memory (the facts its tools store, what the agent is shown).
        url: the store (default ``$BOTWIRE_URL``, else the embedded file on this machine).
        memory: an existing ``Memory`` whose store (and connections) to use instead of ``url``.
        k: most memories shown before a reply.
        remember_conversations: keep conversations (``False``: memories only).
        read_only: leave out the tools that write, and keep no conversations.
    """
    facts = on_store(Memory, namespace, url, memory)
    kept = remember_conversations and not read_only
    conversations = Memory(f"{namespace}:conversations", backend=facts.backend)
    tools = MemoryTools(facts, read_only=read_only)
    recalling = Middleware(
        _Recall, facts=facts, conversations=conversations if remember_conversations else None,
        keep=kept, k=check_int(k, "k", 1, 100),
    )  # fmt: skip
    return Plugin(
        middleware=[recalling],
        tools=[
            tool(function(tools, spec, _annotation), name=spec.name, description=spec.description)
            for spec in tools.specs
        ],
    )


def _annotation(arg: Arg) -> Any:
    """An argument's annotation as AG2 1.x reads it: a pydantic ``Field`` description, and the
    schema a model is shown where it is narrower than what the tool takes."""
    if arg.shown_as is None:
        return Annotated[arg.type, Field(description=arg.description)]
    shown = WithJsonSchema({"type": arg.shown_as, "description": arg.description})
    return Annotated[arg.type, Field(description=arg.description), shown]


class _Recall(BaseMiddleware):
    """One per turn: recalls what the turn's message calls for, shows it to each model call of
    the turn, and keeps the turn."""

    def __init__(
        self,
        event: Any,
        context: Any,
        *,
        facts: Memory,
        conversations: Memory | None,
        keep: bool,
        k: int,
    ) -> None:
        super().__init__(event, context)
        self.facts = facts
        self.conversations = conversations
        self.keep = keep
        self.k = k
        self.key = f"stream:{context.stream.id}"
        self.text = _text(event)
        self.block: str | None = None

    async def on_turn(self, call_next: Any, event: Any, context: Any) -> Any:
        if self.text.strip():
            self.block = await asyncio.to_thread(self._recall)
        response = await call_next(event, context)
        if self.keep and self.conversations is not None:
            turns: list[Message] = [{"role": "user", "content": self.text}] if self.text else []
            reply = response.to_api()
            if isinstance(reply, dict) and reply.get("content"):
                turns.append({"role": "assistant", "content": reply["content"]})
            if turns:
                await asyncio.to_thread(self.conversations.append, self.key, *turns)
        return response

    async def on_llm_call(self, call_next: Any, events: Any, context: Any) -> Any:
        if not self.block:
            return await call_next(events, context)
        prompt = context.prompt
        context.prompt = [*prompt, self.block]
        try:
            return await call_next(events, context)
        finally:
            context.prompt = prompt

    def _recall(self) -> str | None:
        sources = [Source(self.facts)]
        if self.conversations is not None:
            sources.append(Source(self.conversations))
        found = [
            memory
            for memory in recall(sources, self.text, self.k, fill=False, context=1)
            if not (is_turn(memory) and memory.key == self.key)  # this conversation's own
        ]
        return memory_block(self.facts.namespace, found, describe_turn) if found else None


def _text(event: Any) -> str:
    """The text of the message a turn answers."""
    if not isinstance(event, ModelRequest):
        return ""
    return " ".join(part.content for part in event.parts if isinstance(part, TextInput))
