"""What a search reveals and costs: never anything of a namespace it cannot read, work bounded
by its own namespace's data, bad filters refused alike on every store, and values read only as
far as the server's response budget allows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from botwire import InvalidRequest, Memory, ValueTooLarge
from botwire.backends.search import MAX_INDEXED_WORDS
from botwire.backends.sqlite import SQLiteBackend

from .conftest import Store, empty_postgres
from .helpers import Server


def _scores(mem: Memory, query: str, **options: Any) -> dict[str, float]:
    return {hit.key: hit.score for hit in mem.search(query, **options)}


def test_a_search_ranks_by_its_own_namespace_only(store: Store) -> None:
    """Another tenant's data changes neither the hits nor their scores."""
    mine = store.memory("user-1")
    mine.set_many({"pet": "I have a quokka named Bob", "food": "I like pasta with basil",
                   "trip": "The quokka lives on Rottnest island"})  # fmt: skip
    before = {(q, m): _scores(mine, q, match=m) for q in ("quokka", "quokka pasta island")
              for m in ("all", "any")}  # fmt: skip
    other = store.memory("user-10")
    other.set_many({f"k{n}": f"quokka quokka facts number {n}" for n in range(200)})
    other.append("chat", *({"text": f"a quokka story {n}"} for n in range(50)))
    after = {(q, m): _scores(mine, q, match=m) for q in ("quokka", "quokka pasta island")
             for m in ("all", "any")}  # fmt: skip
    assert after == before
    assert before[("quokka", "all")]
    assert all(score > 0.1 for score in before[("quokka", "all")].values())


def test_a_search_across_namespaces_ranks_by_those_it_covers(store: Store) -> None:
    for ns in ("team:a", "team:b"):
        store.memory(ns).set("fact", f"{ns} keeps a quokka")
    before = {(h.namespace, h.key): h.score for h in _cross(store, "quokka", "team:")}
    store.memory("tenant-x").set_many({f"k{n}": "quokka" for n in range(100)})
    after = {(h.namespace, h.key): h.score for h in _cross(store, "quokka", "team:")}
    assert after == before and set(before) == {("team:a", "fact"), ("team:b", "fact")}


def _cross(store: Store, query: str, prefix: str) -> list[Any]:
    from botwire.backends.base import Search
    from botwire.backends.search import hits

    (found,) = store.backend.execute([Search(None, query, ns_prefix=prefix)])
    return hits(found)


def test_a_search_costs_the_same_whatever_other_namespaces_hold(tmp_path: Path) -> None:
    """Work counted in SQLite's virtual machine steps: a search in ``user-1`` does as much
    work after ``user-10`` stored 3,000 documents with the same word as before."""
    backend = SQLiteBackend(tmp_path / "cost.db")
    mine = Memory("user-1", backend=backend)
    mine.set_many({f"k{n}": f"quokka note {n}" for n in range(20)})

    def steps(query: str) -> int:
        mine.search(query)  # the index is caught up before counting
        count = 0

        def step() -> int:
            nonlocal count
            count += 1
            return 0

        conn = backend._connection()
        conn.set_progress_handler(step, 10)
        try:
            mine.search(query, match="any")
        finally:
            conn.set_progress_handler(None, 10)
        return count

    before = {q: steps(q) for q in ("quokka", "quokka note", "quok")}
    others = Memory("user-10", backend=backend)
    for start in range(0, 3000, 500):
        others.set_many({f"k{n}": f"quokka note {n}" for n in range(start, start + 500)})
    after = {q: steps(q) for q in ("quokka", "quokka note", "quok")}
    for query, work in after.items():
        assert work <= before[query] * 1.5 + 20, (query, before, after)
    backend.close()


# -- filters: bad ones are refused alike, big good ones work ------------------------------------


