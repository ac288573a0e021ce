"""Search that answers questions: words in any form (stems), other languages as they are, a
store's language, the items around a hit, recency, one hit per text, and the same ranking on
every store."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest

from botwire import Memory
from botwire.backends.postgres import parse_url

from .conftest import Store, empty_postgres

FACTS = {
    "hike": "We hiked up Mount Teide last spring",
    "kids": "The children love their new school",
    "home": "I grew up in Porto, by the river",
    "mood": "Such happiness after the exam",
    "ru": "Мы ходили в горы",
    "jp": "週末は山に登りました",
    "run": "I ran my first marathon",
}
STEMMED = [
    ("hiking", {"hike"}),  # hiking / hiked: hike
    ("hikes", {"hike"}),
    ("child", {"kids"}),  # an irregular plural
    ("where did I grow up", {"home"}),  # grew: grow
    ("happ", {"mood"}),  # a prefix
    ("happiness", {"mood"}),  # the exact word still matches
    ("running marathons", {"run"}),  # ran: run; marathons: marathon
    ("горы", {"ru"}),  # other languages match as they are
    ("山", {"jp"}),
    ('"hiked up"', {"hike"}),  # a phrase, in any form of its words
    ('"hiking up mount"', {"hike"}),
]


@pytest.fixture
def facts(store: Store) -> Memory:
    mem = store.memory("facts")
    mem.set_many(FACTS)
    return mem


@pytest.mark.parametrize(("query", "want"), STEMMED, ids=[q for q, _ in STEMMED])
def test_a_word_matches_in_any_of_its_forms(facts: Memory, query: str, want: set[str]) -> None:
    assert {h.key for h in facts.search(query, match="any") if h.score > 1} == want
    if " " not in query.strip('"'):
        assert {h.key for h in facts.search(query)} == want


def test_the_same_ranking_and_scores_on_every_store(store: Store) -> None:
    mem = store.memory("same")
    mem.set_many(FACTS)
    mem.append("chat", {"text": "We hiked again"}, {"text": "The children came too"})
    scores = {(h.key, round(h.score, 9)) for h in mem.search("hiking children", match="any")}
    assert scores == {("chat", 1.649321797), ("hike", 1.348883119), ("kids", 1.348883119)}


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_a_store_in_the_simple_language_matches_words_as_they_are(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """``?language=simple`` indexes the store again, words as they are; back to English
    indexes it again with stems; what was written out of the index stays out."""
    if engine == "sqlite":
        url = f"sqlite:///{tmp_path / 'lang.db'}"
    else:
        url = request.getfixturevalue("pg_url")
        empty_postgres(url)
    english = Memory("facts", url)
    english.set_many(FACTS)
    english.set("hidden", "hiked hiking", searchable=False)
    english.append("hidden-items", "hiked hiking", searchable=False)
    assert {h.key for h in english.search("hiking")} == {"hike"}
    sep = "&" if "?" in url else "?"
    simple = Memory("facts", backend=_backend(f"{url}{sep}language=simple"))
    assert simple.search("hiking") == []
    assert {h.key for h in simple.search("hiked")} == {"hike"}
    simple.set("new", "hiking again")
    assert {h.key for h in simple.search("hiking")} == {"new"}
    again = Memory("facts", backend=_backend(f"{url}{sep}language=english"))
    assert {h.key for h in again.search("hike")} == {"hike", "new"}  # not what stays out
    with pytest.raises(Exception, match="language is one of english, simple"):
        Memory("facts", backend=_backend(f"{url}{sep}language=klingon")).get("x")
    if engine == "postgres":
        _reset_language(url)


def _backend(url: str) -> Any:
    from botwire.backends import create_backend

    return create_backend(url)


def _reset_language(url: str) -> None:
    conninfo, schema, *_ = parse_url(url)
    with psycopg.connect(conninfo, autocommit=True, options=f"-c search_path={schema}") as conn:
        conn.execute("UPDATE botwire_search_settings SET language = 'english'")


def test_a_store_remembers_its_language(tmp_path: Path) -> None:
    path = tmp_path / "remembers.db"
    Memory("facts", f"sqlite:///{path}?language=simple").set("k", "hiking")
    later = Memory("facts", f"sqlite:///{path}")  # no language named: the store's
    assert later.search("hike") == [] and [h.key for h in later.search("hiking")] == ["k"]
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT language FROM search_state").fetchone() == ("simple",)


# -- the items around a hit ---------------------------------------------------------------------

CHAT = [
    {"role": "user", "content": "Do you know a good hotel?"},
    {"role": "assistant", "content": "Try the Pestana in Lisbon"},
    {"role": "user", "content": "What about museums?"},
    {"role": "assistant", "content": "The tile museum is lovely"},
    {"role": "user", "content": "Thanks, and the weather?"},
    {"role": "assistant", "content": "Sunny all week"},
]


def test_context_brings_the_items_around_each_match(store: Store) -> None:
    mem = store.memory("ctx")
    mem.append("chat", *CHAT)
    (hit,) = mem.search("pestana", match="any", context=1)
    assert [i.position for i in hit.items or []] == [1]
    assert [(i.position, i.value) for i in hit.context or []] == [(0, CHAT[0]), (1, CHAT[1]),
                                                                (2, CHAT[2])]  # fmt: skip
    (hit,) = mem.search("hotel museums", match="any", context=1)
    assert sorted(i.position for i in hit.items or []) == [0, 2, 3]  # museums: museum too
    assert [i.position for i in hit.context or []] == [0, 1, 2, 3, 4]  # windows overlap
    (hit,) = mem.search("sunny", context=3)
    assert [i.position for i in hit.context or []] == [2, 3, 4, 5]  # the list ends
    (plain,) = mem.search("pestana")
    assert plain.context is None
    mem.append("chat", {"role": "user", "content": "hi"}, max_len=6)  # the list moved on
    (hit,) = mem.search("pestana", context=1)
    assert [i.position for i in hit.context or []] == [0, 1]


# -- recency ----------------------------------------------------------------------------------


def test_recency_lets_the_newer_of_two_near_hits_win(store: Store) -> None:
    mem = store.memory("recent")
    mem.set("old", "moving to Berlin")  # shorter: the better match by words
    store.advance(3)
    mem.set("new", "we are moving to Berlin in spring")
    assert [h.key for h in mem.search("moving berlin")] == ["old", "new"]
    assert [h.key for h in mem.search("moving berlin", recency=1)] == ["new", "old"]
    with pytest.raises(Exception, match="positive"):
        mem.search("berlin", recency=0)


# -- one hit per text -------------------------------------------------------------------------


def test_a_relevance_search_shows_a_repeated_text_once(store: Store) -> None:
    mem = store.memory("repeats")
    for session in range(5):
        mem.set(f"s{session}:t0", {"text": "Work was a lot today", "session": session})
    mem.set("job", {"text": "I work as a nurse at the clinic", "session": 9})
    mem.append("log", "work work", "Work was a lot today", "work work")
    found = mem.search("work", match="any")
    assert [h.key for h in found].count("s4:t0") == 1
    assert sum(h.key.endswith(":t0") for h in found) == 1  # the newest stands for the five
    assert "job" in [h.key for h in found]
    log = next(h for h in found if h.key == "log")
    assert sorted(i.position for i in log.items or []) in ([1, 2], [0, 1])  # "work work" once
    everything = mem.search("work", match="any", distinct=False, limit=20)
    assert sum(h.key.endswith(":t0") for h in everything) == 5
    assert len(mem.search("work", limit=20)) == 7  # match="all": every key
