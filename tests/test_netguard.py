"""The guard that keeps the suite on this machine catches what a child process attempts."""

from __future__ import annotations

import subprocess
import sys

import conftest


def test_a_connection_beyond_this_machine_from_a_child_process_is_recorded() -> None:
    before = conftest.blocked()
    attempt = """
import socket
try:
    socket.create_connection(("192.0.2.1", 80), timeout=0.5)
except ConnectionRefusedError as exc:
    print("refused:", exc)
"""
    done = subprocess.run([sys.executable, "-c", attempt], capture_output=True, text=True)
    assert done.stdout.strip() == "refused: tests may not connect to 192.0.2.1"
    attempts = conftest.blocked()[len(before) :]
    assert len(attempts) == 1 and attempts[0].startswith("192.0.2.1:80 (process ")
    conftest.BLOCKED.write_text("".join(line + "\n" for line in before), encoding="utf-8")


def test_loopback_stays_open() -> None:
    before = len(conftest.blocked())
    done = subprocess.run(
        [sys.executable, "-c", "import socket; socket.socket().connect_ex(('127.0.0.1', 9))"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0 and len(conftest.blocked()) == before
