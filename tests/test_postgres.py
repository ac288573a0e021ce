"""What only the PostgreSQL store has: several servers on one database, migrations, faults."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from botwire import AsyncMemory, BackendUnavailable, Memory, QuotaExceeded
from botwire.backends.postgres import PostgresBackend, parse_url
from botwire.backends.postgres.schema import SCHEMA_VERSION

from .conftest import PG_URL, FakeClock, empty_postgres
from .helpers import Server, child_env


@pytest.fixture
def url(pg_url: str) -> str:
    empty_postgres(pg_url)
    return pg_url


@pytest.fixture
def fresh_schema_url(pg_url: str) -> Iterator[str]:
    """A URL naming a schema that does not exist yet."""
    schema = f"botwire_fresh_{uuid.uuid4().hex[:8]}"
    yield f"{PG_URL}{'&' if '?' in PG_URL else '?'}schema={schema}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def sql(url: str, statement: str) -> list[tuple[object, ...]]:
    conninfo, schema, *_ = parse_url(url)
    with psycopg.connect(conninfo, autocommit=True, options=f"-c search_path={schema}") as conn:
        cur = conn.execute(statement)
        return cur.fetchall() if cur.description else []


def botwire(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "botwire.cli", *args],
        input=stdin, capture_output=True, text=True, env=child_env(), timeout=120,
    )  # fmt: skip


@pytest.mark.slow
def test_two_servers_on_one_database_share_data_and_one_quota(url: str) -> None:
    with (
        Server(url, "--quota-writes-per-day", "100") as first,
        Server(url, "--quota-writes-per-day", "100") as second,
    ):
        Memory("shared", first.url).set("greeting", {"from": "first"})
        assert Memory("shared", second.url).get("greeting") == {"from": "first"}
        Memory("shared", second.url).append("log", "second")
        assert Memory("shared", first.url).get("log") == ["second"]

        admitted: list[str] = []
        refused: list[str] = []
        lock = threading.Lock()

        def writer(server: Server, name: str) -> None:
            mem = Memory("quota", server.url)
            for i in range(40):
                key = f"{name}-{i}"
                try:
                    mem.set(key, i)
                    with lock:
                        admitted.append(key)
                except QuotaExceeded:
                    with lock:
                        refused.append(key)

        threads = [
            threading.Thread(target=writer, args=(server, f"{server.port}-{n}"))
            for server in (first, second)
            for n in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(admitted) == 100 and len(refused) == 60
        assert sorted(Memory("quota", second.url).keys()) == sorted(admitted)
        hosts = {key.split("-")[0] for key in admitted}
        assert hosts == {str(first.port), str(second.port)}  # both servers admitted writes


def test_expired_rows_are_purged(url: str) -> None:
    clock = FakeClock()
    backend = PostgresBackend(url, clock=clock)
    mem = Memory("purge", backend=backend)
    mem.set_many({f"k{i}": i for i in range(20)}, ttl=10)
    mem.append("list", *range(50))
    mem.expire("list", 10)
    clock.advance(11)
    mem.set("fresh", 1)
    assert sql(url, "SELECT count(*) FROM botwire_entries") == [(1,)]
    assert sql(url, "SELECT count(*) FROM botwire_list_items") == [(0,)]
    backend.close()


def test_values_are_stored_as_their_exact_json_text(url: str) -> None:
    mem = Memory("text", backend=PostgresBackend(url))
    mem.set("obj", {"z": 1, "a": [2**70, "[1,2]"]})
    assert sql(url, "SELECT value FROM botwire_entries WHERE key = 'obj'") == [
        ('{"z":1,"a":[1180591620717411303424,"[1,2]"]}',)
    ]
    assert list(mem.get("obj")) == ["z", "a"]


def test_an_unreachable_database_is_backend_unavailable_with_the_password_masked() -> None:
    backend = PostgresBackend("postgresql://bob:s3cret@127.0.0.1:1/nowhere", timeout=1)
    with pytest.raises(BackendUnavailable) as info:
        Memory("ns", backend=backend).get("k")
    assert "bob:***@127.0.0.1:1/nowhere" in str(info.value)
    assert "s3cret" not in str(info.value)


def _named(url: str) -> tuple[str, str]:
    """The URL with an application name of its own, so that killing this test's connections
    leaves every other test's (other workers run at the same time) alone."""
    name = f"botwire-recover-{uuid.uuid4().hex[:8]}"
    return f"{url}{'&' if '?' in url else '?'}application_name={name}", name


