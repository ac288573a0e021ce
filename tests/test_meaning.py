"""Recall by meaning: a memory with an embedder stores a vector with each value and list item,
in the write's transaction, and ``search(mode="meaning")`` ranks by similarity to the query,
with the filters and hit shapes of a word search."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from array import array
from pathlib import Path
from typing import Any

import httpx
import pytest

from botwire import AsyncMemory, BackendUnavailable, InvalidRequest, Memory
from botwire.backends.base import Embed, Get, Unembedded
from botwire.embedders import Embedder

from .conftest import empty_postgres
from .helpers import Server, broken, concepts, run_python

QUESTION = "How far is Lisbon from Porto?"


@pytest.fixture(params=["postgres", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store of each engine, empty."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meaning.db'}"
    pg_url: str = request.getfixturevalue("pg_url")
    empty_postgres(pg_url)
    return pg_url


def vectors_of(url: str) -> list[str]:
    """The model of every vector the store holds."""
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            rows = conn.execute("SELECT model FROM vectors").fetchall()
    else:
        import psycopg

        from botwire.backends.postgres import parse_url

        conninfo, schema, *_ = parse_url(url)
        with psycopg.connect(conninfo, options=f"-c search_path={schema}") as conn:
            rows = conn.execute(
                "SELECT vector_model FROM botwire_entries WHERE vector IS NOT NULL UNION ALL"
                " SELECT vector_model FROM botwire_list_items WHERE vector IS NOT NULL"
            ).fetchall()
    return sorted(model for (model,) in rows)


def test_meaning_finds_what_words_miss(url: str) -> None:
    mem = Memory("user-1", url, embedder=concepts)
    mem.set("trip", "We planned a trip to Portugal in May")
    mem.set("pet", {"note": "My cat likes tuna"})
    mem.set("age", 42)  # no text: no vector, never a hit by meaning
    assert mem.search(QUESTION) == []  # no value holds every word
    hits = mem.search(QUESTION, mode="meaning")
    assert [hit.key for hit in hits] == ["trip", "pet"]
    assert hits[0].value == "We planned a trip to Portugal in May"
    assert 0.5 < hits[0].score <= 1.0 and hits[1].score < 0.5


def test_what_is_written_unsearchable_has_no_vector(url: str) -> None:
    """No vector is made for a value or item written with ``searchable=False``, nor later for
    the namespace's values without one, so a search by meaning never finds it."""
    mem = Memory("unsearched-meaning", url, embedder=concepts)
    mem.set("trip", "We planned a trip to Portugal in May", searchable=False)
    mem.append("chat", {"content": "Flight to Lisbon booked"}, searchable=False)
    mem.set("pet", "My cat likes tuna")
    assert len(vectors_of(url)) == 1
    assert [hit.key for hit in mem.search(QUESTION, mode="meaning")] == ["pet"]
    assert len(vectors_of(url)) == 1
    mem.set("trip", "We planned a trip to Portugal in May")
    assert [hit.key for hit in mem.search(QUESTION, mode="meaning")] == ["trip", "pet"]
    mem.set("trip", "We planned a trip to Portugal in May", searchable=False)
    assert [hit.key for hit in mem.search(QUESTION, mode="meaning")] == ["pet"]
    # an embedder that read the value before it went out of the index stores no vector
    mem.set("late", "A trip to Lisbon")
    backend = mem.backend.backend  # type: ignore[attr-defined]  (under the embedder)
    (page,) = backend.execute([Unembedded("unsearched-meaning", "m", (0, -2), 500)])
    unit = next((entry_id, seq, text) for entry_id, seq, key, text in page if key == "late")
    mem.set("late", "A trip to Lisbon", searchable=False)
    vector = array("f", Embedder(concepts).query("A trip to Lisbon")).tobytes()
    (stored,) = backend.execute([Embed("unsearched-meaning", "m", ((*unit, vector),))])
    assert stored == 0
    assert [hit.key for hit in mem.search(QUESTION, mode="meaning")] == ["pet"]


def test_list_items_are_found_by_meaning_one_by_one(url: str) -> None:
    mem = Memory("user-1", url, embedder=concepts)
    mem.append(
        "chat",
        {"role": "user", "content": "I love jazz concerts"},
        {"role": "user", "content": "Flight to Lisbon booked"},
        {"role": "assistant", "content": "Noted, your manager meeting moved"},
    )
    (hit,) = mem.search(QUESTION, mode="meaning", limit=1)
    assert hit.key == "chat" and hit.value is None
    assert hit.items is not None and hit.items[0].position == 1
    (hit,) = mem.search(QUESTION, mode="meaning", limit=1, context=1)
    assert hit.context is not None
    assert [item.position for item in hit.context] == [0, 1, 2]


