"""The same random sequence of calls on every backend, sync and async, gives the same answers."""

from __future__ import annotations

import asyncio
import inspect
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from botwire import AsyncMemory, BotWireError, Memory
from botwire.backends.base import Backend
from botwire.backends.http import HTTPBackend
from botwire.backends.postgres import PostgresBackend
from botwire.backends.sqlite import SQLiteBackend

from .conftest import empty_postgres
from .helpers import Server

KEYS = ["a", "b", "l", "n", "sp ace", "ключ", "a/b"]
Call = tuple[Any, ...]


def _value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 2 else 5)
    if kind == 0:
        return rng.randint(-(2**40), 2**40)
    if kind == 1:
        return rng.choice(["", "x", "héllo 🧠", "[1,2]", "5", "null"])
    if kind == 2:
        return rng.choice([None, True, False])
    if kind == 3:
        return rng.choice([0.5, -0.0, 1e300, 3.25])
    if kind == 4:
        return rng.randint(0, 9)
    if kind == 5:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice("zyx"): _value(rng, depth + 1) for _ in range(rng.randrange(3))}


def program(seed: int, length: int = 70) -> list[Call]:
    """A random sequence of calls over a few keys, so that they meet each other's values."""
    rng = random.Random(seed)
    calls: list[Call] = []
    for _ in range(length):
        key = rng.choice(KEYS)
        kind = rng.choice(
            ["set", "set", "get", "get", "append", "append", "incr", "delete", "has", "expire",
             "has_ttl", "entry", "keys", "get_many", "set_many", "delete_many", "update",
             "if_absent", "if_current", "clear"]
        )  # fmt: skip
        if kind == "set":
            calls.append((kind, key, _value(rng), rng.choice([None, None, 100])))
        elif kind == "append":
            values = [_value(rng) for _ in range(rng.randint(1, 3))]
            calls.append((kind, key, values, rng.choice([None, 1, 2, 5])))
        elif kind == "incr":
            calls.append((kind, key, rng.randint(-5, 5)))
        elif kind == "expire":
            calls.append((kind, key, rng.choice([None, 0, 100])))
        elif kind == "keys":
            calls.append((kind, rng.choice([None, "a", "s", "ключ"])))
        elif kind in ("get_many", "delete_many"):
            calls.append((kind, rng.sample(KEYS, 3)))
        elif kind == "set_many":
            calls.append((kind, {k: _value(rng) for k in rng.sample(KEYS, 2)}))
        elif kind in ("if_absent", "if_current"):
            calls.append((kind, key, _value(rng)))
        elif kind == "clear":
            calls.append((kind,))
        else:
            calls.append((kind, key))
    return calls


def _wrap(v: Any) -> Any:
    return {"was": v}


def _step(mem: Any, call: Call) -> Any:
    """The call on a Memory or an AsyncMemory: a value, or an awaitable of one."""
    kind, *args = call
    if kind == "set":
        key, value, ttl = args
        return mem.set(key, value, ttl=ttl)
    if kind == "append":
        key, values, max_len = args
        return mem.append(key, *values, max_len=max_len)
    if kind == "has":
        return mem.has(*args)
    if kind == "has_ttl":
        return mem.ttl(*args)
    if kind == "update":
        return mem.update(args[0], _wrap)
    if kind == "if_absent":
        return mem.set(args[0], args[1], if_version=0)
    return getattr(mem, kind)(*args)


def _normal(kind: str, result: Any) -> Any:
    """What must agree between backends: versions and times differ, their meaning does not."""
    if kind in ("set", "if_absent", "if_current"):
        return isinstance(result, int) and result > 0
    if kind == "has_ttl":
        return result is not None and 99 < result <= 100
    if kind == "entry":
        return None if result is None else result.value
    return result


def run_sync(mem: Memory, calls: list[Call]) -> list[Any]:
    out = []
    for call in calls:
        try:
            if call[0] == "if_current":
                entry = mem.entry(call[1])
                result = mem.set(call[1], call[2], if_version=entry.version if entry else 7)
            else:
                result = _step(mem, call)
            out.append(_normal(call[0], result))
        except BotWireError as exc:
            out.append(("error", type(exc).__name__))
    out.append(("final", sorted((k, repr(v)) for k, v in mem.get_many(mem.keys()).items())))
    return out


async def run_async(mem: AsyncMemory, calls: list[Call]) -> list[Any]:
    out = []
    for call in calls:
        try:
            if call[0] == "if_current":
                entry = await mem.entry(call[1])
                result = await mem.set(call[1], call[2], if_version=entry.version if entry else 7)
            else:
                result = _step(mem, call)
                if inspect.isawaitable(result):
                    result = await result
            out.append(_normal(call[0], result))
        except BotWireError as exc:
            out.append(("error", type(exc).__name__))
    items = await mem.get_many(await mem.keys())
    out.append(("final", sorted((k, repr(v)) for k, v in items.items())))
    return out


@pytest.fixture
def backends(tmp_path: Path, pg_url: str, http_server: Server) -> Iterator[dict[str, Backend]]:
    empty_postgres(pg_url)
    found: dict[str, Backend] = {
        "sqlite": SQLiteBackend(tmp_path / "diff.db"),
        "postgres": PostgresBackend(pg_url),
        "http": HTTPBackend(http_server.url),
    }
    yield found
    for backend in found.values():
        backend.close()


@pytest.mark.parametrize("seed", range(6))
def test_every_backend_gives_the_same_answers(backends: dict[str, Backend], seed: int) -> None:
    calls = program(seed)
    namespace = f"diff-{seed}-{random.randrange(10**9)}"
    answers = {}
    for name, backend in backends.items():
        answers[f"{name} sync"] = run_sync(Memory(namespace, backend=backend), calls)
        amem = AsyncMemory(namespace + "-async", backend=backend)
        answers[f"{name} async"] = asyncio.run(run_async(amem, calls))
    reference = answers["sqlite sync"]
    assert any(isinstance(a, tuple) and a[0] == "error" for a in reference)  # errors are covered
    for name, got in answers.items():
        for number, (want, have) in enumerate(zip(reference, got, strict=True)):
            assert have == want, f"{name}: call {number} {([*calls, ('final',)])[number]!r}"
