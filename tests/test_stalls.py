"""The server under attack: no request holds the event loop for the others, each request's work
is bounded (words per query, searches per batch, a time limit), headers are capped while they
are read, and SIGTERM lets requests under way finish."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from botwire import Memory, Overloaded
from botwire.backends.search import COMMON_WORDS

from .conftest import empty_postgres
from .helpers import Server

WORDS = sorted(COMMON_WORDS)[:40]
TEXT = " ".join(WORDS)
"""Every value holds every one of these words: a search for them matches everything."""


def _fill(url: str, count: int) -> None:
    mem = Memory("crowd", url)
    for start in range(0, count, 2000):
        mem.set_many({f"k{n}": f"{TEXT} {n}" for n in range(start, start + 2000)})


@pytest.fixture(scope="module")
def crowded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server on a store of 20,000 values that all hold the same 40 common words."""
    db = f"sqlite:///{tmp_path_factory.mktemp('crowd') / 'crowd.db'}"
    _fill(db, 20_000)
    with Server(db) as server:
        Memory("crowd", server.url).search("about", limit=1)  # the index catches up once
        yield server


def _heavy_batch(words: int, searches: int) -> dict[str, Any]:
    query = " ".join(WORDS[:words])
    return {"ops": [{"op": "search", "ns": "crowd", "query": query, "match": "any",
                     "limit": 1000} for _ in range(searches)]}  # fmt: skip


def test_each_request_does_bounded_work(crowded: Server) -> None:
    with httpx.Client(base_url=crowded.url, timeout=60) as client:
        many = " ".join(sorted(COMMON_WORDS)[:160])
        too_many_words = client.get("/v1/search", params={"ns": "crowd", "q": many})
        assert too_many_words.status_code == 400
        assert "at most 32 words" in too_many_words.json()["detail"]
        assert client.post("/v1/batch", json=_heavy_batch(3, 11)).status_code == 400
        answer = client.post("/v1/batch", json=_heavy_batch(3, 58))
        assert answer.status_code == 400 and "at most 10 searches" in answer.json()["detail"]
        assert client.post("/v1/batch", json=_heavy_batch(32, 1)).status_code in (200, 413)


@pytest.mark.slow
@pytest.mark.alone
def test_no_request_stalls_the_event_loop_for_the_others(crowded: Server) -> None:
    """Clients send the heaviest searches the server accepts (and some it refuses) for a few
    seconds; another client's ``/healthz`` never waits more than 100 ms."""
    stop = threading.Event()
    statuses: list[int] = []

    def attack(kind: int) -> None:
        with httpx.Client(base_url=crowded.url, timeout=60) as client:
            while not stop.is_set():
                if kind == 0:
                    answer = client.post("/v1/batch", json=_heavy_batch(32, 10))
                elif kind == 1:
                    answer = client.get(
                        "/v1/search",
                        params={"ns": "crowd", "q": TEXT[:600], "match": "any", "limit": 1000},
                    )
                else:
                    answer = client.post("/v1/batch", json=_heavy_batch(32, 58))
                statuses.append(answer.status_code)

    attackers = [threading.Thread(target=attack, args=(n % 3,)) for n in range(4)]
    for thread in attackers:
        thread.start()
    waits = []
    try:
        time.sleep(0.3)
        with httpx.Client(base_url=crowded.url, timeout=10) as probe:
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline:
                started = time.perf_counter()
                assert probe.get("/healthz").status_code == 200
                waits.append(time.perf_counter() - started)
                time.sleep(0.02)
    finally:
        stop.set()
        for thread in attackers:
            thread.join()
    assert statuses and all(status in (200, 400, 413, 503) for status in statuses), statuses
    assert max(waits) < 0.1, f"/healthz waited {max(waits) * 1000:.0f} ms (median "
    f"{sorted(waits)[len(waits) // 2] * 1000:.1f} ms over {len(waits)})"


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_a_request_past_the_time_limit_is_stopped_with_503(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if engine == "postgres":
        db = request.getfixturevalue("pg_url")
        empty_postgres(db)
    else:
        db = f"sqlite:///{tmp_path / 'slow.db'}"
    _fill(db, 6000)
    Memory("crowd", db).search("about", limit=1)  # the index catches up first
    with (
        Server(db, BOTWIRE_MAX_REQUEST_SECONDS="0.01") as server,
        httpx.Client(base_url=server.url, timeout=60) as client,
    ):
        answer = client.post("/v1/batch", json=_heavy_batch(32, 10))
        assert answer.status_code == 503, answer.text
        assert int(answer.headers["retry-after"]) >= 1
        assert "time limit of 0.01 s" in answer.json()["detail"]
        with pytest.raises(Overloaded) as stopped:
            Memory("crowd", server.url).search(" ".join(WORDS[:30]), match="any", limit=1000)
        assert stopped.value.retry_after == 1.0
        assert client.get("/healthz").status_code == 200
        assert Memory("crowd", server.url).get("k7") == f"{TEXT} 7"


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_a_huge_header_is_refused_while_it_is_read(http_server: Server) -> None:
    assert http_server.proc is not None
    before = _rss(http_server.proc.pid)
    answer = b""
    with socket.create_connection(("127.0.0.1", http_server.port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        try:
            for _ in range(96 * 16):  # 96 MiB
                sock.sendall(b"a" * 65536)
        except OSError:
            pass  # refused and closed midway
        sock.settimeout(5)
        with contextlib.suppress(OSError):
            answer = sock.recv(200)
    grown = _rss(http_server.proc.pid) - before
    assert answer.startswith(b"HTTP/1.1 431"), answer
    assert grown < 16 * 1024 * 1024, f"the server grew by {grown / 2**20:.0f} MiB"
    assert httpx.get(http_server.url + "/healthz").status_code == 200


def test_requests_with_large_but_allowed_headers_and_bodies_pass(http_server: Server) -> None:
    headers = {f"x-h{n}": "v" * 100 for n in range(60)}
    value = "x" * 500_000
    answer = httpx.put(
        http_server.url + "/memory/allowed-headers/k", json={"value": value}, headers=headers
    )
    assert answer.status_code == 200, answer.text
    assert Memory("allowed-headers", http_server.url).get("k") == value


@pytest.mark.slow
def test_sigterm_lets_the_requests_under_way_finish(tmp_path: Path) -> None:
    """Four clients keep sending large batches over keep-alive connections; on SIGTERM every
    request the server had been sent is answered, and then it stops accepting."""
    db = f"sqlite:///{tmp_path / 'stop.db'}"
    Memory("g", db).set_many({f"k{n}": "x" * 100 for n in range(3000)})
    batch = {"ops": [{"op": "get", "ns": "g", "key": f"k{n}"} for n in range(3000)]}
    server = Server(db).start()
    assert server.proc is not None
    outcomes: dict[int, tuple[int, str | None]] = {}

    def client(number: int) -> None:
        answered, error = 0, None
        with httpx.Client(timeout=30) as http:
            while error is None:
                try:
                    assert http.post(server.url + "/v1/batch", json=batch).status_code == 200
                    answered += 1
                except httpx.TransportError as exc:
                    error = type(exc).__name__
        outcomes[number] = (answered, error)

    clients = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for thread in clients:
        thread.start()
    time.sleep(1)
    os.kill(server.proc.pid, signal.SIGTERM)
    for thread in clients:
        thread.join(60)
    assert server.proc.wait(30) in (0, -signal.SIGTERM)  # uvicorn ends as the signal asked
    server.stop()
    for answered, error in outcomes.values():
        assert answered >= 1 and error == "ConnectError", outcomes  # refused only once closed
