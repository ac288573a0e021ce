"""Defects a review of the storage layer reproduced: torn reads, forks, races, retries, clocks,
leaks and errors that escaped untranslated. Each test failed before its fix."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

import botwire
from botwire import (
    AsyncMemory,
    BackendUnavailable,
    BotWireError,
    InvalidRequest,
    InvalidValue,
    Memory,
    VersionConflict,
    list_namespaces,
)
from botwire.backends.http import HTTPBackend
from botwire.backends.postgres import PostgresBackend
from botwire.backends.sqlite import SQLiteBackend

from .conftest import PG_URL, FakeClock, Store, empty_postgres
from .helpers import Server, start_python

# -- wrong answers ----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_list_is_never_read_torn(url: str) -> None:
    """A writer process deletes, appends and sets one key over and over; every read sees one
    of the values the key really held."""
    writer = start_python(
        f"""
        import time
        from botwire import Memory
        mem = Memory("torn", {url!r})
        print("ready", flush=True)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            mem.delete("k")
            mem.append("k", 1, 2, 3)
            mem.set("k", [4, 5])
        """
    )
    assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
    mem = Memory("torn", url)
    seen: dict[str, int] = {}
    while writer.poll() is None:
        value = json.dumps(mem.get("k"))
        seen[value] = seen.get(value, 0) + 1
    assert writer.returncode == 0, writer.stderr.read() if writer.stderr else ""
    assert set(seen) <= {"null", "[1, 2, 3]", "[4, 5]"}, seen
    assert seen.get("[1, 2, 3]", 0) > 0 and seen.get("[4, 5]", 0) > 0


@pytest.mark.slow
def test_a_forked_child_never_shares_the_parents_connections(url: str) -> None:
    """Parent and child both use a Memory made before the fork; each reads its own answers,
    and the parent's connections still work after the child has exited."""
    mem = Memory("fork", url)
    mem.set("before", "fork")

    def work(who: str) -> None:
        for i in range(200):
            mem.set(f"{who}-{i}", [who, i])
            assert mem.get(f"{who}-{i}") == [who, i]
            assert mem.get("before") == "fork"

    pid = os.fork()
    if pid == 0:  # child: report through the exit code, never run the parent's cleanup
        code = 1
        try:
            work("child")
            code = 0
        finally:
            os._exit(code)
    work("parent")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    work("parent-after")
    assert mem.get("child-199") == ["child", 199]
    mem.close()


def test_incr_and_append_racing_delete_never_crash(url: str) -> None:
    mem = Memory("race", url)
    errors: list[BaseException] = []
    stop = time.monotonic() + 2

    def deleter() -> None:
        while time.monotonic() < stop:
            mem.delete_many(["n", "l"])

    def writer() -> None:
        try:
            while time.monotonic() < stop:
                mem.incr("n")
                mem.append("l", 1, max_len=3)
        except BaseException as exc:  # collected: the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=deleter)] + [
        threading.Thread(target=writer) for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


class DroppingProxy:
    """A loopback TCP proxy that forwards each request to a server, then, for the first
    ``drops`` requests, closes the connection instead of passing the answer on: the request
    ran, its answer is lost."""

    def __init__(self, target: str, drops: int) -> None:
        host, port = target.removeprefix("http://").split(":")
        self.target = (host, int(port))
        self.drops = drops
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        with client, socket.create_connection(self.target) as upstream:
            while True:
                request = _read_http_message(client)
                if request is None:
                    return
                upstream.sendall(request)
                answer = _read_http_message(upstream)
                if answer is None:
                    return
                if self.drops > 0:
                    self.drops -= 1
                    return  # the request ran; its answer is lost
                client.sendall(answer)

    def close(self) -> None:
        self.listener.close()


def _read_http_message(sock: socket.socket) -> bytes | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        body += chunk
    return head + b"\r\n\r\n" + body


@pytest.fixture
def dropping(http_server: Server) -> Iterator[DroppingProxy]:
    proxy = DroppingProxy(http_server.url, drops=0)
    yield proxy
    proxy.close()


