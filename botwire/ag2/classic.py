"""AG2's classic ``ConversableAgent`` API (package ``autogen`` 0.14): botwire memory as an
agent capability, with no vector database and no extra model call.

    from autogen import ConversableAgent, register_function
    from botwire.ag2 import BotWireCapability

    memory = BotWireCapability("user-42")
    memory.add_to_agent(assistant)      # relevant memories before each reply; turns kept
    memory.resume(assistant, user)      # after a restart: the earlier turns are back
    user.initiate_chat(assistant, message="Where did we stop?", clear_history=False)
    for tool in memory.tools():         # remember, recall, ... for the model to call
        register_function(tool, caller=assistant, executor=user, description=tool.__doc__)

Needs the classic AG2: ``pip install -e '.[ag2-classic]'`` (in a botwire checkout).
"""

from __future__ import annotations

from botwire.errors import MissingExtra

try:
    from autogen import ConversableAgent
    from autogen.agentchat.contrib.capabilities.agent_capability import AgentCapability
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingExtra(
        "botwire's classic AG2 integration needs autogen 0.14 (AG2's ConversableAgent)",
        "ag2-classic",
    ) from exc

from collections.abc import Callable
from datetime import datetime, timezone
from functools import partial
from typing import Annotated, Any

from botwire._memory import Memory
from botwire._recall import Source, recall
from botwire._values import check_int
from botwire.ag2._common import Message, describe_turn, function, is_turn, text_of
from botwire.tools import MemoryTools, memory_block


