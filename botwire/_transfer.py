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
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any

from botwire import _values
from botwire._values import format_time, parse_time
from botwire.backends.base import (
    Backend,
    Get,
    ListNamespaces,
    Op,
    Record,
    Restore,
    all_keys,
    run_steps,
)
from botwire.errors import InvalidRequest

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


def _restore_op(line: str, number: int) -> Restore | None:
    try:
        item = json.loads(line)
        if not isinstance(item, dict):
            raise InvalidRequest("each line must be a JSON object")
        ns = _values.check_namespace(item["namespace"])
        key = _values.check_key(item["key"])
        value = _values.to_json(item["value"])
        created, updated, expires = (
            None if (us := parse_time(item.get(field), field)) is None
            else _values.check_time(us, field)
            for field in ("created_at", "updated_at", "expires_at")
        )  # fmt: skip
        ttl = item.get("ttl")
        if ttl is not None:
            ttl = _values.check_ttl(ttl)
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidRequest(
            f"line {number} of the dump is not a botwire record: {exc!r}"
        ) from None
    if expires is not None and expires <= time.time() * 1_000_000:
        return None  # expired while it was away
    now = int(time.time() * 1_000_000)
    return Restore(ns, key, value, created or now, updated or now, expires, ttl)


def import_lines(backend: Backend, lines: Iterable[str], progress: tqdm[Any] | None = None) -> int:
    """Write every record of a dump (overwriting keys that exist); return how many."""
    count = 0
    batch: list[Op] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        op = _restore_op(line, number)
        if op is not None:
            batch.append(op)
        if len(batch) >= BATCH:
            count += _flush(backend, batch, progress)
    return count + _flush(backend, batch, progress)


def _flush(backend: Backend, batch: list[Op], progress: tqdm[Any] | None) -> int:
    count = len(batch)
    if batch:
        backend.execute(batch)
        batch.clear()
    if progress is not None:
        progress.update(count)
    return count
