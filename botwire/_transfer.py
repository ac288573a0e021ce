"""Moving a store's contents out and in: ``botwire export`` and ``botwire import``.

A dump is JSON lines, one key per line, sorted by namespace and key::

    {"namespace":"bot","key":"greeting","value":"hi","created_at":"2026-11-21T10:00:00.000000Z",
     "updated_at":"2026-11-21T10:00:00.000000Z","expires_at":null,"ttl":null}

Timestamps keep their microseconds and values their exact JSON text, so exporting what was
imported gives the same bytes, whichever backends the data passed through.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any, NamedTuple

from botwire import _values, config
from botwire._values import format_time, parse_time
from botwire.backends.base import (
    AddChange,
    Backend,
    Change,
    Get,
    History,
    ListNamespaces,
    Record,
    Restore,
    all_keys,
    run_steps,
)
from botwire.errors import BotWireError, InvalidRequest

if TYPE_CHECKING:
    from tqdm import tqdm

BATCH = 500
HISTORY_PAGE = 1000
KINDS = ("set", "delete", "append", "incr", "expire", "clear", "import", "expired")
"""The kinds of change a dump's history may hold."""


def progress_bar(verb: str, stream: IO[str] | None = None) -> tqdm[Any]:
    """A progress bar of keys on ``stream`` (default stderr), drawn only on a terminal."""
    from tqdm import tqdm

    out = stream or sys.stderr
    return tqdm(desc=verb, unit=" keys", file=out, disable=not out.isatty(), mininterval=0.1)


def _line(ns: str, key: str, record: Record) -> str:
    enc = _values.to_json
    times = {}
    for field in ("created_at", "updated_at", "expires_at"):
        us = getattr(record, field)
        try:
            times[field] = format_time(None if us is None else _values.check_time(us, field))
        except (InvalidRequest, OverflowError) as exc:
            raise InvalidRequest(
                f"cannot export key {key!r} of namespace {ns!r}: its {field} ({us}) is not a "
                f"time from 1970 to 9999 ({exc}); correct or delete that key, then export again"
            ) from None
    return (
        f'{{"namespace":{enc(ns)},"key":{enc(key)},"value":{record.value},'
        f'"created_at":{enc(times["created_at"])},"updated_at":{enc(times["updated_at"])},'
        f'"expires_at":{enc(times["expires_at"])},"ttl":{enc(record.ttl)}}}\n'
    )


def _history(backend: Backend, ns: str, key: str) -> str:
    """``,"history":[...]``: what the change log holds of a key, oldest first."""
    found: list[Change] = []
    before = None
    while True:
        (page,) = backend.execute([History(ns, key, HISTORY_PAGE, before)])
        found += page
        if len(page) < HISTORY_PAGE:
            break
        before = page[-1].seq
    enc = _values.to_json
    items = [
        f'{{"op":{enc(c.op)},"version":{enc(c.version)},"at":{enc(format_time(c.at))},'
        f'"actor":{enc(c.actor)},"request_id":{enc(c.request_id)},'
        f'"value":{c.value or "null"},"detail":{c.detail or "null"}}}'
        for c in reversed(found)
    ]
    return ',"history":[' + ",".join(items) + "]"


def export_lines(
    backend: Backend,
    namespaces: Sequence[str] | None = None,
    progress: tqdm[Any] | None = None,
    *,
    history: bool = False,
) -> Iterator[str]:
    """Dump lines for ``namespaces`` (default: all), sorted by namespace and key; with
    ``history``, each line carries what the change log holds of its key."""
    if not namespaces:
        (names,) = backend.execute([ListNamespaces("")])
    else:
        names = sorted({_values.check_namespace(ns) for ns in namespaces})
    plan = [(ns, [info.key for info in run_steps(backend.execute, all_keys(ns))]) for ns in names]
    if progress is not None:
        progress.total = sum(len(keys) for _, keys in plan)
        progress.refresh()
    for ns, keys in plan:
        for start in range(0, len(keys), BATCH):
            chunk = keys[start : start + BATCH]
            records = backend.execute([Get(ns, key) for key in chunk])
            for key, record in zip(chunk, records, strict=True):
                if record is not None:  # deleted or expired since it was listed
                    line = _line(ns, key, record)
                    yield line[:-2] + _history(backend, ns, key) + "}\n" if history else line
            if progress is not None:
                progress.update(len(chunk))


class ImportStopped(BotWireError):
    """The store refused a batch of an import that was valid: what was written stays written.

    Attributes:
        written: keys written before the batch that failed.
        next_line: the first line that was not written (``--from-line`` continues there).
    """

    def __init__(self, message: str, *, written: int, next_line: int) -> None:
        super().__init__(message)
        self.written = written
        self.next_line = next_line


class ImportReport(NamedTuple):
    """What an import wrote."""

    written: int
    expired: int
    """Records skipped because they expired while they were away."""
    lines: int
    """The last line read."""


