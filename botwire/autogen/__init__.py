"""AutoGen integration: durable agent memory and a persistent model context.

    from botwire.autogen import BotWireChatCompletionContext, BotWireMemory
    agent = AssistantAgent(
        "assistant", model_client,
        memory=[BotWireMemory("user-42")],
        model_context=BotWireChatCompletionContext("user-42", buffer_size=20),
    )

Needs AutoGen 0.7 (autogen-core, autogen-agentchat): ``pip install -e '.[autogen]'`` (in a
botwire checkout).
"""

from __future__ import annotations

from botwire.errors import MissingExtra

try:
    import autogen_core  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingExtra("botwire's AutoGen integration needs autogen-core", "autogen") from exc

from botwire.autogen.context import (
    BotWireChatCompletionContext,
    BotWireChatCompletionContextConfig,
)
from botwire.autogen.memory import BotWireMemory, BotWireMemoryConfig

__all__ = [
    "BotWireChatCompletionContext",
    "BotWireChatCompletionContextConfig",
    "BotWireMemory",
    "BotWireMemoryConfig",
]
