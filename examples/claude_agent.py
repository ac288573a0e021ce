"""A Claude agent that remembers its user: it stores preferences and facts with memory tools,
and every conversation starts with them in the system prompt.

    pip install 'botwire[examples]' anthropic
    ANTHROPIC_API_KEY=... python examples/claude_agent.py    # a chat with Claude
    python examples/claude_agent.py                          # offline: a stand-in model, no key

What the agent knows about a user lives in the botwire namespace ``claude-agent:{user}``: one
key per fact, written by the model through botwire's memory tools (``remember``, ``recall``,
``forget``, ``search_memory``, ...: the same names, JSON schemas and answers as the CrewAI and
MCP tools, from ``botwire.tools``). The next conversation, in this process or another, starts
with those facts in the system prompt.

The model is one function, :func:`complete` (Anthropic's Messages API: a system prompt,
messages and tools in, content blocks out); the tests replace it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

from botwire import Memory
from botwire.tools import MemoryTools

Model = Callable[[str, list[dict[str, Any]], list[dict[str, Any]]], list[dict[str, Any]]]
"""(system prompt, messages, tools) -> the content blocks of the model's reply."""

MAX_FACTS = 50
"""Most facts the system prompt carries."""


def complete(
    system: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Claude's reply, as Anthropic content blocks (``text`` and ``tool_use``)."""
    import anthropic

    reply = anthropic.Anthropic().messages.create(
        model="claude-sonnet-4-5", max_tokens=1024, system=system, messages=messages, tools=tools
    )
    return [block.model_dump(exclude_none=True) for block in reply.content]


def offline(
    system: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """A stand-in for Claude without a key: it stores "remember: key = value" with the remember
    tool and otherwise says what its system prompt told it."""
    last = messages[-1]["content"]
    if isinstance(last, list):  # a tool's result: report it
        return [{"type": "text", "text": f"Done: {last[0]['content']}."}]
    if last.lower().startswith("remember:"):
        key, _, value = last.split(":", 1)[1].partition("=")
        arguments = {"key": key.strip(), "value": value.strip()}
        return [{"type": "tool_use", "id": "call-1", "name": "remember", "input": arguments}]
    known = system.split("What you know about this user:", 1)[-1].strip()
    return [
        {"type": "text", "text": "From memory: " + known.removeprefix("- ").replace("\n- ", "; ")}
    ]


class Agent:
    """A conversation with one user, whose facts persist in botwire.

    Args:
        user: who the agent talks to (their facts' namespace is ``claude-agent:{user}``).
        url: the store (default ``$BOTWIRE_URL``, else the embedded one).
        model: the model function (default: Claude with a key, else the offline stand-in).
    """

    def __init__(self, user: str, *, url: str | None = None, model: Model | None = None) -> None:
        self.memory = Memory(f"claude-agent:{user}", url)
        self.tools = MemoryTools(self.memory)
        self.model = model or (complete if os.environ.get("ANTHROPIC_API_KEY") else offline)
        self.messages: list[dict[str, Any]] = []

    def system_prompt(self) -> str:
        """Who the agent is, and every fact it knows about the user."""
        keys = self.memory.keys(limit=MAX_FACTS)
        facts = self.memory.get_many(keys)
        known = "\n".join(f"- {key}: {json.dumps(facts[key], ensure_ascii=False)}" for key in keys)
        return (
            "You are a personal assistant. Store what will matter in later conversations (the "
            "user's preferences, names, plans) with the remember tool, one fact per key.\n\n"
            "What you know about this user:\n" + (known or "nothing yet")
        )

    def tool_definitions(self) -> list[dict[str, Any]]:
        """botwire's memory tools in the shape of Anthropic's ``tools`` parameter."""
        return [
            {"name": spec.name, "description": spec.description,
             "input_schema": spec.args_model.model_json_schema()}
            for spec in self.tools.specs
        ]  # fmt: skip

    def ask(self, text: str, max_steps: int = 5) -> str:
        """The agent's answer to ``text``, after any memory tools the model calls."""
        self.messages.append({"role": "user", "content": text})
        for _ in range(max_steps):
            blocks = self.model(self.system_prompt(), self.messages, self.tool_definitions())
            self.messages.append({"role": "assistant", "content": blocks})
            calls = [block for block in blocks if block["type"] == "tool_use"]
            if not calls:
                return "".join(block.get("text", "") for block in blocks)
            results = [
                {"type": "tool_result", "tool_use_id": call["id"],
                 "content": self.tools.call(call["name"], call["input"])}
                for call in calls
            ]  # fmt: skip
            self.messages.append({"role": "user", "content": results})
        return "(stopped: too many tool calls in a row)"


def main() -> None:
    user = sys.argv[1] if len(sys.argv) > 1 else "demo-user"
    if os.environ.get("ANTHROPIC_API_KEY"):
        agent = Agent(user)
        print("Chat with Claude; it remembers you next time (Ctrl-D ends).")
        for line in sys.stdin:
            print(agent.ask(line.strip()))
        return
    print("No ANTHROPIC_API_KEY: an offline stand-in model plays Claude.\n")
    Memory(f"claude-agent:{user}").clear()
    monday = Agent(user)
    for text in ["remember: diet = vegetarian", "remember: home city = Porto", "Hi!"]:
        print(f"> {text}\n  {monday.ask(text)}")
    print("\nA new conversation (a new process, in real life):")
    print(f"> What do you know about me?\n  {Agent(user).ask('What do you know about me?')}")


if __name__ == "__main__":
    main()
