"""What every request of ``botwire serve`` shares: the ASGI types, the :class:`Context` (settings,
store, authenticator, metrics) and how a refusal is answered."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from botwire import telemetry
from botwire._memory import AsyncMemory
from botwire.backends import wire
from botwire.backends.base import Backend, Op, Search
from botwire.backends.changes import WAIT_SECONDS, actor
from botwire.backends.common import ReadBudget, deadline, ran_out, read_budget
from botwire.errors import BotWireError, InvalidRequest, Overloaded, QuotaExceeded, Unauthorized
from botwire.server.auth import ANONYMOUS, Authenticator, Scope
from botwire.server.metrics import Metrics
from botwire.server.settings import Settings

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


# -- the server's state ------------------------------------------------------------------------


class Hub:
    """Wakes the server's delivery worker when the store may hold new changes: one thread
    waits on the store's watcher and bumps :attr:`moves`; the worker takes it before it reads
    the log, and waits for it to move when the read found nothing new."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.moves = 0
        self._waiters: set[asyncio.Future[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def mark(self) -> int:
        self._start()
        return self.moves

    async def wait(self, mark: int, timeout: float) -> bool:
        """``True`` once the store moved past ``mark``; ``False`` after ``timeout`` seconds.
        (A future and a timer: cancelled, it ends at once.)"""
        if self.moves != mark:
            return True
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.add(waiter)
        timer = loop.call_later(timeout, _settle, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiters.discard(waiter)
        return self.moves != mark

    def close(self) -> None:
        self._stop.set()

    def _start(self) -> None:
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._watch, args=(self._loop,), daemon=True)
        self._thread.start()

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        watcher = self.backend.watcher()
        try:
            while not self._stop.is_set():
                mark = watcher.mark()
                if watcher.wait(mark, WAIT_SECONDS) and not loop.is_closed():
                    loop.call_soon_threadsafe(self._bump)
        except RuntimeError:  # the event loop closed: the server is stopping
            pass
        finally:
            watcher.close()

    def _bump(self) -> None:
        self.moves += 1
        for waiter in self._waiters:
            _settle(waiter)


def _settle(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Context:
    """What every request needs: settings, the store, the authenticator and the metrics."""

    def __init__(self, settings: Settings, backend: Backend, metrics: Metrics) -> None:
        self.settings = settings
        self.backend = backend
        self.metrics = metrics
        self.hub = Hub(backend)
        self.recent_events: dict[Any, list[bytes]] = {}
        """The server-sent events of the store's latest wake-ups, shared by its streams."""
        self.auth = Authenticator(
            backend,
            anonymous_ok=settings.loopback or settings.allow_anonymous,
            cache_seconds=settings.token_cache_seconds,
            jwt=settings.jwt_verifier(),
        )

    async def run(self, scope: Scope, ops: list[Op]) -> list[Any]:
        """Run ``ops`` for a request: each one within the token's rights, the values they read
        within ``max_response_bytes``, at most ``max_batch_searches`` searches, stopped after
        ``max_request_seconds``. The only way a request's operations reach the store."""
        searches = 0
        for op in ops:
            scope.check(op)
            searches += type(op) is Search
        if searches > self.settings.max_batch_searches:
            raise InvalidRequest(
                f"a batch holds at most {self.settings.max_batch_searches} searches "
                "(max_batch_searches)"
            )
        limit = self.settings.max_request_seconds
        ends = deadline.get()
        if ends is not None and time.monotonic() > ends:  # a request of several batches
            raise ran_out(limit)
        budget = until = None
        if ends is None:
            budget = read_budget.set(ReadBudget(self.settings.max_response_bytes))
            until = deadline.set(time.monotonic() + limit)
        writer = actor.set("anonymous" if scope is ANONYMOUS else f"token:{scope.name}")
        try:
            if telemetry.ENABLED:
                with telemetry.span(*telemetry.batch_attributes(ops)):
                    return await self.backend.aexecute(ops)
            return await self.backend.aexecute(ops)
        except Overloaded:
            raise ran_out(limit) from None
        finally:
            actor.reset(writer)
            if until is not None and budget is not None:
                deadline.reset(until)
                read_budget.reset(budget)

    def request_limits(self) -> None:
        """Make the batches a request runs from here on share one deadline and one read
        budget (:meth:`run` sets them per batch otherwise): a route that runs many batches
        (a past version rebuilt from the log) stays within ``max_request_seconds`` and
        ``max_response_bytes`` in all."""
        read_budget.set(ReadBudget(self.settings.max_response_bytes))
        deadline.set(time.monotonic() + self.settings.max_request_seconds)


class RequestMemory(AsyncMemory):
    """An :class:`~botwire.AsyncMemory` whose every batch runs as a request's
    (:meth:`Context.run`), within one deadline and read budget for them all, for routes that
    answer with what a memory method computes over several batches (a past version, a
    restore). Make it in the request's own task."""

    def __init__(self, namespace: str, context: Context, scope: Scope) -> None:
        super().__init__(
            namespace, backend=context.backend, max_value_bytes=context.settings.max_value_bytes
        )
        self._context = context
        self._scope = scope
        context.request_limits()

    async def _execute(self, ops: list[Op]) -> list[Any]:
        return await self._context.run(self._scope, ops)


def _state(request: Request) -> tuple[Context, Scope]:
    context: Context = request.app.state.context
    return context, request.scope[SCOPE_KEY]


def error_response(context: Context, exc: BotWireError) -> Response:
    """A refusal as the client sees it (JSON, the status of its kind), counted in the metrics."""
    context.metrics.refused(exc)
    headers = None
    if isinstance(exc, (QuotaExceeded, Overloaded)) and exc.retry_after is not None:
        headers = {"retry-after": str(max(1, round(exc.retry_after)))}
    return JSONResponse(wire.error_to_json(exc), wire.error_status(exc), headers=headers)
