"""Many processes on one store: no update is lost, each process's items keep their order."""

from __future__ import annotations

import pytest

from botwire import Memory

from .helpers import run_many

PROCESSES = 8
EACH = 250


@pytest.mark.slow
def test_concurrent_appends_keep_every_item_in_order(url: str) -> None:
    run_many(
        f"""
        import os
        from botwire import Memory
        mem = Memory("chat", {url!r})
        worker = int(os.environ["WORKER"])
        for i in range({EACH}):
            mem.append("session", [worker, i])
        """,
        PROCESSES,
    )
    items = Memory("chat", url).get("session")
    assert len(items) == PROCESSES * EACH
    for worker in range(PROCESSES):
        assert [i for w, i in items if w == worker] == list(range(EACH))


@pytest.mark.slow
def test_concurrent_incr_and_update_lose_nothing(url: str) -> None:
    run_many(
        f"""
        from botwire import Memory
        mem = Memory("counters", {url!r})
        for i in range({EACH}):
            mem.incr("hits")
            mem.update("doc", lambda d: {{"n": d["n"] + 1}}, default={{"n": 0}})
        """,
        PROCESSES,
    )
    mem = Memory("counters", url)
    assert mem.get("hits") == PROCESSES * EACH
    assert mem.get("doc") == {"n": PROCESSES * EACH}
