"""The HTTP backend: a batch of operations travels to ``botwire serve`` in one request.

Connections are kept alive (httpx), every request has a timeout, and a batch is sent again when
the connection breaks only where that cannot change its answer: when the request never left
(no connection could be made), or when the batch is :func:`~botwire.backends.base.resendable`
(reads and plain writes). Any other batch whose answer was lost raises ``BackendUnavailable``,
saying that it may or may not have been written: a second run could report ``delete`` of an
existing key as ``False`` or append twice.

Async clients belong to their event loop and are closed when it shuts down; a child process
after ``fork`` leaves the parent's connections alone and opens its own.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Generator, Sequence
from typing import Any

import httpx

from botwire import _values
from botwire.backends import wire
from botwire.backends.base import (
    INHERITED,
    Backend,
    Change,
    Changes,
    Op,
    on_loop_shutdown,
    resendable,
)
from botwire.config import mask_url
from botwire.errors import BackendUnavailable
from botwire.telemetry import trace_headers

BATCH_PATH = "/v1/batch"
RETRIES = 3
_BACKOFF = (0.05, 0.2, 0.5)


class HTTPBackend(Backend):
    """A store behind ``botwire serve`` at ``url`` (``http://host:port``).

    Args:
        url: the server's base URL.
        token: bearer token, sent on every request.
        timeout: seconds for connecting and for each response.
    """

    def __init__(self, url: str, *, token: str | None = None, timeout: float = 30.0) -> None:
        super().__init__()
        self.base_url = url.rstrip("/")
        self.url = mask_url(self.base_url)
        self.timeout = timeout
        self._headers = {"content-type": "application/json", "accept": "application/json"}
        if token:
            self._headers["authorization"] = f"Bearer {token}"
        self._client: httpx.Client | None = None
        self._async_clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}

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
            for old in [old for old in self._async_clients if old.is_closed()]:
                del self._async_clients[old]  # a loop closed without shutting down: let it go
            client = httpx.AsyncClient(
                base_url=self.base_url, headers=self._headers, timeout=self.timeout
            )
            self._async_clients[loop] = client

            async def close_at_shutdown() -> None:
                if self._async_clients.get(loop) is client:
                    del self._async_clients[loop]
                await client.aclose()

            on_loop_shutdown(close_at_shutdown)
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

    def _after_fork(self) -> None:
        INHERITED.append((self._client, self._async_clients))
        self._client = None
        self._async_clients = {}

    # -- the primitive ----------------------------------------------------------------------

    def execute(self, ops: Sequence[Op]) -> list[Any]:
        """Send ``ops`` to the server as one batch."""
        if not ops:
            return []
        body = self._body(ops)
        client = self._sync_client()
        for attempt in range(RETRIES + 1):
            try:
                response = client.post(BATCH_PATH, content=body, headers=trace_headers())
                break
            except httpx.TransportError as exc:
                self._give_up_unless_retry(exc, ops, attempt)
                time.sleep(_BACKOFF[attempt])
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                raise self._failed(exc) from exc
        return self._results(ops, response)

    async def aexecute(self, ops: Sequence[Op]) -> list[Any]:
        """Async twin of :meth:`execute`, on an ``httpx.AsyncClient``."""
        if not ops:
            return []
        body = self._body(ops)
        client = self._async_client()
        for attempt in range(RETRIES + 1):
            try:
                response = await client.post(BATCH_PATH, content=body, headers=trace_headers())
                break
            except httpx.TransportError as exc:
                self._give_up_unless_retry(exc, ops, attempt)
                await asyncio.sleep(_BACKOFF[attempt])
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                raise self._failed(exc) from exc
        return self._results(ops, response)

    # -- following the change log: server-sent events ---------------------------------------

    def follow(self, op: Changes) -> Generator[Change, None, None]:
        """Every change ``op`` selects, as the server streams them (``GET /v1/changes``); a
        broken stream is opened again from the last position it sent (``Last-Event-ID``)."""
        last = op.since
        client = self._sync_client()
        failures = 0
        while True:
            try:
                with client.stream(
                    "GET", CHANGES_PATH, params=_stream_params(op), headers=_resume(last),
                    timeout=_STREAM_TIMEOUT,
                ) as response:  # fmt: skip
                    if response.status_code != 200:
                        response.read()
                        raise self._refusal(response)
                    reader = EventReader()
                    for line in response.iter_lines():
                        for position, change in reader.feed(line):
                            last, failures = position, 0
                            if change is not None:
                                yield change
            except httpx.TransportError as exc:
                failures += 1
                if failures > RETRIES:
                    raise self._failed(exc) from exc
                time.sleep(_BACKOFF[min(failures, RETRIES) - 1])

    async def afollow(self, op: Changes) -> AsyncIterator[Change]:
        """Async :meth:`follow`, on an ``httpx.AsyncClient``."""
        last = op.since
        client = self._async_client()
        failures = 0
        while True:
            try:
                async with client.stream(
                    "GET", CHANGES_PATH, params=_stream_params(op), headers=_resume(last),
                    timeout=_STREAM_TIMEOUT,
                ) as response:  # fmt: skip
                    if response.status_code != 200:
                        await response.aread()
                        raise self._refusal(response)
                    reader = EventReader()
                    async for line in response.aiter_lines():
                        for position, change in reader.feed(line):
                            last, failures = position, 0
                            if change is not None:
                                yield change
            except httpx.TransportError as exc:
                failures += 1
                if failures > RETRIES:
                    raise self._failed(exc) from exc
                await asyncio.sleep(_BACKOFF[min(failures, RETRIES) - 1])

    def _refusal(self, response: httpx.Response) -> Exception:
        """The error a server's refusal stands for."""
        try:
            data = json.loads(response.content)
        except ValueError:
            data = None
        return wire.error_from_json(
            response.status_code, data or {}, response.headers.get("retry-after")
        )

    # -- shared by both ---------------------------------------------------------------------

    @staticmethod
    def _body(ops: Sequence[Op]) -> str:
        return _values.to_json({"ops": [wire.op_to_json(op) for op in ops]})

    def _give_up_unless_retry(
        self, exc: httpx.TransportError, ops: Sequence[Op], attempt: int
    ) -> None:
        never_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
        if attempt < RETRIES and (never_sent or resendable(ops)):
            return
        if isinstance(exc, httpx.ConnectError):
            hint = "is `botwire serve` running there?"
        elif isinstance(exc, httpx.TimeoutException):
            hint = f"no answer within timeout={self.timeout}s"
        else:
            hint = "the connection broke"
        if not never_sent and not resendable(ops):
            hint += "; the batch may or may not have been written (read the keys to find out)"
        raise BackendUnavailable(
            f"cannot reach the botwire server at {self.url}: {hint} ({exc!r})"
        ) from exc

    def _failed(self, exc: Exception) -> BackendUnavailable:
        return BackendUnavailable(
            f"the request to the botwire server at {self.url} failed: {exc!r}"
        )

    def _results(self, ops: Sequence[Op], response: httpx.Response) -> list[Any]:
        if response.status_code != 200:
            raise self._refusal(response)
        try:
            data = json.loads(response.content)
        except ValueError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("results"), list):
            raise BackendUnavailable(
                f"{self.url} answered with something that is not a botwire batch"
            )
        return [
            wire.result_from_json(op, item) for op, item in zip(ops, data["results"], strict=True)
        ]


