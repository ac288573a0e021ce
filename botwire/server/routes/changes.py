"""``GET /v1/changes``: the change log, as a page of JSON or as a stream of server-sent events.

A stream reads the log with the request's token, like any read, and waits between reads on the
server's :class:`~botwire.server.context.Hub`: one watcher of the store per server process,
however many streams.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from botwire import _values
from botwire._plans import MAX_CHANGES
from botwire._values import MAX_INT64, format_time
from botwire.backends.base import Change, History
from botwire.backends.changes import audit_span, token_actor
from botwire.errors import InvalidRequest, Unauthorized
from botwire.server.auth import token_names
from botwire.server.context import RequestMemory, _state
from botwire.server.schemas import ERRORS, changes_request

changes = APIRouter(tags=["changes"], responses=ERRORS)

HEARTBEAT_SECONDS = 15.0
"""A stream with nothing to send sends a comment this often (proxies close idle streams)."""


def change_json(change: Change) -> str:
    """A change as the routes answer it (its value as JSON, not as JSON text)."""
    enc = _values.to_json
    return (
        f'{{"seq":{change.seq},"namespace":{enc(change.ns)},"key":{enc(change.key)},'
        f'"op":{enc(change.op)},"version":{enc(change.version)},'
        f'"at":{enc(format_time(change.at))},"actor":{enc(change.actor)},'
        f'"request_id":{enc(change.request_id)},"value":{change.value or "null"}}}'
    )


WRITE_BYTES = 256 * 1024
"""A stream sends the events of a wake-up in writes of about this size."""


def batch_writes(batch: list[Change], recent: dict[Any, list[bytes]]) -> list[bytes]:
    """The server-sent events of a wake-up's changes, in writes of about :data:`WRITE_BYTES`:
    made once for every stream of the store that sends the same changes (the streams of one
    selection, woken together), unless they are large. ``recent`` holds the writes of the
    store's latest wake-ups (at most 64, each up to :data:`_SHARED_BYTES`): positions name
    changes within one store only."""
    key = (tuple(change.seq for change in batch), any(c.value is not None for c in batch))
    found = recent.get(key)
    if found is None:
        found = _writes(batch)
        if sum(map(len, found)) <= _SHARED_BYTES:
            if len(recent) >= 64:
                recent.pop(next(iter(recent)))
            recent[key] = found
    return found


_SHARED_BYTES = 1024 * 1024


def _writes(batch: list[Change]) -> list[bytes]:
    writes: list[bytes] = []
    events: list[str] = []
    size = 0
    for change in batch:
        events.append(event := f"id: {change.seq}\nevent: change\ndata: {change_json(change)}\n\n")
        size += len(event)
        if size >= WRITE_BYTES:
            writes.append("".join(events).encode())
            events, size = [], 0
    if events:
        writes.append("".join(events).encode())
    return writes


@changes.get("/v1/changes")
async def read_changes(
    request: Request,
    ns: Annotated[str | None, Query(description="the namespace to read")] = None,
    ns_prefix: Annotated[
        str, Query(description="without ns: every namespace that starts with this")
    ] = "",
    prefix: Annotated[str, Query(description="only keys that start with this")] = "",
    since: Annotated[
        int | None,
        Query(ge=0, le=MAX_INT64, description="after this position (a stream: default now)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_CHANGES)] = 100,
    values: Annotated[bool, Query(description="carry what each change wrote")] = True,
    last_event_id: Annotated[str | None, Header()] = None,
) -> Response:
    """The change log, oldest first, in commit order, scoped by the token like every read.

    With ``Accept: text/event-stream``, a stream of server-sent events, one per change
    (``id``: its position, ``event: change``, ``data``: the change), with a comment every 15 s
    when there is nothing to send; it starts after ``since`` (default: now), or after the
    ``Last-Event-ID`` a reconnecting client sends, so that nothing is missed or repeated.
    Otherwise a page: ``{"changes": [{"seq", "namespace", "key", "op", "version", "at",
    "actor", "request_id", "value"}], "cursor"}``; pass ``cursor`` as ``since`` to read on.
    """
    context, scope = _state(request)
    streaming = "text/event-stream" in request.headers.get("accept", "")
    if last_event_id is not None:
        if not (last_event_id.isascii() and last_event_id.isdigit()) or (
            int(last_event_id) > MAX_INT64
        ):
            raise InvalidRequest("Last-Event-ID must be a change's position (a number)")
        since = int(last_event_id)
    start = since if since is not None else (-1 if streaming else 0)
    op = changes_request(ns, 0, prefix, limit, ns_prefix, values)._replace(since=start)
    if not streaming:
        (page,) = await context.run(scope, [op])
        body = ",".join(change_json(change) for change in page.changes)
        return Response(
            f'{{"changes":[{body}],"cursor":{page.cursor}}}', media_type="application/json"
        )
    scope.check(op)  # refused before the stream starts, with its status

    authorization = request.headers.get("authorization")

    checked = time.monotonic()

    async def still_allowed() -> bool:
        """Whether the stream's token still holds, asked before each write of events (from
        the token cache: a token revoked on this server ends its streams at once, elsewhere
        within the cache time). An anonymous stream asks whether the store now requires
        tokens once the cache time has passed (that is a read of the store)."""
        nonlocal checked
        if authorization is None:
            if time.monotonic() - checked < context.auth.cache_seconds:
                return True
            checked = time.monotonic()
        try:
            await context.auth.scope(authorization)
        except Unauthorized:
            return False
        return True

    async def events() -> AsyncIterator[str | bytes]:
        start = op
        if op.since < 0:  # from now on: tell the client where that is, to resume from
            (end,) = await context.run(scope, [op])
            start = op._replace(since=end.cursor)
            yield f"id: {end.cursor}\n\n"
        changes = context.backend.afollow_batches(start, HEARTBEAT_SECONDS)  # shared with
        try:  # every stream of its selection; each wake-up's changes go out as one write
            async for batch in changes:
                if not await still_allowed():
                    return  # its token was revoked, or expired: the stream ends
                if not batch:
                    yield ": heartbeat\n\n"
                    continue
                for write in batch_writes(batch, context.recent_events):
                    yield write
        finally:
            await changes.aclose()  # type: ignore[attr-defined]

    headers = {"cache-control": "no-store", "x-accel-buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


@changes.get("/v1/audit")
async def audit(
    request: Request,
    ns_prefix: Annotated[str, Query(description="namespaces that start with this")] = "",
    actor: Annotated[
        str | None,
        Query(description="a token's name, or an actor as the log names it (local:..., ...)"),
    ] = None,
    since: Annotated[
        str | None, Query(description="a span back from now (30m, 1h, 2d) or an ISO time")
    ] = None,
    until: Annotated[str | None, Query(description="as since: the end of the range")] = None,
    cursor: Annotated[int, Query(ge=0, le=MAX_INT64, description="read on after it")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_CHANGES)] = 100,
    values: Annotated[bool, Query(description="carry what each change wrote")] = False,
) -> Response:
    """Who changed what, when, and from which request, across namespaces, oldest first: the
    change log for an admin token (``botwire token create NAME --prefix '*' --admin``). An
    actor named by a token's name must be a token the store knows.

    Answers ``{"changes": [...], "cursor"}`` as ``GET /v1/changes`` does; values only when asked.
    """
    context, scope = _state(request)
    scope.check_admin()
    now = int(time.time() * 1_000_000)
    start, end = audit_span(since, until, now)
    named = token_actor(actor)
    if named != actor and actor not in await asyncio.to_thread(token_names, context.backend):
        raise InvalidRequest(f"unknown actor: no token is named {actor!r}")
    op = changes_request(None, cursor, "", limit, ns_prefix, values)
    op = op._replace(actor=named, from_at=start, to_at=end)
    (page,) = await context.run(scope, [op])
    body = ",".join(change_json(change) for change in page.changes)
    return Response(f'{{"changes":[{body}],"cursor":{page.cursor}}}', media_type="application/json")


_ABSENT = object()


@changes.get("/v1/history")
async def history(
    request: Request,
    ns: Annotated[str, Query(description="the namespace")],
    key: Annotated[str, Query(description="the key")],
    limit: Annotated[int, Query(ge=1, le=MAX_CHANGES)] = 20,
) -> Response:
    """A key's changes, newest first, each with what it wrote (``value``), who and when.

    Answers ``{"changes": [...]}`` in the shape of ``GET /v1/changes``.
    """
    context, scope = _state(request)
    op = History(_values.check_namespace(ns), _values.check_key(key), limit)
    (found,) = await context.run(scope, [op])
    body = ",".join(change_json(change) for change in found)
    return Response(f'{{"changes":[{body}]}}', media_type="application/json")


@changes.get("/v1/versions")
async def version_value(
    request: Request,
    ns: Annotated[str, Query(description="the namespace")],
    key: Annotated[str, Query(description="the key")],
    version: Annotated[int, Query(ge=1, le=MAX_INT64, description="a version the key had")],
) -> Response:
    """What ``key`` held at ``version``, rebuilt from the change log (as
    ``Memory.get(key, version=...)``): ``{"namespace", "key", "version", "value"}``; 404 where
    the log holds nothing of the key then."""
    context, scope = _state(request)
    mem = RequestMemory(_values.check_namespace(ns), context, scope)
    value = await mem.get(key, _ABSENT, version=version)
    if value is _ABSENT:
        detail = f"the change log holds no version {version} of {key!r}"
        return JSONResponse({"detail": detail}, 404)
    enc = _values.to_json
    return Response(
        f'{{"namespace":{enc(ns)},"key":{enc(key)},"version":{version},"value":{enc(value)}}}',
        media_type="application/json",
    )


class RestoreIn(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    ns: str
    key: str
    version: int = Field(ge=1, le=MAX_INT64)


@changes.post("/v1/restore")
async def restore(request: Request, body: RestoreIn) -> dict[str, Any]:
    """Write what ``key`` held at ``version`` as its new version, keeping its expiry, if
    nothing wrote it meanwhile (as ``Memory.restore``): ``{"version"}``, the new one. 412 when
    another writer changed it during the restore; 400 when it held nothing then."""
    context, scope = _state(request)
    mem = RequestMemory(_values.check_namespace(body.ns), context, scope)
    return {"version": await mem.restore(body.key, version=body.version)}
