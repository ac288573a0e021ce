"""Full-text search: one corpus, one table of cases, the same answers on every store."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from botwire import Hit, InvalidKey, InvalidRequest, Memory, search_namespaces
from botwire.backends.base import Expire, Put, Search
from botwire.backends.postgres import PostgresBackend
from botwire.backends.postgres.schema import MIGRATIONS as PG_MIGRATIONS
from botwire.backends.search import (
    COMMON_WORDS,
    MAX_COMMON_WORDS,
    MAX_INDEXED_WORDS,
    TAG_CHARS,
    coverage,
    document,
    document_words,
    fts_document,
    length_token,
    ns_tag,
    parse_query,
    tsvector,
    words,
)
from botwire.backends.sqlite import SQLiteBackend
from botwire.backends.sqlite.schema import SCHEMA_VERSION as SQLITE_SCHEMA

from .conftest import PG_URL, Store
from .helpers import Server, child_env, sqlite_store_at, start_python

CHAT = [
    {"role": "user", "content": "I fly to Lisbon on Tuesday"},
    {"role": "assistant", "content": "Have a nice flight to Lisbon"},
    {"role": "user", "content": "Book a hotel near the station"},
]
CORPUS: dict[str, Any] = {
    "greeting": "Hello World from Python",
    "prefs": {"lang": "en", "note": "Loves café crème", "stars": 5, "tags": ["coffee", "paris"]},
    "ru": "Привет, как дела?",
    "jp": "東京駅で会いましょう",
    "trip": {"city": "Lisbon", "when": "next Tuesday", "budget": 1200, "kind": "work"},
    "trip2": {"city": "Porto", "when": "in May", "budget": 800, "kind": "holiday"},
    "emoji": "party 🎉 time",
    "syntax": 'He said "AND" NEAR (the) door: -minus *star* OR',
    "numbers": {"n": 42, "flag": True, "none": None, "deep": {"at": {"n": 7, "city": "Faro"}}},
    "user:ann:notes": "Ann prefers window seats",
}


def fill(mem: Memory) -> None:
    for key, value in CORPUS.items():
        mem.set(key, value)
    mem.append("chat", *CHAT)


@pytest.fixture
def mem(store: Store) -> Memory:
    memory = store.memory("search")
    fill(memory)
    return memory


def found(hits: list[Hit]) -> dict[str, Any]:
    """Each hit's key, with the positions of its matching items for a list."""
    return {h.key: (None if h.items is None else sorted(i.position for i in h.items)) for h in hits}


CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    # words, case, prefixes
    ("python", {}, {"greeting": None}),
    ("pyth", {}, {"greeting": None}),
    ("HELLO world", {}, {"greeting": None}),
    ("hello moon", {}, {}),
    ("greeting", {}, {"greeting": None}),  # the key is text too
    # accents, scripts
    ("cafe creme", {}, {"prefs": None}),
    ("Café", {}, {"prefs": None}),
    ("привет", {}, {"ru": None}),
    ("ПРИВЕТ ДЕЛА", {}, {"ru": None}),
    ("東京", {}, {"jp": None}),
    ("京駅", {}, {"jp": None}),
    ("駅東", {}, {}),
    # list items, one by one
    ("lisbon", {}, {"trip": None, "chat": [0, 1]}),
    ("tuesday lisbon", {}, {"trip": None, "chat": [0]}),
    ("hotel", {}, {"chat": [2]}),
    ("user", {}, {"chat": [0, 2], "user:ann:notes": None}),
    # phrases
    ('"nice flight"', {}, {"chat": [1]}),
    ('"flight nice"', {}, {}),
    ('"window seats" ann', {}, {"user:ann:notes": None}),
    # what a user or a model may type
    ("AND", {}, {"syntax": None}),
    ("NEAR(", {}, {"syntax": None, "chat": [2]}),  # the last word is also a prefix
    ("-minus", {}, {"syntax": None}),
    ("*star*", {}, {"syntax": None}),
    ("door:", {}, {"syntax": None}),
    ('he said "and', {}, {"syntax": None}),
    ("OR", {}, {"syntax": None}),
    ('"', {}, {}),
    ("(", {}, {}),
    ("🎉", {}, {}),
    ("party 🎉", {}, {"emoji": None}),
    ("^~$%@!", {}, {}),
    # numbers and booleans are not text
    ("42", {}, {}),
    ("1200", {}, {}),
    ("true", {}, {}),
    # filters, with and without words
    ("lisbon", {"where": {"kind": "work"}}, {"trip": None}),
    ("lisbon", {"where": {"role": "user"}}, {"chat": [0]}),
    ("", {"where": {"budget": {"$gt": 1000}}}, {"trip": None}),
    ("", {"where": {"budget": {"$lte": 800}}}, {"trip2": None}),
    ("", {"where": {"budget": {"$gte": 800, "$lt": 1200}}}, {"trip2": None}),
    ("", {"where": {"kind": {"$in": ["holiday", "x"]}}}, {"trip2": None}),
    ("", {"where": {"kind": {"$ne": "work"}, "budget": {"$gte": 0}}}, {"trip2": None}),
    ("", {"where": {"stars": 5}}, {"prefs": None}),
    ("", {"where": {"stars": 5.0}}, {"prefs": None}),
    ("", {"where": {"flag": True}}, {"numbers": None}),
    ("", {"where": {"flag": 1}}, {}),
    ("", {"where": {"none": None}}, {"numbers": None}),
    ("", {"where": {"city": {"$gt": "M"}}}, {"trip2": None}),
    ("", {"where": {"role": "assistant"}}, {"chat": [1]}),
    # fields inside fields, and any of several filters
    ("", {"where": {"deep": {"at": {"n": 7}}}}, {"numbers": None}),
    ("", {"where": {"deep": {"at": {"n": {"$gt": 6}, "city": "Faro"}}}}, {"numbers": None}),
    ("", {"where": {"deep": {"at": {"n": {"$gt": 7}}}}}, {}),
    ("", {"where": {"deep": {"n": 7}}}, {}),
    ("", {"where": {"deep": {"at": {"city": {"$in": ["Faro", "Braga"]}}}}}, {"numbers": None}),
    ("", {"where": {"$or": [{"city": "Porto"}, {"stars": 5}]}}, {"trip2": None, "prefs": None}),
    (
        "",
        {"where": {"$or": [{"city": "Porto"}, {"n": {"$gt": 40}}], "kind": {"$ne": "holiday"}}},
        {"numbers": None},
    ),
    (
        "",
        {
            "where": {
                "$and": [
                    {"$or": [{"kind": "work"}, {"kind": "holiday"}]},
                    {"$or": [{"budget": {"$lt": 1000}}, {"city": "Lisbon"}]},
                ]
            }
        },
        {"trip": None, "trip2": None},
    ),
    (
        "lisbon",
        {"where": {"$or": [{"role": "user"}, {"kind": "work"}]}},
        {"trip": None, "chat": [0]},
    ),
    # key prefixes
    ("seats", {"prefix": "user:"}, {"user:ann:notes": None}),
    ("seats", {"prefix": "x"}, {}),
]


