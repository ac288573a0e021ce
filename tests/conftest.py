"""Fixtures: one ``store`` per backend, so the contract suite runs unchanged on each."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from botwire import AsyncMemory, Memory
from botwire.backends.base import Backend, Clear, ListNamespaces
from botwire.backends.http import HTTPBackend
from botwire.backends.postgres import PostgresBackend
from botwire.backends.sqlite import SQLiteBackend

from .helpers import Server


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Store:
    """A backend under test, with the means to make memories on it and to move its time."""

    def __init__(self, name: str, backend: Backend, clock: FakeClock | None = None) -> None:
        self.name = name
        self.backend = backend
        self.clock = clock

    def memory(self, namespace: str = "test", **kwargs: Any) -> Memory:
        return Memory(namespace, backend=self.backend, **kwargs)

    def amemory(self, namespace: str = "test", **kwargs: Any) -> AsyncMemory:
        return AsyncMemory(namespace, backend=self.backend, **kwargs)

    def advance(self, seconds: float) -> None:
        """Move the store's time: a fake clock where the backend has one, else real sleep."""
        if self.clock is not None:
            self.clock.advance(seconds)
        else:
            time.sleep(seconds)


def _sqlite_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    clock = FakeClock()
    backend = SQLiteBackend(tmp_path / "memory.db", clock=clock)
    yield Store("sqlite", backend, clock)
    backend.close()


@pytest.fixture(scope="session")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One ``botwire serve`` subprocess on SQLite for the whole run."""
    db = tmp_path_factory.mktemp("server") / "server.db"
    with Server(f"sqlite:///{db}") as server:
        yield server


def _http_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    server: Server = request.getfixturevalue("http_server")
    backend = HTTPBackend(server.url)
    (names,) = backend.execute([ListNamespaces("")])
    backend.execute([Clear(ns) for ns in names])  # each test starts from an empty store
    yield Store("http", backend)
    backend.close()


PG_URL = os.environ.get("BOTWIRE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A schema of its own on the test PostgreSQL server, dropped after the run.

    Where no server answers, PostgreSQL tests skip, unless ``BOTWIRE_REQUIRE_POSTGRES=1``
    (as in CI), where they fail.
    """
    import psycopg

    try:
        psycopg.connect(PG_URL, connect_timeout=3, autocommit=True).close()
    except psycopg.OperationalError as exc:
        message = (
            f"no PostgreSQL answers at {PG_URL} ({exc}); start one or point "
            "BOTWIRE_TEST_POSTGRES_URL at one (database, user with CREATE rights)"
        )
        if os.environ.get("BOTWIRE_REQUIRE_POSTGRES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    schema = f"botwire_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    url = f"{PG_URL}{'&' if '?' in PG_URL else '?'}schema={schema}"
    PostgresBackend(url).migrate()
    yield url
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def store_url(engine: str, folder: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A new, empty store: a SQLite file in ``folder`` or a PostgreSQL schema of its own."""
    if engine == "sqlite":
        yield f"sqlite:///{folder / 'store.db'}"
        return
    import psycopg

    request.getfixturevalue("pg_url")  # skips (or fails in CI) where no PostgreSQL answers
    schema = f"botwire_store_{uuid.uuid4().hex[:8]}"
    yield f"{PG_URL}{'&' if '?' in PG_URL else '?'}schema={schema}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def empty_postgres(url: str) -> None:
    """Remove every key (and quota count) from the test schema."""
    import psycopg

    from botwire.backends.postgres import parse_url

    conninfo, schema, *_ = parse_url(url)
    with psycopg.connect(conninfo, autocommit=True, options=f"-c search_path={schema}") as conn:
        conn.execute("TRUNCATE botwire_entries, botwire_list_items, botwire_quota_usage")


def _postgres_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = request.getfixturevalue("pg_url")
    empty_postgres(url)
    clock = FakeClock()
    backend = PostgresBackend(url, clock=clock)
    yield Store("postgres", backend, clock)
    backend.close()


STORES = {"sqlite": _sqlite_store, "http": _http_store, "postgres": _postgres_store}


@pytest.fixture(params=sorted(STORES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Every backend in turn."""
    yield from STORES[request.param](request, tmp_path)


@pytest.fixture(params=["http", "postgres", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store that many processes can share, by URL: a SQLite file, a server of its own in
    front of one, or the test PostgreSQL schema (emptied)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shared.db'}"
    elif request.param == "postgres":
        pg_url = request.getfixturevalue("pg_url")
        empty_postgres(pg_url)
        yield pg_url
    else:
        with Server(f"sqlite:///{tmp_path / 'served.db'}") as server:
            yield server.url


@pytest.fixture
def mem(store: Store) -> Memory:
    return store.memory()
