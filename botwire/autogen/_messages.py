"""The system message in which ``BotWireMemory`` gives a model the memories relevant to the
user's last message, and how a persistent model context leaves out those that no longer apply
(so that each turn appends, and nothing is rewritten)."""

from __future__ import annotations

from typing import Any

from autogen_core.models import LLMMessage, SystemMessage, UserMessage

PREFIX = "Relevant memories ("


def header(namespace: str) -> str:
    """How the memory message of the memory on ``namespace`` begins."""
    return f"{PREFIX}{namespace}), most relevant first:\n"


def memory_header(message: Any) -> str | None:
    """The header of ``message`` if it is a memory message (an object or its dump), else None."""
    if isinstance(message, SystemMessage):
        content: Any = message.content
    elif isinstance(message, dict) and message.get("type") == "SystemMessage":
        content = message.get("content")
    else:
        return None
    if not isinstance(content, str) or not content.startswith(PREFIX):
        return None
    return content.split("\n", 1)[0] + "\n"


def current(messages: list[LLMMessage]) -> list[LLMMessage]:
    """``messages`` without the memory messages that no longer apply: those that a user message
    follows (they answered an earlier question) or a newer message of the same memory."""
    seen: set[str] = set()
    asked = False
    kept: list[LLMMessage] = []
    for message in reversed(messages):
        name = memory_header(message)
        if name is not None:
            if asked or name in seen:
                continue
            seen.add(name)
        elif isinstance(message, UserMessage):
            asked = True
        kept.append(message)
    kept.reverse()
    return kept
