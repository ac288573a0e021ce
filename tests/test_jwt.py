"""JWT bearer tokens from an identity provider, checked against a JWKS made here (a file, and a
URL on loopback): a real ``botwire serve``, keys and tokens made in the test, no network."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from botwire import Memory

from .helpers import Server

ISSUER = "https://id.example.test/"
AUDIENCE = "botwire-memory"


def _jwk(key: Any, kid: str) -> dict[str, Any]:
    algorithm = (
        jwt.algorithms.RSAAlgorithm
        if isinstance(key, rsa.RSAPrivateKey)
        else jwt.algorithms.ECAlgorithm
    )
    data: dict[str, Any] = json.loads(algorithm.to_jwk(key.public_key()))
    data.update(kid=kid, use="sig")
    return data


class Keys:
    def __init__(self) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.jwks = {"keys": [_jwk(self.rsa, "rsa-1"), _jwk(self.ec, "ec-1")]}

    def token(self, *, key: Any = None, kid: str = "rsa-1", alg: str = "RS256",
              **claims: Any) -> str:  # fmt: skip
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300,
                "botwire_prefixes": ["user-1"], "scope": "botwire:write"}  # fmt: skip
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, key or self.rsa, algorithm=alg, headers={"kid": kid})


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


@pytest.fixture(scope="module")
def server(keys: Keys, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("jwt")
    (folder / "jwks.json").write_text(json.dumps(keys.jwks))
    args = ["--jwks", str(folder / "jwks.json"), "--jwt-issuer", ISSUER, "--jwt-audience", AUDIENCE]
    with Server(f"sqlite:///{folder / 'j.db'}", *args) as running:
        yield running


def ask(server: Server, token: str, method: str = "GET", path: str = "/memory/user-1/k",
        **kwargs: Any) -> httpx.Response:  # fmt: skip
    return httpx.request(method, server.url + path, headers={"authorization": f"Bearer {token}"},
                         **kwargs)  # fmt: skip


def test_a_valid_token_reads_and_writes_its_namespaces(keys: Keys, server: Server) -> None:
    for token in (keys.token(), keys.token(key=keys.ec, kid="ec-1", alg="ES256")):
        mem = Memory("user-1:chat", server.url, token=token)
        mem.append("log", "hello")
        assert mem.get("log")[-1] == "hello"
    (change,) = Memory("user-1:chat", server.url, token=keys.token()).history("log", limit=1)
    assert change.actor == "token:jwt:alice"
    me = ask(server, keys.token(), path="/v1/whoami").json()
    assert me["name"] == "jwt:alice" and me["prefixes"] == ["user-1"] and not me["read_only"]


@pytest.mark.parametrize(
    ("case", "word"),
    [
        ("expired", "expired"),
        ("wrong audience", "Audience"),
        ("wrong issuer", "issuer"),
        ("wrong key", "Signature"),
        ("unknown kid", "kid"),
        ("alg none", "RS256 or ES256"),
        ("hmac with the public key", "RS256 or ES256"),
        ("no expiry", "exp"),
        ("garbage", "not a valid JWT"),
    ],
)
def test_a_token_that_does_not_verify_gets_401_and_writes_nothing(
    keys: Keys, server: Server, case: str, word: str
) -> None:
    from cryptography.hazmat.primitives import serialization

    now = int(time.time())
    token = {
        "expired": lambda: keys.token(exp=now - 120, iat=now - 600),
        "wrong audience": lambda: keys.token(aud="another-service"),
        "wrong issuer": lambda: keys.token(iss="https://evil.example.test/"),
        "wrong key": lambda: keys.token(key=keys.stranger),
        "unknown kid": lambda: keys.token(kid="rsa-9"),
        "alg none": lambda: jwt.encode(
            {
                "iss": ISSUER,
                "aud": AUDIENCE,
                "sub": "alice",
                "exp": now + 300,
                "botwire_prefixes": ["*"],
            },
            None,
            algorithm="none",
            headers={"kid": "rsa-1"},
        ),
        "hmac with the public key": lambda: _hmac_token(keys, now, serialization),
        "no expiry": lambda: keys.token(exp=None),
        "garbage": lambda: "aaa.bbb.ccc",
    }[case]()
    refused = ask(server, token, "PUT", json={"value": "forged"})
    assert refused.status_code == 401 and word in refused.json()["detail"], refused.text
    valid = keys.token()
    assert ask(server, valid).status_code == 404  # nothing was written


def _hmac_token(keys: Keys, now: int, serialization: Any) -> str:
    """The key-confusion attack: HS256 with the RSA public key's PEM as the secret."""
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}).encode())
    body = b64(json.dumps({"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "exp": now + 300,
                           "botwire_prefixes": ["*"], "scope": "botwire:write botwire:admin"}
                          ).encode())  # fmt: skip
    secret = keys.rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signature = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{b64(signature)}"


