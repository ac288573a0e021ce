"""What each ``Memory`` call means, with no I/O: validation and the operations to run.

:class:`_MemoryBase` turns each call into a *plan*: the operations to run and how to read their
results. ``Memory`` runs plans with ``backend.execute`` and ``AsyncMemory`` with
``backend.aexecute`` (:mod:`botwire._memory`); nothing else differs.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from botwire import _values, config, telemetry
from botwire.backends import Backend, open_backend
from botwire.backends import changes as changelog
from botwire.backends.base import (
    Append,
    ChangePage,
    Changes,
    Clear,
    Delete,
    Expire,
    Get,
    History,
    Incr,
    KeyInfo,
    Op,
    Put,
    Record,
    Slice,
    Steps,
    all_keys,
)
from botwire.backends.base import Change as LoggedChange
from botwire.backends.search import Hit, hits, search_op
from botwire.errors import InvalidRequest, VersionConflict

T = TypeVar("T")
HISTORY_PAGE = 500
"""A key's changes read per round trip when rebuilding a value from the log."""
MAX_CHANGES = 1000
"""Most changes one page holds."""
Ttl = float | int | timedelta | None

log = logging.getLogger("botwire")


@dataclass(frozen=True)
class Entry:
    """A stored value with its version and timestamps (UTC), as :meth:`Memory.entry` returns it."""

    key: str
    value: Any
    version: int
    """Grows on every write of the key, and stays ahead of any version the key had before it
    was deleted; pass it to ``set(..., if_version=...)``."""
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None


@dataclass(frozen=True)
class Change:
    """One write as the store's change log records it (:meth:`Memory.changes`,
    :meth:`Memory.history`)."""

    seq: int
    """Its position in the store's log: pass it as ``since`` to read on after it."""
    namespace: str
    key: str | None
    """``None`` for a ``clear`` of the whole namespace."""
    op: str
    """``set``, ``delete``, ``append``, ``incr``, ``expire``, ``clear``, ``import``, or
    ``expired`` (removed when its ttl ran out)."""
    version: int | None
    """The key's version after the change; ``None`` once the key is gone."""
    at: datetime
    actor: str
    """``token:NAME`` through ``botwire serve``, else ``local:user@host:pid``."""
    request_id: str | None
    value: Any = None
    """What was written: a ``set``'s value, an ``append``'s items, an ``incr``'s new number,
    an ``expire``'s ttl (``None``: no expiry)."""


@dataclass(frozen=True)
class ChangesPage:
    """A page of changes, oldest first, and the ``cursor`` to pass as ``since`` next."""

    changes: list[Change]
    cursor: int


def change_of(change: LoggedChange) -> Change:
    value = None if change.value is None else _values.decode_value(change.value)
    return Change(
        change.seq, change.ns, change.key, change.op, change.version,
        _values.utc_datetime(change.at), change.actor, change.request_id, value,
    )  # fmt: skip


def _entry(key: str, record: Record | None) -> Entry | None:
    if record is None:
        return None
    return Entry(
        key,
        _decode(record),
        record.version,
        _values.utc_datetime(record.created_at),
        _values.utc_datetime(record.updated_at),
        None if record.expires_at is None else _values.utc_datetime(record.expires_at),
    )


class _Plan(Generic[T]):
    """The operations behind one call, and how to turn their results into its return value."""

    __slots__ = ("finish", "ops")

    def __init__(self, ops: list[Op], finish: Callable[[list[Any]], T]) -> None:
        self.ops = ops
        self.finish = finish


def _first(results: list[Any]) -> Any:
    return results[0]


def embedding(backend: Backend, embedder: Any) -> Backend:
    """``backend`` with ``embedder`` (or ``$BOTWIRE_EMBEDDER``'s) making its vectors; as it is
    through a server, which embeds for its clients."""
    served = backend.url.split(":", 1)[0].lower() in ("http", "https")
    if embedder is not None and served:
        raise InvalidRequest(
            "through a server, the server embeds (botwire serve --embedder ...): "
            "search(mode='meaning') works without embedder= here"
        )
    from botwire.backends.embedding import Embedding  # light: no model is loaded

    if embedder is None and not served and not isinstance(backend, Embedding):
        embedder = config.embedder_name()
    if embedder is None:
        return backend
    from botwire.embedders import resolve

    return Embedding(backend, resolve(embedder))  # type: ignore[arg-type]


