"""The container image and the compose files, built and run for real with podman and
podman-compose (on a machine with no registry, ``../shared/containers/prepare.sh`` installs them
and makes the base images; ``.ci/run`` runs it and puts its environment in place). Marked
``container``: they skip where podman is missing, unless ``BOTWIRE_REQUIRE_CONTAINERS=1`` (as in
CI)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from botwire import Memory

from .helpers import free_port

pytestmark = [pytest.mark.container, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "localhost/botwire:latest"


def _skip_or_fail(message: str) -> None:
    if os.environ.get("BOTWIRE_REQUIRE_CONTAINERS") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def podman_env() -> dict[str, str]:
    """The environment podman and podman-compose run in (the suite's guard left out: they are
    not Python under test)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for tool in ("podman", "podman-compose"):
        if shutil.which(tool) is None:
            _skip_or_fail(
                f"{tool} is not on PATH: install it (here: eval \"$(../shared/containers/"
                "prepare.sh | tail -1)\")"
            )
    return env


def run(env: dict[str, str], *args: str, timeout: float = 600, check: bool = True) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)
    if check and done.returncode != 0:
        raise AssertionError(f"{args} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


@pytest.fixture(scope="module")
def image(podman_env: dict[str, str]) -> str:
    run(podman_env, "podman", "build", "-q", "-t", IMAGE, str(ROOT), timeout=1200)
    return IMAGE


def wait_ready(url: str, seconds: float = 120) -> None:
    until = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(url + "/readyz", timeout=3).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < until, f"{url} never became ready"
        time.sleep(0.5)


def token_in(env: dict[str, str], container: str) -> str:
    out = run(env, "podman", "exec", container, "botwire", "token", "create", "admin",
              "--prefix", "*", "--admin")  # fmt: skip
    return out.strip().splitlines()[-1]


def test_the_image_runs_as_a_user_with_tokens_required_and_keeps_data(
    podman_env: dict[str, str], image: str
) -> None:
    name = f"botwire-test-{uuid.uuid4().hex[:6]}"
    volume = name + "-data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    run(podman_env, "podman", "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8765",
        "-v", f"{volume}:/data", image)  # fmt: skip
    try:
        wait_ready(url)
        assert httpx.get(url + "/v1/namespaces").status_code == 401  # tokens required at once
        assert run(podman_env, "podman", "exec", name, "id", "-u").strip() != "0"
        token = token_in(podman_env, name)
        mem = Memory("container", url, token=token)
        mem.set("k", {"kept": True})
        mem.append("chat", "hello")
        started = time.monotonic()
        run(podman_env, "podman", "stop", "-t", "30", name)
        assert time.monotonic() - started < 15  # SIGTERM ends it, no kill after the timeout
        state = run(podman_env, "podman", "inspect", name, "--format", "{{.State.ExitCode}}")
        assert state.strip() == "0"
        run(podman_env, "podman", "start", name)
        wait_ready(url)
        assert mem.get("k") == {"kept": True} and mem.get("chat") == ["hello"]
        health = run(podman_env, "podman", "healthcheck", "run", name, check=False)
        assert "unhealthy" not in health
    finally:
        run(podman_env, "podman", "rm", "-f", name, check=False)
        run(podman_env, "podman", "volume", "rm", "-f", volume, check=False)


@pytest.fixture
def compose(podman_env: dict[str, str], image: str) -> Iterator[tuple[str, dict[str, str]]]:
    project = f"bwtest{uuid.uuid4().hex[:6]}"
    env = dict(podman_env, BOTWIRE_PORT=str(free_port()), BOTWIRE_PORT_2=str(free_port()))
    yield project, env
    for file in ("compose.yaml", "compose.postgres.yaml"):
        run(env, "podman-compose", "-p", project, "-f", str(ROOT / file), "down", "-v",
            check=False, timeout=120)  # fmt: skip


def container_of(env: dict[str, str], project: str, service: str) -> str:
    out = run(env, "podman", "ps", "--filter", f"label=com.docker.compose.project={project}",
              "--filter", f"label=com.docker.compose.service={service}",
              "--format", "{{.Names}}")  # fmt: skip
    return out.split()[0]


def test_compose_with_the_embedded_store(compose: tuple[str, dict[str, str]]) -> None:
    project, env = compose
    file = str(ROOT / "compose.yaml")
    url = f"http://127.0.0.1:{env['BOTWIRE_PORT']}"
    run(env, "podman-compose", "-p", project, "-f", file, "up", "-d")
    wait_ready(url)
    token = token_in(env, container_of(env, project, "botwire"))
    Memory("compose", url, token=token).set("k", "survives")
    run(env, "podman-compose", "-p", project, "-f", file, "down")  # the volume stays
    run(env, "podman-compose", "-p", project, "-f", file, "up", "-d")
    wait_ready(url)
    assert Memory("compose", url, token=token).get("k") == "survives"


def test_compose_with_postgres_and_two_replicas(compose: tuple[str, dict[str, str]]) -> None:
    project, env = compose
    file = str(ROOT / "compose.postgres.yaml")
    first = f"http://127.0.0.1:{env['BOTWIRE_PORT']}"
    second = f"http://127.0.0.1:{env['BOTWIRE_PORT_2']}"
    run(env, "podman-compose", "-p", project, "-f", file, "up", "-d")
    wait_ready(first)
    wait_ready(second)
    token = token_in(env, container_of(env, project, "botwire-1"))
    Memory("shared", first, token=token).set("k", {"from": "replica 1"})
    assert Memory("shared", second, token=token).get("k") == {"from": "replica 1"}
    assert Memory("shared", second, token=token).incr("n") == 1
    assert Memory("shared", first, token=token).incr("n") == 2
    run(env, "podman-compose", "-p", project, "-f", file, "down")
    run(env, "podman-compose", "-p", project, "-f", file, "up", "-d")
    wait_ready(second)
    assert Memory("shared", second, token=token).get("n") == 2
