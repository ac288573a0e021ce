"""Every read batch sees one snapshot of the store, while other clients write: a list's window is
never read torn, and a read of several keys never sees half of an atomic ``set_many``. On
PostgreSQL, directly and through ``botwire serve``; SQLite holds the same (one transaction)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from botwire import AsyncMemory, Memory

from .conftest import empty_postgres
from .helpers import Server

ROUNDS = 400


@pytest.fixture(params=["postgres", "http-postgres", "sqlite"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store that a writer and a reader share: PostgreSQL, a server on it, or a SQLite file."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'snap.db'}"
        return
    pg_url = request.getfixturevalue("pg_url")
    empty_postgres(pg_url)
    if request.param == "postgres":
        yield pg_url
        return
    with Server(pg_url) as server:
        yield server.url


def _while_writing(url: str, write: Callable[[Memory, int], Any], read: Callable[[], None]) -> int:
    """Run ``write(mem, i)`` for i = 0, 1, ... in a thread while ``read()`` runs over and over;
    return how many reads ran. Errors in the writer fail the test."""
    done = threading.Event()
    failures: list[BaseException] = []

    def writer() -> None:
        mem = Memory("snap", url)
        try:
            for i in range(ROUNDS):
                write(mem, i)
        except BaseException as exc:
            failures.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    reads = 0
    try:
        while not done.is_set():
            read()
            reads += 1
    finally:
        thread.join()
    assert not failures, failures
    return reads


def test_a_window_of_a_list_is_read_whole_while_another_client_appends(shared_url: str) -> None:
    mem = Memory("snap", shared_url)
    mem.append("chat", *range(-5, 0))

    def read() -> None:
        items = mem.slice("chat")
        assert len(items) == 5 and items == list(range(items[0], items[0] + 5)), items
        newest = mem.slice("chat", -3)
        assert len(newest) == 3 and newest == list(range(newest[0], newest[0] + 3)), newest

    assert _while_writing(shared_url, lambda m, i: m.append("chat", i, max_len=5), read) > 10


def test_the_kept_first_message_is_always_read_with_its_window(shared_url: str) -> None:
    mem = Memory("snap", shared_url)
    system = {"role": "system", "content": "be brief"}
    mem.append("chat", system, *({"role": "user", "n": n} for n in range(-4, 0)))

    def write(m: Memory, i: int) -> None:
        m.append("chat", {"role": "user", "n": i}, max_len=5, keep_first={"role": "system"})

    def read() -> None:
        items = mem.slice("chat")
        assert len(items) == 5 and items[0] == system, items
        assert mem.get("chat")[0] == system

    assert _while_writing(shared_url, write, read) > 10


def test_a_read_of_several_keys_never_sees_half_a_set_many(shared_url: str) -> None:
    mem = Memory("snap", shared_url)
    mem.set_many({"a": -1, "b": -1, "c": -1})

    def read() -> None:
        values = mem.get_many(["a", "b", "c"])
        assert len(set(values.values())) == 1, values
        entries = mem.entries(["a", "b", "c"])
        assert len({entry.value for entry in entries.values()}) == 1, entries

    assert _while_writing(shared_url, lambda m, i: m.set_many({"a": i, "b": i, "c": i}), read) > 10


def test_an_async_read_batch_sees_one_snapshot_too(shared_url: str) -> None:
    import asyncio

    Memory("snap", shared_url).set_many({"a": -1, "b": -1})

    async def reads(until: threading.Event) -> int:
        amem = AsyncMemory("snap", shared_url)
        count = 0
        while not until.is_set():
            values = await amem.get_many(["a", "b"])
            assert values["a"] == values["b"], values
            count += 1
        await amem.aclose()
        return count

    stop = threading.Event()

    def writer() -> None:
        mem = Memory("snap", shared_url)
        deadline = time.monotonic() + 2
        i = 0
        while time.monotonic() < deadline:
            mem.set_many({"a": i, "b": i})
            i += 1
        stop.set()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert asyncio.run(reads(stop)) > 10
    finally:
        stop.set()
        thread.join()
