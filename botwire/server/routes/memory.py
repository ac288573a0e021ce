"""The routes compatible with the hosted BotWire service: ``/memory/{ns}/{key}`` (PUT, GET,
DELETE) and ``GET /memory/{ns}``, and :class:`KeyRoutes`, their fast path. Versions travel as
``ETag``; ``If-Match`` and ``If-None-Match: *`` make a write conditional (412 when it no longer
holds)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from botwire import _values
from botwire._values import format_time
from botwire.backends import wire
from botwire.backends.base import (
    Delete,
    Get,
    ListKeys,
    Put,
    Record,
)
from botwire.errors import BotWireError, InvalidRequest
from botwire.server.context import ASGIApp, Context, Receive, Send, _state, error_response
from botwire.server.schemas import ERRORS, check_cursor, validation_errors

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
    sort: Annotated[
        Literal["key", "updated"], Query(description="by key, or by last change (newest first)")
    ] = "key",
) -> Any:
    """One page of keys in key order (or by last change), with the cursor of the next page."""
    context, scope = _state(request)
    ns = _values.check_namespace(namespace)
    by_update = sort == "updated"
    after = None if cursor is None else check_cursor(cursor, by_update)
    page_op = ListKeys(ns, _values.check_prefix(prefix), limit, after, by_update=by_update)
    (page,) = await context.run(scope, [page_op])
    keys = [
        {"key": info.key, "bytes": info.size, "updated_at": format_time(info.updated_at)}
        for info in page.keys
    ]
    return {"namespace": ns, "count": len(keys), "keys": keys, "next_cursor": page.next_cursor}


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
