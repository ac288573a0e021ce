"""botwire: persistent memory for AI agents and chat bots.

    from botwire import Memory
    mem = Memory("telegram-bot")
    mem.set("user_42_prefs", {"language": "en"}, ttl=3600)
    mem.get("user_42_prefs")          # {'language': 'en'}, after a restart too

``import botwire`` stays light: no framework and no server code is imported until used.
"""

from __future__ import annotations

from botwire.errors import (
    BackendUnavailable,
    BotWireError,
    Forbidden,
    InvalidKey,
    InvalidRequest,
    InvalidValue,
    QuotaExceeded,
    Unauthorized,
    ValueTooLarge,
    VersionConflict,
    WrongType,
)
from botwire.memory import AsyncMemory, Entry, Memory, alist_namespaces, list_namespaces

__version__ = "0.1.0"

__all__ = [
    "AsyncMemory",
    "BackendUnavailable",
    "BotWireError",
    "Entry",
    "Forbidden",
    "InvalidKey",
    "InvalidRequest",
    "InvalidValue",
    "Memory",
    "QuotaExceeded",
    "Unauthorized",
    "ValueTooLarge",
    "VersionConflict",
    "WrongType",
    "__version__",
    "alist_namespaces",
    "list_namespaces",
]
