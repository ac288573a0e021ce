"""LangGraph integration: a checkpointer (each thread's state) and a store (long-term memory
across threads) on any botwire store.

    from botwire.langgraph import BotWireSaver, BotWireStore
    graph = builder.compile(checkpointer=BotWireSaver(), store=BotWireStore())

Needs LangGraph: ``pip install -e '.[langgraph]'`` (in a botwire checkout).
"""

from __future__ import annotations

from botwire.errors import MissingExtra

try:
    import langgraph.checkpoint.base  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingExtra("botwire's LangGraph integration needs langgraph", "langgraph") from exc

from botwire.langgraph.checkpoint import BotWireSaver
from botwire.langgraph.store import BotWireStore

__all__ = ["BotWireSaver", "BotWireStore"]
