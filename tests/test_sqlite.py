"""What only the embedded SQLite store has: its file, crash safety, schema, forks, purging."""

from __future__ import annotations

import gc
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from botwire import BackendUnavailable, Memory
from botwire.backends import create_backend, open_backend
from botwire.backends.sqlite import SQLiteBackend
from botwire.backends.sqlite.connections import Checkpoints
from botwire.backends.sqlite.schema import SCHEMA_VERSION
from botwire.config import default_path, resolve_url

from .conftest import FakeClock
from .helpers import run_python, start_python


@pytest.mark.slow
def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    proc = start_python(
        f"""
        from botwire import Memory
        mem = Memory("crash", "sqlite:///{path}")
        for i in range(1_000_000):
            mem.set(f"k{{i}}", {{"i": i, "pad": "x" * 200}})
            mem.append("log", i)
            print(i, flush=True)
        """
    )
    assert proc.stdout is not None
    acknowledged = []
    for line in proc.stdout:
        acknowledged.append(int(line))
        if len(acknowledged) >= 500:
            break
    os.kill(proc.pid, signal.SIGKILL)
    acknowledged.extend(int(line) for line in proc.stdout)  # printed before the kill
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""

    backend = SQLiteBackend(path)
    mem = Memory("crash", backend=backend)
    values = mem.get_many(f"k{i}" for i in acknowledged)
    assert len(values) == len(acknowledged)
    assert all(values[f"k{i}"]["i"] == i for i in acknowledged)
    log = mem.get("log")
    assert log[: len(acknowledged)] == acknowledged
    backend.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_file_is_wal_and_versioned(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    Memory("ns", f"sqlite:///{path}").set("k", 1)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)


def test_a_newer_schema_is_refused_with_advice(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    with pytest.raises(BackendUnavailable, match="upgrade botwire"):
        SQLiteBackend(path).execute([])


def test_a_file_that_is_not_a_store_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(BackendUnavailable, match=r"junk\.db"):
        Memory("ns", backend=SQLiteBackend(path)).get("k")


def test_synchronous_full_from_the_url(tmp_path: Path) -> None:
    backend = create_backend(f"sqlite:///{tmp_path / 'full.db'}?synchronous=full")
    assert isinstance(backend, SQLiteBackend) and backend.synchronous == "FULL"
    Memory("ns", backend=backend).set("k", 1)
    assert Memory("ns", backend=backend).get("k") == 1


def test_default_url_is_a_file_in_the_user_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BOTWIRE_URL", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", "/data")
    assert resolve_url() == "sqlite:////data/botwire/memory.db"
    assert default_path() == Path("/data/botwire/memory.db")
    monkeypatch.setenv("BOTWIRE_URL", "sqlite:///other.db")
    assert resolve_url() == "sqlite:///other.db"
    assert resolve_url("sqlite:///explicit.db") == "sqlite:///explicit.db"


def test_memory_uses_botwire_url_and_base_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'env.db'}"
    monkeypatch.setenv("BOTWIRE_URL", url)
    Memory("ns").set("k", "from env")
    assert Memory("ns", base_url=url).get("k") == "from env"
    assert Memory("ns").backend is open_backend(url)


def test_a_forked_child_opens_its_own_connection(tmp_path: Path) -> None:
    mem = Memory("fork", backend=SQLiteBackend(tmp_path / "fork.db"))
    mem.set("parent", 1)
    pid = os.fork()
    if pid == 0:  # child: use the inherited backend, then exit without cleanup
        code = 0
        try:
            mem.incr("parent")
            mem.set("child", 2)
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert mem.get("parent") == 2 and mem.get("child") == 2


def test_expired_keys_are_purged_from_the_file(tmp_path: Path) -> None:
    clock = FakeClock()
    backend = SQLiteBackend(tmp_path / "purge.db", clock=clock)
    mem = Memory("p", backend=backend)
    mem.set_many({f"k{i}": i for i in range(50)}, ttl=10)
    mem.append("list", *range(100))
    mem.expire("list", 10)
    clock.advance(11)
    mem.set("fresh", 1)  # a write purges what expired
    with sqlite3.connect(tmp_path / "purge.db") as conn:
        assert conn.execute("SELECT count(*) FROM entries").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM list_items").fetchone() == (0,)


