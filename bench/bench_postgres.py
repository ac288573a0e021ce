"""PostgreSQL against SQLite: get, set and append, direct and through `botwire serve`.

    python bench/bench_postgres.py [--rounds 3] [--ops 500] [--pg postgresql://postgres@127.0.0.1/test]

Four stores: the SQLite and PostgreSQL backends used directly, and a `botwire serve` (one
worker) on each. For each: one client doing `--ops` sequential operations, then 8 threads doing
as many each, every thread with its own `Memory`. Reported: medians over rounds of ops/s
(aggregate for 8 clients), p50 and p99 latency in ms. Uses its own schema, dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
from _shared import start_serve

from botwire import Memory
from botwire.backends import create_backend

VALUE = {"language": "en", "timezone": "Europe/Berlin", "name": "Ada", "turns": 12}
MESSAGE = {"role": "user", "content": "What did I tell you about my travel plans yesterday?"}


def operation(mem: Memory, op: str, worker: int) -> Callable[[int], object]:
    if op == "get":
        return lambda i: mem.get(f"w{worker}-k{i % 50}")
    if op == "set":
        return lambda i: mem.set(f"w{worker}-k{i % 50}", {**VALUE, "turns": i})
    return lambda i: mem.append(f"w{worker}-chat", MESSAGE, max_len=100)


def run_clients(url: str, op: str, clients: int, ops: int) -> tuple[float, list[float]]:
    latencies: list[list[float]] = [[] for _ in range(clients)]
    mems = [Memory("bench", url) for _ in range(clients)]
    for worker, mem in enumerate(mems):  # keys exist before reads
        mem.set_many({f"w{worker}-k{i}": VALUE for i in range(50)})
    barrier = threading.Barrier(clients + 1)

    def work(worker: int) -> None:
        call = operation(mems[worker], op, worker)
        barrier.wait()
        for i in range(ops):
            started = time.perf_counter()
            call(i)
            latencies[worker].append(time.perf_counter() - started)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return clients * ops / elapsed, sorted(x for per in latencies for x in per)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ops", type=int, default=500)
    parser.add_argument(
        "--pg",
        default=os.environ.get(
            "BOTWIRE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="botwire-bench-pg-"))
    schema = f"botwire_bench_{uuid.uuid4().hex[:8]}"
    pg = f"{args.pg}{'&' if '?' in args.pg else '?'}schema={schema}"
    create_backend(pg).migrate()
    servers = [start_serve(f"sqlite:///{folder / 'served.db'}"), start_serve(pg)]
    stores = {
        "SQLite, direct": f"sqlite:///{folder / 'direct.db'}",
        "PostgreSQL, direct": pg,
        "server on SQLite": servers[0][1],
        "server on PostgreSQL": servers[1][1],
    }
    results: dict[tuple[str, str, int], list[tuple[float, float, float]]] = {}
    try:
        for _ in range(args.rounds):
            for name, url in stores.items():
                for op in ("get", "set", "append"):
                    for clients in (1, 8):
                        rate, lat = run_clients(
                            url, op, clients, args.ops if clients == 1 else args.ops // 4
                        )
                        p50, p99 = lat[len(lat) // 2] * 1000, lat[int(len(lat) * 0.99)] * 1000
                        results.setdefault((name, op, clients), []).append((rate, p50, p99))
    finally:
        for proc, _ in servers:
            proc.terminate()
            proc.wait()
        with psycopg.connect(args.pg, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')

    print(f"median of {args.rounds} rounds; ops/s (p50 / p99 ms); 8 clients = 8 threads\n")
    print(
        "| store | get, 1 client | get, 8 clients | set, 1 client | set, 8 clients "
        "| append, 1 client | append, 8 clients |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in stores:
        cells = []
        for op in ("get", "set", "append"):
            for clients in (1, 8):
                samples = results[(name, op, clients)]
                rate, p50, p99 = (statistics.median(s[i] for s in samples) for i in range(3))
                cells.append(f"{rate:,.0f} ({p50:.2f} / {p99:.2f})")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
