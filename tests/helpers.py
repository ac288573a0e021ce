"""Running botwire in child processes, as real deployments do."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

from botwire.backends.sqlite.schema import MIGRATIONS, statements

ROOT = Path(__file__).resolve().parent.parent


NETGUARD = Path(__file__).resolve().parent / "netguard"


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child process: botwire importable, no store chosen by the
    environment, and no connection beyond this machine (``netguard``)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(NETGUARD), str(ROOT), env.get("PYTHONPATH", "")])
    env.pop("BOTWIRE_URL", None)
    env.update(extra)
    return env


def assert_stayed_local(stderr: str) -> None:
    """Fail when a child process tried to reach another machine."""
    from .netguard.guard import MARK

    assert MARK not in stderr, stderr


def start_python(code: str, **env: str) -> subprocess.Popen[str]:
    """Start ``python -c code`` with botwire importable; stdout is a pipe."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(**env),
    )


def run_python(code: str, timeout: float = 120, **env: str) -> str:
    """Run ``python -c code``; return its stdout, failing with its stderr if it fails."""
    proc = start_python(code, **env)
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    assert_stayed_local(err)
    return out


def run_many(code: str, count: int, timeout: float = 300, **env: str) -> list[str]:
    """Run ``count`` copies of ``code`` at once (``WORKER`` holds each one's number)."""
    procs = [start_python(code, WORKER=str(n), **env) for n in range(count)]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, err
        assert_stayed_local(err)
        outputs.append(out)
    return outputs


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A real ``botwire serve`` subprocess on a free loopback port."""

    def __init__(self, db: str | None, *args: str, **env: str) -> None:
        self.db = db
        self.args = args
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[str] | None = None
        self.log: str | None = None

    def start(self) -> Server:
        import time

        import httpx

        log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"botwire-serve-{self.port}.log", "w")  # noqa: SIM115 - the server writes to it
        self.log = log.name
        db = ["--db", self.db] if self.db is not None else []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "botwire.cli", "serve", *db, "--port", str(self.port),
             *self.args],
            stdout=log, stderr=subprocess.STDOUT, text=True, env=child_env(**self.env),
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log.close()
                raise RuntimeError(Path(log.name).read_text())
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"botwire serve did not answer on {self.url}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log is not None:
            assert_stayed_local(Path(self.log).read_text(errors="replace"))

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def sqlite_store_at(path: Path, version: int) -> sqlite3.Connection:
    """A store file at schema ``version`` holding the value ``old``/``doc`` (not indexed),
    and a connection to it to add what that release wrote."""
    conn = sqlite3.connect(path, isolation_level=None)
    for migration in MIGRATIONS[:version]:
        for statement in statements(migration):
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version={version}")
    conn.execute(
        "INSERT INTO entries (ns, key, kind, value, size, version, created_at, updated_at)"
        " VALUES ('old', 'doc', 0, '\"an ancient manuscript\"', 23, 1, 1, 1)"
    )
    return conn


_CONCEPTS = {
    "portugal": ["lisbon", "porto", "portugal", "portuguese", "algarve", "sintra"],
    "travel": ["trip", "travel", "flight", "far", "journey", "vacation", "holiday", "visit"],
    "cat": ["cat", "cats", "kitten", "tuna", "purr", "feline"],
    "food": ["food", "dinner", "lunch", "eat", "vegetarian", "meat", "cook", "restaurant"],
    "music": ["music", "jazz", "song", "guitar", "concert", "band"],
    "work": ["job", "work", "office", "manager", "meeting", "deadline"],
}
_CONCEPT_OF = {word: n for n, words in enumerate(_CONCEPTS.values()) for word in words}


def concepts(texts: list[str]) -> list[list[float]]:
    """A deterministic embedder for tests: words of one concept (Lisbon, Porto, Portugal) share
    a dimension; any other word adds a little to one of 16 dimensions chosen by its letters."""
    vectors = []
    for text in texts:
        vector = [0.0] * (len(_CONCEPTS) + 16)
        for word in "".join(c if c.isalnum() else " " for c in text.lower()).split():
            concept = _CONCEPT_OF.get(word)
            if concept is not None:
                vector[concept] += 1.0
            else:
                vector[len(_CONCEPTS) + sum(map(ord, word)) % 16] += 0.2
        vectors.append(vector)
    return vectors


def broken(texts: list[str]) -> list[list[float]]:
    """An embedder whose service is down."""
    raise ConnectionError("the embedding service is down")
