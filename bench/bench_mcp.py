"""MCP memory benchmark: `botwire mcp` against the reference MCP memory server.

    python bench/bench_mcp.py [--rounds 5] [--calls 20]

The baseline is `@modelcontextprotocol/server-memory` (npm), the memory server MCP clients are
pointed at first: a knowledge graph kept in one JSON-lines file. The script installs it with
npm into ~/.cache/botwire-bench/npm on first use (it needs `node` and `npm`).

Both servers run as real stdio subprocesses, driven by the MCP SDK's client in one event loop,
and answer the same four calls over a memory of 100, 1,000 and 10,000 facts:

| call | botwire | baseline |
|---|---|---|
| store a new fact | `remember(key, value)` | `create_entities` (one entity, one observation) |
| add a note to a log | `append_note(key, text)` | `add_observations` |
| read a fact by name | `recall(key)` | `open_nodes` |
| find a fact by a word | `search_memory(word)` | `search_nodes(word)` |

Every fact holds a word of its own (`code00042`), so both searches find exactly one fact. Both
stores are filled straight on disk before the servers start. Same durability: botwire's default
(SQLite WAL, synchronous=NORMAL) and the baseline's (write a new file, rename it over the old
one) both keep every answered write through a crash of the process, neither through a power
cut. Each round times ``--calls`` calls of each kind on each server, alternating the servers call
by call; the table has the median call time over rounds and the ratio baseline / botwire.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from botwire import Memory

SIZES = (100, 1_000, 10_000)
BASELINE = "@modelcontextprotocol/server-memory@2026.8.31"
NPM_DIR = Path.home() / ".cache" / "botwire-bench" / "npm"
CALLS = ("store a new fact", "add a note", "read a fact", "find a fact by a word")


def fact(n: int) -> str:
    return f"The user mentioned project code{n:05} while planning the trip to Lisbon in May."


def baseline_script() -> Path:
    script = NPM_DIR / "node_modules" / "@modelcontextprotocol" / "server-memory" / "dist"
    if not (script / "index.js").exists():
        if not shutil.which("npm"):
            sys.exit("the baseline needs node and npm")
        NPM_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(NPM_DIR),
             BASELINE],
            check=True,
        )  # fmt: skip
    return script / "index.js"


def fill(folder: Path, size: int) -> tuple[str, Path]:
    """Both stores with ``size`` facts and an empty log; the botwire URL and the JSONL file."""
    db = f"sqlite:///{folder / f'botwire-{size}.db'}"
    memory = Memory("claude", db)
    memory.set_many({f"fact{n:05}": fact(n) for n in range(size)})
    memory.append("log", "started")
    memory.close()
    graph = folder / f"graph-{size}.jsonl"
    lines = [
        {"type": "entity", "name": f"fact{n:05}", "entityType": "fact", "observations": [fact(n)]}
        for n in range(size)
    ]
    lines.append(
        {"type": "entity", "name": "log", "entityType": "log", "observations": ["started"]}
    )
    graph.write_text("\n".join(json.dumps(line) for line in lines))
    return db, graph


@asynccontextmanager
async def connect(params: StdioServerParameters) -> AsyncIterator[ClientSession]:
    with open(os.devnull, "w") as quiet:  # the baseline greets on stderr
        async with stdio_client(params, errlog=quiet) as streams, ClientSession(*streams) as client:
            await client.initialize()
            yield client


def botwire_call(kind: str, n: int, size: int) -> tuple[str, dict[str, Any]]:
    if kind == "store a new fact":
        return "remember", {"key": f"new{n:05}", "value": fact(size + n)}
    if kind == "add a note":
        return "append_note", {"key": "log", "text": f"note {n}: {fact(n)}"}
    if kind == "read a fact":
        return "recall", {"key": f"fact{n * 7919 % size:05}"}
    return "search_memory", {"query": f"code{n * 7919 % size:05}"}


def baseline_call(kind: str, n: int, size: int) -> tuple[str, dict[str, Any]]:
    if kind == "store a new fact":
        entity = {"name": f"new{n:05}", "entityType": "fact", "observations": [fact(size + n)]}
        return "create_entities", {"entities": [entity]}
    if kind == "add a note":
        return "add_observations", {
            "observations": [{"entityName": "log", "contents": [f"note {n}: {fact(n)}"]}]
        }
    if kind == "read a fact":
        return "open_nodes", {"names": [f"fact{n * 7919 % size:05}"]}
    return "search_nodes", {"query": f"code{n * 7919 % size:05}"}


async def timed(client: ClientSession, name: str, arguments: dict[str, Any]) -> float:
    started = time.perf_counter()
    result = await client.call_tool(name, arguments)
    elapsed = time.perf_counter() - started
    if result.isError:
        raise RuntimeError(f"{name}({arguments}) failed: {result.content}")
    return elapsed * 1000


async def measure(size: int, rounds: int, calls: int, folder: Path, script: Path) -> list[str]:
    db, graph = fill(folder, size)
    env = {**os.environ, "MEMORY_FILE_PATH": str(graph)}
    ours = StdioServerParameters(
        command=sys.executable, args=["-m", "botwire.cli", "mcp", "--namespace", "claude",
                                      "--url", db], env=env,
    )  # fmt: skip
    theirs = StdioServerParameters(command="node", args=[str(script)], env=env)
    times: dict[tuple[str, str], list[float]] = {}
    async with connect(ours) as botwire, connect(theirs) as baseline:
        for round_ in range(rounds):
            for kind in CALLS:
                mine: list[float] = []
                other: list[float] = []
                for i in range(calls):
                    n = round_ * calls + i
                    pair = [
                        (botwire, botwire_call(kind, n, size), mine),
                        (baseline, baseline_call(kind, n, size), other),
                    ]
                    for client, (name, arguments), into in pair[:: 1 if i % 2 else -1]:
                        into.append(await timed(client, name, arguments))
                times.setdefault((kind, "botwire"), []).append(statistics.median(mine))
                times.setdefault((kind, "baseline"), []).append(statistics.median(other))
    rows = []
    for kind in CALLS:
        ms = statistics.median(times[(kind, "botwire")])
        base = statistics.median(times[(kind, "baseline")])
        rows.append(f"| {size:,} | {kind} | {ms:.2f} | {base:.2f} | **{base / ms:.1f}** |")
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()
    script = baseline_script()
    print("| facts | call | botwire mcp (ms) | server-memory (ms) | server-memory / botwire |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in SIZES:
            for row in await measure(size, args.rounds, args.calls, Path(tmp), script):
                print(row, flush=True)


if __name__ == "__main__":
    asyncio.run(main())
