"""What the LangChain classes share: the memories they read and write through."""

from __future__ import annotations

from botwire import AsyncMemory, Memory


def memories(
    namespace: str, url: str | None, memory: Memory | AsyncMemory | None
) -> tuple[Memory, AsyncMemory]:
    """A ``Memory`` and an ``AsyncMemory`` on ``namespace``, sharing one store: ``memory``'s
    when given (its connections, its value size limit), else ``url``'s."""
    if memory is not None and not isinstance(memory, (Memory, AsyncMemory)):
        raise TypeError(f"memory= takes a botwire Memory or AsyncMemory, not {type(memory)}")
    if memory is None:
        sync = Memory(namespace, url)
    else:
        sync = Memory(namespace, backend=memory.backend, max_value_bytes=memory.max_value_bytes)
    return sync, AsyncMemory(namespace, backend=sync.backend, max_value_bytes=sync.max_value_bytes)
