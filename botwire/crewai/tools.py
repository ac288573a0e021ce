"""``memory_tools``: botwire's memory tools as CrewAI ``BaseTool`` instances.

The words the model reads (descriptions, results, advice on bad input) are
:mod:`botwire.tools`'; this module only gives them CrewAI's shape.
"""

from __future__ import annotations

import asyncio
from typing import Any

from crewai.tools import BaseTool
from pydantic import PrivateAttr

from botwire._memory import AsyncMemory, Memory, on_store
from botwire.tools import MemoryTools, ToolSpec


class BotWireTool(BaseTool):
    """One botwire memory tool (``remember``, ``recall``, ``search_memory``, ...)."""

    _tools: MemoryTools = PrivateAttr()

    def __init__(self, tools: MemoryTools, spec: ToolSpec) -> None:
        super().__init__(name=spec.name, description=spec.description, args_schema=spec.args_model)
        self._tools = tools

    def _run(self, **kwargs: Any) -> str:
        result: str = getattr(self._tools, self.name)(**kwargs)
        return result

    async def _arun(self, **kwargs: Any) -> str:
        """For async agents: the store's I/O runs in a worker thread, off the event loop."""
        return await asyncio.to_thread(self._run, **kwargs)


def memory_tools(
    namespace: str,
    *,
    url: str | None = None,
    memory: Memory | AsyncMemory | None = None,
    read_only: bool = False,
) -> list[BaseTool]:
    """CrewAI tools over the botwire namespace ``namespace``: ``remember(key, value)``,
    ``recall(key)``, ``list_memory(prefix)``, ``forget(key)``, ``search_memory(query, limit)``
    and ``append_note(key, text)``.

    Args:
        namespace: the memory the tools share (one per crew, user or team, as you choose).
        url: the store (default ``$BOTWIRE_URL``, else the embedded file on this machine).
        memory: an existing ``Memory`` whose store (and connections) to use instead of ``url``.
        read_only: leave out the tools that write (``remember``, ``forget``, ``append_note``).

    Returns:
        ``crewai.tools.BaseTool`` instances, for ``Agent(tools=...)``.

    Example::

        researcher = Agent(role="Researcher", goal="...", backstory="...",
                           tools=memory_tools("acme-project"))
    """
    tools = MemoryTools(on_store(Memory, namespace, url, memory), read_only=read_only)
    return [BotWireTool(tools, spec) for spec in tools.specs]
