"""The MCP SDK's low-level server on mcp 1.x (>=1.30) and 2.x.

Handlers are written in the 2.x shape ``async (ctx, params) -> <Method>Result``. On 2.x they are
the ``Server(on_...=)`` arguments; on 1.x they go into ``server.request_handlers`` (keyed by
request type), ``ctx`` being 1.x's ``server.request_context``. Either way :func:`request_context`
gives the running handler's context (its ``.request``: the Starlette request over HTTP).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from mcp import types
from mcp.server.lowlevel import Server

try:  # mcp 1.x
    from mcp.shared.exceptions import McpError

    MCP2 = False
except ImportError:  # mcp 2.x
    from mcp.shared.exceptions import MCPError as McpError  # type: ignore[attr-defined, no-redef]

    MCP2 = True

__all__ = ["MCP2", "McpError", "make_server", "mcp_error", "as_uri", "request_context"]

Handler = Callable[[Any, Any], Awaitable[Any]]
_context: ContextVar[Any] = ContextVar("botwire_mcp_request_context")


def mcp_error(code: int, message: str) -> McpError:
    """The exception a handler raises to answer with a JSON-RPC error."""
    if MCP2:
        return McpError(code, message)  # type: ignore[call-arg, arg-type]
    return McpError(types.ErrorData(code=code, message=message))


def as_uri(text: str) -> Any:
    """A URI as the SDK's types take it (1.x reads a ``str`` into its ``AnyUrl``, 2.x keeps it)."""
    return text


def request_context() -> Any:
    """The context of the request being handled (``LookupError`` outside one)."""
    return _context.get()


def make_server(
    name: str, *, version: str, instructions: str | None = None, **handlers: Handler
) -> Server[Any]:
    """A low-level server of ``handlers``: ``list_tools``, ``call_tool``, ``list_resources``,
    ``list_resource_templates``, ``read_resource``."""

    def bind(fn: Handler) -> Handler:
        async def handle(ctx: Any, params: Any) -> Any:
            token = _context.set(ctx)
            try:
                return await fn(ctx, params)
            finally:
                _context.reset(token)

        return handle

    if MCP2:
        on = {f"on_{method}": bind(fn) for method, fn in handlers.items()}
        return Server(name, version=version, instructions=instructions, **on)  # type: ignore[arg-type]
    server: Any = Server(name, version=version, instructions=instructions)
    requests = {
        "list_tools": types.ListToolsRequest,
        "call_tool": types.CallToolRequest,
        "list_resources": types.ListResourcesRequest,
        "list_resource_templates": types.ListResourceTemplatesRequest,
        "read_resource": types.ReadResourceRequest,
    }

    def on_request(fn: Handler) -> Callable[[Any], Awaitable[Any]]:
        async def handle(request: Any) -> Any:
            return types.ServerResult(await fn(server.request_context, request.params))

        return handle

    for method, fn in handlers.items():
        server.request_handlers[requests[method]] = on_request(bind(fn))
    return server  # type: ignore[no-any-return]
