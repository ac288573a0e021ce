"""The ``botwire serve`` application, built by :func:`create_app`.

Routes:
- ``/memory/{ns}/{key}`` (PUT, GET, DELETE) and ``GET /memory/{ns}``: compatible with the hosted
  BotWire service, so its clients work unchanged. Versions travel as ``ETag``; ``If-Match`` and
  ``If-None-Match: *`` make a write conditional (412 when it no longer holds).
- ``POST /v1/batch``: many operations in one request and one transaction (the Python client).
- ``/mcp/{ns}``: the MCP server (:mod:`botwire.server.mcp`), when the ``mcp`` extra is installed.
- ``/healthz``, ``/metrics`` (Prometheus) and the OpenAPI docs at ``/docs``.

A request passes, in order: :class:`Observe` (metrics; an unexpected error becomes a JSON 500
with a request id, the connection kept), :class:`RequestGuard` (header, path and body limits),
:class:`Authenticate` (the token, and the namespace of a compatible route), then its route. So a
client without a valid token learns nothing but 401, whatever it sends. Every refusal is a 4xx
with a JSON ``detail``.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import unquote_to_bytes

from fastapi import APIRouter, FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.routing import Route

from botwire import __version__, _values
from botwire._values import format_time
from botwire._version import install_hint
from botwire.backends import create_backend, wire
from botwire.backends.base import (
    Backend,
    Delete,
    Get,
    ListKeys,
    ListNamespaces,
    Op,
    Put,
    Quotas,
    Record,
)
from botwire.backends.common import ReadBudget, read_budget
from botwire.config import default_path, mask_url
from botwire.errors import BotWireError, Forbidden, InvalidRequest, QuotaExceeded, Unauthorized
from botwire.server.auth import Authenticator, Scope
from botwire.server.metrics import Metrics
from botwire.server.schemas import batch_openapi, parse_batch, search_request
from botwire.server.settings import Settings

if TYPE_CHECKING:
    from botwire.server.mcp import MCPEndpoint

log = logging.getLogger("botwire.server")

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]

SCOPE_KEY = "botwire.scope"
"""Where :class:`Authenticate` leaves the request's :class:`Scope` in the ASGI scope."""
PROTECTED = ("/memory/", "/memory", "/v1/", "/mcp")


