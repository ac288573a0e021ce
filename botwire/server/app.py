"""The ``botwire serve`` application, built by :func:`create_app`.

Routes:
- ``/memory/{ns}/{key}`` (PUT, GET, DELETE) and ``GET /memory/{ns}``: compatible with the hosted
  BotWire service, so its clients work unchanged. Versions travel as ``ETag``; ``If-Match`` and
  ``If-None-Match: *`` make a write conditional (412 when it no longer holds).
- ``POST /v1/batch``: many operations in one request and one transaction (the Python client).
- ``/mcp/{ns}``: the MCP server (:mod:`botwire.server.routes.mcp`), with the ``mcp`` extra.
- ``/v1/changes``, ``/v1/history``, ``/v1/audit``, ``/v1/webhooks``, ``/v1/tokens``, ...
- ``/console``: the web console (:mod:`botwire.server.routes.pages`); ``/`` leads there.
- ``/healthz``, ``/metrics`` (Prometheus) and the OpenAPI docs at ``/docs`` (served offline).

A request passes, in order: :class:`Observe` (metrics; an unexpected error becomes a JSON 500
with a request id, the connection kept), :class:`RequestGuard` (header, path and body limits),
:class:`Authenticate` (the token, and the namespace of a compatible route), then its route. So a
client without a valid token learns nothing but 401, whatever it sends. Every refusal is a 4xx
with a JSON ``detail``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.routing import Route

from botwire import __version__, telemetry
from botwire._version import install_hint
from botwire.backends import create_backend
from botwire.backends.base import (
    Backend,
    Quotas,
)
from botwire.config import default_path, mask_url
from botwire.errors import BotWireError, InvalidRequest
from botwire.server.context import Context, error_response
from botwire.server.metrics import Metrics
from botwire.server.middleware import Authenticate, Observe, RequestGuard
from botwire.server.routes import pages
from botwire.server.routes.changes import changes
from botwire.server.routes.memory import KeyRoutes, memory
from botwire.server.routes.native import native
from botwire.server.routes.tokens import tokens
from botwire.server.routes.webhooks import webhooks
from botwire.server.schemas import validation_errors
from botwire.server.settings import Settings
from botwire.server.telemetry import TraceRequests, setup_tracing
from botwire.server.webhooks import Deliveries

if TYPE_CHECKING:
    from botwire.server.routes.mcp import MCPEndpoint

# -- the application ------------------------------------------------------------------------


RELEASE_SECONDS = 2.0
"""Longest a stopping server spends giving its webhook delivery lease up (with the store
unreachable, the lease runs out instead)."""

_NO_OPENTELEMETRY: dict[str, Any] = (
    {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters
    else {}
)
"""FastAPI's own OpenTelemetry (from 0.16x) asks for its providers on every request; the server
has its Prometheus metrics, so it is turned off where FastAPI has it."""


def open_server_backend(settings: Settings) -> Backend:
    """The store the server keeps its data in, with the quotas it enforces.

    ``settings.db`` (``--db`` or ``$BOTWIRE_DB``), else the embedded store. ``$BOTWIRE_URL``
    is where *clients* find a store (often this very server) and plays no part here. With
    ``settings.embedder``, the server embeds what clients write and search by meaning.
    """
    url = settings.db or "sqlite:///" + str(default_path())
    if url.split(":", 1)[0].lower() in ("http", "https"):
        raise InvalidRequest(
            f"the server stores into sqlite:///... or postgresql://..., not {mask_url(url)}"
        )
    quotas = Quotas(settings.quota_writes_per_day, settings.quota_bytes)
    backend = create_backend(url, quotas=None if quotas == Quotas() else quotas)
    if settings.embedder:
        from botwire.backends.embedding import Embedding
        from botwire.embedders import resolve

        embedder = resolve(settings.embedder)
        assert embedder is not None  # a name resolves to one, or raises
        return Embedding(backend, embedder)
    return backend


def create_app(settings: Settings | None = None, *, backend: Backend | None = None) -> FastAPI:
    """Build the server's application.

    Args:
        settings: how to run; default :meth:`Settings.from_env`.
        backend: the store; default the one ``settings.db`` names.
    """
    settings = settings or Settings.from_env()
    tracing = setup_tracing() if telemetry.ENABLED else None
    store = backend or open_server_backend(settings)
    context = Context(settings, store, Metrics())

    mcp = _mcp_endpoint(context)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as running:
            if mcp is not None:
                await running.enter_async_context(mcp.run())
            worker = Deliveries(store, context.hub)
            deliveries = asyncio.create_task(worker.run())
            yield
            deliveries.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await deliveries
            with contextlib.suppress(Exception):  # the store may be gone: the lease runs out
                await asyncio.wait_for(worker.release(), RELEASE_SECONDS)
        context.hub.close()
        await store.aclose()
        if tracing is not None:
            tracing.shutdown()  # the spans still in its buffer go out

    app = FastAPI(
        title="botwire",
        version=__version__,
        summary="Persistent memory for AI agents and chat bots.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        **_NO_OPENTELEMETRY,
    )
    app.state.context = context
    app.include_router(memory)
    app.include_router(native)
    app.include_router(changes)
    app.include_router(webhooks)
    app.include_router(tokens)
    methods = ["GET", "POST", "DELETE"]
    app.router.routes += [
        Route("/mcp/{namespace}", mcp or _no_mcp, methods=methods, include_in_schema=False),
        Route("/mcp", _name_the_namespace, methods=methods, include_in_schema=False),
        *pages.routes(),
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
    app.add_middleware(pages.PageHeaders)
    if telemetry.ENABLED:
        app.add_middleware(TraceRequests)
    return app


def _mcp_endpoint(context: Context) -> MCPEndpoint | None:
    """``/mcp/{namespace}``: the MCP server, when the ``mcp`` extra is installed."""
    try:
        from botwire.server.routes.mcp import MCPEndpoint
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

    A worker thread (a search, a large batch) yields the interpreter's lock to the event loop
    every millisecond rather than every five: a request answered on the loop waits that long
    at most for each of its calls into the store.
    """
    sys.setswitchinterval(0.001)
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
