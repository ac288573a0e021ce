"""Webhooks: signed deliveries of the change log to a receiver, retried, resumed after a
restart, one worker per store, never more than the creator's token may read."""

from __future__ import annotations

import http.server
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from botwire import Memory
from botwire.backends.sqlite import SQLiteBackend
from botwire.server.auth import create_token
from botwire.server.webhooks import sign, verify

from .helpers import Server, free_port, run_python


class Receiver:
    """A local HTTP endpoint that records what it is sent; it answers 500 to the first
    ``failures`` deliveries."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                if receiver.failures > 0:
                    receiver.failures -= 1
                    self.send_response(500)
                else:
                    receiver.received.append(
                        ({k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def changes(self) -> list[dict[str, Any]]:
        return [c for _, body in self.received for c in json.loads(body)["changes"]]

    def wait_for(self, count: int, timeout: float = 20) -> list[dict[str, Any]]:
        end = time.monotonic() + timeout
        while len(self.changes()) < count and time.monotonic() < end:
            time.sleep(0.05)
        return self.changes()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.close()


def tokens(db: Path, **prefixes: list[str]) -> dict[str, str]:
    backend = SQLiteBackend(db)
    made = {name: create_token(backend, name, granted) for name, granted in prefixes.items()}
    backend.close()
    return made


def auth(token: str) -> dict[str, str]:
    """The headers of a request with ``token`` (none: anonymous, on a loopback server)."""
    return {"authorization": f"Bearer {token}"} if token else {}


def subscribe(server: Server, token: str, url: str, ns_prefix: str, **more: Any) -> httpx.Response:
    body = {"url": url, "ns_prefix": ns_prefix, **more}
    return httpx.post(server.url + "/v1/webhooks", json=body, headers=auth(token))


def test_deliveries_are_signed_ordered_and_scoped(tmp_path: Path, receiver: Receiver) -> None:
    db = tmp_path / "hooks.db"
    made = tokens(db, shop=["orders:"], other=["billing:"])
    backend = SQLiteBackend(db)
    namesake = create_token(backend, "shop", ["orders:"])  # another token of the same name
    backend.close()
    with Server(f"sqlite:///{db}") as server:
        created = subscribe(server, made["shop"], receiver.url, "orders:")
        assert created.status_code == 201
        secret = created.json()["secret"]
        orders = Memory("orders:42", server.url, token=made["shop"])
        for n in range(5):
            orders.set(f"line{n}", {"sku": n})
        Memory("billing:42", server.url, token=made["other"]).set("paid", True)
        got = receiver.wait_for(5)
        assert [(c["namespace"], c["key"], c["value"]) for c in got] == [
            ("orders:42", f"line{n}", {"sku": n}) for n in range(5)
        ]
        seqs = [c["seq"] for c in got]
        assert seqs == sorted(seqs)
        for headers, body in receiver.received:
            assert verify(secret, body, headers["botwire-signature"])
            assert not verify(secret, body + b" ", headers["botwire-signature"])
            assert not verify("another secret, long enough", body, headers["botwire-signature"])
        old = sign(secret, b"{}", at=int(time.time()) - 3600)
        assert not verify(secret, b"{}", old)  # a replayed delivery is stale
        listed = httpx.get(server.url + "/v1/webhooks",
                           headers={"authorization": f"Bearer {made['shop']}"}).json()  # fmt: skip
        assert [h["ns_prefix"] for h in listed["webhooks"]] == ["orders:"]
        assert "secret" not in listed["webhooks"][0]
        # a token may only follow what it may read
        refused = subscribe(server, made["shop"], receiver.url, "billing:")
        assert refused.status_code == 400 and "creator may read" in refused.text
        assert subscribe(server, made["shop"], receiver.url, "").status_code == 400
        for bad in ({"url": "ftp://x"}, {"url": "not a url"}, {"secret": "short"}):
            body = {"url": receiver.url, "ns_prefix": "orders:", **bad}
            answer = httpx.post(server.url + "/v1/webhooks", json=body,
                                headers={"authorization": f"Bearer {made['shop']}"})  # fmt: skip
            assert answer.status_code in (400, 422), bad
        again = httpx.get(server.url + "/v1/webhooks", headers=auth(made["shop"])).json()
        assert again["webhooks"] == listed["webhooks"]  # the refused ones were not stored
        hook = listed["webhooks"][0]["id"]
        theirs = httpx.get(server.url + "/v1/webhooks", headers=auth(namesake)).json()
        assert theirs == {"webhooks": []}  # a webhook is its token's, not its name's
        assert httpx.delete(server.url + f"/v1/webhooks/{hook}",
                            headers=auth(namesake)).status_code == 400  # fmt: skip
        gone = httpx.delete(server.url + f"/v1/webhooks/{hook}",
                            headers={"authorization": f"Bearer {made['other']}"})  # fmt: skip
        assert gone.status_code == 400  # not its webhook
        gone = httpx.delete(server.url + f"/v1/webhooks/{hook}",
                            headers={"authorization": f"Bearer {made['shop']}"})  # fmt: skip
        assert gone.status_code == 200


def test_a_failing_receiver_gets_the_changes_again(tmp_path: Path) -> None:
    receiver = Receiver(failures=2)
    try:
        with Server(f"sqlite:///{tmp_path / 'retry.db'}") as server:
            assert subscribe(server, "", receiver.url, "jobs:").status_code == 201
            Memory("jobs:1", server.url).set("state", "queued")
            (change,) = receiver.wait_for(1)
            assert receiver.failures == 0 and change["value"] == "queued"
    finally:
        receiver.close()


def test_a_restarted_server_resumes_where_its_receiver_left_off(tmp_path: Path) -> None:
    """SIGTERM while deliveries are failing and waiting to be retried: the server stops within
    a few seconds (it hung in its shutdown), and the server started after it delivers at once
    (it used to wait for the stopped one's delivery lease to run out), from where the
    receiver left off."""
    db = f"sqlite:///{tmp_path / 'resume.db'}"
    receiver = Receiver(failures=1000)  # down while the first server runs
    try:
        server = Server(db).start()
        assert subscribe(server, "", receiver.url, "").status_code == 201
        for n in range(3):
            Memory("notes", server.url).set(f"n{n}", n)
        time.sleep(1.5)  # deliveries fail and wait to be retried
        assert server.proc is not None
        server.proc.terminate()
        server.proc.wait(5)  # raises TimeoutExpired when it hangs
        Memory("notes", db).set("n3", 3)  # written while no server runs
        receiver.failures = 0
        started = time.monotonic()
        with Server(db):
            got = receiver.wait_for(4)
        assert [c["key"] for c in got] == ["n0", "n1", "n2", "n3"]
        assert time.monotonic() - started < 8
    finally:
        receiver.close()


def test_two_servers_on_one_postgres_deliver_each_change_once(
    pg_url: str, receiver: Receiver
) -> None:
    with Server(pg_url) as one, Server(pg_url) as two:
        ns = f"pg-hooks-{uuid.uuid4().hex[:8]}"
        assert subscribe(one, "", receiver.url, ns).status_code == 201
        for n in range(20):
            Memory(ns, (one, two)[n % 2].url).set(f"k{n}", n)
        got = receiver.wait_for(20)
        time.sleep(1.0)  # anything delivered twice would have arrived by now
        assert sorted(c["value"] for c in receiver.changes()) == list(range(20))
        assert [c["seq"] for c in got] == sorted(c["seq"] for c in got)
        httpx.delete(
            one.url
            + f"/v1/webhooks/{httpx.get(one.url + '/v1/webhooks').json()['webhooks'][0]['id']}"
        )


def test_botwire_webhook_cli(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    command = "import sys; from botwire.cli import main; sys.exit(main({argv!r}))"
    added = run_python(command.format(argv=["webhook", "add", "https://example.test/h",
                                            "--ns-prefix", "crm:", "--db", db]))  # fmt: skip
    ident = added.split()[0]
    assert "secret: " in added
    listed = run_python(command.format(argv=["webhook", "list", "--db", db]))
    assert ident in listed and "'crm:'" in listed and "secret" not in listed
    run_python(command.format(argv=["webhook", "remove", ident, "--db", db]))
    assert ident not in run_python(command.format(argv=["webhook", "list", "--db", db]))


def test_a_revoked_tokens_webhook_delivers_nothing_more(tmp_path: Path, receiver: Receiver) -> None:
    from botwire.server.auth import revoke_token

    db = tmp_path / "revoked.db"
    made = tokens(db, crm=["crm:"])
    with Server(f"sqlite:///{db}") as server:
        assert subscribe(server, made["crm"], receiver.url, "crm:").status_code == 201
        mem = Memory("crm:1", server.url, token=made["crm"])
        mem.set("lead", 1)
        assert len(receiver.wait_for(1)) == 1
        backend = SQLiteBackend(db)
        revoke_token(backend, "crm")
        backend.close()
        Memory("crm:1", f"sqlite:///{db}").set("lead", 2)  # written on the store itself
        time.sleep(3)
        assert [c["value"] for c in receiver.changes()] == [1]
