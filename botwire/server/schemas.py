"""The batch route's operations as pydantic models: they validate what a client sends and
describe it in the OpenAPI schema.

Each model checks the shape and types of one operation (strictly: ``"1"`` is not an integer);
:meth:`OpIn.to_op` then applies the rules every value, key and ttl obeys in the library
(:mod:`botwire._values`), so the server never stores what ``Memory`` would refuse.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from botwire import _values
from botwire._plans import MAX_CHANGES
from botwire._values import MAX_INT64, MAX_TIME_US
from botwire.backends.base import (
    AddChange,
    Append,
    Changes,
    Clear,
    Delete,
    Expire,
    Get,
    History,
    Incr,
    ListKeys,
    ListNamespaces,
    Op,
    Put,
    Restore,
    Search,
    Slice,
    Stats,
)
from botwire.backends.common import update_cursor
from botwire.backends.search import MAX_CONTEXT, search_op
from botwire.backends.search import MAX_LIMIT as MAX_SEARCH_LIMIT
from botwire.backends.wire import MAX_PAGE
from botwire.errors import BotWireError, InvalidRequest, ValueTooLarge

Version = Annotated[int, Field(ge=0, le=MAX_INT64)]
Time = Annotated[int, Field(ge=0, le=MAX_TIME_US, description="Microseconds since the epoch.")]
Seconds = Annotated[float, Field(description="Seconds (a positive number).")]
JsonText = Annotated[str, Field(description="A value's JSON text, e.g. '{\"a\":1}' or '\"hi\"'.")]


class OpIn(BaseModel):
    """One operation of a batch."""

    model_config = ConfigDict(strict=True, extra="ignore")

    def to_op(self, max_value_bytes: int) -> Op:
        """The operation to run, after the library's own rules for keys, values and ttls."""
        raise NotImplementedError


class KeyOpIn(OpIn):
    ns: str
    key: str


class GetIn(KeyOpIn):
    """Read a key (``value: false``: everything but the value; ``meta: false``: the value
    alone, version and timestamps may be 0)."""

    op: Literal["get"]
    value: bool = True
    refresh_ttl: bool = False
    meta: bool = True

    def to_op(self, max_value_bytes: int) -> Op:
        return Get(_ns(self.ns), _key(self.key), self.value, self.refresh_ttl, self.meta)


class PutIn(KeyOpIn):
    """Write a value; ``if_version`` makes it conditional (``0``: only if absent)."""

    op: Literal["put"]
    value: JsonText
    ttl: Seconds | None = None
    if_version: Version | None = None
    keep_ttl: bool = False
    searchable: bool = True

    def to_op(self, max_value_bytes: int) -> Op:
        return Put(
            _ns(self.ns), _key(self.key), _values.canonical_json(self.value, max_value_bytes),
            _values.check_ttl(self.ttl), self.if_version, self.keep_ttl,
            searchable=self.searchable,
        )  # fmt: skip


class DeleteIn(KeyOpIn):
    """Delete a key."""

    op: Literal["delete"]

    def to_op(self, max_value_bytes: int) -> Op:
        return Delete(_ns(self.ns), _key(self.key))


class AppendIn(KeyOpIn):
    """Append items to a list, keeping the newest ``max_len``."""

    op: Literal["append"]
    values: Annotated[list[JsonText], Field(min_length=1)]
    max_len: Annotated[int, Field(ge=1, le=MAX_INT64)] | None = None
    ttl: Seconds | None = None
    keep_first: JsonText | None = None
    searchable: bool = True

    def to_op(self, max_value_bytes: int) -> Op:
        items = tuple(_values.canonical_json(v, max_value_bytes) for v in self.values)
        keep_first = None
        if self.keep_first is not None:
            fields = _values.decode_value(_values.canonical_json(self.keep_first))
            keep_first = _values.check_fields(fields, "keep_first")
        ttl = _values.check_ttl(self.ttl)
        return Append(_ns(self.ns), _key(self.key), items, self.max_len, ttl, keep_first,
                      searchable=self.searchable)  # fmt: skip


