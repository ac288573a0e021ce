"""The change log: one record per write, in the write's transaction, read in commit order on
every store (SQLite, PostgreSQL, and through ``botwire serve``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from botwire import (
    AsyncMemory,
    Change,
    InvalidKey,
    InvalidRequest,
    Memory,
    VersionConflict,
    WrongType,
)
from botwire.backends import create_backend
from botwire.backends.base import (
    AddChange,
    Append,
    Changes,
    Delete,
    Get,
    History,
    Incr,
    Put,
    run_steps,
)
from botwire.backends.base import Change as Logged
from botwire.backends.sqlite import SQLiteBackend
from botwire.server.auth import create_token

from .conftest import FakeClock, Store
from .helpers import Server, child_env, run_many, run_python, sqlite_store_at


def fresh(store: Store) -> Memory:
    """A memory of a namespace no other test writes (the server's log is shared by all)."""
    return store.memory(f"log-{uuid.uuid4().hex[:8]}")


def ops(changes: list[Change]) -> list[tuple[str | None, str, Any]]:
    return [(c.key, c.op, c.value) for c in changes]


def test_every_write_kind_records_one_change(store: Store) -> None:
    mem = fresh(store)
    version = mem.set("a", {"x": 1})
    mem.set_many({"b": [1], "c": "three"})
    length = mem.append("chat", {"role": "user"}, "hi")
    mem.incr("n", 5)
    mem.expire("c", 60)
    mem.expire("c", None)
    assert mem.delete("b") and not mem.delete("missing") and not mem.expire("missing", 5)
    with pytest.raises(VersionConflict):
        mem.set("a", 2, if_version=version + 1)
    mem.update("a", lambda old: {**old, "y": 2})
    assert length == 2
    page = mem.changes()
    assert ops(page.changes) == [
        ("a", "set", {"x": 1}),
        ("b", "set", [1]),
        ("c", "set", "three"),
        ("chat", "append", [{"role": "user"}, "hi"]),
        ("n", "incr", 5),
        ("c", "expire", 60.0),
        ("c", "expire", None),
        ("b", "delete", None),
        ("a", "set", {"x": 1, "y": 2}),
    ]
    seqs = [c.seq for c in page.changes]
    assert seqs == sorted(set(seqs)) and page.cursor == seqs[-1]
    entries = mem.entries(["a", "c", "chat", "n"])
    latest = {c.key: c.version for c in page.changes}
    assert {key: e.version for key, e in entries.items()} == {k: latest[k] for k in entries}
    assert latest["b"] is None  # gone
    change = page.changes[0]
    assert change.namespace == mem.namespace and change.at.tzinfo is not None
    assert change.actor.startswith("local:" if store.name != "http" else "anonymous")
    assert mem.clear() == 4
    (cleared,) = mem.changes(page.cursor).changes
    assert (cleared.key, cleared.op, cleared.version) == (None, "clear", None)
    assert mem.changes(cleared.seq).changes == []


def test_a_failed_batch_records_nothing(store: Store) -> None:
    mem = fresh(store)
    mem.set("a", 1)
    before = mem.changes()
    with pytest.raises(VersionConflict):
        store.backend.execute(
            [Put(mem.namespace, "b", "2"), Put(mem.namespace, "a", "3", if_version=0)]
        )
    assert mem.changes(before.cursor).changes == []
    assert mem.get("b") is None


def test_one_batch_writing_a_key_twice_logs_each_version(store: Store) -> None:
    mem = fresh(store)
    ns = mem.namespace
    store.backend.execute(
        [Append(ns, "l", ('"a"',)), Append(ns, "l", ('"b"',)), Incr(ns, "n", 1), Incr(ns, "n", 1),
         Put(ns, "k", "1"), Delete(ns, "k"), Put(ns, "k", "2")]
    )  # fmt: skip
    logged = mem.changes().changes
    assert [(c.key, c.op) for c in logged] == [
        ("l", "append"), ("l", "append"), ("n", "incr"), ("n", "incr"),
        ("k", "set"), ("k", "delete"), ("k", "set"),
    ]  # fmt: skip
    by_key: dict[str | None, list[int | None]] = {}
    for change in logged:
        by_key.setdefault(change.key, []).append(change.version)
    for key in ("l", "n"):
        first, second = by_key[key]
        assert first is not None and second is not None and first < second
        assert mem.entry(key).version == second  # type: ignore[union-attr]
    assert by_key["k"][1] is None and by_key["k"][2] == mem.entry("k").version  # type: ignore[union-attr]
    assert mem.get("l", version=by_key["l"][0]) == ["a"]


def test_pages_prefixes_and_values(store: Store) -> None:
    mem = fresh(store)
    for n in range(25):
        mem.set(f"user:{n:02}", n)
        mem.set(f"task:{n:02}", n)
    seen: list[Change] = []
    cursor = 0
    while True:
        page = mem.changes(cursor, prefix="user:", limit=10)
        if not page.changes:
            break
        assert len(page.changes) <= 10
        seen += page.changes
        cursor = page.cursor
    assert [c.key for c in seen] == [f"user:{n:02}" for n in range(25)]
    mem.clear()
    (cleared,) = mem.changes(cursor, prefix="user:").changes  # a clear changes every key
    assert cleared.op == "clear"
    bare = mem.changes(limit=3, values=False).changes
    assert [c.value for c in bare] == [None, None, None] and bare[0].key == "user:00"


def test_history_of_a_key_newest_first(store: Store) -> None:
    mem = fresh(store)
    for n in range(5):
        mem.set("profile", {"n": n})
    mem.set("other", 1)
    mem.delete("profile")
    history = mem.history("profile")
    assert [(c.op, c.value) for c in history] == [("delete", None)] + [
        ("set", {"n": n}) for n in reversed(range(5))
    ]
    assert [c.version for c in history[1:]] == sorted(
        (c.version for c in history[1:]), reverse=True
    )
    assert len(mem.history("profile", limit=2)) == 2
    assert mem.history("never") == []


def test_bad_arguments_are_refused(store: Store) -> None:
    mem = fresh(store)
    for bad in ({"since": -1}, {"since": "3"}, {"limit": 0}, {"limit": 1001}, {"prefix": 5}):
        with pytest.raises((InvalidRequest, InvalidKey)):
            mem.changes(**bad)  # type: ignore[arg-type]
    for bad_key in ("", "a\x00b", 7):
        with pytest.raises((InvalidKey, InvalidRequest)):
            mem.history(bad_key)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match="alone"):
        store.backend.execute([Changes(mem.namespace), Get(mem.namespace, "a")])