class BotWireCapability(AgentCapability):
    """Durable, shared memory for AG2 agents.

    Added to an agent, before each of its replies it shows the model the memories relevant to
    the message it answers (botwire's search for questions): the facts of ``namespace``, and
    the turns of the agent's earlier conversations, with any partner and in any process (each
    with the turn around it); once, as a system message that is not kept in the conversation.
    It keeps each conversation, one list per agent and partner, so that :meth:`resume` brings
    a whole one back in a new process.

    It uses AG2's ``process_all_messages_before_reply`` hook for the memories: the
    ``process_last_received_message`` hook rewrites the last message in the agent's own
    history, so memories would pile up in the conversation turn after turn, while the former
    returns a new list for this reply only. Conversations are kept by the
    ``update_agent_state`` hook (what arrived, before each reply) and the
    ``process_message_before_send`` hook (what the agent sends).

    Args:
        namespace: the memory (the facts its tools store, what the agents are shown); the
            conversations go to ``{namespace}:conversations``.
        url: the store (default ``$BOTWIRE_URL``, else the embedded file on this machine).
        k: most memories shown before a reply.
        remember_conversations: keep conversations (``False``: memories only). Each chat is
            kept under ``{agent}<->{partner}:{when it started}``.
    """

    def __init__(
        self,
        namespace: str,
        *,
        url: str | None = None,
        k: int = 5,
        remember_conversations: bool = True,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.memory = Memory(namespace, url)
        self.conversations = Memory(f"{namespace}:conversations", backend=self.memory.backend)
        self.k = check_int(k, "k", 1, 100)
        self.remember_conversations = remember_conversations
        self._tools = MemoryTools(self.memory)
        self._kept: dict[str, tuple[str, int]] = {}
        """Per agent and partner: the key of their conversation in this process and how many
        of its messages the store holds (none yet: the next write starts a new one)."""

    def __repr__(self) -> str:
        return f"BotWireCapability({self.memory.namespace!r}, url={self.memory.url!r})"

    def add_to_agent(self, agent: ConversableAgent) -> None:
        """Register the capability's hooks on ``agent``."""
        if not isinstance(agent, ConversableAgent):
            raise TypeError(f"add_to_agent needs a ConversableAgent, not {type(agent).__name__}")
        agent.register_hook(
            "process_all_messages_before_reply", partial(self._with_memories, agent)
        )
        if self.remember_conversations:
            agent.register_hook("update_agent_state", self._keep_received)
            agent.register_hook("process_message_before_send", self._keep_sent)

    def resume(self, agent: ConversableAgent, partner: ConversableAgent) -> int:
        """Put the latest conversation ``agent`` had with ``partner`` back in ``agent``'s
        history (as a restarted agent needs before ``initiate_chat(..., clear_history=False)``);
        return how many messages it holds. Without it, a conversation in a new process is a
        new one (the earlier ones stay, and their turns are still recalled)."""
        pair = _pair(agent, partner)
        latest = self.conversations.keys(pair, reverse=True, limit=1)
        key = latest[0] if latest else pair + _chat_id()
        messages: list[Message] = self.conversations.get(key, [])
        agent.chat_messages[partner] = [dict(message) for message in messages]
        self._kept[pair] = (key, len(messages))
        return len(messages)

    def tools(self) -> list[Callable[..., str]]:
        """The memory tools (``remember``, ``recall``, ``list_memory``, ``forget``,
        ``search_memory``, ``append_note``) as functions for AG2's ``register_function``:
        the names, argument schemas, descriptions (``__doc__``) and answers of the CrewAI and
        MCP tools."""
        return [function(self._tools, spec, lambda arg: Annotated[arg.type, arg.description])
                for spec in self._tools.specs]  # fmt: skip

    # -- hooks ---------------------------------------------------------------------------------

    def _with_memories(self, agent: ConversableAgent, messages: list[Message]) -> list[Message]:
        if not messages:
            return messages
        text = text_of(messages[-1])
        if not text.strip():
            return messages
        sources = [Source(self.memory)]
        if self.remember_conversations:  # what this agent heard and said, with anyone
            sources.append(Source(self.conversations, prefix=f"{agent.name}<->"))
        shown = {str(message.get("content")) for message in messages}
        found = [
            memory
            for memory in recall(sources, text, self.k, fill=False, context=1)
            if not is_turn(memory) or str(memory.value.get("content")) not in shown
        ]  # the turns of this conversation are in it already
        if not found:
            return messages
        block = memory_block(self.memory.namespace, found, describe_turn)
        return [*messages[:-1], {"role": "system", "content": block}, messages[-1]]

    def _keep_received(self, agent: ConversableAgent, messages: list[Message]) -> None:
        partner = next((p for p, kept in agent.chat_messages.items() if kept is messages), None)
        if partner is not None:  # else a reply to messages passed in, not a conversation
            self._sync(agent, partner, [])

    def _keep_sent(
        self,
        sender: ConversableAgent,
        message: Message | str,
        recipient: ConversableAgent,
        silent: bool,
    ) -> Message | str:
        sent = _as_sent(message, sender.name)
        self._sync(sender, recipient, [sent] if sent is not None else [])
        return message

    def _sync(self, agent: ConversableAgent, partner: Any, sending: list[Message]) -> None:
        """Bring the stored conversation up to ``agent``'s history with ``partner`` and the
        message being sent: append what is new, or start a new conversation when the history
        was cleared (or never resumed in this process)."""
        pair = _pair(agent, partner)
        history = list(agent.chat_messages.get(partner, []))
        key, kept = self._kept.get(pair, ("", -1))
        appending = 0 <= kept <= len(history)
        new = (history[kept:] if appending else history) + sending
        for message in new:
            text_of(message)  # refuse a message without text before writing anything
        if not appending:
            key = pair + _chat_id()
        if new:
            self.conversations.append(key, *new)
        self._kept[pair] = (key, len(history) + len(sending))


def _pair(agent: Any, partner: Any) -> str:
    """What the keys of the conversations of ``agent`` with ``partner`` start with."""
    return f"{agent.name}<->{partner.name}"


def _chat_id() -> str:
    """The end of a new conversation's key: when it started, so that the keys of one pair
    sort oldest first (a conversation kept by an earlier release has no such end)."""
    return datetime.now(timezone.utc).strftime(":%Y-%m-%dT%H:%M:%S.%fZ")


def _as_sent(message: Message | str, name: str) -> Message | None:
    """What an agent sends, as AG2 keeps it in the conversation (OpenAI's message shape: text
    becomes ``{"content", "role": "assistant", "name"}``); ``None`` when it holds nothing."""
    if isinstance(message, str):
        message = {"content": message}
    sent = {
        key: message[key]
        for key in ("content", "function_call", "tool_responses", "tool_call_id", "name", "context")
        if message.get(key) is not None
    }
    if message.get("tool_calls"):
        sent["tool_calls"] = message["tool_calls"]
    if "content" not in sent:
        if "function_call" not in sent and "tool_calls" not in sent:
            return None
        sent["content"] = None
    role = message.get("role")
    if role not in ("function", "tool"):
        role = message.get("override_role", "assistant")
    sent["role"] = role
    if sent.get("function_call") or sent.get("tool_calls"):
        sent["role"] = "assistant"
    elif "name" not in sent:
        sent["name"] = name
    return sent


__all__ = ["BotWireCapability"]
