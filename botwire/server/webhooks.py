"""Webhooks: ``botwire serve`` POSTs the changes a subscription selects to its URL, signed.

Subscriptions live in the store like tokens, in the namespace ``/webhooks`` (which no client can
name): ``sub:{id}`` holds the URL, the namespace prefix, the secret and the prefixes its
creator's token grants (a webhook never sees more than its creator may read); ``at:{id}`` holds
the position up to which its receiver acknowledged changes.

One delivery worker runs per store, however many servers share it: each server's worker asks
for a lease (``lease``, a key with a ttl, taken with a conditional write, renewed while it
works); the one holding it delivers. A delivery is a batch of up to :data:`BATCH` changes, in
commit order, as JSON; the receiver acknowledges it with any 2xx answer, and only then does the
position move on. A receiver that fails (an error, a non-2xx answer, no answer within 10 s) gets
the same changes again, after 1 s, then 2, 4, ... up to 5 minutes. A server stopped or killed
mid-delivery leaves the position where it was, and the next worker starts from there: at least
once, in order. A webhook whose token was revoked (or expired) delivers nothing more.

Each delivery carries ``Botwire-Signature: t=<unix time>,v1=<hex>``, the HMAC-SHA256 with the
subscription's secret of ``f"{t}.{body}"`` (as Stripe signs its webhooks): a receiver checks it
with :func:`verify` and refuses stale times, so a captured delivery cannot be replayed later.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import time
import uuid
from typing import Any

import httpx

from botwire import _values
from botwire._values import to_json
from botwire.backends.base import Backend, Changes, Delete, Get, Put, all_keys, run_steps
from botwire.errors import InvalidRequest, VersionConflict
from botwire.server.auth import Scope, prefix_allows, token_ids

log = logging.getLogger("botwire.server")

WEBHOOKS_NS = "/webhooks"
LEASE = "lease"
LEASE_SECONDS = 15.0
IDLE_SECONDS = 1.0
"""How often a worker without subscriptions, or without the lease, looks again."""
BATCH = 100
"""Most changes one delivery carries."""
TIMEOUT_SECONDS = 10.0
MAX_BACKOFF_SECONDS = 300.0
TOLERANCE_SECONDS = 300
"""How old a signature's time a receiver should accept (:func:`verify`)."""


def sign(secret: str, body: bytes, at: int | None = None) -> str:
    """The ``Botwire-Signature`` header of a delivery of ``body`` at unix time ``at``."""
    stamp = int(time.time()) if at is None else at
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"


