"""The latency of watching the change log, and what 100 followers cost the writers.

    python bench/bench_changes.py [--subscribers 100] [--rounds 3] [--seconds 3]

(What the log costs a write is a row of ``bench/bench_embedded.py``.)

- Watch latency, commit to event: ``--subscribers`` followers (``AsyncMemory.watch``, each a
  task of this process's event loop) of one namespace, while another process writes a change every
  20 ms; for each event, the time from the change's commit stamp to its arrival. On the
  embedded store, on PostgreSQL (LISTEN/NOTIFY), and through ``botwire serve`` (server-sent
  events, one stream per subscriber).
- Writes while followed: ``wrk`` PUTs to a ``botwire serve`` over 8 connections for
  ``--seconds``, with no follower and with ``--subscribers`` server-sent event streams of the
  namespace open (read by one other process, which counts the events), rounds interleaved; the
  streams must have delivered every change.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _shared import ROOT, pg_schema, start_serve
from bench_server import SCRIPTS

from botwire import AsyncMemory, Memory

VALUE = {"role": "user", "content": "I'm flying to Lisbon on Tuesday, then Porto by train."}


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


FOLLOWERS = """
import asyncio, sys
host, port, ns, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
counts = [0] * n
MARK = b"event: change"


async def follow(i, connected):
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET /v1/changes?ns={ns} HTTP/1.1\\r\\nHost: {host}\\r\\n"
                 "Accept: text/event-stream\\r\\n\\r\\n".encode())
    connected.release()
    tail = b""
    while chunk := await reader.read(65536):
        text = tail + chunk
        counts[i] += text.count(MARK) - tail.count(MARK)
        tail = text[-len(MARK):]


async def main():
    connected = asyncio.Semaphore(0)
    tasks = [asyncio.create_task(follow(i, connected)) for i in range(n)]
    for _ in range(n):
        await connected.acquire()
    await asyncio.sleep(0.5)  # every stream answered (its first event sent)
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    expected = int((await loop.run_in_executor(None, sys.stdin.readline)).split()[1])
    deadline = loop.time() + 60
    while min(counts) < expected and loop.time() < deadline:
        await asyncio.sleep(0.05)
    print(min(counts), flush=True)
    for task in tasks:
        task.cancel()


asyncio.run(main())
"""


def followed_writes(url: str, ns: str, subscribers: int, seconds: int) -> tuple[float, bool]:
    """PUTs per second with ``subscribers`` streams of ``ns`` open (0: none), and whether every
    stream delivered every change."""
    host, port = url.removeprefix("http://").split(":")
    followers = None
    if subscribers:
        followers = subprocess.Popen(
            [sys.executable, "-c", FOLLOWERS, host, port, ns, str(subscribers)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert followers.stdout is not None and followers.stdin is not None
        assert followers.stdout.readline().strip() == "ready"
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(SCRIPTS["PUT"].replace("/memory/bench/", f"/memory/{ns}/"))
        script.flush()
        done = subprocess.run(
            ["wrk", "-t1", "-c8", f"-d{seconds}s", "-s", script.name, url],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    if "Non-2xx" in done.stdout or "Socket errors" in done.stdout:
        raise RuntimeError(f"not every PUT was answered with a 2xx:\n{done.stdout}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", done.stdout).group(1))  # type: ignore[union-attr]
    if followers is None:
        return rate, True
    total = int(re.search(r"(\d+) requests in", done.stdout).group(1))  # type: ignore[union-attr]
    assert followers.stdin is not None and followers.stdout is not None
    followers.stdin.write(f"expect {total}\n")
    followers.stdin.flush()
    delivered = int(followers.stdout.readline())
    followers.wait(10)
    return rate, delivered >= total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="botwire-bench-changes-"))

    print(f"watch latency, commit to event, {args.subscribers} subscribers, ms\n")
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

    if shutil.which("wrk") is None:
        sys.exit("the followed writes need wrk: apt-get install wrk")
    server, server_url = start_serve(f"sqlite:///{folder / 'followed.db'}")
    rates: dict[int, list[float]] = {0: [], args.subscribers: []}
    try:
        for r in range(args.rounds):
            for followers in rates:
                rate, complete = followed_writes(server_url, f"f{r}-{followers}", followers,
                                                 args.seconds)  # fmt: skip
                if not complete:
                    raise RuntimeError(f"{followers} streams missed changes")
                rates[followers].append(rate)
    finally:
        server.terminate()
    alone, followed = (statistics.median(rates[n]) for n in rates)
    print(f"\nPUTs per second through botwire serve (wrk, 8 connections), median of {args.rounds}"
          " rounds\n")  # fmt: skip
    print(f"| no follower | {args.subscribers} SSE streams | slowdown |")
    print("|---:|---:|---:|")
    print(f"| {alone:,.0f} | {followed:,.0f} | {1 - followed / alone:.0%} |")


if __name__ == "__main__":
    main()
