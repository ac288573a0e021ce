"""Recall benchmark: does search find what a user said sessions ago?

    python bench/bench_recall.py [--data FILE.jsonl] [--stores sqlite,postgres,http]
                                 [--scale 100000]

The conversations of ``recall_data.py`` (16 users, 2,600 turns over 12 sessions each, 500
questions with labelled evidence turns): every turn is stored as a memory (one namespace per
user, a key per turn, its value ``{"speaker", "text", "session"}``), and every question is asked
as a bot would ask it, ``Memory.search(question, match="any", limit=10)``, on each store.
Beside it, in the same run, ``rank_bm25``'s ``BM25Okapi`` over the same turns, one index per
user as botwire has one namespace per user, with words taken as a careful user of it would take
them (lower case, letters and digits, punctuation off).

Then by meaning and hybrid (``mode="meaning"``, ``"hybrid"``) with each embedder of
:data:`EMBEDDERS` (WordLlama, and a weak 64-dimension hashing model), and, computed here from
the same two rankings, plain reciprocal rank fusion (``k=60``), the usual way to fuse them.
Through the server, the server embeds (``--embedder``: WordLlama only, a name it can import).
``--scale N``: also p50/p99 of each mode, per embedder, in one namespace of N memories on
SQLite.

recall@k: the share of a question's evidence turns among the first k results, averaged over
the questions. p50, p99: one search's latency (for BM25: scoring a user's turns in memory; for
meaning and hybrid, embedding the question too).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _shared import pg_schema, start_serve

from botwire import Memory

HERE = Path(__file__).resolve().parent
WORD = re.compile(r"\w+")


def bm25_words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def p99(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def recall(found: list[str], evidence: list[str], k: int) -> float:
    return len(set(found[:k]) & set(evidence)) / len(evidence)


def run_bm25(conversations: list[dict[str, Any]]) -> dict[str, Any]:
    from rank_bm25 import BM25Okapi

    scores: dict[int, list[float]] = {5: [], 10: []}
    times = []
    for conv in conversations:
        ids = [turn["id"] for turn in conv["turns"]]
        index = BM25Okapi([bm25_words(f"{t['speaker']} {t['text']}") for t in conv["turns"]])
        for q in conv["questions"]:
            started = time.perf_counter()
            ranked = index.get_scores(bm25_words(q["question"]))
            top = [ids[i] for i in sorted(range(len(ids)), key=lambda i: -ranked[i])[:10]]
            times.append(time.perf_counter() - started)
            for k in scores:
                scores[k].append(recall(top, q["evidence"], k))
    return {"r5": statistics.mean(scores[5]), "r10": statistics.mean(scores[10]),
            "p50": statistics.median(times) * 1000, "p99": p99(times) * 1000}  # fmt: skip


def hashing(texts: list[str]) -> list[list[float]]:
    """A weak embedder: each word adds +1 or -1 to one of 64 dimensions chosen by its hash (a
    random projection of the words, no meaning), the kind of model that made plain reciprocal
    rank fusion worse than words alone."""
    vectors = []
    for text in texts:
        vector = [0.0] * 64
        for word in bm25_words(text):
            h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
            vector[h % 64] += 1.0 if (h >> 7) & 1 else -1.0
        vectors.append(vector)
    return vectors


EMBEDDERS = {"WordLlama": "botwire.embedders:wordllama", "hashing, 64 dims": hashing}


def load(conversations: list[dict[str, Any]], url: str, embedder: Any) -> None:
    for conv in conversations:
        mem = Memory(f"recall-{conv['id']}", url, embedder=embedder)
        mem.clear()
        for start in range(0, len(conv["turns"]), 200):
            mem.set_many({t["id"]: {"speaker": t["speaker"], "text": t["text"],
                                    "session": t["session"]}
                          for t in conv["turns"][start : start + 200]})  # fmt: skip
        mem.search("warm", limit=1)  # the index catches up with the writes once


def measure(
    conversations: list[dict[str, Any]],
    url: str,
    embedder: Any,
    rank: Callable[[Memory, str], list[str]],
) -> dict[str, Any]:
    """recall@5, recall@10 and p50 of ``rank(memory, question)`` (the keys it finds, best
    first) over every question."""
    scores: dict[int, list[float]] = {5: [], 10: []}
    times = []
    for conv in conversations:
        mem = Memory(f"recall-{conv['id']}", url, embedder=embedder)
        for q in conv["questions"]:
            started = time.perf_counter()
            top = rank(mem, q["question"])
            times.append(time.perf_counter() - started)
            for k in scores:
                scores[k].append(recall(top, q["evidence"], k))
    return {"r5": statistics.mean(scores[5]), "r10": statistics.mean(scores[10]),
            "p50": statistics.median(times) * 1000, "p99": p99(times) * 1000}  # fmt: skip


def run_botwire(
    conversations: list[dict[str, Any]], url: str, mode: str, embedder: Any = None
) -> dict[str, Any]:
    """Every question asked as a bot would: ``match="any"``, ``limit=10``, in ``mode``."""

    def rank(mem: Memory, question: str) -> list[str]:
        hits = mem.search(question, match="any", limit=10, mode=mode)  # type: ignore[arg-type]
        return [hit.key for hit in hits]

    return measure(conversations, url, embedder, rank)


def run_rrf(
    conversations: list[dict[str, Any]], url: str, embedder: Any, k: int = 60
) -> dict[str, Any]:
    """Plain reciprocal rank fusion of the word and meaning rankings (50 keys each, weights
    equal, ``k=60``), the usual way to fuse them, for comparison with ``hybrid``."""

    def rank(mem: Memory, question: str) -> list[str]:
        fused: dict[str, float] = {}
        for mode in ("words", "meaning"):
            found = mem.search(question, match="any", limit=50, mode=mode)  # type: ignore[arg-type]
            for place, hit in enumerate(found):
                fused[hit.key] = fused.get(hit.key, 0.0) + 1 / (k + place + 1)
        return sorted(fused, key=lambda key: -fused[key])[:10]

    return measure(conversations, url, embedder, rank)


def run_store(
    conversations: list[dict[str, Any]], url: str, embedder: Any, name: str, rows: list[Any]
) -> None:
    """Words, meaning, hybrid and plain reciprocal rank fusion on one store loaded with
    ``embedder``'s vectors."""
    load(conversations, url, embedder)
    for mode in ("words", "meaning", "hybrid"):
        rows.append((name, mode, run_botwire(conversations, url, mode, embedder)))
    rows.append((name, "reciprocal rank fusion", run_rrf(conversations, url, embedder)))


