"""Each LangGraph method is written once, as steps that name the botwire calls they need; a sync
and an async driver run them on ``Memory`` and ``AsyncMemory``."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Generator
from typing import Any, NamedTuple

from botwire import AsyncMemory, Memory, config
from botwire._memory import (
    alist_namespaces,
    asearch_namespaces,
    list_namespaces,
    search_namespaces,
)
from botwire.backends import open_backend
from botwire.errors import BotWireError


class Call(NamedTuple):
    """``method(*args, **kwargs)`` on the memory of ``namespace``, or with ``namespace=None``
    a function of the whole store (``list_namespaces``, ``search_namespaces``)."""

    namespace: str | None
    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] | None = None


Steps = Generator[Call, Any, Any]

_STORE: dict[str, Callable[..., Any]] = {
    "list_namespaces": list_namespaces,
    "search_namespaces": search_namespaces,
}
_ASTORE: dict[str, Callable[..., Awaitable[Any]]] = {
    "list_namespaces": alist_namespaces,
    "search_namespaces": asearch_namespaces,
}


class Driver:
    """Runs steps on the store at ``url``, sharing one backend (its connections)."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self.backend = open_backend(config.resolve_url(url))

    def run(self, steps: Steps) -> Any:
        """Run ``steps``; a botwire error of a call is raised inside them, at its ``yield``."""
        try:
            call = next(steps)
            while True:
                try:
                    answer = self._target(call, _STORE, Memory)(*call.args, **call.kwargs or {})
                except BotWireError as exc:
                    call = steps.throw(exc)
                    continue
                call = steps.send(answer)
        except StopIteration as done:
            return done.value

    async def arun(self, steps: Steps) -> Any:
        """Async :meth:`run`."""
        try:
            call = next(steps)
            while True:
                try:
                    target = self._target(call, _ASTORE, AsyncMemory)
                    answer = await target(*call.args, **call.kwargs or {})
                except BotWireError as exc:
                    call = steps.throw(exc)
                    continue
                call = steps.send(answer)
        except StopIteration as done:
            return done.value

    def _target(
        self, call: Call, functions: dict[str, Callable[..., Any]], kind: type[Any]
    ) -> Callable[..., Any]:
        """What ``call`` names: a method of ``kind`` (``Memory`` or ``AsyncMemory``) on its
        namespace, or a function of the store (from ``functions``) on this store's URL."""
        if call.namespace is None:
            return functools.partial(functions[call.method], url=self.url)
        return getattr(kind(call.namespace, backend=self.backend), call.method)  # type: ignore[no-any-return]

    def close(self) -> None:
        self.backend.close()
