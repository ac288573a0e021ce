"""AG2 integrations: ``memory_plugin`` for AG2 1.x (package ``ag2``, its ``Agent``), and
``BotWireCapability`` for AG2's classic ``ConversableAgent`` (package ``autogen`` 0.14).

    from botwire.ag2 import memory_plugin          # pip install 'botwire[ag2]'
    agent = Agent("assistant", config=..., plugins=[memory_plugin("user-42")])

    from botwire.ag2 import BotWireCapability      # pip install 'botwire[ag2-classic]'
    BotWireCapability("user-42").add_to_agent(assistant)

Each is imported when first used, so that either framework alone is enough.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BotWireCapability", "memory_plugin"]


def __getattr__(name: str) -> Any:
    if name == "memory_plugin":
        from botwire.ag2.plugin import memory_plugin

        return memory_plugin
    if name == "BotWireCapability":
        from botwire.ag2.classic import BotWireCapability

        return BotWireCapability
    raise AttributeError(f"module 'botwire.ag2' has no attribute {name!r}")
