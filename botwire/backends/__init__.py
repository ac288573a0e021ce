"""Backends: the stores behind ``Memory``, chosen by URL."""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
from urllib.parse import parse_qs, urlsplit

from botwire.backends.base import Backend, Quotas
from botwire.backends.changes import retention, versions_kept
from botwire.config import mask_url
from botwire.errors import InvalidRequest, MissingExtra

_cache: dict[tuple[object, ...], Backend] = {}
_cache_lock = threading.Lock()


def create_backend(
    url: str, *, token: str | None = None, timeout: float = 30.0, quotas: Quotas | None = None
) -> Backend:
    """A new backend for ``url``: ``sqlite:///path``, ``postgresql://...`` or ``http(s)://...``.

    ``sqlite:///memory.db`` is relative to the working directory and ``sqlite:////abs/memory.db``
    absolute. A query sets options: ``?synchronous=full``, ``?search=off`` (no full-text index,
    cheaper writes, for every process of the store; ``?search=on`` builds it again),
    ``?language=simple`` (index words as they are rather than their English stems; on
    PostgreSQL too), ``?history=30d`` (how long the change log keeps a change: seconds, days
    or hours; default 7 days; on PostgreSQL too), ``?history_versions=20`` (and at most that
    many changes of each key). ``quotas``
    are enforced by stores that hold data (SQLite, PostgreSQL); the HTTP backend leaves them to
    its server.
    """
    scheme = url.split(":", 1)[0].lower()
    if scheme == "sqlite":
        from botwire.backends.sqlite import SQLiteBackend

        if not url.startswith("sqlite:///"):
            raise InvalidRequest(f"a SQLite URL looks like sqlite:///path/to/file.db, not {url!r}")
        path, _, query = url[len("sqlite:///") :].partition("?")
        options = {k: v[-1] for k, v in parse_qs(query).items()}
        search = options.get("search")
        if search not in (None, "on", "off"):
            raise InvalidRequest(f"?search= takes on or off, not {search!r}")
        return SQLiteBackend(
            path, timeout=timeout, synchronous=options.get("synchronous", "NORMAL"), quotas=quotas,
            search=None if search is None else search == "on", language=options.get("language"),
            history=retention(options.get("history")),
            history_versions=versions_kept(options.get("history_versions")),
        )  # fmt: skip
    if scheme in ("http", "https"):
        from botwire.backends.http import HTTPBackend

        token = token if token is not None else os.environ.get("BOTWIRE_TOKEN")
        return HTTPBackend(url, token=token, timeout=timeout)
    if scheme in ("postgresql", "postgres"):
        try:
            from botwire.backends.postgres import PostgresBackend
        except ImportError as exc:
            raise MissingExtra("botwire's PostgreSQL store needs psycopg", "postgres") from exc

        return PostgresBackend(url, timeout=timeout, quotas=quotas)
    raise InvalidRequest(
        f"unsupported store URL {mask_url(urlsplit(url).geturl())!r}; use sqlite:///path, "
        "postgresql://user@host/db or http(s)://host:port"
    )


def open_backend(url: str, *, token: str | None = None, timeout: float = 30.0) -> Backend:
    """The process-wide backend for ``url``: every ``Memory`` on one URL shares its connections."""
    if token is None and url.startswith(("http:", "https:")):
        token = os.environ.get("BOTWIRE_TOKEN")
    cache_key = (url, token, timeout, os.getpid())
    backend = _cache.get(cache_key)
    if backend is None:
        with _cache_lock:
            backend = _cache.get(cache_key)
            if backend is None:
                backend = _cache[cache_key] = create_backend(url, token=token, timeout=timeout)
    return backend


@atexit.register
def _close_all() -> None:
    for backend in list(_cache.values()):
        with contextlib.suppress(Exception):  # closing at exit is best effort
            backend.close()


__all__ = ["Backend", "create_backend", "open_backend"]