def restore_ops(
    line: str, number: int, now: int, max_value_bytes: int, history: bool = False
) -> list[AddChange | Restore | None]:
    """What a dump line stands for: with ``history``, the changes its key had (to add to the
    log), then its write, checked as ``set`` checks a value (JSON, size, keys) and with times
    that could have happened (``None`` when it expired while it was away).

    Raises:
        InvalidRequest: ``line N of the dump ...`` and what is wrong with it.
    """
    where = f"line {number} of the dump"
    try:
        item = json.loads(line, parse_constant=_values.refuse_constant)
    except RecursionError:
        raise InvalidRequest(f"{where} nests too deeply to be a botwire record") from None
    except ValueError as exc:
        raise InvalidRequest(f"{where} is not JSON ({exc})") from None
    if not isinstance(item, dict) or not {"namespace", "key", "value"} <= item.keys():
        raise InvalidRequest(f"{where} is not a botwire record (namespace, key and value)")
    try:
        ns = _values.check_namespace(item["namespace"])
        key = _values.check_key(item["key"])
        value = _values.encode_value(item["value"], max_value_bytes, key)
        created, updated, expires = (
            None if (us := parse_time(item.get(field), field)) is None
            else _values.check_time(us, field)
            for field in ("created_at", "updated_at", "expires_at")
        )  # fmt: skip
        ttl = None if item.get("ttl") is None else _values.check_ttl(item["ttl"])
        created, updated = created or now, updated or created or now
        _values.check_history(created, updated, now)
    except BotWireError as exc:
        raise type(exc)(f"{where}: {exc}") from None
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidRequest(f"{where}: {exc}") from None
    changes = _changes(item.get("history") or [], ns, key, where, now) if history else []
    if expires is not None and expires <= now:
        return [*changes, None]  # expired while it was away
    return [*changes, Restore(ns, key, value, created, updated, expires, ttl)]


def _changes(
    history: Any, ns: str, key: str, where: str, now: int
) -> list[AddChange | Restore | None]:
    """A dump line's history as changes to add to the log, checked."""
    if not isinstance(history, list):
        raise InvalidRequest(f"{where}: history must be a list of changes")
    found: list[AddChange | Restore | None] = []
    for n, change in enumerate(history, 1):
        try:
            if not isinstance(change, dict) or change.get("op") not in KINDS:
                raise InvalidRequest(f"a change's op is one of {', '.join(KINDS)}")
            at = _values.check_time(parse_time(change.get("at"), "at"), "at")
            _values.check_history(at, at, now)
            version = change.get("version")
            if version is not None:
                _values.check_int(version, "version", 0)
            value, detail = change.get("value"), change.get("detail")
            found.append(AddChange(
                ns, key if change["op"] != "clear" else None, change["op"], version, at,
                _values.check_key(change.get("actor"), "actor"),
                None if change.get("request_id") is None
                else _values.check_key(change["request_id"], "request_id"),
                None if value is None else _values.to_json(value),
                None if detail is None else _values.to_json(detail),
            ))  # fmt: skip
        except BotWireError as exc:
            raise type(exc)(f"{where}, change {n} of its history: {exc}") from None
        except (ValueError, TypeError, OverflowError) as exc:
            raise InvalidRequest(f"{where}, change {n} of its history: {exc}") from None
    return found


def import_dump(
    backend: Backend,
    open_lines: Callable[[], Iterable[str]],
    *,
    from_line: int = 1,
    max_value_bytes: int | None = None,
    progress: tqdm[Any] | None = None,
    history: bool = False,
) -> ImportReport:
    """Write every record of a dump (overwriting keys that exist), from line ``from_line`` on.

    Every line is checked first, so a dump with a bad line writes nothing; then the records
    are written in batches, each atomic. ``open_lines`` gives the dump's lines, once for each
    pass. With ``history``, the changes a line's key had (``export --with-history``) are added
    to the change log first, with their times and actors, in new positions.

    Raises:
        InvalidRequest: a line is not a valid record (its number says which); nothing written.
        ImportStopped: the store refused a batch; says how many keys were written and the
            line to continue from.
    """
    limit = config.max_value_bytes(max_value_bytes)
    now = int(time.time() * 1_000_000)
    total = sum(1 for _ in _records(open_lines(), from_line, now, limit, history))
    if progress is not None:
        progress.total = total
        progress.refresh()
    written = expired = 0
    last = from_line - 1
    batch: list[AddChange | Restore] = []
    first_line = from_line
    for number, ops in _records(open_lines(), from_line, now, limit, history):
        last = number
        if ops[-1] is None:
            expired += 1
        if not batch:
            first_line = number
        batch += [op for op in ops if op is not None]
        if len(batch) >= BATCH:
            written += _write(backend, batch, written, first_line, progress)
    written += _write(backend, batch, written, first_line, progress)
    return ImportReport(written, expired, last)


def _records(
    lines: Iterable[str], from_line: int, now: int, max_value_bytes: int, history: bool
) -> Iterator[tuple[int, list[AddChange | Restore | None]]]:
    for number, line in enumerate(lines, 1):
        if number >= from_line and line.strip():
            yield number, restore_ops(line, number, now, max_value_bytes, history)


def _write(
    backend: Backend, batch: list[AddChange | Restore], written: int, first_line: int,
    progress: Any,
) -> int:  # fmt: skip
    count = sum(1 for op in batch if type(op) is Restore)
    if batch:
        try:
            backend.execute(batch)
        except BotWireError as exc:
            raise ImportStopped(
                f"the store refused the records from line {first_line} on ({exc}); "
                f"{written} key{'' if written == 1 else 's'} written before them stay written",
                written=written,
                next_line=first_line,
            ) from exc
        batch.clear()
    if progress is not None:
        progress.update(count)
    return count
