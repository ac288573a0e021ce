"""LangGraph's own store tests (``libs/checkpoint/tests/test_store.py`` and
``libs/checkpoint-sqlite/tests/test_store.py``, ``test_async_store.py`` of
langchain-ai/langgraph at f09cfe8ff, MIT licensed: see ``LICENSE``), run on BotWireStore. The
files are LangGraph's, but for the lines that open their stores (see ``stores.py``).

The tests listed in :data:`LEFT_OUT` do not run, each for the reason given: they test another
store's own code, not behaviour a LangGraph store has.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from . import stores

SQLITE_INTERNALS = "reads SqliteStore's own tables or migrations, which BotWireStore does not have"
LEFT_OUT = {
    "test_sqlite_store.py::test_vector_store_initialization": SQLITE_INTERNALS,
    "test_sqlite_store.py::test_nonnull_migrations": SQLITE_INTERNALS,
    "test_sqlite_async_store.py::test_no_running_loop": (
        "expects AsyncSqliteStore's refusal of sync calls on its event loop's thread; "
        "BotWireStore is one class whose sync methods work on any thread (they never wait "
        "on the loop)"
    ),
    "test_sqlite_store.py::test_sql_injection_vulnerability": (
        "expects SqliteStore's refusal of a filter key it cannot write into its SQL; "
        "BotWireStore takes any key, as InMemoryStore does (such a key is compared in "
        "Python, never written into SQL): the filter finds nothing"
    ),
    "test_sqlite_store.py::test_filter_keys_with_hyphens_and_digits": (
        'reads a dotted filter key ("user.access-level") as a path into nested values, as '
        "SqliteStore alone does; InMemoryStore and PostgresStore, and BotWireStore, read it "
        'as one key, and filter nested values with nested dicts ({"user": {"access-level": '
        '...}}). Hyphens and leading digits work (tests/test_langgraph_store.py)'
    ),
}


@pytest.fixture(autouse=True, scope="session")
def _postgres(pg_url: str) -> Iterator[None]:
    stores.POSTGRES[:] = [pg_url]
    yield


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        name = item.nodeid.split("langgraph_upstream/")[-1].split("[")[0]
        if name in LEFT_OUT:
            item.add_marker(pytest.mark.skip(reason=LEFT_OUT[name]))
