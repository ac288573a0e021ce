"""The HTTP connection of ``botwire serve``: uvicorn's httptools protocol, with two changes.

- **A header limit that holds while reading.** The parser gathers a request's head in memory
  before the application sees it, so a check in the application comes too late for a request
  with 96 MiB of headers. This protocol counts the bytes of each request's head as they arrive
  and answers 431 (then closes) once they pass ``max_header_bytes`` and a margin for the
  request line.
- **A graceful stop.** On SIGTERM uvicorn stops accepting connections and closes the idle
  ones at once; a request a client has already sent on an idle keep-alive connection (not read
  yet, because the event loop was busy) is then lost to a connection reset. Here an idle
  connection stays open for a moment to read and answer such a request (with
  ``Connection: close``); requests under way finish within ``shutdown_grace_seconds``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

LINGER_SECONDS = 0.5
"""How long an idle connection stays open after SIGTERM for a request already on its way."""
REQUEST_LINE_BYTES = 8 * 1024
"""Room for the request line (method, path and query) besides the headers."""


def _head_limit() -> int:
    raw = os.environ.get("BOTWIRE_MAX_HEADER_BYTES")
    return (int(raw) if raw else 16 * 1024) + REQUEST_LINE_BYTES


class BotWireHTTP(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header limit while reading and a graceful stop."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_limit = _head_limit()
        self.head_bytes = 0
        self.in_head = True
        self.tail = b""
        self.stopping = False

    def data_received(self, data: bytes) -> None:
        if self.in_head:
            seen = self.tail + data
            end = seen.find(b"\r\n\r\n")
            self.head_bytes += len(data) if end < 0 else max(0, end + 4 - len(self.tail))
            self.tail = seen[-3:]
            if self.head_bytes > self.head_limit:
                self._refuse_head()
                return
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self.in_head = False
        self.head_bytes = 0
        self.tail = b""
        super().on_headers_complete()
        if self.stopping and self.cycle is not None:
            self.cycle.keep_alive = False  # the answer closes the connection

    def on_message_complete(self) -> None:
        self.in_head = True  # the request is in whole: the next one's head comes next
        super().on_message_complete()

    def shutdown(self) -> None:
        self.stopping = True
        if self.cycle is None or self.cycle.response_complete:
            self.loop.call_later(LINGER_SECONDS, self._close_if_idle)
        else:
            self.cycle.keep_alive = False

    def _close_if_idle(self) -> None:
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request arrived meanwhile: its answer closes the connection
        if self.head_bytes:  # a request is arriving: give it its moment too
            self.loop.call_later(LINGER_SECONDS, self._close_if_idle)
        else:
            self.transport.close()

    def _refuse_head(self) -> None:
        limit = self.head_limit - REQUEST_LINE_BYTES
        detail = f"request headers are too large (at most {limit} bytes)"
        body = json.dumps({"detail": detail, "error": "InvalidRequest"}).encode()
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/json\r\nconnection: close\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        self.transport.close()
        self.in_head = False