def test_the_ranking_is_the_cosine_of_every_stored_vector(url: str) -> None:
    """Differential: the order and scores equal a brute-force cosine over every value."""
    texts = [f"{a} {b}" for a in ("lisbon", "cat", "jazz", "deadline", "tuna")
             for b in ("trip", "dinner", "guitar", "sofa")]  # fmt: skip
    mem = Memory("many", url, embedder=concepts)
    mem.set_many({f"k{n:02d}": text for n, text in enumerate(texts)})
    embedder = Embedder(concepts)
    query = array("f", embedder.query("a trip to Porto"))

    def cosine(text: str) -> float:
        return sum(a * b for a, b in zip(array("f", embedder.query(text)), query, strict=True))

    expected = sorted(
        ((cosine(text), f"k{n:02d}") for n, text in enumerate(texts)),
        key=lambda pair: (-round(pair[0], 5), pair[1]),
    )
    hits = mem.search("a trip to Porto", mode="meaning", limit=20)
    assert [round(hit.score, 5) for hit in hits] == [round(score, 5) for score, _ in expected]
    tops = {key for score, key in expected if round(score, 5) == round(expected[0][0], 5)}
    assert hits[0].key in tops


def test_filters_limit_and_prefix_apply_as_in_a_word_search(url: str) -> None:
    mem = Memory("notes", url, embedder=concepts)
    for n in range(30):
        mem.set(f"a{n:02d}", {"kind": "travel" if n % 10 == 0 else "other",
                              "text": f"a trip to Lisbon number {n}"})  # fmt: skip
    mem.set("b", {"kind": "travel", "text": "Porto by train"})
    hits = mem.search(QUESTION, mode="meaning", where={"kind": "travel"}, limit=10)
    assert sorted(hit.key for hit in hits) == ["a00", "a10", "a20", "b"]
    assert [hit.key for hit in mem.search(QUESTION, mode="meaning", prefix="b")] == ["b"]
    assert len(mem.search(QUESTION, mode="meaning", limit=3)) == 3


def test_vectors_follow_the_data(url: str) -> None:
    mem = Memory("user-1", url, embedder=concepts)
    plain = Memory("user-1", url)  # no embedder: writes no vector
    mem.set("trip", "Lisbon in May")
    mem.append("chat", "Lisbon flight", "cat food", max_len=2)
    assert len(vectors_of(url)) == 3
    plain.set("trip", "a trip to Portugal")  # changed without a vector: its old one goes
    assert [hit.key for hit in mem.search(QUESTION, mode="meaning")] == ["chat"]
    mem.append("chat", "jazz tonight", max_len=2)  # the window drops "Lisbon flight"
    (hit,) = mem.search(QUESTION, mode="meaning", limit=5)
    assert hit.items is not None
    assert sorted(item.value for item in hit.items) == ["cat food", "jazz tonight"]
    assert len(vectors_of(url)) == 2
    mem.delete("chat")
    assert vectors_of(url) == [] and mem.search(QUESTION, mode="meaning") == []
    mem.set("trip", "Lisbon again")
    mem.clear()
    assert vectors_of(url) == []


def test_another_models_vectors_are_never_compared(url: str) -> None:
    def other(texts: list[str]) -> list[list[float]]:
        return [[float(len(text)), 1.0] for text in texts]

    Memory("user-1", url, embedder=other).set("short", "Lisbon")
    mem = Memory("user-1", url, embedder=concepts)
    mem.set("trip", "a trip to Portugal")
    assert [hit.key for hit in mem.search(QUESTION, mode="meaning")] == ["trip"]
    assert len(set(vectors_of(url))) == 2


def test_async_memory_and_async_embedder(url: str) -> None:
    async def aconcepts(texts: list[str]) -> list[list[float]]:
        await asyncio.sleep(0)
        return concepts(texts)

    async def main() -> list[Any]:
        mem = AsyncMemory("user-1", url, embedder=aconcepts)
        await mem.set("trip", "We planned a trip to Portugal")
        await mem.append("chat", "my cat purrs")
        return await mem.search(QUESTION, mode="meaning")

    assert [hit.key for hit in asyncio.run(main())] == ["trip", "chat"]


def test_bad_searches_are_refused(url: str) -> None:
    mem = Memory("user-1", url)
    mem.set("trip", "Lisbon")
    with pytest.raises(InvalidRequest, match="needs an embedder"):
        mem.search(QUESTION, mode="meaning")
    with pytest.raises(InvalidRequest, match="mode is one of"):
        mem.search(QUESTION, mode="vibes")  # type: ignore[arg-type]


def test_a_failing_embedder_writes_nothing(url: str) -> None:
    mem = Memory("user-1", url, embedder=broken)
    with pytest.raises(BackendUnavailable, match="embedding service is down"):
        mem.set("trip", "Lisbon")
    with pytest.raises(BackendUnavailable, match="returned 1 vectors for 2 texts"):
        Memory("user-1", url, embedder=lambda texts: [[1.0]]).append("chat", "a", "b")
    assert Memory("user-1", url).get("trip") is None and Memory("user-1", url).get("chat") is None


def test_a_server_whose_embedder_fails_answers_503_and_writes_nothing(tmp_path: Path) -> None:
    with Server(f"sqlite:///{tmp_path / 'down.db'}", "--embedder", "tests.helpers:broken") as s:
        answer = httpx.put(f"{s.url}/memory/user-1/trip", json={"value": "Lisbon"})
        assert answer.status_code == 503 and "embedding service is down" in answer.text
        asked = {"ns": "user-1", "q": "x", "mode": "meaning"}
        found = httpx.get(f"{s.url}/v1/search", params=asked)
        assert found.status_code == 503
        assert httpx.get(f"{s.url}/memory/user-1/trip").status_code == 404