async def _send_json(
    send: Send, status: int, body: dict[str, Any], headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def _send_error(send: Send, exc: BotWireError, context: Context | None = None) -> None:
    headers = [(b"www-authenticate", b"Bearer")] if isinstance(exc, Unauthorized) else []
    if context is not None:
        context.metrics.refused(exc)
    await _send_json(send, wire.error_status(exc), wire.error_to_json(exc), headers)


# -- middleware (outermost first) ------------------------------------------------------------


class Observe:
    """Count requests and their latency per route for ``/metrics``, and answer an unexpected
    error with a JSON 500 that carries a request id (also in the log), keeping the connection
    open for the client's next request."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        responded = False

        async def record_status(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status = message["status"]
                responded = True
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        except Exception:
            request_id = uuid.uuid4().hex[:16]
            log.exception("request %s (%s %s) failed", request_id, scope["method"], scope["path"])
            if responded:
                raise  # too late for a clean answer
            status = 500
            body = {
                "detail": f"internal error; the server's log has the details under {request_id}",
                "error": "InternalError",
                "request_id": request_id,
            }
            await _send_json(send, 500, body, [(b"x-request-id", request_id.encode())])
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.observe(scope["method"], route, status, time.perf_counter() - started)


class RequestGuard:
    """Refuse what must not reach the routes.

    - More headers, or more header bytes, than the settings allow: 431, before anything else.
    - A path or query whose percent-encoded bytes are not UTF-8 (``%FF``): 400. (Decoding them
      leniently would make ``%FF`` and ``%FE`` the same key.)
    - A path with a control character: 400. (Routing would otherwise match ``k\\n`` as ``k``.)
    - A body above ``max_bytes``: 413, from ``Content-Length`` before reading, or while the body
      streams in, before it is buffered whole.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        if len(headers) > self.settings.max_headers or (
            sum(len(name) + len(value) for name, value in headers) > self.settings.max_header_bytes
        ):
            detail = (
                f"request headers are too large (at most {self.settings.max_headers} headers "
                f"and {self.settings.max_header_bytes} bytes)"
            )
            await _send_json(send, 431, {"detail": detail, "error": "InvalidRequest"})
            return
        problem = _path_problem(scope)
        if problem is not None:
            await _send_json(send, 400, {"detail": problem, "error": "InvalidKey"})
            return
        for name, value in headers:
            if name == b"content-length":
                if not (value.isdigit() and len(value) < 20):
                    await _send_json(send, 400, {"detail": "Content-Length must be a number"})
                    return
                if int(value) > self.settings.max_body_bytes:
                    await _send_json(send, 413, {"detail": self._message()})
                    return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.settings.max_body_bytes:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _BodyTooLarge:
            await _send_json(send, 413, {"detail": self._message()})

    def _message(self) -> str:
        return f"request body is larger than {self.settings.max_body_bytes} bytes (max_body_bytes)"


class _BodyTooLarge(Exception):
    pass


def _path_problem(scope: MutableMapping[str, Any]) -> str | None:
    raw = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
    try:
        unquote_to_bytes(raw).decode("utf-8")
        unquote_to_bytes(scope.get("query_string", b"").replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        return "the URL is not valid UTF-8 once percent-decoded (such as %FF): encode keys as UTF-8"
    if _values.has_control(scope["path"]):
        return "the path contains a control character; keys and namespaces may not"
    return None


class Authenticate:
    """Authenticate every request to a data route before its route reads anything.

    The request's :class:`Scope` goes to the route in the ASGI scope; the namespace of a
    compatible route or of ``/mcp/{ns}`` (the path segment after the route's name) is checked
    here too, so that a token outside its prefixes, or a read-only token that writes, gets 403
    before its body is read. ``/metrics``
    needs a token once tokens are on (any valid token, or ``metrics_token``).
    """

    def __init__(self, app: ASGIApp, context: Context) -> None:
        self.app = app
        self.context = context

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path.startswith(PROTECTED) or path == "/metrics"):
            await self.app(scope, receive, send)
            return
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
        try:
            if path == "/metrics":
                await self._metrics(authorization)
            else:
                token_scope = await self.context.auth.scope(authorization)
                ns = _path_namespace(path)
                if ns:
                    writes = path.startswith("/memory/") and scope["method"] in ("PUT", "DELETE")
                    token_scope.check_namespace(ns, writes)
                scope[SCOPE_KEY] = token_scope
        except (Unauthorized, Forbidden) as exc:
            await _send_error(send, exc, self.context)
            return
        await self.app(scope, receive, send)

    async def _metrics(self, authorization: str | None) -> None:
        token = self.context.settings.metrics_token
        if token and authorization == f"Bearer {token}":
            return
        if authorization or await self.context.auth.required():
            await self.context.auth.scope(authorization)


def _path_namespace(path: str) -> str | None:
    """The namespace a path names: ``/memory/{ns}/...`` and ``/mcp/{ns}``."""
    for route in ("/memory/", "/mcp/"):
        if path.startswith(route):
            return path[len(route) :].split("/", 1)[0] or None
    return None


class KeyRoutes:
    """``GET``, ``PUT`` and ``DELETE /memory/{ns}/{key}``, the routes a bot calls on every turn,
    called straight from here.

    They are FastAPI routes (the OpenAPI docs describe them, and these are their functions),
    but FastAPI's work per request, searching its routes and solving each parameter, costs
    more than the route itself; so a request to one of them goes to its function directly,
    with the path's namespace and key and the headers it reads. Every other request goes on to
    FastAPI.
    """

    def __init__(self, app: ASGIApp, context: Context) -> None:
        self.app = app
        self.context = context
        path = memory.prefix + "/{namespace}/{key:path}"
        self.routes = {
            method: route for route in memory.routes if getattr(route, "path", None) == path
            for method in getattr(route, "methods", ()) if method in _KEY_CALLS
        }  # fmt: skip

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        route = self.routes.get(scope.get("method", ""))
        path = scope.get("path", "")
        if route is not None and scope["type"] == "http" and path.startswith("/memory/"):
            ns, slash, key = path[len("/memory/") :].partition("/")
            if ns and slash:
                scope["route"] = route  # for the metrics, as FastAPI would set it
                request = Request(scope, receive)
                try:
                    response = await _KEY_CALLS[scope["method"]](request, ns, key)
                except BotWireError as exc:
                    response = error_response(self.context, exc)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


# -- the server's state ------------------------------------------------------------------------


class Context:
    """What every request needs: settings, the store, the authenticator and the metrics."""

    def __init__(self, settings: Settings, backend: Backend, metrics: Metrics) -> None:
        self.settings = settings
        self.backend = backend
        self.metrics = metrics
        self.auth = Authenticator(
            backend,
            anonymous_ok=settings.loopback or settings.allow_anonymous,
            cache_seconds=settings.token_cache_seconds,
        )

    async def run(self, scope: Scope, ops: list[Op]) -> list[Any]:
        """Run ``ops`` for a request: each one within the token's rights, and the values they
        read within ``max_response_bytes``."""
        for op in ops:
            scope.check(op)
        budget = read_budget.set(ReadBudget(self.settings.max_response_bytes))
        try:
            return await self.backend.aexecute(ops)
        finally:
            read_budget.reset(budget)


def _state(request: Request) -> tuple[Context, Scope]:
    context: Context = request.app.state.context
    return context, request.scope[SCOPE_KEY]


Namespace = Annotated[str, Path(description="The namespace (no '/').")]
Key = Annotated[str, Path(description="The key, percent-encoded ('/' as %2F).")]


# -- schemas (for validation and the OpenAPI docs) ------------------------------------------


class PutBody(BaseModel):
    """A value to store: a string or any JSON value, with an optional time to live."""

    model_config = ConfigDict(extra="ignore")
    value: Any = Field(description="Any JSON value; a string comes back as that string.")
    ttl: float | None = Field(
        default=None, gt=0, le=_values.MAX_TTL, strict=True,
        description="Seconds until the key expires (a positive number).",
    )  # fmt: skip


class EntryOut(BaseModel):
    namespace: str
    key: str
    value: Any = None
    version: int
    created_at: str
    updated_at: str
    expires_at: str | None


class WrittenOut(BaseModel):
    namespace: str
    key: str
    version: int
    created_at: str
    updated_at: str
    expires_at: str | None


class DeletedOut(BaseModel):
    namespace: str
    key: str
    deleted: bool


class KeyOut(BaseModel):
    key: str
    bytes: int
    updated_at: str


class KeyListOut(BaseModel):
    namespace: str
    count: int
    keys: list[KeyOut]
    next_cursor: str | None


class ErrorOut(BaseModel):
    detail: Any
    error: str | None = None


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 404, 409, 412, 413, 429, 431, 503)
}


def validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Validation errors as JSON, without the input that failed (it may not even be printable
    JSON: ``NaN``) or anything else from the request."""
    return [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors]


def _json(body: str, status: int = 200, version: int | None = None) -> Response:
    headers = {"etag": f'"{version}"'} if version is not None else None
    return Response(body, status, headers=headers, media_type="application/json")


def _entry_json(ns: str, key: str, record: Record, with_value: bool) -> str:
    enc = _values.to_json
    value = f',"value":{record.value}' if with_value else ""
    return (
        f'{{"namespace":{enc(ns)},"key":{enc(key)}{value},"version":{record.version},'
        f'"created_at":{enc(format_time(record.created_at))},'
        f'"updated_at":{enc(format_time(record.updated_at))},'
        f'"expires_at":{enc(format_time(record.expires_at))}}}'
    )


def _if_version(if_match: str | None, if_none_match: str | None) -> int | None:
    if if_none_match is not None:
        if if_none_match.strip() != "*":
            raise InvalidRequest("If-None-Match on a write must be '*' (only if absent)")
        return 0
    if if_match is None:
        return None
    tag = if_match.strip().removeprefix("W/").strip('"')
    if not (tag.isascii() and tag.isdigit() and len(tag) <= 19):
        raise InvalidRequest('If-Match must be a version as sent in ETag, e.g. "17"')
    return _values.check_int(int(tag), "If-Match", 0)


# -- routes ---------------------------------------------------------------------------------

memory = APIRouter(prefix="/memory", tags=["memory"], responses=ERRORS)

PUT_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": PutBody.model_json_schema()}},
    }
}


@memory.put("/{namespace}/{key:path}", response_model=WrittenOut, openapi_extra=PUT_BODY)
async def put_value(
    namespace: Namespace,
    key: Key,
    request: Request,
    if_match: Annotated[str | None, Header()] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """Store a value (a string or any JSON value) with an optional ``ttl`` in seconds."""
    context, scope = _state(request)
    try:
        body = PutBody.model_validate_json(await request.body())
    except ValidationError as exc:
        return JSONResponse({"detail": validation_errors(exc.errors())}, 422)
    ns, key = _values.check_namespace(namespace), _values.check_key(key)
    value = _values.encode_value(body.value, context.settings.max_value_bytes)
    ttl = _values.check_ttl(body.ttl)
    put = Put(ns, key, value, ttl, _if_version(if_match, if_none_match))
    _, record = await context.run(scope, [put, Get(ns, key, False)])
    return _json(_entry_json(ns, key, record, False), version=record.version)


@memory.get("/{namespace}/{key:path}", response_model=EntryOut)
async def get_value(namespace: Namespace, key: Key, request: Request) -> Response:
    """A value with its version and timestamps; 404 when missing or expired."""
    context, scope = _state(request)
    ns, key = _values.check_namespace(namespace), _values.check_key(key)
    (record,) = await context.run(scope, [Get(ns, key)])
    if record is None:
        return JSONResponse({"detail": f"key {key!r} not found in namespace {ns!r}"}, 404)
    return _json(_entry_json(ns, key, record, True), version=record.version)


@memory.delete("/{namespace}/{key:path}", response_model=DeletedOut)
async def delete_value(namespace: Namespace, key: Key, request: Request) -> Response:
    """Delete a key; ``deleted`` says whether it existed."""
    context, scope = _state(request)
    ns, key = _values.check_namespace(namespace), _values.check_key(key)
    (deleted,) = await context.run(scope, [Delete(ns, key)])
    enc = _values.to_json
    return _json(f'{{"namespace":{enc(ns)},"key":{enc(key)},"deleted":{enc(deleted)}}}')


_KEY_CALLS: dict[str, Callable[[Request, str, str], Awaitable[Response]]] = {
    "GET": lambda request, ns, key: get_value(ns, key, request),
    "PUT": lambda request, ns, key: put_value(
        ns, key, request, request.headers.get("if-match"), request.headers.get("if-none-match")
    ),
    "DELETE": lambda request, ns, key: delete_value(ns, key, request),
}
"""How :class:`KeyRoutes` calls each method's route function."""


