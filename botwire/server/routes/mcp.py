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

import json
from collections.abc import AsyncIterator, MutableMapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio.from_thread
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings

from botwire.backends.base import Backend, Op
from botwire.errors import BotWireError
from botwire.mcp._compat import request_context
from botwire.mcp.server import Served, create_server
from botwire.server.auth import Scope
from botwire.server.context import SCOPE_KEY, Context, Message, Receive, Send, _send_json


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
            local = ["127.0.0.1", "localhost", "[::1]"]
            hosts = [*local, *(f"{host}:*" for host in local), *settings.host_names()]
            security = TransportSecuritySettings(
                enable_dns_rebinding_protection=True,
                allowed_hosts=hosts,
                allowed_origins=[
                    *(f"http://{host}:*" for host in local),
                    *(f"{scheme}://{host}" for host in hosts for scheme in ("http", "https")),
                ],
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
        request = request_context().request
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
        if scope["method"] == "GET":  # stateless: no server-to-client stream to open (2.x
            # takes httpx's ``Accept: */*`` as asking for one, and would hold it open)
            error = {"code": -32600, "message": "this server offers no SSE stream: POST requests"}
            await _send_json(send, 405, {"jsonrpc": "2.0", "id": None, "error": error})
            return
        if scope["method"] == "POST":  # read and check the body before the SDK parses it
            body = await _read_body(receive)
            if body is None:
                return  # the client hung up: nobody to answer
            problem = json_rpc_problem(body)
            if problem is not None:
                error = {"code": -32700, "message": problem}
                await _send_json(send, 400, {"jsonrpc": "2.0", "id": None, "error": error})
                return
            receive = _replay(body, receive)
        await self.sessions.handle_request(scope, receive, send)


MAX_DEPTH = 64
"""Deepest nesting of arrays and objects a JSON-RPC message may have."""


def json_rpc_problem(body: bytes) -> str | None:
    """What makes ``body`` unfit for the MCP SDK to parse (``None``: nothing): not JSON, a number
    too long to convert, or nesting deeper than :data:`MAX_DEPTH`."""
    try:
        message = json.loads(body, parse_constant=_no_constant)
    except RecursionError:
        return f"the message nests deeper than {MAX_DEPTH} levels"
    except ValueError as exc:  # UnicodeDecodeError and too long numbers too
        return f"the message is not JSON-RPC that can be read: {str(exc)[:120]}"
    stack: list[tuple[Any, int]] = [(message, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > MAX_DEPTH:
                return f"the message nests deeper than {MAX_DEPTH} levels"
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)
    return None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or ``None`` when the client hung up first."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands over ``body`` once, then what the client sends next."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
