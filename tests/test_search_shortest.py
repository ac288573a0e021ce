"""A search whose words match many documents ranks the shortest first and stops where they
prove its hits: the same hits, scores, items and context as ranking every match, for a
fraction of the work."""

from __future__ import annotations

import dataclasses
import random
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from botwire import Memory, search_namespaces
from botwire.backends.search import Counts, search_op
from botwire.backends.search import sql as search_sql
from botwire.backends.sqlite import search as sqlite_search

WORDS = [f"w{n}" for n in range(300)]


def _text(rng: random.Random, words: int, lisbon: float = 0.8) -> str:
    picked = rng.sample(WORDS, words)
    if rng.random() < lisbon:
        picked.insert(rng.randrange(len(picked) + 1), "lisbon")
    if rng.random() < 0.3:
        picked.append("porto")
    for common, share in (("the", 0.25), ("about", 0.15)):  # common words, in matches or not
        if rng.random() < share:
            picked.insert(rng.randrange(len(picked) + 1), common)
    return " ".join(picked)


def _rounded(hits: list[Any]) -> list[Any]:
    """``hits`` with their scores to 9 decimals: SQLite may add a document's weights in
    another order when it ranks another way (the last bit of a sum differs)."""
    return [dataclasses.replace(hit, score=round(hit.score, 9)) for hit in hits]


