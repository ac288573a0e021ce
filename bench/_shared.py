"""What the benchmarks share: servers started as subprocesses, PostgreSQL schemas, timing."""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("BOTWIRE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answered at {url}")


def start_serve(db: str, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    """A ``botwire serve`` subprocess on ``db`` (one worker, loopback); returns it and its URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "botwire.cli", "serve", "--db", db, "--port", str(port), *args],
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_ready(url + "/healthz")
    return proc, url


@contextlib.contextmanager
def pg_schema(url: str = PG_URL) -> Iterator[str | None]:
    """A PostgreSQL URL on a schema of its own, dropped afterwards; ``None`` where no server
    answers (the benchmark then says so and leaves PostgreSQL out)."""
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        print(f"(no PostgreSQL at {url}: {exc}; its rows are left out)\n")
        yield None
        return
    schema = f"botwire_bench_{uuid.uuid4().hex[:8]}"
    try:
        yield f"{url}{'&' if '?' in url else '?'}schema={schema}"
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def per_op(fn: Callable[[int], object], ops: int) -> float:
    """Microseconds per call of ``fn(i)`` for i in range(ops)."""
    start = time.perf_counter()
    for i in range(ops):
        fn(i)
    return (time.perf_counter() - start) / ops * 1e6


def medians(cases: dict[str, list[float]]) -> dict[str, float]:
    return {name: statistics.median(times) for name, times in cases.items() if times}
