"""The change log's cost and the latency of watching it.

    python bench/bench_changes.py [--rounds 5] [--ops 2000] [--subscribers 100]

- What a write costs with the log (the default: every write records its change, with the value,
  in its own transaction) against the same write on a store that keeps no log
  (``?history=off``), on the embedded store, side by side, rounds interleaved: ``set`` of a
  chat-like value, ``append`` to a chat window (``max_len=100``), ``incr``.
- Watch latency, commit to event: ``--subscribers`` followers (``AsyncMemory.watch``, each a
  task of this process's event loop) of one namespace, while another process writes a change every
  20 ms; for each event, the time from the change's commit stamp to its arrival. On the
  embedded store, on PostgreSQL (LISTEN/NOTIFY), and through ``botwire serve`` (server-sent
  events, one stream per subscriber).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _shared import ROOT, medians, per_op, pg_schema, start_serve

from botwire import AsyncMemory, Memory

VALUE = {"role": "user", "content": "I'm flying to Lisbon on Tuesday, then Porto by train."}


def write_costs(folder: Path, rounds: int, ops: int) -> dict[str, float]:
    stores = {
        "with the log": Memory("bench", f"sqlite:///{folder / 'log.db'}"),
        "no log (?history=off)": Memory("bench", f"sqlite:///{folder / 'quiet.db'}?history=off"),
    }
    cases: dict[str, list[float]] = {}
    for round_number in range(rounds):
        for name, mem in stores.items():
            r = round_number
            cases.setdefault(f"set|{name}", []).append(
                per_op(lambda i, m=mem, r=r: m.set(f"k{r}-{i % 500}", VALUE), ops)
            )
            cases.setdefault(f"append|{name}", []).append(
                per_op(lambda i, m=mem, r=r: m.append(f"chat{r}", VALUE, max_len=100), ops)
            )
            cases.setdefault(f"incr|{name}", []).append(
                per_op(lambda i, m=mem, r=r: m.incr(f"n{r}-{i % 10}"), ops)
            )
    return medians(cases)


WRITER = """
import sys, time
from botwire import AsyncMemory, Memory
mem = Memory(sys.argv[2], sys.argv[1])
time.sleep(1.0)
for n in range(int(sys.argv[3])):
    mem.set(f"k{n}", n)
    time.sleep(0.02)
"""


def watch_latency(url: str, subscribers: int, changes: int) -> tuple[float, float]:
    """p50 and p99, in ms, from each change's commit stamp to its arrival at a subscriber
    (``AsyncMemory.watch``, every subscriber a task of one event loop)."""
    return asyncio.run(_watch_latency(url, subscribers, changes))


async def _watch_latency(url: str, subscribers: int, changes: int) -> tuple[float, float]:
    ns = f"watch-{time.time_ns()}"
    delays: list[float] = []
    started = asyncio.Event()
    count = 0

    async def subscribe() -> None:
        nonlocal count
        seen = 0
        async with contextlib.aclosing(AsyncMemory(ns, url).watch()) as stream:
            count += 1
            if count == subscribers:
                started.set()
            async for change in stream:
                delays.append((time.time() - change.at.timestamp()) * 1000)
                seen += 1
                if seen == changes:
                    break

    tasks = [asyncio.create_task(subscribe()) for _ in range(subscribers)]
    await started.wait()
    writer = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WRITER, url, ns, str(changes), env={"PYTHONPATH": str(ROOT)}
    )
    await writer.wait()
    await asyncio.wait_for(asyncio.gather(*tasks), 60)
    delays.sort()
    return statistics.median(delays), delays[int(len(delays) * 0.99) - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--changes", type=int, default=100)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="botwire-bench-changes-"))

    med = write_costs(folder, args.rounds, args.ops)
    print(f"embedded writes, µs per call, median of {args.rounds} rounds\n")
    print("| write | with the log | no log (?history=off) | ratio |")
    print("|---|---:|---:|---:|")
    for op in ("set", "append", "incr"):
        on, off = med[f"{op}|with the log"], med[f"{op}|no log (?history=off)"]
        label = "append (max_len=100)" if op == "append" else op
        print(f"| {label} | {on:,.1f} | {off:,.1f} | {on / off:.2f}x |")

    print(f"\nwatch latency, commit to event, {args.subscribers} subscribers, ms\n")
    print("| store | p50 | p99 |")
    print("|---|---:|---:|")
    server, server_url = start_serve(f"sqlite:///{folder / 'served.db'}")
    try:
        with pg_schema() as pg:
            stores = {"embedded (SQLite)": f"sqlite:///{folder / 'watched.db'}"}
            if pg is not None:
                Memory("warm", pg).set("k", 1)  # migrated before the clock starts
                stores["PostgreSQL"] = pg
            stores["botwire serve (SSE)"] = server_url
            for name, url in stores.items():
                p50, p99 = watch_latency(url, args.subscribers, args.changes)
                print(f"| {name} | {p50:.1f} | {p99:.1f} |")
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
