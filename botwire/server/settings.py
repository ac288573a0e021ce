"""The server's settings: one place, read from ``BOTWIRE_*`` variables and overridden by flags."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botwire._values import DEFAULT_MAX_VALUE_BYTES
from botwire.errors import InvalidRequest

if TYPE_CHECKING:
    from botwire.server.jwt import JWTVerifier


@dataclass(frozen=True)
class Settings:
    """How ``botwire serve`` runs. Every field has a ``BOTWIRE_<FIELD>`` variable."""

    db: str | None = None
    """The store: ``sqlite:///path`` or ``postgresql://...``; default: the embedded store."""
    host: str = "127.0.0.1"
    port: int = 8765
    workers: int = 1
    quota_writes_per_day: int | None = None
    """Writes one namespace may make per UTC day; off when ``None``."""
    quota_bytes: int | None = None
    """Bytes of values one namespace may hold; off when ``None``."""
    allow_anonymous: bool = False
    require_tokens: bool = False
    """Require tokens from the start, before any exists (a container: the first token is made
    with ``botwire token create`` inside it)."""
    """Serve requests without a token on a non-loopback address when no token exists."""
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES
    max_body_bytes: int = 8 * 1024 * 1024
    """Largest request body; larger ones get 413 before they are read whole."""
    max_batch_ops: int = 10_000
    max_response_bytes: int = 4 * 1024 * 1024
    """Most bytes of values one batch answers with (a batch may always read one value)."""
    max_header_bytes: int = 16 * 1024
    """Largest total size of a request's headers; more gets 431."""
    max_headers: int = 100
    """Most headers a request may carry; more gets 431."""
    max_request_seconds: float = 10.0
    """Longest a request's searches may run; one that runs longer is stopped with 503 and
    ``Retry-After`` (:class:`~botwire.errors.Overloaded`)."""
    max_batch_searches: int = 10
    """Most searches one batch may hold."""
    shutdown_grace_seconds: int = 30
    """On SIGTERM, how long the server finishes the requests it has begun (and those already
    sent to it) before it exits."""
    metrics_token: str | None = None
    """A bearer token that may read ``/metrics`` (besides any valid token) once tokens are on."""
    token_cache_seconds: float = 2.0
    """How long a token lookup is reused; a revoked token stops working within this time."""
    access_log: bool = False
    log_format: str = "text"
    """``text``, or ``json``: one JSON object per line, with the request id (never a token or a
    value)."""
    store_wait_seconds: float = 60.0
    """At start, how long to wait for the store to answer (a database starting beside the
    server) before giving up."""
    jwks: str | None = None
    """Accept JWTs signed by a key of this JWKS (an ``https://`` URL or a file) beside
    botwire's own tokens; see :mod:`botwire.server.jwt` for how claims map to rights."""
    jwt_issuer: str | None = None
    """The ``iss`` a JWT must carry (required with ``jwks``)."""
    jwt_audience: str | None = None
    """The audience a JWT must be for (required with ``jwks``)."""
    jwt_prefixes_claim: str = "botwire_prefixes"
    """The claim that lists a JWT's namespace prefixes."""
    embedder: str | None = None
    """Recall by meaning for clients: the embedder (``"module:function"``, such as
    ``botwire.embedders:wordllama``) that makes the vectors of every value written through the
    server and of every ``mode="meaning"`` search's query (see :mod:`botwire.embedders`)."""
    allowed_hosts: str | None = None
    """Host names besides the loopback ones that a loopback server answers MCP requests for
    (comma-separated): the name a TLS proxy on this machine forwards, such as
    ``memory.example.com``. Any other ``Host`` gets 421 (DNS rebinding protection)."""

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Settings from ``BOTWIRE_*`` variables, then ``overrides`` that are not ``None``."""
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            raw = os.environ.get(f"BOTWIRE_{field.name.upper()}")
            if raw is not None and raw != "":
                try:
                    values[field.name] = _parse(field.type, raw)
                except ValueError:
                    raise InvalidRequest(
                        f"BOTWIRE_{field.name.upper()}={raw!r} is not {_KINDS[str(field.type)[:3]]}"
                    ) from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        """The variables that make :meth:`from_env` return these settings (for worker processes)."""
        env = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is not None:
                env[f"BOTWIRE_{field.name.upper()}"] = (
                    str(value).lower() if isinstance(value, bool) else str(value)
                )
        return env

    def check(self) -> None:
        """Raise :class:`~botwire.errors.InvalidRequest` for settings a server cannot run with."""
        if not 1 <= self.port <= 65535:
            raise InvalidRequest(f"the port must be 1 to 65535, not {self.port}")
        if self.workers < 1:
            raise InvalidRequest(f"workers must be at least 1, not {self.workers}")
        if self.log_format not in ("text", "json"):
            raise InvalidRequest(f"the log format is text or json, not {self.log_format!r}")

    def jwt_verifier(self) -> JWTVerifier | None:
        """The JWT checker these settings ask for (``None`` without ``jwks``)."""
        if not self.jwks:
            return None
        from botwire.server.jwt import JWTVerifier

        return JWTVerifier(
            self.jwks, self.jwt_issuer or "", self.jwt_audience or "", self.jwt_prefixes_claim
        )

    def host_names(self) -> list[str]:
        """The names in :attr:`allowed_hosts`."""
        return [name.strip() for name in (self.allowed_hosts or "").split(",") if name.strip()]

    @property
    def loopback(self) -> bool:
        """Whether the server listens on this machine only."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


_KINDS = {"int": "a whole number", "flo": "a number", "boo": "a yes or no", "str": "text"}


def _parse(kind: Any, raw: str) -> Any:
    kind = str(kind)
    if kind.startswith("bool"):
        return raw.lower() in ("1", "true", "yes", "on")
    if kind.startswith("int"):
        return int(raw)
    if kind.startswith("float"):
        return float(raw)
    return raw
