"""The same random sequence of calls on every backend, sync and async, gives the same answers."""

from __future__ import annotations

import asyncio
import inspect
import random
import threading
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


@pytest.fixture(scope="module")
def pg_server(pg_url: str) -> Iterator[Server]:
    """``botwire serve`` on the test PostgreSQL schema."""
    with Server(pg_url) as server:
        yield server


class _BusyWriter:
    """Another client that keeps writing, atomically, to a namespace of its own: three keys
    that always hold the same number, and a window of the newest five items."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        mem = Memory("diff-busy", self.url)
        i = 0
        try:
            while not self.stop.is_set():
                mem.set_many({"x": i, "y": i, "z": i})
                mem.append("w", i, max_len=5)
                i += 1
        except BaseException as exc:
            self.errors.append(exc)

    def __enter__(self) -> _BusyWriter:
        mem = Memory("diff-busy", self.url)
        mem.set_many({"x": -1, "y": -1, "z": -1})
        mem.append("w", *range(-5, 0))
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        assert not self.errors, self.errors


def _snapshot_reads(mem: Memory) -> None:
    """Read batches across the busy namespace: each must see one snapshot."""
    busy = Memory("diff-busy", backend=mem.backend)
    values = busy.get_many(["x", "y", "z"])
    assert len(set(values.values())) == 1, values
    window = busy.slice("w")
    assert len(window) == 5 and window == list(range(window[0], window[0] + 5)), window


@pytest.mark.parametrize("seed", range(3))
def test_read_batches_see_one_snapshot_under_concurrent_writers(
    tmp_path: Path, pg_url: str, pg_server: Server, seed: int
) -> None:
    """The random program on PostgreSQL and through a server on it, while another client
    writes: its answers match SQLite's, and every read batch in between is whole."""
    empty_postgres(pg_url)
    calls = program(seed)
    reference_backend = SQLiteBackend(tmp_path / "reference.db")
    reference = run_sync(Memory("diff-busy-ref", backend=reference_backend), calls)
    reference_backend.close()
    with _BusyWriter(pg_url):
        for name, backend in {"postgres": PostgresBackend(pg_url),
                              "http": HTTPBackend(pg_server.url)}.items():  # fmt: skip
            mem = Memory(f"diff-busy-{name}", backend=backend)
            got = []
            for call in calls:
                got.extend(run_sync(mem, [call])[:-1])
                _snapshot_reads(mem)
            got.append(run_sync(mem, [])[-1])
            backend.close()
            for number, (want, have) in enumerate(zip(reference, got, strict=True)):
                assert have == want, f"{name}: call {number} {([*calls, ('final',)])[number]!r}"
