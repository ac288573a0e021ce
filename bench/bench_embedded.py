"""Embedded store benchmark: botwire on SQLite against a raw SQLite upsert and diskcache.

    python bench/bench_embedded.py [--rounds 5] [--ops 3000]

The neutral baseline is what a person would write for speed with ``sqlite3`` and ``json``: one
``WITHOUT ROWID`` table keyed ``(ns, key)`` with the value as text, a set one upsert statement
(its own transaction), a get one select, ``json.dumps`` / ``json.loads`` around them; WAL and
``synchronous=NORMAL``, botwire's durability, with SQLite's checkpoints in the commit that
crosses their threshold (its default; botwire runs them in a thread of its own). diskcache
(``Cache.set`` / ``Cache.get``, its defaults) is the library a Python user reaches for instead.

botwire runs with its defaults (the search index and the change log on) and with each turned
off (``?search=off``, ``?history=off``), so that what each feature costs a write is a row of its
own rather than folded into a baseline. The least a logged write can cost is measured too: the
raw upsert and a log row in one transaction, raw ``sqlite3`` again. Values change on every
write (SQLite skips a row that did not change); nothing (no WAL checkpoint, no index catch-up)
is done for one side only. Each round runs every case once, interleaved, so that a noisy
neighbour hits all of them alike; the table reports the median over rounds of microseconds per
operation, and ratios of medians.
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

import diskcache

from botwire import Memory
from botwire.backends.sqlite import SQLiteBackend

VALUE = {"language": "en", "timezone": "Europe/Berlin", "name": "Ada", "turns": 12}
MESSAGE = {"role": "user", "content": "What did I tell you about my travel plans yesterday?"}
SYSTEM = {"role": "system", "content": "You are a travel assistant. Answer briefly."}
BIG = 100_000
"""Items of the long list, and appends made to the window before it is measured again."""


def value(i: int) -> dict[str, object]:
    """A value that differs on every write, as real writes do (SQLite skips identical rows)."""
    return {**VALUE, "turns": i}


def per_op(fn: Callable[[int], object], ops: int) -> float:
    """Microseconds per call of ``fn(i)`` for i in range(ops)."""
    start = time.perf_counter()
    for i in range(ops):
        fn(i)
    return (time.perf_counter() - start) / ops * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ops", type=int, default=3000)
    args = parser.parse_args()
    ops = keys = args.ops
    folder = Path(tempfile.mkdtemp(prefix="botwire-bench-"))

    def store(name: str, search: bool, history: bool) -> Memory:
        backend = SQLiteBackend(folder / f"{name}.db", search=search, history=604800 * history)
        return Memory("bench", backend=backend)

    default = store("default", True, True)
    no_search = store("no-search", False, True)
    no_log = store("no-log", True, False)
    bare = store("bare", False, False)

    raw = sqlite3.connect(folder / "raw.db", isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=NORMAL")
    raw.execute(
        "CREATE TABLE kv (ns TEXT, key TEXT, value TEXT, PRIMARY KEY (ns, key)) WITHOUT ROWID"
    )
    dumps, loads = json.dumps, json.loads
    upsert = (
        "INSERT INTO kv VALUES (?, ?, ?) ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value"
    )
    select = "SELECT value FROM kv WHERE ns = ? AND key = ?"
    raw.execute(
        "CREATE TABLE log (seq INTEGER PRIMARY KEY, ns TEXT, key TEXT, op TEXT, at INTEGER,"
        " actor TEXT, value TEXT)"
    )
    append_log = "INSERT INTO log (ns, key, op, at, actor, value) VALUES (?, ?, 'set', ?, ?, ?)"

    def raw_set(i: int) -> None:
        raw.execute(upsert, ("bench", f"k{i % keys}", dumps(value(i))))

    def raw_logged_set(i: int) -> None:
        """The least a logged write does: the upsert and a log row, in one transaction."""
        key, text = f"k{i % keys}", dumps(value(i))
        raw.execute("BEGIN IMMEDIATE")
        raw.execute(upsert, ("bench", key, text))
        raw.execute(append_log, ("bench", key, time.time_ns() // 1000, "local:bench", text))
        raw.execute("COMMIT")

    def raw_get(i: int) -> object:
        return loads(raw.execute(select, ("bench", f"k{i % keys}")).fetchone()[0])

    cache = diskcache.Cache(str(folder / "diskcache"))

    for mem in (default, no_search, no_log, bare):
        mem.set_many({f"k{i}": value(i) for i in range(keys)})
    for i in range(keys):
        raw_set(i)
        cache.set(f"k{i}", value(i))

    # Lists: 10 and BIG items appended to without a window; a chat window (max_len=100 and a
    # system prompt kept first) measured fresh and after BIG appends.
    for mem in (default, no_log):
        mem.append("short", *[MESSAGE] * 10)
        mem.append("long", *[MESSAGE] * BIG)
        mem.append("window", SYSTEM)
        mem.append("window", *[MESSAGE] * 10, max_len=100, keep_first={"role": "system"})
        mem.append("worn", SYSTEM)
        for _ in range(0, BIG, 1000):
            mem.append("worn", *[MESSAGE] * 1000, max_len=100, keep_first={"role": "system"})
        mem.search("travel", limit=1)  # the index catches up with the lists before timing

    def window(mem: Memory, key: str) -> Callable[[int], object]:
        return lambda i: mem.append(key, MESSAGE, max_len=100, keep_first={"role": "system"})

    def setter(mem: Memory, base: int) -> Callable[[int], object]:
        return lambda i: mem.set(f"k{i % keys}", value(base + i))

    cases: dict[str, Callable[[int], Callable[[int], object]]] = {
        "raw upsert": lambda b: lambda i: raw_set(b + i),
        "raw upsert + log row": lambda b: lambda i: raw_logged_set(b + i),
        "set": lambda b: setter(default, b),
        "set, search off": lambda b: setter(no_search, b),
        "set, log off": lambda b: setter(no_log, b),
        "set, both off": lambda b: setter(bare, b),
        "diskcache set": lambda b: lambda i: cache.set(f"k{i % keys}", value(b + i)),
        "raw select": lambda b: raw_get,
        "get": lambda b: lambda i: default.get(f"k{i % keys}"),
        "diskcache get": lambda b: lambda i: cache.get(f"k{i % keys}"),
        "append @10": lambda b: lambda i: default.append("short", MESSAGE),
        f"append @{BIG:,}": lambda b: lambda i: default.append("long", MESSAGE),
        "window": lambda b: window(default, "window"),
        f"window after {BIG:,}": lambda b: window(default, "worn"),
        "append @10, log off": lambda b: lambda i: no_log.append("short", MESSAGE),
        "window, log off": lambda b: window(no_log, "window"),
        "incr": lambda b: lambda i: default.incr("counter"),
        "incr, log off": lambda b: lambda i: no_log.incr("counter"),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for r in range(args.rounds):
        base = (r + 1) * ops
        for name, make in cases.items():
            n = ops if not name.startswith(("append", "window")) else ops // 4
            times[name].append(per_op(make(base), n))

    med = {name: statistics.median(samples) for name, samples in times.items()}
    rows = [
        ("`set` (search index and change log on) vs raw upsert", "set", "raw upsert", "≤ 2.0"),
        ("`set`, search and log off, vs raw upsert", "set, both off", "raw upsert", "≤ 1.5"),
        (
            "raw upsert + log row vs raw upsert (the log's floor)",
            "raw upsert + log row",
            "raw upsert",
            "",
        ),
        (
            "`set`, search off, vs raw upsert + log row",
            "set, search off",
            "raw upsert + log row",
            "",
        ),
        ("`set`: what the search index costs", "set", "set, search off", ""),
        ("`set`: what the change log costs", "set", "set, log off", "≤ 1.3"),
        ("`set` vs diskcache `set`", "set", "diskcache set", ""),
        ("`get` vs raw select", "get", "raw select", "≤ 1.2"),
        ("`get` vs diskcache `get`", "get", "diskcache get", "< 1.0"),
        (f"`append` at {BIG:,} items vs at 10", f"append @{BIG:,}", "append @10", "flat"),
        ("`append(max_len=100, keep_first)` vs `append`", "window", "append @10", "≤ 2.0"),
        (f"window after {BIG:,} appends vs fresh", f"window after {BIG:,}", "window", "flat"),
        ("`append`: what the change log costs", "append @10", "append @10, log off", "≤ 1.3"),
        ("windowed `append`: what the log costs", "window", "window, log off", "≤ 1.3"),
        ("`incr`: what the change log costs", "incr", "incr, log off", "≤ 1.3"),
    ]
    print(f"median of {args.rounds} rounds, {ops} ops per round (µs per operation)\n")
    print("| comparison | botwire µs | baseline µs | ratio | target |")
    print("|---|---:|---:|---:|---|")
    for label, ours, base_case, target in rows:
        a, b = med[ours], med[base_case]
        print(f"| {label} | {a:.1f} | {b:.1f} | {a / b:.2f} | {target} |")


if __name__ == "__main__":
    main()