def test_botwires_own_namespaces_are_never_embedded(tmp_path: Path) -> None:
    from botwire.backends.base import Put
    from botwire.backends.embedding import Embedding
    from botwire.backends.sqlite import SQLiteBackend

    seen: list[str] = []

    def recording(texts: list[str]) -> list[list[float]]:
        seen.extend(texts)
        return concepts(texts)

    backend = Embedding(SQLiteBackend(tmp_path / "own.db"), Embedder(recording, name="r"))
    secret = json.dumps({"url": "https://example.com/hook", "secret": "s3cr3t-signing-key"})
    backend.execute([Put("/webhooks", "sub:1", secret), Put("user-1", "trip", '"Lisbon"')])
    assert seen == ["Lisbon"]


def test_a_window_that_keeps_the_first_item_gives_each_item_its_own_vector(url: str) -> None:
    mem = Memory("user-1", url, embedder=concepts)
    system = {"role": "system", "text": "you love jazz music and guitar songs"}
    mem.append("log", system)
    mem.append("log", "a cat", "a trip to Lisbon", "my job deadline", max_len=2,
               keep_first={"role": "system"})  # fmt: skip
    assert mem.get("log") == [system, "my job deadline"]
    (hit,) = mem.search("jazz music and guitar songs", mode="meaning", limit=1)
    assert hit.items is not None and hit.items[0].position == 0  # its own vector, not "a trip"
    assert hit.score > 0.9
    assert len(vectors_of(url)) == 2


def test_hybrid_shows_word_matches_where_meaning_has_little_to_say(url: str) -> None:
    plain = Memory("before", url)
    plain.set("a", "Lisbon trip notes")
    plain.set("b", "more Lisbon notes")
    mem = Memory("before", url, embedder=concepts)  # nothing has a vector yet
    assert {hit.key for hit in mem.search("Lisbon", mode="auto", match="any")} == {"a", "b"}
    one = Memory("one-fact", url, embedder=concepts)
    one.set("fact:1", "The user is vegetarian")
    assert [hit.key for hit in one.search("vegetarian food", mode="hybrid", match="any")] == [
        "fact:1"
    ]


def test_a_server_with_an_embedder_embeds_for_its_clients(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'served.db'}"
    with Server(db, "--embedder", "tests.helpers:concepts") as server:
        mem = Memory("user-1", server.url)  # the client sends text only
        mem.set("trip", "We planned a trip to Portugal in May")
        mem.set("pet", "My cat likes tuna")
        mem.append("chat", "jazz tonight", "Flight to Lisbon booked")
        hits = mem.search(QUESTION, mode="meaning", limit=2)
        assert [hit.key for hit in hits] == ["chat", "trip"]
        hybrid = mem.search(QUESTION, mode="hybrid", match="any", limit=2)
        assert hybrid[0].key == "chat"
        assert hits[0].items is not None and hits[0].items[0].position == 1
        answer = httpx.get(
            f"{server.url}/v1/search",
            params={"ns": "user-1", "q": QUESTION, "mode": "meaning", "limit": 1},
        )
        assert answer.status_code == 200 and answer.json()["hits"][0]["key"] == "chat"
        with pytest.raises(InvalidRequest, match="the server embeds"):
            Memory("user-1", server.url, embedder=concepts)
    assert vectors_of(db) and len(set(vectors_of(db))) == 1  # written in the server's store


def test_a_server_without_an_embedder_refuses_a_search_by_meaning(tmp_path: Path) -> None:
    with Server(f"sqlite:///{tmp_path / 'plain.db'}") as server:
        mem = Memory("user-1", server.url)
        mem.set("trip", "Lisbon")
        with pytest.raises(InvalidRequest, match="needs an embedder"):
            mem.search(QUESTION, mode="meaning")
        answer = httpx.get(
            f"{server.url}/v1/search", params={"ns": "user-1", "q": "x", "mode": "meaning"}
        )
        assert answer.status_code == 400 and "needs an embedder" in answer.json()["detail"]
        answer = httpx.get(
            f"{server.url}/v1/search", params={"ns": "user-1", "q": "x", "mode": "vibes"}
        )
        assert answer.status_code in (400, 422)


def test_hybrid_finds_what_either_ranking_finds(url: str) -> None:
    mem = Memory("user-1", url, embedder=concepts)
    mem.set("trip", "We planned a trip to Portugal in May")  # meaning only
    mem.set("code", "my locker code is far far away: 4711")  # the words "far", only
    mem.set("pet", "My cat likes tuna")  # neither
    for n in range(20):
        mem.set(f"noise-{n}", f"an unrelated note number {n} about the weather")
    hits = mem.search(QUESTION, mode="hybrid", match="any", limit=3)
    assert {hit.key for hit in hits[:2]} == {"trip", "code"}
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    assert all(hit.score > 0 for hit in hits)  # only what stands out from the average
    words = mem.search(QUESTION, match="any", limit=3)
    meaning = mem.search(QUESTION, mode="meaning", limit=3)
    assert "trip" not in {hit.key for hit in words} and meaning[0].key == "trip"


def kept(mem: Memory, key: str) -> Any:
    """What the store keeps under ``key`` in botwire's namespace of calibrations."""
    (record,) = mem.backend.execute([Get("/meaning", key)])
    return None if record is None else json.loads(record.value)


