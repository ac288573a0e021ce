"""The ``botwire serve`` application, built by :func:`create_app`.

Routes:
- ``/memory/{ns}/{key}`` (PUT, GET, DELETE) and ``GET /memory/{ns}``: compatible with the hosted
  BotWire service, so its clients work unchanged. Versions travel as ``ETag``; ``If-Match`` and
  ``If-None-Match: *`` make a write conditional (412 when it no longer holds).
- ``POST /v1/batch``: many operations in one request and one transaction (the Python client).
- ``/healthz``, ``/metrics`` (Prometheus) and the OpenAPI docs at ``/docs``.

Every refusal is a 4xx with a JSON ``detail``; request bodies are capped before they are read whole.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Header, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from botwire import __version__, _values, _wire
from botwire._values import format_time
from botwire.backends import create_backend
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
from botwire.config import default_path, mask_url
from botwire.errors import BotWireError, InvalidRequest, QuotaExceeded
from botwire.server.auth import Authenticator, Scope
from botwire.server.metrics import Metrics
from botwire.server.schemas import batch_openapi, parse_batch
from botwire.server.settings import Settings

log = logging.getLogger("botwire.server")

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]


# -- middleware -----------------------------------------------------------------------------


class RequestGuard:
    """Refuse what must not reach the routes.

    - A path with a control character: 400. (Routing would otherwise match ``k\n`` as ``k``,
      since ``$`` in a route's pattern matches before a final newline.)
    - A body above ``max_bytes``: 413, from ``Content-Length`` before reading, or while the body
      streams in, before it is buffered whole.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _values.has_control(scope["path"]):
            detail = "the path contains a control character; keys and namespaces may not"
            await _send_json(send, 400, {"detail": detail, "error": "InvalidKey"})
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit():
                    await _send_json(send, 400, {"detail": "Content-Length must be a number"})
                    return
                if int(value) > self.max_bytes:
                    await _send_json(send, 413, {"detail": self._message()})
                    return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, self._message())
            return message

        await self.app(scope, limited, send)

    def _message(self) -> str:
        return f"request body is larger than {self.max_bytes} bytes (max_body_bytes)"


