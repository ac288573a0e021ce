"""How much a hybrid search weighs meaning beside words, calibrated for each embedder.

A fixed weight cannot serve every model: fused with a weak model's ranking, words lose recall
(plain reciprocal rank fusion with a 64-dimension hashing model: below words alone), while a
good model's ranking beats words by itself. So each embedder is measured once, on conversations
shipped with botwire (``calibration.jsonl``: 8 users, 1,324 turns, 248 questions with labelled
answers, made by the generator of the recall benchmark with another seed, so the benchmark's own
conversations are never seen; with half as many, a weak model's chance gain of one question
picked a weight that lost recall on the benchmark): every turn is stored, every question
asked by words and by meaning, and the fused ranking's recall@10 computed for each weight of
:data:`WEIGHTS`, from ``0`` (words alone) to ``1000`` (meaning alone). The best weight wins
(the smaller on a tie), so on these conversations hybrid is never below the better of the two.
The weight is kept in the store (botwire's own namespace ``/meaning``, under the embedder's
fingerprint), for every process; embedding the 1,572 texts is the whole cost, once per model
(half a second with WordLlama here).
"""

from __future__ import annotations

import json
import logging
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

from botwire.backends.base import Backend, Get, Put, Search, SearchHit
from botwire.backends.search.meaning import HYBRID_POOL, Similar, Spread, embed_text, fuse
from botwire.embedders import Embedder

WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 1000.0)
"""The weights tried, from words alone to meaning alone."""
NAMESPACE = "/meaning"
"""Where a store keeps each embedder's calibration (botwire's own: never logged or found)."""
DATA = Path(__file__).with_name("calibration.jsonl")


class Calibration(NamedTuple):
    """An embedder's measure: the weight chosen and the recall@10 of each ranking."""

    weight: float
    words: float
    meaning: float
    hybrid: float


_known: dict[str, float] = {}
"""Weights this process read or measured, by fingerprint."""
_measuring: dict[str, threading.Lock] = {}
"""A lock per fingerprint: one thread of the process measures it, the others wait for it."""
_later: set[str] = set()
"""Fingerprints a thread of the process is measuring in the background."""
_failed: dict[str, tuple[float, int]] = {}
"""For a background calibration that failed: when to try again, and how many times it did."""
RETRY_FIRST = 30.0
RETRY_MOST = 3600.0
"""Seconds before a failed background calibration is tried again: doubling from the first to
the most."""
_guard = threading.Lock()
log = logging.getLogger("botwire")


def hybrid_weight(backend: Backend, embedder: Embedder) -> float:
    """The weight of ``embedder``'s ranking in a hybrid search on ``backend``'s store: the
    embedder's own when it was given one, else the store's calibration of it (measured now,
    and kept, when the store has none: by one thread of the process, while the others wait).
    A ``background`` embedder (slow or remote) is measured by a thread of its own, and until
    then a hybrid search ranks by words alone (0); one that failed is tried again after a
    pause that doubles each time (:data:`RETRY_FIRST`)."""
    if embedder.hybrid_weight is not None:
        return embedder.hybrid_weight
    fingerprint = embedder.fingerprint
    if fingerprint in _known:
        return _known[fingerprint]
    if embedder.background:
        with _guard:
            if fingerprint in _later or time.monotonic() < _failed.get(fingerprint, (0.0, 0))[0]:
                return 0.0
            _later.add(fingerprint)
        threading.Thread(
            target=_measure_later, args=(backend, embedder), name="botwire-calibration",
            daemon=True,
        ).start()  # fmt: skip
        return 0.0
    with _guard:
        lock = _measuring.setdefault(fingerprint, threading.Lock())
    with lock:
        if fingerprint not in _known:
            _known[fingerprint] = _stored_or_measured(backend, embedder)
    return _known[fingerprint]


