"""The HTTP routes the console uses, through a real ``botwire serve``: who a token is, the
namespaces with their sizes, tokens for admin tokens, a key's history, past versions and
restore, and keys by last change. Every refusal is a 4xx that writes nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from botwire import Memory
from botwire.backends.base import Incr
from botwire.backends.sqlite import SQLiteBackend
from botwire.server.auth import create_token, list_tokens

from .helpers import Server


class Served:
    def __init__(self, server: Server, tokens: dict[str, str], db: Path) -> None:
        self.url = server.url
        self.tokens = tokens
        self.db = db

    def ask(self, method: str, path: str, who: str = "admin", **kwargs: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {self.tokens[who]}"}
        return httpx.request(method, self.url + path, headers=headers, **kwargs)

    def memory(self, ns: str, who: str = "admin") -> Memory:
        return Memory(ns, self.url, token=self.tokens[who])

    def token_names(self) -> list[str]:
        backend = SQLiteBackend(self.db)
        try:
            return [t["name"] for t in list_tokens(backend)]
        finally:
            backend.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    db = tmp_path_factory.mktemp("console-api") / "api.db"
    backend = SQLiteBackend(db)
    tokens = {
        "admin": create_token(backend, "ops", ["*"], admin=True),
        "team": create_token(backend, "team-bot", ["team:"]),
        "reader": create_token(backend, "reader", ["*"], read_only=True),
    }
    backend.close()
    with Server(f"sqlite:///{db}", "--quota-writes-per-day", "1000") as server:
        yield Served(server, tokens, db)


def test_whoami_says_what_the_token_may_do(served: Served) -> None:
    me = served.ask("GET", "/v1/whoami", "team").json()
    assert me["name"] == "team-bot" and me["prefixes"] == ["team:"]
    assert (me["read_only"], me["admin"], me["anonymous"]) == (False, False, False)
    assert me["quotas"] == {"writes_per_day": 1000, "bytes": None}
    assert served.ask("GET", "/v1/whoami", "admin").json()["admin"] is True
    assert served.ask("GET", "/v1/whoami", "reader").json()["read_only"] is True
    assert httpx.get(served.url + "/v1/whoami").status_code == 401


def test_namespaces_with_sizes_and_writes_today_scoped_by_the_token(served: Served) -> None:
    served.memory("team:a", "team").set_many({"x": "abc", "y": 12})
    served.memory("team:a", "team").set("x", "abcd")
    served.memory("other-ns").set("k", 1)
    mine = served.ask("GET", "/v1/namespaces", "team").json()["namespaces"]
    assert mine == [{"namespace": "team:a", "keys": 2, "bytes": 8, "writes_today": 3}]
    everything = served.ask("GET", "/v1/namespaces").json()["namespaces"]
    assert {"team:a", "other-ns"} <= {n["namespace"] for n in everything}
    assert all("/" not in n["namespace"] for n in everything)  # tokens, auth: never listed
    prefixed = served.ask("GET", "/v1/namespaces", params={"prefix": "team"}).json()
    assert [n["namespace"] for n in prefixed["namespaces"]] == ["team:a"]
    assert served.ask("GET", "/v1/namespaces", params={"prefix": "a\x00"}).status_code == 400
    # in a batch too, scoped the same way
    ops = {"ops": [{"op": "list_namespaces", "sizes": True}]}
    (result,) = served.ask("POST", "/v1/batch", "team", json=ops).json()["results"]
    assert result == [["team:a", 2, 8, 3]]


def test_admin_tokens_list_create_and_revoke_tokens(served: Served) -> None:
    listed = served.ask("GET", "/v1/tokens").json()["tokens"]
    assert {"ops", "team-bot", "reader"} <= {t["name"] for t in listed}
    assert all("hash" not in t and "token" not in t for t in listed)
    made = served.ask("POST", "/v1/tokens", json={"name": "new-bot", "prefixes": ["new:"],
                                                   "read_only": True, "ttl": 3600})  # fmt: skip
    assert made.status_code == 201
    token = made.json()["token"]
    headers = {"authorization": f"Bearer {token}"}
    assert httpx.get(served.url + "/memory/new:1", headers=headers).status_code == 200
    assert httpx.get(served.url + "/memory/other", headers=headers).status_code == 403
    assert (
        httpx.put(served.url + "/memory/new:1/k", json={"value": 1}, headers=headers).status_code
        == 403
    )
    (entry,) = [
        t for t in served.ask("GET", "/v1/tokens").json()["tokens"] if t["name"] == "new-bot"
    ]
    assert entry["read_only"] and entry["expires_at"] is not None
    assert served.ask("DELETE", f"/v1/tokens/{entry['id']}").json() == {"revoked": 1}
    # refused at once by the server that revoked it
    assert httpx.get(served.url + "/memory/new:1", headers=headers).status_code == 401
    assert served.ask("DELETE", "/v1/tokens/no-such-token").status_code == 400


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "prefixes": []},
        {"name": "x", "prefixes": ["a/b"]},
        {"name": "", "prefixes": ["a:"]},
        {"name": "bad\nname", "prefixes": ["a:"]},
        {"name": "x", "prefixes": ["a:"], "ttl": 0},
        {"name": "x", "prefixes": ["a:"], "ttl": 1e12},
        {"name": "x", "prefixes": ["a:"], "admin": "yes"},
        {"name": "x", "prefixes": ["a:"], "role": "root"},
        {"name": "x", "prefixes": "a:"},
    ],
)
def test_a_bad_token_request_is_refused_and_creates_nothing(served: Served, body: Any) -> None:
    before = served.token_names()
    answer = served.ask("POST", "/v1/tokens", json=body)
    assert 400 <= answer.status_code < 500 and answer.json()["detail"]
    assert served.token_names() == before


def test_only_an_admin_token_of_every_namespace_manages_tokens(tmp_path: Path) -> None:
    """A narrower admin token (scoped, or read-only) could otherwise mint itself more rights."""
    db = tmp_path / "admins.db"
    backend = SQLiteBackend(db)
    narrow = {
        "scoped-admin": create_token(backend, "scoped-admin", ["team:"], admin=True),
        "reading-admin": create_token(backend, "reading-admin", ["*"], read_only=True, admin=True),
    }
    backend.close()
    with Server(f"sqlite:///{db}") as server:
        served = Served(server, narrow, db)
        before = served.token_names()
        for who in narrow:
            assert served.ask("GET", "/v1/whoami", who).json()["manages_tokens"] is False
            assert served.ask("GET", "/v1/tokens", who).status_code == 403
            body = {"name": "evil", "prefixes": ["*"], "admin": True}
            refused = served.ask("POST", "/v1/tokens", who, json=body)
            assert refused.status_code == 403 and "every namespace" in refused.json()["detail"]
            assert served.ask("DELETE", "/v1/tokens/scoped-admin", who).status_code == 403
        assert served.token_names() == before
        # the scoped admin still reads the audit of its own namespaces
        assert (
            served.ask(
                "GET", "/v1/audit", "scoped-admin", params={"ns_prefix": "team:"}
            ).status_code
            == 200
        )


def test_a_version_rebuilt_from_a_long_log_stays_within_the_request_limit(tmp_path: Path) -> None:
    db = tmp_path / "long.db"
    backend = SQLiteBackend(db)
    for _ in range(40):
        backend.execute([Incr("long", "counter", 1)] * 1000)
    backend.close()
    with Server(f"sqlite:///{db}", BOTWIRE_MAX_REQUEST_SECONDS="0.05") as server:
        first = httpx.get(
            server.url + "/v1/history", params={"ns": "long", "key": "counter", "limit": 1}
        )
        assert first.status_code == 200
        started = time.monotonic()
        params = {"ns": "long", "key": "counter", "version": 1}
        answer = httpx.get(server.url + "/v1/versions", params=params, timeout=60)
        assert answer.status_code == 503 and "Retry-After".lower() in answer.headers
        assert time.monotonic() - started < 5
        assert httpx.get(server.url + "/readyz").status_code == 200


def test_only_admin_tokens_manage_tokens(served: Served) -> None:
    before = served.token_names()
    for who in ("team", "reader"):
        assert served.ask("GET", "/v1/tokens", who).status_code == 403
        body = {"name": "sneaky", "prefixes": ["*"], "admin": True}
        refused = served.ask("POST", "/v1/tokens", who, json=body)
        assert refused.status_code == 403 and "admin" in refused.json()["detail"]
        assert served.ask("DELETE", "/v1/tokens/ops", who).status_code == 403
    assert served.token_names() == before


def test_history_past_versions_and_restore(served: Served) -> None:
    mem = served.memory("team:doc", "team")
    v1 = mem.set("doc", {"title": "draft", "n": 1.0}, ttl=3600)
    mem.set("doc", {"title": "final"})
    mem.expire("doc", 3600)
    changes = served.ask("GET", "/v1/history", "team", params={"ns": "team:doc", "key": "doc"})
    found = changes.json()["changes"]
    assert [c["op"] for c in found] == ["expire", "set", "set"]
    assert found[2]["value"] == {"title": "draft", "n": 1.0} and found[2]["version"] == v1
    old = served.ask("GET", "/v1/versions", "team",
                     params={"ns": "team:doc", "key": "doc", "version": v1})  # fmt: skip
    assert old.json()["value"] == {"title": "draft", "n": 1.0} and '"n":1.0' in old.text
    missing = served.ask("GET", "/v1/versions", "team",
                         params={"ns": "team:doc", "key": "doc", "version": 1})  # fmt: skip
    assert missing.status_code == 404
    restored = served.ask("POST", "/v1/restore", "team",
                          json={"ns": "team:doc", "key": "doc", "version": v1})  # fmt: skip
    new_version = restored.json()["version"]
    entry = mem.entry("doc")
    assert entry is not None and entry.version == new_version
    assert entry.value == {"title": "draft", "n": 1.0} and entry.expires_at is not None


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("GET", "/v1/history", {"params": {"ns": "team:doc", "key": "doc", "limit": 0}}, 422),
        ("GET", "/v1/history", {"params": {"ns": "a/b", "key": "doc"}}, 400),
        ("GET", "/v1/versions", {"params": {"ns": "team:doc", "key": "doc", "version": 0}}, 422),
        ("GET", "/v1/versions", {"params": {"ns": "team:doc", "key": "a\x00", "version": 5}}, 400),
        ("POST", "/v1/restore", {"json": {"ns": "team:doc", "key": "doc", "version": 1}}, 400),
        ("POST", "/v1/restore", {"json": {"ns": "team:doc", "key": "doc", "version": "1"}}, 422),
        ("POST", "/v1/restore", {"json": {"ns": "team:doc", "key": "doc"}}, 422),
        ("POST", "/v1/restore", {"json": {"ns": "other", "key": "doc", "version": 1}}, 403),
        ("GET", "/memory/team:doc", {"params": {"sort": "size"}}, 422),
        ("GET", "/memory/team:doc", {"params": {"sort": "updated", "cursor": "doc"}}, 400),
    ],
)
def test_bad_history_and_listing_requests_are_refused_and_write_nothing(
    served: Served, method: str, path: str, kwargs: Any, status: int
) -> None:
    mem = served.memory("team:doc", "team")
    mem.set("doc", "current")
    before = mem.entry("doc")
    answer = served.ask(method, path, "team", **kwargs)
    assert answer.status_code == status and answer.json()["detail"]
    assert mem.entry("doc") == before


def test_a_read_only_token_cannot_restore(served: Served) -> None:
    mem = served.memory("ro-doc")
    v1 = mem.set("doc", "first")
    mem.set("doc", "second")
    refused = served.ask(
        "POST", "/v1/restore", "reader", json={"ns": "ro-doc", "key": "doc", "version": v1}
    )
    assert refused.status_code == 403
    assert mem.get("doc") == "second"


def test_keys_by_last_change_through_the_compatible_route(served: Served) -> None:
    mem = served.memory("team:sorted", "team")
    for key in ("c", "a", "b"):
        mem.set(key, key)
    mem.set("a", "again")
    seen: list[str] = []
    cursor = None
    while True:
        params = {"sort": "updated", "limit": 1, **({"cursor": cursor} if cursor else {})}
        page = served.ask("GET", "/memory/team:sorted", "team", params=params).json()
        seen += [k["key"] for k in page["keys"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["a", "b", "c"]
    by_name = served.ask("GET", "/memory/team:sorted", "team").json()
    assert [k["key"] for k in by_name["keys"]] == ["a", "b", "c"]


def test_a_local_server_without_tokens_opens_the_console_without_one(tmp_path: Path) -> None:
    with Server(f"sqlite:///{tmp_path / 'open.db'}") as server:
        me = httpx.get(server.url + "/v1/whoami").json()
        assert me["anonymous"] is True and me["admin"] is True and me["read_only"] is False
        page = httpx.get(server.url + "/", follow_redirects=True)
        assert page.status_code == 200 and "botwire console" in page.text
