"""``botwire serve``: a FastAPI service that shares one store across machines.

Needs the server extra: ``pip install 'botwire[server]>=0.3'``.
"""

from __future__ import annotations

import os
import shutil
import sys

from botwire.errors import MissingExtra

try:
    import fastapi  # noqa: F401
    import uvicorn
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingExtra("botwire serve needs FastAPI and uvicorn", "server") from exc

from botwire.config import mask_url
from botwire.errors import InvalidRequest
from botwire.server.app import create_app, open_server_backend
from botwire.server.auth import settle_auth
from botwire.server.metrics import share_between_workers
from botwire.server.protocol import BotWireHTTP
from botwire.server.settings import Settings


def serve(settings: Settings) -> None:
    """Run the server until interrupted (uvicorn; ``settings.workers`` processes).

    Raises:
        InvalidRequest: the server would listen beyond loopback with no token and without
            ``allow_anonymous``.
    """
    backend = open_server_backend(settings)
    try:
        required = settle_auth(backend)
    finally:
        backend.close()
    if not settings.loopback and not settings.allow_anonymous and not required:
        raise InvalidRequest(
            f"refusing to serve {settings.host} without tokens: anyone could read and write. "
            "Create one with `botwire token create NAME --prefix P`, or pass --allow-anonymous."
        )
    _announce(settings, mask_url(backend.url), required)
    os.environ.update(settings.to_env())  # the worker processes build the app from these
    shared = share_between_workers() if settings.workers > 1 else None
    try:
        uvicorn.run(
            "botwire.server.app:app_from_env",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            access_log=settings.access_log,
            log_level="info",
            http=BotWireHTTP,
            timeout_graceful_shutdown=max(1, round(settings.shutdown_grace_seconds)),
        )
    finally:
        if shared is not None:
            shutil.rmtree(shared, ignore_errors=True)


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
        print(f"botwire serve: {line}", file=sys.stderr, flush=True)


__all__ = ["Settings", "create_app", "serve"]