class Observe:
    """Count requests and their latency per route for ``/metrics``."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.observe(scope["method"], route, status, time.perf_counter() - started)


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


# -- dependencies ---------------------------------------------------------------------------


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
        for op in ops:
            scope.check(op)
        return await self.backend.aexecute(ops)


async def authorize(request: Request) -> tuple[Context, Scope]:
    """The server's context and what the request's token may touch.

    Called first thing by every data route rather than declared as dependencies: FastAPI's
    dependency solving costs more than the store's own work on the hot routes.
    """
    context: Context = request.app.state.context
    return context, await context.auth.scope(request.headers.get("authorization"))


Namespace = Annotated[str, Path(description="The namespace (no '/').")]
Key = Annotated[str, Path(description="The key, percent-encoded ('/' as %2F).")]


# -- schemas (for validation and the OpenAPI docs) ------------------------------------------


class PutBody(BaseModel):
    """A value to store: a string or any JSON value, with an optional time to live."""

    model_config = ConfigDict(extra="ignore")
    value: Any = Field(description="Any JSON value; a string comes back as that string.")
    ttl: float | None = Field(
        default=None, gt=0, le=_values.MAX_TTL, description="Seconds until the key expires."
    )


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
    code: {"model": ErrorOut} for code in (400, 401, 403, 404, 409, 412, 413, 429, 503)
}


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
    if not tag.isdigit():
        raise InvalidRequest('If-Match must be a version as sent in ETag, e.g. "17"')
    return int(tag)


# -- routes ---------------------------------------------------------------------------------

memory = APIRouter(prefix="/memory", tags=["memory"], responses=ERRORS)


@memory.put("/{namespace}/{key:path}", response_model=WrittenOut)
async def put_value(
    namespace: Namespace,
    key: Key,
    body: PutBody,
    request: Request,
    if_match: Annotated[str | None, Header()] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """Store a value (a string or any JSON value) with an optional ``ttl`` in seconds."""
    context, scope = await authorize(request)
    ns, key = _values.check_namespace(namespace), _values.check_key(key)
    value = _values.encode_value(body.value, context.settings.max_value_bytes)
    ttl = _values.check_ttl(body.ttl)
    put = Put(ns, key, value, ttl, _if_version(if_match, if_none_match))
    _, record = await context.run(scope, [put, Get(ns, key, False)])
    return _json(_entry_json(ns, key, record, False), version=record.version)


@memory.get("/{namespace}/{key:path}", response_model=EntryOut)
async def get_value(namespace: Namespace, key: Key, request: Request) -> Response:
    """A value with its version and timestamps; 404 when missing or expired."""
    context, scope = await authorize(request)
    ns, key = _values.check_namespace(namespace), _values.check_key(key)
    (record,) = await context.run(scope, [Get(ns, key)])
    if record is None:
        return JSONResponse({"detail": f"key {key!r} not found in namespace {ns!r}"}, 404)
    return _json(_entry_json(ns, key, record, True), version=record.version)


@memory.delete("/{namespace}/{key:path}", response_model=DeletedOut)
async def delete_value(namespace: Namespace, key: Key, request: Request) -> Any:
    """Delete a key; ``deleted`` says whether it existed."""
    context, scope = await authorize(request)
    ns, key = _values.check_namespace(namespace), _values.check_key(key)
    (deleted,) = await context.run(scope, [Delete(ns, key)])
    return {"namespace": ns, "key": key, "deleted": deleted}


@memory.get("/{namespace}", response_model=KeyListOut)
async def list_keys(
    namespace: Namespace,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=_wire.MAX_PAGE)] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    prefix: Annotated[str, Query()] = "",
) -> Any:
    """One page of keys in key order, with the cursor of the next page."""
    context, scope = await authorize(request)
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
    """
    context, scope = await authorize(request)
    settings = context.settings
    ops = parse_batch(await request.body(), settings.max_batch_ops, settings.max_value_bytes)
    results = await context.run(scope, ops)
    if scope.prefixes != ("",):  # a scoped token sees only its own namespaces
        results = [
            [ns for ns in result if scope.allows(ns)] if isinstance(op, ListNamespaces) else result
            for op, result in zip(ops, results, strict=True)
        ]
    body = _values.to_json({"results": [_wire.result_to_json(r) for r in results]})
    return Response(body, media_type="application/json")


@native.get("/healthz")
async def healthz(request: Request) -> Any:
    """Whether the server can reach its store."""
    context: Context = request.app.state.context
    await context.backend.aexecute([Get("/health", "ping", False)])
    return {"status": "ok", "version": __version__}


@native.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> str:
    """Prometheus metrics: requests, latency, errors and quota rejections."""
    context: Context = request.app.state.context
    return context.metrics.render()


# -- the application ------------------------------------------------------------------------


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

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await store.aclose()

    app = FastAPI(
        title="botwire",
        version=__version__,
        summary="Persistent memory for AI agents and chat bots.",
        lifespan=lifespan,
    )
    app.state.context = context
    app.include_router(memory)
    app.include_router(native)

    @app.exception_handler(BotWireError)
    async def botwire_error(request: Request, exc: BotWireError) -> Response:
        status = _wire.error_status(exc)
        context.metrics.errors[type(exc).__name__] += 1
        headers = None
        if isinstance(exc, QuotaExceeded):
            context.metrics.quota_rejections[exc.quota] += 1
            if exc.retry_after is not None:
                headers = {"retry-after": str(max(1, round(exc.retry_after)))}
        return JSONResponse(_wire.error_to_json(exc), status, headers=headers)

    app.add_middleware(RequestGuard, max_bytes=settings.max_body_bytes)
    app.add_middleware(Observe, metrics=context.metrics)
    return app


def app_from_env() -> FastAPI:
    """The factory uvicorn's worker processes call: settings from ``BOTWIRE_*`` variables."""
    return create_app(Settings.from_env())
