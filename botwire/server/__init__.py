"""``botwire serve``: a FastAPI service that shares one store across machines.

Needs the server extra: ``pip install 'botwire[server]'``.
"""

from __future__ import annotations

import os

try:
    import fastapi  # noqa: F401
    import uvicorn
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "botwire's server needs FastAPI and uvicorn: pip install 'botwire[server]'"
    ) from exc

from botwire.errors import InvalidRequest
from botwire.server.app import create_app, open_server_backend
from botwire.server.auth import tokens_required
from botwire.server.settings import Settings


def serve(settings: Settings) -> None:
    """Run the server until interrupted (uvicorn; ``settings.workers`` processes).

    Raises:
        InvalidRequest: the server would listen beyond loopback with no token and without
            ``allow_anonymous``.
    """
    backend = open_server_backend(settings)
    try:
        required = tokens_required(backend)
    finally:
        backend.close()
    if not settings.loopback and not settings.allow_anonymous and not required:
        raise InvalidRequest(
            f"refusing to serve {settings.host} without tokens: anyone could read and write. "
            "Create one with `botwire token create NAME --prefix P`, or pass --allow-anonymous."
        )
    os.environ.update(settings.to_env())  # the worker processes build the app from these
    uvicorn.run(
        "botwire.server.app:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        access_log=settings.access_log,
        log_level="info",
    )


__all__ = ["Settings", "create_app", "serve"]
