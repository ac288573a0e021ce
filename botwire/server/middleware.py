"""The middleware every request of ``botwire serve`` passes, outermost first: :class:`Observe`,
:class:`RequestGuard`, :class:`Authenticate`."""

from __future__ import annotations

import os
import time
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import unquote_to_bytes

from botwire import _values
from botwire.backends.changes import request_id
from botwire.errors import Forbidden, Unauthorized
from botwire.server.context import (
    PROTECTED,
    SCOPE_KEY,
    ASGIApp,
    Context,
    Message,
    Receive,
    Send,
    _send_error,
    _send_json,
    log,
)
from botwire.server.metrics import Metrics
from botwire.server.settings import Settings


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
        ident = _request_id(scope["headers"])
        current = request_id.set(ident)  # in the change log and the logs, the access line too

        async def record_status(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status = message["status"]
                responded = True
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        except Exception:
            log.exception("request %s (%s %s) failed", ident, scope["method"], scope["path"])
            if responded:
                raise  # too late for a clean answer
            status = 500
            body = {
                "detail": f"internal error; the server's log has the details under {ident}",
                "error": "InternalError",
                "request_id": ident,
            }
            await _send_json(send, 500, body, [(b"x-request-id", ident.encode())])
        finally:
            request_id.reset(current)
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
        sent = [value for name, value in scope["headers"] if name == b"authorization"]
        if len(sent) > 1:  # a proxy may check one and the server read another
            detail = "send one Authorization header, not several"
            await _send_json(send, 400, {"detail": detail, "error": "InvalidRequest"})
            return
        authorization = sent[0].decode("latin-1") if sent else None
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


def _request_id(headers: list[tuple[bytes, bytes]]) -> str:
    """The client's ``X-Request-Id`` (up to 64 printable ASCII characters), else a new id: the
    change log records it with every change the request makes."""
    for name, value in headers:
        if name == b"x-request-id" and 0 < len(value) <= 64 and value.isascii():
            text = value.decode("ascii")
            if text.isprintable():
                return text
    return os.urandom(8).hex()


def _path_namespace(path: str) -> str | None:
    """The namespace a path names: ``/memory/{ns}/...`` and ``/mcp/{ns}``."""
    for route in ("/memory/", "/mcp/"):
        if path.startswith(route):
            return path[len(route) :].split("/", 1)[0] or None
    return None