def _terminate_connections(name: str) -> int:
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchall()
    return len(rows)


def test_the_pool_recovers_when_connections_are_killed(url: str) -> None:
    named, name = _named(url)
    backend = PostgresBackend(named, timeout=5)
    mem = Memory("recover", backend=backend)
    mem.set("k", 1)
    assert _terminate_connections(name) >= 1
    assert mem.get("k") == 1  # a fresh connection, transparently
    assert mem.incr("n") == 1
    assert _terminate_connections(name) >= 1
    assert mem.append("l", "x") == 1
    backend.close()


async def test_the_async_pool_recovers_too(url: str) -> None:
    named, name = _named(url)
    backend = PostgresBackend(named, timeout=5)
    mem = AsyncMemory("recover-async", backend=backend)
    await mem.set("k", 1)
    assert _terminate_connections(name) >= 1
    assert await mem.get("k") == 1
    await backend.aclose()


def test_migrate_command_and_the_migrations_table(fresh_schema_url: str) -> None:
    refusing = PostgresBackend(fresh_schema_url + "&migrate=false")
    with pytest.raises(BackendUnavailable, match="botwire migrate"):
        Memory("ns", backend=refusing).get("k")
    result = botwire("migrate", "--url", fresh_schema_url)
    assert result.returncode == 0, result.stderr
    runs = f"{SCHEMA_VERSION} migration{'s' if SCHEMA_VERSION != 1 else ''}"
    assert f"({runs} run)" in result.stdout
    versions = sql(fresh_schema_url, "SELECT version FROM botwire_migrations ORDER BY version")
    assert [row[0] for row in versions] == list(range(1, SCHEMA_VERSION + 1))
    again = botwire("migrate", "--url", fresh_schema_url)
    assert "(0 migrations run)" in again.stdout
    assert (
        Memory("ns", backend=PostgresBackend(fresh_schema_url + "&migrate=false")).get("k") is None
    )
    sql(fresh_schema_url, f"INSERT INTO botwire_migrations (version) VALUES ({SCHEMA_VERSION + 1})")
    with pytest.raises(BackendUnavailable, match="upgrade botwire"):
        PostgresBackend(fresh_schema_url).migrate()


@pytest.mark.slow
def test_export_import_round_trip_sqlite_postgres_sqlite(tmp_path: Path, url: str) -> None:
    first = f"sqlite:///{tmp_path / 'first.db'}"
    chat = Memory("chat:42", first)
    chat.set("prefs", {"lang": "en", "big": 2**80, "pi": 3.14159, "none": None})
    chat.set("text", "[1,2]", ttl=3600)
    chat.append("history", {"role": "user", "content": "héllo 🧠"}, "two", 3)
    chat.set("odd key?#/ 🧠", True)
    Memory("counters", first).incr("hits", 41)
    Memory("expired", first).set("gone", 1, ttl=0.001)

    dump1 = botwire("export", "--url", first)
    assert dump1.returncode == 0, dump1.stderr
    assert dump1.stdout.count("\n") == 5
    loaded = botwire("import", "--url", url, stdin=dump1.stdout)
    assert loaded.returncode == 0, loaded.stderr
    dump2 = botwire("export", "--url", url)
    third = f"sqlite:///{tmp_path / 'third.db'}"
    assert botwire("import", "--url", third, stdin=dump2.stdout).returncode == 0
    dump3 = botwire("export", "--url", third)
    assert dump1.stdout == dump2.stdout == dump3.stdout
    remaining = Memory("chat:42", url).ttl("text")
    assert remaining is not None and 3500 < remaining <= 3600
    assert Memory("chat:42", third).get("history")[0] == {"role": "user", "content": "héllo 🧠"}


