"""Nothing a client sends can crash, starve or cross tenants of `botwire serve`.

Every case runs against a live server on SQLite and one on PostgreSQL: its status, its JSON
``detail``, and that nothing was written.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from botwire import Memory
from botwire.backends.base import Backend, Get
from botwire.backends.sqlite import SQLiteBackend
from botwire.server.auth import prefix_allows
from botwire.server.settings import Settings

from .conftest import store_url
from .helpers import Server, child_env, free_port

MiB = 1024 * 1024


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A server of this module's own, on SQLite or on a PostgreSQL schema of its own."""
    for db in store_url(request.param, tmp_path_factory.mktemp("hard"), request):
        with Server(db) as server:
            yield server


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new, empty store for one test, on SQLite or PostgreSQL."""
    yield from store_url(request.param, tmp_path, request)


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


@pytest.fixture
def ns(server: Server) -> str:
    """A namespace of the test's own, empty."""
    return f"t{uuid.uuid4().hex[:10]}"


def refused(response: httpx.Response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    detail = json.dumps(response.json()["detail"])
    for word in words:
        assert word in detail, detail


def empty(server: Server, ns: str) -> bool:
    return Memory(ns, server.url).keys() == []


def batch(client: httpx.Client, *ops: dict[str, Any]) -> httpx.Response:
    return client.post("/v1/batch", json={"ops": list(ops)})


RESTORE = {"op": "restore", "key": "k", "value": "1", "created_at": 1, "updated_at": 1}


def raw_batch(client: httpx.Client, text: str) -> httpx.Response:
    return client.post("/v1/batch", content=text, headers={"content-type": "application/json"})


# -- never a 5xx for what a client sends ------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "word"),
    [
        (b'{"value": 1, "ttl": NaN}', 422, "ttl"),
        (b'{"value": 1, "ttl": Infinity}', 422, "ttl"),
        (b'{"value": 1, "ttl": 1e400}', 422, "ttl"),
        (b'{"value": 1, "ttl": 100000000000000000000000000000}', 422, "ttl"),
        (b'{"value": 1, "ttl": "5"}', 422, "ttl"),
        (b'{"value": 1, "ttl": true}', 422, "ttl"),
        (b'{"value": 1, "ttl": 0}', 422, "ttl"),
        (b'{"value": NaN}', 400, "JSON"),
        (b'{"value": {"a": -Infinity}}', 400, "JSON"),
        (b'{"value": 1e400}', 400, "JSON"),
        (b'{"value": [-1e999]}', 400, "JSON"),
        (b'{"value": "\\ud800"}', 422, "JSON"),
        (b'{"value": ' + b"9" * 5000 + b"}", 422, "JSON"),
    ],
)
def test_odd_numbers_and_text_in_a_put(
    client: httpx.Client, server: Server, ns: str, body: bytes, status: int, word: str
) -> None:
    response = client.put(
        f"/memory/{ns}/k", content=body, headers={"content-type": "application/json"}
    )
    refused(response, status, word)
    assert empty(server, ns)
    assert client.get("/healthz").status_code == 200  # the same connection goes on


