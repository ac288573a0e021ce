"""``botwire serve``: the compatible routes, bad input, auth, quotas, restarts, metrics.

Every test talks to a real server subprocess over loopback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from schemathesis import Case

from botwire import (
    BackendUnavailable,
    Forbidden,
    Memory,
    QuotaExceeded,
    Unauthorized,
    VersionConflict,
    list_namespaces,
)
from botwire.backends.http import HTTPBackend
from botwire.server.settings import Settings

from .conftest import empty_postgres
from .helpers import Server, child_env, free_port, start_python


@pytest.fixture
def client(http_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=http_server.url, timeout=10) as c:
        yield c


def path(ns: str, key: str | None = None) -> str:
    """A compatible route, every reserved character of the key percent-encoded.

    Dots are encoded too: an HTTP client treats a bare ``.`` or ``..`` segment as a directory.
    """
    url = "/memory/" + quote(ns, safe="")
    return url if key is None else url + "/" + quote(key, safe="").replace(".", "%2E")


# -- the compatible API ---------------------------------------------------------------------


def test_put_get_delete(client: httpx.Client) -> None:
    put = client.put(path("compat", "greeting"), json={"value": "hello", "ttl": 60})
    assert put.status_code == 200
    written = put.json()
    assert written["namespace"] == "compat" and written["key"] == "greeting"
    assert put.headers["etag"] == f'"{written["version"]}"'
    got = client.get(path("compat", "greeting"))
    assert got.status_code == 200
    body = got.json()
    assert set(body) >= {"namespace", "key", "value", "created_at", "updated_at", "expires_at"}
    assert body["value"] == "hello" and body["expires_at"] is not None
    assert body["created_at"].endswith("Z")
    deleted = client.delete(path("compat", "greeting"))
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    assert client.delete(path("compat", "greeting")).json()["deleted"] is False
    missing = client.get(path("compat", "greeting"))
    assert missing.status_code == 404 and "not found" in missing.json()["detail"]


@pytest.mark.parametrize(
    "value", [5, "5", "[1,2]", [1, 2], {"a": {"b": None}}, None, True, 2**80, "héllo 🧠", 1.5]
)
def test_values_keep_their_types(client: httpx.Client, value: object) -> None:
    assert client.put(path("types", "k"), json={"value": value}).status_code == 200
    got = client.get(path("types", "k")).json()["value"]
    assert got == value and type(got) is type(value)
    assert Memory("types", str(client.base_url)).get("k") == value


def test_a_client_that_sends_every_value_as_a_string(client: httpx.Client) -> None:
    """Hosted-BotWire SDKs json.dumps values themselves: they get back the very same string."""
    for value in [{"lang": "en"}, [1, 2], 5, "plain"]:
        text = json.dumps(value)
        client.put(path("strings", "k"), json={"value": text})
        back = client.get(path("strings", "k")).json()["value"]
        assert back == text
        assert json.loads(back) == value


def test_a_tiny_ttl_is_accepted_and_expires(client: httpx.Client) -> None:
    response = client.put(path("tiny", "k"), json={"value": 1, "ttl": 1e-300})
    assert response.status_code == 200 and response.json()["expires_at"] is not None
    time.sleep(0.01)
    assert client.get(path("tiny", "k")).status_code == 404


def test_odd_keys_are_encoded_and_never_alias(client: httpx.Client, http_server: Server) -> None:
    keys = ["a?x=1", "a", "#frag", "a/b", "with space", "%2F", "a%2Fb", "emoji 🧠", "+1", "..", "."]
    for n, key in enumerate(keys):
        assert client.put(path("odd", key), json={"value": n}).status_code == 200
    for n, key in enumerate(keys):
        assert client.get(path("odd", key)).json()["value"] == n
    assert Memory("odd", http_server.url).keys() == sorted(keys)


def test_listing_pages_with_a_cursor(client: httpx.Client) -> None:
    Memory("listing", str(client.base_url)).set_many({f"k{n:03}": "x" * n for n in range(25)})
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 10}
        if cursor:
            params["cursor"] = cursor
        page = client.get(path("listing"), params=params).json()
        assert page["namespace"] == "listing" and page["count"] == len(page["keys"]) <= 10
        seen += [item["key"] for item in page["keys"]]
        assert all(set(item) == {"key", "bytes", "updated_at"} for item in page["keys"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"k{n:03}" for n in range(25)]
    first = client.get(path("listing"), params={"prefix": "k00"}).json()["keys"]
    assert [(i["key"], i["bytes"]) for i in first] == [(f"k00{n}", n + 2) for n in range(10)]


def test_etag_and_conditional_writes(client: httpx.Client) -> None:
    first = client.put(path("cond", "doc"), json={"value": 1}, headers={"if-none-match": "*"})
    assert first.status_code == 200
    again = client.put(path("cond", "doc"), json={"value": 2}, headers={"if-none-match": "*"})
    assert again.status_code == 412 and "absent" in again.json()["detail"]
    etag = first.headers["etag"]
    second = client.put(path("cond", "doc"), json={"value": 3}, headers={"if-match": etag})
    assert second.status_code == 200
    stale = client.put(path("cond", "doc"), json={"value": 4}, headers={"if-match": etag})
    assert stale.status_code == 412
    assert client.get(path("cond", "doc")).json()["value"] == 3
    assert client.get(path("cond", "doc")).headers["etag"] == second.headers["etag"]
    bad = client.put(path("cond", "doc"), json={"value": 5}, headers={"if-match": "nope"})
    assert bad.status_code == 400


def test_http_client_raises_version_conflict(http_server: Server) -> None:
    mem = Memory("cond2", http_server.url)
    version = mem.set("k", 1)
    mem.set("k", 2)
    with pytest.raises(VersionConflict) as info:
        mem.set("k", 3, if_version=version)
    assert info.value.expected == version and info.value.actual > version


# -- bad input: a clear 4xx with a JSON detail, never a 5xx, nothing written ----------------


def _nothing_in(server: Server, ns: str) -> bool:
    return Memory(ns, server.url).keys() == []


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 422),
        (b"[]", 422),
        (b'{"ttl": 5}', 422),
        (b'{"value": 1, "ttl": -1}', 422),
        (b'{"value": 1, "ttl": "soon"}', 422),
        (b'{"value": NaN}', 400),
        (b'{"value": {"a": Infinity}}', 400),
        (b"", 422),
    ],
)
def test_malformed_bodies(
    client: httpx.Client, http_server: Server, body: bytes, status: int
) -> None:
    response = client.put(
        path("bad", "k"), content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == status
    assert "detail" in response.json()
    assert _nothing_in(http_server, "bad")


def test_oversized_bodies_are_refused_before_they_are_read(http_server: Server) -> None:
    limit = Settings().max_body_bytes
    with httpx.Client(base_url=http_server.url) as client:
        declared = client.put(
            path("big", "k"),
            content=b"x" * (limit + 1),
            headers={"content-type": "application/json"},
        )
        assert declared.status_code == 413 and "larger than" in declared.json()["detail"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: caught while streaming
            yield b'{"value": "'
            for _ in range(limit // 65536 + 2):
                yield b"y" * 65536
            yield b'"}'

        streamed = client.put(path("big", "k"), content=chunks())
        assert streamed.status_code == 413
        huge_value = client.put(path("big", "k"), json={"value": "z" * (1024 * 1024)})
        assert huge_value.status_code == 413 and huge_value.json()["error"] == "ValueTooLarge"
    assert _nothing_in(http_server, "big")


@pytest.mark.parametrize("key", ["k%0A", "%00", "a%09b", "%7F"])
def test_keys_with_control_characters(client: httpx.Client, http_server: Server, key: str) -> None:
    response = client.put(f"/memory/ctl/{key}", json={"value": 1})
    assert response.status_code == 400
    assert "control character" in response.json()["detail"]
    assert client.get(f"/memory/ctl/{key}").status_code == 400
    assert _nothing_in(http_server, "ctl")


def test_unknown_routes_and_methods(client: httpx.Client) -> None:
    assert client.get("/nope").status_code == 404
    assert client.post(path("ns", "k"), json={"value": 1}).status_code == 405
    assert client.patch(path("ns")).status_code == 405
    assert "detail" in client.get("/nope").json()


def test_a_batch_with_one_bad_op_is_rejected_whole(
    client: httpx.Client, http_server: Server
) -> None:
    ops = [
        {"op": "put", "ns": "batch", "key": "good", "value": "1"},
        {"op": "put", "ns": "batch", "key": "bad\n", "value": "2"},
    ]
    response = client.post("/v1/batch", json={"ops": ops})
    assert response.status_code == 400
    assert response.json()["detail"].startswith("operation 1:")
    for bad in [
        {"op": "explode", "ns": "batch"},
        {"op": "put", "ns": "batch", "key": "k", "value": "{bad json"},
        {"op": "put", "ns": "batch", "key": "k", "value": 5},
        {"op": "incr", "ns": "batch", "key": "k", "by": "1"},
        {"op": "list_keys", "ns": "batch", "limit": 0},
        "not an object",
    ]:
        response = client.post("/v1/batch", json={"ops": [ops[0], bad]})
        assert 400 <= response.status_code < 500, bad
    assert client.post("/v1/batch", content=b"{oops").status_code == 400
    assert client.post("/v1/batch", json={"nothing": 1}).status_code == 400
    # a batch that fails while running rolls back too
    Memory("batch2", http_server.url).set("text", "abc")
    running = client.post(
        "/v1/batch",
        json={"ops": [{"op": "put", "ns": "batch2", "key": "new", "value": "1"},
                      {"op": "incr", "ns": "batch2", "key": "text", "by": 1}]},
    )  # fmt: skip
    assert running.status_code == 409 and running.json()["error"] == "WrongType"
    assert _nothing_in(http_server, "batch")
    assert Memory("batch2", http_server.url).keys() == ["text"]


# -- health, metrics, docs ------------------------------------------------------------------


def test_health_metrics_and_docs(client: httpx.Client) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    client.get(path("metrics", "missing"))
    text = client.get("/metrics").text
    assert (
        'botwire_requests_total{method="GET",route="/memory/{namespace}/{key:path}",status="404"}'
        in text
    )
    assert "botwire_request_duration_seconds_bucket" in text
    schema = client.get("/openapi.json").json()
    assert {"/memory/{namespace}/{key}", "/memory/{namespace}", "/v1/batch"} <= set(schema["paths"])
    assert client.get("/docs").status_code == 200


# -- restarts -------------------------------------------------------------------------------


@pytest.mark.slow
def test_every_acknowledged_write_survives_a_server_crash(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'restart.db'}"
    server = Server(db).start()
    writer = start_python(
        f"""
        from botwire import Memory
        mem = Memory("durable", {server.url!r})
        for i in range(100000):
            mem.set(f"k{{i}}", i)
            print(i, flush=True)
        """
    )
    assert writer.stdout is not None
    acknowledged = []
    for line in writer.stdout:
        acknowledged.append(int(line))
        if len(acknowledged) >= 200:
            break
    assert server.proc is not None
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    acknowledged += [int(line) for line in writer.stdout if line.strip().isdigit()]
    writer.wait(30)
    with Server(db) as again:
        values = Memory("durable", again.url).get_many(f"k{i}" for i in acknowledged)
    assert values == {f"k{i}": i for i in acknowledged}


def test_only_batches_whose_answer_cannot_change_are_resendable() -> None:
    from botwire.backends.base import (
        Append,
        Clear,
        Delete,
        Expire,
        Get,
        Incr,
        ListKeys,
        ListNamespaces,
        Put,
        Restore,
        resendable,
    )  # fmt: skip

    assert resendable([Get("n", "k"), Put("n", "k", "1"), ListKeys("n"), ListNamespaces()])
    assert resendable([Restore("n", "k", "1", 1, 1)])
    assert not resendable([Get("n", "k"), Delete("n", "k")])
    assert not resendable([Clear("n")])
    assert not resendable([Get("n", "k"), Append("n", "k", ("1",))])
    assert not resendable([Incr("n", "k", 1)])
    assert not resendable([Expire("n", "k", 5)])
    assert not resendable([Put("n", "k", "1", if_version=3)])
    assert not resendable([Put("n", "k", "1", if_version=0)])


def test_client_says_when_no_server_answers() -> None:
    mem = Memory("ns", f"http://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(BackendUnavailable, match="is `botwire serve` running"):
        mem.get("k")


# -- auth -----------------------------------------------------------------------------------


def botwire_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "botwire.cli", *args],
        capture_output=True, text=True, env=child_env(), timeout=60,
    )  # fmt: skip


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    db = f"sqlite:///{tmp_path_factory.mktemp('auth') / 'auth.db'}"
    tokens = {}
    for name, args in {
        "bots": ["--prefix", "bot:"],
        "reader": ["--prefix", "bot:", "--read-only"],
        "admin": ["--prefix", ""],
    }.items():
        created = botwire_cli("token", "create", name, *args, "--db", db)
        assert created.returncode == 0, created.stderr
        tokens[name] = created.stdout.strip()
    with Server(db, BOTWIRE_TOKEN_CACHE_SECONDS="0") as server:
        yield server, tokens


def test_tokens_are_shown_once_and_stored_hashed(
    secured: tuple[Server, dict[str, str]],
) -> None:
    server, tokens = secured
    listed = botwire_cli("token", "list", "--db", server.db).stdout
    assert "bots" in listed and "reader" in listed and "read,write" in listed
    assert all(token not in listed for token in tokens.values())
    raw = Path(server.db.removeprefix("sqlite:///")).read_bytes()
    assert all(token.encode() not in raw for token in tokens.values())


def test_requests_need_a_token_in_scope(secured: tuple[Server, dict[str, str]]) -> None:
    server, tokens = secured
    with pytest.raises(Unauthorized, match="missing bearer token"):
        Memory("bot:1", server.url).get("k")
    with pytest.raises(Unauthorized, match="unknown"):
        Memory("bot:1", server.url, token="bw_wrong").get("k")
    bots = Memory("bot:1", server.url, token=tokens["bots"])
    bots.set("k", "v")
    assert bots.get("k") == "v"
    with pytest.raises(Forbidden, match="may not use namespace"):
        Memory("other", server.url, token=tokens["bots"]).set("k", 1)
    reader = Memory("bot:1", server.url, token=tokens["reader"])
    assert reader.get("k") == "v"
    with pytest.raises(Forbidden, match="read-only"):
        reader.set("k", "changed")
    with pytest.raises(Forbidden):
        reader.get("k", refresh_ttl=True)
    Memory("zzz", server.url, token=tokens["admin"]).set("k", 1)
    response = httpx.get(server.url + "/memory/bot:1/k", headers={"authorization": "Basic x"})
    assert response.status_code == 401 and "Bearer" in response.json()["detail"]
    assert httpx.get(server.url + "/healthz").status_code == 200


def test_token_from_the_environment_and_scoped_listing(
    secured: tuple[Server, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, tokens = secured
    Memory("bot:2", server.url, token=tokens["admin"]).set("k", 1)
    Memory("private", server.url, token=tokens["admin"]).set("k", 1)
    monkeypatch.setenv("BOTWIRE_TOKEN", tokens["bots"])
    backend = HTTPBackend(server.url, token=os.environ["BOTWIRE_TOKEN"])
    assert Memory("bot:2", backend=backend).get("k") == 1
    names = list_namespaces(url=server.url)
    assert "private" not in names and "bot:2" in names


def test_revoked_and_expired_tokens_are_refused(secured: tuple[Server, dict[str, str]]) -> None:
    server, _ = secured
    token = botwire_cli("token", "create", "temp", "--prefix", "", "--db", server.db).stdout.strip()
    short = botwire_cli(
        "token", "create", "short", "--prefix", "", "--ttl", "1", "--db", server.db
    ).stdout.strip()
    Memory("t", server.url, token=token).set("k", 1)
    Memory("t", server.url, token=short).set("k", 2)
    assert botwire_cli("token", "revoke", "temp", "--db", server.db).returncode == 0
    with pytest.raises(Unauthorized):
        Memory("t", server.url, token=token).get("k")
    time.sleep(1.2)
    with pytest.raises(Unauthorized, match="expired"):
        Memory("t", server.url, token=short).get("k")
    with pytest.raises(Unauthorized):
        Memory("t", server.url, token=token).set("k", "revoked write")
    with pytest.raises(Unauthorized):
        Memory("t", server.url, token=short).set("k", "expired write")
    assert Memory("t", server.url, token=secured[1]["admin"]).get("k") == 2  # nothing written


def test_no_tokens_beyond_loopback_refuses_to_start(tmp_path: Path) -> None:
    result = botwire_cli(
        "serve", "--db", f"sqlite:///{tmp_path / 'x.db'}", "--host", "0.0.0.0", "--port", "1"
    )
    assert result.returncode == 1 and "--allow-anonymous" in result.stderr


async def test_anonymous_requests_only_where_allowed(tmp_path: Path) -> None:
    from botwire.backends.sqlite import SQLiteBackend
    from botwire.server import create_app

    backend = SQLiteBackend(tmp_path / "anon.db")

    async def get(settings: Settings) -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(settings, backend=backend))
        async with httpx.AsyncClient(transport=transport, base_url="http://botwire") as client:
            return await client.get("/memory/ns/k")

    refused = await get(Settings(host="0.0.0.0"))
    assert refused.status_code == 401 and "needs tokens" in refused.json()["detail"]
    assert (await get(Settings(host="0.0.0.0", allow_anonymous=True))).status_code == 404
    assert (await get(Settings(host="127.0.0.1"))).status_code == 404
    assert Settings(host="127.0.0.1").loopback and Settings(host="::1").loopback
    assert not Settings(host="0.0.0.0").loopback


# -- quotas ---------------------------------------------------------------------------------


def test_writes_per_day_quota(tmp_path: Path) -> None:
    with Server(f"sqlite:///{tmp_path / 'q.db'}", "--quota-writes-per-day", "5") as server:
        mem = Memory("quota", server.url)
        mem.set_many({f"k{i}": i for i in range(4)})
        mem.set("k4", 4)
        with pytest.raises(QuotaExceeded) as info:
            mem.set("k5", 5)
        assert info.value.retry_after is not None and 0 < info.value.retry_after <= 86400
        response = httpx.put(server.url + "/memory/quota/k6", json={"value": 6})
        assert response.status_code == 429 and int(response.headers["retry-after"]) > 0
        assert mem.keys() == [f"k{i}" for i in range(5)]
        assert mem.get("k4") == 4  # reads are not writes
        Memory("other", server.url).set("k", 1)  # each namespace has its own quota
        metrics = httpx.get(server.url + "/metrics").text
        assert 'botwire_quota_rejections_total{quota="writes_per_day"} 2.0' in metrics


@pytest.mark.slow
def test_workers_share_the_store_and_its_quota(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'workers.db'}"
    with Server(db, "--workers", "2", "--quota-writes-per-day", "30") as server:
        admitted = refused = 0
        for i in range(40):  # fresh connections, spread over both worker processes
            with httpx.Client(base_url=server.url) as client:
                status = client.put(path("w", f"k{i}"), json={"value": i}).status_code
            admitted += status == 200
            refused += status == 429
        assert (admitted, refused) == (30, 10)
        assert len(Memory("w", server.url).keys()) == 30
        scrapes = set()
        for _ in range(6):  # fresh connections again: each scrape may reach either worker
            with httpx.Client(base_url=server.url) as client:
                text = client.get("/metrics").text
            scrapes.add(_sample(text, 'botwire_quota_rejections_total{quota="writes_per_day"}'))
            assert _sample(text, 'botwire_requests_total{method="PUT"', 'status="200"}') == 30
        assert scrapes == {10.0}  # every worker reports the whole server's numbers


def _sample(text: str, *parts: str) -> float:
    """The sum of the samples of the lines that hold every one of ``parts``."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if not line.startswith("#") and all(part in line for part in parts)
    )


