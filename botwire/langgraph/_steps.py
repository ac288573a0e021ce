"""Each LangGraph method is written once, as steps that name the botwire calls they need; a sync
and an async driver run them on ``Memory`` and ``AsyncMemory``. A step that yields a list of
reads (``keys``, ``items``, ``get_many``) gets their answers in a list, read in one round
trip."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Generator
from typing import Any, NamedTuple, TypeVar

from botwire import AsyncMemory, Memory, config
from botwire._memory import (
    alist_namespaces,
    asearch_namespaces,
    list_namespaces,
    search_namespaces,
)
from botwire.backends import open_backend
from botwire.backends.base import Steps as StoreSteps
from botwire.backends.base import arun_steps, run_steps, together
from botwire.errors import BotWireError, ValueTooLarge


class Call(NamedTuple):
    """``method(*args, **kwargs)`` on the memory of ``namespace``, or with ``namespace=None``
    a function of the whole store (``list_namespaces``, ``search_namespaces``)."""

    namespace: str | None
    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] | None = None


Steps = Generator[Call | list[Call], Any, Any]

M = TypeVar("M", Memory, AsyncMemory)

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

    MEMORIES = 256
    """Memories kept for the namespaces used last (making one reads the environment)."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self.backend = open_backend(config.resolve_url(url))
        self._memories: dict[tuple[type[Any], str], Any] = {}

    def _memory(self, kind: type[M], namespace: str) -> M:
        """A ``kind`` (``Memory`` or ``AsyncMemory``) of ``namespace`` on this store."""
        memory: M | None = self._memories.get((kind, namespace))
        if memory is None:
            if len(self._memories) >= self.MEMORIES:
                self._memories.clear()
            memory = self._memories[kind, namespace] = kind(namespace, backend=self.backend)
        return memory

    def run(self, steps: Steps) -> Any:
        """Run ``steps``; a botwire error of a call is raised inside them, at its ``yield``."""
        try:
            call = next(steps)
            while True:
                try:
                    answer = self._call(call) if isinstance(call, Call) else self._reads(call)
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
                    if isinstance(call, Call):
                        answer = await self._acall(call)
                    else:
                        answer = await self._areads(call)
                except BotWireError as exc:
                    call = steps.throw(exc)
                    continue
                call = steps.send(answer)
        except StopIteration as done:
            return done.value

    def _call(self, call: Call) -> Any:
        return self._target(call, _STORE, Memory)(*call.args, **call.kwargs or {})

    async def _acall(self, call: Call) -> Any:
        return await self._target(call, _ASTORE, AsyncMemory)(*call.args, **call.kwargs or {})

    def _reads(self, calls: list[Call]) -> list[Any]:
        """The answers of reads, in one round trip (each in its own, if together they are
        more than a server answers at once)."""
        memory, steps = self._together(calls, Memory)
        try:
            return run_steps(memory._execute, steps)
        except ValueTooLarge:
            return [self._call(call) for call in calls]

    async def _areads(self, calls: list[Call]) -> list[Any]:
        """Async :meth:`_reads`."""
        memory, steps = self._together(calls, AsyncMemory)
        try:
            return await arun_steps(memory._execute, steps)
        except ValueTooLarge:
            return [await self._acall(call) for call in calls]

    def _together(self, calls: list[Call], kind: type[M]) -> tuple[M, StoreSteps[list[Any]]]:
        """A memory of ``kind`` to run the reads with, and their steps as one."""
        memories = [self._memory(kind, str(call.namespace)) for call in calls]
        reads = [memory._read_steps(call.method, *call.args, **call.kwargs or {})
                 for memory, call in zip(memories, calls, strict=True)]  # fmt: skip
        return memories[0], together(reads)

    def _target(
        self, call: Call, functions: dict[str, Callable[..., Any]], kind: type[Any]
    ) -> Callable[..., Any]:
        """What ``call`` names: a method of ``kind`` (``Memory`` or ``AsyncMemory``) on its
        namespace, or a function of the store (from ``functions``) on this store's URL."""
        if call.namespace is None:
            return functools.partial(functions[call.method], url=self.url)
        return getattr(self._memory(kind, call.namespace), call.method)  # type: ignore[no-any-return]

    def close(self) -> None:
        self.backend.close()
