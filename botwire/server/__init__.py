"""``botwire serve``: a FastAPI service that shares one store across machines.

Needs the server extra: ``pip install -e '.[server]'`` (in a botwire checkout).
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import time

from botwire.errors import MissingExtra

try:
    import fastapi  # noqa: F401
    import uvicorn
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingExtra("botwire serve needs FastAPI and uvicorn", "server") from exc

from botwire.backends.base import Backend
from botwire.config import mask_url
from botwire.errors import BackendUnavailable, InvalidRequest
from botwire.server.app import create_app, open_server_backend
from botwire.server.auth import require_auth, settle_auth
from botwire.server.logs import log_config, say
from botwire.server.metrics import share_between_workers
from botwire.server.protocol import BotWireHTTP
from botwire.server.settings import Settings


def serve(settings: Settings) -> None:
    """Run the server until interrupted (uvicorn; ``settings.workers`` processes).

    It waits for the store to answer (up to ``store_wait_seconds``: a database starting beside
    it), then listens, and only then says so.

    Raises:
        InvalidRequest: the port is not 1 to 65535, or taken; or the server would listen
            beyond loopback with no token and without ``allow_anonymous``.
        BackendUnavailable: the store did not answer in ``store_wait_seconds``.
    """
    settings.check()
    jwt = settings.jwt_verifier()  # a JWKS that cannot be read stops the start, said plainly
    backend = open_server_backend(settings)
    try:
        required = _wait_for_store(backend, settings.store_wait_seconds, settings.log_format)
        if settings.require_tokens and not required:
            require_auth(backend)
            required = True
        required = required or jwt is not None
    finally:
        backend.close()
    if not settings.loopback and not settings.allow_anonymous and not required:
        raise InvalidRequest(
            f"refusing to serve {settings.host} without tokens: anyone could read and write. "
            "Create one with `botwire token create NAME --prefix P`, or pass --allow-anonymous."
        )
    os.environ.update(settings.to_env())  # the worker processes build the app from these
    config = uvicorn.Config(
        "botwire.server.app:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        access_log=settings.access_log,
        log_level="info",
        log_config=log_config(settings.log_format),
        http=BotWireHTTP,
        timeout_graceful_shutdown=max(1, round(settings.shutdown_grace_seconds)),
    )
    sock = _listen(settings)
    _announce(settings, mask_url(backend.url), required)
    shared = share_between_workers() if settings.workers > 1 else None
    try:
        if settings.workers > 1:
            from uvicorn.supervisors import Multiprocess

            Multiprocess(config, sockets=[sock]).run()
        else:
            uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
        if shared is not None:
            shutil.rmtree(shared, ignore_errors=True)


def _wait_for_store(backend: Backend, seconds: float, log_format: str) -> bool:
    """Settle the store's auth marker, retrying while the store does not answer (a database
    still starting); return whether tokens are required."""
    until = time.monotonic() + seconds
    said = False
    while True:
        try:
            return settle_auth(backend)
        except BackendUnavailable as exc:
            if time.monotonic() >= until:
                raise
            if not said:
                say(log_format, f"waiting for the store: {exc}")
                said = True
            time.sleep(1.0)


def _listen(settings: Settings) -> socket.socket:
    """The server's socket, bound and listening; a clear error when the port is taken."""
    try:
        family = socket.getaddrinfo(settings.host, settings.port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror as exc:
        raise InvalidRequest(f"cannot listen on {settings.host}: {exc.strerror}") from None
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise InvalidRequest(
                f"port {settings.port} on {settings.host} is taken: another program listens "
                "there; choose another with --port (or BOTWIRE_PORT)"
            ) from None
        raise InvalidRequest(
            f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}"
        ) from None
    sock.set_inheritable(True)  # the worker processes accept on it
    return sock


def _announce(settings: Settings, store: str, tokens: bool) -> None:
    """What an operator checks first: the store, the address, and who may come in."""
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    workers = f"{settings.workers} worker{'s' if settings.workers != 1 else ''}"
    if tokens:
        access = "tokens required"
    elif settings.loopback:
        access = "no token required (loopback only; `botwire token create` turns tokens on)"
    else:
        access = "no token required: anyone who reaches this address can read and write"
    for line in (f"store {store}", f"listening on http://{host}:{settings.port} ({workers})",
                 access):  # fmt: skip
        say(settings.log_format, line)


__all__ = ["Settings", "create_app", "serve"]
