"""botwire's own routes: ``POST /v1/batch`` (many operations in one transaction: the Python
client), ``GET /v1/search``, ``GET /v1/namespaces``, ``/healthz``, ``/readyz`` and ``/metrics``."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel

from botwire import __version__, _values
from botwire._values import format_time
from botwire.backends import wire
from botwire.backends.base import (
    Get,
    ListNamespaces,
)
from botwire.backends.search import MAX_CONTEXT
from botwire.errors import BotWireError
from botwire.server.context import Context, _state
from botwire.server.schemas import ERRORS, batch_openapi, parse_batch, search_request

native = APIRouter(tags=["native"], responses=ERRORS)
log = logging.getLogger("botwire.server")


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
    body = await request.body()
    large = len(body) > LARGE_BODY  # parsed and answered in a thread: the loop serves others
    parse = (settings.max_batch_ops, settings.max_value_bytes)
    ops = await asyncio.to_thread(parse_batch, body, *parse) if large else parse_batch(body, *parse)
    results = await context.run(scope, ops)
    if scope.prefixes != ("*",):  # a scoped token sees only its own namespaces
        results = [
            [ns for ns in result if scope.allows(ns if isinstance(ns, str) else ns.ns)]
            if isinstance(op, ListNamespaces)
            else result
            for op, result in zip(ops, results, strict=True)
        ]
    encode = _encode_results
    answer = await asyncio.to_thread(encode, results) if large else encode(results)
    return Response(answer, media_type="application/json")


LARGE_BODY = 32 * 1024
"""A batch body above this size is parsed, and its answer written, off the event loop."""


def _encode_results(results: list[Any]) -> str:
    return _values.to_json({"results": [wire.result_to_json(r) for r in results]})


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
    context: Annotated[
        int, Query(ge=0, le=MAX_CONTEXT, description="items around each matching list item")
    ] = 0,
    recency: Annotated[
        float | None, Query(gt=0, description="a half-life in seconds: newer hits first")
    ] = None,
    distinct: Annotated[
        bool | None, Query(description="leave out hits that read as a better one")
    ] = None,
    mode: Annotated[
        Literal["words", "meaning", "hybrid", "auto"],
        Query(description="rank by the query's words, its meaning, or both (--embedder)"),
    ] = "words",
) -> Response:
    """Ranked full-text search, for clients in any language (Python's client uses the batch).

    Answers ``{"hits": [{"namespace", "key", "score", "value", "items", "context",
    "created_at", "updated_at"}]}``:
    ``value`` is the key's value, or ``null`` for a list, whose matching ``items`` (each with
    its ``position``) come instead, and with ``context``, the items around them as well.
    """
    state, scope = _state(request)
    op = search_request(ns, q, prefix, where, limit, ns_prefix, match, context=context,
                        recency=recency, distinct=distinct, mode=mode)  # fmt: skip
    (found,) = await state.run(scope, [op])
    enc = _values.to_json
    hits = []
    for hit in found:
        around = None if hit.context is None else sorted([*(hit.items or []), *hit.context])
        hits.append(
            f'{{"namespace":{enc(hit.ns)},"key":{enc(hit.key)},"score":{enc(hit.score)},'
            f'"value":{hit.value or "null"},"items":{_items(hit.items)},'
            f'"context":{_items(around)},'
            f'"created_at":{enc(format_time(hit.created_at))},'
            f'"updated_at":{enc(format_time(hit.updated_at))}}}'
        )
    return Response('{"hits":[' + ",".join(hits) + "]}", media_type="application/json")


def _items(items: list[tuple[int, str]] | None) -> str:
    if items is None:
        return "null"
    return "[" + ",".join(f'{{"position":{at},"value":{text}}}' for at, text in items) + "]"


@native.get("/v1/namespaces")
async def namespaces(
    request: Request,
    prefix: Annotated[str, Query(description="only namespaces that start with this")] = "",
) -> dict[str, Any]:
    """The namespaces the token may see that hold live keys, sorted, each with its number of
    keys, the bytes of its values, and its writes today (as the writes quota counts them):
    ``{"namespaces": [{"namespace", "keys", "bytes", "writes_today"}]}``."""
    context, scope = _state(request)
    op = ListNamespaces(_values.check_prefix(prefix, "namespace prefix"), sizes=True)
    (found,) = await context.run(scope, [op])
    shown = [
        {"namespace": info.ns, "keys": info.keys, "bytes": info.bytes,
         "writes_today": info.writes_today}
        for info in found
        if scope.allows(info.ns)
    ]  # fmt: skip
    return {"namespaces": shown}


@native.get("/healthz")
async def healthz() -> Any:
    """Whether the server runs (open to all): liveness, no round trip to the store."""
    return {"status": "ok", "version": __version__}


@native.get("/readyz", responses={503: {"description": "the store does not answer"}})
async def readyz(request: Request) -> Any:
    """Whether the server can serve: its store answers (open to all). 503 while it does not."""
    context: Context = request.app.state.context
    try:
        await asyncio.wait_for(context.backend.aexecute([Get("/health", "ping", False)]), 5.0)
    except (BotWireError, asyncio.TimeoutError) as exc:  # (3.10: not the built-in one)
        log.warning("readyz: the store does not answer: %s", exc)
        detail = "the store does not answer (the server's log says why)"
        return JSONResponse({"status": "unavailable", "detail": detail}, 503)
    return {"status": "ready", "version": __version__}


@native.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> Response:
    """Prometheus metrics: requests, latency, errors and quota rejections, for the whole server
    (every worker). Once tokens are on, it needs one (any valid token, or the server's
    ``metrics_token``)."""
    context: Context = request.app.state.context
    return Response(context.metrics.render(), media_type="text/plain; version=0.0.4")
