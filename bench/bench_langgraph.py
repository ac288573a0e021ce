"""LangGraph checkpointer benchmark: `BotWireSaver` against `langgraph-checkpoint-sqlite`'s
`SqliteSaver`, side by side.

    python bench/bench_langgraph.py [--rounds 5] [--runs 10]

- A 20-step graph run: a `StateGraph(MessagesState)` whose node adds a message until there are
  20, on a new thread each run (`--runs` runs per round): every step writes a checkpoint and
  its writes, as LangGraph does.
- A turn on a thread whose `DeltaChannel` (LangGraph's channel that stores each step's writes and
  rebuilds its value from them) is 60 checkpoints deep: the run reads the channel's history
  back to its last snapshot (`get_delta_channel_history`) and writes the new checkpoint.
- Reads on a thread of 1,000 checkpoints (each holding ten chat messages): `get_tuple` of the
  latest, `get_tuple` of one by id, `list(limit=10)`, and `list` of the whole thread.

- The store: `BotWireStore` against `InMemoryStore` and `langgraph-checkpoint-sqlite`'s
  `SqliteStore` (same directory, same pragmas), with 3,000 items in 300 namespaces: `put` of a
  changed value, `get`, `search` of one namespace (`limit=10`), and `search` of all 300 with a
  filter: on a text field, `{"n": {"$gt": 8}}` (most items pass), `$gte` (one in twenty
  passes); and a text query in one namespace and across all 300 (without an index the others
  ignore a query and list items; BotWireStore ranks by it, then lists the rest: no ratio).
  Every filter runs in the store's SQL. `BotWireStore` on PostgreSQL for scale.

`BotWireSaver` on the embedded store and `SqliteSaver` on a file in the same directory, with
the same durability (WAL, `synchronous=NORMAL`: a committed write survives a process crash;
`SqliteSaver`'s connection gets the pragma botwire uses). `BotWireSaver` through `botwire serve`
and on PostgreSQL, and LangGraph's `InMemorySaver` (nothing persisted), are shown for scale.
Rounds interleave every case; the tables have the median over rounds.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypedDict

from _shared import medians, pg_schema, start_serve
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.base import BaseCheckpointSaver, empty_checkpoint
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.store.memory import InMemoryStore

from botwire.langgraph import BotWireSaver, BotWireStore

STEPS = 20
CHECKPOINTS = 1_000


def sqlite_saver(path: Path) -> SqliteSaver:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return SqliteSaver(conn)


def build(saver: BaseCheckpointSaver[Any]) -> Any:
    def step(state: MessagesState) -> dict[str, Any]:
        return {"messages": [AIMessage(f"step {len(state['messages'])}: a short reply")]}

    def more(state: MessagesState) -> str:
        return "step" if len(state["messages"]) < STEPS else END

    builder = StateGraph(MessagesState)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", more)
    return builder.compile(checkpointer=saver)


def run_graph(saver: BaseCheckpointSaver[Any], runs: int) -> float:
    """Milliseconds per 20-step run."""
    graph = build(saver)
    start = time.perf_counter()
    for _ in range(runs):
        config = {"configurable": {"thread_id": f"run-{time.monotonic_ns()}"}}
        state = graph.invoke({"messages": [HumanMessage("go")]}, config)
        assert len(state["messages"]) == STEPS
    return (time.perf_counter() - start) / runs * 1e3


def extend(state: list[str], writes: list[list[str]]) -> list[str]:
    return [*state, *(item for write in writes for item in write)]


class Notes(TypedDict):
    notes: Annotated[list[str], DeltaChannel(extend, snapshot_frequency=1_000)]


DEPTH = 60


def delta_turns(saver: BaseCheckpointSaver[Any], turns: int) -> float:
    """Milliseconds per turn on a thread whose DeltaChannel is :data:`DEPTH` checkpoints deep
    (its snapshot is the thread's first checkpoint)."""

    def note(state: Notes) -> dict[str, Any]:
        return {"notes": [f"note {len(state['notes'])}: the user prefers trains to planes"]}

    builder = StateGraph(Notes)
    builder.add_node("note", note)
    builder.add_edge(START, "note")
    graph = builder.compile(checkpointer=saver)
    config = {"configurable": {"thread_id": f"delta-{time.monotonic_ns()}"}}
    invokes = 0
    while len(list(saver.list(config))) < DEPTH:  # type: ignore[arg-type]
        graph.invoke({"notes": []}, config)
        invokes += 1
    start = time.perf_counter()
    for _ in range(turns):
        state = graph.invoke({"notes": []}, config)
    elapsed = time.perf_counter() - start
    assert len(state["notes"]) == invokes + turns
    return elapsed / turns * 1e3


def fill(saver: BaseCheckpointSaver[Any], thread: str) -> list[str]:
    """A thread of 1,000 checkpoints, each holding ten messages; their ids, oldest first."""
    messages = [HumanMessage("What did I tell you about my travel plans?"),
                AIMessage("You fly to Lisbon on Tuesday.")] * 5  # fmt: skip
    config: dict[str, Any] = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    ids = []
    for step in range(CHECKPOINTS):
        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = {"messages": messages}
        checkpoint["channel_versions"] = {"messages": step + 1}
        config = saver.put(config, checkpoint, {"source": "loop", "step": step}, {})  # type: ignore[arg-type]
        ids.append(config["configurable"]["checkpoint_id"])
    return ids


def reads(saver: BaseCheckpointSaver[Any], thread: str, ids: list[str]) -> dict[str, float]:
    """Microseconds per call of each read."""
    latest = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    one = {"configurable": {"thread_id": thread, "checkpoint_ns": "", "checkpoint_id": ids[500]}}

    def timed(call: Callable[[], object], times: int) -> float:
        start = time.perf_counter()
        for _ in range(times):
            call()
        return (time.perf_counter() - start) / times * 1e6

    found = saver.get_tuple(latest)
    assert found is not None and found.config["configurable"]["checkpoint_id"] == ids[-1]
    assert len(list(saver.list(latest))) == CHECKPOINTS  # type: ignore[arg-type]
    return {
        "get_tuple latest": timed(lambda: saver.get_tuple(latest), 200),  # type: ignore[arg-type]
        "get_tuple by id": timed(lambda: saver.get_tuple(one), 200),  # type: ignore[arg-type]
        "list limit 10": timed(lambda: list(saver.list(latest, limit=10)), 100),  # type: ignore[arg-type]
        "list 1,000": timed(lambda: list(saver.list(latest)), 5),  # type: ignore[arg-type]
    }


READS = ("get_tuple latest", "get_tuple by id", "list limit 10", "list 1,000")
STORE_CASES = (
    "put",
    "get",
    "search one namespace",
    "filter on text",
    "filter $gt 8",
    "filter $gte",
    "text query, one namespace",
    "text query, 300 namespaces",
)
RANKED = STORE_CASES[-2:]
"""Without an index, SqliteStore and InMemoryStore ignore a query: no ratio for these."""
ITEMS = 3_000
NAMESPACES = 300


def sqlite_store(path: Path) -> Any:
    from langgraph.store.sqlite import SqliteStore

    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    store = SqliteStore(conn)
    store.setup()
    return store


def fill_store(store: Any) -> None:
    for n in range(ITEMS):
        store.put(("users", str(n % NAMESPACES)), f"fact-{n}",
                  {"text": f"fact {n} about travel and food", "n": n % 20,
                   "kind": "trip" if n % 100 == 0 else "note"})  # fmt: skip


def store_ops(store: Any, round_number: int) -> dict[str, float]:
    """Microseconds per call of each store operation."""

    def timed(call: Callable[[int], object], times: int) -> float:
        start = time.perf_counter()
        for i in range(times):
            call(i)
        return (time.perf_counter() - start) / times * 1e6

    def put(i: int) -> None:
        store.put(("users", str(i % NAMESPACES)), f"fact-{i}",
                  {"text": "changed", "n": round_number % 20, "kind": "note"})  # fmt: skip

    users = ("users",)
    return {
        "put": timed(put, 200),
        "get": timed(lambda i: store.get(("users", str(i % NAMESPACES)), f"fact-{i}"), 200),
        "search one namespace": timed(lambda i: store.search(("users", str(i % 10))), 50),
        "filter on text": timed(lambda i: store.search(users, filter={"kind": "trip"}), 20),
        "filter $gt 8": timed(lambda i: store.search(users, filter={"n": {"$gt": 8}}), 20),
        "filter $gte": timed(lambda i: store.search(users, filter={"n": {"$gte": 19}}), 20),
        "text query, one namespace": timed(
            lambda i: store.search(("users", str(i % 10)), query="fact 7 about food"), 50
        ),
        "text query, 300 namespaces": timed(
            lambda i: store.search(users, query="fact 7 about food"), 10
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--stores-only", action="store_true", help="only the store's cases")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="botwire-bench-lg-"))
    server, server_url = start_serve(f"sqlite:///{folder / 'served.db'}")
    with pg_schema() as pg:
        savers: dict[str, BaseCheckpointSaver[Any]] = {
            "BotWireSaver": BotWireSaver(f"sqlite:///{folder / 'botwire.db'}"),
            "SqliteSaver": sqlite_saver(folder / "sqlite_saver.db"),
            "BotWireSaver over HTTP": BotWireSaver(server_url),
            "InMemorySaver": InMemorySaver(),
        }
        if pg is not None:
            savers["BotWireSaver on PostgreSQL"] = BotWireSaver(pg)
        if args.stores_only:
            savers = {}
        threads = {name: fill(saver, "long") for name, saver in savers.items()}
        stores: dict[str, Any] = {
            "BotWireStore": BotWireStore(f"sqlite:///{folder / 'botwire_store.db'}"),
            "SqliteStore": sqlite_store(folder / "sqlite_store.db"),
            "InMemoryStore": InMemoryStore(),
        }
        if pg is not None:
            stores["BotWireStore on PostgreSQL"] = BotWireStore(pg)
        for store in stores.values():
            fill_store(store)
        cases: dict[str, list[float]] = {}
        try:
            for round_number in range(args.rounds):
                for name, saver in savers.items():
                    cases.setdefault(f"{name} run", []).append(run_graph(saver, args.runs))
                    cases.setdefault(f"{name} delta", []).append(delta_turns(saver, args.runs))
                    for read, value in reads(saver, "long", threads[name]).items():
                        cases.setdefault(f"{name} {read}", []).append(value)
                for name, store in stores.items():
                    for case, value in store_ops(store, round_number).items():
                        cases.setdefault(f"{name} {case}", []).append(value)
        finally:
            server.terminate()
    med = medians(cases)
    print(f"median of {args.rounds} rounds\n")
    if savers:
        print(f"| saver | 20-step run, ms | DeltaChannel turn at depth {DEPTH}, ms | "
              + " | ".join(f"{r}, µs" for r in READS) + " |")  # fmt: skip
        print("|---|---:|---:|" + "---:|" * len(READS))
        for name in savers:
            cells = [f"{med[f'{name} run']:,.1f}", f"{med[f'{name} delta']:,.1f}"]
            cells += [f"{med[f'{name} {r}']:,.0f}" for r in READS]
            print(f"| {name} | " + " | ".join(cells) + " |")
        print("\n| / SqliteSaver | 20-step run | DeltaChannel turn | " + " | ".join(READS) + " |")
        print("|---|---:|---:|" + "---:|" * len(READS))
        for name in [n for n in savers if n.startswith("BotWireSaver")]:
            cases_ = ("run", "delta", *READS)
            ratios = [med[f"{name} {c}"] / med[f"SqliteSaver {c}"] for c in cases_]
            print(f"| {name} | " + " | ".join(f"{r:.2f}" for r in ratios) + " |")
    print(f"\nstores, {ITEMS:,} items in {NAMESPACES} namespaces; µs per call\n")
    print("| store | " + " | ".join(STORE_CASES) + " |")
    print("|---|" + "---:|" * len(STORE_CASES))
    for name in stores:
        cells = [f"{med[f'{name} {c}']:,.0f}" for c in STORE_CASES]
        print(f"| {name} | " + " | ".join(cells) + " |")
    ratios = [
        "—" if c in RANKED else f"{med[f'BotWireStore {c}'] / med[f'SqliteStore {c}']:.2f}"
        for c in STORE_CASES
    ]
    print("| BotWireStore / SqliteStore | " + " | ".join(ratios) + " |")
    print("\n" + json.dumps({k: round(v, 1) for k, v in med.items()}))


if __name__ == "__main__":
    main()
