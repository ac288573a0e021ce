"""What every test of the suite runs under, the notebooks' and examples' too: no connection
beyond this machine (``tests/netguard``), no telemetry, and a home directory of its own."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import NETGUARD, ROOT
from tests.netguard import guard

guard.install()

# Frameworks must not phone home, and write under a home of the suite's own, not the user's.
os.environ["HOME"] = tempfile.mkdtemp(prefix="botwire-tests-home-")
os.environ.update(
    CREWAI_DISABLE_TELEMETRY="true",
    CREWAI_DISABLE_TRACKING="true",
    CREWAI_TRACING_ENABLED="false",
    CREWAI_TESTING="true",
    OTEL_SDK_DISABLED="true",
)
# Every process the suite starts (servers, workers, notebook kernels) runs the guard too.
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(NETGUARD), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
)
BLOCKED = Path(os.environ["HOME"]) / "netguard.log"
os.environ[guard.LOG] = str(BLOCKED)


def blocked() -> list[str]:
    """Every connection beyond this machine that a process of the suite attempted so far."""
    return BLOCKED.read_text(encoding="utf-8").splitlines() if BLOCKED.exists() else []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[object]:
    """Every test (notebooks too) fails if it, or any process it started, tried to reach
    another machine."""
    before = len(blocked())
    result = yield
    attempts = blocked()[before:]
    assert attempts == [], f"a connection beyond this machine was attempted: {attempts}"
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[object]:
    """Under pytest-xdist, a test marked ``alone`` (it measures how long something waits) runs
    while no other worker runs a test: it holds the run's lock file exclusively, every other
    test holds it shared."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run is None:
        return (yield)
    import fcntl

    with open(Path(tempfile.gettempdir()) / f"botwire-tests-{run}.lock", "a") as lock:
        alone = item.get_closest_marker("alone") is not None
        fcntl.flock(lock, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        try:
            return (yield)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
