"""The MCP server: botwire's memory tools and resources on the MCP SDK's low-level server.

One server serves both transports. What differs is *where* a request is served from: the stdio
server (``botwire mcp``) has one store and one namespace; at ``/mcp/{namespace}`` in
``botwire serve`` each request has its own, seen through its token
(:mod:`botwire.server.routes.mcp`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import quote, unquote

import anyio
import anyio.to_thread
from mcp import types
from mcp.server.lowlevel import Server

from botwire import __version__
from botwire._memory import AsyncMemory, Memory
from botwire.backends.base import Backend
from botwire.errors import BotWireError
from botwire.mcp._compat import as_uri, make_server, mcp_error
from botwire.tools import INSTRUCTIONS, Answer, MemoryTools, Refusal, ToolSpec, offered


class Served(NamedTuple):
    """What one request is served from: the store, the one namespace the server serves (its
    tools and resources reach no other), and whether it may only read."""

    backend: Backend
    namespace: str
    read_only: bool = False


Where = Callable[[], Served]
"""What the request being served is served from (called in its context)."""

SCHEME = "botwire://"
PAGE = 100
"""Keys per page of ``resources/list``."""
MAX_LISTED = 1_000
"""Most keys the ``botwire://{namespace}`` listing names."""


def resource_uri(namespace: str, key: str | None = None) -> str:
    """``botwire://{namespace}/{key}``, each part percent-encoded (``botwire://{namespace}``
    without a key: its listing)."""
    uri = SCHEME + quote(namespace, safe="")
    return uri if key is None else f"{uri}/{quote(key, safe='')}"


def create_server(where: Where, *, max_value_bytes: int | None = None) -> Server[Any, Any]:
    """An MCP server of botwire memory: the tools and resources of one namespace.

    Args:
        where: what each request is served from: the store, the namespace (the only one its
            tools and resources reach) and whether it may only read (then it is offered the
            tools that read, and no other).
        max_value_bytes: the largest value ``remember`` and ``append_note`` store (default: the
            store's usual limit, ``$BOTWIRE_MAX_VALUE_BYTES``).
    """
    tools = {ro: [_tool(spec) for spec in offered(read_only=ro)] for ro in (False, True)}

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools[where().read_only])

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        backend, namespace, read_only = where()
        memory = Memory(namespace, backend=backend, max_value_bytes=max_value_bytes)
        call = MemoryTools(memory, read_only=read_only).call
        try:
            result = await anyio.to_thread.run_sync(call, params.name, params.arguments or {})
        except Exception as exc:  # as 1.x's @call_tool() did: the model sees what went wrong
            return types.CallToolResult(
                content=[types.TextContent(type="text", text=str(exc))], isError=True
            )
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=result)],
            structuredContent=result.data if isinstance(result, Answer) else None,
            isError=isinstance(result, Refusal),
        )

    async def list_resources(ctx: Any, params: Any) -> types.ListResourcesResult:
        backend, namespace, _ = where()
        after = params.cursor if params else None
        keys = await _read(AsyncMemory(namespace, backend=backend).keys(after=after, limit=PAGE))
        resources = [types.Resource(uri=as_uri(resource_uri(namespace, k)), name=k) for k in keys]
        if not after:  # the first page starts with the namespace's listing
            listing = types.Resource(
                uri=as_uri(resource_uri(namespace)),
                name=namespace,
                mimeType="application/json",
                description=f"The keys stored in the namespace {namespace!r}.",
            )
            resources.insert(0, listing)
        more = keys[-1] if len(keys) == PAGE else None
        return types.ListResourcesResult(resources=resources, nextCursor=more)

    async def list_resource_templates(ctx: Any, params: Any) -> types.ListResourceTemplatesResult:
        namespace = where().namespace
        return types.ListResourceTemplatesResult(
            resourceTemplates=[
                types.ResourceTemplate(
                    uriTemplate=resource_uri(namespace) + "/{key}",
                    name="memory",
                    description=(
                        "The value stored under a key: text as it is, anything else as JSON."
                    ),
                ),
                types.ResourceTemplate(
                    uriTemplate=resource_uri(namespace),
                    name="keys",
                    mimeType="application/json",
                    description=f"The keys stored in the namespace {namespace!r}.",
                ),
            ]
        )

    async def read_resource(ctx: Any, params: Any) -> types.ReadResourceResult:
        uri = str(params.uri)
        backend, served, _ = where()
        namespace, key = _parse(uri)
        if namespace != served:
            raise mcp_error(
                RESOURCE_NOT_FOUND,
                f"this server serves the namespace {served!r} only: {resource_uri(served)}/{{key}}",
            )
        memory = AsyncMemory(namespace, backend=backend)
        if key is None:
            keys = await _read(memory.keys(limit=MAX_LISTED + 1))
            listing = {
                "namespace": namespace,
                "keys": keys[:MAX_LISTED],
                "more": len(keys) > MAX_LISTED,
            }
            return _contents(uri, json.dumps(listing, ensure_ascii=False), "application/json")
        missing = object()
        value = await _read(memory.get(key, missing))
        if value is missing:
            raise mcp_error(RESOURCE_NOT_FOUND, f"no memory under {key!r} in {namespace!r}")
        if isinstance(value, str):
            return _contents(uri, value, "text/plain")
        return _contents(uri, json.dumps(value, ensure_ascii=False), "application/json")

    server = make_server(
        "botwire",
        version=__version__,
        instructions=INSTRUCTIONS,
        list_tools=list_tools,
        call_tool=call_tool,
        list_resources=list_resources,
        list_resource_templates=list_resource_templates,
        read_resource=read_resource,
    )
    return server