def run_scale(conversations: list[dict[str, Any]], folder: str, size: int, rounds: int = 3) -> None:
    """p50/p99 of each mode in one namespace of ``size`` memories, per embedder (a store of
    its own each): the benchmark's turns, over and over, each copy numbered; 100 questions
    asked ``rounds`` times, the modes interleaved."""
    turns = [t for conv in conversations for t in conv["turns"]]
    questions = [q["question"] for conv in conversations for q in conv["questions"]][:100]
    modes = ("words", "meaning", "hybrid")
    table = []
    for number, (label, embedder) in enumerate(EMBEDDERS.items()):
        mem = Memory("scale", f"sqlite:///{folder}/scale-{number}.db", embedder=embedder)
        started = time.perf_counter()
        for start in range(0, size, 1000):
            mem.set_many({f"m{n}": {"speaker": turns[n % len(turns)]["speaker"],
                                    "text": f"{turns[n % len(turns)]['text']} ({n // len(turns)})"}
                          for n in range(start, min(size, start + 1000))})  # fmt: skip
        print(f"{size:,} memories written in {time.perf_counter() - started:.0f} s ({label})")
        mem.search(questions[0], match="any", mode="hybrid")  # calibration, once per store
        times: dict[str, list[float]] = {mode: [] for mode in modes}
        for _ in range(rounds):
            for question in questions:
                for mode in modes:
                    began = time.perf_counter()
                    mem.search(question, match="any", limit=10, mode=mode)  # type: ignore[arg-type]
                    times[mode].append(time.perf_counter() - began)
        table += [(label, mode, times[mode]) for mode in modes]
    print(f"\n| {size:,} memories, SQLite | mode | p50 ms | p99 ms |")
    print("|---|---|---:|---:|")
    for label, mode, found in table:
        print(f"| {label} | {mode} | {statistics.median(found) * 1000:.1f} | "
              f"{p99(found) * 1000:.1f} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(HERE / "recall_conversations.jsonl"))
    parser.add_argument("--stores", default="sqlite,postgres,http")
    parser.add_argument("--scale", type=int, help="also time each mode at this many memories")
    args = parser.parse_args()
    conversations = [json.loads(line) for line in Path(args.data).read_text().splitlines()]
    questions = sum(len(c["questions"]) for c in conversations)
    turns = sum(len(c["turns"]) for c in conversations)
    print(f"{len(conversations)} conversations, {turns:,} turns, {questions} questions\n")
    baseline = run_bm25(conversations)
    rows: list[tuple[str, str, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        stores = args.stores.split(",")
        for label, embedder in EMBEDDERS.items():
            for store in stores:
                if store == "sqlite":
                    url = f"sqlite:///{tmp}/recall-{len(rows)}.db"
                    run_store(conversations, url, embedder, f"SQLite, {label}", rows)
                elif store == "postgres":
                    with pg_schema() as pg_url:
                        if pg_url is not None:
                            name = f"PostgreSQL, {label}"
                            run_store(conversations, pg_url, embedder, name, rows)
                elif store == "http" and isinstance(embedder, str):  # the server embeds
                    db = f"sqlite:///{tmp}/served-{len(rows)}.db"
                    proc, url = start_serve(db, "--embedder", embedder)
                    try:
                        run_store(conversations, url, None, f"HTTP (SQLite), {label}", rows)
                    finally:
                        proc.terminate()
                        proc.wait()
    print("| search | mode | recall@5 | recall@10 | p50 ms | p99 ms | recall@10 / BM25's |")
    print("|---|---|---:|---:|---:|---:|---:|")
    print(f"| rank_bm25 BM25Okapi | words | {baseline['r5']:.3f} | {baseline['r10']:.3f} | "
          f"{baseline['p50']:.2f} | {baseline['p99']:.2f} | 1.00 |")  # fmt: skip
    for name, mode, found in rows:
        print(f"| botwire, {name} | {mode} | {found['r5']:.3f} | {found['r10']:.3f} | "
              f"{found['p50']:.2f} | {found['p99']:.2f} | "
              f"{found['r10'] / baseline['r10']:.2f} |")  # fmt: skip
    if args.scale:
        with tempfile.TemporaryDirectory() as tmp:
            run_scale(conversations, tmp, args.scale)


if __name__ == "__main__":
    main()
