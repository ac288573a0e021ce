"""How a write's and a read's cost grow with the store: `set` and `get` at 10,000, 100,000 and
1,000,000 entries, with the defaults (search index and change log on).

    python bench/bench_scale.py [--sizes 10000,100000,1000000] [--rounds 3] [--ops 2000]

One embedded store per size, one namespace, filled with `set_many` in batches of 1,000 with
chat-like values (the search index catches up as the writes go); then, in interleaved rounds
over the sizes, `--ops` calls of `set` (a new value of a random existing key: an update, with
its index and log work) and of `get` (a random key), µs per call, medians of the rounds. The
raw upsert of `bench_embedded.py` on a table of the same size is the baseline row: what the
engine itself costs at that size.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import tempfile
import time
from pathlib import Path

from _shared import medians, per_op

from botwire import Memory

WORDS = ["lisbon", "porto", "trip", "flight", "train", "hotel", "museum", "beach", "dinner",
         "lunch", "coffee", "river"]  # fmt: skip


def message(rng: random.Random, n: int) -> dict[str, str]:
    return {"role": "user", "content": f"{' '.join(rng.choices(WORDS, k=12))} {n}"}


def fill(mem: Memory, size: int, rng: random.Random) -> float:
    started = time.perf_counter()
    for start in range(0, size, 1000):
        mem.set_many({f"k{n:07}": message(rng, n) for n in range(start, min(size, start + 1000))})
    mem.search("warm up")  # whatever the writes left for the index
    return time.perf_counter() - started


def raw_table(path: Path, size: int, rng: random.Random) -> sqlite3.Connection:
    """The baseline: a ``WITHOUT ROWID`` table of ``size`` rows (WAL, ``synchronous=NORMAL``)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE kv (ns TEXT, key TEXT, value TEXT, PRIMARY KEY (ns, key)) WITHOUT ROWID"
    )
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO kv VALUES ('bench', ?, ?)",
        ((f"k{n:07}", str(message(rng, n))) for n in range(size)),
    )
    conn.execute("COMMIT")
    return conn


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ops", type=int, default=2000)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    folder = Path(tempfile.mkdtemp(prefix="botwire-bench-scale-"))
    rng = random.Random(5)
    stores: dict[int, tuple[Memory, sqlite3.Connection]] = {}
    for size in sizes:
        mem = Memory("bench", f"sqlite:///{folder / f'{size}.db'}")
        seconds = fill(mem, size, rng)
        print(f"filled {size:,} entries in {seconds:.0f} s", flush=True)
        stores[size] = (mem, raw_table(folder / f"raw-{size}.db", size, rng))
    cases: dict[str, list[float]] = {}
    upsert = (
        "INSERT INTO kv VALUES ('bench', ?, ?) ON CONFLICT DO UPDATE SET value = excluded.value"
    )
    for _ in range(args.rounds):
        for size, (mem, raw) in stores.items():
            keys = [f"k{rng.randrange(size):07}" for _ in range(args.ops)]
            values = [message(rng, n) for n in range(args.ops)]
            cases.setdefault(f"set {size}", []).append(
                per_op(lambda i, m=mem, k=keys, v=values: m.set(k[i], v[i]), args.ops)
            )
            cases.setdefault(f"get {size}", []).append(
                per_op(lambda i, m=mem, k=keys: m.get(k[i]), args.ops)
            )
            raw_set = lambda i, c=raw, k=keys, v=values: c.execute(upsert, (k[i], str(v[i])))  # noqa: E731
            cases.setdefault(f"raw {size}", []).append(per_op(raw_set, args.ops))
    med = medians(cases)
    first = sizes[0]
    print(f"\nµs per call, median of {args.rounds} interleaved rounds\n")
    print("| entries | `set` | raw upsert | `set` / raw | `set` / at "
          f"{first:,} | `get` | `get` / at {first:,} |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for size in sizes:
        s, r, g = med[f"set {size}"], med[f"raw {size}"], med[f"get {size}"]
        print(
            f"| {size:,} | {s:.1f} | {r:.1f} | {s / r:.2f} | {s / med[f'set {first}']:.2f} "
            f"| {g:.1f} | {g / med[f'get {first}']:.2f} |"
        )


if __name__ == "__main__":
    main()
