"""Scripted stand-ins for language models: fixed replies, no network, no key.

Importable by the tests' child processes (``from tests.scripted import ...``).
"""

from __future__ import annotations

from typing import Any

from crewai import BaseLLM
from pydantic import Field


class ScriptedCrewLLM(BaseLLM):
    """A CrewAI LLM that answers with ``replies`` in turn, in CrewAI's ReAct text format.

    ``{observation}`` in a reply is replaced by the last tool result the agent was shown, so
    that a final answer can carry what a tool returned. Every prompt is kept in ``seen``.
    """

    replies: list[str] = Field(default_factory=list)
    seen: list[Any] = Field(default_factory=list)

    def call(
        self,
        messages: Any,
        tools: Any = None,
        callbacks: Any = None,
        available_functions: Any = None,
        from_task: Any = None,
        from_agent: Any = None,
        response_model: Any = None,
    ) -> str:
        self.seen.append(messages)
        reply = self.replies.pop(0)
        return reply.replace("{observation}", self.last_observation(messages))

    async def acall(self, messages: Any, *args: Any, **kwargs: Any) -> str:
        return self.call(messages, *args, **kwargs)

    @staticmethod
    def last_observation(messages: Any) -> str:
        """The last tool result in a prompt."""
        texts = [messages] if isinstance(messages, str) else [m["content"] for m in messages]
        for text in reversed(texts):
            if isinstance(text, str) and "Observation:" in text:
                return text.rsplit("Observation:", 1)[1].strip()
        return ""


def tool_call(name: str, arguments: str) -> str:
    """A reply that calls a tool, in CrewAI's ReAct format."""
    return f"Thought: I will use {name}.\nAction: {name}\nAction Input: {arguments}"


def final(answer: str) -> str:
    """A reply that ends the task."""
    return f"Thought: I now know the final answer\nFinal Answer: {answer}"


def word_embedder(texts: list[str]) -> list[list[float]]:
    """A deterministic embedder for tests: each word (lowercased, stripped of punctuation)
    hashed into one of 64 dimensions, the vector normalised. Texts that share words are
    near."""
    import hashlib
    import math

    vectors = []
    for text in texts:
        vector = [0.0] * 64
        for word in text.lower().split():
            word = word.strip(".,!?;:'\"")
            if word:
                vector[int(hashlib.sha256(word.encode()).hexdigest(), 16) % 64] += 1.0
        norm = math.sqrt(sum(x * x for x in vector)) or 1.0
        vectors.append([x / norm for x in vector])
    return vectors