@pytest.mark.parametrize(("query", "kwargs", "want"), CASES, ids=[repr(c[:2]) for c in CASES])
def test_the_same_hits_on_every_store(mem: Memory, query: str, kwargs: Any, want: Any) -> None:
    hits = mem.search(query, **kwargs)
    assert found(hits) == want
    for hit in hits:
        assert hit.namespace == "search"
        if hit.items is None:
            assert hit.value == (CORPUS[hit.key])
        else:
            assert hit.value is None
            assert [i.value for i in hit.items] == [CHAT[i.position] for i in hit.items]
        if query.strip():
            assert hit.score > 0


def test_the_more_it_matches_the_higher_it_ranks(store: Store) -> None:
    mem = store.memory("rank")
    mem.set("once", "kiwi with a long tail of other words that dilute it quite a lot")
    mem.set("thrice", "kiwi kiwi kiwi")
    mem.set("none", "mango")
    assert [h.key for h in mem.search("kiwi")] == ["thrice", "once"]


ANY_CASES: list[tuple[str, dict[str, Any]]] = [
    ("lisbon porto", {"trip": None, "trip2": None, "chat": [0, 1]}),
    ("What is the plan for a hotel in Porto?", {"trip2": None, "chat": [2]}),  # not "the"
    ("what is the", {"syntax": None, "chat": [2]}),  # only common words: they are the query
    ('"nice flight" hotel', {"chat": [1, 2]}),
    ("zzz qqq", {}),
    ("", {k: None for k in CORPUS} | {"chat": [0, 1, 2]}),
]


@pytest.mark.parametrize(("query", "want"), ANY_CASES, ids=[c[0] for c in ANY_CASES])
def test_match_any_word(mem: Memory, query: str, want: dict[str, Any]) -> None:
    """What holds a telling word of the question comes first; after it, as a last resort,
    what holds only its common words (``for``, ``in``)."""
    hits = mem.search(query, match="any", limit=20)
    first = hits[: len(want)]
    assert {h.key: sorted(i.position for i in h.items[: len(want[h.key])]) if h.items else None
            for h in first} == want  # fmt: skip
    telling = {h.key for h in first}
    for hit in hits[len(want) :]:
        assert hit.key not in telling or hit.items
        assert all(hit.score < h.score or h.items for h in first) or query.strip() == ""


def test_match_any_ranks_keys_that_match_more_words_first(store: Store) -> None:
    mem = store.memory("any-rank")
    mem.set("both", "the user likes green tea in the morning")
    mem.set("one", "the user likes football")
    mem.set("other", "the office has a green door")
    mem.set("none", "what is it, then?")
    hits = mem.search("What does the user like: green tea?", match="any")
    assert hits[0].key == "both"
    assert {h.key for h in hits[:3]} == {"both", "one", "other"}
    assert [h.key for h in hits[3:]] == ["none"]  # its common words only: last
    assert [h.key for h in mem.search("green tea", match="all")] == ["both"]


def test_a_word_every_value_holds_counts_for_little(store: Store) -> None:
    mem = store.memory("widespread")
    mem.set("diet", "the user eats no meat")
    mem.set("pet", "the user has a cat named Miso")
    mem.set("job", "the user works as a nurse")
    hits = mem.search("What does the user eat?", match="any")
    assert [h.key for h in hits[:1]] == ["diet"]
    assert {h.key for h in hits[1:]} == {"pet", "job"}
    assert all(h.score < hits[0].score / 5 for h in hits[1:])


def test_hits_carry_when_their_key_was_written(store: Store) -> None:
    mem = store.memory("times")
    mem.set("k", "first words")
    store.advance(0.05)
    mem.set("k", "second words")
    (hit,) = mem.search("second")
    entry = mem.entry("k")
    assert entry is not None
    assert (hit.created_at, hit.updated_at) == (entry.created_at, entry.updated_at)
    assert hit.created_at is not None and hit.updated_at is not None
    assert hit.created_at < hit.updated_at


def test_an_empty_query_lists_newest_first(store: Store) -> None:
    mem = store.memory("newest")
    for n in range(5):
        store.advance(0.01)
        mem.set(f"k{n}", {"n": n})
    assert [h.key for h in mem.search("")] == ["k4", "k3", "k2", "k1", "k0"]
    assert [h.key for h in mem.search("", limit=2)] == ["k4", "k3"]
    assert [h.key for h in mem.search("", where={"n": {"$lt": 2}})] == ["k1", "k0"]


def test_limit_caps_keys_and_items(store: Store) -> None:
    mem = store.memory("limits")
    mem.append("log", *({"text": f"apple number {n}"} for n in range(30)))
    mem.set("single", "apple")
    (log,) = [h for h in mem.search("apple", limit=5) if h.key == "log"]
    assert log.items is not None and len(log.items) == 5
    assert len(mem.search("apple", limit=1)) == 1