def test_each_embedder_is_calibrated_once_and_the_weight_is_kept(url: str) -> None:
    from botwire.backends.search import calibration

    calls: list[int] = []

    def counted(texts: list[str]) -> list[list[float]]:
        calls.append(len(texts))
        return concepts(texts)

    calibration._known.clear()
    mem = Memory("user-1", url, embedder=Embedder(counted, name="counted-concepts"))
    mem.set("trip", "a trip to Portugal")
    before = sum(calls)
    mem.search(QUESTION, mode="hybrid", match="any")
    measured = sum(calls) - before
    assert measured > 1500  # the calibration's turns and questions
    stored = kept(mem, "weight:counted-concepts")
    assert stored is not None and stored["weight"] in calibration.WEIGHTS
    assert stored["hybrid"] >= max(stored["words"], stored["meaning"])
    calibration._known.clear()  # another process: reads the store's
    again = Memory("user-1", url, embedder=Embedder(counted, name="counted-concepts"))
    again.search(QUESTION, mode="hybrid", match="any")
    assert sum(calls) - before - measured <= 2  # the query only
    fixed = Embedder(counted, name="fixed", hybrid_weight=0.5)
    Memory("user-1", url, embedder=fixed).search(QUESTION, mode="hybrid", match="any")
    assert kept(mem, "weight:fixed") is None


def test_concurrent_first_hybrid_searches_calibrate_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from botwire.backends.search import calibration

    measured: list[str] = []
    real = calibration.calibrate

    def counted(embedder: Embedder) -> Any:
        measured.append(embedder.fingerprint)
        time.sleep(0.3)  # long enough for every thread to arrive
        return real(embedder)

    monkeypatch.setattr(calibration, "calibrate", counted)
    url = f"sqlite:///{tmp_path / 'once.db'}"
    mem = Memory("user-1", url, embedder=Embedder(concepts, name="concepts-once"))
    mem.set("trip", "a trip to Portugal")
    found: list[list[str]] = []
    threads = [
        threading.Thread(target=lambda: found.append(
            [hit.key for hit in mem.search(QUESTION, mode="hybrid", match="any")]))
        for _ in range(4)
    ]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert measured == ["concepts-once"] and len(found) == 4
    assert all(keys == found[0] for keys in found)


