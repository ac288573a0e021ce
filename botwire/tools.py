"""Memory as tools for a language model: the words a model reads, written once.

Every integration that gives a model tools (today the CrewAI tools, ``botwire.crewai``) wraps
:class:`MemoryTools`: the same names, descriptions, argument descriptions and results
everywhere. A result is short text a model can act on; bad input from a
model (an empty key, a value over the limit, a quota hit, a store that cannot be reached) comes
back as a result that says what was wrong and what to do, never as an exception that would stop
an agent. Mistakes of the Python code that calls a tool (a key that is not a ``str``) still
raise.

    tools = MemoryTools(Memory("crew-memory"))
    tools.remember("budget", "5000 EUR")     # "stored 'budget'"
    tools.recall("budget")                   # "'budget' = 5000 EUR"
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from botwire.errors import (
    BackendUnavailable,
    BotWireError,
    Forbidden,
    InvalidKey,
    QuotaExceeded,
    Unauthorized,
    ValueTooLarge,
)
from botwire.memory import Memory

MAX_VALUE_CHARS = 2_000
"""Longest value ``recall`` shows in full; longer ones are cut with a note of how much more."""
MAX_KEYS_SHOWN = 50
"""Most keys ``list_memory`` (and a missed ``recall``) name before noting how many more."""


@dataclass(frozen=True)
class ToolSpec:
    """A tool as a model sees it: its name, what it does and when to use it, its arguments."""

    name: str
    description: str
    arguments: dict[str, str]
    """Each argument's name and what to pass."""
    writes: bool = False
    """Left out of a read-only memory."""


KEY = "A short name for the fact, such as 'budget' or 'client:acme:contact'."

REMEMBER = ToolSpec(
    "remember",
    "Store a fact in long-term memory under a short key, so that you (or another agent) can "
    "recall it in a later conversation, even after a restart. Use it for what will matter later: "
    "the user's preferences, names, budgets, decisions, open tasks. Storing under a key that "
    "exists replaces its value.",
    {"key": KEY, "value": "The fact to store: text, or a number, list or object."},
    writes=True,
)
RECALL = ToolSpec(
    "recall",
    "Read a fact stored earlier with remember, by its key. Use recall before asking the user for "
    "something they may already have told you. If the key is unknown, the answer lists the keys "
    "that are stored.",
    {"key": KEY},
)
LIST_MEMORY = ToolSpec(
    "list_memory",
    "List the keys of the facts in long-term memory, optionally only those that start with a "
    "prefix. Use it to see what you already know before you recall or remember.",
    {"prefix": "Only keys that start with this text; empty for all keys."},
)
FORGET = ToolSpec(
    "forget",
    "Delete a fact from long-term memory by its key, when it is wrong, outdated, or the user "
    "asks you to forget it.",
    {"key": KEY},
    writes=True,
)
SPECS = (REMEMBER, RECALL, LIST_MEMORY, FORGET)


class MemoryTools:
    """The memory tools of one namespace, each returning the text a model reads.

    Args:
        memory: the namespace the tools read and write.
        read_only: leave out the tools that write (``remember``, ``forget``).
    """

    def __init__(self, memory: Memory, *, read_only: bool = False) -> None:
        if not isinstance(memory, Memory):
            raise TypeError(f"MemoryTools needs a botwire Memory, not {type(memory).__name__}")
        self.memory = memory
        self.read_only = read_only

    @property
    def specs(self) -> list[ToolSpec]:
        """The tools this memory offers (no writing tools when read-only)."""
        return [spec for spec in SPECS if not (self.read_only and spec.writes)]

    def remember(self, key: str, value: Any) -> str:
        """Store ``value`` under ``key``; text is stored as that text."""
        self._writable()
        _needs_str(key, "key")
        try:
            self.memory.set(key, value)
        except BotWireError as exc:
            return _advice(exc, f"could not store {key!r}")
        return f"stored {key!r}"

    def recall(self, key: str) -> str:
        """``'key' = value``, or which keys there are when ``key`` is unknown."""
        _needs_str(key, "key")
        missing = object()
        try:
            value = self.memory.get(key, missing)
            if value is missing:
                return f"no memory under {key!r}; {self._known_keys()}"
        except BotWireError as exc:
            return _advice(exc, f"could not recall {key!r}")
        return f"{key!r} = {render(value)}"

    def list_memory(self, prefix: str = "") -> str:
        """The stored keys (those that start with ``prefix``), a bounded number of them."""
        _needs_str(prefix, "prefix")
        try:
            keys = self.memory.keys(prefix or None)
        except BotWireError as exc:
            return _advice(exc, "could not list the memory")
        if not keys:
            return f"no keys start with {prefix!r}" if prefix else "the memory is empty"
        return _listing(keys, "key")

    def forget(self, key: str) -> str:
        """Delete ``key``."""
        self._writable()
        _needs_str(key, "key")
        try:
            deleted = self.memory.delete(key)
        except BotWireError as exc:
            return _advice(exc, f"could not forget {key!r}")
        return f"forgot {key!r}" if deleted else f"no memory under {key!r}; nothing to forget"

    def _known_keys(self) -> str:
        keys = self.memory.keys()
        if not keys:
            return "nothing is stored yet"
        return "known keys: " + _listing(keys, "key", count=False)

    def _writable(self) -> None:
        if self.read_only:
            raise PermissionError("this memory is read-only: its writing tools are not offered")


def render(value: Any, max_chars: int = MAX_VALUE_CHARS) -> str:
    """A value as a model reads it: text as it is, anything else as compact, readable JSON;
    cut at ``max_chars`` with a note of how many characters more there are."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if len(text) <= max_chars:
        return text
    return f"{text[:max_chars]}… ({len(text) - max_chars:,} more characters)"


def _listing(keys: list[str], noun: str, *, count: bool = True) -> str:
    shown = ", ".join(keys[:MAX_KEYS_SHOWN])
    head = f"{len(keys)} {noun}{'s' if len(keys) != 1 else ''}: " if count else ""
    more = len(keys) - MAX_KEYS_SHOWN
    if more > 0:
        return f"{head}{shown}, and {more:,} more (narrow it with a prefix)"
    return head + shown


def _needs_str(value: object, what: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")


def _advice(exc: BotWireError, failed: str) -> str:
    """A refusal turned into what the model should do next."""
    if isinstance(exc, InvalidKey):
        return f"{failed}: {exc}. Use a short key of plain text, such as 'budget'."
    if isinstance(exc, ValueTooLarge):
        size = ""
        if exc.size and exc.limit:
            size = f" ({exc.size:,} bytes; the limit is {exc.limit:,})"
        return f"{failed}: the value is too long{size}. Store a shorter summary instead."
    if isinstance(exc, QuotaExceeded):
        if exc.quota == "bytes":
            return f"{failed}: the memory is full. Forget facts you no longer need, then retry."
        wait = _duration(exc.retry_after)
        return (
            f"{failed}: the memory takes no more writes today (retry in {wait}). "
            "Go on without storing."
        )
    if isinstance(exc, (Unauthorized, Forbidden)):
        return f"{failed}: access to the memory was refused ({exc}). Go on without it."
    if isinstance(exc, BackendUnavailable):
        return (
            f"{failed}: the memory cannot be reached right now. Go on without it, and tell the "
            "user that this was not saved."
        )
    return f"{failed}: {exc}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "a while"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


__all__ = [
    "FORGET",
    "LIST_MEMORY",
    "RECALL",
    "REMEMBER",
    "SPECS",
    "MemoryTools",
    "ToolSpec",
    "render",
]