@pytest.mark.parametrize(
    ("where", "says"),
    [
        ({"x": {"$in": ["s"] * 1001}}, "up to 1000 values"),
        ({f"f{n}": 1 for n in range(65)}, "at most 64 conditions"),
        ({"a\x00b": 1}, "not a field name"),
        ({"a\nb": 1}, "not a field name"),
        ({"x" * 300: 1}, "not a field name"),
    ],
)
def test_a_filter_beyond_the_limits_is_bad_input_on_every_store(
    store: Store, where: dict[str, Any], says: str
) -> None:
    mem = store.memory("filters")
    mem.set("k", {"x": "s", "a": 1})
    with pytest.raises(InvalidRequest, match=says):
        mem.search("k", where=where)
    with pytest.raises(InvalidRequest, match=says):
        mem.search("", where=where)


def test_big_filters_within_the_limits_work_on_every_store(store: Store) -> None:
    mem = store.memory("filters")
    mem.set_many({"a": {"x": "s", "n": 5, "b": True}, "b": {"x": "t", "n": 6, "b": None}})
    values: list[Any] = [f"v{n}" for n in range(997)] + ["s", 6, None]
    assert {h.key for h in mem.search("", where={"x": {"$in": values}})} == {"a"}
    assert {h.key for h in mem.search("", where={"n": {"$in": values}})} == {"b"}
    assert {h.key for h in mem.search("", where={"b": {"$in": values}})} == {"b"}
    wide = {f"f{n}": {"$ne": n} for n in range(63)} | {"x": "s"}
    assert [h.key for h in mem.search("", where=wide)] == ["a"]


def test_a_value_of_many_distinct_words_is_stored_and_indexed_in_part(store: Store) -> None:
    """0.9 MB of distinct words: stored on every store (PostgreSQL once refused it as too long
    for a tsvector); its first words are found, and the words past the indexed part are not."""
    text = " ".join(f"w{n:06d}x" for n in range(100_000))[:900_000]
    mem = store.memory("many-words")
    mem.set("essay", text)
    assert mem.get("essay") == text
    assert [h.key for h in mem.search("w000001x")] == ["essay"]
    assert [h.key for h in mem.search(f"w{MAX_INDEXED_WORDS - 2:06d}x")] == ["essay"]
    assert mem.search(f"w{MAX_INDEXED_WORDS + 10:06d}x") == []
    mem.append("log", text[:500_000])
    assert {h.key for h in mem.search("w000002x")} == {"essay", "log"}


# -- the response budget holds while a search reads ---------------------------------------------


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_a_search_over_huge_values_is_refused_before_they_are_read(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if engine == "postgres":
        db = request.getfixturevalue("pg_url")
        empty_postgres(db)
    else:
        db = f"sqlite:///{tmp_path / 'huge.db'}"
    big = "needle " + "x" * (1024 * 1024 - 200)
    filler = Memory("huge", db)
    for n in range(0, 120, 10):
        filler.set_many({f"k{m}": f"{big} {m}" for m in range(n, n + 10)})
    filler.append("log", *(big for _ in range(4)))
    with Server(db) as server:
        assert server.proc is not None
        httpx.get(server.url + "/v1/search", params={"ns": "huge", "q": "needle"})  # warm up
        before = _rss(server.proc.pid)
        answer = httpx.get(
            server.url + "/v1/search",
            params={"ns": "huge", "q": "needle", "limit": 1000},
            timeout=60,
        )
        grown = _rss(server.proc.pid) - before
        assert answer.status_code == 413, answer.text
        assert "max_response_bytes" in answer.json()["detail"]
        assert grown < 48 * 1024 * 1024, f"the server grew by {grown / 2**20:.0f} MiB"
        with pytest.raises(ValueTooLarge):
            Memory("huge", server.url).search("needle", limit=20)
        three = httpx.get(
            server.url + "/v1/search",
            params={"ns": "huge", "q": "needle", "limit": 3, "prefix": "k"},
        )
        assert three.status_code == 200, three.text
        assert len(three.json()["hits"]) == 3