def test_a_changed_value_is_found_by_its_new_words_only(store: Store) -> None:
    mem = store.memory("changes")
    mem.set("k", "the old words")
    assert found(mem.search("old")) == {"k": None}
    mem.set("k", "brand new text")
    assert mem.search("old") == [] and found(mem.search("brand")) == {"k": None}
    mem.update("k", lambda v: v + " updated")
    assert found(mem.search("updated")) == {"k": None}
    mem.set("k", ["as", "a list"])  # a set list is a value: one document
    assert found(mem.search("list")) == {"k": None}
    mem.append("k", "appended item")  # now items, one by one
    assert found(mem.search("appended")) == {"k": [2]} and found(mem.search("list")) == {"k": [1]}
    mem.append("k", "x", "y", "z", max_len=2)
    assert mem.search("appended") == [] and found(mem.search("z")) == {"k": [1]}
    mem.set("k", "plain again")
    assert mem.search("z") == [] and found(mem.search("plain")) == {"k": None}
    mem.incr("count")  # a number: the key only
    assert found(mem.search("count")) == {"count": None}


def test_deleted_cleared_and_expired_keys_are_not_found(store: Store) -> None:
    mem = store.memory("gone")
    mem.set_many({"a": "zebra one", "b": "zebra two"})
    mem.append("l", "zebra three")
    mem.set("short", "zebra brief", ttl=0.5)
    assert set(found(mem.search("zebra"))) == {"a", "b", "l", "short"}
    store.advance(0.8)
    assert set(found(mem.search("zebra"))) == {"a", "b", "l"}
    assert mem.delete("a")
    assert set(found(mem.search("zebra"))) == {"b", "l"}
    mem.expire("b", 0)
    assert set(found(mem.search("zebra"))) == {"l"}
    mem.clear()
    assert mem.search("zebra") == [] and mem.search("") == []


def test_a_new_key_in_the_place_of_a_deleted_one(store: Store) -> None:
    """SQLite gives a deleted row's id to the next new row: the index must tell them apart."""
    mem = store.memory("reuse")
    mem.set("old", "walrus")
    mem.append("list", "narwhal")
    mem.delete("list")
    mem.append("fresh", "octopus")  # may take the list's id, before the index caught up
    mem.delete("old")
    mem.set("new", "penguin")
    assert mem.search("walrus") == [] and mem.search("narwhal") == []
    assert found(mem.search("octopus")) == {"fresh": [0]}
    assert found(mem.search("penguin")) == {"new": None}


def test_what_is_written_unsearchable_is_never_found(store: Store) -> None:
    """``searchable=False`` keeps a value, or an append's items, out of the index (the list's
    other items keep theirs); a later searchable set of the key puts it back, and an
    unsearchable one takes its document out. Reads are unchanged."""
    mem = store.memory("unsearched")
    mem.set("hidden", "a walrus note", searchable=False)
    mem.set_many({"also": "walrus facts", "more": "walrus seen"}, searchable=False)
    mem.set("shown", "walrus shown")
    mem.append("chat", "walrus one", searchable=False)
    mem.append("chat", "walrus two")
    mem.append("chat", "walrus three", "walrus four", searchable=False)
    mem.incr("count")
    assert found(mem.search("walrus")) == {"shown": None, "chat": [1]}
    assert mem.get("hidden") == "a walrus note" and mem.get("also") == "walrus facts"
    assert mem.get("chat") == ["walrus one", "walrus two", "walrus three", "walrus four"]
    mem.set("hidden", "walrus back")
    mem.set("shown", "walrus shown", searchable=False)  # the same value, out of the index
    assert found(mem.search("walrus")) == {"hidden": None, "chat": [1]}
    assert mem.get("shown") == "walrus shown"
    # a value that an append turns into a list: its items keep its own flag
    mem.set("was-out", ["narwhal kept out"], searchable=False)
    mem.append("was-out", "narwhal added")
    mem.set("was-in", ["narwhal kept in"])
    mem.append("was-in", "narwhal added out", searchable=False)
    assert found(mem.search("narwhal kept")) == {"was-in": [0]}
    assert found(mem.search("narwhal added")) == {"was-out": [1]}
    # an empty query lists only what is in the index, with a filter too
    listed = found(mem.search("", limit=50))
    assert "also" not in listed and "shown" not in listed and listed["chat"] == [1]
    assert listed["was-out"] == [1] and listed["was-in"] == [0] and "hidden" in listed
    mem.set("city", {"city": "Paris"}, searchable=False)
    mem.append("cities", {"city": "Paris"}, searchable=False)
    assert mem.search("", where={"city": "Paris"}) == []

    async def unsearchable_async() -> None:
        amem = store.amemory("unsearched")
        await amem.set("async", "walrus async", searchable=False)
        await amem.set_many({"async2": "walrus async"}, searchable=False)
        await amem.append("chat", "walrus five", searchable=False)
        assert found(await amem.search("walrus")) == {"hidden": None, "chat": [1]}
        assert await amem.get("async") == "walrus async"

    asyncio.run(unsearchable_async())
    for bad in ("no", 0, None):
        with pytest.raises(InvalidRequest, match="searchable must be True or False"):
            mem.set("bad", "walrus", searchable=bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidRequest, match="searchable"):
            mem.set_many({"bad": "walrus"}, searchable=bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidRequest, match="searchable"):
            mem.append("bad", "walrus", searchable=bad)  # type: ignore[arg-type]
    assert not mem.has("bad")


@pytest.mark.parametrize("query", ["", "?history=off"])
def test_a_value_written_again_unsearchable_leaves_the_index(tmp_path: Path, query: str) -> None:
    """With the change log or without (its triggers note the document then), the same value
    written again out of the index leaves it, by a set or a conditional set; a restore writes
    it searchable."""
    mem = Memory("again", f"sqlite:///{tmp_path / 'again.db'}{query}")
    first = mem.set("k", "walrus")
    assert found(mem.search("walrus")) == {"k": None}
    mem.set("k", "walrus", searchable=False)
    assert mem.search("walrus") == []
    current = mem.set("k", "walrus")
    assert found(mem.search("walrus")) == {"k": None}
    mem.set("k", "walrus", if_version=current, searchable=False)
    assert mem.search("walrus") == [] and mem.get("k") == "walrus"
    if not query:  # a restore reads the log
        mem.restore("k", version=first)
        assert found(mem.search("walrus")) == {"k": None}


