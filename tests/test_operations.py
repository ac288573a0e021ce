"""Running ``botwire serve`` as an operator does: readiness beside liveness, a port checked and
announced only once it listens, a database that starts after the server, JSON logs without
tokens or values."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from botwire import Memory
from botwire.backends.postgres import PostgresBackend
from botwire.backends.sqlite import SQLiteBackend
from botwire.server import create_app
from botwire.server.auth import create_token
from botwire.server.settings import Settings

from .conftest import PG_URL
from .helpers import Server, child_env, free_port


def botwire(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "botwire.cli", *args],
        capture_output=True, text=True, timeout=timeout, env=child_env(**env),
    )  # fmt: skip


def test_readyz_says_whether_the_store_answers_and_healthz_whether_the_server_runs() -> None:
    backend = PostgresBackend(
        f"postgresql://postgres@127.0.0.1:{free_port()}/nothing?connect_timeout=1"
    )
    with TestClient(create_app(Settings(), backend=backend)) as client:
        assert client.get("/healthz").status_code == 200
        down = client.get("/readyz")
        assert down.status_code == 503 and down.json()["status"] == "unavailable"
        assert down.json()["detail"]


def test_readyz_is_open_to_all_once_tokens_are_on(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    backend = SQLiteBackend(db)
    create_token(backend, "bot", ["bot:"])
    backend.close()
    with Server(f"sqlite:///{db}") as server:
        ready = httpx.get(server.url + "/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        assert httpx.get(server.url + "/healthz").status_code == 200
        assert httpx.get(server.url + "/v1/namespaces").status_code == 401


@pytest.mark.parametrize("port", ["0", "65536", "-1", "99999999"])
def test_a_port_outside_1_to_65535_is_refused(tmp_path: Path, port: str) -> None:
    done = botwire("serve", "--db", f"sqlite:///{tmp_path / 'p.db'}", "--port", port)
    assert done.returncode != 0 and "1 to 65535" in done.stderr
    assert "listening" not in done.stderr


def test_a_bad_setting_in_the_environment_is_named(tmp_path: Path) -> None:
    done = botwire("serve", "--db", f"sqlite:///{tmp_path / 'p.db'}", BOTWIRE_PORT="eighty")
    assert done.returncode == 1 and "BOTWIRE_PORT='eighty' is not a whole number" in done.stderr


def test_a_taken_port_gets_a_clear_message(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = botwire("serve", "--db", f"sqlite:///{tmp_path / 't.db'}", "--port", str(port))
    assert done.returncode == 1
    assert f"port {port} on 127.0.0.1 is taken" in done.stderr and "Traceback" not in done.stderr
    assert "listening" not in done.stderr


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "botwire.cli", "serve", *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=child_env(),
    )  # fmt: skip


def _read_until(proc: subprocess.Popen[str], word: str, seconds: float = 30) -> list[str]:
    assert proc.stderr is not None
    lines: list[str] = []
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if word in line:
            return lines
    raise AssertionError(f"no {word!r} in {lines}")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_listening_is_said_once_it_listens(tmp_path: Path, workers: str) -> None:
    port = free_port()
    proc = _start(
        "--db", f"sqlite:///{tmp_path / 'l.db'}", "--port", str(port), "--workers", workers
    )
    try:
        _read_until(proc, "listening on")
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            pass  # accepted at once: the socket listens
        deadline = time.monotonic() + 30
        while True:  # and it answers once the app is up
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(20)


class Forwarder:
    """A TCP relay from a loopback port to PostgreSQL, started when a test says: a database
    that comes up after the server."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.port = port
        self.target = target
        self.listener: socket.socket | None = None

    def start(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        assert self.listener is not None
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        if self.listener is not None:
            self.listener.close()


@pytest.fixture
def late_database(pg_url: str) -> Iterator[tuple[str, Forwarder]]:
    port = free_port()
    relay = Forwarder(port, ("127.0.0.1", 5432))
    yield pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{port}"), relay
    relay.close()


def test_the_server_waits_for_a_database_that_starts_after_it(
    late_database: tuple[str, Forwarder],
) -> None:
    assert "127.0.0.1:5432" in PG_URL  # the relay stands in front of the test server
    url, relay = late_database
    port = free_port()
    proc = _start("--db", url, "--port", str(port))
    try:
        _read_until(proc, "waiting for the store")
        time.sleep(1.5)
        relay.start()
        _read_until(proc, "listening on")
        mem = Memory("late", f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 30
        while True:
            try:
                mem.set("k", "arrived")
                break
            except Exception:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert mem.get("k") == "arrived"
    finally:
        proc.terminate()
        proc.wait(20)


def test_a_database_that_never_answers_ends_the_wait(tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/x?connect_timeout=1"
    started = time.monotonic()
    done = botwire("serve", "--db", url, "--store-wait-seconds", "2")
    assert done.returncode == 1 and "waiting for the store" in done.stderr
    assert "listening" not in done.stderr and 2 <= time.monotonic() - started < 30


def test_json_logs_carry_request_ids_and_no_token_or_value(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    backend = SQLiteBackend(db)
    token = create_token(backend, "bot", ["*"])
    backend.close()
    secret_value = "the-secret-value-7f3a"
    with Server(f"sqlite:///{db}", "--log-format", "json", "--access-log") as server:
        mem = Memory("logged", server.url, token=token)
        mem.set("k", secret_value)
        assert mem.get("k") == secret_value
        httpx.get(server.url + "/memory/logged/k", headers={"authorization": f"Bearer {token}",
                                                          "x-request-id": "req-42"})  # fmt: skip
        httpx.get(server.url + "/memory/logged/k", headers={"authorization": "Bearer bw_wrong"})
        words = {"q": "whispered", "ns": "logged"}
        auth = {"authorization": f"Bearer {token}"}
        assert httpx.get(server.url + "/v1/search", params=words, headers=auth).status_code == 200
        assert server.proc is not None
    assert server.log is not None
    text = Path(server.log).read_text()
    assert token not in text and secret_value not in text and "bw_wrong" not in text
    assert "whispered" not in text  # a search's words: the query is left out of the path
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert {"time", "level", "logger", "message"} <= set(records[0])
    assert any("listening on" in r["message"] for r in records)
    access = [r for r in records if r["logger"] == "uvicorn.access"]
    assert {(r["method"], r["path"], r["status"]) for r in access} >= {
        ("GET", "/memory/logged/k", 200),
        ("GET", "/memory/logged/k", 401),
        ("POST", "/v1/batch", 200),
    }
    assert any(r.get("request_id") == "req-42" for r in access)
    assert all(r.get("request_id") for r in access)