def verify(secret: str, body: bytes, header: str, tolerance: int = TOLERANCE_SECONDS) -> bool:
    """Whether ``header`` signs ``body`` with ``secret``, at a time within ``tolerance``
    seconds of now: what a receiver checks before it trusts a delivery."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    stamp = fields.get("t", "")
    if not (stamp.isascii() and stamp.isdigit()) or abs(time.time() - int(stamp)) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, body, int(stamp)), f"t={stamp},v1={fields.get('v1')}")


def add_webhook(
    backend: Backend, url: str, ns_prefix: str, secret: str | None, scope: Scope
) -> dict[str, Any]:
    """Subscribe ``url`` to the changes of the namespaces that start with ``ns_prefix`` (which
    ``scope``, the creator's, must grant whole), from now on; return the subscription, with its
    secret (made when none is given)."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise InvalidRequest(f"a webhook URL starts with http:// or https://, not {url!r}")
    try:
        httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise InvalidRequest(f"the webhook URL {url!r} is not valid: {exc}") from None
    ns_prefix = _values.check_prefix(ns_prefix, "namespace prefix", _values.MAX_NAMESPACE_BYTES)
    if not scope.grants_all_under(ns_prefix):
        raise InvalidRequest(
            f"token {scope.name!r} does not grant every namespace that starts with "
            f"{ns_prefix!r}: a webhook may only follow what its creator may read"
        )
    if secret is None:
        secret = secrets.token_urlsafe(32)
    elif not isinstance(secret, str) or len(secret) < 16:
        raise InvalidRequest("a webhook secret has at least 16 characters")
    ident = uuid.uuid4().hex[:12]
    (start,) = backend.execute([Changes(None, -1)])
    record = {"id": ident, "url": url, "ns_prefix": ns_prefix, "secret": secret,
              "prefixes": list(scope.prefixes), "creator": scope.name,
              "creator_id": scope.ident}  # fmt: skip
    backend.execute(
        [
            Put(WEBHOOKS_NS, f"sub:{ident}", to_json(record)),
            Put(WEBHOOKS_NS, f"at:{ident}", str(start.cursor)),
        ]
    )
    return record


def list_webhooks(backend: Backend) -> list[dict[str, Any]]:
    """Every subscription, with the position its receiver acknowledged (``at``)."""
    keys = [info.key for info in run_steps(backend.execute, all_keys(WEBHOOKS_NS, "sub:"))]
    found = []
    for key in keys:
        record, at = backend.execute(
            [Get(WEBHOOKS_NS, key), Get(WEBHOOKS_NS, "at:" + key[len("sub:") :])]
        )
        if record is not None and record.value is not None:
            subscription = json.loads(record.value)
            subscription["at"] = int(at.value) if at is not None and at.value else 0
            subscription["at_version"] = at.version if at is not None else 0
            found.append(subscription)
    return found


def remove_webhook(backend: Backend, ident: str) -> bool:
    """Remove a subscription; ``True`` when there was one."""
    _values.check_key(ident, "webhook id")
    gone, _ = backend.execute(
        [Delete(WEBHOOKS_NS, f"sub:{ident}"), Delete(WEBHOOKS_NS, f"at:{ident}")]
    )
    return bool(gone)


_RELEASED = to_json({"holder": None})
"""The lease's value once its worker gave it up: free for any worker."""


class Deliveries:
    """The delivery worker of one server process (see the module's docstring)."""

    def __init__(self, backend: Backend, hub: Any) -> None:
        self.backend = backend
        self.hub = hub
        self.holder = uuid.uuid4().hex
        self.retry_at: dict[str, float] = {}
        self.failures: dict[str, int] = {}
        self.revoked: set[str] = set()
        """Creators whose token was found revoked or expired (for good: ids are not reused)."""

    async def run(self) -> None:
        """Deliver, forever: while the store has subscriptions and this worker holds the
        lease, on every change; else look again every second."""
        async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS) as client:
            while True:
                try:
                    subscriptions = await asyncio.to_thread(list_webhooks, self.backend)
                    if not subscriptions or not await self._lease():
                        await asyncio.sleep(IDLE_SECONDS)
                        continue
                    mark = self.hub.mark()
                    busy = await self._deliver_all(client, subscriptions)
                    if not busy:
                        await self.hub.wait(mark, min(IDLE_SECONDS, self._next_retry()))
                except Exception:  # a store outage: try again shortly, never stop
                    log.exception("webhook deliveries failed; retrying")
                    await asyncio.sleep(IDLE_SECONDS)

    def _next_retry(self) -> float:
        now = time.monotonic()
        waits = [at - now for at in self.retry_at.values()]
        return max(0.05, min(waits, default=LEASE_SECONDS))

    async def _lease(self) -> bool:
        """Take or renew the store's delivery lease; whether this worker holds it."""
        (held,) = await self.backend.aexecute([Get(WEBHOOKS_NS, LEASE)])
        value = to_json({"holder": self.holder})
        if held is not None and held.value not in (value, _RELEASED):
            return False  # another server's worker delivers
        try:
            await self.backend.aexecute(
                [Put(WEBHOOKS_NS, LEASE, value, LEASE_SECONDS, held.version if held else 0)]
            )
        except VersionConflict:
            return False
        return True

    async def release(self) -> None:
        """Give the lease up if this worker holds it (its server stops): the next worker, of
        the same server started again or of another one, delivers at once rather than when
        the lease would have run out."""
        (held,) = await self.backend.aexecute([Get(WEBHOOKS_NS, LEASE)])
        if held is not None and held.value == to_json({"holder": self.holder}):
            with contextlib.suppress(VersionConflict):  # another worker took it meanwhile
                await self.backend.aexecute(
                    [Put(WEBHOOKS_NS, LEASE, _RELEASED, LEASE_SECONDS, held.version)]
                )

    async def _deliver_all(
        self, client: httpx.AsyncClient, subscriptions: list[dict[str, Any]]
    ) -> bool:
        """One delivery to each subscription that has changes waiting; whether any had more."""
        busy = False
        for subscription in subscriptions:
            ident = subscription["id"]
            creator = subscription.get("creator_id")
            if self.retry_at.get(ident, 0) > time.monotonic() or creator in self.revoked:
                continue
            if not await self._lease():  # another worker took over: it delivers from here
                return False
            op = Changes(None, subscription["at"], "", BATCH, subscription["ns_prefix"], True)
            (page,) = await self.backend.aexecute([op])
            # The tokens are read after the changes: a change that committed after its
            # creator's token was revoked (or expired) finds the token gone, and stays unsent.
            if (
                creator
                and page.changes
                and creator not in await asyncio.to_thread(token_ids, self.backend)
            ):
                self.revoked.add(creator)
                continue
            changes = [c for c in page.changes if _readable(subscription, c.ns)]
            if changes and not await self._post(client, subscription, changes):
                continue
            if page.cursor != subscription["at"]:
                moved = Put(WEBHOOKS_NS, f"at:{ident}", str(page.cursor), None,
                            subscription["at_version"])  # fmt: skip
                try:  # only from where this worker read: a position never moves back
                    await self.backend.aexecute([moved])
                except VersionConflict:
                    return False
            busy = busy or len(page.changes) == BATCH
        return busy

    async def _post(
        self, client: httpx.AsyncClient, subscription: dict[str, Any], changes: list[Any]
    ) -> bool:
        from botwire.server.routes.changes import change_json

        ident = subscription["id"]
        body = (
            f'{{"webhook":{to_json(ident)},"changes":['
            + ",".join(change_json(change) for change in changes)
            + "]}"
        ).encode()
        headers = {
            "content-type": "application/json",
            "botwire-signature": sign(subscription["secret"], body),
            "botwire-webhook-id": ident,
            "botwire-delivery": f"{ident}-{changes[0].seq}-{changes[-1].seq}",
        }
        try:
            answer = await client.post(subscription["url"], content=body, headers=headers)
            delivered = 200 <= answer.status_code < 300
        except httpx.HTTPError:
            delivered = False
        if delivered:
            self.failures.pop(ident, None)
            self.retry_at.pop(ident, None)
            return True
        failures = self.failures[ident] = self.failures.get(ident, 0) + 1
        self.retry_at[ident] = time.monotonic() + min(2.0 ** (failures - 1), MAX_BACKOFF_SECONDS)
        return False


def owns(scope: Scope, subscription: dict[str, Any]) -> bool:
    """Whether ``scope``'s token made the subscription (an admin token owns them all)."""
    return scope.admin or (bool(scope.ident) and subscription.get("creator_id") == scope.ident)


def _readable(subscription: dict[str, Any], ns: str) -> bool:
    """Whether the subscription's creator may read namespace ``ns``."""
    return any(prefix_allows(prefix, ns) for prefix in subscription["prefixes"])
