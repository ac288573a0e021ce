"""``GET /v1/whoami`` (what the request's token may do) and ``/v1/tokens`` (an admin token of
every namespace, not read-only, lists, creates and revokes tokens, as ``botwire token`` does on
the store itself)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from botwire import __version__, _values
from botwire._values import format_time
from botwire.errors import InvalidRequest
from botwire.server.auth import ANONYMOUS, create_token, list_tokens, revoke_token
from botwire.server.context import _state
from botwire.server.schemas import ERRORS

tokens = APIRouter(tags=["tokens"], responses=ERRORS)


@tokens.get("/v1/whoami")
async def whoami(request: Request) -> dict[str, Any]:
    """The request's token: its name, the namespace prefixes it grants, whether it is read-only
    or an admin token; and the server's limits (the largest value, the quotas)."""
    context, scope = _state(request)
    settings = context.settings
    return {
        "name": scope.name,
        "id": scope.ident or None,
        "prefixes": list(scope.prefixes),
        "read_only": scope.read_only,
        "admin": scope.admin,
        "manages_tokens": scope.admin and not scope.read_only and scope.grants_all_under(""),
        "anonymous": scope is ANONYMOUS,
        "version": __version__,
        "max_value_bytes": settings.max_value_bytes,
        "quotas": {"writes_per_day": settings.quota_writes_per_day, "bytes": settings.quota_bytes},
    }


class TokenIn(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    name: str
    prefixes: Annotated[list[str], Field(min_length=1, max_length=100)]
    read_only: bool = False
    admin: bool = False
    ttl: float | None = Field(default=None, gt=0, le=_values.MAX_TTL)


@tokens.get("/v1/tokens")
async def listing(request: Request) -> dict[str, Any]:
    """Every live token (for an admin token of every namespace that may write): name, id,
    prefixes, rights, expiry; never the token itself, which the store does not keep."""
    context, scope = _state(request)
    scope.check_token_admin()
    found = await asyncio.to_thread(list_tokens, context.backend)
    for token in found:
        token["expires_at"] = format_time(token["expires_at"])
    return {"tokens": found}


@tokens.post("/v1/tokens", status_code=201)
async def create(request: Request, body: TokenIn) -> dict[str, Any]:
    """Create a token (for an admin token of every namespace that may write). The answer holds
    the token, shown this once."""
    context, scope = _state(request)
    scope.check_token_admin()
    token = await asyncio.to_thread(
        create_token, context.backend, body.name, body.prefixes,
        read_only=body.read_only, ttl=body.ttl, admin=body.admin,
    )  # fmt: skip
    return {"name": body.name, "token": token}


@tokens.delete("/v1/tokens/{name_or_id}")
async def revoke(request: Request, name_or_id: str) -> dict[str, Any]:
    """Revoke the tokens with this name or id (as creating one needs). A server stops accepting
    them within its token cache time (``token_cache_seconds``)."""
    context, scope = _state(request)
    scope.check_token_admin()
    revoked = await asyncio.to_thread(revoke_token, context.backend, name_or_id)
    context.auth.forget()
    if not revoked:
        raise InvalidRequest(f"no token is named {name_or_id!r} or has that id")
    return {"revoked": revoked}