def test_namespaces_are_apart_and_can_be_searched_together(store: Store) -> None:
    for user in ("user:1", "user:2", "user:10", "users"):
        store.memory(user).set("note", f"meeting notes of {user}")
    assert found(store.memory("user:1").search("meeting")) == {"note": None}
    if store.name == "http":
        url = store.backend.url  # a real server, through botwire.search_namespaces
        hits = search_namespaces("meeting", "user:", url=url)
    else:
        from botwire.backends.search import hits as decode
        from botwire.backends.search import search_op

        across = search_op(None, "meeting", None, None, 10)._replace(ns_prefix="user:")
        (raw,) = store.backend.execute([across])
        hits = decode(raw)
    assert sorted(h.namespace for h in hits) == ["user:1", "user:10", "user:2"]


async def test_async_search(store: Store) -> None:
    mem = store.amemory("async-search")
    await mem.append("chat", *CHAT)
    hits = await mem.search("lisbon", where={"role": "assistant"})
    assert found(hits) == {"chat": [1]}


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"query": 5}, "query"),
        ({"query": "x" * 1001}, "query"),
        ({"query": "x", "limit": 0}, "limit"),
        ({"query": "x", "limit": 1001}, "limit"),
        ({"query": "x", "where": ["role"]}, "where"),
        ({"query": "x", "where": {"a": {"$regex": "x"}}}, "operator"),
        ({"query": "x", "where": {"a": {"$in": []}}}, "\\$in"),
        ({"query": "x", "where": {"a": float("nan")}}, "where"),
        ({"query": "x", "where": {"a": [1]}}, "where"),
        ({"query": "x", "where": {'a"b': 1}}, "field name"),
        ({"query": "x", "where": {"a": {'b"c': 1}}}, "field name"),
        ({"query": "x", "where": {"$or": []}}, "non-empty list"),
        ({"query": "x", "where": {"$or": {"a": 1}}}, "non-empty list"),
        ({"query": "x", "where": {"$nor": [{"a": 1}]}}, "unknown operator"),
        ({"query": "x", "where": {"a": {"$gt": 1, "b": 2}}}, "mixes operators and fields"),
        ({"query": "x", "where": {"a": {"b": {"$or": [{"c": 1}]}}}}, "unknown operator"),
        ({"query": "x", "where": {"a": {"b": {}}}}, "empty condition"),
        (
            {"query": "x", "where": functools.reduce(lambda w, _: {"a": w}, range(10), {"b": 1})},
            "8 levels",
        ),
        ({"query": "x", "where": {"$or": [{f"f{n}": n} for n in range(65)]}}, "64 conditions"),
        ({"query": "x", "prefix": "a\x00"}, "control"),
        ({"query": "x", "match": "some"}, "match"),
        ({"query": "x", "match": None}, "match"),
    ],
)
def test_bad_searches_are_refused(mem: Memory, kwargs: dict[str, Any], problem: str) -> None:
    with pytest.raises((InvalidRequest, InvalidKey), match=problem):
        mem.search(**kwargs)


# -- the parts every engine shares --------------------------------------------------------------


def test_words_and_documents() -> None:
    assert words("Héllo, WORLD! ﬁne café-crème 🎉 v2") == [
        "hello", "world", "fine", "cafe", "creme", "v2"]  # fmt: skip
    assert words("東京駅で") == ["東", "京", "駅", "で"]
    assert words("snake_case") == ["snake", "case"]
    assert document("user:1", '{"a": "Hi", "n": 5, "l": ["x", {"b": "Yo"}], "t": true}') == (
        "user 1 hi x yo"
    )
    blob = "QmFzZTY0" * 20  # 160 characters with no space: data, not text
    assert document("k", json.dumps({"data": blob, "note": "hi"})) == "k hi"
    assert document("k", json.dumps(blob)) == "k"
    assert document("k", json.dumps("a b " + blob)) == "k a b"  # a 160-letter word: not a word
    say = parse_query('say "new york" pi')
    assert say.fts5_groups(["t1"]) == ['"t1say"', '"t1new t1york"', '"t1pi"*']
    assert say.tsquery_groups(["t1", "t2"]) == [
        "('t1say') | ('t2say')", "('t1new' <-> 't1york') | ('t2new' <-> 't2york')",
        "('t1pi':*) | ('t2pi':*)"]  # fmt: skip
    assert parse_query("   ").listing and not parse_query("🎉").listing
    anyway = parse_query('What is "new york" like, pi?', "any")
    assert anyway.groups == (("what",), ("is",), ("new", "york"), ("like",), ("pi",))
    assert anyway.common == (True, True, False, False, False) and anyway.prefix
    assert parse_query("what is the", "any").groups == (("what",), ("is",), ("the",))
    assert parse_query('"kiwi" mango "kiwi"').groups == (("kiwi",), ("mango",))
    assert parse_query("pi mango pi").groups == (("mango",), ("pi",))  # the prefix stays last


def test_every_word_of_the_index_carries_its_namespace() -> None:
    tag = ns_tag("user-1")
    assert len(tag) == TAG_CHARS and tag.isalnum() and tag == ns_tag("user-1") != ns_tag("user-10")
    text, length, digest = fts_document("user-1", "k", json.dumps("Hi hi there"))  # type: ignore[misc]
    assert text == f"{tag} {tag}k {tag}hi {tag}hi {tag}there 1{tag}3" and length == 3
    assert length_token(tag, 3) == f"1{tag}3"  # a length word: no term or tag starts with 1
    pg = tsvector("user-1", "k", json.dumps("Hi hi"))
    assert pg["doc"] == f"'{tag}':1 '{tag}k':2 '{tag}hi':3,4 '1{tag}2':5"
    same = fts_document("user-1", "other", json.dumps({"text": "HI, hi there!", "n": 5}))
    assert same is not None and same[2] == digest  # the same words, another key: alike
    assert fts_document("user-1", "k", json.dumps({"n": 5}))[2] is None  # type: ignore[index]
    assert fts_document("/tokens", "k", "1") is None and tsvector("/auth", "k", "1")["doc"] is None
    stemmed = fts_document("user-1", "k", json.dumps("hiking children grew"))
    assert stemmed is not None and stemmed[0].split()[2:-1] == [
        f"{tag}hike",
        f"{tag}child",
        f"{tag}grow",
    ]
    simple = fts_document("user-1", "k", json.dumps("hiking children"), "simple")
    assert simple is not None and simple[0].split()[2:-1] == [f"{tag}hiking", f"{tag}children"]
    many = " ".join(f"w{n}" for n in range(MAX_INDEXED_WORDS + 50))
    assert len(document_words("k", json.dumps(many))) == MAX_INDEXED_WORDS
    with pytest.raises(InvalidRequest, match="at most 32 words"):
        parse_query(" ".join(f"word{n}" for n in range(33)))
    assert len(parse_query(" ".join(f"word{n}" for n in range(32))).groups) == 32
    common = "the " * 200 + "quokka"
    assert parse_query(common, "any").groups == (("the",), ("quokka",))
    many = " ".join(sorted(COMMON_WORDS)[:20]) + " quokka"
    assert len(parse_query(many, "any").groups) == 1 + MAX_COMMON_WORDS