def test_list_items_are_rows_and_trimming_deletes_them(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path / "list.db")
    mem = Memory("l", backend=backend)
    for i in range(30):
        mem.append("chat", {"n": i}, max_len=10)
    assert mem.get("chat") == [{"n": i} for i in range(20, 30)]
    with sqlite3.connect(tmp_path / "list.db") as conn:
        assert conn.execute("SELECT count(*) FROM list_items").fetchone() == (10,)
        (size,) = conn.execute("SELECT size FROM entries WHERE key = 'chat'").fetchone()
    assert size == len(
        '[{"n":20},{"n":21},{"n":22},{"n":23},{"n":24},{"n":25},{"n":26},{"n":27},{"n":28},{"n":29}]'
    )
    mem.set("chat", "text now")
    with sqlite3.connect(tmp_path / "list.db") as conn:
        assert conn.execute("SELECT count(*) FROM list_items").fetchone() == (0,)


def test_unwritable_location_is_backend_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(BackendUnavailable, match="cannot open"):
        Memory("ns", backend=SQLiteBackend(blocker / "sub" / "m.db")).get("k")


def test_two_processes_see_each_others_writes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    Memory("ns", url).set("from_parent", [1, 2])
    out = run_python(
        f"""
        from botwire import Memory
        mem = Memory("ns", {url!r})
        print(mem.get("from_parent"))
        mem.set("from_child", {{"ok": True}})
        """
    )
    assert out.strip() == "[1, 2]"
    assert Memory("ns", url).get("from_child") == {"ok": True}


async def test_reads_answer_on_the_event_loop_while_a_purge_is_due(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read carries no purge and no index catch-up, so it never waits for a worker thread,
    however long ago the store last purged; the next write, which purges, goes to a thread."""
    import asyncio

    from botwire import AsyncMemory

    clock = FakeClock()
    mem = AsyncMemory("ns", backend=SQLiteBackend(tmp_path / "m.db", clock=clock))
    await mem.set("k", 1)
    clock.advance(60)  # a purge is due
    hops: list[object] = []
    to_thread = asyncio.to_thread

    async def counted(fn: object, *args: object) -> object:
        hops.append(fn)
        return await to_thread(fn, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(asyncio, "to_thread", counted)
    assert [await mem.get("k") for _ in range(50)] == [1] * 50
    assert await mem.get_many(["k", "missing"]) == {"k": 1}
    assert hops == []
    await mem.set("k", 2)
    assert len(hops) == 1


def test_the_log_is_copied_into_the_file_by_a_thread_and_stays_bounded(tmp_path: Path) -> None:
    """Writes leave checkpoints to a thread of the store's own: below the point where a commit
    would checkpoint itself, the file takes the data without any write having copied it;
    under sustained writes the log stays bounded; closing the store, or dropping it, stops
    the thread."""
    path = tmp_path / "wal.db"
    backend = SQLiteBackend(path, search=False, history=0)
    mem = Memory("wal", backend=backend)
    mem.set("first", 1)
    start = path.stat().st_size
    page = "x" * 3000  # about a page per write
    for i in range(1_500):  # about 1,500 pages: below the backstop
        mem.set(f"k{i % 500}", f"{i}{page}")
    deadline = time.monotonic() + 10
    while path.stat().st_size < start + 500 * 3000 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert path.stat().st_size >= start + 500 * 3000, "the thread copied the log into the file"
    thread = backend._checkpoints._thread
    assert thread is not None and thread.is_alive()

    for i in range(12_000):  # three times the backstop's pages
        mem.set(f"k{i % 500}", f"{i}{page}")
    frames = (Path(f"{path}-wal").stat().st_size - 32) // (4096 + 24)
    assert frames <= 2 * Checkpoints.BACKSTOP_PAGES, frames
    assert mem.get("k499") == f"11999{page}"
    backend.close()
    assert not thread.is_alive()

    dropped = SQLiteBackend(tmp_path / "dropped.db", search=False, history=0)
    for i in range(Checkpoints.CHECK_EVERY):
        Memory("wal", backend=dropped).set("k", i)
    thread = dropped._checkpoints._thread
    assert thread is not None and thread.is_alive()
    del dropped
    gc.collect()
    thread.join(timeout=10)
    assert not thread.is_alive(), "a store garbage collected leaves no thread behind"
