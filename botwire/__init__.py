"""botwire: persistent memory for AI agents and chat bots.

    from botwire import Memory
    mem = Memory("telegram-bot")
    mem.set("user_42_prefs", {"language": "en"}, ttl=3600)
    mem.get("user_42_prefs")          # {'language': 'en'}, after a restart too

``import botwire`` stays light: no framework and no server code is imported until used.
"""

from __future__ import annotations

from botwire._memory import (
    AsyncMemory,
    Memory,
    alist_namespaces,
    asearch_namespaces,
    list_namespaces,
    search_namespaces,
)
from botwire._plans import Change, ChangesPage, Entry
from botwire._version import __version__
from botwire.backends.search import Hit, Item
from botwire.errors import (
    BackendUnavailable,
    BotWireError,
    Forbidden,
    InvalidKey,
    InvalidRequest,
    InvalidValue,
    MissingExtra,
    Overloaded,
    QuotaExceeded,
    Unauthorized,
    ValueTooLarge,
    VersionConflict,
    WrongType,
)

_LAZY = {
    "BotWireChatHistory": "botwire.langchain",
    "BotWireStore": "botwire.langchain",
    "BotWireByteStore": "botwire.langchain",
}
"""Framework classes reachable from ``botwire`` itself, imported on first use only."""


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'botwire' has no attribute {name!r}")


__all__ = [
    "AsyncMemory",
    "BackendUnavailable",
    "BotWireError",
    "Change",
    "ChangesPage",
    "Entry",
    "Forbidden",
    "Hit",
    "InvalidKey",
    "InvalidRequest",
    "InvalidValue",
    "Item",
    "Memory",
    "MissingExtra",
    "Overloaded",
    "QuotaExceeded",
    "Unauthorized",
    "ValueTooLarge",
    "VersionConflict",
    "WrongType",
    "__version__",
    "alist_namespaces",
    "asearch_namespaces",
    "list_namespaces",
    "search_namespaces",
]