def test_a_prefix_claim_opens_no_neighbouring_namespace(keys: Keys, server: Server) -> None:
    token = keys.token(botwire_prefixes="user-1 team:")  # a space-separated string works too
    assert ask(server, token, "PUT", "/memory/user-1/k", json={"value": 1}).status_code == 200
    assert ask(server, token, "PUT", "/memory/team:x/k", json={"value": 1}).status_code == 200
    for neighbour in ("user-10", "user-1x", "team"):
        answer = ask(server, token, "PUT", f"/memory/{neighbour}/k", json={"value": 1})
        assert answer.status_code == 403, neighbour
    nothing = keys.token(botwire_prefixes=None)
    answer = ask(server, nothing)
    assert answer.status_code == 403 and "no botwire_prefixes" in answer.json()["detail"]
    bad = keys.token(botwire_prefixes=["a/b"])
    assert ask(server, bad, path="/memory/a/k").status_code == 403
    # an empty prefix would grant every namespace: refused
    empty = keys.token(botwire_prefixes=[""], scope="botwire:write botwire:admin")
    assert ask(server, empty, path="/memory/anything/k").status_code == 403
    assert (
        ask(server, empty, "POST", "/v1/tokens", json={"name": "x", "prefixes": ["*"]}).status_code
        == 403
    )


def test_a_key_of_the_wrong_type_for_the_algorithm_is_a_401_not_a_500(
    keys: Keys, server: Server
) -> None:
    forged = keys.token(key=keys.ec, kid="rsa-1", alg="ES256")  # an RSA key's kid, ES256
    answer = ask(server, forged)
    assert answer.status_code == 401 and "not a key for ES256" in answer.json()["detail"]


def test_a_jwt_cannot_own_a_webhook(keys: Keys, server: Server) -> None:
    body = {"url": "http://127.0.0.1:9/hook", "ns_prefix": "user-1"}
    answer = ask(server, keys.token(), "POST", "/v1/webhooks", json=body)
    assert answer.status_code == 403 and "botwire's own tokens" in answer.json()["detail"]


def test_a_key_removed_from_the_jwks_stops_working(
    keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botwire.errors import Unauthorized
    from botwire.server import jwt as botwire_jwt

    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(keys.jwks))
    verifier = botwire_jwt.JWTVerifier(str(path), ISSUER, AUDIENCE, "botwire_prefixes")
    token = keys.token()
    assert verifier.scope(token)[0].name == "jwt:alice"
    path.write_text(json.dumps({"keys": [k for k in keys.jwks["keys"] if k["kid"] != "rsa-1"]}))
    monkeypatch.setattr(botwire_jwt, "REFRESH_SECONDS", 0.0)
    with pytest.raises(Unauthorized, match="kid"):
        verifier.scope(token)


def test_a_jwks_over_plain_http_beyond_loopback_is_refused() -> None:
    from botwire.errors import InvalidRequest
    from botwire.server.jwt import JWTVerifier

    with pytest.raises(InvalidRequest, match="https"):
        JWTVerifier("http://id.example.test/jwks.json", ISSUER, AUDIENCE, "botwire_prefixes")


def test_scope_claims_grant_writes_and_the_audit(keys: Keys, server: Server) -> None:
    reader = keys.token(scope="profile")
    assert ask(server, reader).status_code in (200, 404)
    assert ask(server, reader, "PUT", json={"value": 1}).status_code == 403
    assert ask(server, reader, path="/v1/audit").status_code == 403
    admin = keys.token(botwire_prefixes=["*"], scope="botwire:write botwire:admin")
    assert ask(server, admin, path="/v1/audit").status_code == 200
    assert ask(server, admin, path="/v1/whoami").json()["admin"] is True


def test_no_token_at_all_is_refused_on_a_server_that_takes_jwts(server: Server) -> None:
    assert httpx.get(server.url + "/memory/user-1/k").status_code == 401
    assert httpx.get(server.url + "/readyz").status_code == 200


class _JWKSHandler(http.server.BaseHTTPRequestHandler):
    jwks: ClassVar[dict[str, Any]] = {}
    served = 0

    def do_GET(self) -> None:
        type(self).served += 1
        body = json.dumps(type(self).jwks).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_a_jwks_from_a_url_is_fetched_and_a_bad_one_stops_the_start(
    keys: Keys, tmp_path: Path
) -> None:
    _JWKSHandler.jwks = keys.jwks
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _JWKSHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/.well-known/jwks.json"
    try:
        args = ["--jwks", url, "--jwt-issuer", ISSUER, "--jwt-audience", AUDIENCE]
        with Server(f"sqlite:///{tmp_path / 'u.db'}", *args) as running:
            assert ask(running, keys.token(), "PUT", json={"value": 2}).status_code == 200
            assert _JWKSHandler.served >= 1
    finally:
        httpd.shutdown()
    import subprocess
    import sys

    from .helpers import child_env

    done = subprocess.run(
        [sys.executable, "-m", "botwire.cli", "serve", "--db", f"sqlite:///{tmp_path / 'x.db'}",
         "--jwks", str(tmp_path / "missing.json"), "--jwt-issuer", ISSUER,
         "--jwt-audience", AUDIENCE],
        capture_output=True, text=True, timeout=60, env=child_env(),
    )  # fmt: skip
    assert done.returncode == 1 and "cannot read the JWKS" in done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "botwire.cli", "serve", "--db", f"sqlite:///{tmp_path / 'x.db'}",
         "--jwks", url],
        capture_output=True, text=True, timeout=60, env=child_env(),
    )  # fmt: skip
    assert done.returncode == 1 and "--jwt-issuer" in done.stderr