@memory.get("/{namespace}", response_model=KeyListOut)
async def list_keys(
    namespace: Namespace,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=wire.MAX_PAGE)] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    prefix: Annotated[str, Query()] = "",
) -> Any:
    """One page of keys in key order, with the cursor of the next page."""
    context, scope = _state(request)
    ns = _values.check_namespace(namespace)
    after = None if cursor is None else _values.check_key(cursor, "cursor")
    page_op = ListKeys(ns, _values.check_prefix(prefix), limit, after)
    (page,) = await context.run(scope, [page_op])
    keys = [
        {"key": info.key, "bytes": info.size, "updated_at": format_time(info.updated_at)}
        for info in page.keys
    ]
    return {"namespace": ns, "count": len(keys), "keys": keys, "next_cursor": page.next_cursor}


native = APIRouter(tags=["native"], responses=ERRORS)


class BatchOut(BaseModel):
    results: list[Any]


@native.post("/v1/batch", response_model=BatchOut, openapi_extra=batch_openapi())
async def batch(request: Request) -> Response:
    """Run many operations in one transaction: all take effect, or none does.

    Values travel as their JSON text in a string. One bad operation rejects the whole batch.
    The values a batch reads may total at most ``max_response_bytes`` (413 beyond that).
    """
    context, scope = _state(request)
    settings = context.settings
    ops = parse_batch(await request.body(), settings.max_batch_ops, settings.max_value_bytes)
    results = await context.run(scope, ops)
    if scope.prefixes != ("*",):  # a scoped token sees only its own namespaces
        results = [
            [ns for ns in result if scope.allows(ns)] if isinstance(op, ListNamespaces) else result
            for op, result in zip(ops, results, strict=True)
        ]
    body = _values.to_json({"results": [wire.result_to_json(r) for r in results]})
    return Response(body, media_type="application/json")


