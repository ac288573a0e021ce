"""BotWireStore beside LangGraph's own InMemoryStore: the same operations on both give the same
results (where they differ, on purpose, the test says why), on every backend; then TTL, bad
input, and a fact found from another thread in another process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from langgraph.store.base import (
    BaseStore,
    GetOp,
    InvalidNamespaceError,
    ListNamespacesOp,
    MatchCondition,
    PutOp,
    SearchOp,
)
from langgraph.store.memory import InMemoryStore

from botwire import InvalidKey, InvalidRequest, InvalidValue, list_namespaces
from botwire.langgraph import BotWireStore

from .helpers import Server, run_python

# Every item under "users" has "age" and "stars": LangGraph's InMemoryStore raises TypeError
# when a comparison meets an item without the field (BotWireStore leaves such an item out).
ITEMS: list[tuple[tuple[str, ...], str, dict[str, Any]]] = [
    (("users", "1"), "prefs", {"units": "metric", "diet": "vegetarian", "age": 31, "stars": 1}),
    (("users", "1"), "trip", {"city": "Lisbon", "age": 0, "stars": 3, "tags": ["work", "sun"]}),
    (
        ("users", "10"),
        "prefs",
        {"units": "imperial", "age": 45, "stars": 0, "home": {"city": "Porto"}},
    ),
    (("users", "1", "notes"), "n1", {"text": "likes green tea", "age": 2, "stars": 4}),
    (("users", "1", "notes"), "n2", {"text": "hates coffee", "age": 5, "stars": "2"}),
    (("teams", "a/b%c"), "doc", {"text": "odd labels round-trip", "stars": 5}),
    (("teams", "ünï", "x y"), "doc", {"text": "unicode labels", "stars": None}),
]


def both(url: str) -> list[BaseStore]:
    store: BaseStore
    stores: list[BaseStore] = []
    for store in (BotWireStore(url), InMemoryStore()):
        for namespace, key, value in ITEMS:
            store.put(namespace, key, value)
        stores.append(store)
    return stores


def keys(items: list[Any]) -> list[tuple[tuple[str, ...], str]]:
    return [(tuple(item.namespace), item.key) for item in items]


SEARCHES: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("users",), {}),
    (("users", "1"), {}),  # never ("users", "10")
    ((), {}),
    (("users",), {"filter": {"units": "metric"}}),
    (("users",), {"filter": {"age": {"$gt": 40}}}),
    (("users",), {"filter": {"age": {"$gte": 31, "$lt": 45}}}),
    (("users",), {"filter": {"stars": {"$gte": 2}}}),  # "2" counts as 2, as LangGraph reads it
    (("users",), {"filter": {"stars": {"$ne": 4}}}),
    (("users",), {"filter": {"home": {"city": "Porto"}}}),  # nested
    (("users",), {"filter": {"tags": ["work", "sun"]}}),  # lists
    (("users",), {"filter": {"tags": ["sun", "work"]}}),
    (("teams",), {"filter": {"stars": None}}),
    (("users",), {"filter": {"nothing": 1}}),
    (("nobody",), {}),
    (("users",), {"limit": 2}),
    (("users",), {"limit": 2, "offset": 2}),
    (("users",), {"offset": 10}),
]


@pytest.mark.parametrize(("prefix", "kwargs"), SEARCHES, ids=[repr(s) for s in SEARCHES])
def test_search_finds_what_in_memory_store_finds(
    url: str, prefix: tuple[str, ...], kwargs: dict[str, Any]
) -> None:
    ours, theirs = both(url)
    if "limit" in kwargs or "offset" in kwargs:
        # a page of the same listing: InMemoryStore pages in insertion order, BotWireStore
        # newest first (as LangGraph's SQL stores), so compare the page sizes and that pages
        # never overlap
        everything = keys(ours.search(prefix, limit=100))
        page = keys(ours.search(prefix, **kwargs))
        assert len(page) == len(keys(theirs.search(prefix, **kwargs)))
        start = kwargs.get("offset", 0)
        assert page == everything[start : start + kwargs.get("limit", 10)]
        return
    found = ours.search(prefix, limit=100, **kwargs)
    assert sorted(keys(found)) == sorted(keys(theirs.search(prefix, limit=100, **kwargs)))
    assert keys(found) == sorted(keys(found), key=lambda k: -_updated(ours, k))
    for item in found:  # values round-trip exactly
        original = next(v for n, k, v in ITEMS if (n, k) == (item.namespace, item.key))
        assert item.value == original


def _updated(store: BaseStore, key: tuple[tuple[str, ...], str]) -> float:
    item = store.get(*key)
    assert item is not None
    return item.updated_at.timestamp()


# Every kind of value a field may hold, beside what LangGraph's filters compare it with.
VALUES: list[Any] = [0, 1, 1.0, 2, 2.5, -1, True, False, "2", "abc", "", " 7 ", None, [1, 2],
                     {"x": 1}, 10**20]  # fmt: skip
OPERANDS: list[Any] = [0, 1, 2, 1.0, 2.5, True, False, "2", "abc", None, 10**20]
FILTERS: list[dict[str, Any]] = (
    [{"f": v} for v in [*OPERANDS, [1, 2], [1, True]]]
    + [{"f": {"$eq": v}} for v in [*OPERANDS, {"x": 1}]]
    + [{"f": {"$ne": v}} for v in [*OPERANDS, [1, 2]]]
    + [{"f": {op: v}} for op in ("$gt", "$gte", "$lt", "$lte") for v in (0, 1, 2, "2", 1.5, True)]
    + [{"f": {"$gte": 0, "$lt": 2}}, {"f": {"$gt": 0, "$ne": 2}}, {"f": {"x": 1}},
       {"deep": {"f": 1}}, {"deep": {"f": {"$gt": 0}}}, {"f": 1, "deep": {"f": "abc"}},
       {"f": {"$lte": float("inf")}}, {"f": {"$gt": float("nan")}}]
)  # fmt: skip


def test_every_filter_finds_what_langgraph_filters_find(url: str) -> None:
    """Each LangGraph filter on a field holding each kind of value (or none), on every
    backend: what BotWireStore finds (filtered in SQL first) is what LangGraph's filter
    semantics keep (those of InMemoryStore, which it matches wherever that store answers:
    it raises where ``float()`` fails on a stored value)."""
    from langgraph.store.memory import _compare_values

    ours = BotWireStore(url)
    theirs = InMemoryStore()
    values = {f"k{n}": {"f": v, "deep": {"f": v}} for n, v in enumerate(VALUES)}
    values["missing"] = {"other": 1}
    for key, value in values.items():
        ours.put(("f",), key, value)
        theirs.put(("f",), key, value)
    for where in FILTERS:
        found = sorted(item.key for item in ours.search(("f",), filter=where, limit=100))
        want = sorted(
            k
            for k, v in values.items()
            if all(_kept(_compare_values, v.get(f), w) for f, w in where.items())
        )
        assert found == want, where
        with contextlib.suppress(TypeError, ValueError):  # where float() fails, it raises
            assert found == sorted(i.key for i in theirs.search(("f",), filter=where, limit=100))


def _kept(compare: Any, value: Any, wanted: Any) -> bool:
    try:
        return bool(compare(value, wanted))
    except (TypeError, ValueError):
        return False


def test_any_filter_key_filters(url: str) -> None:
    """Keys with hyphens, leading digits, quotes, dots or what SQL would read as code are keys
    like any other (as in InMemoryStore): a dotted key is one key, not a path."""
    store = BotWireStore(url)
    odd = ["access-level", "123abc", 'say "hi"', "a.b", "it's", "x') OR 1=1 --", "$dollar"]
    for number, key in enumerate(odd):
        store.put(("odd",), f"k{number}", {key: "yes", "n": number})
    store.put(("odd",), "nested", {"a": {"b": "yes"}})
    for number, key in enumerate(odd):
        assert [i.key for i in store.search(("odd",), filter={key: "yes"})] == [f"k{number}"]
        assert len(store.search(("odd",), filter={key: {"$ne": "yes"}})) == len(odd)
    assert [i.key for i in store.search(("odd",), filter={"a": {"b": "yes"}})] == ["nested"]


def test_a_filter_pages_through_many_items_in_the_store(url: str) -> None:
    store = BotWireStore(url)
    store.batch([PutOp(("p", str(n % 7)), f"k{n}", {"n": n, "s": str(n)}) for n in range(600)])
    everything = store.search(("p",), filter={"n": {"$gte": 590}}, limit=100)
    assert sorted(item.value["n"] for item in everything) == list(range(590, 600))
    page = store.search(("p",), filter={"n": {"$gte": 590}}, limit=5, offset=3)
    assert keys(page) == keys(everything[3:8])
    assert len(store.search(("p",), filter={"s": {"$lt": 10}}, limit=100)) == 10  # "3" is 3
    assert len(store.search(("p",), filter={"n": {"$ne": 5}}, limit=1000)) == 599
    # a filter the store cannot narrow (a list): every item read, decided in Python
    assert len(store.search(("p",), filter={"n": [1]}, limit=1000)) == 0


def test_get_put_delete_and_a_batch_see_the_same(url: str) -> None:
    ours, theirs = both(url)
    for store in (ours, theirs):
        store.put(("users", "1"), "prefs", {"units": "imperial"})  # overwrites
        store.delete(("users", "10"), "prefs")
        store.delete(("users", "10"), "never-there")
    for namespace, key, _ in ITEMS:
        a, b = ours.get(namespace, key), theirs.get(namespace, key)
        assert (a is None) == (b is None)
        if a is not None and b is not None:
            assert (a.value, a.key, a.namespace) == (b.value, b.key, b.namespace)
            assert a.created_at <= a.updated_at
    ops = [
        GetOp(("users", "1"), "prefs"),
        PutOp(("users", "1"), "prefs", {"units": "kelvin"}),
        GetOp(("users", "1"), "prefs"),  # reads see the store before the batch's writes
        PutOp(("users", "2"), "k", {"v": 1}),
        PutOp(("users", "2"), "k", {"v": 2}),  # the last put of a key wins
        SearchOp(("users", "2")),
        ListNamespacesOp(match_conditions=(MatchCondition("prefix", ("users",)),)),
    ]
    mine, reference = ours.batch(ops), theirs.batch(ops)
    values = [[getattr(result, "value", result) for result in found[:3]]
              for found in (mine, reference)]  # fmt: skip
    assert values[0] == values[1]
    assert mine[5] == reference[5] == []
    assert mine[6] == [("users", "1"), ("users", "1", "notes")]
    assert ours.get(("users", "2"), "k").value == theirs.get(("users", "2"), "k").value == {"v": 2}  # type: ignore[union-attr]


def test_list_namespaces_matches_in_memory_store(url: str) -> None:
    ours, theirs = both(url)
    for kwargs in [
        {}, {"prefix": ("users",)}, {"prefix": ("users", "1")}, {"suffix": ("notes",)},
        {"prefix": ("users", "*")}, {"suffix": ("*", "x y")}, {"max_depth": 1},
        {"max_depth": 2, "prefix": ("users",)}, {"limit": 2, "offset": 1}, {"prefix": ("no",)},
    ]:  # fmt: skip
        assert ours.list_namespaces(**kwargs) == theirs.list_namespaces(**kwargs), kwargs
    ours.delete(("users", "10"), "prefs")
    # a namespace without items is gone; InMemoryStore keeps listing it (an empty dict)
    assert ("users", "10") not in ours.list_namespaces()


def test_a_text_query_ranks_by_full_text_search_and_lists_every_item(url: str) -> None:
    """Without an index, InMemoryStore ignores a query and lists every item; BotWireStore lists
    the same items, those that share words with the query first (more telling words first,
    with a score), then the others (newest first, without one)."""
    ours, theirs = both(url)
    found = ours.search(("users",), query="What does the user think of green tea?")
    assert keys(found)[0] == (("users", "1", "notes"), "n1")
    assert found[0].score is not None and found[0].score > 0
    assert [item.score for item in found[1:]] == [None] * 4
    assert sorted(keys(found)) == sorted(keys(theirs.search(("users",), query="green tea")))
    words = ours.search((), query="green coffee", limit=10)
    assert sorted(keys(words[:2])) == [
        (("users", "1", "notes"), "n1"), (("users", "1", "notes"), "n2")
    ]  # fmt: skip
    assert len(words) == len(ITEMS)
    assert keys(ours.search((), query="green coffee", limit=3, offset=1))[0] in keys(words[1:2])
    filtered = ours.search(("users",), query="green coffee", filter={"stars": 4})
    assert keys(filtered) == [(("users", "1", "notes"), "n1")]
    nothing = ours.search(("users",), query="submarine", limit=2)  # a tool that always asks
    assert keys(nothing) == keys(ours.search(("users",), limit=2))


def test_an_index_ranks_by_embeddings_as_in_memory_store_does(url: str) -> None:
    embed = DeterministicFakeEmbedding(size=32)
    index = {"embed": embed, "dims": 32, "fields": ["text"]}
    ours = BotWireStore(url, index=index)  # type: ignore[arg-type]
    theirs = InMemoryStore(index=index)  # type: ignore[arg-type]
    for store in (ours, theirs):
        for number, text in enumerate(["apple pie", "green tea", "red wine", "tea cake"]):
            store.put(("docs",), f"d{number}", {"text": text, "n": number})
        store.put(("docs",), "plain", {"other": "no text field", "n": 9})
        store.put(("docs",), "skipped", {"text": "green tea", "n": 8}, index=False)
    for kwargs in [{"query": "green tea"}, {"query": "wine", "limit": 2},
                   {"query": "tea", "filter": {"n": {"$gte": 1}}}]:  # fmt: skip
        a = ours.search(("docs",), **kwargs)  # type: ignore[arg-type]
        b = theirs.search(("docs",), **kwargs)  # type: ignore[arg-type]
        assert [i.key for i in a] == [i.key for i in b], kwargs
        assert [i.score for i in a] == pytest.approx([i.score for i in b]), kwargs

    async def main() -> list[str]:
        return [item.key for item in await ours.asearch(("docs",), query="green tea")]

    assert asyncio.run(main())[0] == "d1"


def test_async_methods_match_the_sync_ones(url: str) -> None:
    ours, _ = both(url)

    async def main() -> None:
        item = await ours.aget(("users", "1"), "prefs")
        assert item is not None and item.value == ITEMS[0][2]
        await ours.aput(("users", "3"), "k", {"v": 3})
        assert [i.key for i in await ours.asearch(("users", "3"))] == ["k"]
        assert ("users", "3") in await ours.alist_namespaces(prefix=("users",))
        await ours.adelete(("users", "3"), "k")
        assert await ours.aget(("users", "3"), "k") is None

    asyncio.run(main())


def test_ttl_expires_items_and_reads_refresh_them(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ttl.db'}"
    store = BotWireStore(url, ttl={"default_ttl": 0.6 / 60, "refresh_on_read": True})
    store.put(("s",), "kept", {"v": 1})
    store.put(("s",), "left", {"v": 2})
    store.put(("s",), "forever", {"v": 3}, ttl=None)
    time.sleep(0.4)
    assert store.get(("s",), "kept") is not None  # restarts its expiry
    time.sleep(0.4)
    assert store.get(("s",), "left", refresh_ttl=False) is None
    assert store.get(("s",), "kept", refresh_ttl=False) is not None
    assert store.get(("s",), "forever") is not None
    time.sleep(0.7)
    assert keys(store.search(("s",))) == [(("s",), "forever")]


def test_bad_input_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bad.db'}"
    store = BotWireStore(url)
    with pytest.raises(InvalidNamespaceError):
        store.put(("a.b",), "k", {"v": 1})
    with pytest.raises(InvalidNamespaceError):
        store.put(("",), "k", {"v": 1})
    with pytest.raises(InvalidKey):
        store.batch([PutOp(("ok",), "k", {"v": 1}), PutOp(("ok",), "bad\x00key", {"v": 2})])
    with pytest.raises(InvalidValue):
        store.batch([PutOp(("ok",), "k", {"v": 1}), PutOp(("ok",), "k2", ["not", "a", "dict"])])  # type: ignore[arg-type]
    with pytest.raises(InvalidValue):
        store.put(("ok",), "k", {"v": {1, 2}})
    store.put(("ok",), "kept", {"v": 0})
    with pytest.raises(InvalidValue):  # checked before the batch's delete runs
        store.batch([PutOp(("ok",), "kept", None), PutOp(("other",), "k", {"v": {1, 2}})])
    assert store.get(("ok",), "kept") is not None
    store.delete(("ok",), "kept")
    with pytest.raises(InvalidRequest, match="minutes"):
        store.batch([PutOp(("ok",), "k", {"v": 1}, ttl=-1)])
    with pytest.raises(InvalidRequest, match="operator"):
        store.search(("ok",), filter={"v": {"$regex": "x"}})
    with pytest.raises(InvalidRequest, match="compares numbers"):
        store.search(("ok",), filter={"v": {"$gt": "abc"}})
    store.put(("ok",), "k", {"v": 1})
    assert store.search(("ok",), filter={"missing": {"$gt": 0}}) == []  # left out, no error
    store.delete(("ok",), "k")
    assert list_namespaces(url=url) == []


def test_a_fact_from_one_thread_is_found_from_another_process(url: str) -> None:
    """A graph's node puts a fact in the store on one thread; a graph in a second process, on
    another thread, finds it by searching."""
    from langchain_core.messages import HumanMessage

    from .langgraph_agent import graph_with_store, thread

    app = graph_with_store(url)
    app.invoke({"messages": [HumanMessage("remember: I am vegetarian")]}, thread("t1"))
    out = run_python(
        f"""
        import json
        from langchain_core.messages import HumanMessage
        from tests.langgraph_agent import graph_with_store, thread

        app = graph_with_store({url!r})
        state = app.invoke({{"messages": [HumanMessage("Am I vegetarian?")]}}, thread("t2"))
        print(json.dumps(state["messages"][-1].content))
        """
    )
    assert json.loads(out) == "You told me: I am vegetarian"


def test_many_processes_share_one_store_through_a_server(tmp_path: Path) -> None:
    from .helpers import run_many

    with Server(f"sqlite:///{tmp_path / 'served.db'}") as server:
        run_many(
            f"""
            import os
            from botwire.langgraph import BotWireStore
            store = BotWireStore({server.url!r})
            for n in range(20):
                store.put(("users", os.environ["WORKER"]), f"fact-{{n}}", {{"n": n}})
            """,
            4,
        )
        store = BotWireStore(server.url)
        assert store.list_namespaces(prefix=("users",)) == [("users", str(n)) for n in range(4)]
        assert len(store.search(("users",), limit=100)) == 80
