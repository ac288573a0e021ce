"""Server benchmark: `botwire serve` against a baseline FastAPI + SQLite server, side by side.

    python bench/bench_server.py [--rounds 5] [--ops 1000]

Both servers run as uvicorn subprocesses with one worker on loopback, each on its own fresh
SQLite file, and are measured by the same clients in interleaved rounds:
- sequential GET and PUT on the compatible routes from one keep-alive connection (http.client);
- 8 threads, each with its own connection, doing GETs (aggregate ops/s);
- botwire's own Python client (`Memory` over HTTP, httpx) against `botwire serve`.
Reported: medians over rounds of ops/s, p50 and p99 latency.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from botwire import Memory

HERE = Path(__file__).resolve().parent
VALUE = {"language": "en", "timezone": "Europe/Berlin", "name": "Ada", "turns": 12}
REFERENCE = {"get": 1124, "set": 845, "8 threads get": 1632}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(port: int, path: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"server on {port} did not start")


def start_servers(folder: Path) -> tuple[list[subprocess.Popen[bytes]], dict[str, int]]:
    ports = {"botwire": free_port(), "baseline": free_port()}
    env = dict(os.environ, PYTHONPATH=str(HERE.parent))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "botwire.cli", "serve", "--db",
             f"sqlite:///{folder / 'botwire.db'}", "--port", str(ports["botwire"])],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "baseline_server:app", "--port",
             str(ports["baseline"]), "--no-access-log", "--log-level", "warning"],
            cwd=HERE, env=dict(env, BASELINE_DB=str(folder / "baseline.db")),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ),
    ]  # fmt: skip
    wait_ready(ports["botwire"], "/healthz")
    wait_ready(ports["baseline"], "/docs")
    return procs, ports


def timed(calls: int, fn: Callable[[int], object]) -> list[float]:
    latencies = []
    for i in range(calls):
        started = time.perf_counter()
        fn(i)
        latencies.append(time.perf_counter() - started)
    return latencies


def sequential(port: int, ops: int) -> dict[str, list[float]]:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    headers = {"content-type": "application/json"}

    def put(i: int) -> None:
        body = json.dumps({"value": {**VALUE, "turns": i}})
        conn.request("PUT", f"/memory/bench/k{i % 100}", body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        assert response.status == 200

    def get(i: int) -> None:
        conn.request("GET", f"/memory/bench/k{i % 100}")
        response = conn.getresponse()
        response.read()
        assert response.status == 200

    result = {"set": timed(ops, put), "get": timed(ops, get)}
    conn.close()
    return result


def threaded_gets(port: int, ops: int, threads: int = 8) -> tuple[float, float, float]:
    """Aggregate ops/s of ``threads`` clients doing GETs, with p50 and p99 latency in ms."""
    latencies: list[list[float]] = [[] for _ in range(threads)]

    def work(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        for i in range(ops // threads):
            started = time.perf_counter()
            conn.request("GET", f"/memory/bench/k{i % 100}")
            conn.getresponse().read()
            latencies[n].append(time.perf_counter() - started)
        conn.close()

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    ordered = sorted(x for per in latencies for x in per)
    p50, p99 = ordered[len(ordered) // 2] * 1000, ordered[int(len(ordered) * 0.99)] * 1000
    return len(ordered) / elapsed, p50, p99


def library(port: int, ops: int) -> dict[str, list[float]]:
    mem = Memory("bench-lib", f"http://127.0.0.1:{port}")
    result = {
        "set": timed(ops, lambda i: mem.set(f"k{i % 100}", {**VALUE, "turns": i})),
        "get": timed(ops, lambda i: mem.get(f"k{i % 100}")),
    }
    mem.backend.close()
    return result


def summary(latencies: list[float]) -> tuple[float, float, float]:
    ordered = sorted(latencies)
    ops = len(ordered) / sum(ordered)
    return ops, ordered[len(ordered) // 2] * 1000, ordered[int(len(ordered) * 0.99)] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ops", type=int, default=1000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="botwire-bench-server-"))
    procs, ports = start_servers(folder)
    rows: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    try:
        for _ in range(args.rounds):
            for name, port in ports.items():
                for op, latencies in sequential(port, args.ops).items():
                    rows.setdefault((name, op), []).append(summary(latencies))
                rows.setdefault((name, "8 threads get"), []).append(
                    threaded_gets(port, args.ops * 2)
                )
            for op, latencies in library(ports["botwire"], args.ops).items():
                rows.setdefault(("botwire client", op), []).append(summary(latencies))
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()

    def med(key: tuple[str, str], index: int) -> float:
        return statistics.median(sample[index] for sample in rows[key])

    print(f"median of {args.rounds} rounds, {args.ops} requests per case, one worker each\n")
    print(
        "| case | botwire serve ops/s (p50 / p99 ms) | baseline ops/s (p50 / p99 ms) | ratio "
        "| vs reference figure |"
    )
    print("|---|---:|---:|---:|---:|")
    for op in ["get", "set", "8 threads get"]:
        ours, base = ("botwire", op), ("baseline", op)

        def latency(key: tuple[str, str]) -> str:
            return f" ({med(key, 1):.2f} / {med(key, 2):.2f})"

        print(
            f"| {op} | {med(ours, 0):,.0f}{latency(ours)} | {med(base, 0):,.0f}{latency(base)} "
            f"| {med(ours, 0) / med(base, 0):.2f} | {med(ours, 0) / REFERENCE[op]:.2f} "
            f"(of {REFERENCE[op]:,}) |"
        )
    print("\nbotwire's Python client (Memory over HTTP, httpx) against botwire serve:\n")
    print("| case | ops/s | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|")
    for op in ["get", "set"]:
        key = ("botwire client", op)
        print(f"| Memory.{op} | {med(key, 0):,.0f} | {med(key, 1):.2f} | {med(key, 2):.2f} |")


if __name__ == "__main__":
    main()