RESOURCE_NOT_FOUND = -32002
"""The JSON-RPC error code MCP gives a resource that does not exist."""


async def _read(call: Any) -> Any:
    """Await a memory call, a botwire refusal turned into an MCP error that says what was wrong."""
    try:
        return await call
    except BotWireError as exc:
        raise mcp_error(types.INVALID_PARAMS, str(exc)) from exc


def _contents(address: str, text: str, mime_type: str) -> types.ReadResourceResult:
    return types.ReadResourceResult(
        contents=[types.TextResourceContents(uri=as_uri(address), mimeType=mime_type, text=text)]
    )


def _parse(uri: str) -> tuple[str, str | None]:
    """The namespace and key (``None``: the namespace's listing) a ``botwire://`` URI names."""
    if not uri.startswith(SCHEME):
        raise mcp_error(
            types.INVALID_PARAMS,
            f"botwire's resources are botwire://{{namespace}}/{{key}}, not {uri!r}",
        )
    namespace, _, key = uri[len(SCHEME) :].partition("/")
    return unquote(namespace), unquote(key) if key else None


def _tool(spec: ToolSpec) -> types.Tool:
    """A tool as MCP lists it: its input schema is the one the CrewAI tools validate with; its
    output schema describes the structured content of each answer."""
    schema = spec.args_model.model_json_schema()
    schema.pop("title", None)
    hints = types.ToolAnnotations(
        readOnlyHint=not spec.writes,
        destructiveHint=spec.name == "forget",
        idempotentHint=spec.name != "append_note",
        openWorldHint=False,
    )
    return types.Tool(
        name=spec.name,
        description=spec.description,
        inputSchema=schema,
        outputSchema=spec.output,
        annotations=hints,
    )


def run_stdio(
    namespace: str, url: str | None = None, *, read_only: bool = False, token: str | None = None
) -> None:
    """Serve ``namespace`` of the store at ``url`` (default ``$BOTWIRE_URL``, else the embedded
    store; a server's ``token``, default ``$BOTWIRE_TOKEN``) over stdin and stdout until the
    client hangs up: ``botwire mcp``."""
    from mcp.server.stdio import stdio_server

    memory = Memory(namespace, url, token=token)
    served = Served(memory.backend, memory.namespace, read_only)
    server = create_server(lambda: served, max_value_bytes=memory.max_value_bytes)

    async def serve() -> None:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    try:
        anyio.run(serve)
    finally:
        memory.close()
