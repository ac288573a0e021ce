"""The keys of a thread's namespace in ``BotWireSaver``'s layout (see
``botwire.langgraph.checkpoint``), and reading its checkpoints back in pages."""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from botwire.langgraph._names import escape, unescape
from botwire.langgraph._steps import Call, Steps

PAGE = 100
"""Checkpoints read per round trip when listing."""
BATCH = 3 * 1024 * 1024
"""Characters of pieces written, or read, per round trip: under ``botwire serve``'s default
request and response limits."""


def heads_prefix(checkpoint_ns: str) -> str:
    """The prefix of the heads of a checkpoint namespace (a head's key adds its id)."""
    return f"c|{escape(checkpoint_ns, '|')}|"


def writes_key_of(checkpoint_ns: str, checkpoint_id: str) -> str:
    """The key of a checkpoint's writes list."""
    return f"w|{escape(checkpoint_ns, '|')}|{checkpoint_id}"


def pieces_prefix(checkpoint_ns: str, checkpoint_id: str) -> str:
    """The prefix of every piece of a checkpoint and of its writes."""
    return f"p|{escape(checkpoint_ns, '|')}|{checkpoint_id}|"


def request_length(value: Any) -> int:
    """Characters a value takes in a request: a piece's text, or anything else's JSON."""
    return len(value) if isinstance(value, str) else len(json.dumps(value))


def in_groups(
    items: Iterable[Any], length: Callable[[Any], int] = request_length
) -> Iterator[builtins.list[Any]]:
    """``items`` in groups of at most :data:`BATCH` characters by ``length`` (an item alone
    may be more)."""
    group: builtins.list[Any] = []
    size = 0
    for item in items:
        count = length(item)
        if group and size + count > BATCH:
            yield group
            group, size = [], 0
        group.append(item)
        size += count
    if group:
        yield group


def parse_key(key: str) -> tuple[str, str]:
    """The ``(checkpoint_ns, checkpoint_id)`` of a checkpoint key (or of a piece's)."""
    _, ns, checkpoint_id = key.split("|")[:3]
    return unescape(ns), checkpoint_id


class Back:
    """Reads a namespace's checkpoints backwards in pages: heads (``c|``), and writes (``w|``)
    from the same point, each page of both in one round trip (``Memory.items``)."""

    def __init__(self, namespace: str, heads: str, writes: str) -> None:
        self.namespace = namespace
        self.heads = heads
        self.writes = writes
        self.newest = ""
        self.oldest = ""
        self.oldest_writes = ""
        self.exhausted = False
        self.writes_exhausted = False

    def read(self, heads_before: str | None, writes_before: str | None) -> Steps:
        """The heads of the :data:`PAGE` checkpoints before ``heads_before`` and as many
        writes before ``writes_before`` (``None``: from the newest), the newest first."""
        limit = {"reverse": True, "limit": PAGE}
        reads = [Call(self.namespace, "items", (self.heads,), {"after": heads_before, **limit})]
        if not self.writes_exhausted:
            reads.append(Call(self.namespace, "items", (self.writes,),
                              {"after": writes_before, **limit}))  # fmt: skip
        answers: builtins.list[dict[str, Any]] = yield reads
        return self.take(answers[0], answers[1] if len(answers) > 1 else {})

    def take(self, heads: dict[str, Any], writes: dict[str, Any]) -> dict[str, Any]:
        """Note where a page of heads and one of writes (each read newest first, at most
        :data:`PAGE`) end; both, as one mapping."""
        if heads:
            self.newest = self.newest or next(iter(heads))
            self.oldest = next(reversed(heads))
        if writes:
            self.oldest_writes = next(reversed(writes))
        self.exhausted = len(heads) < PAGE
        self.writes_exhausted = len(writes) < PAGE
        return {**heads, **writes}

    def covers(self, writes_key: str) -> bool:
        """Whether what was read holds ``writes_key``'s writes, if it has any."""
        return self.writes_exhausted or writes_key >= self.oldest_writes
