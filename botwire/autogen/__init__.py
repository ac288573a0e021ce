"""AutoGen integration: durable agent memory and a persistent model context.

    from botwire.autogen import BotWireChatCompletionContext, BotWireMemory
    agent = AssistantAgent(
        "assistant", model_client,
        memory=[BotWireMemory("user-42")],
        model_context=BotWireChatCompletionContext("user-42", buffer_size=20),
    )

Needs AutoGen 0.7 (autogen-core, autogen-agentchat): ``pip install 'botwire[autogen]'``.
"""

from __future__ import annotations

try:
    import autogen_core  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "botwire's AutoGen integration needs autogen-core: pip install 'botwire[autogen]'"
    ) from exc

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
