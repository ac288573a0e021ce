"""``/mcp/{namespace}`` in ``botwire serve``: the MCP server (:mod:`botwire.mcp`) over streamable
HTTP, behind the server's tokens.

:class:`~botwire.server.middleware.Authenticate` has checked the request's token, and its
namespace in the path, before the request gets here. Every batch a tool or a resource runs then
goes through :meth:`Context.run <botwire.server.context.Context.run>` with the request's
:class:`Scope`: the token's prefixes and read-only flag, the response limit and the quotas hold as
they do for every other route. The transport is stateless and answers in plain JSON, so any
worker can serve any request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, MutableMapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio.from_thread
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings

from botwire.backends.base import Backend, Op
from botwire.errors import BotWireError
from botwire.mcp.server import Served, create_server
from botwire.server.auth import Scope
from botwire.server.context import SCOPE_KEY, Context, Receive, Send


class ScopedBackend(Backend):
    """The server's store as one request's token sees it: every batch runs through
    :meth:`Context.run`, and a refusal is counted in the metrics like a route's."""

    def __init__(self, context: Context, scope: Scope) -> None:
        super().__init__()
        self.url = context.backend.url
        self.context = context
        self.scope = scope

    def now(self) -> int:
        return self.context.backend.now()

    def execute(self, ops: Sequence[Op]) -> list[Any]:
        """From a worker thread of the server's event loop (where the MCP tools run)."""
        return anyio.from_thread.run(self.aexecute, ops)

    async def aexecute(self, ops: Sequence[Op]) -> list[Any]:
        try:
            return await self.context.run(self.scope, list(ops))
        except BotWireError as exc:
            self.context.metrics.refused(exc)
            raise


class MCPEndpoint:
    """The ASGI app at ``/mcp/{namespace}``; :meth:`run` is part of the server's lifespan."""

    def __init__(self, context: Context) -> None:
        settings = context.settings
        self.server = create_server(self._where, max_value_bytes=settings.max_value_bytes)
        security = None
        if settings.loopback:  # a web page must not reach a local server by DNS rebinding
            security = TransportSecuritySettings(
                enable_dns_rebinding_protection=True,
                allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
                allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
            )
        self.sessions = StreamableHTTPSessionManager(
            self.server,
            json_response=True,
            stateless=True,
            security_settings=security,
            max_request_body_size=settings.max_body_bytes,
        )
        self.context = context

    def _where(self) -> Served:
        request = self.server.request_context.request
        if request is None:
            raise RuntimeError("an MCP request over HTTP carries its HTTP request")
        scope: Scope = request.scope[SCOPE_KEY]
        return Served(
            ScopedBackend(self.context, scope), request.path_params["namespace"], scope.read_only
        )

    @asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        async with self.sessions.run():
            yield

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        await self.sessions.handle_request(scope, receive, send)