def _every_match(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rank every match of a search at once: no shortest first, nor telling words first."""
    monkeypatch.setattr(search_sql, "SHORTEST_FIRST", 10**9)
    monkeypatch.setattr(search_sql, "TELLING_FIRST", False)


def _fill(url: str) -> None:
    """A namespace of 4,000 values of 1 to 60 words (most hold "lisbon"), a few of them alike,
    some long ones under their own prefix, some that hold a rare word too (all long), and 30
    chats of 40 messages; and a second namespace of short values."""
    rng = random.Random(11)
    mem = Memory("big", url)
    values: dict[str, Any] = {}
    for n in range(4000):
        text = _text(rng, rng.randint(1, 40))
        values[f"v:{n:05}"] = {"role": rng.choice(["user", "assistant"]), "text": text}
    for n in range(0, 4000, 97):  # alike: the same words as another value
        values[f"copy:{n:05}"] = {"role": "user", "text": values[f"v:{n:05}"]["text"]}
    for n in range(300):
        values[f"long:{n:04}"] = _text(rng, rng.randint(45, 60), lisbon=1.0)
    for n in range(100):  # a rare word in long values only: they rank above short ones
        values[f"sintra:{n:03}"] = _text(rng, rng.randint(30, 40), lisbon=1.0) + " sintra"
    for n in range(5):  # a word in fewer keys than a search shows
        values[f"obidos:{n}"] = _text(rng, rng.randint(5, 20)) + " obidos"
    for n in range(60):  # a word in many keys that read alike: a relevance search shows one
        values[f"nazare:{n:02}"] = "nazare w7 w8"
    mem.set_many(values)
    for n in range(30):
        mem.append(f"chat:{n:02}", *({"role": rng.choice(["user", "assistant"]),
                                      "text": _text(rng, rng.randint(2, 30), 0.5)}
                                     for _ in range(40)))  # fmt: skip
    mem.set("later", "lisbon")  # a write after the lists: an entry with the shortest text
    other = Memory("big-2", url)
    other.set_many({f"o:{n:04}": _text(rng, rng.randint(1, 3)) for n in range(1500)})
    mem.search("warm up")


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("shortest") / "big.db"
    _fill(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="module")
def big_postgres(pg_url: str) -> Iterator[str]:
    """The same data on PostgreSQL (a schema of its own)."""
    url = pg_url.replace("schema=", "schema=shortest_")
    _fill(url)
    yield url
    import psycopg

    from botwire.backends.postgres import parse_url

    conninfo, schema, *_ = parse_url(url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


CASES: list[tuple[str, dict[str, Any]]] = [
    ("lisbon", {}),
    ("lisbon", {"limit": 1}),
    ("lisbon", {"limit": 3, "distinct": True}),
    ("lisbon", {"match": "any"}),
    ("lisbon porto", {}),
    ("lisbon porto", {"match": "any"}),
    ("what about lisbon or porto", {"match": "any"}),  # common words beside telling ones
    ("the porto", {"match": "any", "limit": 25, "distinct": False}),
    ("the sintra", {"match": "any", "limit": 120}),  # fewer keys hold the telling word
    ("about the obidos", {"match": "any"}),  # keys of common words only: the rarer first
    ("about nazare", {"match": "any"}),  # the keys of the telling word fill what is ranked
    ("about the obidos", {"match": "any", "limit": 40, "distinct": False}),
    ("about the obidos", {"match": "any", "prefix": "chat:", "context": 1}),
    ("what about the porto", {"match": "any", "prefix": "chat:", "limit": 30}),
    ("the lisbon", {"match": "any", "prefix": "chat:", "limit": 30}),  # lists short of items
    ("about lisbon", {"match": "any", "prefix": "chat:", "context": 1}),
    ("lisbon w1", {"match": "any", "limit": 20}),
    ("lisbon sintra", {"match": "any"}),
    ("lisbon sintra", {"match": "any", "prefix": "chat:"}),
    ("lisbon", {"where": {"role": "user"}}),
    ("lisbon", {"prefix": "long:"}),  # only long documents: the shortest prove nothing
    ("lisbon", {"prefix": "chat:"}),  # lists: each key's best items
    ("lisbon", {"prefix": "chat:", "context": 1, "match": "any"}),
    ("lisbon", {"limit": 40}),
    ("lisbon w", {}),  # the last word also a prefix
    ("lisbon", {"across": True}),
    ("lisbon sintra", {"across": True, "match": "any", "limit": 30}),
]


def _search(url: str, query: str, **options: Any) -> list[Any]:
    if options.pop("across", False):  # the namespaces that start with "big"
        return search_namespaces(query, "big", url=url, **options)
    return Memory("big", url).search(query, **options)


@pytest.mark.parametrize(("query", "options"), CASES, ids=[repr(c) for c in CASES])
def test_the_same_hits_as_ranking_every_match(
    big: Path, big_postgres: str, query: str, options: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    fast = {url: _search(url, query, **options) for url in (f"sqlite:///{big}", big_postgres)}
    _every_match(monkeypatch)
    for url, hits in fast.items():
        assert _rounded(hits) == _rounded(_search(url, query, **options)), url
        alike = query == "about nazare"  # the 60 keys read alike: one shows
        assert len(hits) == (1 if alike else options.get("limit", 10))
        if options == {"across": True}:
            assert {hit.namespace for hit in hits} == {"big", "big-2"}
    sqlite, postgres = fast.values()  # one ranking: the same scores on both engines
    assert [round(h.score, 9) for h in sqlite] == [round(h.score, 9) for h in postgres]


def _steps(path: Path, query: str, **options: Any) -> int:
    """The virtual machine steps (in thousands) of one search."""
    conn = sqlite3.connect(path, isolation_level=None)
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    conn.set_progress_handler(count, 1000)
    op = search_op("big", query, None, None, options.pop("limit", 10), **options)
    now = time.time_ns() // 1000
    sqlite_search.search(conn, op, now, Counts())
    conn.close()
    return steps


@pytest.mark.parametrize("match", ["all", "any"])
def test_a_search_that_matches_most_documents_ranks_a_few_of_them(
    big: Path, match: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = _steps(big, "lisbon", match=match)
    _every_match(monkeypatch)
    every = _steps(big, "lisbon", match=match)
    assert fast * 4 < every, (fast, every)


def _fast_and_full(
    url: str, query: str, monkeypatch: pytest.MonkeyPatch, **options: Any
) -> tuple[list[Any], list[Any]]:
    """A search with shortest-first from a few matches on, and the same ranking every match."""
    monkeypatch.setattr(search_sql, "SHORTEST_FROM", 10)
    monkeypatch.setattr(search_sql, "SHORTEST_FIRST", 20)
    monkeypatch.setattr(search_sql, "TELLING_FIRST", True)
    fast = Memory("small", url).search(query, **options)
    _every_match(monkeypatch)
    return fast, Memory("small", url).search(query, **options)


def test_a_value_of_a_length_written_since_the_lengths_were_counted_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lengths a store counted (remembered for a while) never hide a newer document."""
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    mem = Memory("small", url)
    mem.set_many({f"a{n:02}": "lisbon f g" for n in range(30)})
    mem.set_many({f"z{n:03}": " ".join(["lisbon", *WORDS[:40]]) for n in range(270)})
    fast, every = _fast_and_full(url, "lisbon", monkeypatch, limit=3)
    assert _rounded(fast) == _rounded(every)
    mem.set("new", "lisbon")  # a length no document had when they were counted
    fast, every = _fast_and_full(url, "lisbon", monkeypatch, limit=3)
    assert _rounded(fast) == _rounded(every) and fast[0].key == "new"


def test_a_key_ranks_by_its_best_document_that_holds_a_telling_word(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A list whose short item holds only a common word ranks by its long item that holds
    the telling one: below shorter values that hold it, above every key of common words
    only, and it shows both items."""
    url = f"sqlite:///{tmp_path / 'tier.db'}"
    mem = Memory("small", url)
    filler = WORDS[100:140]
    mem.set("top", " ".join(["the", "lisbon", *WORDS[:20]]))
    shorts = {f"short{n}": " ".join(["lisbon", *WORDS[20 + n : 41 + n]]) for n in range(10)}
    mem.set_many(shorts)
    mem.set_many({f"common{n:03}": f"the {WORDS[n]}" for n in range(30)})
    mem.set_many({f"other{n:03}": " ".join(WORDS[n : n + 5]) for n in range(250)})
    mem.append("k", "the", " ".join(["lisbon", *filler]))
    fast, every = _fast_and_full(url, "the lisbon", monkeypatch, match="any", limit=12,
                                 distinct=False)  # fmt: skip
    assert _rounded(fast) == _rounded(every)
    keys = [hit.key for hit in fast]
    assert keys[0] == "top" and set(keys[1:11]) == set(shorts) and keys[11] == "k"
    assert fast[11].items is not None
    assert [item.value for item in fast[11].items] == [" ".join(["lisbon", *filler]), "the"]


def test_a_document_holding_words_of_equal_weight_counts_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two words held by as many documents weigh the same: a document that holds both counts
    both, also where a ranking adds every match of a list (the lists' items were read twice
    over: one of two equal rows was taken for a copy of the other)."""
    url = f"sqlite:///{tmp_path / 'equal.db'}"
    mem = Memory("small", url)
    mem.set_many({f"k{n}": f"alpha beta filler{n}" for n in range(3)})
    mem.append("chat", "alpha beta one", "the two", "the three alpha beta four five six")
    options: dict[str, Any] = {"match": "any", "limit": 3, "distinct": False}
    fast = mem.search("the alpha beta", **options)
    _every_match(monkeypatch)
    assert _rounded(fast) == _rounded(mem.search("the alpha beta", **options))


def test_a_document_of_common_words_shorter_than_those_counted_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The keys of common words only rank from the rarer of them first; one written since
    the lengths were counted, shorter than any then, is ranked too (it may outscore every
    document of the rarer words)."""
    url = f"sqlite:///{tmp_path / 'rarest.db'}"
    mem = Memory("small", url)
    mem.set_many({f"a{n:03}": " ".join(["about", "my", *WORDS[n % 200 : n % 200 + 28]])
                  for n in range(160)})  # fmt: skip
    mem.set_many({f"m{n:03}": " ".join(["my", *WORDS[n : n + 8]]) for n in range(10)})
    mem.set_many({f"f{n:03}": " ".join(WORDS[n % 250 : n % 250 + 8]) for n in range(500)})
    options: dict[str, Any] = {"match": "any", "limit": 3}
    fast, every = _fast_and_full(url, "about my zzz", monkeypatch, **options)
    assert _rounded(fast) == _rounded(every) and fast[0].key.startswith("a")
    mem.set("my", "my")  # one term: shorter than any counted
    fast, every = _fast_and_full(url, "about my zzz", monkeypatch, **options)
    assert _rounded(fast) == _rounded(every) and fast[0].key == "my"