CHANGES_PATH = "/v1/changes"
_STREAM_TIMEOUT = httpx.Timeout(30.0, read=60.0)
"""A stream sends at least a heartbeat every 15 s: a read that waits 60 s has lost it."""


def _stream_params(op: Changes) -> dict[str, Any]:
    params: dict[str, Any] = {"prefix": op.prefix, "limit": op.limit,
                              "values": "true" if op.values else "false"}  # fmt: skip
    if op.ns is not None:
        params["ns"] = op.ns
    else:
        params["ns_prefix"] = op.ns_prefix
    return params


def _resume(last: int) -> dict[str, str]:
    """The headers that (re)open a stream after position ``last`` (``-1``: from now on)."""
    headers = {"accept": "text/event-stream"}
    if last >= 0:
        headers["last-event-id"] = str(last)
    return headers


class EventReader:
    """Server-sent events, line by line: each event's position (``id``), and its change
    (``None`` for an event that only moves the position on)."""

    def __init__(self) -> None:
        self.id: str | None = None
        self.data: list[str] = []

    def feed(self, line: str) -> list[tuple[int, Change | None]]:
        if line:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "id":
                self.id = value
            elif name == "data":
                self.data.append(value)
            return []
        position, data = self.id, self.data
        self.id, self.data = None, []
        if position is None or not position.isdigit():
            return []
        change = change_from_json(json.loads("\n".join(data))) if data else None
        return [(int(position), change)]


def change_from_json(data: dict[str, Any]) -> Change:
    """The inverse of the server's ``change_json``."""
    value = data.get("value")
    return Change(
        data["seq"], data["namespace"], data["key"], data["op"], data["version"],
        _values.parse_time(data["at"], "at") or 0, data["actor"], data["request_id"],
        None if value is None else _values.to_json(value),
    )  # fmt: skip