async def test_async_changes_and_history(store: Store) -> None:
    amem = store.amemory(f"log-{uuid.uuid4().hex[:8]}")
    await amem.set("k", 1)
    await amem.append("l", "x")
    page = await amem.changes()
    assert ops(page.changes) == [("k", "set", 1), ("l", "append", ["x"])]
    assert [c.op for c in await amem.history("l")] == ["append"]
    assert isinstance(amem, AsyncMemory)


def test_ttl_purges_are_recorded(tmp_path: Path, pg_url: str) -> None:
    for url in (f"sqlite:///{tmp_path / 'ttl.db'}", pg_url):
        clock = FakeClock()
        backend = create_backend(url)
        backend.clock = clock  # type: ignore[method-assign]
        mem = Memory(f"ttl-{uuid.uuid4().hex[:8]}", backend=backend)
        mem.set("short", 1, ttl=5)
        clock.advance(10)
        mem.set("later", 2)  # a write purges what expired, at most once a second
        assert ops(mem.changes().changes) == [
            ("short", "set", 1), ("short", "expired", None), ("later", "set", 2)
        ]  # fmt: skip
        assert mem.history("short")[0].actor == "system:ttl"  # not the batch that purged it
        backend.close()


KILLED_WRITER = """
import os, sys
from botwire import Memory
mem = Memory(os.environ["NS"], os.environ["URL"])
n = 0
print("writing", flush=True)
while True:
    mem.set_many({f"k{i}": n for i in range(200)})
    mem.append("log", *range(50))
    n += 1
"""


def test_a_killed_writer_leaves_the_log_and_the_data_agreeing(tmp_path: Path, pg_url: str) -> None:
    import signal

    for url in (f"sqlite:///{tmp_path / 'killed.db'}", pg_url):
        ns = f"killed-{uuid.uuid4().hex[:8]}"
        proc = subprocess.Popen(
            [sys.executable, "-c", KILLED_WRITER], stdout=subprocess.PIPE, text=True,
            env=child_env(URL=url, NS=ns),
        )  # fmt: skip
        assert proc.stdout is not None and proc.stdout.readline() == "writing\n"
        time.sleep(1.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        mem = Memory(ns, url)
        logged: list[Change] = []
        cursor = 0
        while page := mem.changes(cursor, limit=1000).changes:
            logged += page
            cursor = page[-1].seq
        latest = {c.key: c for c in logged}
        entries = mem.entries([f"k{i}" for i in range(200)] + ["log"])
        assert entries and {k: e.version for k, e in entries.items()} == {
            k: latest[k].version for k in entries
        }
        sets = [c for c in logged if c.op == "set"]
        assert len(sets) == 200 * len({c.value for c in sets})  # whole batches only
        assert len(mem.get("log")) == 50 * sum(1 for c in logged if c.op == "append")


def test_botwires_own_namespaces_are_not_logged(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path / "own.db")
    create_token(backend, "ops", ["*"])
    (page,) = backend.execute([Changes(None)])
    assert page.changes == []


def test_through_the_server_the_actor_is_the_token(tmp_path: Path) -> None:
    db = tmp_path / "tokens.db"
    backend = SQLiteBackend(db)
    token = create_token(backend, "billing-bot", ["billing:"])
    other = create_token(backend, "support", ["support:"])
    backend.close()
    with Server(f"sqlite:///{db}") as server:
        mem = Memory("billing:acme", server.url, token=token)
        mem.set("plan", "pro")
        (change,) = mem.changes().changes
        assert change.actor == "token:billing-bot" and change.request_id
        answer = httpx.post(
            server.url + "/v1/batch",
            json={"ops": [{"op": "put", "ns": "billing:acme", "key": "seats", "value": "3"}]},
            headers={"authorization": f"Bearer {token}", "x-request-id": "req-42"},
        )
        assert answer.status_code == 200
        assert mem.changes(change.seq).changes[0].request_id == "req-42"
        with pytest.raises(Exception, match="may not"):
            Memory("billing:acme", server.url, token=other).changes()
        with pytest.raises(Exception, match="read the changes of"):
            Memory("support:x", server.url, token=other).backend.execute([Changes(None, 0)])


WRITER = """
import os
from botwire import Memory
url = os.environ["URLS"].split(",")[int(os.environ["WORKER"]) % len(os.environ["URLS"].split(","))]
mem = Memory(os.environ["NS"], url)
for n in range(int(os.environ["WRITES"])):
    mem.incr(f"counter-{n % 4}")
    mem.append("events", {"worker": int(os.environ["WORKER"]), "n": n})
print("done")
"""


def follow_while_writing(reader: Memory, urls: list[str], writes: int) -> list[Change]:
    """Eight writer processes; this process pages through the log as they write."""
    outputs: list[list[str]] = []
    env = {"URLS": ",".join(urls), "NS": reader.namespace, "WRITES": str(writes)}
    thread = threading.Thread(target=lambda: outputs.append(run_many(WRITER, 8, **env)))
    thread.start()
    seen: list[Change] = []
    cursor = 0
    while thread.is_alive() or len(seen) < 8 * writes * 2:
        page = reader.changes(cursor, limit=200)
        seen += page.changes
        cursor = page.cursor
        if not thread.is_alive() and not page.changes:
            break
    thread.join()
    assert outputs and len(outputs[0]) == 8
    return seen


def assert_exactly_once_in_commit_order(seen: list[Change], writes: int) -> None:
    seqs = [c.seq for c in seen]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) == 8 * writes * 2
    for key in (f"counter-{k}" for k in range(4)):  # each new number once, in order
        assert [c.value for c in seen if c.key == key] == list(range(1, 2 * writes + 1))
    versions = [c.version for c in seen if c.key == "events"]
    assert versions == sorted(versions)