@pytest.mark.parametrize(
    ("op", "word"),
    [
        ({"op": "put", "key": "k", "value": "1", "ttl": math.nan}, "ttl"),
        ({"op": "put", "key": "k", "value": "1", "ttl": math.inf}, "ttl"),
        ({"op": "put", "key": "k", "value": "1", "if_version": 2**64}, "if_version"),
        ({"op": "put", "key": "k", "value": "1", "if_version": -1}, "if_version"),
        ({"op": "put", "key": "k", "value": "1e400"}, "JSON"),
        ({"op": "put", "key": "k", "value": "-1e999"}, "JSON"),
        ({"op": "put", "key": "k", "value": "9" * 5000}, "JSON"),
        ({"op": "append", "key": "k", "values": ["1"], "max_len": 2**64}, "max_len"),
        ({"op": "append", "key": "k", "values": ["1"], "ttl": -5}, "ttl"),
        ({"op": "incr", "key": "k", "by": 2**64}, "by"),
        ({"op": "incr", "key": "k", "by": math.nan}, "by"),
        ({"op": "expire", "key": "k", "ttl": math.nan}, "ttl"),
        ({"op": "list_keys", "limit": 2**70}, "limit"),
        ({"op": "list_keys", "prefix": "a\x00"}, "control character"),
        ({"op": "list_keys", "after": "\x00"}, "control character"),
        (RESTORE | {"created_at": 10**20}, "created_at"),
        (RESTORE | {"updated_at": -1}, "updated_at"),
        (RESTORE | {"expires_at": 2**63}, "expires_at"),
        (RESTORE | {"created_at": 253_402_300_800_000_000}, "created_at"),  # the year 10000
        ({"op": "put", "key": "k", "value": "1", "searchable": "no"}, "searchable"),
        ({"op": "put", "key": "k", "value": "1", "searchable": None}, "searchable"),
        ({"op": "append", "key": "k", "values": ["1"], "searchable": 0}, "searchable"),
    ],
)  # fmt: skip
def test_odd_numbers_in_a_batch(
    client: httpx.Client, server: Server, ns: str, op: dict[str, Any], word: str
) -> None:
    text = json.dumps(
        {"ops": [{"op": "put", "ns": ns, "key": "first", "value": "1"}, {**op, "ns": ns}]}
    )
    refused(raw_batch(client, text), 400, "operation", word)
    assert empty(server, ns)
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    "text",
    [
        '{"ops": [{"op": "put", "ns": "NS", "key": "\\ud800", "value": "1"}]}',
        '{"ops": [{"op": "put", "ns": "NS", "key": "k", "value": "\\"\\udfff\\""}]}',
        '{"ops": [{"op": "list_keys", "ns": "NS", "prefix": "\\udc80"}]}',
        '{"ops": [{"op": "get", "ns": "NS", "key": "k"}], "extra": NaN',
    ],
)
def test_lone_surrogates_and_broken_json_in_a_batch(
    client: httpx.Client, server: Server, ns: str, text: str
) -> None:
    response = raw_batch(client, text.replace("NS", ns))
    assert response.status_code == 400 and response.json()["detail"]
    assert empty(server, ns)


@pytest.mark.parametrize(
    "url",
    [
        "/memory/NS/%FF",
        "/memory/NS/a%FEb",
        "/memory/%C3/k",
        "/memory/NS/%ED%A0%80",
        "/memory/NS/k?x=%FF",
        "/memory/NS/k?cursor=%ED%B2%80",
    ],
)
def test_bytes_that_are_not_utf8_in_the_url(
    client: httpx.Client, server: Server, ns: str, url: str
) -> None:
    url = url.replace("NS", ns)
    for method in ("GET", "PUT", "DELETE"):
        response = client.request(method, url, json={"value": 1})
        refused(response, 400, "UTF-8")
    assert empty(server, ns)


@pytest.mark.parametrize("query", ["prefix=%00", "cursor=a%00", "prefix=%FF", "cursor=%C3%28"])
def test_listing_parameters_that_are_not_key_text(
    client: httpx.Client, ns: str, query: str
) -> None:
    response = client.get(f"/memory/{ns}?{query}")
    assert response.status_code == 400 and ("UTF-8" in response.text or "control" in response.text)


@pytest.mark.parametrize("tag", ['"١٢"', '"²"', '"99999999999999999999999"', '"-1"', '"1e3"', "W/"])
def test_if_match_that_is_not_a_version(
    client: httpx.Client, server: Server, ns: str, tag: str
) -> None:
    headers = {"if-match": tag.encode()}  # bytes: httpx would refuse to send non-ASCII text
    response = client.put(f"/memory/{ns}/k", json={"value": 1}, headers=headers)
    refused(response, 400, "If-Match")
    assert empty(server, ns)


def test_counters_stay_within_64_bits(client: httpx.Client, server: Server, ns: str) -> None:
    mem = Memory(ns, server.url)
    mem.set("n", 2**62)
    response = batch(client, {"op": "incr", "ns": ns, "key": "n", "by": 2**62})
    refused(response, 400, "64-bit")
    assert mem.get("n") == 2**62


