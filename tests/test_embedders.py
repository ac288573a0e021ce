"""Embedders: every way to configure one becomes an :class:`Embedder` of unit vectors with a
fingerprint of its model; what is not one is refused with a clear error."""

from __future__ import annotations

import asyncio
import math
from array import array
from typing import Any

import pytest

from botwire import InvalidRequest
from botwire.embedders import Embedder, resolve, wordllama

from .helpers import concepts


def unpack(vector: bytes) -> list[float]:
    return list(array("f", vector))


def cosine(a: bytes, b: bytes) -> float:
    return sum(x * y for x, y in zip(unpack(a), unpack(b), strict=True))


def embedder_of(spec: Any) -> Embedder:
    embedder = resolve(spec)
    assert embedder is not None
    return embedder


def letters(texts: list[str]) -> list[list[float]]:
    """Counts of a, b and c: a model of three dimensions."""
    return [[text.count("a") + 1.0, text.count("b"), text.count("c")] for text in texts]


async def aletters(texts: list[str]) -> list[list[float]]:
    await asyncio.sleep(0)
    return letters(texts)


def test_a_callable_embeds_to_unit_vectors() -> None:
    embedder = resolve(letters)
    assert isinstance(embedder, Embedder)
    first, second = embedder.documents(["aab", "c"])
    assert math.isclose(sum(x * x for x in unpack(first)), 1.0, rel_tol=1e-6)
    assert math.isclose(cosine(first, embedder.query("aab")), 1.0, rel_tol=1e-6)
    assert embedder.dims == 3 and embedder.documents([]) == []
    assert cosine(first, second) < 0.7


def test_every_way_to_name_an_embedder() -> None:
    by_name = embedder_of("tests.test_embedders:letters")
    assert by_name.documents(["ab"]) == embedder_of(letters).documents(["ab"])
    index = resolve({"embed": letters, "dims": 3, "fields": ["$"]})  # LangGraph's index config
    assert index is not None and index.documents(["ab"]) == by_name.documents(["ab"])
    assert resolve(None) is None and resolve(index) is index


def test_a_langchain_embeddings_embeds_documents_and_queries_its_own_way() -> None:
    from langchain_core.embeddings import DeterministicFakeEmbedding

    fake = DeterministicFakeEmbedding(size=16)
    embedder = resolve(fake)
    assert embedder is not None
    (vector,) = embedder.documents(["hello"])
    expected = fake.embed_documents(["hello"])[0]
    norm = math.sqrt(sum(x * x for x in expected))
    assert unpack(vector) == pytest.approx([x / norm for x in expected], rel=1e-5)
    assert asyncio.run(embedder.aquery("hello")) == embedder.query("hello")


def test_an_async_embedder_works_from_sync_and_async_code() -> None:
    embedder = resolve(aletters)
    assert embedder is not None
    assert embedder.documents(["ab"]) == embedder_of(letters).documents(["ab"])
    assert asyncio.run(embedder.adocuments(["ab"])) == embedder.documents(["ab"])

    async def inside_a_loop() -> None:
        with pytest.raises(InvalidRequest, match="AsyncMemory"):
            embedder.documents(["ab"])

    asyncio.run(inside_a_loop())


def test_a_sync_embedder_runs_off_the_event_loop() -> None:
    threads: list[Any] = []

    def record(texts: list[str]) -> list[list[float]]:
        import threading

        threads.append(threading.current_thread())
        return letters(texts)

    embedder = resolve(record)
    assert embedder is not None
    asyncio.run(embedder.adocuments(["a"]))
    import threading

    assert threads and threads[0] is not threading.main_thread()


def test_the_fingerprint_tells_models_apart() -> None:
    def three(texts: list[str]) -> list[list[float]]:
        return letters(texts)

    def other(texts: list[str]) -> list[list[float]]:
        return [[b, a, c] for a, b, c in letters(texts)]

    def four(texts: list[str]) -> list[list[float]]:
        return [[*vector, 1.0] for vector in letters(texts)]

    models = {"letters": letters, "three": three, "other": other, "four": four}
    prints = {name: embedder_of(fn).fingerprint for name, fn in models.items()}
    assert prints["letters"] == prints["three"]  # the same model under another name
    assert len({prints["letters"], prints["other"], prints["four"]}) == 3
    assert prints["four"].startswith("4:") and prints["letters"].startswith("3:")
    assert Embedder(letters, name="letters-v1").fingerprint == "letters-v1"
    assert asyncio.run(embedder_of(aletters).afingerprint()) == prints["letters"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (42, "cannot embed with 42"),
        ("letters", "module:function"),
        ("tests.test_embedders:missing", "cannot load the embedder"),
        ("no_such_module_anywhere:fn", "cannot load the embedder"),
        ({"dims": 3}, "needs 'embed'"),
    ],
)
def test_what_is_not_an_embedder_is_refused(spec: Any, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        resolve(spec)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (lambda texts: [[1.0, 0.0]], "returned 1 vectors for 2 texts"),
        (lambda texts: [[1.0, 0.0], [1.0]], "1 dimensions after vectors of 2"),
        (lambda texts: [[1.0, "x"], [1.0, 2.0]], "lists of numbers"),
        (lambda texts: 7, "lists of numbers"),
        (lambda texts: [[math.nan, 1.0], [1.0, 2.0]], "non-finite"),
    ],
)
def test_an_embedder_that_answers_wrong_is_refused(answer: Any, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        Embedder(answer).documents(["one", "two"])


def test_the_test_embedder_knows_related_words() -> None:
    embedder = Embedder(concepts)
    question, trip, cat = embedder.documents(
        ["How far is Lisbon from Porto?", "We planned a trip to Portugal", "My cat likes tuna"]
    )
    assert cosine(question, trip) > 0.5 > cosine(question, cat)


def test_wordllama_loads_from_its_wheel_and_finds_meaning() -> None:
    import logging
    import subprocess
    import sys

    embedder = wordllama()  # the tests refuse any connection off this machine
    question, trip, cat = embedder.documents(
        ["How far is Lisbon from Porto?", "We planned a trip to Portugal", "My cat likes tuna"]
    )
    assert embedder.dims == 256 and embedder.fingerprint == "wordllama-l2_supercat-256"
    assert cosine(question, trip) > cosine(question, cat)
    assert embedder_of("botwire.embedders:wordllama").fingerprint == embedder.fingerprint
    # Its import sets up the root logger (INFO to stderr); loading it here leaves an
    # application's logging as it was.
    code = (
        "import logging; from botwire.embedders import wordllama; wordllama(); "
        "r = logging.getLogger(); print(r.level, len(r.handlers))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(logging.WARNING), "0"]
