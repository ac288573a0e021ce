"""Bearer tokens scoped to namespace prefixes, kept in the server's own store.

A token is shown once, when it is created; the store keeps only its SHA-256 (tokens are 256 random
bits, so a fast hash is enough). Tokens live in the namespace ``/tokens``, which no client can name
(namespaces cannot contain ``/``), and expire through the store's own TTL. The first token also
records, in ``/auth``, that the store requires tokens from then on.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botwire import _values
from botwire._values import to_json
from botwire.backends.base import (
    PAGE_SIZE,
    AddChange,
    Backend,
    Changes,
    Delete,
    Get,
    KeyPage,
    ListKeys,
    Op,
    Put,
    Record,
    Search,
    Stats,
    all_keys,
    changes,
    run_steps,
)
from botwire.errors import Forbidden, InvalidRequest, Unauthorized, VersionConflict

if TYPE_CHECKING:
    from botwire.server.jwt import JWTVerifier

TOKENS_NS = "/tokens"
PREFIX = "bw_"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


AUTH_NS = "/auth"
"""Where the store records that it requires tokens (the key ``required``)."""
REQUIRED = "required"
ALL = ("*", "")
"""Prefixes that grant every namespace."""


def prefix_allows(prefix: str, ns: str) -> bool:
    """Whether a token prefix grants namespace ``ns``.

    A prefix matches at a word boundary: ``user-1`` grants ``user-1``, ``user-1:chat``,
    ``user-1.x`` and ``user-1-x``, but not ``user-10`` or ``user-1x``. A prefix that ends in a
    boundary (``user-``, ``team:``) grants every namespace that starts with it. ``*`` (or an
    empty prefix) grants all. A boundary is punctuation, a symbol or a space
    (:func:`is_boundary`); a combining mark or an invisible joiner is not, so ``user-1\u0301``
    and ``user-1\u200d``, which display as ``user-1``, are not granted by ``user-1``.
    """
    if prefix in ALL or ns == prefix:
        return True
    if not ns.startswith(prefix):
        return False
    return is_boundary(prefix[-1]) or is_boundary(ns[len(prefix)])


def is_boundary(char: str) -> bool:
    """Whether ``char`` ends a word: punctuation, a symbol (emoji too) or a space; never a
    letter, digit, combining mark or format character (zero-width joiners)."""
    return unicodedata.category(char)[0] in "PSZ"


@dataclass(frozen=True)
class Scope:
    """What one request may touch: namespaces one of ``prefixes`` grants (:func:`prefix_allows`)."""

    name: str
    prefixes: tuple[str, ...]
    read_only: bool
    admin: bool = False
    """May read the audit (who changed what, across namespaces)."""
    ident: str = ""
    """The token's id (its hash's start, as ``botwire token list`` shows it); ``""`` for
    requests without a token."""

    def allows(self, ns: str) -> bool:
        return any(prefix_allows(prefix, ns) for prefix in self.prefixes)

    def check_namespace(self, ns: str, writes: bool) -> None:
        """Raise :class:`Forbidden` unless this scope may use ``ns`` (and write to it)."""
        if not self.allows(ns):
            raise Forbidden(f"token {self.name!r} may not use namespace {ns!r}")
        if writes and self.read_only:
            raise Forbidden(f"token {self.name!r} is read-only")

    def grants_all_under(self, prefix: str) -> bool:
        """Whether every namespace that starts with ``prefix`` is granted (a search across
        them): ``user:`` is, for a token of ``user:`` or ``*``; ``user-1`` is not, for a token
        of ``user-1``, which does not grant ``user-10``."""
        for granted in self.prefixes:
            if granted in ALL:
                return True
            if prefix.startswith(granted) and (
                is_boundary(granted[-1])
                or (len(prefix) > len(granted) and is_boundary(prefix[len(granted)]))
            ):
                return True
        return False

    def check_admin(self) -> None:
        """Raise :class:`Forbidden` unless this is an admin token."""
        if not self.admin:
            raise Forbidden(
                f"token {self.name!r} is not an admin token: the audit and the tokens need one "
                "(botwire token create NAME --prefix '*' --admin)"
            )

    def check_token_admin(self) -> None:
        """Raise :class:`Forbidden` unless this token may manage tokens: an admin token of
        every namespace that may write (a narrower one could mint itself more rights)."""
        self.check_admin()
        if self.read_only or not self.grants_all_under(""):
            raise Forbidden(
                f"token {self.name!r} may not manage tokens: that needs an admin token of every "
                "namespace that may write (botwire token create NAME --prefix '*' --admin)"
            )

    def check(self, op: Op) -> None:
        """Raise :class:`Forbidden` unless this scope may run ``op``."""
        if isinstance(op, AddChange) or (
            isinstance(op, Changes) and (op.actor, op.from_at, op.to_at) != (None, None, None)
        ):
            self.check_admin()
        if isinstance(op, Stats) and not self.grants_all_under(""):
            raise Forbidden(f"token {self.name!r} may not read the whole store's stats")
        ns = getattr(op, "ns", None)
        if ns is not None:
            self.check_namespace(ns, changes(op))
        elif isinstance(op, (Search, Changes)) and not self.grants_all_under(op.ns_prefix):
            verb = "search" if isinstance(op, Search) else "read the changes of"
            raise Forbidden(
                f"token {self.name!r} may not {verb} every namespace that starts with "
                f"{op.ns_prefix!r}; name a prefix it grants whole (such as 'user:' for a "
                "token of 'user:')"
            )


ANONYMOUS = Scope("anonymous", ("*",), False, admin=True)
"""A request without a token, where the server lets one in (loopback, or allow_anonymous):
whoever reaches such a server may do anything, so the audit is theirs as well."""
OPERATOR = Scope("operator", ("*",), False, admin=True)
"""Whoever runs ``botwire`` on the store itself (``botwire webhook add``)."""


def check_prefixes(prefixes: list[str]) -> list[str]:
    """Token prefixes, validated: each is ``*`` or could start a namespace."""
    if not prefixes:
        raise InvalidRequest("a token needs at least one namespace prefix (--prefix, '*' for all)")
    for prefix in prefixes:
        if prefix not in ALL:
            _values.check_prefix(prefix, "namespace prefix", _values.MAX_NAMESPACE_BYTES)
            if "/" in prefix:
                raise InvalidRequest(f"namespace prefix {prefix!r} cannot contain '/'")
    return prefixes


def create_token(
    backend: Backend,
    name: str,
    prefixes: list[str],
    *,
    read_only: bool = False,
    ttl: float | None = None,
    admin: bool = False,
) -> str:
    """Store a new token and return it (the only time it is seen).

    From then on the store requires tokens, for good: a server on it refuses requests without
    one even when no token is left, until :func:`disable_auth`. ``admin``: the token may read
    the audit (``GET /v1/audit``).

    Raises:
        InvalidRequest: no name, no prefix, a bad prefix, or a ttl that is not a positive
            number of seconds up to 100 years.
    """
    _values.check_key(name, "token name")
    prefixes = check_prefixes(prefixes)
    seconds = _values.check_ttl(ttl)
    token = PREFIX + secrets.token_urlsafe(32)
    digest = _hash(token)
    record = {"name": name, "prefixes": prefixes, "read_only": read_only, "admin": admin,
              "hash": digest}  # fmt: skip
    backend.execute(
        [Put(AUTH_NS, REQUIRED, "true"), Put(TOKENS_NS, digest, to_json(record), seconds)]
    )
    return token


_MARKER = Get(AUTH_NS, REQUIRED)
"""The store's record of whether it requires tokens: ``true`` once a token was created,
``false`` once auth was disabled (or, written by :func:`settle_auth`, while no token exists)."""
_ANY_TOKEN = ListKeys(TOKENS_NS, "", 1)


def _required(marker: Record | None, tokens: KeyPage | None) -> bool:
    """Whether a store requires tokens: its marker says so or, in a store from before the
    marker, it holds a token."""
    if marker is not None and marker.value is not None:
        return marker.value == "true"
    return tokens is not None and bool(tokens.keys)


def tokens_required(backend: Backend) -> bool:
    """Whether the store requires tokens (a token was created, and auth not disabled since)."""
    return _required(*backend.execute([_MARKER, _ANY_TOKEN]))


def settle_auth(backend: Backend) -> bool:
    """Write the store's marker if it has none (a new store, or one from before the marker),
    so that a server answers a request without a token after one read; return whether tokens
    are required."""
    marker, tokens = backend.execute([_MARKER, _ANY_TOKEN])
    required = _required(marker, tokens)
    if marker is None:
        try:
            backend.execute([Put(AUTH_NS, REQUIRED, to_json(required), if_version=0)])
        except VersionConflict:  # a token was created (or auth disabled) meanwhile
            return tokens_required(backend)
    return required


def require_auth(backend: Backend) -> None:
    """Make the store require tokens from now on, whether or not one exists yet."""
    backend.execute([Put(AUTH_NS, REQUIRED, "true")])


def disable_auth(backend: Backend) -> int:
    """Stop requiring tokens on this store; return how many live tokens remain (they still
    work when a request sends one)."""
    (page,) = backend.execute(
        [Put(AUTH_NS, REQUIRED, "false"), ListKeys(TOKENS_NS, "", PAGE_SIZE)]
    )[1:]
    return len(page.keys)


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


def token_ids(backend: Backend) -> set[str]:
    """The ids of the live tokens (their hashes' start, as :attr:`Scope.ident`)."""
    return {key[:12] for key, _, _ in _token_records(backend)}


def token_names(backend: Backend) -> set[str]:
    """The names of the live tokens."""
    return {data["name"] for _, data, _ in _token_records(backend)}


def list_tokens(backend: Backend) -> list[dict[str, Any]]:
    """Every live token's name, id (its hash's start), prefixes, rights and expiry."""
    tokens = [
        {
            "id": key[:12],
            "name": data["name"],
            "prefixes": data["prefixes"],
            "read_only": data["read_only"],
            "admin": bool(data.get("admin", False)),
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


def looks_like_jwt(token: str) -> bool:
    """Whether a bearer token has a JWT's shape (three dot-separated parts), not a ``bw_`` one."""
    return token.count(".") == 2 and not token.startswith(PREFIX)


class Authenticator:
    """Turns an ``Authorization`` header into a :class:`Scope`, or refuses it.

    Token lookups are cached for ``cache_seconds`` so that a hot server does not ask its store
    about the same token on every request. Whether the store requires tokens is cached only
    once it does: a request without a token always asks, so the first token created shuts
    anonymous access at once, on every server of the store.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        anonymous_ok: bool,
        cache_seconds: float,
        jwt: JWTVerifier | None = None,
    ) -> None:
        self.backend = backend
        self.anonymous_ok = anonymous_ok
        self.cache_seconds = cache_seconds
        self.jwt = jwt
        """Accepts your identity provider's JWTs beside botwire's tokens (and requires a token
        of one kind or the other)."""
        self._cache: dict[str, tuple[float, Scope | None]] = {}
        self._required_seen = -1e9

    def forget(self) -> None:
        """Drop the cached tokens (one was revoked here: it stops working at once)."""
        self._cache.clear()

    async def required(self) -> bool:
        """Whether the store requires tokens (see :func:`tokens_required`); always, where JWTs
        are accepted."""
        if self.jwt is not None or time.monotonic() - self._required_seen < self.cache_seconds:
            return True
        (marker,) = await self.backend.aexecute([_MARKER])  # settle_auth wrote it
        tokens = None if marker is not None else (await self.backend.aexecute([_ANY_TOKEN]))[0]
        if not _required(marker, tokens):
            return False
        self._required_seen = time.monotonic()
        return True

    async def scope(self, authorization: str | None) -> Scope:
        """The scope of a request, given its ``Authorization`` header."""
        if not authorization:
            if not await self.required():
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
        elif self.jwt is not None and looks_like_jwt(token):
            found, expires = await asyncio.to_thread(self.jwt.scope, token)
            # reused until it expires, at the latest
            seen = time.monotonic() - max(0.0, self.cache_seconds - (expires - time.time()))
            self._remember(digest, seen, found)
        else:
            (record,) = await self.backend.aexecute([Get(TOKENS_NS, digest)])
            found = self._verify(record, digest)
            self._remember(digest, time.monotonic(), found)
        if found is None:
            raise Unauthorized("unknown, revoked or expired token")
        return found

    def _remember(self, digest: str, seen: float, found: Scope | None) -> None:
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (seen, found)

    @staticmethod
    def _verify(record: Record | None, digest: str) -> Scope | None:
        if record is None or record.value is None:
            return None
        data = json.loads(record.value)
        if not hmac.compare_digest(str(data.get("hash", "")), digest):
            return None
        return Scope(
            str(data["name"]), tuple(data["prefixes"]), bool(data["read_only"]),
            bool(data.get("admin", False)), digest[:12],
        )  # fmt: skip
