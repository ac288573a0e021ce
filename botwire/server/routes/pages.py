"""The pages a person opens in a browser: the console at ``/console`` (``/`` leads there) and
the OpenAPI docs at ``/docs``, both served from files in the package, so that they work with no
network but the server's.

The console (``botwire/server/console/``) is static: it is a client of the public HTTP API, with
the token a person pastes into it. Its pages and files are sent with :class:`PageHeaders`: a
Content-Security-Policy that runs only the server's own scripts (none inline) and lets no other
site frame them.
"""

from __future__ import annotations

import importlib.util
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from botwire.server.context import ASGIApp, Receive, Send

CONSOLE = Path(__file__).resolve().parent.parent / "console"
"""The console's files."""

_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css",
          ".png": "image/png", ".svg": "image/svg+xml"}  # fmt: skip

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none';"
    " frame-ancestors 'none'"
)
"""The console's policy: its own scripts and styles only, no inline script, no framing."""
DOCS_CSP = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
"""The docs' policy: Swagger UI sets inline styles (never scripts)."""

PAGES = ("/console", "/docs")
"""Paths under which pages and their files are served (and ``/``, which leads to the console)."""


class PageHeaders:
    """Security headers on the pages and their files (``/``, ``/console``, ``/docs``); the API's
    answers go out as they are."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == "/" or path.startswith(PAGES)):
            await self.app(scope, receive, send)
            return
        policy = (DOCS_CSP if path.startswith("/docs") else CSP).encode()

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] += [
                    (b"content-security-policy", policy),
                    (b"x-frame-options", b"DENY"),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cache-control", b"no-cache"),
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _files(folder: Path | None) -> dict[str, Path]:
    """The files a folder serves, by name (nothing else: no path reaches outside it)."""
    if folder is None or not folder.is_dir():
        return {}
    return {p.name: p for p in folder.iterdir() if p.is_file() and p.suffix in _TYPES}


def _swagger_folder() -> Path | None:
    """Swagger UI's files, from the ``fastapi-offline`` package (the ``server`` extra)."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "static"


def _file_route(files: dict[str, Path]) -> Any:
    async def serve(request: Request) -> Response:
        found = files.get(request.path_params["name"])
        if found is None:
            return JSONResponse({"detail": "not found"}, 404)
        media_type = _TYPES[found.suffix]
        if media_type.startswith("text/"):
            media_type += "; charset=utf-8"
        return FileResponse(found, media_type=media_type)

    return serve


_DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>botwire API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<link rel="icon" href="/console/favicon.svg"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/console/docs.js"></script></body></html>
"""


async def _docs(request: Request) -> Response:
    if "swagger-ui-bundle.js" not in _SWAGGER:
        detail = "the docs need Swagger UI's files: pip install 'botwire[server]'"
        return JSONResponse({"detail": detail, "openapi": "/openapi.json"}, 404)
    return HTMLResponse(_DOCS_PAGE)


async def _console(request: Request) -> Response:
    return FileResponse(CONSOLE / "index.html", media_type="text/html; charset=utf-8")


async def _home(request: Request) -> Response:
    return RedirectResponse("/console", 307)


_SWAGGER = _files(_swagger_folder())


def routes() -> list[BaseRoute]:
    """The pages' routes (none in the OpenAPI schema)."""
    return [
        Route("/", _home, include_in_schema=False),
        Route("/console", _console, include_in_schema=False),
        Route("/console/{name}", _file_route(_files(CONSOLE)), include_in_schema=False),
        Route("/docs", _docs, include_in_schema=False),
        Route("/docs/assets/{name}", _file_route(_SWAGGER), include_in_schema=False),
    ]
