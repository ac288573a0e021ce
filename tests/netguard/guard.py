"""Tests reach this machine only: a connection to any other host is refused and recorded.

Installed in the test process by ``conftest.py`` and in every child process the tests start
(``sitecustomize.py`` beside this file is on their ``PYTHONPATH``, notebook kernels included),
so that a library phoning home (telemetry, update checks, model downloads) fails the test instead
of reaching the network. Every process records what it blocked in the file ``$BOTWIRE_NETGUARD_LOG``
names, which ``conftest.py`` reads after each test: an attempt in a background thread, whose
error nobody sees, fails the test too.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

MARK = "botwire-tests: blocked a connection to"
LOG = "BOTWIRE_NETGUARD_LOG"
blocked: list[str] = []


def _loopback(host: object) -> bool:
    return isinstance(host, str) and (
        host in ("localhost", "::1") or host.startswith("127.") or host.startswith("::ffff:127.")
    )


def _check(sock: socket.socket, address: Any) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
        where = f"{address[0]}:{address[1]}"
        blocked.append(where)
        sys.stderr.write(f"{MARK} {where}\n")
        log = os.environ.get(LOG)
        if log:
            with open(log, "a", encoding="utf-8") as out:
                out.write(f"{where} (process {os.getpid()}: {' '.join(sys.argv)[:200]})\n")
        raise ConnectionRefusedError(f"tests may not connect to {address[0]}")


_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


def _guarded_connect(self: socket.socket, address: Any) -> None:
    _check(self, address)
    _connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    _check(self, address)
    return _connect_ex(self, address)


def install() -> None:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
