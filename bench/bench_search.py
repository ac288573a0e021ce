"""Full-text search benchmark: latency, what indexing costs writes, and the naive alternative.

    python bench/bench_search.py [--sizes 10000,100000] [--queries 300] [--rounds 5]

- Search: a namespace of N chat-like messages (`{"role", "content"}`, 6 to 30 words drawn from
  a 5,000-word vocabulary with a Zipf-like spread, as real text is, each about the same "Lisbon
  trip"), then `--queries` searches of one to three words (the last also a prefix), each
  `Memory.search(q, limit=10)`: p50 and p99, on SQLite and on PostgreSQL; and "Lisbon trip",
  whose words every message holds (`match="all"` and `"any"`, and with `recency`, which ranks
  every match), p50 of 5.
- Naive: what a bot does without search: load the namespace (`get_many` of every key) and scan
  the text in Python, lower-cased, for every word; a few queries, p50.
- Writes: `set` of a new message, `append` to a chat, and `append` to a chat kept to its newest
  1,000 messages (each append also drops one: two changes to the index), on a store with the
  index and on one with `?search=off`, interleaved rounds; the index's cost is the ratio.
  (SQLite only: on PostgreSQL each write computes its tsvector in the same statement.)
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _shared import medians, per_op, pg_schema

from botwire import Memory
from botwire.backends.postgres import PostgresBackend

VOCABULARY = 5000


def vocabulary(rng: random.Random) -> list[str]:
    consonants, vowels = "bcdfghjklmnprstvwz", "aeiou"
    found: set[str] = set()
    while len(found) < VOCABULARY:
        syllables = rng.randint(1, 4)
        found.add("".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(syllables)))
    return sorted(found)


def sentence(rng: random.Random, words: list[str], weights: list[float]) -> str:
    return " ".join(rng.choices(words, weights, k=rng.randint(6, 30))).capitalize() + "."


EVERYWHERE = "Lisbon trip"
"""Words that every message of the fill holds."""


def fill(
    mem: Memory, size: int, rng: random.Random, words: list[str], weights: list[float]
) -> float:
    """Write ``size`` messages in batches of 500; the slowest batch's seconds."""
    slowest = 0.0
    for start in range(0, size, 500):
        started = time.perf_counter()
        mem.set_many(
            {
                f"msg:{n:07}": {
                    "role": rng.choice(["user", "assistant"]),
                    "content": f"{sentence(rng, words, weights)} {EVERYWHERE}.",
                }
                for n in range(start, min(size, start + 500))
            }
        )
        slowest = max(slowest, time.perf_counter() - started)
    return slowest


def queries(rng: random.Random, words: list[str], count: int) -> list[str]:
    """Words people search for: not the commonest (they match everything), not the rarest."""
    middle = words[50:1500]
    found = []
    for _ in range(count):
        picked = rng.sample(middle, rng.randint(1, 3))
        if rng.random() < 0.3:  # a word typed halfway: the prefix match
            picked[-1] = picked[-1][: max(2, len(picked[-1]) - 2)]
        found.append(" ".join(picked))
    return found


EVERYWHERE_CASES: list[tuple[str, dict[str, Any]]] = [
    ('`match="all"`', {}),
    ('`match="any"`', {"match": "any"}),
    ('`match="any"`, `where={"role": "user"}`', {"match": "any", "where": {"role": "user"}}),
    ("`recency=3600` (every match ranked)", {"recency": 3600}),
]


def latencies(mem: Memory, texts: list[str], **options: Any) -> list[float]:
    found = []
    for text in texts:
        started = time.perf_counter()
        mem.search(text, limit=10, **options)
        found.append((time.perf_counter() - started) * 1000)
    return found