def test_a_follower_sees_every_change_once_in_commit_order(tmp_path: Path, pg_url: str) -> None:
    for url in (f"sqlite:///{tmp_path / 'follow.db'}", pg_url):
        reader = Memory(f"follow-{uuid.uuid4().hex[:8]}", url)
        assert_exactly_once_in_commit_order(follow_while_writing(reader, [url], 60), 60)


def test_a_follower_through_two_servers_on_one_postgres(pg_url: str) -> None:
    with Server(pg_url) as one, Server(pg_url) as two:
        reader = Memory(f"follow-{uuid.uuid4().hex[:8]}", one.url)
        seen = follow_while_writing(reader, [one.url, two.url], 40)
        assert_exactly_once_in_commit_order(seen, 40)
        assert {c.actor for c in seen} == {"anonymous"}


def test_local_actor_names_user_host_and_process() -> None:
    from botwire.backends.changes import local_actor

    actor = local_actor()
    assert actor.startswith("local:") and actor.endswith(f"@{socket.gethostname()}:{os.getpid()}")
    assert json.dumps(actor)


# -- watch ---------------------------------------------------------------------------------------

WRITE_LATER = """
import os, time
from botwire import Memory
time.sleep(float(os.environ["DELAY"]))
mem = Memory(os.environ["NS"], os.environ["URL"])
for n in range(3):
    mem.set(f"k{n}", n)
"""


def write_later(url: str, ns: str, delay: float = 0.5) -> threading.Thread:
    """Another process writes k0, k1, k2 to ``ns`` after ``delay`` seconds."""
    env = {"URL": url, "NS": ns, "DELAY": str(delay)}
    thread = threading.Thread(target=run_python, args=(WRITE_LATER,), kwargs=env)
    thread.start()
    return thread


def test_watch_follows_another_process_from_now_on(url: str) -> None:
    ns = f"watch-{uuid.uuid4().hex[:8]}"
    mem = Memory(ns, url)
    mem.set("before", 0)  # before the watch: not shown
    changes = mem.watch()
    writer = write_later(url, ns)
    seen = [next(changes) for _ in range(3)]
    writer.join()
    changes.close()
    assert [(c.key, c.value, c.op) for c in seen] == [(f"k{n}", n, "set") for n in range(3)]
    late = datetime.now(timezone.utc) - seen[-1].at
    assert late.total_seconds() < 5
    again = mem.watch(since=seen[0].seq, prefix="k")
    assert [next(again).key for _ in range(2)] == ["k1", "k2"]
    again.close()
    with pytest.raises(InvalidRequest):
        next(mem.watch(since=-5))


async def test_async_watch(url: str) -> None:
    ns = f"awatch-{uuid.uuid4().hex[:8]}"
    amem = AsyncMemory(ns, url)
    await amem.set("first", 1)
    writer = write_later(url, ns, delay=0.2)
    seen = []
    async with contextlib.aclosing(amem.watch(since=0)) as changes:
        async for change in changes:
            seen.append(change.key)
            if len(seen) == 4:
                break
    writer.join()
    assert seen == ["first", "k0", "k1", "k2"]


async def test_followers_wake_once_for_many_writes_that_come_fast(tmp_path: Path) -> None:
    """Under a stream of writes a follower wakes about 20 times a second, each time for all that
    came (not once per write); a change that comes alone is passed on at once."""
    url = f"sqlite:///{tmp_path / 'burst.db'}"
    backend = SQLiteBackend(tmp_path / "burst.db")
    batches: list[list[int]] = []
    follower = backend.afollow_batches(Changes("burst", 0, None, values=True))

    def burst() -> None:
        mem = Memory("burst", url)
        for n in range(1000):
            mem.set("k", n)

    try:
        writer = threading.Thread(target=burst)
        writer.start()
        while sum(len(batch) for batch in batches) < 1000:
            batches.append([json.loads(change.value) for change in await anext(follower)])
        writer.join()
        assert [value for batch in batches for value in batch] == list(range(1000))
        assert len(batches) <= 30, [len(batch) for batch in batches]
        await asyncio.sleep(0.3)  # quiet: the next change alone
        started = time.monotonic()
        await asyncio.to_thread(Memory("burst", url).set, "k", "alone")
        assert [json.loads(c.value) for c in await anext(follower)] == ["alone"]
        assert time.monotonic() - started < 0.2
    finally:
        await follower.aclose()  # type: ignore[attr-defined]