@native.get("/v1/search")
async def search(
    request: Request,
    q: Annotated[str, Query(description='the words to find; "quoted words" are a phrase')] = "",
    ns: Annotated[str | None, Query(description="the namespace to search")] = None,
    ns_prefix: Annotated[
        str, Query(description="without ns: every namespace that starts with this")
    ] = "",
    prefix: Annotated[str, Query(description="only keys that start with this")] = "",
    where: Annotated[
        str | None, Query(description='JSON filter on dict fields: {"role": "user"}')
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    match: Annotated[
        Literal["all", "any"], Query(description="every word must match, or any word")
    ] = "all",
) -> Response:
    """Ranked full-text search, for clients in any language (Python's client uses the batch).

    Answers ``{"hits": [{"namespace", "key", "score", "value", "items", "created_at",
    "updated_at"}]}``:
    ``value`` is the key's value, or ``null`` for a list, whose matching ``items`` (each with
    its ``position``) come instead.
    """
    context, scope = _state(request)
    op = search_request(ns, q, prefix, where, limit, ns_prefix, match)
    (found,) = await context.run(scope, [op])
    enc = _values.to_json
    hits = []
    for hit in found:
        items = "null" if hit.items is None else "[" + ",".join(
            f'{{"position":{position},"value":{text}}}' for position, text in hit.items
        ) + "]"  # fmt: skip
        hits.append(
            f'{{"namespace":{enc(hit.ns)},"key":{enc(hit.key)},"score":{enc(hit.score)},'
            f'"value":{hit.value or "null"},"items":{items},'
            f'"created_at":{enc(format_time(hit.created_at))},'
            f'"updated_at":{enc(format_time(hit.updated_at))}}}'
        )
    return Response('{"hits":[' + ",".join(hits) + "]}", media_type="application/json")


@native.get("/healthz")
async def healthz(request: Request) -> Any:
    """Whether the server can reach its store (open to all)."""
    context: Context = request.app.state.context
    await context.backend.aexecute([Get("/health", "ping", False)])
    return {"status": "ok", "version": __version__}


@native.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> Response:
    """Prometheus metrics: requests, latency, errors and quota rejections, for the whole server
    (every worker). Once tokens are on, it needs one (any valid token, or the server's
    ``metrics_token``)."""
    context: Context = request.app.state.context
    return Response(context.metrics.render(), media_type="text/plain; version=0.0.4")


# -- the application ------------------------------------------------------------------------


_NO_OPENTELEMETRY: dict[str, Any] = (
    {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters
    else {}
)
"""FastAPI's own OpenTelemetry (from 0.16x) asks for its providers on every request; the server
has its Prometheus metrics, so it is turned off where FastAPI has it."""


def error_response(context: Context, exc: BotWireError) -> Response:
    """A refusal as the client sees it (JSON, the status of its kind), counted in the metrics."""
    context.metrics.refused(exc)
    headers = None
    if isinstance(exc, QuotaExceeded) and exc.retry_after is not None:
        headers = {"retry-after": str(max(1, round(exc.retry_after)))}
    return JSONResponse(wire.error_to_json(exc), wire.error_status(exc), headers=headers)


def open_server_backend(settings: Settings) -> Backend:
    """The store the server keeps its data in, with the quotas it enforces.

    ``settings.db`` (``--db`` or ``$BOTWIRE_DB``), else the embedded store. ``$BOTWIRE_URL``
    is where *clients* find a store (often this very server) and plays no part here.
    """
    url = settings.db or "sqlite:///" + str(default_path())
    if url.split(":", 1)[0].lower() in ("http", "https"):
        raise InvalidRequest(
            f"the server stores into sqlite:///... or postgresql://..., not {mask_url(url)}"
        )
    quotas = Quotas(settings.quota_writes_per_day, settings.quota_bytes)
    return create_backend(url, quotas=None if quotas == Quotas() else quotas)


def create_app(settings: Settings | None = None, *, backend: Backend | None = None) -> FastAPI:
    """Build the server's application.

    Args:
        settings: how to run; default :meth:`Settings.from_env`.
        backend: the store; default the one ``settings.db`` names.
    """
    settings = settings or Settings.from_env()
    store = backend or open_server_backend(settings)
    context = Context(settings, store, Metrics())

    mcp = _mcp_endpoint(context)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as running:
            if mcp is not None:
                await running.enter_async_context(mcp.run())
            yield
        await store.aclose()

    app = FastAPI(
        title="botwire",
        version=__version__,
        summary="Persistent memory for AI agents and chat bots.",
        lifespan=lifespan,
        **_NO_OPENTELEMETRY,
    )
    app.state.context = context
    app.include_router(memory)
    app.include_router(native)
    methods = ["GET", "POST", "DELETE"]
    app.router.routes += [
        Route("/mcp/{namespace}", mcp or _no_mcp, methods=methods, include_in_schema=False),
        Route("/mcp", _name_the_namespace, methods=methods, include_in_schema=False),
    ]

    @app.exception_handler(BotWireError)
    async def botwire_error(request: Request, exc: BotWireError) -> Response:
        return error_response(context, exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        context.metrics.refused("RequestValidationError")
        return JSONResponse({"detail": validation_errors(exc.errors())}, 422)

    app.add_middleware(KeyRoutes, context=context)
    app.add_middleware(Authenticate, context=context)
    app.add_middleware(RequestGuard, settings=settings)
    app.add_middleware(Observe, metrics=context.metrics)
    return app


def _mcp_endpoint(context: Context) -> MCPEndpoint | None:
    """``/mcp/{namespace}``: the MCP server, when the ``mcp`` extra is installed."""
    try:
        from botwire.server.mcp import MCPEndpoint
    except ImportError:
        return None
    return MCPEndpoint(context)


async def _no_mcp(request: Request) -> Response:
    detail = "this server has no MCP endpoint: " + install_hint("mcp")
    return JSONResponse({"detail": detail}, 404)


async def _name_the_namespace(request: Request) -> Response:
    detail = "name the namespace to serve over MCP in the URL: /mcp/{namespace}"
    return JSONResponse({"detail": detail}, 404)


def app_from_env() -> FastAPI:
    """The factory uvicorn's worker processes call: settings from ``BOTWIRE_*`` variables.

    With several workers, each one exits when the supervisor that started it is gone (killed
    with SIGKILL, say), instead of serving on as an orphan.
    """
    settings = Settings.from_env()
    if settings.workers > 1:
        _exit_with_parent()
    return create_app(settings)


def _exit_with_parent() -> None:
    import signal

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="botwire-parent-watch", daemon=True).start()
