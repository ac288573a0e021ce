"""The stores LangGraph's own tests open, as BotWireStores: the only part of these tests that is
not LangGraph's.

- ``InMemoryStore(...)`` is a BotWireStore on a SQLite file of its own.
- ``SqliteStore.from_conn_string(...)`` and ``AsyncSqliteStore.from_conn_string(...)``: a
  file path is a BotWireStore on botwire's SQLite file at that path; ``":memory:"`` is one on
  the test PostgreSQL database (with a namespace prefix of its own), so that the tests run on
  both engines.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from langgraph.store.base import IndexConfig, TTLConfig

from botwire.langgraph import BotWireStore

POSTGRES: list[str] = []
"""The test PostgreSQL URL, set by the package's conftest."""


def _url(conn_string: str) -> str:
    if conn_string != ":memory:":
        return f"sqlite:///{conn_string}"
    if not POSTGRES:
        raise RuntimeError("the PostgreSQL of the tests is not set up")
    return POSTGRES[0]


def _prefix() -> str:
    return f"lg{uuid.uuid4().hex[:12]}"


class InMemoryStore(BotWireStore):
    """A BotWireStore where LangGraph's tests build an ``InMemoryStore``."""

    def __init__(self, *, index: IndexConfig | None = None, ttl: TTLConfig | None = None) -> None:
        path = tempfile.mkdtemp(prefix="botwire-lg-") + "/store.db"
        super().__init__(f"sqlite:///{path}", namespace_prefix=_prefix(), index=index, ttl=ttl)


class SqliteStore(BotWireStore):
    """A BotWireStore where LangGraph's tests open a ``SqliteStore``."""

    @classmethod
    @contextmanager
    def from_conn_string(
        cls, conn_string: str, *, index: Any = None, ttl: TTLConfig | None = None
    ) -> Iterator[SqliteStore]:
        store = cls(_url(conn_string), namespace_prefix=_prefix(), index=index, ttl=ttl)
        try:
            yield store
        finally:
            store.close()


class AsyncSqliteStore(BotWireStore):
    """A BotWireStore where LangGraph's tests open an ``AsyncSqliteStore``."""

    @classmethod
    @asynccontextmanager
    async def from_conn_string(
        cls, conn_string: str, *, index: Any = None, ttl: TTLConfig | None = None
    ) -> AsyncIterator[AsyncSqliteStore]:
        store = cls(_url(conn_string), namespace_prefix=_prefix(), index=index, ttl=ttl)
        try:
            yield store
        finally:
            store.close()

    async def setup(self) -> None:  # type: ignore[override]
        await self.asetup()