def test_http_resends_only_what_cannot_change_its_answer(
    http_server: Server, dropping: DroppingProxy
) -> None:
    direct = Memory("resend", http_server.url)
    direct.clear()
    direct.set_many({"a": 1, "b": 2, "c": 3})
    backend = HTTPBackend(dropping.url, timeout=5)
    mem = Memory("resend", backend=backend)

    dropping.drops = 1
    assert mem.get("a") == 1  # a read is sent again and answers
    dropping.drops = 1
    assert mem.set("a", 10) > 0  # so is a plain write: its answer is its own version
    assert direct.get("a") == 10
    for call in (lambda: mem.delete("b"), mem.clear, lambda: mem.append("l", 1)):
        dropping.drops = 1
        with pytest.raises(BackendUnavailable, match="may or may not have been written"):
            call()
    assert direct.keys() == ["l"]  # delete and clear ran once each
    assert direct.get("l") == [1]  # appended once, not twice
    backend.close()


def test_postgres_does_not_rerun_a_write_that_may_have_committed(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection breaks after the write's COMMIT ran: the write landed, and running it
    again would turn its answer into a VersionConflict. A read that breaks runs again."""
    from botwire.backends.postgres import connections as postgres

    empty_postgres(pg_url)
    backend = PostgresBackend(pg_url, clock=FakeClock())  # frozen: no purge between the calls
    mem = Memory("once", backend=backend)
    mem.set("warm", 1)
    real_fetch = postgres._fetch
    breaks = {"left": 0, "after": "COMMIT"}

    def fetch_then_break(cur: Any, fetch: str) -> Any:
        result = real_fetch(cur, fetch)
        if breaks["left"] and (cur.statusmessage or "").startswith(str(breaks["after"])):
            breaks["left"] = 0
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return result

    monkeypatch.setattr(postgres, "_fetch", fetch_then_break)
    breaks.update(left=1, after="COMMIT")
    with pytest.raises(BackendUnavailable, match="may or may not have been written"):
        mem.set("k", "v", if_version=0)
    breaks.update(left=1, after="SELECT")
    assert mem.get("k") == "v"  # it had landed; a read is simply run again
    assert breaks["left"] == 0
    breaks.update(left=1, after="COMMIT")
    with pytest.raises(BackendUnavailable, match="may or may not"):
        mem.delete("k")
    monkeypatch.setattr(postgres, "_fetch", real_fetch)
    assert "k" not in mem
    assert [c.op for c in mem.history("k")] == ["delete", "set"]  # each once
    backend.close()


@pytest.mark.parametrize(
    ("op", "detail"),
    [
        ({"op": "put", "ns": "canon", "key": "k", "value": "-1e999"}, "JSON"),
        ({"op": "put", "ns": "canon", "key": "k", "value": "[1e400]"}, "JSON"),
        ({"op": "put", "ns": "canon", "key": "k", "value": '"\\ud800"'}, "Unicode"),
        ({"op": "append", "ns": "canon", "key": "k", "values": ["NaN"]}, "JSON"),
        ({"op": "put", "ns": "canon", "key": "k", "value": "Infinity"}, "JSON"),
    ],
)
def test_the_batch_route_refuses_what_memory_set_refuses(
    http_server: Server, op: dict[str, Any], detail: str
) -> None:
    response = httpx.post(http_server.url + "/v1/batch", json={"ops": [op]})
    assert response.status_code == 400
    assert detail in response.json()["detail"]
    assert Memory("canon", http_server.url).keys() == []


def test_the_batch_route_stores_canonical_json(http_server: Server) -> None:
    ops = [
        {"op": "put", "ns": "canon2", "key": "obj", "value": ' { "a" : [1, 2.50, "x"] } '},
        {"op": "append", "ns": "canon2", "key": "list", "values": ["[1, 2]", ' "a" ']},
    ]
    assert httpx.post(http_server.url + "/v1/batch", json={"ops": ops}).status_code == 200
    mem = Memory("canon2", http_server.url)
    assert mem.get("obj") == {"a": [1, 2.5, "x"]} and mem.get("list") == [[1, 2], "a"]
    listing = httpx.get(http_server.url + "/memory/canon2").json()["keys"]
    sizes = {item["key"]: item["bytes"] for item in listing}
    assert sizes == {"obj": len('{"a":[1,2.5,"x"]}'), "list": len('[[1,2],"a"]')}


def _clocked(store: Store) -> FakeClock:
    if store.clock is None:
        pytest.skip("the server's clock cannot be moved from a test")
    return store.clock


def test_reads_and_writes_judge_expiry_by_the_same_time(store: Store) -> None:
    """Many writes within one microsecond used to push write times ahead of read times, so
    ``update`` could not write a key that ``get`` still saw."""
    _clocked(store)  # frozen unless advanced
    mem = store.memory()
    mem.set("k", 1, ttl=0.000_010)
    for i in range(30):
        mem.set(f"pad{i}", i)
    assert mem.get("k") == 1
    assert mem.update("k", lambda v: v + 1) == 2
    assert mem.get("k") == 2


def test_versions_grow_across_clocks_that_disagree(store: Store, tmp_path: Path) -> None:
    """A process 5 s ahead creates and deletes a key; one on time creates it again: the new
    version is above the old one, so ``if_version`` cannot confuse the two."""
    ahead_clock = _clocked(store)
    on_time = FakeClock(ahead_clock.now - 5)
    if isinstance(store.backend, SQLiteBackend):
        other = SQLiteBackend(store.backend.path, clock=on_time)
    else:
        assert isinstance(store.backend, PostgresBackend)
        other = PostgresBackend(store.backend.conninfo + _schema_of(store.backend), clock=on_time)
    ahead, late = store.memory("skew"), Memory("skew", backend=other)
    old = ahead.set("k", "first")
    assert ahead.delete("k")
    new = late.set("k", "second")
    assert new > old
    with pytest.raises(VersionConflict):
        late.set("k", "stale write", if_version=old)
    ahead.append("l", 1)
    listed = ahead.entry("l")
    assert listed is not None
    ahead.clear()
    assert late.incr("l") == 1
    relisted = late.entry("l")
    assert relisted is not None and relisted.version > listed.version
    other.close()


def _schema_of(backend: PostgresBackend) -> str:
    return f"{'&' if '?' in backend.conninfo else '?'}schema={backend.schema}"


# -- leaks and races on first use ------------------------------------------------------------


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_connections_of_finished_threads_are_closed(tmp_path: Path) -> None:
    mem = Memory("threads", backend=SQLiteBackend(tmp_path / "threads.db"))
    mem.set("k", 1)
    before = _open_fds()
    for _ in range(5):
        threads = [threading.Thread(target=mem.get, args=("k",)) for _ in range(100)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert _open_fds() - before < 20
    mem.close()


def test_threads_that_start_one_after_another_reuse_connections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening a connection costs milliseconds; a thread pool starts threads often."""
    backend = SQLiteBackend(tmp_path / "reuse.db")
    opened = []
    real_open = SQLiteBackend._open
    monkeypatch.setattr(SQLiteBackend, "_open", lambda self: opened.append(1) or real_open(self))
    mem = Memory("reuse", backend=backend)
    mem.set("k", 0)
    for n in range(50):
        thread = threading.Thread(target=mem.set, args=("k", n))
        thread.start()
        thread.join()
    assert mem.get("k") == 49 and len(opened) <= 2
    before = _open_fds()
    mem.close()  # the idle connections close too
    assert _open_fds() < before


def test_threads_of_one_process_take_turns_to_write(tmp_path: Path) -> None:
    """Writers of one process queue for the write lock in Python, not by SQLite's polling
    with sleeps: many threads that write at once all finish, quickly, losing nothing."""
    mem = Memory("turns", backend=SQLiteBackend(tmp_path / "turns.db"))

    def work(n: int) -> None:
        for _ in range(50):
            mem.incr("n")
            mem.append("log", n)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert mem.get("n") == 400 and len(mem.get("log")) == 400
    assert time.monotonic() - started < 10


async def _use(mem: AsyncMemory) -> None:
    await asyncio.gather(*(mem.get(f"k{i}") for i in range(10)))
    await mem.set("k", 1)


def _named(url: str) -> tuple[str, str]:
    """``url`` with an application_name of its own, so that its connections can be counted
    whatever else uses the database."""
    name = f"botwire-test-{uuid.uuid4().hex[:8]}"
    return f"{url}&application_name={name}", name


def _connections(name: str) -> int:
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (name,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def _closed(name: str) -> bool:
    """True once the server has no session left for ``name``.

    A server process ends a moment after its client hangs up, so give it a few seconds."""
    deadline = time.monotonic() + 5
    while _connections(name) and time.monotonic() < deadline:
        time.sleep(0.02)
    return _connections(name) == 0


def test_async_pools_close_when_their_event_loop_ends(pg_url: str) -> None:
    url, name = _named(pg_url)
    mem = AsyncMemory("loops", backend=PostgresBackend(url))
    for _ in range(3):
        asyncio.run(_use(mem))
        assert _closed(name)


def test_async_http_clients_close_when_their_event_loop_ends(http_server: Server) -> None:
    mem = AsyncMemory("loops", backend=HTTPBackend(http_server.url))
    asyncio.run(_use(mem))
    before = _open_fds()
    for _ in range(5):
        asyncio.run(_use(mem))
    assert _open_fds() <= before


def test_coroutines_that_start_at_once_share_one_pool(pg_url: str) -> None:
    url, name = _named(pg_url)

    async def main() -> None:
        backend = PostgresBackend(url)  # no pool yet: ten coroutines ask for one at once
        mem = AsyncMemory("first-use", backend=backend)
        await asyncio.gather(*(mem.get(f"k{i}") for i in range(10)))
        assert len(backend._async_pools) == 1
        assert 1 <= _connections(name) <= 10
        await mem.aclose()
        assert _closed(name)

    asyncio.run(main())


def test_memories_close_as_context_managers(url: str) -> None:
    with Memory("ctx", url) as mem:
        mem.set("k", 1)
    assert Memory("ctx", url).get("k") == 1  # closed connections reopen when used again

    async def main() -> None:
        async with AsyncMemory("ctx", url) as amem:
            assert await amem.get("k") == 1
        assert await amem.get("k") == 1

    asyncio.run(main())


@pytest.mark.slow
def test_processes_that_start_at_once_on_a_fresh_schema_migrate_it_once(pg_url: str) -> None:
    schema = f"botwire_race_{uuid.uuid4().hex[:8]}"
    url = f"{PG_URL}{'&' if '?' in PG_URL else '?'}schema={schema}"
    try:
        procs = [
            start_python(
                f"""
                from botwire import Memory
                Memory("first", {url!r}).incr("n")
                """
            )
            for _ in range(8)
        ]
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
        assert Memory("first", url).get("n") == 8
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_a_schema_with_capitals(pg_url: str) -> None:
    url = f"{PG_URL}{'&' if '?' in PG_URL else '?'}schema=BotWire_Mixed"
    try:
        mem = Memory("mixed", backend=PostgresBackend(url))
        mem.set("k", 1)
        assert mem.get("k") == 1
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute('DROP SCHEMA IF EXISTS "BotWire_Mixed" CASCADE')


# -- every driver error leaves botwire as a BotWireError --------------------------------------

ODD = ["\x00", "\ud800", "a\x00b", "\udfff🧠", "x" * 5000, "", " ", "\U0010ffff", "%FF", "\\"]


def _calls(mem: Memory, odd: Any) -> list[Any]:
    return [
        lambda: mem.set(odd, 1),
        lambda: mem.set("k", odd),
        lambda: mem.get(odd),
        lambda: mem.delete(odd),
        lambda: mem.keys(odd),
        lambda: odd in mem,
        lambda: mem.get_many([odd, "k"]),
        lambda: mem.set_many({odd: 1}),
        lambda: mem.set_many({"k": odd}),
        lambda: mem.delete_many([odd]),
        lambda: mem.append(odd, 1),
        lambda: mem.append("l", odd),
        lambda: mem.incr(odd),
        lambda: mem.update(odd, lambda v: 1),
        lambda: mem.expire(odd, 5),
        lambda: mem.ttl(odd),
        lambda: mem.entry(odd),
        lambda: mem.set("k", 1, ttl=odd),
        lambda: mem.set("k", 1, if_version=2**70),
        lambda: mem.incr("n", by=2**70),
        lambda: mem.append("l", 1, max_len=2**70),
    ]


def test_odd_input_through_every_method_raises_only_botwire_errors(store: Store) -> None:
    mem = store.memory("odd-input")
    for odd in ODD:
        for call in _calls(mem, odd):
            with contextlib.suppress(BotWireError):
                call()
    store.memory("odd-input").set("k", "still works")
    assert store.memory("odd-input").get("k") == "still works"


def test_odd_namespace_prefixes_raise_botwire_errors(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'odd.db'}"
    for odd in ODD:
        with contextlib.suppress(BotWireError):
            list_namespaces(odd, url=url)


@pytest.mark.parametrize("param", ["prefix", "cursor"])
@pytest.mark.parametrize("odd", ["%00", "a%00b", "%01"])
def test_odd_listing_parameters_are_4xx(http_server: Server, param: str, odd: str) -> None:
    response = httpx.get(f"{http_server.url}/memory/ns?{param}={odd}")
    assert response.status_code == 400 and "control character" in response.json()["detail"]


# -- surprises removed ------------------------------------------------------------------------


@pytest.mark.slow
def test_serve_reads_its_store_from_botwire_db_not_botwire_url(tmp_path: Path) -> None:
    server = Server(None, XDG_DATA_HOME=str(tmp_path), BOTWIRE_URL="http://127.0.0.1:9")
    with server:
        Memory("served", server.url).set("k", "embedded")
    assert Memory("served", f"sqlite:///{tmp_path / 'botwire' / 'memory.db'}").get("k") == (
        "embedded"
    )


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite:///file::memory:?cache=shared"])
def test_an_in_memory_sqlite_store_is_refused_with_advice(url: str) -> None:
    with pytest.raises(InvalidRequest, match="in-memory"):
        Memory("ns", url).set("k", 1)


def test_list_namespaces_takes_the_prefix_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'ns.db'}"
    for name in ["bot:1", "bot:2", "cat"]:
        Memory(name, url).set("k", 1)
    monkeypatch.setenv("BOTWIRE_URL", url)
    assert list_namespaces("bot") == ["bot:1", "bot:2"]
    assert list_namespaces() == ["bot:1", "bot:2", "cat"]
    assert asyncio.run(botwire.alist_namespaces("c")) == ["cat"]
    monkeypatch.delenv("BOTWIRE_URL")
    assert list_namespaces("cat", url=url) == ["cat"]


def test_a_value_limit_of_zero_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'limit.db'}"
    for bad in (0, -1, 1.5):
        with pytest.raises(InvalidRequest, match="max_value_bytes"):
            Memory("ns", url, max_value_bytes=bad)  # type: ignore[arg-type]
    monkeypatch.setenv("BOTWIRE_MAX_VALUE_BYTES", "0")
    with pytest.raises(InvalidRequest, match="max_value_bytes"):
        Memory("ns", url)
    monkeypatch.setenv("BOTWIRE_MAX_VALUE_BYTES", "lots")
    with pytest.raises(InvalidRequest, match="BOTWIRE_MAX_VALUE_BYTES"):
        Memory("ns", url)


