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
    Backend,
    Get,
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


def export_lines(
    backend: Backend, namespaces: Sequence[str] | None = None, progress: tqdm[Any] | None = None
) -> Iterator[str]:
    """Dump lines for ``namespaces`` (default: all), sorted by namespace and key."""
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
                    yield _line(ns, key, record)
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


def restore_op(line: str, number: int, now: int, max_value_bytes: int) -> Restore | None:
    """The write a dump line stands for, checked as ``set`` checks a value (JSON, size, keys)
    and with times that could have happened; ``None`` when it expired while it was away.

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
    if expires is not None and expires <= now:
        return None  # expired while it was away
    return Restore(ns, key, value, created, updated, expires, ttl)


def import_dump(
    backend: Backend,
    open_lines: Callable[[], Iterable[str]],
    *,
    from_line: int = 1,
    max_value_bytes: int | None = None,
    progress: tqdm[Any] | None = None,
) -> ImportReport:
    """Write every record of a dump (overwriting keys that exist), from line ``from_line`` on.

    Every line is checked first, so a dump with a bad line writes nothing; then the records
    are written in batches, each atomic. ``open_lines`` gives the dump's lines, once for each
    pass.

    Raises:
        InvalidRequest: a line is not a valid record (its number says which); nothing written.
        ImportStopped: the store refused a batch; says how many keys were written and the
            line to continue from.
    """
    limit = config.max_value_bytes(max_value_bytes)
    now = int(time.time() * 1_000_000)
    total = sum(1 for _ in _records(open_lines(), from_line, now, limit))
    if progress is not None:
        progress.total = total
        progress.refresh()
    written = expired = 0
    last = from_line - 1
    batch: list[Restore] = []
    first_line = from_line
    for number, op in _records(open_lines(), from_line, now, limit):
        last = number
        if op is None:
            expired += 1
            continue
        if not batch:
            first_line = number
        batch.append(op)
        if len(batch) >= BATCH:
            written += _write(backend, batch, written, first_line, progress)
    written += _write(backend, batch, written, first_line, progress)
    return ImportReport(written, expired, last)


def _records(
    lines: Iterable[str], from_line: int, now: int, max_value_bytes: int
) -> Iterator[tuple[int, Restore | None]]:
    for number, line in enumerate(lines, 1):
        if number >= from_line and line.strip():
            yield number, restore_op(line, number, now, max_value_bytes)


def _write(
    backend: Backend, batch: list[Restore], written: int, first_line: int, progress: Any
) -> int:
    count = len(batch)
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