def test_coverage_is_the_share_of_the_query_found() -> None:
    question = 'What is the "green tea" she likes?'  # "green tea", likes (a prefix); not "what"
    assert coverage(question, "She likes green tea") == 1.0
    assert coverage(question, "Tea, green and black") == 0.0  # not the phrase
    assert coverage(question, "Green tea is good") == 0.5
    assert coverage(question, "The likeses") == 0.5  # the last word is a prefix
    assert coverage("", "anything") == 0.0
    assert coverage("Café", "un CAFE") == 1.0


# -- SQLite: crash safety, migration, search turned off ------------------------------------------


@pytest.mark.slow
def test_a_crash_during_indexed_writes_leaves_index_and_data_consistent(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    proc = start_python(
        f"""
        from botwire import Memory
        mem = Memory("crash", "sqlite:///{path}")
        for i in range(1_000_000):
            mem.set(f"k{{i}}", f"word{{i}} and some filler text")
            mem.append("log", {{"text": f"note{{i}}"}})
            print(i, flush=True)
        """
    )
    assert proc.stdout is not None
    acknowledged = []
    for line in proc.stdout:
        acknowledged.append(int(line))
        if len(acknowledged) >= 600:  # past a catch-up or two of the index
            break
    os.kill(proc.pid, signal.SIGKILL)
    acknowledged.extend(int(line) for line in proc.stdout)
    proc.wait()
    mem = Memory("crash", backend=SQLiteBackend(path))
    for i in acknowledged[:: max(1, len(acknowledged) // 60)] + acknowledged[-5:]:
        assert found(mem.search(f'"word{i}"')) == {f"k{i}": None}  # quoted: no prefix
        assert found(mem.search(f'"note{i}"')) == {"log": [i]}
    mem.backend.close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO search_fts (search_fts) VALUES ('integrity-check')")
        assert conn.execute("SELECT count(*) FROM search_queue").fetchone() == (0,)
        (docs,) = conn.execute("SELECT count(*) FROM search_docs").fetchone()
        (fts,) = conn.execute("SELECT count(*) FROM search_fts").fetchone()
        (values,) = conn.execute("SELECT count(*) FROM entries WHERE kind = 0").fetchone()
        (items,) = conn.execute("SELECT count(*) FROM list_items").fetchone()
        assert fts == values + items and docs == items


def _old_sqlite_store(path: Path) -> None:
    """A store file as the previous release wrote it (schema 2, no search index)."""
    with sqlite_store_at(path, 2) as conn:
        conn.execute(
            "INSERT INTO entries (ns, key, kind, size, version, created_at, updated_at, list_lo,"
            " list_hi) VALUES ('old', 'log', 1, 20, 1, 1, 1, 0, 2)"
        )
        conn.executemany(
            "INSERT INTO list_items (entry_id, seq, value) VALUES (2, ?, ?)",
            [(0, '"first scroll"'), (1, '"second scroll"')],
        )


def test_a_store_from_the_previous_release_upgrades_and_is_searchable(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _old_sqlite_store(path)
    progress: list[tuple[int, int]] = []
    assert SQLiteBackend(path).migrate(progress=lambda done, total: progress.append((done, total)))
    assert progress[-1] == (3, 3)
    mem = Memory("old", f"sqlite:///{path}")
    assert found(mem.search("manuscript")) == {"doc": None}
    assert found(mem.search("scroll")) == {"log": [0, 1]}
    other = tmp_path / "lazy.db"  # upgraded on first use, indexed by the first search
    _old_sqlite_store(other)
    assert found(Memory("old", f"sqlite:///{other}").search("ancient")) == {"doc": None}


def test_a_store_with_the_index_of_release_0_3_is_indexed_again(tmp_path: Path) -> None:
    """Schema 3 (one index for every namespace): the upgrade builds the index again, with
    each namespace's words apart and the sizes of list items."""
    path = tmp_path / "v3.db"
    with sqlite_store_at(path, 3) as conn:
        conn.execute(
            "INSERT INTO entries (ns, key, kind, size, version, created_at, updated_at, list_lo,"
            " list_hi) VALUES ('old', 'log', 1, 20, 1, 1, 1, 0, 1)"
        )
        conn.execute("INSERT INTO list_items (entry_id, seq, value) VALUES (2, 0, '\"scroll\"')")
        conn.execute("INSERT INTO search_fts (rowid, doc) VALUES (1, 'doc an ancient manuscript')")
        conn.execute("DELETE FROM search_pending WHERE entry_id = 1")
    progress: list[tuple[int, int]] = []
    assert SQLiteBackend(path).migrate(progress=lambda done, total: progress.append((done, total)))
    assert progress[-1] == (2, 2)
    mem = Memory("old", f"sqlite:///{path}")
    assert found(mem.search("ancient")) == {"doc": None}
    assert found(mem.search("manuscripts")) == {"doc": None}  # indexed by stem
    assert found(mem.search("scrolls")) == {"log": [0]}
    assert found(Memory("other", f"sqlite:///{path}").search("ancient")) == {}
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT size FROM list_items").fetchall() == [(8,)]
        assert conn.execute("PRAGMA user_version").fetchone() == (SQLITE_SCHEMA,)


def test_a_store_whose_index_has_no_length_words_is_indexed_again(tmp_path: Path) -> None:
    """Schema 6: the upgrade builds the index again, each document with its length word, which
    the ranking counts (the average length) and reads (the shortest matches first)."""
    path = tmp_path / "v6.db"
    tag = ns_tag("old")
    with sqlite_store_at(path, 6) as conn:
        conn.execute(
            "INSERT INTO search_fts (rowid, doc, length) VALUES"
            f" (1, '{tag} {tag}doc {tag}an {tag}ancient {tag}manuscript', 4)"
        )
        conn.execute("DELETE FROM search_pending")
    assert SQLiteBackend(path).migrate()
    mem = Memory("old", f"sqlite:///{path}")
    assert found(mem.search("ancient")) == {"doc": None}
    with sqlite3.connect(path) as conn:
        assert conn.execute(
            "SELECT term, doc FROM search_vocab WHERE term LIKE '1%'"
        ).fetchall() == [(length_token(tag, 4), 1)]


def test_the_migrate_command_indexes_with_a_progress_bar(tmp_path: Path) -> None:
    path = tmp_path / "cli.db"
    _old_sqlite_store(path)
    result = subprocess.run(
        [sys.executable, "-m", "botwire.cli", "migrate", "--url", f"sqlite:///{path}"],
        capture_output=True, text=True, env=child_env(), timeout=60,
    )  # fmt: skip
    ran = SQLITE_SCHEMA - 2
    assert (
        result.returncode == 0 and f"({ran} migration{'s' if ran > 1 else ''} run)" in result.stdout
    )
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM search_queue").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM search_fts").fetchone() == (3,)


def test_search_can_be_turned_off_and_on_for_a_store(tmp_path: Path) -> None:
    path = tmp_path / "off.db"
    Memory("ns", f"sqlite:///{path}").set("k", "findable words")
    off = Memory("ns", f"sqlite:///{path}?search=off")
    off.set("k2", "more words")
    with pytest.raises(InvalidRequest, match="search is off"):
        off.search("words")
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM search_fts").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM search_queue").fetchone() == (0,)
    on = Memory("ns", f"sqlite:///{path}?search=on")
    assert set(found(on.search("words"))) == {"k", "k2"}
    with pytest.raises(InvalidRequest, match="on or off"):
        Memory("ns", f"sqlite:///{path}?search=maybe").get("k")


# -- PostgreSQL: a database of the previous release ----------------------------------------------


@pytest.mark.parametrize(
    "applied", [2, 4, 6, 10], ids=["0.2", "0.3", "tags-without-language", "no-length-words"]
)
def test_a_postgres_schema_from_a_previous_release_upgrades(pg_url: str, applied: int) -> None:
    """0.2 (migrations 1-2): no search index; 0.3 (1-4): one index of 'simple' words for every
    namespace; 1-6: tagged words, but no language setting nor digests yet; 1-10: no length
    words. Either way the upgrade indexes every value again, as this release reads it (stems,
    tags, length words)."""
    schema = f"botwire_old_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'SET search_path = "{schema}"')
        conn.execute(
            "CREATE TABLE botwire_migrations (version INT PRIMARY KEY,"
            " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        for number in range(1, applied + 1):
            migration = PG_MIGRATIONS[number - 1]
            if isinstance(migration, str):
                conn.execute(migration)
            elif number == 7:  # the language setting (it indexes nothing yet)
                with conn.transaction():
                    migration(conn, None)
            conn.execute("INSERT INTO botwire_migrations (version) VALUES (%s)", (number,))
        tsv = "NULL" if applied == 2 else "to_tsvector('simple', 'an ancient manuscripts')"
        if applied == 10:  # as 1-10 indexed it: no length word
            words = tsvector("old", "doc", '"an ancient manuscripts"')["doc"]
            assert words is not None and words.endswith(f"'{length_token(ns_tag('old'), 4)}':6")
            tsv = "'" + words.rsplit(" ", 1)[0].replace("'", "''") + "'::tsvector"
        conn.execute(
            "INSERT INTO botwire_entries (ns, key, kind, value, size, version, created_at,"
            " updated_at" + ("" if applied == 2 else ", tsv") + ") VALUES ('old', 'doc', 0,"
            " '\"an ancient manuscripts\"', 24, 1, 1, 1" + ("" if applied == 2 else f", {tsv}")
            + ")"
        )  # fmt: skip
    try:
        url = f"{PG_URL}{'&' if '?' in PG_URL else '?'}schema={schema}"
        progress: list[tuple[int, int]] = []
        assert PostgresBackend(url).migrate(lambda done, total: progress.append((done, total)))
        assert progress[-1] == (1, 1)
        assert found(Memory("old", url).search("manuscript")) == {"doc": None}  # its stem
        assert found(Memory("other", url).search("manuscript")) == {}
        with psycopg.connect(PG_URL, options=f"-c search_path={schema}") as conn:
            (words,) = conn.execute("SELECT tsv::text FROM botwire_entries").fetchone()
            assert f"'{length_token(ns_tag('old'), 4)}'" in words
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


# -- the server and the command line -------------------------------------------------------------


def test_the_server_search_route_for_other_languages(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'route.db'}"
    with Server(db) as server:
        fill(Memory("shop", server.url))
        Memory("secret", server.url).set("k", "lisbon secrets")
        response = httpx.get(f"{server.url}/v1/search", params={"ns": "shop", "q": "lisbon"})
        assert response.status_code == 200
        body = response.json()["hits"]
        assert {h["key"] for h in body} == {"trip", "chat"}
        chat = next(h for h in body if h["key"] == "chat")
        assert chat["value"] is None and {i["position"] for i in chat["items"]} == {0, 1}
        trip = next(h for h in body if h["key"] == "trip")
        assert trip["value"] == CORPUS["trip"] and trip["namespace"] == "shop"
        assert trip["created_at"] <= trip["updated_at"]
        where = httpx.get(
            f"{server.url}/v1/search", params={"ns": "shop", "q": "", "where": '{"budget": 800}'}
        ).json()["hits"]
        assert [h["key"] for h in where] == ["trip2"]
        either = httpx.get(
            f"{server.url}/v1/search", params={"ns": "shop", "q": "hotel porto", "match": "any"}
        ).json()["hits"]
        assert {h["key"] for h in either} == {"trip2", "chat"}
        for params in [{"ns": "shop", "q": "x", "limit": "0"}, {"ns": "a/b", "q": "x"},
                       {"ns": "shop", "where": "{bad"}, {"ns": "shop", "match": "x"}]:  # fmt: skip
            assert httpx.get(f"{server.url}/v1/search", params=params).status_code in (400, 422)


def test_tokens_scope_searches(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'scoped.db'}"

    def token(name: str, prefix: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "botwire.cli", "token", "create", name, "--prefix", prefix,
             "--db", db], capture_output=True, text=True, env=child_env(), timeout=60,
        )  # fmt: skip
        return out.stdout.strip()

    admin, users, one = token("admin", "*"), token("users", "user:"), token("one", "user:1")
    with Server(db) as server:
        for ns in ("user:1", "user:10", "team"):
            Memory(ns, server.url, token=admin).set("note", "meeting notes")
        hits = search_namespaces("meeting", "user:", url=server.url, token=users)
        assert sorted(h.namespace for h in hits) == ["user:1", "user:10"]
        with pytest.raises(Exception, match="may not search"):
            search_namespaces("meeting", "user:1", url=server.url, token=one)
        assert len(search_namespaces("meeting", "user:1:", url=server.url, token=one)) == 0
        with pytest.raises(Exception, match="may not use namespace"):
            Memory("team", server.url, token=users).search("meeting")
        refused = httpx.get(
            f"{server.url}/v1/search", params={"ns": "team", "q": "meeting"},
            headers={"authorization": f"Bearer {one}"},
        )  # fmt: skip
        assert refused.status_code == 403
        assert httpx.get(f"{server.url}/v1/search", params={"ns": "team"}).status_code == 401


def test_the_search_command(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    fill(Memory("shop", url))
    result = subprocess.run(
        [sys.executable, "-m", "botwire.cli", "search", "shop", "lisbon", "--limit", "5",
         "--url", url], capture_output=True, text=True, env=child_env(), timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any("chat[0]" in line and "I fly to Lisbon" in line for line in lines)
    assert any(" trip " in line and '"city": "Lisbon"' in line for line in lines)
    nothing = subprocess.run(
        [sys.executable, "-m", "botwire.cli", "search", "shop", "zzz", "--url", url],
        capture_output=True, text=True, env=child_env(), timeout=60,
    )  # fmt: skip
    assert nothing.returncode == 1 and "nothing" in nothing.stderr


def test_hits_are_exported_from_botwire() -> None:
    import botwire

    assert botwire.Hit is Hit and asyncio.iscoroutinefunction(botwire.asearch_namespaces)


def test_the_index_backlog_stays_small_as_writes_happen(tmp_path: Path) -> None:
    """Loading a store in batches, or appending a long list, leaves the index at most a
    bounded batch behind once writes go on: no search waits for a whole load to be indexed."""
    path = tmp_path / "load.db"
    mem = Memory("load", backend=SQLiteBackend(path))
    for batch in range(30):
        mem.set_many({f"k{batch}-{i}": f"a trip to Lisbon, note {i}" for i in range(1000)})
    side = sqlite3.connect(path)
    backlog = (  # notes in the queue, and logged sets the index has not taken up
        "SELECT (SELECT count(*) FROM search_queue) + (SELECT count(*) FROM change_log"
        " WHERE seq > (SELECT logged_upto FROM search_state))"
    )
    (pending,) = side.execute(backlog).fetchone()
    assert pending <= 2000  # the last batch's notes, at most
    mem.append("chat", *[{"role": "user", "content": "hello Porto"}] * 10_000)
    for i in range(10):  # each indexes a bounded batch of what the append noted
        mem.set(f"after-{i}", i)
    (pending,) = side.execute(backlog).fetchone()
    assert pending <= 2000
    assert len(mem.search("Lisbon", limit=5)) == 5
    side.close()


def test_an_append_notes_its_items_and_nothing_else_for_the_index(tmp_path: Path) -> None:
    """An append notes the item it adds (and one its window drops), not the list's entry,
    which has no document of its own; a list that becomes a value, and back, is noted."""
    path = tmp_path / "notes.db"
    mem = Memory("chat", backend=SQLiteBackend(path, history=0))  # sets noted in the queue
    side = sqlite3.connect(path)

    seen = 0

    def noted() -> list[tuple[int, int]]:
        """The notes added since the last call (none is indexed before the search below)."""
        nonlocal seen
        rows = side.execute(
            "SELECT rowid, entry_id, seq FROM search_queue WHERE rowid > ? ORDER BY rowid",
            (seen,),
        ).fetchall()
        seen = rows[-1][0] if rows else seen
        return [(entry_id, seq) for _, entry_id, seq in rows]

    mem.append("log", "hello Lisbon")
    assert [seq for _, seq in noted()] == [0]
    mem.append("log", "hello Porto", max_len=1)
    assert sorted(seq for _, seq in noted()) == [0, 1]  # the item added, the item dropped
    mem.set("log", "now a value about Faro")
    assert -1 in [seq for _, seq in noted()]
    mem.set("log", "now a value about Faro")  # the same text again: nothing to index anew
    assert noted() == []
    mem.set("log", ["a list", "again"])
    assert [seq for _, seq in noted()] == [-1]
    mem.append("log", "and more")  # the value's document goes, its items come
    assert sorted(seq for _, seq in noted()) == [-1, 0, 1, 2]
    side.close()
    assert [hit.key for hit in mem.search("more")] == ["log"]
    assert [hit.key for hit in mem.search("Faro")] == []


def test_a_logged_set_notes_its_document_through_its_change(tmp_path: Path) -> None:
    """With the change log on, a set or an incr writes no note to the queue (the index takes
    its change in the log up instead); a value that an append turns into a list is still
    noted, so its document goes; a process without the log notes in the queue; all of it is
    found."""
    path = tmp_path / "logged.db"
    mem = Memory("chat", backend=SQLiteBackend(path))
    side = sqlite3.connect(path)

    def queued() -> int:
        return int(side.execute("SELECT count(*) FROM search_queue").fetchone()[0])

    mem.set("city", "a trip to Faro")
    mem.set("plan", ["a list about Lisbon"])
    mem.set("visits", 1)
    mem.incr("visits", 2)
    assert queued() == 0
    assert found(mem.search("Faro")) == {"city": None}
    assert found(mem.search("Lisbon")) == {"plan": None}  # the value's document
    mem.set("city", "a trip to Porto")
    mem.append("plan", "and Sintra")  # the value becomes a list: its items are documents
    assert found(mem.search("Lisbon")) == {"plan": [0]}
    assert found(mem.search("Faro")) == {}
    assert found(mem.search("Porto")) == {"city": None}
    Memory("chat", backend=SQLiteBackend(path, history=0)).set("other", "a trip to Braga")
    assert queued() == 1
    assert found(mem.search("Braga")) == {"other": None}
    side.close()


def test_a_trim_keeps_the_changes_the_index_has_not_taken_up(tmp_path: Path) -> None:
    """The log's retention trims old changes, but none whose document the index has not
    taken up yet: a set older than the retention is found, and its change goes once it is
    indexed."""
    path = tmp_path / "trim.db"
    now = [1_800_000_000.0]
    backend = SQLiteBackend(path, clock=lambda: now[0], history=60)
    mem = Memory("ns", backend=backend)
    for i in range(3):
        mem.set(f"k{i}", f"a note about word{i}")
    now[0] += 3600  # past the retention: the next write trims
    mem.set("later", "a later note")
    assert found(mem.search("word0")) == {"k0": None}
    assert found(mem.search("word1")) == {"k1": None}
    assert len(mem.history("k0")) == 1
    now[0] += 3600
    mem.set("last", "the last note")
    assert mem.history("k0") == []
    backend.close()


def test_a_set_whose_change_a_later_one_replaced_is_found(tmp_path: Path) -> None:
    """With one change kept per key, a later change of the key (an expire) replaces a set's
    change in the log before the index takes it up: the set is found all the same."""
    path = tmp_path / "kept.db"
    mem = Memory("ns", backend=SQLiteBackend(path, history_versions=1))
    mem.set("k", "a trip to Faro")
    mem.expire("k", 3600)
    assert [c.op for c in mem.history("k")] == ["expire"]
    assert found(mem.search("Faro")) == {"k": None}
    with pytest.raises(InvalidRequest, match="1 or more"):
        SQLiteBackend(path, history_versions=0)


def test_a_batch_that_writes_then_searches_finds_what_it_wrote(tmp_path: Path) -> None:
    """A search in a batch after writes (as the server's batch route runs them) takes up the
    batch's own writes first, those that change a value and those that log a change only."""
    backend = SQLiteBackend(tmp_path / "batch.db")
    Memory("n", backend=backend).set("a", "hello Lisbon")
    _, hits = backend.execute([Expire("n", "a", 100), Search("n", "Lisbon")])
    assert [hit.key for hit in hits] == ["a"]
    _, hits = backend.execute([Put("n", "b", '"hello Lisbon again"'), Search("n", "Lisbon")])
    assert sorted(hit.key for hit in hits) == ["a", "b"]
    backend.close()


def test_a_store_indexed_again_in_another_language_keeps_no_deleted_document(
    tmp_path: Path,
) -> None:
    """A change of language builds the index again from what the store holds: a key deleted
    just before leaves no document behind (its deletion was waiting in the queue)."""
    path = tmp_path / "language.db"
    mem = Memory("n", backend=SQLiteBackend(path))
    mem.set("gone", "zebra stripes")
    mem.set("kept", "a trip to Faro")
    assert found(mem.search("zebra")) == {"gone": None}
    mem.delete("gone")
    simple = Memory("n", backend=SQLiteBackend(path, language="simple"))
    assert found(simple.search("Faro")) == {"kept": None}
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM search_fts").fetchone() == (1,)


def test_migrate_counts_the_logged_writes_the_index_has_not_taken_up(tmp_path: Path) -> None:
    path = tmp_path / "progress.db"
    mem = Memory("n", backend=SQLiteBackend(path))
    mem.set_many({f"k{i}": f"note {i} about Faro" for i in range(2500)})
    with sqlite3.connect(path) as conn:  # as if the index had taken none of them up yet
        conn.execute("UPDATE search_state SET logged_upto = 0")
        conn.execute("DELETE FROM search_fts")
    progress: list[tuple[int, int]] = []
    SQLiteBackend(path).migrate(progress=lambda done, total: progress.append((done, total)))
    assert progress == [(2000, 2500), (2500, 2500)]
    assert len(mem.search("Faro", limit=1000)) == 1000
    assert found(mem.search("2499")) == {"k2499": None}


def test_a_process_of_the_previous_release_cannot_search_an_upgraded_store(
    tmp_path: Path,
) -> None:
    """A process of the release before migration 12 searches without catching up with the
    log: its first read of the queue's old name, at its next search or catch-up, fails with
    a clear error rather than answering without the log's writes."""
    path = tmp_path / "mixed.db"
    Memory("m", backend=SQLiteBackend(path)).set("k", "a trip to Faro")
    old = sqlite3.connect(path, isolation_level=None)
    for statement in (
        "SELECT 1 FROM search_pending LIMIT 1",
        "SELECT rowid, entry_id, seq FROM search_pending ORDER BY rowid LIMIT 9",
    ):
        with pytest.raises(sqlite3.OperationalError, match="upgraded by a newer botwire"):
            old.execute(statement)
    old.close()
    assert found(Memory("m", f"sqlite:///{path}").search("Faro")) == {"k": None}


def test_a_store_of_schema_11_keeps_its_notes_and_its_log(tmp_path: Path) -> None:
    """The upgrade to schema 12 keeps the queue's notes, and the index takes up none of the
    changes logged before it (their writes noted their documents in the queue)."""
    path = tmp_path / "v11.db"
    with sqlite_store_at(path, 11) as conn:
        conn.execute(
            "INSERT INTO change_log (ns, key, op, version, at, actor) VALUES"
            " ('old', 'doc', 'set', 1, 1, 'local:old')"
        )
    assert SQLiteBackend(path).migrate()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT logged_upto FROM search_state").fetchone() == (1,)
    assert found(Memory("old", f"sqlite:///{path}").search("ancient")) == {"doc": None}