def test_deadlocks_between_batches_are_retried_not_surfaced(url: str) -> None:
    """Two clients write the same keys in opposite orders: PostgreSQL breaks the deadlocks,
    botwire runs the losing batch again, and every batch lands whole."""
    keys = [f"k{i}" for i in range(12)]
    errors: list[BaseException] = []

    def writer(order: list[str], tag: str) -> None:
        mem = Memory("deadlock", backend=PostgresBackend(url))
        try:
            for round_ in range(8):
                mem.set_many({key: f"{tag}{round_}" for key in order})
        except BaseException as exc:  # collected: the assertion below reports it
            errors.append(exc)

    threads = [
        threading.Thread(target=writer, args=(keys, "a")),
        threading.Thread(target=writer, args=(keys[::-1], "b")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    final = Memory("deadlock", backend=PostgresBackend(url)).get_many(keys)
    assert set(final.values()) <= {"a7", "b7"} and len(set(final.values())) == 1


async def test_the_async_path_purges_too(url: str) -> None:
    """The server runs every batch through aexecute, so that path must purge as well."""
    clock = FakeClock()
    backend = PostgresBackend(url, clock=clock)
    mem = AsyncMemory("purge-async", backend=backend)
    await mem.set_many({f"k{i}": i for i in range(10)}, ttl=10)
    clock.advance(11)
    await mem.set("fresh", 1)
    assert sql(url, "SELECT count(*) FROM botwire_entries") == [(1,)]
    await backend.aclose()


def _statements(backend: PostgresBackend, ops: list[object]) -> tuple[list[str], list[object]]:
    """Run ``ops`` as one batch; the statements it sent (one round trip each) and its results."""
    from botwire.backends.postgres.connections import Attempt, run

    sent: list[str] = []

    def counted(steps):  # type: ignore[no-untyped-def]
        query = next(steps)
        while True:
            sent.append(query.sql)
            answer = yield query
            try:
                query = steps.send(answer)
            except StopIteration as done:
                return done.value

    backend._next_purge = 2**62  # no purge in this batch
    with backend._sync_pool().connection() as conn:
        results = run(conn, counted(backend._batch(ops, Attempt())))
    return sent, results


def test_append_costs_the_round_trips_of_a_set(url: str) -> None:
    """A chat window's append (max_len, keep_first) is one server-side call: as many
    statements as a set, whether the list is new, short, or trimmed around its first item."""
    from botwire.backends.base import Append, Put

    backend = PostgresBackend(url)
    mem = Memory("chat", backend=backend)
    system = '{"role":"system","content":"be brief"}'
    message = '{"role":"user","content":"hi"}'
    set_sent, _ = _statements(backend, [Put("chat", "k", message)])
    for n in range(1, 6):
        sent, (length,) = _statements(
            backend, [Append("chat", "log", (message,) * n, 4, None, '{"role":"system"}')]
        )
        assert len(sent) == len(set_sent), sent
    assert length == 4
    _statements(backend, [Append("chat", "window", (system,))])
    for _ in range(5):
        sent, (length,) = _statements(
            backend, [Append("chat", "window", (message,), 3, None, '{"role":"system"}')]
        )
        assert len(sent) == len(set_sent)
    assert length == 3
    assert mem.get("window") == [{"role": "system", "content": "be brief"},
                                 {"role": "user", "content": "hi"},
                                 {"role": "user", "content": "hi"}]  # fmt: skip
    stored = json.dumps(mem.get("window"), separators=(",", ":"))
    assert sql(url, "SELECT size FROM botwire_entries WHERE key = 'window'") == [(len(stored),)]
    backend.close()


def test_append_hands_back_what_it_leaves_to_the_shared_steps(url: str) -> None:
    """A list written by set becomes items with their exact text, and a first item holding
    NUL (which jsonb refuses) is still tested against keep_first: both through the shared
    steps, in the same batch."""
    backend = PostgresBackend(url)
    mem = Memory("chat", backend=backend)
    mem.set("log", [{"b": 1, "a": "x"}, {"z": 1.5}])
    assert mem.append("log", {"c": 2}) == 3
    assert sql(url, "SELECT value FROM botwire_list_items ORDER BY seq") == [
        ('{"b":1,"a":"x"}',),
        ('{"z":1.5}',),
        ('{"c":2}',),
    ]
    mem.append("nul", {"role": "system", "content": "a\x00b"})
    for i in range(3):
        mem.append("nul", {"i": i}, max_len=2, keep_first={"role": "system"})
    assert mem.get("nul") == [{"role": "system", "content": "a\x00b"}, {"i": 2}]
    backend.close()
