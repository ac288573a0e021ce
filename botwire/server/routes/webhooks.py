"""``/v1/webhooks``: subscribe a URL to the changes of a namespace prefix (see
:mod:`botwire.server.webhooks`)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict

from botwire.errors import Forbidden, InvalidRequest
from botwire.server.context import _state
from botwire.server.schemas import ERRORS
from botwire.server.webhooks import add_webhook, list_webhooks, owns, remove_webhook

webhooks = APIRouter(tags=["webhooks"], responses=ERRORS)


class WebhookIn(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    url: str
    ns_prefix: str = ""
    secret: str | None = None


def _shown(subscription: dict[str, Any]) -> dict[str, Any]:
    """A subscription as listed: never its secret."""
    return {key: subscription[key] for key in ("id", "url", "ns_prefix", "creator", "at")}


@webhooks.post("/v1/webhooks", status_code=201)
async def create(request: Request, body: WebhookIn) -> dict[str, Any]:
    """Subscribe ``url`` to the changes of the namespaces that start with ``ns_prefix`` (which
    the token must grant whole), from now on. The answer holds the ``secret`` the deliveries
    are signed with (made when none is given), shown this once."""
    context, scope = _state(request)
    if scope.read_only:
        raise Forbidden(f"token {scope.name!r} is read-only")
    if scope.ident.startswith("jwt:"):
        raise Forbidden(
            "webhooks need one of botwire's own tokens: a JWT's rights cannot be checked when "
            "its deliveries go out"
        )
    made = await asyncio.to_thread(
        add_webhook, context.backend, body.url, body.ns_prefix, body.secret, scope
    )
    return {"id": made["id"], "url": made["url"], "ns_prefix": made["ns_prefix"],
            "secret": made["secret"]}  # fmt: skip


@webhooks.get("/v1/webhooks")
async def listing(request: Request) -> dict[str, Any]:
    """The token's subscriptions (made by this very token, not another of its name; an admin
    token's: all), with the position each receiver acknowledged; never their secrets."""
    context, scope = _state(request)
    found = await asyncio.to_thread(list_webhooks, context.backend)
    return {"webhooks": [_shown(s) for s in found if owns(scope, s)]}


@webhooks.delete("/v1/webhooks/{ident}")
async def remove(request: Request, ident: str) -> dict[str, Any]:
    """Remove one of the token's subscriptions (an admin token: any)."""
    context, scope = _state(request)
    found = {s["id"]: s for s in await asyncio.to_thread(list_webhooks, context.backend)}
    if ident not in found or not owns(scope, found[ident]):
        raise InvalidRequest(f"no webhook {ident!r} of token {scope.name!r}")
    await asyncio.to_thread(remove_webhook, context.backend, ident)
    return {"id": ident, "removed": True}