def naive(mem: Memory, text: str) -> list[str]:
    wanted = text.lower().split()
    values = mem.get_many(mem.keys())
    return [
        key for key, value in values.items()
        if all(word in str(value.get("content", "")).lower() for word in wanted)
    ][:10]  # fmt: skip


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ops", type=int, default=2000)
    args = parser.parse_args()
    rng = random.Random(7)
    words = vocabulary(rng)
    weights = [1 / (rank + 1) ** 0.9 for rank in range(len(words))]  # a Zipf-like spread
    folder = Path(tempfile.mkdtemp(prefix="botwire-bench-search-"))
    texts = queries(rng, words, args.queries)
    rows = []
    common: list[tuple[str, int, str, float]] = []
    with pg_schema() as pg:
        for size in [int(s) for s in args.sizes.split(",")]:
            stores = {"SQLite": Memory(f"chat-{size}", f"sqlite:///{folder / f'{size}.db'}")}
            if pg is not None:
                stores["PostgreSQL"] = Memory(f"chat-{size}", backend=PostgresBackend(pg))
            for name, mem in stores.items():
                started = time.perf_counter()
                slowest = fill(mem, size, rng, words, weights)
                first = time.perf_counter()
                mem.search("warm up")  # SQLite indexes what the writes left queued first
                first = time.perf_counter() - first
                loaded = time.perf_counter() - started
                found = latencies(mem, texts)
                naive_ms = []
                for text in texts[:3]:
                    started_naive = time.perf_counter()
                    naive(mem, text)
                    naive_ms.append((time.perf_counter() - started_naive) * 1000)
                p50 = statistics.median(found)
                rows.append(
                    (name, size, p50, percentile(found, 0.99), statistics.median(naive_ms),
                     loaded, slowest, first)
                )  # fmt: skip
                for label, options in EVERYWHERE_CASES:
                    common.append((name, size, label, statistics.median(
                        latencies(mem, [EVERYWHERE] * 5, **options))))  # fmt: skip
    print(f"{args.queries} searches of 1 to 3 words (limit=10) per store\n")
    print(
        "| store | entries | p50 ms | p99 ms | naive scan p50 ms | naive / search | fill s "
        "| slowest batch of 500 writes, ms | first search after the fill, ms |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, size, p50, p99, naive_p50, loaded, slowest, first in rows:
        print(
            f"| {name} | {size:,} | {p50:.2f} | {p99:.2f} | {naive_p50:,.0f} | "
            f"{naive_p50 / p50:,.0f}x | {loaded:.1f} | {slowest * 1000:.0f} | {first * 1000:.0f} |"
        )

    print(f'\n"{EVERYWHERE}" (words every message holds), limit=10, p50 of 5, ms\n')
    print("| store | entries | search | p50 ms |")
    print("|---|---:|---|---:|")
    for name, size, label, p50 in common:
        print(f"| {name} | {size:,} | {label} | {p50:.1f} |")

    on = Memory("writes", f"sqlite:///{folder / 'on.db'}")
    off = Memory("writes", f"sqlite:///{folder / 'off.db'}?search=off")
    message = {"role": "user", "content": sentence(rng, words, weights)}
    cases: dict[str, list[float]] = {}
    for r in range(args.rounds):
        for name, mem in (("on", on), ("off", off)):
            base = (r + 1) * args.ops
            cases.setdefault(f"set {name}", []).append(
                per_op(lambda i, m=mem, b=base: m.set(f"k{b + i}", message), args.ops)
            )
            mem.delete("chat")
            cases.setdefault(f"append {name}", []).append(
                per_op(lambda i, m=mem: m.append("chat", message), args.ops)
            )
            mem.delete("window")
            mem.append("window", *[message] * 1000)
            cases.setdefault(f"windowed append {name}", []).append(
                per_op(lambda i, m=mem: m.append("window", message, max_len=1000), args.ops)
            )
    med = medians(cases)
    print(f"\nwrites on SQLite, µs per call, median of {args.rounds} interleaved rounds\n")
    print("| call | with the index | ?search=off | ratio | target |")
    print("|---|---:|---:|---:|---|")
    for call in ("set", "append", "windowed append"):
        with_index, without = med[f"{call} on"], med[f"{call} off"]
        print(
            f"| `{call}` | {with_index:.1f} | {without:.1f} | {with_index / without:.2f} | ≤ 1.5 |"
        )


if __name__ == "__main__":
    main()
