"""MCP integration: botwire memory as tools and resources for Claude and every MCP client.

    botwire mcp --namespace claude        # a stdio server, for a client's config file

and, in ``botwire serve``, the same server over streamable HTTP at ``/mcp/{namespace}``, behind
the server's tokens. Tools: ``remember``, ``recall``, ``forget``, ``list_memory``,
``search_memory`` and ``append_note`` (worded by :mod:`botwire.tools`, as the CrewAI tools are).
Resources: ``botwire://{namespace}/{key}`` (a value) and ``botwire://{namespace}`` (its keys).

Needs the MCP SDK: ``pip install -e '.[mcp]'`` (in a botwire checkout).
"""

from __future__ import annotations

from botwire.errors import MissingExtra

try:
    import mcp.server.lowlevel  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingExtra("botwire's MCP server needs mcp", "mcp") from exc

from botwire.mcp.server import Served, Where, create_server, resource_uri, run_stdio

__all__ = ["Served", "Where", "create_server", "resource_uri", "run_stdio"]