def test_a_request_after_a_refused_one_on_the_same_connection(
    client: httpx.Client, ns: str
) -> None:
    for _ in range(3):
        assert raw_batch(client, "{oops").status_code == 400
        assert client.put(f"/memory/{ns}/k", content=b'{"value":1,"ttl":NaN}').status_code == 422
        assert client.put(f"/memory/{ns}/k", json={"value": 1}).status_code == 200
    assert client.get(f"/memory/{ns}/k").json()["value"] == 1


class Faulty(Backend):
    """A store with a bug: a ``get`` of the key ``boom`` raises what no handler expects."""

    def __init__(self, inner: Backend) -> None:
        super().__init__()
        self.inner = inner
        self.url = inner.url

    def execute(self, ops: Any) -> list[Any]:
        return self.inner.execute(ops)

    async def aexecute(self, ops: Any) -> list[Any]:
        if any(isinstance(op, Get) and op.key == "boom" for op in ops):
            raise RuntimeError("a bug")
        return await self.inner.aexecute(ops)


def test_an_unexpected_error_is_a_json_500_that_keeps_the_connection(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import uvicorn

    from botwire.server import create_app

    app = create_app(Settings(), backend=Faulty(SQLiteBackend(tmp_path / "faulty.db")))
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            for _ in range(100):
                try:
                    client.get("/healthz")
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
            with caplog.at_level("ERROR", logger="botwire.server"):
                failed = client.get("/memory/ns/boom")
            assert failed.status_code == 500
            request_id = failed.json()["request_id"]
            assert failed.headers["x-request-id"] == request_id
            assert request_id in failed.json()["detail"]
            assert any(request_id in record.getMessage() for record in caplog.records)
            port_before = client.get("/healthz")  # the same connection, still open
            assert port_before.status_code == 200
            assert client.put("/memory/ns/k", json={"value": 2}).status_code == 200
    finally:
        uv.should_exit = True
        thread.join(10)


# -- bounded work per request -----------------------------------------------------------------


def test_a_batch_cannot_read_one_large_value_a_thousand_times(
    client: httpx.Client, server: Server, ns: str
) -> None:
    mem = Memory(ns, server.url)
    mem.set("big", "x" * (MiB - 2))
    gets = [{"op": "get", "ns": ns, "key": "big"} for _ in range(1000)]
    response = batch(client, *gets)
    refused(response, 413, "max_response_bytes")
    assert len(response.content) < 2000
    assert len(batch(client, *gets[:3]).content) > 3 * MiB  # within the cap: answered
    for _ in range(6):  # one value larger than the cap may still be read, on its own
        mem.append("long", "y" * (MiB - 100))
    assert len(batch(client, {"op": "get", "ns": ns, "key": "long"}).content) > 6 * (MiB - 100)
    with_more = batch(client, {"op": "get", "ns": ns, "key": "long"}, gets[0])
    refused(with_more, 413, "max_response_bytes")


def test_get_many_reads_more_than_one_answer_holds_in_parts(server: Server, ns: str) -> None:
    """The server answers a batch with at most max_response_bytes of values; ``get_many``
    asks again for halves until every value is read, sync and async."""
    import asyncio

    from botwire import AsyncMemory

    mem = Memory(ns, server.url)
    values = {f"k{n}": f"{n}" * (MiB - 10) for n in range(10)}  # 10 MiB in all
    mem.set_many(dict(list(values.items())[:3]))
    mem.set_many(dict(list(values.items())[3:6]))
    mem.set_many(dict(list(values.items())[6:]))
    assert mem.get_many([*values, "missing"]) == values
    assert asyncio.run(AsyncMemory(ns, server.url).get_many(list(values))) == values


def test_reads_together_past_the_answer_budget_are_read_one_by_one(server: Server, ns: str) -> None:
    """Reads run beside each other (the LangGraph saver's steps) whose answers together are
    more than a server answers at once are read each on its own: sync and async."""
    import asyncio

    from botwire.langgraph._steps import Call, Driver

    mem = Memory(ns, server.url)
    values = {f"k{n}": f"{n}" * (MiB - 10) for n in range(10)}  # 10 MiB in all
    for n in range(0, 10, 3):
        mem.set_many(dict(list(values.items())[n : n + 3]))
    reads = [Call(ns, "get_many", ([*values],)), Call(ns, "items", ("k",)), Call(ns, "keys")]
    want = [values, values, [*values]]
    driver = Driver(server.url)
    assert driver._reads(reads) == want
    assert asyncio.run(driver._areads(reads)) == want


def test_items_pages_end_at_the_answer_budget(
    client: httpx.Client, server: Server, ns: str
) -> None:
    """A listing with values answers at most max_response_bytes of them: its page ends early
    with a cursor (``items`` reads on), and a page that fits no value is refused."""
    import asyncio

    from botwire import AsyncMemory

    mem = Memory(ns, server.url)
    values = {f"k{n}": f"{n}" * (MiB - 10) for n in range(10)}  # 10 MiB in all
    for n in range(0, 10, 3):
        mem.set_many(dict(list(values.items())[n : n + 3]))
    page = batch(client, {"op": "list_keys", "ns": ns, "values": True}).json()["results"][0]
    assert 0 < len(page["keys"]) < 10 and page["next_cursor"] == page["keys"][-1][0]
    assert all(json.loads(item[3]) == values[item[0]] for item in page["keys"])
    assert mem.items() == values
    assert list(asyncio.run(AsyncMemory(ns, server.url).items(reverse=True))) == [*values][::-1]
    spent = [{"op": "get", "ns": ns, "key": f"k{n}"} for n in range(4)]  # the whole budget
    answer = batch(client, *spent, {"op": "list_keys", "ns": ns, "values": True})
    assert answer.status_code == 413 and "max_response_bytes" in answer.json()["detail"]


def test_oversized_headers_are_431(client: httpx.Client, ns: str) -> None:
    many = {f"x-h{n}": "v" for n in range(150)}
    refused(client.get(f"/memory/{ns}/k", headers=many), 431, "headers")
    refused(client.get(f"/memory/{ns}/k", headers={"x-big": "v" * 20_000}), 431, "headers")
    assert client.get(f"/memory/{ns}/k").status_code == 404


def test_metrics_labels_come_only_from_known_routes_and_methods(client: httpx.Client) -> None:
    for n, method in enumerate(["PURGE", "PROPFIND", "LINK", "MKCOL"]):
        client.request(method, f"/made/up/{n}")
        client.get(f"/another/{uuid.uuid4().hex}")
    text = client.get("/metrics").text
    for made_up in ("PURGE", "PROPFIND", "LINK", "MKCOL", "/made/up", "/another"):
        assert made_up not in text
    assert 'method="other",route="unmatched"' in text


# -- timestamps a tenant could plant ------------------------------------------------------------


def test_export_refuses_a_row_it_cannot_write_and_says_which(db: str) -> None:
    mem = Memory("victim", db)
    mem.set_many({"a": 1, "b": 2, "c": 3})
    if db.startswith("sqlite"):  # a row from before the check, or edited by hand
        with sqlite3.connect(db.removeprefix("sqlite:///")) as conn:
            conn.execute("UPDATE entries SET created_at = ? WHERE key = 'b'", (2**62,))
    else:
        from botwire.backends.postgres import parse_url

        conninfo, schema, *_ = parse_url(db)
        with psycopg.connect(conninfo, autocommit=True, options=f"-c search_path={schema}") as c:
            c.execute("UPDATE botwire_entries SET created_at = %s WHERE key = 'b'", (2**62,))
    result = subprocess.run(
        [sys.executable, "-m", "botwire.cli", "export", "--url", db],
        capture_output=True, text=True, env=child_env(), timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert "key 'b' of namespace 'victim'" in result.stderr and "created_at" in result.stderr
    assert "Traceback" not in result.stderr


# -- auth ---------------------------------------------------------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "botwire.cli", *args],
        capture_output=True, text=True, env=child_env(), timeout=60,
    )  # fmt: skip


def make_token(db: str, name: str, *args: str) -> str:
    created = cli("token", "create", name, *args, "--db", db)
    assert created.returncode == 0, created.stderr
    return created.stdout.strip()


@pytest.fixture
def secured(db: str) -> Iterator[tuple[Server, dict[str, str]]]:
    tokens = {
        "user-1": make_token(db, "u1", "--prefix", "user-1"),
        "user-": make_token(db, "users", "--prefix", "user-"),
        "reader": make_token(db, "reader", "--prefix", "*", "--read-only"),
        "all": make_token(db, "all", "--prefix", "*"),
    }
    with Server(db, "--metrics-token", "scrape-me", BOTWIRE_TOKEN_CACHE_SECONDS="0") as server:
        yield server, tokens


def test_without_a_valid_token_every_route_answers_401(
    secured: tuple[Server, dict[str, str]],
) -> None:
    server, tokens = secured
    bad = {"authorization": "Bearer bw_nope"}
    with httpx.Client(base_url=server.url) as client:
        for headers in ({}, bad, {"authorization": "Basic abc"}):
            for response in [
                client.put("/memory/ns/k", content=b'{"value": NaN, "ttl": "x"}', headers=headers),
                client.put("/memory/ns/k", content=b"{not json", headers=headers),
                client.get("/memory/ns?limit=not-a-number", headers=headers),
                client.post("/v1/batch", content=b"garbage", headers=headers),
                client.delete("/memory/ns/k", headers=headers),
                client.get("/metrics", headers=headers),
            ]:
                assert response.status_code == 401, response.text
                assert "Bearer" in response.json()["detail"] or "token" in response.json()["detail"]
                assert "NaN" not in response.text and "garbage" not in response.text
        assert client.get("/healthz").status_code == 200
        forbidden = client.put(
            "/memory/other/k",
            content=b"{bad",
            headers={"authorization": f"Bearer {tokens['user-1']}"},
        )
        refused(forbidden, 403, "may not use namespace")
        read_only = client.put(
            "/memory/x/k", content=b"{bad", headers={"authorization": f"Bearer {tokens['reader']}"}
        )
        refused(read_only, 403, "read-only")


@pytest.mark.parametrize(
    ("prefix", "ns", "granted"),
    [
        ("user-1", "user-1", True),
        ("user-1", "user-1:chat", True),
        ("user-1", "user-1.x", True),
        ("user-1", "user-1-x", True),
        ("user-1", "user-1_x", True),
        ("user-1", "user-10", False),
        ("user-1", "user-1x", False),
        ("user-1", "user-", False),
        ("user-", "user-10", True),
        ("user-", "user-", True),
        ("team:", "team:a", True),
        ("*", "anything", True),
        ("", "anything", True),
        ("bot", "bot🧠", True),
        ("bot", "botä", False),
        ("user-1", "user-1\u0301", False),  # a combining accent: displays as user-1́
        ("user-1", "user-1\u200d", False),  # a zero-width joiner: displays as user-1
        ("user-1", "user-1\u200dx", False),
        ("user-1", "user-1\ufe0f", False),  # a variation selector
        ("user-1", "user-1\u00ad", False),  # a soft hyphen, invisible
        ("cafe\u0301", "cafe\u0301s", False),  # a prefix that ends in a mark ends in a word
        ("cafe\u0301", "cafe\u0301:x", True),
    ],
)
def test_a_prefix_matches_at_a_word_boundary(prefix: str, ns: str, granted: bool) -> None:
    assert prefix_allows(prefix, ns) is granted


def test_scopes_hold_on_the_wire(secured: tuple[Server, dict[str, str]]) -> None:
    server, tokens = secured
    for ns, granted in [
        ("user-1", True),
        ("user-1:chat", True),
        ("user-10", False),
        ("user-1x", False),
        ("user-1\u0301", False),
        ("user-1\u200d", False),
    ]:
        mem = Memory(ns, server.url, token=tokens["user-1"])
        if granted:
            mem.set("k", 1)
        else:
            with pytest.raises(Exception, match="may not use namespace"):
                mem.set("k", 1)
    Memory("user-10", server.url, token=tokens["user-"]).set("k", 2)
    assert Memory("user-10", server.url, token=tokens["all"]).keys() == ["k"]


def test_two_authorization_headers_are_refused(secured: tuple[Server, dict[str, str]]) -> None:
    """A proxy that checks the first header must not see another token than the server."""
    server, tokens = secured
    headers = [("authorization", f"Bearer {tokens['user-1']}"),
               ("authorization", f"Bearer {tokens['all']}")]  # fmt: skip
    with httpx.Client(base_url=server.url) as client:
        for request in [
            client.build_request("PUT", "/memory/user-2/k", json={"value": 1}, headers=headers),
            client.build_request("GET", "/memory/user-1/k", headers=headers),
            client.build_request("POST", "/v1/batch", json={"ops": []}, headers=headers),
            client.build_request("GET", "/metrics", headers=headers),
        ]:
            answer = client.send(request)
            assert answer.status_code == 400, answer.text
            assert "one Authorization header" in answer.json()["detail"]
    assert Memory("user-2", server.url, token=tokens["all"]).keys() == []


def test_once_a_token_was_made_tokens_are_required_for_good(db: str) -> None:
    with Server(db, BOTWIRE_TOKEN_CACHE_SECONDS="30") as server:
        assert httpx.put(f"{server.url}/memory/ns/k", json={"value": 1}).status_code == 200
        token = make_token(db, "first", "--prefix", "*")
        # no cache window: the very next anonymous request is refused
        assert httpx.put(f"{server.url}/memory/ns/k", json={"value": 2}).status_code == 401
        assert cli("token", "revoke", "first", "--db", db).returncode == 0
        make_token(db, "short", "--prefix", "*", "--ttl", "0.5")
        time.sleep(0.6)  # the last token expired: still no anonymous access
        assert httpx.get(f"{server.url}/memory/ns/k").status_code == 401
        assert cli("auth", "status", "--db", db).stdout.strip() == "tokens required"
    disabled = cli("auth", "disable", "--db", db)
    assert disabled.returncode == 0 and "no longer requires tokens" in disabled.stderr
    assert cli("auth", "status", "--db", db).stdout.strip() == "tokens not required"
    with Server(db) as server:
        assert httpx.get(f"{server.url}/memory/ns/k").json()["value"] == 1
    assert token.startswith("bw_")


def test_a_store_from_before_the_auth_record_still_requires_its_tokens(
    db: str, tmp_path: Path
) -> None:
    """A store whose tokens were made before the store recorded that it requires them: its
    servers refuse anonymous requests all the same, and the first one writes the record."""
    from botwire.backends import create_backend
    from botwire.backends.base import Delete, Get
    from botwire.server.auth import AUTH_NS, REQUIRED, settle_auth, tokens_required

    make_token(db, "old", "--prefix", "*")
    backend = create_backend(db)
    backend.execute([Delete(AUTH_NS, REQUIRED)])  # as such a store was
    assert tokens_required(backend)
    with Server(db) as server:
        assert httpx.get(f"{server.url}/memory/ns/k").status_code == 401
    (marker,) = backend.execute([Get(AUTH_NS, REQUIRED)])
    assert marker is not None and marker.value == "true"
    fresh = create_backend(f"sqlite:///{tmp_path / 'fresh.db'}")
    assert settle_auth(fresh) is False
    (marker,) = fresh.execute([Get(AUTH_NS, REQUIRED)])
    assert marker is not None and marker.value == "false"
    backend.close()
    fresh.close()


def test_metrics_need_a_token_once_tokens_are_on(secured: tuple[Server, dict[str, str]]) -> None:
    server, tokens = secured
    assert httpx.get(f"{server.url}/metrics").status_code == 401
    scraped = httpx.get(f"{server.url}/metrics", headers={"authorization": "Bearer scrape-me"})
    assert scraped.status_code == 200 and "botwire_requests_total" in scraped.text
    with_token = httpx.get(
        f"{server.url}/metrics", headers={"authorization": f"Bearer {tokens['reader']}"}
    )
    assert with_token.status_code == 200
    assert httpx.get(f"{server.url}/healthz").status_code == 200


@pytest.mark.parametrize("ttl", ["0", "-5", "nan", "inf", "1e300", "-inf"])
def test_token_create_refuses_a_bad_ttl(tmp_path: Path, ttl: str) -> None:
    db = f"sqlite:///{tmp_path / 'ttl.db'}"
    result = cli("token", "create", "t", "--prefix", "*", f"--ttl={ttl}", "--db", db)
    assert result.returncode == 1 and "ttl" in result.stderr and "Traceback" not in result.stderr
    assert cli("auth", "status", "--db", db).stdout.strip() == "tokens not required"


def test_token_create_refuses_bad_prefixes_and_documents_the_rule(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'prefix.db'}"
    for prefix in ["a/b", "bad\nprefix"]:
        result = cli("token", "create", "t", "--prefix", prefix, "--db", db)
        assert result.returncode == 1 and "prefix" in result.stderr
    help_text = cli("token", "create", "--help").stdout
    assert "word boundary" in " ".join(help_text.split()) and "user-10" in help_text


def test_a_get_that_refreshes_the_ttl_is_a_write(db: str) -> None:
    with Server(db, "--quota-writes-per-day", "3") as server:
        mem = Memory("q", server.url)
        mem.set("k", 1, ttl=60)
        assert mem.get("k", refresh_ttl=True) == 1
        assert mem.get("k", refresh_ttl=True) == 1
        with pytest.raises(Exception, match="writes"):
            mem.get("k", refresh_ttl=True)
        assert mem.get("k") == 1  # a plain read is not a write


# -- fuzzing with the numbers and text JSON parsers stumble on ---------------------------------


def _poison(draw: st.DrawFn, value: Any) -> Any:
    """``value`` with some of its numbers made non-finite and some of its strings broken."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)) and draw(st.booleans()):
        return draw(st.sampled_from([math.nan, math.inf, -math.inf, 10**30, -(2**64)]))
    if isinstance(value, str) and draw(st.booleans()):
        return value + draw(st.sampled_from(["\ud800", "\udfff", "\x00", "\uffff"]))
    if isinstance(value, list):
        return [_poison(draw, item) for item in value]
    if isinstance(value, dict):
        return {key: _poison(draw, item) for key, item in value.items()}
    return value


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_schema_fuzz_with_non_finite_numbers_and_surrogates(
    tmp_path: Path, engine: str, request: pytest.FixtureRequest
) -> None:
    from schemathesis import openapi
    from starlette.testclient import TestClient

    from botwire.backends.postgres import PostgresBackend
    from botwire.server import create_app

    from .conftest import empty_postgres

    backend: Backend
    if engine == "postgres":
        pg_url = request.getfixturevalue("pg_url")
        empty_postgres(pg_url)
        backend = PostgresBackend(pg_url)
    else:
        backend = SQLiteBackend(tmp_path / "fuzz.db")
    app = create_app(Settings(), backend=backend)
    schema = openapi.from_asgi("/openapi.json", app)
    client = TestClient(app)
    errors: list[str] = []

    def fuzz(operation: Any) -> None:
        @given(data=st.data())
        @settings(
            max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def drive(data: st.DataObject) -> None:
            case = data.draw(operation.as_strategy())
            if isinstance(case.body, (dict, list)) and data.draw(st.booleans()):
                body = _poison(data.draw, case.body)  # JSON that only lenient parsers take
                status = client.request(
                    case.method, case.formatted_path, params=case.query,
                    headers={**(case.headers or {}), "content-type": "application/json"},
                    content=json.dumps(body, allow_nan=True),
                ).status_code  # fmt: skip
            else:
                body, status = case.body, case.call().status_code
            if status >= 500:
                errors.append(f"{case.method} {case.formatted_path} {body!r:.200}")

        drive()

    for result in schema.get_all_operations():
        fuzz(result.ok())
    assert errors == []


# -- worker processes ---------------------------------------------------------------------------


@pytest.mark.slow
def test_killing_the_supervisor_stops_its_workers(tmp_path: Path) -> None:
    server = Server(f"sqlite:///{tmp_path / 'workers.db'}", "--workers", "2").start()
    assert server.proc is not None
    time.sleep(1)
    workers = [
        int(pid)
        for pid in subprocess.run(
            ["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True
        ).stdout.split()
    ]
    assert len(workers) >= 2
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in workers)
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", server.port)) != 0  # nobody serves the port


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"  # a zombie has exited