class IncrIn(KeyOpIn):
    """Add ``by`` to an integer."""

    op: Literal["incr"]
    by: Annotated[int, Field(ge=-MAX_INT64, le=MAX_INT64)] = 1

    def to_op(self, max_value_bytes: int) -> Op:
        return Incr(_ns(self.ns), _key(self.key), self.by)


class ExpireIn(KeyOpIn):
    """Set (``ttl`` seconds; zero or less: now) or remove (``null``) a key's expiry."""

    op: Literal["expire"]
    ttl: float | None

    def to_op(self, max_value_bytes: int) -> Op:
        return Expire(_ns(self.ns), _key(self.key), _values.check_ttl(self.ttl, allow_now=True))


class ListKeysIn(OpIn):
    """One page of keys after the cursor ``after`` (``reverse``: from the last key down), with
    their values when ``values``."""

    op: Literal["list_keys"]
    ns: str
    prefix: str = ""
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE)] = MAX_PAGE
    after: str | None = None
    reverse: bool = False
    values: bool = False
    by_update: bool = False

    def to_op(self, max_value_bytes: int) -> Op:
        after = None if self.after is None else check_cursor(self.after, self.by_update)
        prefix = _values.check_prefix(self.prefix)
        return ListKeys(_ns(self.ns), prefix, self.limit, after, self.reverse, self.values,
                        self.by_update)  # fmt: skip


def check_cursor(after: str, by_update: bool) -> str:
    """A listing's cursor, checked: a key, or in a listing by last change what
    :func:`~botwire.backends.common.page_cursor` makes."""
    if by_update:
        update_cursor(after)
        return _values.check_key(after, "cursor", _values.MAX_KEY_BYTES + 20)
    return _values.check_key(after, "cursor")


class ClearIn(OpIn):
    """Delete every key of a namespace."""

    op: Literal["clear"]
    ns: str

    def to_op(self, max_value_bytes: int) -> Op:
        return Clear(_ns(self.ns))


class ListNamespacesIn(OpIn):
    """Namespaces with live keys."""

    op: Literal["list_namespaces"]
    prefix: str = ""
    sizes: bool = False

    def to_op(self, max_value_bytes: int) -> Op:
        return ListNamespaces(_values.check_prefix(self.prefix, "namespace prefix"), self.sizes)


class SliceIn(KeyOpIn):
    """Read the items ``[start:stop]`` of a list (negative counts from the end)."""

    op: Literal["slice"]
    start: Annotated[int, Field(ge=-MAX_INT64, le=MAX_INT64)] | None = None
    stop: Annotated[int, Field(ge=-MAX_INT64, le=MAX_INT64)] | None = None

    def to_op(self, max_value_bytes: int) -> Op:
        return Slice(_ns(self.ns), _key(self.key), self.start, self.stop)


class SearchIn(OpIn):
    """Ranked full-text search of ``ns``, or of every namespace that starts with
    ``ns_prefix`` when ``ns`` is null."""

    op: Literal["search"]
    ns: str | None = None
    query: str = ""
    prefix: str = ""
    where: JsonText | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_SEARCH_LIMIT)] = 10
    ns_prefix: str = ""
    match: Literal["all", "any"] = "all"
    context: Annotated[int, Field(ge=0, le=MAX_CONTEXT)] = 0
    recency: Annotated[float, Field(gt=0, le=_values.MAX_TTL)] | None = None
    distinct: bool | None = None
    mode: Literal["words", "meaning", "hybrid", "auto"] | None = None

    def to_op(self, max_value_bytes: int) -> Op:
        return search_request(
            self.ns, self.query, self.prefix, self.where, self.limit, self.ns_prefix, self.match,
            context=self.context, recency=self.recency, distinct=self.distinct,
            mode=self.mode or "words",
        )  # fmt: skip


