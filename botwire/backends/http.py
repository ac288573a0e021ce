"""The HTTP backend: a batch of operations travels to ``botwire serve`` in one request.

Connections are kept alive (httpx), every request has a timeout, and a batch that may safely run
twice is retried when the connection breaks; one that may not (``append``, ``incr``, a conditional
write) is retried only when it never reached the server.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any

import httpx

from botwire import _values, _wire
from botwire.backends.base import Append, Backend, Incr, Op, Put
from botwire.config import mask_url
from botwire.errors import BackendUnavailable

BATCH_PATH = "/v1/batch"
RETRIES = 3
_BACKOFF = (0.05, 0.2, 0.5)


def _idempotent(ops: Sequence[Op]) -> bool:
    """Whether running ``ops`` twice leaves the store as running them once."""
    for op in ops:
        if type(op) in (Append, Incr) or (type(op) is Put and op.if_version is not None):
            return False
    return True


class HTTPBackend(Backend):
    """A store behind ``botwire serve`` at ``url`` (``http://host:port``).

    Args:
        url: the server's base URL.
        token: bearer token, sent on every request.
        timeout: seconds for connecting and for each response.
    """

    def __init__(self, url: str, *, token: str | None = None, timeout: float = 30.0) -> None:
        self.base_url = url.rstrip("/")
        self.url = mask_url(self.base_url)
        self.timeout = timeout
        self._headers = {"content-type": "application/json", "accept": "application/json"}
        if token:
            self._headers["authorization"] = f"Bearer {token}"
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        self._async_clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, httpx.AsyncClient
        ] = weakref.WeakKeyDictionary()

    # -- clients ----------------------------------------------------------------------------

    def _sync_client(self) -> httpx.Client:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = httpx.Client(
                        base_url=self.base_url, headers=self._headers, timeout=self.timeout
                    )
        return self._client

    def _async_client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None:
            client = httpx.AsyncClient(
                base_url=self.base_url, headers=self._headers, timeout=self.timeout
            )
            self._async_clients[loop] = client
        return client

    def close(self) -> None:
        """Close the connections; they are opened again when needed."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    async def aclose(self) -> None:
        """Close this event loop's connections, and the sync ones."""
        client = self._async_clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()
        self.close()

    # -- the primitive ----------------------------------------------------------------------

    def execute(self, ops: Sequence[Op]) -> list[Any]:
        """Send ``ops`` to the server as one batch."""
        if not ops:
            return []
        body = self._body(ops)
        client = self._sync_client()
        for attempt in range(RETRIES + 1):
            try:
                response = client.post(BATCH_PATH, content=body)
                break
            except httpx.TransportError as exc:
                self._give_up_unless_retry(exc, ops, attempt)
                time.sleep(_BACKOFF[attempt])
        return self._results(ops, response)

    async def aexecute(self, ops: Sequence[Op]) -> list[Any]:
        """Async twin of :meth:`execute`, on an ``httpx.AsyncClient``."""
        if not ops:
            return []
        body = self._body(ops)
        client = self._async_client()
        for attempt in range(RETRIES + 1):
            try:
                response = await client.post(BATCH_PATH, content=body)
                break
            except httpx.TransportError as exc:
                self._give_up_unless_retry(exc, ops, attempt)
                await asyncio.sleep(_BACKOFF[attempt])
        return self._results(ops, response)

    # -- shared by both ---------------------------------------------------------------------

    @staticmethod
    def _body(ops: Sequence[Op]) -> str:
        return _values.to_json({"ops": [_wire.op_to_json(op) for op in ops]})

    def _give_up_unless_retry(
        self, exc: httpx.TransportError, ops: Sequence[Op], attempt: int
    ) -> None:
        never_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
        if attempt < RETRIES and (never_sent or _idempotent(ops)):
            return
        if isinstance(exc, httpx.ConnectError):
            hint = "is `botwire serve` running there?"
        elif isinstance(exc, httpx.TimeoutException):
            hint = f"no answer within timeout={self.timeout}s"
        else:
            hint = "the connection broke"
        raise BackendUnavailable(
            f"cannot reach the botwire server at {self.url}: {hint} ({exc!r})"
        ) from exc

    def _results(self, ops: Sequence[Op], response: httpx.Response) -> list[Any]:
        try:
            data = json.loads(response.content)
        except ValueError:
            data = None
        if response.status_code != 200:
            raise _wire.error_from_json(
                response.status_code, data or {}, response.headers.get("retry-after")
            )
        if not isinstance(data, dict) or not isinstance(data.get("results"), list):
            raise BackendUnavailable(
                f"{self.url} answered with something that is not a botwire batch"
            )
        return [
            _wire.result_from_json(op, item) for op, item in zip(ops, data["results"], strict=True)
        ]
