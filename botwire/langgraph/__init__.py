"""LangGraph integration: a checkpointer (each thread's state) on any botwire store.

    from botwire.langgraph import BotWireSaver
    graph = builder.compile(checkpointer=BotWireSaver())

Needs LangGraph: ``pip install 'botwire[langgraph]'``.
"""

from __future__ import annotations

try:
    import langgraph.checkpoint.base  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "botwire's LangGraph integration needs langgraph: pip install 'botwire[langgraph]'"
    ) from exc

from botwire.langgraph.checkpoint import BotWireSaver

__all__ = ["BotWireSaver"]