def search_request(
    ns: str | None,
    query: str,
    prefix: str,
    where: str | None,
    limit: int,
    ns_prefix: str,
    match: str = "all",
    *,
    context: int = 0,
    recency: float | None = None,
    distinct: bool | None = None,
    mode: str = "words",
) -> Search:
    """A search a client sent (its filter as JSON text), checked as ``Memory.search`` checks."""
    fields = None if where is None else _values.decode_value(_values.canonical_json(where))
    op = search_op(None if ns is None else _ns(ns), query, prefix, fields, limit, match,
                   context=context, recency=recency, distinct=distinct, mode=mode)  # fmt: skip
    if ns is None:
        op = op._replace(ns_prefix=_values.check_prefix(ns_prefix, "namespace prefix"))
    return op


class RestoreIn(KeyOpIn):
    """Write a value with its original timestamps (``botwire import``)."""

    op: Literal["restore"]
    value: JsonText
    created_at: Time
    updated_at: Time
    expires_at: Time | None = None
    ttl: Seconds | None = None

    def to_op(self, max_value_bytes: int) -> Op:
        expires_at = self.expires_at
        _values.check_history(self.created_at, self.updated_at, int(time.time() * 1_000_000))
        return Restore(
            _ns(self.ns), _key(self.key), _values.canonical_json(self.value, max_value_bytes),
            _values.check_time(self.created_at, "created_at"),
            _values.check_time(self.updated_at, "updated_at"),
            None if expires_at is None else _values.check_time(expires_at, "expires_at"),
            _values.check_ttl(self.ttl),
        )  # fmt: skip


class ChangesIn(OpIn):
    """The change log after position ``since``, oldest first: of ``ns``, or of every
    namespace that starts with ``ns_prefix`` when ``ns`` is null. Alone in its batch."""

    op: Literal["changes"]
    ns: str | None = None
    since: Annotated[int, Field(ge=0, le=MAX_INT64)] = 0
    prefix: str = ""
    limit: Annotated[int, Field(ge=1, le=MAX_CHANGES)] = 100
    ns_prefix: str = ""
    values: bool = False
    actor: str | None = None
    from_at: Time | None = None
    to_at: Time | None = None

    def to_op(self, max_value_bytes: int) -> Op:
        op = changes_request(
            self.ns, self.since, self.prefix, self.limit, self.ns_prefix, self.values
        )
        actor = None if self.actor is None else _values.check_key(self.actor, "actor")
        return op._replace(actor=actor, from_at=self.from_at, to_at=self.to_at)


def changes_request(
    ns: str | None, since: int, prefix: str, limit: int, ns_prefix: str, values: bool
) -> Changes:
    """A read of the change log a client sent, checked as ``Memory.changes`` checks it."""
    return Changes(
        None if ns is None else _ns(ns), since, _values.check_prefix(prefix), limit,
        "" if ns is not None else _values.check_prefix(ns_prefix, "namespace prefix"), values,
    )  # fmt: skip


class HistoryIn(KeyOpIn):
    """A key's recorded changes, newest first (older than position ``before``, if given)."""

    op: Literal["history"]
    limit: Annotated[int, Field(ge=1, le=MAX_CHANGES)] = 20
    before: Annotated[int, Field(ge=1, le=MAX_INT64)] | None = None

    def to_op(self, max_value_bytes: int) -> Op:
        return History(_ns(self.ns), _key(self.key), self.limit, self.before)