class _MemoryBase:
    """Everything ``Memory`` and ``AsyncMemory`` share: validation and the operations to run."""

    def __init__(
        self,
        namespace: str,
        url: str | None = None,
        *,
        base_url: str | None = None,
        token: str | None = None,
        timeout: float = 30.0,
        max_value_bytes: int | None = None,
        backend: Backend | None = None,
        embedder: Any = None,
    ) -> None:
        self.namespace = _values.check_namespace(namespace)
        if url is not None and base_url is not None and url != base_url:
            raise InvalidRequest("pass url= or base_url= (its alias), not both")
        self.max_value_bytes = config.max_value_bytes(max_value_bytes)
        if backend is None:
            self.url = config.resolve_url(url or base_url)
            backend = open_backend(self.url, token=token, timeout=timeout)
        else:
            self.url = url or base_url or backend.url
        self._backend = embedding(backend, embedder)
        self._debug = config.debug_enabled()
        if self._debug and not log.handlers:
            log.addHandler(logging.StreamHandler())
            log.setLevel(logging.DEBUG)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.namespace!r}, url={config.mask_url(self.url)!r})"

    @property
    def backend(self) -> Backend:
        """The store this memory reads and writes."""
        return self._backend

    def _key(self, key: object) -> str:
        return _values.check_key(key)

    def _encode(self, value: Any, key: str) -> str:
        return _values.encode_value(value, self.max_value_bytes, key)

    @contextlib.contextmanager
    def _observing(self, ops: Sequence[Op]) -> Iterator[None]:
        """Around a batch while debugging or tracing: its log line, its span."""
        started, error = time.perf_counter(), None
        traced = telemetry.client_span(ops) if telemetry.ENABLED else contextlib.nullcontext()
        try:
            with traced:
                yield
        except BaseException as exc:
            error = exc
            raise
        finally:
            if self._debug:
                self._log(ops, started, error)

    def _log(self, ops: Sequence[Op], started: float, error: BaseException | None) -> None:
        elapsed = (time.perf_counter() - started) * 1000
        names = ",".join(sorted({type(op).__name__ for op in ops}))
        keys = [getattr(op, "key", None) for op in ops[:3]]
        outcome = f" failed: {error!r}" if error else ""
        log.debug(
            "botwire %s ns=%r keys=%r%s (%d ops) %.3f ms%s",
            names,
            self.namespace,
            keys,
            "..." if len(ops) > 3 else "",
            len(ops),
            elapsed,
            outcome,
        )

    # -- plans: the operations behind each call and how to read their results ----------------

    def _plan_set(
        self,
        key: str,
        value: Any,
        ttl: Ttl,
        if_version: int | None,
        keep_ttl: bool = False,
        searchable: bool = True,
    ) -> _Plan[int]:
        if if_version is not None:
            _values.check_int(if_version, "if_version", 0)
        seconds = _values.check_ttl(ttl)
        searchable = _values.check_bool(searchable, "searchable")
        key = self._key(key)
        value_text = self._encode(value, key)
        op = Put(self.namespace, key, value_text, seconds, if_version, keep_ttl, None, searchable)
        return _Plan([op], _first)

    def _plan_get(self, key: str, default: Any, refresh_ttl: bool) -> _Plan[Any]:
        def finish(results: list[Any]) -> Any:
            record = results[0]
            return default if record is None else _decode(record)

        return _Plan([Get(self.namespace, self._key(key), True, refresh_ttl, False)], finish)

    def _plan_entry(self, key: str) -> _Plan[Entry | None]:
        key = self._key(key)
        return _Plan([Get(self.namespace, key)], lambda results: _entry(key, results[0]))

    def _plan_entries(self, keys: Iterable[str], refresh_ttl: bool) -> _Plan[dict[str, Entry]]:
        names = [self._key(key) for key in _values.check_iterable(keys, "keys")]

        def finish(results: list[Any]) -> dict[str, Entry]:
            found = (_entry(key, record) for key, record in zip(names, results, strict=True))
            return {entry.key: entry for entry in found if entry is not None}

        return _Plan([Get(self.namespace, key, refresh_ttl=refresh_ttl) for key in names], finish)

    def _plan_contains(self, key: str) -> _Plan[bool]:
        return _Plan([Get(self.namespace, self._key(key), False)], lambda r: r[0] is not None)

    def _plan_ttl(self, key: str) -> _Plan[float | None]:
        key = self._key(key)

        def finish(results: list[Any]) -> float | None:
            record: Record | None = results[0]
            if record is None or record.expires_at is None:
                return None
            remaining = record.expires_at / 1_000_000 - float(self._backend.clock())
            if record.ttl is not None:
                remaining = min(remaining, record.ttl)
            return max(remaining, 0.0)

        return _Plan([Get(self.namespace, key, False)], finish)

    def _plan_delete(self, key: str) -> _Plan[bool]:
        return _Plan([Delete(self.namespace, self._key(key))], _first)

    def _plan_get_many(self, keys: Iterable[str]) -> _Plan[dict[str, Any]]:
        names = [self._key(key) for key in _values.check_iterable(keys, "keys")]

        def finish(results: list[Any]) -> dict[str, Any]:
            found = {key: record.value for key, record in zip(names, results, strict=True)
                     if record is not None}  # fmt: skip
            return dict(zip(found, _values.decode_values(list(found.values())), strict=True))

        return _Plan([Get(self.namespace, key) for key in names], finish)

    def _plan_set_many(
        self, mapping: Mapping[str, Any], ttl: Ttl, searchable: bool = True
    ) -> _Plan[None]:
        if not isinstance(mapping, Mapping):
            raise InvalidRequest(
                f"set_many needs a mapping of keys to values, not {type(mapping).__name__}"
            )
        seconds = _values.check_ttl(ttl)
        searchable = _values.check_bool(searchable, "searchable")
        ops: list[Op] = []
        for key, value in mapping.items():
            key = self._key(key)
            text = self._encode(value, key)
            ops.append(Put(self.namespace, key, text, seconds, searchable=searchable))
        return _Plan(ops, lambda results: None)

    def _plan_delete_many(self, keys: Iterable[str]) -> _Plan[int]:
        ops: list[Op] = [
            Delete(self.namespace, self._key(key)) for key in _values.check_iterable(keys, "keys")
        ]
        return _Plan(ops, sum)

    def _plan_append(
        self,
        key: str,
        values: tuple[Any, ...],
        max_len: int | None,
        ttl: Ttl,
        keep_first: Mapping[str, Any] | None,
        searchable: bool = True,
    ) -> _Plan[int]:
        if not values:
            raise InvalidRequest("append needs at least one value")
        searchable = _values.check_bool(searchable, "searchable")
        if max_len is not None:
            _values.check_int(max_len, "max_len", 1)
        seconds = _values.check_ttl(ttl)
        first = None if keep_first is None else _values.check_fields(keep_first, "keep_first")
        key = self._key(key)
        items = tuple(self._encode(value, key) for value in values)
        op = Append(self.namespace, key, items, max_len, seconds, first, None, searchable)
        return _Plan([op], _first)

    def _plan_incr(self, key: str, by: int) -> _Plan[int]:
        return _Plan([Incr(self.namespace, self._key(key), _values.check_int(by, "by"))], _first)

    def _plan_expire(self, key: str, ttl: Ttl) -> _Plan[bool]:
        seconds = _values.check_ttl(ttl, allow_now=True)
        return _Plan([Expire(self.namespace, self._key(key), seconds)], _first)

    def _keys_steps(
        self,
        prefix: str | None = None,
        after: str | None = None,
        reverse: bool = False,
        limit: int | None = None,
        values: bool = False,
    ) -> Steps[list[KeyInfo]]:
        if after is not None:
            after = _values.check_key(after, "after")
        if limit is not None:
            _values.check_int(limit, "limit", 1)
        prefix = _values.check_prefix(prefix)
        return all_keys(self.namespace, prefix, after, bool(reverse), limit, values)

    def _read_steps(self, method: str, *args: Any, **kwargs: Any) -> Steps[Any]:
        """The steps of a read, ``keys``, ``items`` or ``get_many`` (with its arguments), to
        run beside others in one round trip (:func:`~botwire.backends.base.together`)."""
        if method == "get_many":
            plan = self._plan_get_many(*args, **kwargs)
            return plan.finish((yield plan.ops))
        if method not in ("keys", "items"):
            raise InvalidRequest(f"{method} is not a read that runs beside others")
        options = {**kwargs, "values": method == "items"}
        infos = yield from self._keys_steps(*args, **options)
        return self._items(infos) if method == "items" else [info.key for info in infos]

    @staticmethod
    def _items(infos: list[KeyInfo]) -> dict[str, Any]:
        values = _values.decode_values([info.value or "null" for info in infos])
        return {info.key: value for info, value in zip(infos, values, strict=True)}

    def _plan_changes(
        self, since: int, prefix: str | None, limit: int, values: bool
    ) -> _Plan[ChangesPage]:
        op = Changes(
            self.namespace, _values.check_int(since, "since", 0), _values.check_prefix(prefix),
            _values.check_int(limit, "limit", 1, MAX_CHANGES), ns_prefix="", values=bool(values),
        )  # fmt: skip

        def finish(results: list[Any]) -> ChangesPage:
            page: ChangePage = results[0]
            return ChangesPage([change_of(change) for change in page.changes], page.cursor)

        return _Plan([op], finish)

    def _watch_op(self, since: int | None, prefix: str | None) -> Changes:
        start = -1 if since is None else _values.check_int(since, "since", 0)
        return Changes(self.namespace, start, _values.check_prefix(prefix), values=True)

    def _state_steps(
        self, key: str, version: int | None, at: datetime | None
    ) -> Steps[tuple[tuple[bool, Any] | None, Record | None]]:
        """The key's state at ``version`` or at time ``at``, rebuilt from the change log
        (``None``: the log holds nothing of it then), and its current record, read with the
        log's first page."""
        key = self._key(key)
        if (version is None) == (at is None):
            raise InvalidRequest("name the point to read: version= or at=, one of them")
        if version is not None:
            _values.check_int(version, "version", 1)
        moment = None if at is None else _values.datetime_us(at, "at")
        found: list[LoggedChange] = []
        current: Record | None = None
        before: int | None = None
        while True:
            ops: list[Op] = [History(self.namespace, key, HISTORY_PAGE, before)]
            if before is None:
                ops.append(Get(self.namespace, key))
            results = yield ops
            if before is None:
                current = results[1]
            found += results[0]
            index = changelog.target(found, version, moment)
            start = None if index is None else changelog.base(found, index)
            if index is not None and start is not None:
                return changelog.replay(found[start : index - 1 if index else None : -1]), current
            if len(results[0]) < HISTORY_PAGE:
                break
            before = found[-1].seq
        if index is None:
            return None, current
        raise InvalidRequest(
            f"the change log no longer reaches back to all that {key!r} was then: it keeps "
            "changes for a time (the store's ?history=, 7 days by default)"
        )

    def _plan_restore(
        self, key: str, state: tuple[bool, Any] | None, current: Record | None
    ) -> _Plan[int]:
        if state is None or not state[0]:
            raise InvalidRequest(f"{key!r} held no value then: there is nothing to restore")
        return self._plan_update_write(key, current, state[1])

    def _plan_history(self, key: str, limit: int) -> _Plan[list[Change]]:
        op = History(self.namespace, self._key(key), _values.check_int(limit, "limit", 1))
        return _Plan([op], lambda results: [change_of(change) for change in results[0]])

    def _plan_slice(
        self, key: str, start: int | None, stop: int | None, default: Any
    ) -> _Plan[Any]:
        for bound, name in ((start, "start"), (stop, "stop")):
            if bound is not None:
                _values.check_int(bound, name)

        def finish(results: list[Any]) -> Any:
            text = results[0]
            return default if text is None else _values.decode_value(text)

        return _Plan([Slice(self.namespace, self._key(key), start, stop)], finish)

    def _plan_search(
        self,
        query: str,
        prefix: str | None,
        where: Mapping[str, Any] | None,
        limit: int,
        match: str,
        context: int = 0,
        recency: Ttl = None,
        distinct: bool | None = None,
        mode: str = "words",
    ) -> _Plan[list[Hit]]:
        op = search_op(self.namespace, query, prefix, where, limit, match, context=context,
                       recency=recency, distinct=distinct, mode=mode)  # fmt: skip
        return _Plan([op], lambda results: hits(results[0]))

    def _plan_clear(self) -> _Plan[int]:
        return _Plan([Clear(self.namespace)], _first)

    def _plan_update_write(self, key: str, record: Record | None, new: Any) -> _Plan[int]:
        """Write ``new`` only if the key is still as ``record`` found it, keeping its expiry."""
        return self._plan_set(key, new, None, 0 if record is None else record.version, True)

    def _plan_read(self, key: str) -> _Plan[Record | None]:
        return _Plan([Get(self.namespace, self._key(key))], _first)


def _decode(record: Record) -> Any:
    assert record.value is not None  # every Get that feeds this asks for the value
    return _values.decode_value(record.value)


def _current(record: Record | None, default: Any) -> Any:
    return default if record is None else _decode(record)


def _backoff(attempt: int) -> float:
    return min(0.001 * 2.0**attempt, 0.05) * random.random()


def _lost_every_race(key: str, last: VersionConflict | None, attempts: int) -> VersionConflict:
    return VersionConflict(
        f"update of {key!r} lost the race {attempts} times: other writers change it "
        "faster than fn runs; retry later, or use incr/append for counters and lists",
        key=key,
        expected=0 if last is None else last.expected,
        actual=0 if last is None else last.actual,
    )
