"""Embedded store benchmark: botwire on SQLite against the fastest store written by hand.

    python bench/bench_embedded.py [--rounds 7] [--ops 3000]

The baselines are what a person would write for speed with sqlite3 and json:
- plain: one ``WITHOUT ROWID`` table keyed ``(ns, key)`` with the value as text; a set is one
  upsert statement, a get one select (``json.dumps`` / ``json.loads`` around them);
- indexed: the same store that also keeps an FTS5 index of its values, as botwire does by
  default: a rowid table (the FTS5 row's id), the upsert and the FTS5 insert in one
  transaction.
botwire with search (its default) is compared with the indexed baseline, botwire with
``?search=off`` with the plain one. Same durability everywhere (WAL, synchronous=NORMAL, every
write its own transaction); values change on every write (SQLite skips a row that did not
change); nothing (no WAL checkpoint, no index catch-up) is done for one side only. Each round
runs every case once, interleaved, so that a noisy neighbour hits all of them alike; the table
reports the median over rounds of microseconds per operation, and ratios of medians.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from botwire import Memory
from botwire.backends.sqlite import SQLiteBackend

VALUE = {"language": "en", "timezone": "Europe/Berlin", "name": "Ada", "turns": 12}


def value(i: int) -> dict[str, object]:
    """A value that differs on every write, as real writes do (SQLite skips identical rows)."""
    return {**VALUE, "turns": i}


MESSAGE = {"role": "user", "content": "What did I tell you about my travel plans yesterday?"}


def raw_connection(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(
        """
        CREATE TABLE kv (ns TEXT, key TEXT, value TEXT, PRIMARY KEY (ns, key)) WITHOUT ROWID;
        CREATE TABLE indexed (id INTEGER PRIMARY KEY, ns TEXT, key TEXT, value TEXT,
                              UNIQUE (ns, key));
        CREATE VIRTUAL TABLE indexed_fts USING fts5(doc);
        """
    )
    return conn


def per_op(fn: Callable[[int], object], ops: int) -> float:
    """Microseconds per call of ``fn(i)`` for i in range(ops)."""
    start = time.perf_counter()
    for i in range(ops):
        fn(i)
    return (time.perf_counter() - start) / ops * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--ops", type=int, default=3000)
    args = parser.parse_args()
    ops = args.ops
    folder = Path(tempfile.mkdtemp(prefix="botwire-bench-"))

    mem = Memory("bench", backend=SQLiteBackend(folder / "botwire.db"))
    unindexed = Memory("bench", backend=SQLiteBackend(folder / "unindexed.db", search=False))
    side = sqlite3.connect(folder / "botwire.db", isolation_level=None)

    def checkpoint() -> None:
        side.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    raw = raw_connection(folder / "raw.db")
    dumps, loads = json.dumps, json.loads

    def raw_set(i: int) -> None:
        raw.execute(
            "INSERT INTO kv VALUES (?, ?, ?)"
            " ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value",
            ("bench", f"k{i % keys}", dumps(value(i))),
        )

    def raw_indexed_set(i: int) -> None:
        text = dumps(value(i))
        raw.execute("BEGIN IMMEDIATE")
        (row_id,) = raw.execute(
            "INSERT INTO indexed (ns, key, value) VALUES (?, ?, ?)"
            " ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value RETURNING id",
            ("bench", f"k{i % keys}", text),
        ).fetchone()
        raw.execute("INSERT OR REPLACE INTO indexed_fts (rowid, doc) VALUES (?, ?)", (row_id, text))
        raw.execute("COMMIT")

    def raw_get(i: int) -> object:
        key = f"k{i % keys}"
        row = raw.execute(
            "SELECT value FROM kv WHERE ns = ? AND key = ?", ("bench", key)
        ).fetchone()
        return loads(row[0])

    def naive_append(i: int) -> None:  # the read-modify-write JSON list bots write by hand
        raw.execute("BEGIN IMMEDIATE")
        (text,) = raw.execute(
            "SELECT value FROM kv WHERE ns = 'bench' AND key = 'naive'"
        ).fetchone()
        items = loads(text)
        items.append(MESSAGE)
        raw.execute("UPDATE kv SET value = ? WHERE ns = 'bench' AND key = 'naive'", (dumps(items),))
        raw.execute("COMMIT")

    keys = ops
    mem.set_many({f"k{i}": value(i) for i in range(keys)})
    unindexed.set_many({f"k{i}": value(i) for i in range(keys)})
    for i in range(keys):
        raw_set(i)
        raw_indexed_set(i)

    cases: dict[str, list[float]] = {
        name: []
        for name in [
            "set botwire",
            "set raw, indexed",
            "set botwire, search off",
            "set raw",
            "get botwire",
            "get raw",
            "append @10",
            "append @10,000",
            "naive append @1,000",
            "append @1,000",
        ]
    }
    for r in range(args.rounds):
        base = (r + 1) * ops
        cases["set botwire"].append(per_op(lambda i, b=base: mem.set(f"k{i}", value(b + i)), ops))
        cases["set raw, indexed"].append(per_op(lambda i, b=base: raw_indexed_set(b + i), ops))
        cases["set botwire, search off"].append(
            per_op(lambda i, b=base: unindexed.set(f"k{i}", value(b + i)), ops)
        )
        cases["set raw"].append(per_op(lambda i, b=base: raw_set(b + i), ops))
        cases["get botwire"].append(per_op(lambda i: mem.get(f"k{i}"), ops))
        cases["get raw"].append(per_op(raw_get, ops))

        for size, name in [
            (10, "append @10"),
            (10_000, "append @10,000"),
            (1_000, "append @1,000"),
        ]:
            times = []
            for _ in range(6):  # 6 x 50 appends, the list reset to `size` items before each
                mem.delete("chat")
                mem.append("chat", *([MESSAGE] * size))
                mem.search("x", limit=1)  # the search index catches up on the reset's writes
                checkpoint()  # start each batch with an empty WAL, whatever the reset wrote
                times.append(per_op(lambda i: mem.append("chat", MESSAGE), 50))
            cases[name].append(statistics.mean(times))
        raw.execute(
            "INSERT OR REPLACE INTO kv VALUES ('bench', 'naive', ?)", (dumps([MESSAGE] * 1000),)
        )
        cases["naive append @1,000"].append(per_op(naive_append, 300))

    med = {name: statistics.median(times) for name, times in cases.items()}
    rows = [
        (
            "`Memory.set` vs raw upsert + FTS5 insert",
            med["set botwire"],
            med["set raw, indexed"],
            "≤ 2.0",
        ),
        (
            "`Memory.set`, `?search=off`, vs raw upsert",
            med["set botwire, search off"],
            med["set raw"],
            "≤ 2.0",
        ),
        ("`Memory.get` vs raw select", med["get botwire"], med["get raw"], "≤ 1.5"),
        ("`append` at 10,000 vs at 10 items", med["append @10,000"], med["append @10"], "≤ 1.5"),
        (
            "`append` vs naive JSON read-modify-write, 1,000 items",
            med["append @1,000"],
            med["naive append @1,000"],
            "< 1.0",
        ),
    ]
    print(f"median of {args.rounds} rounds, {ops} ops per round (µs per operation)\n")
    print("| comparison | botwire µs | baseline µs | ratio | target |")
    print("|---|---:|---:|---:|---|")
    for label, ours, base, target in rows:
        print(f"| {label} | {ours:.1f} | {base:.1f} | {ours / base:.2f} | {target} |")


if __name__ == "__main__":
    main()