def test_a_background_embedder_is_calibrated_in_the_background(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow or remote model never holds a search up for its calibration (1,572 texts):
    hybrid ranks by words alone until it is measured, then by both."""
    import threading

    from botwire.backends.search import calibration

    gate = threading.Event()

    def slow(embedder: Embedder) -> Any:
        gate.wait(10)
        return calibration.Calibration(1000.0, 0.5, 0.7, 0.7)  # meaning alone, say

    monkeypatch.setattr(calibration, "calibrate", slow)
    url = f"sqlite:///{tmp_path / 'later.db'}"
    remote = Embedder(concepts, name="remote-later", background=True)
    mem = Memory("user-1", url, embedder=remote)
    mem.set("trip", "a trip to Portugal")
    mem.set("cat", "Lisbon cats")
    assert mem.backlog(wait=10) == 0
    started = time.monotonic()
    hits = mem.search(QUESTION, mode="hybrid", match="any")
    assert time.monotonic() - started < 2
    assert [hit.key for hit in hits] == ["cat"]  # words alone: "trip" shares none
    gate.set()
    deadline = time.monotonic() + 20
    while "remote-later" not in calibration._known and time.monotonic() < deadline:
        time.sleep(0.05)
    assert kept(mem, "weight:remote-later") == {"weight": 1000.0, "words": 0.5,
                                                "meaning": 0.7, "hybrid": 0.7}  # fmt: skip
    assert mem.search(QUESTION, mode="hybrid", match="any")[0].key == "trip"


def test_a_failed_background_calibration_waits_before_it_is_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botwire.backends.search import calibration

    tried: list[float] = []

    def down(embedder: Embedder) -> Any:
        tried.append(time.monotonic())
        raise ConnectionError("the embedding service is down")

    monkeypatch.setattr(calibration, "calibrate", down)
    monkeypatch.setattr(calibration, "RETRY_FIRST", 0.5)
    mem = Memory("user-1", f"sqlite:///{tmp_path / 'down.db'}",
                 embedder=Embedder(concepts, name="down-later", background=True))  # fmt: skip
    mem.set("cat", "Lisbon cats")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(tried) < 2:
        assert [hit.key for hit in mem.search(QUESTION, mode="hybrid", match="any")] == ["cat"]
        time.sleep(0.01)
    assert len(tried) == 2 and tried[1] - tried[0] >= 0.5  # not at every search


def test_calibration_takes_words_alone_from_a_weak_model_and_meaning_from_a_good_one() -> None:
    """On the calibration conversations (and, below, on the recall benchmark's, which it
    never saw), hybrid is never below the better of words and meaning."""
    import hashlib

    from botwire.backends.search.calibration import calibrate
    from botwire.embedders import wordllama

    def hashing(texts: list[str]) -> list[list[float]]:
        vectors = []
        for text in texts:
            vector = [0.0] * 64
            for word in text.lower().split():
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
                vector[h % 64] += 1.0 if (h >> 7) & 1 else -1.0
            vectors.append(vector)
        return vectors

    weak, good = calibrate(Embedder(hashing)), calibrate(wordllama())
    assert weak.weight < good.weight and weak.hybrid >= max(weak.words, weak.meaning)
    assert good.weight >= 1 and good.hybrid >= max(good.words, good.meaning)
    assert good.meaning > good.words > weak.meaning

    root = Path(__file__).resolve().parent.parent
    lines = (root / "bench" / "recall_conversations.jsonl").read_text().splitlines()
    held_out = [json.loads(line) for line in lines[:6]]
    for embedder, weight in ((Embedder(hashing), weak.weight), (wordllama(), good.weight)):
        found = _recalls(held_out, embedder, weight)
        assert found["hybrid"] >= max(found["words"], found["meaning"]) - 0.005, found


def _recalls(
    conversations: list[dict[str, Any]], embedder: Embedder, weight: float
) -> dict[str, float]:
    """recall@10 of each mode on ``conversations`` (a store in a temporary folder)."""
    import tempfile

    found: dict[str, list[float]] = {"words": [], "meaning": [], "hybrid": []}
    with tempfile.TemporaryDirectory() as folder:
        embedder.hybrid_weight = weight
        for conv in conversations:
            mem = Memory(conv["id"], f"sqlite:///{folder}/held-out.db", embedder=embedder)
            mem.set_many({t["id"]: {"speaker": t["speaker"], "text": t["text"],
                                    "session": t["session"]} for t in conv["turns"]})  # fmt: skip
            for q in conv["questions"]:
                for mode in found:
                    hits = mem.search(q["question"], match="any", limit=10, mode=mode)  # type: ignore[arg-type]
                    keys = {hit.key for hit in hits}
                    found[mode].append(len(keys & set(q["evidence"])) / len(q["evidence"]))
    return {mode: sum(values) / len(values) for mode, values in found.items()}


def test_every_adapter_that_recalls_uses_both_once_an_embedder_is_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``BOTWIRE_EMBEDDER`` is the whole change: the tools (MCP's, CrewAI's), the LangChain
    retriever and AutoGen's memory recall by words and meaning (they share one recall), and so
    do LangGraph's store (without an ``index``) and a search across namespaces."""
    from autogen_core.memory import MemoryContent

    from botwire.autogen import BotWireMemory
    from botwire.langchain import BotWireRetriever
    from botwire.tools import MemoryTools

    url = f"sqlite:///{tmp_path / 'adapters.db'}"
    question = "How far is it from Lisbon to Porto?"
    before = Memory("facts", url)
    before.set("trip", "We planned a trip to Portugal in May")
    assert "trip" not in MemoryTools(before).search_memory(question).split("newest")[0]
    monkeypatch.setenv("BOTWIRE_EMBEDDER", "tests.helpers:concepts")
    mem = Memory("facts", url)
    mem.set("trip", "We planned a trip to Portugal in May")  # now with its vector
    mem.set("pet", "My cat likes tuna")
    for n in range(10):
        mem.set(f"note-{n}", f"the weather on day {n} was mild")
    answer = MemoryTools(mem).search_memory(question, limit=1)
    assert "trip" in answer and "matched by meaning" in answer
    retriever = BotWireRetriever(namespace="facts", url=url, k=1, fill=False)
    (doc,) = retriever.invoke(question)
    assert doc.id == "trip" and doc.metadata["relevant"]

    async def autogen() -> Any:
        memory = BotWireMemory("agent", url=url, k=1)
        for text in ["We planned a trip to Portugal in May", "My cat likes tuna"]:
            await memory.add(MemoryContent(content=text, mime_type="text/plain"))
        return await memory.query(MemoryContent(content=question, mime_type="text/plain"))

    (found,) = asyncio.run(autogen()).results
    assert found.content == "We planned a trip to Portugal in May"
    from botwire import search_namespaces
    from botwire.langgraph import BotWireStore

    store = BotWireStore(url=url)
    store.put(("user-1",), "trip", {"text": "A vacation in Portugal in May"})
    for n in range(5):  # newer, and no word in common either
        store.put(("user-1",), f"note-{n}", {"text": f"the weather on day {n} was mild"})
    (item,) = store.search(("user-1",), query=question, limit=1)
    assert item.key == "trip" and item.score is not None
    (hit,) = search_namespaces(question, "fac", match="any", limit=1, mode="auto", url=url)
    assert hit.key == "trip"


def test_reindex_embeds_what_was_written_before_and_what_another_model_made(url: str) -> None:
    plain = Memory("user-1", url)
    plain.set("trip", "We planned a trip to Portugal in May")
    plain.set("age", 42)  # no text: nothing to embed
    plain.append("chat", "jazz tonight", "Flight to Lisbon booked")
    for n in range(600):  # more than a page
        plain.set(f"note-{n:03d}", f"the weather on day {n} was mild")
    Memory("other-user", url).set("trip", "Lisbon")  # another namespace: not this memory's
    mem = Memory("user-1", url, embedder=concepts)
    assert mem.search(QUESTION, mode="meaning") == []  # nothing has a vector yet
    read: list[int] = []
    assert mem.reindex(read.append) == 603  # trip, two items, the notes
    assert sum(read) == 604 and len(read) == 2  # and the number: read, not embedded
    assert [hit.key for hit in mem.search(QUESTION, mode="meaning", limit=2)] == ["chat", "trip"]
    assert mem.reindex() == 0  # nothing left
    other = Memory("user-1", url, embedder=Embedder(concepts, name="concepts-v2"))
    assert other.reindex() == 603  # another model: every vector made again
    assert len(set(vectors_of(url))) == 1  # replaced, never mixed
    with pytest.raises(InvalidRequest, match="needs the memory's embedder"):
        plain.reindex()


def test_reindex_never_stores_a_vector_of_a_value_that_changed_meanwhile(url: str) -> None:
    plain = Memory("user-1", url)
    plain.set("trip", "We planned a trip to Portugal in May")

    def slow(texts: list[str]) -> list[list[float]]:
        plain.set("trip", "now it is about cats")  # written while the old text is embedded
        return concepts(texts)

    mem = Memory("user-1", url, embedder=Embedder(slow, name="slow"))
    assert mem.reindex() == 0
    assert vectors_of(url) == []


def test_botwire_reindex_with_a_progress_bar(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    for ns in ("alice", "bob"):
        Memory(ns, url).set("trip", "We planned a trip to Portugal in May")
    done = run_python(
        f"from botwire.cli import main; main(['reindex', '--url', {url!r}, '--embedder',"
        " 'tests.helpers:concepts'])"
    )
    assert "2 vectors stored in 2 namespaces" in done
    mem = Memory("bob", url, embedder=concepts)
    assert [hit.key for hit in mem.search(QUESTION, mode="meaning")] == ["trip"]


def test_a_background_embedder_never_holds_a_write_up(url: str) -> None:
    import threading

    gate = threading.Event()

    def remote(texts: list[str]) -> list[list[float]]:
        gate.wait(10)  # a slow service
        return concepts(texts)

    mem = Memory("user-1", url, embedder=Embedder(remote, name="remote", background=True))
    started = time.monotonic()
    mem.set("trip", "We planned a trip to Portugal in May")
    mem.append("chat", "jazz tonight", "my cat purrs")
    assert time.monotonic() - started < 2  # the writes did not wait for the service
    assert mem.backlog() == 3 and vectors_of(url) == []
    assert [hit.key for hit in mem.search("Portugal trip")] == ["trip"]  # by words at once
    gate.set()
    assert mem.backlog(wait=10) == 0
    assert len(vectors_of(url)) == 3
    assert mem.search(QUESTION, mode="meaning", limit=1)[0].key == "trip"
    assert Memory("user-1", url).backlog() == 0  # no embedder: nothing waits


def test_a_background_embedder_that_fails_is_tried_again(url: str) -> None:
    calls: list[int] = []

    def flaky(texts: list[str]) -> list[list[float]]:
        calls.append(len(texts))
        if len(calls) == 1:
            raise ConnectionError("the embedding service is down")
        return concepts(texts)

    mem = Memory("user-1", url, embedder=Embedder(flaky, name="flaky", background=True))
    mem.set("trip", "We planned a trip to Portugal in May")  # the write succeeds
    assert mem.get("trip") == "We planned a trip to Portugal in May"
    assert mem.backlog(wait=10) == 0 and len(calls) >= 2
    assert len(vectors_of(url)) == 1


# -- the process's copy of a namespace's vectors (SQLite) ------------------------------------

WORDS = ["lisbon", "porto", "cat", "tuna", "jazz", "guitar", "deadline", "sofa", "trip", "red"]


def _fresh(url: str, query: str, **options: Any) -> list[Any]:
    """A meaning search by a backend of its own, which reads every vector from the store."""
    from botwire.backends import create_backend

    backend = create_backend(url)
    try:
        return Memory("copy", backend=backend, embedder=concepts).search(
            query, mode="meaning", limit=40, **options
        )
    finally:
        backend.close()


def test_the_copy_of_a_namespaces_vectors_follows_every_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Differential: after every kind of write, by this process or another, with or without
    an embedder, a search by meaning through the process's copy equals one that reads every
    vector from the store; and the copy catches up with a few writes rather than reading
    the namespace again."""
    import random

    from botwire.backends.search.matrix import Matrices

    loads: list[str] = []
    load = Matrices.load

    def counted(self: Matrices, ns: str, *args: Any) -> Any:
        loads.append(f"{id(self)} {ns}")
        return load(self, ns, *args)

    monkeypatch.setattr(Matrices, "load", counted)
    url = f"sqlite:///{tmp_path / 'copy.db'}"
    mem = Memory("copy", url, embedder=concepts)
    plain = Memory("copy", url)  # writes no vector: a value it changes loses its own
    other = Memory("copy-2", url, embedder=concepts)
    rng = random.Random(3)

    def text() -> str:
        return " ".join(rng.sample(WORDS, rng.randint(1, 3)))

    mem.set_many({f"k{n:02d}": text() for n in range(30)})
    for step in range(150):
        key = f"k{rng.randrange(40):02d}"
        kind = rng.randrange(9)
        if kind == 0:
            plain.set(key, text())
        elif kind == 1:
            mem.set(key, rng.randrange(100))  # no text: no vector
        elif kind == 2:
            mem.delete(key)
        elif kind == 3:
            mem.append("chat", text(), text(), max_len=rng.choice([None, 3]))
        elif kind == 4 and step % 50 == 49:
            mem.clear()
        elif kind == 5:
            other.set(key, text())  # another namespace's vectors
        elif kind == 6:
            run_python(
                "from botwire import Memory\nfrom tests.helpers import concepts\n"
                f"Memory('copy', {url!r}, embedder=concepts).set({key!r}, {text()!r})"
            )
        else:
            mem.set(key, {"note": text()})
        query = text()
        assert mem.search(query, mode="meaning", limit=40) == _fresh(url, query), step
    ours = loads[0]  # this process's store's copies (a fresh search has its own)
    assert ours.endswith(" copy") and loads.count(ours) <= 4  # the first search, and clears


def test_a_key_written_in_place_of_a_deleted_one_is_not_found_by_its_vector(
    tmp_path: Path,
) -> None:
    """The newest entry's row is used again by the next key written: the copy never scores
    the new key by the old one's vector."""
    url = f"sqlite:///{tmp_path / 'reuse.db'}"
    mem = Memory("copy", url, embedder=concepts)
    mem.set("a", "cat sofa")
    mem.set("b", "a trip to Lisbon")
    assert mem.search(QUESTION, mode="meaning")[0].key == "b"
    mem.delete("b")
    mem.set("c", 42)  # no text, no vector
    assert [hit.key for hit in mem.search(QUESTION, mode="meaning")] == ["a"]
    assert mem.search(QUESTION, mode="meaning") == _fresh(url, QUESTION)[:10]


def test_a_copy_behind_the_trimmed_changes_reads_the_namespace_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botwire.backends.sqlite import vectors

    monkeypatch.setattr(vectors, "CHANGES_KEPT", 5)
    url = f"sqlite:///{tmp_path / 'trim.db'}"
    mem = Memory("copy", url, embedder=concepts)
    mem.set_many({f"k{n}": "cat sofa" for n in range(20)})
    mem.search(QUESTION, mode="meaning")
    writer = Memory("copy", url, embedder=concepts, timeout=31)  # a backend of its own
    for n in range(20):
        writer.set(f"k{n}", "a trip to Lisbon" if n % 2 else "jazz")
        time.sleep(0.06)  # the trim runs at most once a second, in writes
    with sqlite3.connect(tmp_path / "trim.db") as conn:
        (kept,) = conn.execute("SELECT count(*) FROM vector_changes").fetchone()
    assert kept < 40
    assert mem.search(QUESTION, mode="meaning", limit=40) == _fresh(url, QUESTION)
    found = mem.search(QUESTION, mode="meaning", limit=10)
    assert {hit.key for hit in found} == {f"k{n}" for n in range(1, 20, 2)}


def test_a_process_keeps_the_copies_it_searched_last_within_its_budget() -> None:
    from botwire.backends.search.matrix import Matrices

    vector = array("f", [0.5, 0.5, 0.5, 0.5]).tobytes()
    rows = [(n, -1, f"k{n}", vector) for n in range(10)]  # 160 bytes a copy
    matrices = Matrices(budget=350)
    for ns in ("a", "b"):
        assert matrices.load(ns, "m", 1, rows) is not None
    assert matrices.get("a", "m") is not None  # searched last: "b" goes first
    matrices.load("c", "m", 1, rows)
    assert matrices.get("b", "m") is None
    assert matrices.get("a", "m") is not None and matrices.get("c", "m") is not None
    assert matrices.load("d", "m", 1, []) is None  # nothing to keep
    copy = matrices.get("a", "m")
    assert copy is not None
    copy.drop(3, -1)
    copy.put(11, 0, "chat", array("f", [1, 0, 0, 0]).tobytes())  # takes the row 3 left
    found = copy.similar(array("f", [1, 0, 0, 0]).tobytes(), prefix="ch")
    assert found.best(5) == [[11, 0, 1.0]]
    assert len(copy.similar(vector)) == 10
    for n in range(20, 40):  # it grows past the budget: the others go, the newest stays
        copy.put(n, -1, f"k{n}", vector)
    matrices.fit()
    assert matrices.get("c", "m") is None and matrices.get("a", "m") is copy


def test_values_without_a_vector_of_the_model_are_pointed_out_once(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The first search by meaning of a namespace in a process says when it holds values that
    no vector of the model stands for (written without the embedder, or by another model),
    and how to embed them; a namespace whose values all have one, or hold no text, says
    nothing."""
    from botwire.backends import embedding

    embedding._looked.clear()  # as in a process of its own
    Memory("user-1", url).set("trip", "We planned a trip to Portugal")  # no embedder
    Memory("user-1", url, embedder=broken_model).set("cat", "My cat likes tuna")
    Memory("user-2", url).set("count", 3)  # no text: nothing to embed
    mem = Memory("user-1", url, embedder=concepts)
    mem.set("pet", "a cat")
    with caplog.at_level("WARNING", logger="botwire"):
        mem.search(QUESTION, mode="meaning")
        mem.search(QUESTION, mode="hybrid", match="any")
        Memory("user-1", url, embedder=concepts).search(QUESTION, mode="meaning")  # once
        Memory("user-2", url, embedder=concepts).search(QUESTION, mode="meaning")
    (record,) = [r for r in caplog.records if "without a vector" in r.getMessage()]
    assert "'user-1'" in record.getMessage() and "botwire reindex user-1" in record.getMessage()
    assert mem.reindex() == 2
    caplog.clear()
    fresh = Memory("user-1", url, embedder=Embedder(concepts, name="concepts-again"))
    with caplog.at_level("WARNING", logger="botwire"):
        assert fresh.reindex() == 3 and fresh.search(QUESTION, mode="meaning")
    assert not [r for r in caplog.records if "without a vector" in r.getMessage()]


def broken_model(texts: list[str]) -> list[list[float]]:
    """Another model: the same dimensions, other vectors."""
    return [[1.0] + [0.0] * (len(vector) - 1) for vector in concepts(texts)]


def test_stats_count_each_models_vectors(url: str) -> None:
    from botwire.backends import open_backend
    from botwire.backends.base import Stats

    Memory("user-1", url, embedder=concepts).set_many({"a": "Lisbon", "b": "cat", "n": 3})
    Memory("user-1", url, embedder=concepts).append("chat", "jazz", "sofa")
    Memory("user-2", url, embedder=broken_model).set("c", "tuna")
    (held,) = open_backend(url).execute([Stats()])
    fingerprints = {Embedder(concepts).fingerprint, Embedder(broken_model).fingerprint}
    assert sorted(held["vectors"].values()) == [1, 4] and set(held["vectors"]) == fingerprints
    if url.startswith("sqlite"):
        shown = run_python(
            f"import sys; from botwire.cli import main; sys.exit(main(['stats', '--url', {url!r}]))"
        )
        assert f"4 vectors of {Embedder(concepts).fingerprint}" in shown.split("vectors: ")[1]


def test_a_batch_that_rolls_back_leaves_the_copy_of_the_vectors_as_committed(
    tmp_path: Path,
) -> None:
    """A search in a batch that writes sees the batch's own vectors; when the batch then
    fails, the process's copy of the vectors never keeps them (a later write would take
    their place in the record of changes)."""
    from botwire import VersionConflict
    from botwire.backends import open_backend
    from botwire.backends.base import Put, Search, Vectors

    def unit(*xs: float) -> bytes:
        norm = sum(x * x for x in xs) ** 0.5
        return array("f", [x / norm for x in xs]).tobytes()

    backend = open_backend(f"sqlite:///{tmp_path / 'rollback.db'}")
    query = Vectors("m", (unit(0, 1, 0),))

    def search() -> list[tuple[str, float]]:
        (hits,) = backend.execute([Search("ns", "x", mode="meaning", vectors=query, limit=5)])
        return [(hit.key, round(hit.score, 3)) for hit in hits]

    backend.execute([Put("ns", "a", '"apple"', vectors=Vectors("m", (unit(1, 0, 0),)))])
    assert search() == [("a", 0.0)]
    with pytest.raises(VersionConflict):
        backend.execute([
            Put("ns", "b", '"banana"', vectors=Vectors("m", (unit(0, 1, 0),))),
            Search("ns", "x", mode="meaning", vectors=query, limit=5),
            Put("ns", "a", '"x"', if_version=999),
        ])  # fmt: skip
    assert search() == [("a", 0.0)]
    backend.execute([Put("ns", "c", '"cherry"', vectors=Vectors("m", (unit(0, 0, 1),)))])
    assert sorted(search()) == [("a", 0.0), ("c", 0.0)]


def test_a_list_shows_its_items_by_meaning_beyond_the_first_candidates(url: str) -> None:
    """Among hundreds of documents more similar than most of its items, a list found by
    meaning still shows the items the search may show (its less similar ones too)."""
    mem = Memory("many", url, embedder=concepts)
    mem.set_many({f"v{n:03d}": "a trip to Lisbon" for n in range(300)})
    mem.append("chat", QUESTION, *[f"jazz and a cat {n}" for n in range(20)])
    hits = mem.search(QUESTION, mode="meaning", limit=40, distinct=False)
    (chat,) = [hit for hit in hits if hit.key == "chat"]
    assert chat.items is not None and len(chat.items) == 21


def test_a_list_is_short_of_items_only_where_more_of_them_are_in_scope() -> None:
    """A meaning search takes more candidates for a list that shows fewer items than it may
    only while the list holds more in scope: one of two items is shown whole."""
    import numpy as np

    from botwire.backends.search.meaning import Similar

    def row(entry: int, seq: int, kind: int = 1, near: int = 0) -> tuple[Any, ...]:
        return ("ns", f"k{entry}", 1.0, 0, 0, kind, 0, seq, 1, "v", near, 1, 1, 1.0, 40, entry)

    entries = [1, 1, 2, 2, 2, 2, 2, 3]
    for ids in (entries, np.array(entries)):  # without numpy, and with it
        similar = Similar(ids, [0, 1, 0, 1, 2, 3, 4, -1], np.zeros(8, dtype=np.float32))
        assert not similar.short([row(1, 0), row(1, 1), row(3, -1, kind=0)], 10)
        assert similar.short([row(2, 0), row(2, 1), row(2, 2, near=1)], 10)
        assert not similar.short([row(2, n) for n in range(5)], 10)
        assert not similar.short([row(2, 0), row(2, 1)], 2)
