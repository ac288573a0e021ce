"""Running botwire in child processes, as real deployments do."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("BOTWIRE_URL", None)
    env.update(extra)
    return env


def start_python(code: str, **env: str) -> subprocess.Popen[str]:
    """Start ``python -c code`` with botwire importable; stdout is a pipe."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(**env),
    )


def run_python(code: str, timeout: float = 120, **env: str) -> str:
    """Run ``python -c code``; return its stdout, failing with its stderr if it fails."""
    proc = start_python(code, **env)
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return out


def run_many(code: str, count: int, timeout: float = 300, **env: str) -> list[str]:
    """Run ``count`` copies of ``code`` at once (``WORKER`` holds each one's number)."""
    procs = [start_python(code, WORKER=str(n), **env) for n in range(count)]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, err
        outputs.append(out)
    return outputs
