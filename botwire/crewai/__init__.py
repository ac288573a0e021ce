"""CrewAI integration: memory tools that let a crew remember across runs and machines.

    from botwire.crewai import memory_tools
    agent = Agent(role="assistant", goal="...", backstory="...", tools=memory_tools("crew"))

Needs CrewAI: ``pip install 'botwire[crewai]>=0.3'``.
"""

from __future__ import annotations

from botwire.errors import MissingExtra

try:
    import crewai.tools  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingExtra("botwire's CrewAI integration needs crewai", "crewai") from exc

from botwire.crewai.tools import BotWireTool, memory_tools

__all__ = ["BotWireTool", "memory_tools"]
