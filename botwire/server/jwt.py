"""Your identity provider's tokens: JWT bearer tokens verified against a JWKS (a URL or a file),
accepted beside botwire's own tokens.

A JWT is accepted when it is signed with RS256 or ES256 by a key of the JWKS (its ``kid``), its
``iss`` is the configured issuer, its ``aud`` holds the configured audience, and it has not
expired (``exp``, required; ``nbf`` honoured; 30 s of leeway). ``alg: none``, HMAC algorithms and
any other algorithm are refused. The claims map to a :class:`~botwire.server.auth.Scope`:

- namespace prefixes: the claim ``botwire_prefixes`` (or the one ``jwt_prefixes_claim`` names),
  a list of prefixes or one space-separated string, matched at word boundaries as botwire's own
  token prefixes are (``user-1`` grants ``user-1`` and ``user-1:chat``, not ``user-10``);
- writes: the ``scope`` (or ``scp``) claim holds ``botwire:write``; without it the token reads
  only;
- admin: ``scope`` holds ``botwire:admin`` (the audit of the prefixes it grants);
- the name: ``jwt:`` and the ``sub`` claim (the change log's actor is ``token:jwt:<sub>``).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import jwt

from botwire.errors import Forbidden, InvalidRequest, Unauthorized
from botwire.server.auth import Scope, check_prefixes

ALGORITHMS = {"RS256": "RSA", "ES256": "EC"}
"""The algorithms accepted, each with the type of key it must be verified with."""
LEEWAY_SECONDS = 30
REFETCH_SECONDS = 60.0
"""A JWKS from a URL is fetched again for an unknown ``kid`` (a rotated key) at most this often."""
REFRESH_SECONDS = 300.0
"""A JWKS is read again this often anyway, so that a key the provider removed stops working."""


class JWTVerifier:
    """Checks JWTs against a JWKS and maps their claims to a :class:`Scope`.

    Args:
        jwks: an ``https://`` or ``http://`` URL, or the path of a JSON file.
        issuer: the ``iss`` every token must carry.
        audience: the audience every token must be for.
        prefixes_claim: the claim that lists the namespace prefixes.
    """

    def __init__(self, jwks: str, issuer: str, audience: str, prefixes_claim: str) -> None:
        if not issuer or not audience:
            raise InvalidRequest(
                "a JWKS needs the issuer and the audience its tokens must carry "
                "(--jwt-issuer, --jwt-audience)"
            )
        if jwks.startswith("http://") and not _loopback(jwks):
            raise InvalidRequest(
                "a JWKS URL must be https:// (anyone on the way could hand over keys by http://)"
            )
        self.source = jwks
        self.issuer = issuer
        self.audience = audience
        self.prefixes_claim = prefixes_claim
        self._lock = threading.Lock()
        self._fetched = 0.0
        self._keys = self._load()

    @property
    def remote(self) -> bool:
        return self.source.startswith(("https://", "http://"))

    def _load(self) -> dict[str, Any]:
        """The JWKS's signing keys by ``kid``."""
        try:
            if self.remote:
                import httpx

                data = httpx.get(self.source, timeout=10).raise_for_status().json()
            else:
                data = json.loads(Path(self.source).read_text(encoding="utf-8"))
            keys = jwt.PyJWKSet.from_dict(data).keys
        except Exception as exc:  # the operator's configuration: say what is wrong with it
            raise InvalidRequest(f"cannot read the JWKS at {self.source}: {exc}") from exc
        self._fetched = time.monotonic()
        return {key.key_id: key for key in keys if key.key_id}

    def _key(self, kid: str) -> Any:
        age = time.monotonic() - self._fetched
        rotated = kid not in self._keys and self.remote and age > REFETCH_SECONDS
        if age > REFRESH_SECONDS or rotated:
            self._refresh()
        key = self._keys.get(kid)
        if key is None:
            raise Unauthorized("the token's signing key (kid) is not in the server's JWKS")
        return key

    def _refresh(self) -> None:
        """Read the set again (a rotated or removed key); one reader at a time, and requests
        that find a read under way go on with the keys at hand rather than wait for it."""
        if not self._lock.acquire(blocking=False):
            return
        try:
            self._keys = self._load()
        except InvalidRequest:
            self._fetched = time.monotonic()  # keep the keys at hand; try again later
        finally:
            self._lock.release()

    def scope(self, token: str) -> tuple[Scope, float]:
        """The token's scope and its expiry (a Unix time), or :class:`Unauthorized` (a token
        that does not verify) or :class:`Forbidden` (one that grants no namespace)."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("the bearer token is not a valid JWT") from None
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise Unauthorized(f"JWTs must be signed with {' or '.join(ALGORITHMS)}")
        key = self._key(str(header.get("kid", "")))
        if key.key_type != ALGORITHMS[algorithm]:
            raise Unauthorized(f"the token's key (kid) is not a key for {algorithm}")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the JWT has expired") from None
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"the JWT was refused: {exc}") from None
        except (TypeError, ValueError):  # a key the token's header does not fit
            raise Unauthorized("the JWT was refused: its key does not verify it") from None
        return self._map(claims), float(claims["exp"])

    def _map(self, claims: dict[str, Any]) -> Scope:
        raw = claims.get(self.prefixes_claim)
        prefixes = raw.split() if isinstance(raw, str) else raw
        name = f"jwt:{claims['sub']}"
        if not isinstance(prefixes, list) or not prefixes:
            raise Forbidden(f"token {name!r} grants no namespace: it has no {self.prefixes_claim}")
        if not all(isinstance(p, str) and p for p in prefixes):
            raise Forbidden(f"token {name!r}: {self.prefixes_claim} must hold non-empty strings")
        try:
            check_prefixes(prefixes)
        except InvalidRequest as exc:
            raise Forbidden(f"token {name!r}: {exc}") from None
        scopes = claims.get("scope", claims.get("scp", ""))
        granted = set(scopes.split() if isinstance(scopes, str) else scopes or [])
        return Scope(
            name,
            tuple(prefixes),
            read_only="botwire:write" not in granted,
            admin="botwire:admin" in granted,
            ident=name,
        )


def _loopback(url: str) -> bool:
    from urllib.parse import urlsplit

    return (urlsplit(url).hostname or "") in ("127.0.0.1", "localhost", "::1")
