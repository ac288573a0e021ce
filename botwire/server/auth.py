"""Bearer tokens scoped to namespace prefixes, kept in the server's own store.

A token is shown once, when it is created; the store keeps only its SHA-256 (tokens are 256 random
bits, so a fast hash is enough). Tokens live in the namespace ``/tokens``, which no client can name
(namespaces cannot contain ``/``), and expire through the store's own TTL.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from botwire._values import to_json
from botwire.backends.base import (
    PAGE_SIZE,
    WRITE_OPS,
    Backend,
    Delete,
    Get,
    ListKeys,
    Op,
    Put,
    Record,
    all_keys,
    run_steps,
)
from botwire.errors import Forbidden, InvalidRequest, Unauthorized

TOKENS_NS = "/tokens"
PREFIX = "bw_"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Scope:
    """What one request may touch: namespaces starting with one of ``prefixes``."""

    name: str
    prefixes: tuple[str, ...]
    read_only: bool

    def allows(self, ns: str) -> bool:
        return any(ns.startswith(prefix) for prefix in self.prefixes)

    def check(self, op: Op) -> None:
        """Raise :class:`Forbidden` unless this scope may run ``op``."""
        ns = getattr(op, "ns", None)
        if ns is not None and not self.allows(ns):
            raise Forbidden(f"token {self.name!r} may not use namespace {ns!r}")
        if self.read_only and (isinstance(op, WRITE_OPS) or (type(op) is Get and op.refresh_ttl)):
            raise Forbidden(f"token {self.name!r} is read-only")


ANONYMOUS = Scope("anonymous", ("",), False)


def create_token(
    backend: Backend,
    name: str,
    prefixes: list[str],
    *,
    read_only: bool = False,
    ttl: float | None = None,
) -> str:
    """Store a new token and return it (the only time it is seen)."""
    if not name or not prefixes:
        raise InvalidRequest("a token needs a name and at least one namespace prefix")
    token = PREFIX + secrets.token_urlsafe(32)
    digest = _hash(token)
    record = {"name": name, "prefixes": prefixes, "read_only": read_only, "hash": digest}
    backend.execute([Put(TOKENS_NS, digest, to_json(record), ttl)])
    return token


def _token_records(backend: Backend) -> list[tuple[str, dict[str, Any], Record]]:
    keys = [info.key for info in run_steps(backend.execute, all_keys(TOKENS_NS))]
    found = []
    for start in range(0, len(keys), PAGE_SIZE):
        chunk = keys[start : start + PAGE_SIZE]
        records = backend.execute([Get(TOKENS_NS, key) for key in chunk])
        for key, record in zip(chunk, records, strict=True):
            if record is not None and record.value is not None:
                found.append((key, json.loads(record.value), record))
    return found


def list_tokens(backend: Backend) -> list[dict[str, Any]]:
    """Every live token's name, id (its hash's start), prefixes, rights and expiry."""
    tokens = [
        {
            "id": key[:12],
            "name": data["name"],
            "prefixes": data["prefixes"],
            "read_only": data["read_only"],
            "expires_at": record.expires_at,
        }
        for key, data, record in _token_records(backend)
    ]
    return sorted(tokens, key=lambda t: (t["name"], t["id"]))


def revoke_token(backend: Backend, name_or_id: str) -> int:
    """Delete the tokens with this name or id; return how many."""
    keys = [
        key for key, data, _ in _token_records(backend) if name_or_id in (data["name"], key[:12])
    ]
    backend.execute([Delete(TOKENS_NS, key) for key in keys])
    return len(keys)


class Authenticator:
    """Turns an ``Authorization`` header into a :class:`Scope`, or refuses it.

    Lookups are cached for ``cache_seconds`` so that a hot server does not ask its store about
    the same token on every request.
    """

    def __init__(self, backend: Backend, *, anonymous_ok: bool, cache_seconds: float) -> None:
        self.backend = backend
        self.anonymous_ok = anonymous_ok
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Scope | None]] = {}
        self._any: tuple[float, bool] = (0.0, False)

    async def _any_tokens(self) -> bool:
        checked, found = self._any
        if time.monotonic() - checked < self.cache_seconds:
            return found
        (page,) = await self.backend.aexecute([ListKeys(TOKENS_NS, "", 1, None)])
        found = bool(page.keys)
        self._any = (time.monotonic(), found)
        return found

    async def scope(self, authorization: str | None) -> Scope:
        """The scope of a request, given its ``Authorization`` header."""
        if not authorization:
            if not await self._any_tokens():
                if self.anonymous_ok:
                    return ANONYMOUS
                raise Unauthorized(
                    "this server needs tokens: create one with `botwire token create NAME "
                    "--prefix P` and send it as 'Authorization: Bearer <token>'"
                )
            raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("the Authorization header must be 'Bearer <token>'")
        digest = _hash(token)
        cached = self._cache.get(digest)
        if cached is not None and time.monotonic() - cached[0] < self.cache_seconds:
            found = cached[1]
        else:
            (record,) = await self.backend.aexecute([Get(TOKENS_NS, digest)])
            found = self._verify(record, digest)
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (time.monotonic(), found)
        if found is None:
            raise Unauthorized("unknown, revoked or expired token")
        return found

    @staticmethod
    def _verify(record: Record | None, digest: str) -> Scope | None:
        if record is None or record.value is None:
            return None
        data = json.loads(record.value)
        if not hmac.compare_digest(str(data.get("hash", "")), digest):
            return None
        return Scope(str(data["name"]), tuple(data["prefixes"]), bool(data["read_only"]))
