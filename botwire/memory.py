"""``Memory`` and ``AsyncMemory``, as the hosted BotWire SDK's code imports them
(``from botwire.memory import Memory``); they live in :mod:`botwire._memory`."""

from __future__ import annotations

from botwire._memory import (
    AsyncMemory,
    Memory,
    alist_namespaces,
    asearch_namespaces,
    list_namespaces,
    on_store,
    search_namespaces,
)
from botwire._plans import Entry

__all__ = [
    "AsyncMemory",
    "Entry",
    "Memory",
    "alist_namespaces",
    "asearch_namespaces",
    "list_namespaces",
    "on_store",
    "search_namespaces",
]


def __getattr__(name: str) -> object:
    if name == "memory_tools":  # the hosted SDK's path: from botwire.memory import memory_tools
        from botwire.crewai import memory_tools

        return memory_tools
    raise AttributeError(f"module 'botwire.memory' has no attribute {name!r}")