def _measure_later(backend: Backend, embedder: Embedder) -> None:
    """Measure a background embedder (see :func:`hybrid_weight`); a failure is logged, and
    the next hybrid search tries again."""
    try:
        _known[embedder.fingerprint] = _stored_or_measured(backend, embedder)
    except Exception:
        log.warning("calibrating %r for hybrid search failed; words alone meanwhile",
                    embedder, exc_info=True)  # fmt: skip
        failures = _failed.get(embedder.fingerprint, (0.0, 0))[1] + 1
        pause = min(RETRY_MOST, RETRY_FIRST * 2 ** min(failures - 1, 20))
        _failed[embedder.fingerprint] = (time.monotonic() + pause, failures)
    finally:
        with _guard:
            _later.discard(embedder.fingerprint)


def _stored_or_measured(backend: Backend, embedder: Embedder) -> float:
    """The store's calibration of ``embedder``, measured and kept when it has none."""
    key = _key(embedder.fingerprint)
    (record,) = backend.execute([Get(NAMESPACE, key)])
    if record is not None and record.value is not None:
        return float(json.loads(record.value)["weight"])
    found = calibrate(embedder)
    backend.execute([Put(NAMESPACE, key, json.dumps(found._asdict()))])
    return found.weight


def calibrate(embedder: Embedder) -> Calibration:
    """Measure ``embedder`` on the calibration conversations (see the module's docstring)."""
    from botwire.backends.sqlite import SQLiteBackend

    conversations = [json.loads(line) for line in DATA.read_text().splitlines()]
    asked: list[tuple[list[SearchHit], list[SearchHit], Spread, list[str]]] = []
    with tempfile.TemporaryDirectory(prefix="botwire-calibration-") as folder:
        backend = SQLiteBackend(Path(folder) / "calibration.db", history=0)
        try:
            for conv in conversations:
                asked += _ask(backend, embedder, conv)
        finally:
            backend.close()
    recalls = {
        weight: statistics.mean(
            _recall(fuse(words, meaning, spread, 10, weight), evidence)
            for words, meaning, spread, evidence in asked
        )
        for weight in WEIGHTS
    }
    best = max(WEIGHTS, key=lambda weight: (recalls[weight], -weight))
    return Calibration(best, recalls[0.0], recalls[WEIGHTS[-1]], recalls[best])


def _ask(
    backend: Backend, embedder: Embedder, conv: dict[str, Any]
) -> list[tuple[list[SearchHit], list[SearchHit], Spread, list[str]]]:
    """One conversation stored, and each of its questions asked both ways."""
    ns = f"calibration-{conv['id']}"
    values = {
        t["id"]: json.dumps({"speaker": t["speaker"], "text": t["text"], "session": t["session"]})
        for t in conv["turns"]
    }
    backend.execute([Put(ns, key, value) for key, value in values.items()])
    texts = {key: embed_text(value) for key, value in values.items()}
    keys = [key for key, text in texts.items() if text is not None]
    vectors = embedder.documents([texts[key] or "" for key in keys])
    asked = []
    for question in conv["questions"]:
        (words,) = backend.execute(
            [Search(ns, question["question"], limit=HYBRID_POOL, match="any")]
        )
        rows = [(n, -1, vector) for n, vector in enumerate(vectors)]
        similar = Similar.of_rows(embedder.query(question["question"]), rows)
        meaning = [SearchHit(ns, keys[n], score, "null", None, 0, 0)
                   for n, _, score in similar.best(HYBRID_POOL)]  # fmt: skip
        asked.append((words, meaning, similar.spread(), question["evidence"]))
    return asked


def _recall(hits: list[SearchHit], evidence: list[str]) -> float:
    return len({hit.key for hit in hits[:10]} & set(evidence)) / len(evidence)


def _key(fingerprint: str) -> str:
    """The store key of a fingerprint (a key holds no control character)."""
    return "weight:" + "".join(c if c.isprintable() else "?" for c in fingerprint)[:400]
