"""Server benchmark: `botwire serve` under `wrk`, beside the baseline server and a bare ASGI app.

    python bench/bench_server.py [--rounds 3] [--seconds 3]      (needs wrk: apt-get install wrk)

Three servers on loopback, each one uvicorn worker on this machine's two cores:
- `botwire serve` on a fresh SQLite file;
- the baseline, built the way the original hosted BotWire server was (FastAPI + SQLite,
  `bench/baseline_server.py`), on a fresh SQLite file;
- a bare ASGI app that answers every request with a fixed body (`bench/bare_asgi.py`): the
  ceiling for any Python server here.
`wrk` (one thread) sends GET and PUT on the compatible routes (`/memory/{ns}/{key}`), over 1 and
8 connections, for `--seconds` each; PUTs change the value every time, and every answer must be
a 2xx. Rounds interleave the servers; the table has the median requests per second over rounds.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from _shared import free_port, wait_ready

HERE = Path(__file__).resolve().parent
SCRIPTS = {
    "GET": """
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", "/memory/bench/k" .. (counter % 100))
end
""",
    "PUT": """
counter = 0
wrk.headers["Content-Type"] = "application/json"
request = function()
  counter = counter + 1
  local body = '{"value": {"language": "en", "name": "Ada", "turns": ' .. counter .. '}}'
  return wrk.format("PUT", "/memory/bench/k" .. (counter % 100), nil, body)
end
""",
}
CONNECTIONS = (1, 8)


def start(folder: Path) -> tuple[list[subprocess.Popen[bytes]], dict[str, str]]:
    ports = {name: free_port() for name in ("botwire", "baseline", "bare ASGI")}
    env = dict(os.environ, PYTHONPATH=str(HERE.parent))
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
    uvicorn = [sys.executable, "-m", "uvicorn", "--no-access-log", "--log-level", "warning"]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "botwire.cli", "serve", "--db",
             f"sqlite:///{folder / 'botwire.db'}", "--port", str(ports["botwire"])], **quiet,
        ),
        subprocess.Popen(
            [*uvicorn, "baseline_server:app", "--port", str(ports["baseline"])], cwd=HERE,
            **{**quiet, "env": dict(env, BASELINE_DB=str(folder / "baseline.db"))},
        ),
        subprocess.Popen(
            [*uvicorn, "bare_asgi:app", "--lifespan", "off", "--port", str(ports["bare ASGI"])],
            cwd=HERE, **quiet,
        ),
    ]  # fmt: skip
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    wait_ready(urls["botwire"] + "/healthz")
    wait_ready(urls["baseline"] + "/docs")
    wait_ready(urls["bare ASGI"] + "/")
    for name in ("botwire", "baseline"):  # the keys the GETs read
        with httpx.Client(base_url=urls[name]) as client:
            for n in range(100):
                client.put(f"/memory/bench/k{n}", json={"value": {"turns": n}}).raise_for_status()
    return procs, urls


def wrk(url: str, method: str, connections: int, seconds: float) -> float:
    """Requests per second of ``method`` requests; fails when any answer was not a 2xx."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(SCRIPTS[method])
        script.flush()
        duration = f"-d{max(1, round(seconds))}s"  # wrk takes whole seconds
        done = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", duration, "-s", script.name, url],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    if "Non-2xx" in done.stdout or "Socket errors" in done.stdout:
        raise RuntimeError(f"{url}: not every answer was a 2xx\n{done.stdout}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    assert match is not None, done.stdout
    return float(match.group(1))


def python_load(url: str, method: str, connections: int, seconds: float) -> float:
    """Requests per second from Python threads, one keep-alive connection each: where wrk is
    missing (a Python client costs about as much as the server, so this reads lower)."""
    host, port = url.removeprefix("http://").split(":")
    counts = [0] * connections
    deadline = time.monotonic() + seconds

    def work(n: int) -> None:
        conn = http.client.HTTPConnection(host, int(port))
        while time.monotonic() < deadline:
            i = counts[n] = counts[n] + 1
            body = f'{{"value": {{"language": "en", "name": "Ada", "turns": {i}}}}}'
            conn.request(method, f"/memory/bench/k{i % 100}", body if method == "PUT" else None,
                         {"content-type": "application/json"})  # fmt: skip
            response = conn.getresponse()
            response.read()
            if response.status >= 300:
                raise RuntimeError(f"{url}: {method} answered {response.status}")
        conn.close()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(connections)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.monotonic() - started)


def measure(url: str, method: str, connections: int, seconds: float) -> float:
    """Requests per second, with wrk where it is installed."""
    load = wrk if shutil.which("wrk") else python_load
    return load(url, method, connections, seconds)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench_server.py needs wrk: apt-get install wrk")
    procs, urls = start(Path(tempfile.mkdtemp(prefix="botwire-bench-server-")))
    cases: dict[tuple[str, str, int], list[float]] = {}
    try:
        for _ in range(args.rounds):
            for method in SCRIPTS:
                for connections in CONNECTIONS:
                    for name, url in urls.items():
                        rps = wrk(url, method, connections, args.seconds)
                        cases.setdefault((name, method, connections), []).append(rps)
    finally:
        stop(procs)
    med = {case: statistics.median(values) for case, values in cases.items()}
    print(f"requests per second, median of {args.rounds} rounds of {args.seconds:g} s (wrk -t1)\n")
    print("| case | botwire serve | baseline | bare ASGI | botwire / baseline | botwire / bare |")
    print("|---|---:|---:|---:|---:|---:|")
    for method in SCRIPTS:
        for connections in CONNECTIONS:
            ours, base, bare = (med[(name, method, connections)] for name in urls)
            print(
                f"| {method}, {connections} connection{'s' if connections > 1 else ''} | "
                f"{ours:,.0f} | {base:,.0f} | {bare:,.0f} | {ours / base:.2f} | {ours / bare:.0%} |"
            )


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