async def test_an_idle_follower_hears_a_heartbeat(tmp_path: Path) -> None:
    """With ``idle``, a follower that nothing reached for that long gets an empty batch (a
    stream's heartbeat), and changes after it as before."""
    backend = SQLiteBackend(tmp_path / "idle.db")
    follower = backend.afollow_batches(Changes("idle", 0, None, values=True), idle=0.2)
    try:
        started = time.monotonic()
        assert await anext(follower) == []
        assert 0.15 < time.monotonic() - started < 1.0
        await asyncio.to_thread(Memory("idle", f"sqlite:///{tmp_path / 'idle.db'}").set, "k", 1)
        assert [(c.key, c.value) for c in await anext(follower)] == [("k", "1")]
    finally:
        await follower.aclose()  # type: ignore[attr-defined]


def test_botwire_watch_prints_json_lines(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    ns = "cli-watch"
    proc = subprocess.Popen(
        [sys.executable, "-m", "botwire.cli", "watch", ns, "--url", url, "--since", "0"],
        stdout=subprocess.PIPE, text=True, env=child_env(),
    )  # fmt: skip
    try:
        Memory(ns, url).set("greeting", {"text": "hi"})
        assert proc.stdout is not None
        line = json.loads(proc.stdout.readline())
        assert (line["op"], line["key"], line["value"], line["seq"]) == (
            "set", "greeting", {"text": "hi"}, 1
        )  # fmt: skip
    finally:
        proc.kill()
        proc.wait()


def test_the_stream_resumes_after_the_last_event_id(tmp_path: Path) -> None:
    db = tmp_path / "sse.db"
    backend = SQLiteBackend(db)
    token = create_token(backend, "a-bot", ["a:"])
    backend.close()
    with Server(f"sqlite:///{db}") as server:
        mem = Memory("a:1", server.url, token=token)
        for n in range(5):
            mem.set(f"k{n}", n)
        auth = {"authorization": f"Bearer {token}"}
        stream = {**auth, "accept": "text/event-stream"}
        resume = {**stream, "last-event-id": "3"}
        feed = server.url + "/v1/changes"
        with httpx.stream("GET", feed, params={"ns": "a:1"}, headers=resume, timeout=10) as answer:
            assert answer.headers["content-type"].startswith("text/event-stream")
            lines = answer.iter_lines()
            events = [next(lines) for _ in range(6)]
        assert events[0] == "id: 4" and events[1] == "event: change"
        assert json.loads(events[2].removeprefix("data: "))["key"] == "k3"
        assert events[4] == "id: 5"
        for bad in ("x", "-1", "99999999999999999999", b"\xb2"):  # b"\xb2" reads as "²"
            answer = httpx.get(server.url + "/v1/changes", params={"ns": "a:1"},
                               headers={**stream, "last-event-id": bad})  # fmt: skip
            assert answer.status_code == 400
        answer = httpx.get(server.url + "/v1/changes", params={"ns": "b:1"}, headers=stream)
        assert answer.status_code == 403
        answer = httpx.get(server.url + "/v1/changes", params={"ns_prefix": "a"}, headers=auth)
        assert answer.status_code == 403  # "a" would open "ab:..." too
        bare = {"ns": "a:1", "since": 4, "values": "false"}
        page = httpx.get(feed, params=bare, headers=auth)
        assert page.json() == {"changes": [page.json()["changes"][0]], "cursor": 5}
        assert page.json()["changes"][0]["value"] is None


# -- retention and size ----------------------------------------------------------------------------


def test_the_log_keeps_changes_for_its_retention_then_trims(tmp_path: Path, pg_url: str) -> None:
    for url in (f"sqlite:///{tmp_path / 'kept.db'}?history=60", f"{pg_url}&history=60"):
        clock = FakeClock()
        backend = create_backend(url)
        backend.clock = clock  # type: ignore[method-assign]
        mem = Memory(f"kept-{uuid.uuid4().hex[:8]}", backend=backend)
        mem.set("old", 1)
        clock.advance(120)
        mem.set("new", 2)  # a write purges and trims (in batches), at most once a second
        for _ in range(100):  # the shared test schema may hold a backlog of older changes
            clock.advance(2)
            mem.set("newer", 3)
            if mem.history("old") == []:
                break
        assert [c.key for c in mem.changes().changes][:2] == ["new", "newer"]
        assert mem.get("old") == 1  # the data stays; only its history went
        backend.close()


def test_a_trim_takes_a_prefix_of_the_log_and_the_heads_of_gone_keys_with_it(
    tmp_path: Path,
) -> None:
    """A change imported with its old time sits after newer ones: the trim must not take it
    out of the middle of its key's chain (SQLite, whose history follows the chain), and the
    heads kept for deleted keys go with their changes."""
    clock = FakeClock()
    backend = SQLiteBackend(tmp_path / "trim.db", history=60, clock=clock)
    mem = Memory("t", backend=backend)
    mem.set("k", 1)
    mem.set("k", 2)
    backend.execute([AddChange("t", "k", "import", 3, int((clock.now - 3600) * 1e6),
                               "local:old", None, "3")])  # fmt: skip
    for n in range(20):
        mem.set(f"gone-{n}", n)
        mem.delete(f"gone-{n}")
    clock.advance(30)
    mem.set("other", 1)  # a write trims: nothing is old enough but the import
    assert [c.op for c in mem.history("k")] == ["import", "set", "set"]
    clock.advance(120)
    for _ in range(3):
        clock.advance(2)
        mem.set("other", 2)  # now everything before "other" is old: trimmed
    conn = sqlite3.connect(tmp_path / "trim.db")
    assert conn.execute("SELECT count(*) FROM removed_heads").fetchone() == (0,)
    assert mem.history("k") == [] and mem.history("gone-3") == []
    backend.close()


def test_history_versions_keeps_each_keys_newest(tmp_path: Path, pg_url: str) -> None:
    for url in (
        f"sqlite:///{tmp_path / 'few.db'}?history_versions=3",
        f"{pg_url}&history_versions=3",
    ):
        mem = Memory(f"few-{uuid.uuid4().hex[:8]}", url)
        for n in range(6):
            mem.set("a", n)
            mem.append("b", n)
        mem.set("c", 0)
        assert [c.value for c in mem.history("a")] == [5, 4, 3]
        assert [c.value for c in mem.history("b")] == [[5], [4], [3]]
        assert [c.key for c in mem.changes().changes] == ["a", "b", "a", "b", "a", "b", "c"]
    for bad in ("0", "-2", "many"):
        with pytest.raises(InvalidRequest, match="history_versions"):
            Memory("x", f"sqlite:///{tmp_path / 'bad.db'}?history_versions={bad}").get("k")


def test_history_off_logs_nothing(tmp_path: Path, pg_url: str) -> None:
    for url in (f"sqlite:///{tmp_path / 'quiet.db'}?history=off", f"{pg_url}&history=off"):
        mem = Memory(f"quiet-{uuid.uuid4().hex[:8]}", url)
        mem.set("k", 1)
        mem.append("l", 1)
        assert mem.changes().changes == [] and mem.get("k") == 1
    for bad in ("-1", "soon", "0", "1e12"):
        with pytest.raises(InvalidRequest, match="history"):
            Memory("x", f"sqlite:///{tmp_path / 'bad.db'}?history={bad}").get("k")
    assert (
        Memory("x", f"sqlite:///{tmp_path / 'days.db'}?history=30d").backend.history == 30 * 86_400
    )  # type: ignore[attr-defined]


def test_botwire_stats_shows_the_log(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'stats.db'}"
    mem = Memory("s", url)
    mem.set("a", "x" * 100)
    mem.set("a", "y")
    shown = run_python(
        f"import sys; from botwire.cli import main; sys.exit(main(['stats', '--url', {url!r}]))"
    )
    assert "1 namespace, 1 key, 3 bytes of values" in shown
    assert "change log: 2 changes, 105 bytes of values, oldest 20" in shown
    assert "vectors: none" in shown


# -- reading and restoring what a key held ---------------------------------------------------


def tick(store: Store) -> None:
    """Let the store's time move on (a frozen test clock, or a real one)."""
    if store.clock is not None:
        store.clock.advance(0.001)
    else:
        time.sleep(0.002)


def test_every_version_reads_back_as_it_was(store: Store) -> None:
    mem = fresh(store)
    seen: list[tuple[str, int, Any]] = []

    def note(key: str) -> None:
        entry = mem.entry(key)
        assert entry is not None
        seen.append((key, entry.version, entry.value))

    for n in range(3):
        mem.set("profile", {"city": f"city {n}"})
        note("profile")
        tick(store)
    mem.incr("visits")
    note("visits")
    mem.incr("visits", 4)
    note("visits")
    system = {"role": "system", "content": "be brief"}
    mem.append("chat", system)
    note("chat")
    for n in range(6):
        mem.append("chat", {"role": "user", "n": n}, max_len=3, keep_first={"role": "system"})
        note("chat")
    mem.append("chat", "plain", max_len=2)
    note("chat")
    mem.set("chat", ["reset"])
    note("chat")
    mem.append("chat", "more")
    note("chat")
    mem.expire("chat", 3600)
    for key, version, value in seen:
        assert mem.get(key, version=version) == value, (key, version)
    assert mem.get("profile", version=1) is None  # a version it never had
    assert mem.get("profile", "gone", version=1) == "gone"
    tick(store)
    mem.delete("profile")
    profile = [c for c in mem.history("profile") if c.op == "set"]
    assert mem.get("profile", at=profile[0].at) == {"city": "city 2"}
    assert mem.get("profile", at=profile[0].at - timedelta(microseconds=1)) == {"city": "city 1"}
    assert mem.get("profile", at=profile[-1].at - timedelta(microseconds=1)) is None
    assert mem.get("profile", at=datetime.now(timezone.utc) + timedelta(hours=1)) is None


def test_restore_writes_an_old_value_as_a_new_version(store: Store) -> None:
    mem = fresh(store)
    first = mem.set("prefs", {"lang": "en"})
    mem.set("prefs", {"lang": "pt"}, ttl=3600)
    restored = mem.restore("prefs", version=first)
    entry = mem.entry("prefs")
    assert entry is not None and entry.value == {"lang": "en"} and entry.version == restored
    assert entry.expires_at is not None  # its expiry stays
    assert mem.history("prefs")[0].op == "set"
    mem.delete("prefs")
    assert mem.restore("prefs", version=first) > restored  # back from the dead
    with pytest.raises(InvalidRequest, match="no value"):
        mem.restore("never", at=datetime.now(timezone.utc))
    written = mem.changes().changes
    for bad in ({}, {"version": 1, "at": datetime.now(timezone.utc)}, {"version": 0},
                {"at": datetime(2026, 1, 1)}, {"at": "yesterday"}):  # fmt: skip
        with pytest.raises(InvalidRequest):
            mem.restore("prefs", **bad)  # type: ignore[arg-type]
    assert mem.changes().changes == written and "never" not in mem  # nothing was written
    with pytest.raises(InvalidRequest):
        mem.get("prefs", version="3")  # type: ignore[arg-type]


def test_a_clear_ends_every_keys_history(store: Store) -> None:
    mem = fresh(store)
    mem.set("a", 1)
    tick(store)
    mem.clear()
    tick(store)
    assert [c.op for c in mem.history("a")] == ["clear", "set"]
    assert mem.get("a", at=datetime.now(timezone.utc) + timedelta(hours=1)) is None
    with pytest.raises(InvalidRequest, match="no value"):
        mem.restore("a", at=datetime.now(timezone.utc) + timedelta(hours=1))


def test_restore_is_conditional_on_the_version_it_read(store: Store) -> None:
    mem = fresh(store)
    first = mem.set("k", 1)
    mem.set("k", 2)
    state, current = run_steps(mem._execute, mem._state_steps("k", first, None))
    mem.set("k", 3)  # another writer, between the read and the write
    with pytest.raises(VersionConflict):
        mem._run(mem._plan_restore("k", state, current))
    assert mem.get("k") == 3


async def test_async_point_in_time(store: Store) -> None:
    amem = store.amemory(f"log-{uuid.uuid4().hex[:8]}")
    first = await amem.set("k", "a")
    await amem.set("k", "b")
    assert await amem.get("k", version=first) == "a"
    await amem.restore("k", version=first)
    assert await amem.get("k") == "a"


def test_a_value_older_than_the_log_is_refused(tmp_path: Path) -> None:
    clock = FakeClock()
    backend = create_backend(f"sqlite:///{tmp_path / 'short.db'}?history=60")
    backend.clock = clock  # type: ignore[method-assign]
    mem = Memory("short", backend=backend)
    mem.append("chat", "one")
    clock.advance(120)
    second = mem.append("chat", "two") and mem.entry("chat")
    assert second is not None
    clock.advance(2)
    mem.set("other", 1)  # trims "one" away
    assert [c.value for c in mem.history("chat")] == [["two"]]
    with pytest.raises(InvalidRequest, match="no longer reaches back"):
        mem.get("chat", version=second.version)


# -- the audit -------------------------------------------------------------------------------------


def test_the_audit_is_for_admin_tokens(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    backend = SQLiteBackend(db)
    admin = create_token(backend, "ops", ["*"], admin=True)
    billing = create_token(backend, "billing-bot", ["billing:"])
    support = create_token(backend, "support-bot", ["*"])
    backend.close()
    with Server(f"sqlite:///{db}") as server:
        Memory("billing:acme", server.url, token=billing).set("plan", "pro")
        Memory("support:t1", server.url, token=support).append("thread", "hello")
        audit = server.url + "/v1/audit"

        def ask(token: str, **params: Any) -> httpx.Response:
            return httpx.get(audit, params=params, headers={"authorization": f"Bearer {token}"})

        everything = ask(admin).json()["changes"]
        assert [(c["actor"], c["op"], c["namespace"]) for c in everything] == [
            ("token:billing-bot", "set", "billing:acme"),
            ("token:support-bot", "append", "support:t1"),
        ]
        assert all(c["value"] is None and c["request_id"] for c in everything)
        (mine,) = ask(admin, actor="billing-bot", values="true").json()["changes"]
        assert mine["key"] == "plan" and mine["value"] == "pro"
        assert ask(admin, ns_prefix="support:", since="1h").json()["changes"][0]["key"] == "thread"
        assert ask(admin, until="2020-01-01T00:00:00Z").json()["changes"] == []
        for token in (billing, support):  # support sees every namespace, but is no admin
            refused = ask(token)
            assert refused.status_code == 403 and "admin" in refused.json()["detail"]
        refusals = [
            ({"actor": "nobody"}, "unknown actor"),
            ({"since": "yesterday"}, "since"),
            ({"since": "2999-01-01"}, "future"),
            ({"since": "2h", "until": "3h"}, "after since"),
            ({"since": "1" + "9" * 400 + "d"}, "since"),
            ({"since": "\u00b2h"}, "since"),
            ({"limit": 0}, ""),
        ]
        for bad, word in refusals:
            answer = ask(admin, **bad)
            assert 400 <= answer.status_code < 500 and word in answer.text, bad
        with pytest.raises(Exception, match="admin"):
            Memory("billing:acme", server.url, token=billing).backend.execute(
                [Changes("billing:acme", actor="token:billing-bot")]
            )


def test_botwire_audit_on_a_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli-audit.db'}"
    Memory("team:a", url).set("k", {"v": 1})
    Memory("other", url).set("k", 2)
    argv = ["audit", "--url", url, "--ns-prefix", "team:", "--values"]
    shown = run_python(f"import sys; from botwire.cli import main; sys.exit(main({argv!r}))")
    assert "set  team:a/k" in shown and '{"v":1}' in shown.replace(" ", "") and "other" not in shown


# -- export and import with history ----------------------------------------------------------------


def test_export_and_import_carry_history_when_asked(tmp_path: Path, pg_url: str) -> None:
    from botwire._transfer import export_lines, import_dump

    source = Memory("moved", f"sqlite:///{tmp_path / 'from.db'}")
    first = source.set("prefs", {"lang": "en"})
    source.set("prefs", {"lang": "pt"})
    source.append("chat", "hi", max_len=2)
    source.append("chat", "there", max_len=2)
    source.append("chat", "again", max_len=2)
    plain = list(export_lines(source.backend, ["moved"]))
    assert all('"history"' not in line for line in plain)
    lines = list(export_lines(source.backend, ["moved"], history=True))
    assert json.loads(lines[1])["history"][0]["op"] == "set"
    for url in (f"sqlite:///{tmp_path / 'to.db'}", pg_url):
        target = Memory("moved", url)
        target.clear()
        report = import_dump(target.backend, lambda: lines, history=True)
        assert report.written == 2
        history = target.history("prefs")
        assert [c.op for c in history] == ["import", "set", "set"]
        assert history[1].actor == source.history("prefs")[0].actor
        assert target.get("prefs", version=first) == {"lang": "en"}
        chat = target.history("chat")
        assert [c.value for c in chat[1:]] == [["again"], ["there"], ["hi"]]
        assert target.get("chat") == ["there", "again"]
    quiet = Memory("quiet", f"sqlite:///{tmp_path / 'quiet.db'}")
    import_dump(quiet.backend, lambda: [line.replace('"moved"', '"quiet"') for line in lines])
    assert [c.op for c in quiet.history("prefs")] == ["import"]  # history only when asked
    bad = lines[1].replace('"op":"set"', '"op":"rename"', 1)
    with pytest.raises(InvalidRequest, match="line 1 of the dump, change 1"):
        import_dump(quiet.backend, lambda: [bad], history=True)


def test_a_stream_ends_when_its_token_is_revoked(tmp_path: Path) -> None:
    from botwire.server.auth import revoke_token

    db = tmp_path / "revoke.db"
    backend = SQLiteBackend(db)
    reader = create_token(backend, "reader", ["r:"])
    writer = create_token(backend, "writer", ["r:"])
    with Server(f"sqlite:///{db}") as server:
        mem = Memory("r:1", server.url, token=writer)
        headers = {"authorization": f"Bearer {reader}", "accept": "text/event-stream"}
        feed = server.url + "/v1/changes"
        with httpx.stream("GET", feed, params={"ns": "r:1"}, headers=headers, timeout=20) as answer:
            lines = answer.iter_lines()
            assert next(lines).startswith("id: ") and next(lines) == ""  # where "now" is
            mem.set("before", 1)
            event = [next(lines) for _ in range(4)]  # id, event, data, the blank line
            assert event[1] == "event: change" and '"before"' in event[2]
            revoke_token(backend, "reader")
            time.sleep(2.5)  # the server's token cache
            mem.set("after", 2)
            rest = list(lines)  # the stream ends instead of sending "after"
        assert not any('"after"' in line for line in rest)
    backend.close()


def test_two_stores_streams_never_share_events_of_equal_positions() -> None:
    """Positions name changes within one store: two stores served by one process (two apps)
    each send their own change at position 5."""
    from botwire.backends.base import Change as LoggedChange
    from botwire.server.routes.changes import batch_writes

    def change(ns: str) -> LoggedChange:
        return LoggedChange(5, ns, "k", "set", 1, 1_700_000_000_000_000, "a", None, '"v"')

    first: dict[Any, list[bytes]] = {}
    second: dict[Any, list[bytes]] = {}
    assert b'"namespace":"one"' in b"".join(batch_writes([change("one")], first))
    assert b'"namespace":"two"' in b"".join(batch_writes([change("two")], second))


_REFERENCE = (
    "SELECT seq, ns, key, op, version, at, actor, request_id, value, detail FROM changes"
    " WHERE ns = ? AND (key = ? OR key IS NULL) ORDER BY seq DESC"
)
"""A key's history read by scanning the whole log: what the history must equal."""


def _history_pages(backend: SQLiteBackend, ns: str, key: str, size: int) -> list[Logged]:
    """A key's whole history, read ``size`` changes a page."""
    found: list[Logged] = []
    while True:
        before = found[-1].seq if found else None
        (page,) = backend.execute([History(ns, key, size, before)])
        found += page
        if len(page) < size:
            return found


@pytest.mark.parametrize(("versions", "unlogged"), [(None, False), (3, False), (None, True)])
def test_a_keys_history_is_every_change_of_it_through_deletes_clears_and_returns(
    tmp_path: Path, versions: int | None, unlogged: bool
) -> None:
    """A key's history follows its chain of changes on SQLite (see schema migrations 8 and
    11): it must hold exactly what a scan of the log finds, across deletes, clears, expiries,
    keys written again, lists and counters, read whole and page by page; and with another
    process's writes that are not logged (``?history=off``) in between."""
    rng = random.Random(8)
    path = tmp_path / "chain.db"
    backend = SQLiteBackend(path, history_versions=versions)
    quiet = SQLiteBackend(path, history=0)
    keys = [(ns, key) for ns in ("a", "b") for key in ("k0", "k1", "k2", "k3")]
    for step in range(400):
        ns, key = rng.choice(keys)
        mem = Memory(ns, backend=quiet if unlogged and rng.random() < 0.3 else backend)
        kind = rng.random()
        if kind < 0.35:
            mem.set(key, step)
        elif kind < 0.5:
            with contextlib.suppress(WrongType):  # a value, not a list
                mem.append(key, step, max_len=rng.choice([None, 3]))
        elif kind < 0.6:
            mem.delete(key)
        elif kind < 0.7:
            with contextlib.suppress(WrongType):  # a list, or a value that is no number
                mem.incr(key)
        elif kind < 0.8:
            mem.expire(key, rng.choice([60, None]))
        elif kind < 0.85:
            mem.set_many({k: step for n, k in keys if n == ns})
        elif kind < 0.88:
            mem.clear()
        elif kind < 0.95:
            history = mem.history(key, limit=2)
            if history and history[-1].op == "set":
                with contextlib.suppress(VersionConflict, InvalidRequest):
                    mem.restore(key, version=history[-1].version)
        else:
            mem.set(key, step, ttl=60)
    scan = sqlite3.connect(path)
    for ns, key in keys:
        expected = [Logged(*row) for row in scan.execute(_REFERENCE, (ns, key))]
        assert expected, "every key was written"
        assert _history_pages(backend, ns, key, 1000) == expected
        assert _history_pages(backend, ns, key, 3) == expected
        if versions is not None:
            assert len([c for c in expected if c.key is not None]) <= versions
    backend.close()
    quiet.close()


def test_a_writer_of_the_previous_release_is_refused_after_the_upgrade(tmp_path: Path) -> None:
    """A process of the release before migration 11, still running when another upgrades the
    file, would log its writes without pointing the key at them (a trigger did that for it):
    its write is refused with a clear error and nothing of it is written, so no change goes
    missing from a history; it reads the log as before."""
    path = tmp_path / "mixed.db"
    backend = SQLiteBackend(path)
    mem = Memory("m", backend=backend)
    mem.set("k", 1)
    mem.set("k", 2)
    old = sqlite3.connect(path, isolation_level=None)
    old.execute("BEGIN IMMEDIATE")
    old.execute(
        "UPDATE entries SET value = '3', version = version + 1 WHERE ns = 'm' AND key = 'k'"
    )
    with pytest.raises(sqlite3.IntegrityError, match="upgraded by a newer botwire"):
        old.execute(_OLD_ADD, ("m", "k", "set", time.time_ns() // 1000, "local:old", None, "3",
                               None, None))  # fmt: skip
    old.execute("ROLLBACK")
    for statement in ("DELETE FROM changes", "UPDATE changes SET value = '0'"):
        with pytest.raises(sqlite3.IntegrityError, match="upgrade botwire"):
            old.execute(statement)
    assert [r[0] for r in old.execute("SELECT value FROM changes ORDER BY seq")] == ["1", "2"]
    mem.set("k", 4)
    assert mem.get("k") == 4
    assert [c.value for c in mem.history("k")] == [4, 2, 1]
    backend.close()


_OLD_ADD = (
    "INSERT INTO changes (ns, key, op, version, at, actor, request_id, value, detail, prev)"
    " VALUES (?1, ?2, ?3, coalesce(?9, (SELECT version FROM entries WHERE ns = ?1 AND key = ?2)),"
    " ?4, ?5, ?6, ?7, ?8, coalesce((SELECT last_change FROM entries WHERE ns = ?1 AND key = ?2),"
    " (SELECT seq FROM removed_heads WHERE ns = ?1 AND key = ?2)))"
)
"""How the release before migration 11 added a change."""


def test_a_log_of_the_previous_release_reads_as_before_and_goes_on(tmp_path: Path) -> None:
    """A store whose log was kept by key (schema 7) upgrades: every key's history is what the
    scan finds, deleted keys included, and new changes continue each one."""
    path = tmp_path / "v7.db"
    with sqlite_store_at(path, 7) as conn:
        log = [  # (ns, key, op, version): doc set twice, gone deleted, a clear of "other"
            ("old", "doc", "set", 1), ("old", "gone", "set", 1), ("other", "x", "set", 1),
            ("old", "doc", "set", 2), ("old", "gone", "delete", None), ("other", None, "clear",
            None),
        ]  # fmt: skip
        conn.executemany(
            "INSERT INTO changes (ns, key, op, version, at, actor, value) VALUES"
            " (?, ?, ?, ?, ?, 'local:test', '1')",
            [(*change, time.time_ns() // 1000) for change in log],
        )
        before = {k: list(conn.execute(_REFERENCE, k)) for k in [("old", "doc"), ("old", "gone"),
                  ("other", "x")]}  # fmt: skip
    backend = SQLiteBackend(path)
    for (ns, key), rows in before.items():
        assert _history_pages(backend, ns, key, 2) == [Logged(*row) for row in rows]
    Memory("old", backend=backend).set("gone", "back")
    Memory("other", backend=backend).set("x", "again")
    assert [c.op for c in Memory("old", backend=backend).history("gone")] == [
        "set",
        "delete",
        "set",
    ]
    assert [c.op for c in Memory("other", backend=backend).history("x")] == ["set", "clear", "set"]
    scan = sqlite3.connect(path)
    indexes = [row[1] for row in scan.execute("PRAGMA index_list(change_log)")]
    assert indexes == ["changes_clears"]  # a change is added to the log's end, nothing else
    backend.close()
