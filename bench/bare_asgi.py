"""The ceiling for bench_server.py: an ASGI app that answers every request with a fixed body,
run by the same uvicorn as the servers measured. No Python web server answers faster here.

    uvicorn bare_asgi:app --lifespan off --port 8767
"""

from __future__ import annotations

from typing import Any

BODY = b'{"namespace":"bench","key":"k1","value":{"turns":1}}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    more = scope["type"] == "http"
    while more:  # a PUT's body: read it all, as a server must
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