def test_bytes_quota(tmp_path: Path) -> None:
    with Server(f"sqlite:///{tmp_path / 'b.db'}", "--quota-bytes", "100") as server:
        mem = Memory("bytes", server.url)
        mem.set("a", "x" * 60)
        with pytest.raises(QuotaExceeded) as info:
            mem.set("b", "y" * 60)
        assert info.value.quota == "bytes" and info.value.retry_after is None
        response = httpx.put(server.url + "/memory/bytes/c", json={"value": "z" * 60})
        assert response.status_code == 413
        assert mem.keys() == ["a"]
        mem.set("a", "x" * 90)  # replacing a value counts its new size only
        mem.delete("a")
        mem.set("b", "y" * 60)
        assert mem.keys() == ["b"]


# -- fuzzing from the OpenAPI schema --------------------------------------------------------


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_schema_fuzz_finds_no_server_error(
    tmp_path: Path, engine: str, request: pytest.FixtureRequest
) -> None:
    """Schemathesis drives every route with input generated from the OpenAPI schema, on a
    SQLite and on a PostgreSQL store."""
    from schemathesis import openapi

    from botwire.backends.base import Backend
    from botwire.backends.postgres import PostgresBackend
    from botwire.backends.sqlite import SQLiteBackend
    from botwire.server import create_app

    backend: Backend
    if engine == "postgres":
        pg_url = request.getfixturevalue("pg_url")
        empty_postgres(pg_url)
        backend = PostgresBackend(pg_url)
    else:
        backend = SQLiteBackend(tmp_path / "fuzz.db")
    app = create_app(Settings(), backend=backend)
    schema = openapi.from_asgi("/openapi.json", app)
    server_errors: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 7
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def drive(case: Case) -> None:
            response = case.call()
            if response.status_code >= 500:
                server_errors.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code}"
                )

        drive()
    assert server_errors == []