class AddChangeIn(OpIn):
    """Add a change to the log as given (an import of a dump's history; an admin token)."""

    op: Literal["add_change"]
    ns: str
    key: str | None
    change: Literal["set", "delete", "append", "incr", "expire", "clear", "import", "expired"]
    version: Version | None = None
    at: Time
    actor: str
    request_id: str | None = None
    value: JsonText | None = None
    detail: JsonText | None = None

    def to_op(self, max_value_bytes: int) -> Op:
        return AddChange(
            _ns(self.ns), None if self.key is None else _key(self.key), self.change,
            self.version, self.at, _values.check_key(self.actor, "actor"),
            None if self.request_id is None else _values.check_key(self.request_id, "request_id"),
            None if self.value is None else _values.canonical_json(self.value, max_value_bytes),
            None if self.detail is None else _values.canonical_json(self.detail),
        )  # fmt: skip


class StatsIn(OpIn):
    """What the whole store holds (a token of every namespace only)."""

    op: Literal["stats"]

    def to_op(self, max_value_bytes: int) -> Op:
        return Stats()


AnyOpIn = Annotated[
    GetIn | PutIn | DeleteIn | AppendIn | IncrIn | ExpireIn | ListKeysIn | ClearIn
    | ListNamespacesIn | RestoreIn | SliceIn | SearchIn | ChangesIn | HistoryIn | StatsIn
    | AddChangeIn,
    Field(discriminator="op"),
]  # fmt: skip


class BatchIn(BaseModel):
    """Operations to run in one transaction: all take effect, or none does."""

    model_config = ConfigDict(extra="ignore")
    ops: list[AnyOpIn]


_batch = TypeAdapter(BatchIn)


def _ns(ns: str) -> str:
    return _values.check_namespace(ns)


def _key(key: str) -> str:
    return _values.check_key(key)


def parse_batch(body: bytes, max_ops: int, max_value_bytes: int) -> list[Op]:
    """The operations of a batch request body, validated.

    Raises:
        BotWireError: naming the operation that is wrong (``operation 3: ...``) and why; the
            message never repeats what was sent (it may not even be printable JSON).
    """
    try:
        batch = _batch.validate_json(body)
    except ValidationError as exc:
        raise InvalidRequest(_describe(exc)) from None
    if len(batch.ops) > max_ops:
        raise InvalidRequest(f"a batch holds at most {max_ops} operations")
    ops = []
    for index, op in enumerate(batch.ops):
        try:
            ops.append(op.to_op(max_value_bytes))
        except BotWireError as exc:
            message = str(exc)
            if isinstance(exc, ValueTooLarge):  # the server's limit, which clients cannot raise
                message = message.replace(
                    _values.RAISE_LIMIT,
                    "the server's limit: raise it with BOTWIRE_MAX_VALUE_BYTES where "
                    "botwire serve runs",
                )
            exc.args = (f"operation {index}: {message}",)
            raise
    return ops


def _describe(exc: ValidationError) -> str:
    error = exc.errors(include_input=False, include_url=False)[0]
    loc = list(error["loc"])
    if error["type"] == "json_invalid":
        return f"the body is not JSON ({error['msg']})"
    if not loc:
        return f'the body must be {{"ops": [...]}}: {error["msg"]}'
    if loc[0] == "ops" and len(loc) >= 2 and isinstance(loc[1], int):
        field = ".".join(str(part) for part in loc[3:])
        where = f"operation {loc[1]}" + (f": {field}" if field else "")
        return f"{where}: {error['msg']}"
    return f"{'.'.join(str(p) for p in loc)}: {error['msg']}"


def batch_openapi() -> dict[str, Any]:
    """The request body of ``POST /v1/batch`` for the OpenAPI schema, from :class:`BatchIn`."""
    schema = BatchIn.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(definitions[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items() if key != "discriminator"}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    body = {"required": True, "content": {"application/json": {"schema": inline(schema)}}}
    return {"requestBody": body}


# -- errors, as every route answers them ----------------------------------------------------


class ErrorOut(BaseModel):
    detail: Any
    error: str | None = None


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 404, 409, 412, 413, 429, 431, 503)
}


def validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Validation errors as JSON, without the input that failed (it may not even be printable
    JSON: ``NaN``) or anything else from the request."""
    return [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors]