def test_updates_final_conflict_reports_the_real_versions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botwire import _memory

    monkeypatch.setattr(_memory, "_UPDATE_ATTEMPTS", 5)
    mem = Memory("race", f"sqlite:///{tmp_path / 'race.db'}")
    mem.set("k", 0)

    def meddle(value: int) -> int:
        mem.incr("k")  # another writer gets in first, every time
        return value + 100

    with pytest.raises(VersionConflict, match="lost the race 5 times") as info:
        mem.update("k", meddle)
    entry = mem.entry("k")
    assert entry is not None
    assert info.value.actual == entry.version
    assert 0 < info.value.expected < info.value.actual


def test_the_batch_schema_is_generated_from_its_models(http_server: Server) -> None:
    schema = httpx.get(http_server.url + "/openapi.json").json()
    body = schema["paths"]["/v1/batch"]["post"]["requestBody"]["content"]["application/json"]
    text = json.dumps(body["schema"])
    for field in ("keep_ttl", "refresh_ttl", "created_at", "expires_at", "max_len", "after"):
        assert f'"{field}"' in text
    assert '"$ref"' not in text


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"a": [1, 2, {3}]}, "value['a'][2] of key 'prefs': set is not JSON"),
        ({"a": {"b": float("nan")}}, "value['a']['b'] of key 'prefs': nan is not JSON"),
        ([1, float("-inf")], "value[1] of key 'prefs': -inf is not JSON"),
        ({"ok": 1, 2: "x"}, "value of key 'prefs': dict key 2 is not a str"),
        ({"t": (1, b"x")}, "value['t'][1] of key 'prefs': bytes is not JSON"),
        ({"s": "a\ud800"}, "value['s'] of key 'prefs': str is not valid Unicode"),
    ],
)
def test_a_value_that_is_not_json_names_its_key_and_the_bad_part(
    tmp_path: Path, value: Any, message: str
) -> None:
    mem = Memory("values", f"sqlite:///{tmp_path / 'v.db'}")
    with pytest.raises(InvalidValue) as info:
        mem.set("prefs", value)
    assert str(info.value).startswith(message)
    with pytest.raises(InvalidValue, match=r"\(a circular reference\)"):
        loop: list[Any] = [1]
        loop.append({"again": loop})
        mem.set("loop", loop)
    with pytest.raises(InvalidValue, match=r"^value\['b'\] of key 'second': set is not JSON"):
        mem.set_many({"first": 1, "second": {"b": {1}}})
    with pytest.raises(InvalidValue, match=r"^value of key 'chat': object is not JSON"):
        mem.append("chat", "fine", object())
    assert mem.keys() == []
