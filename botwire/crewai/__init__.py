"""CrewAI integration: memory tools that let a crew remember across runs and machines, and
CrewAI's own memory kept in botwire.

    from botwire.crewai import BotWireStorage, memory_tools
    agent = Agent(role="assistant", goal="...", backstory="...", tools=memory_tools("crew"))
    crew = Crew(agents=[agent], tasks=[...], memory=Memory(storage=BotWireStorage("crew")))

Needs CrewAI: ``pip install -e '.[crewai]'`` (in a botwire checkout).
"""

from __future__ import annotations

from botwire.errors import MissingExtra

try:
    import crewai.tools  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingExtra("botwire's CrewAI integration needs crewai", "crewai") from exc

from botwire.crewai.storage import BotWireStorage
from botwire.crewai.tools import BotWireTool, memory_tools

__all__ = ["BotWireStorage", "BotWireTool", "memory_tools"]
