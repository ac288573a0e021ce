"""AutoGen benchmark: a persistent model context against AutoGen's own way to persist one, and
what a memory query costs as memories pile up.

    python bench/bench_autogen.py [--rounds 5] [--turns 100]

- Context: what an agent does for each message, `add_message` then `get_messages` (the newest
  20: `buffer_size=20`), on a conversation of 10, 1,000 and 10,000 messages.
  `BotWireChatCompletionContext` on the embedded store, through `botwire serve` and on
  PostgreSQL, against AutoGen's documented persistence: a `BufferedChatCompletionContext`
  whose `save_state()` is written to a JSON file after every message (to a temporary file,
  then renamed into place, so a crash never leaves half a file), the best that way can do.
- Memory: `BotWireMemory.query` (`k=5`) among 100 and 10,000 memories, embedded (a file of
  their own, so that no other writes wait to be indexed at the first search): a question
  whose words few memories hold, and one word that a fifth of them hold.

Rounds interleave every case; the tables have the median over rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _shared import medians, pg_schema, start_serve
from autogen_core.memory import MemoryContent
from autogen_core.model_context import BufferedChatCompletionContext, ChatCompletionContext
from autogen_core.models import AssistantMessage, LLMMessage, UserMessage

from botwire import AsyncMemory
from botwire.autogen import BotWireChatCompletionContext, BotWireMemory

SIZES = (10, 1_000, 10_000)
MEMORIES = (100, 10_000)
BUFFER = 20
QUESTION = "What did I tell you about my travel plans for next week? Remind me of the dates."
ANSWER = "You said you fly to Lisbon on Tuesday and come back on Saturday, for a conference."


def message(n: int) -> LLMMessage:
    if n % 2 == 0:
        return UserMessage(content=QUESTION, source="user")
    return AssistantMessage(content=ANSWER, source="assistant")


class SavedToFile:
    """AutoGen's own persistence: a buffered context whose state is written out after every
    message."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.context = BufferedChatCompletionContext(buffer_size=BUFFER)

    async def add_message(self, message: LLMMessage) -> None:
        await self.context.add_message(message)
        state = await self.context.save_state()
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(state, default=str))
        os.replace(temporary, self.path)

    async def get_messages(self) -> list[LLMMessage]:
        return await self.context.get_messages()

    async def fill(self, size: int) -> None:
        for n in range(size):
            await self.context.add_message(message(n))


async def fill(context: Any, size: int) -> None:
    """Bring a new conversation to ``size`` messages (setup, not measured): the stored form of
    an AutoGen message is its JSON dump, appended 500 at a time."""
    if isinstance(context, SavedToFile):
        await context.fill(size)
        return
    store = AsyncMemory("autogen-contexts", context.url)
    for start in range(0, size, 500):
        dumps = [message(n).model_dump(mode="json") for n in range(start, min(size, start + 500))]
        await store.append(context.session_id, *dumps)
    await store.aclose()


async def measure(context: ChatCompletionContext | SavedToFile, size: int, turns: int) -> float:
    """Microseconds per turn: add one message, then read the buffer the model sees."""
    await fill(context, size)
    start = time.perf_counter()
    for n in range(turns):
        await context.add_message(message(n))
        assert len(await context.get_messages()) == min(BUFFER, size + n + 1)
    return (time.perf_counter() - start) / turns * 1e6


QUERIES = {
    "a question": "Which city do I fly to for the conference, and when?",
    "a common word": "hotel",
}


async def query_time(memory: BotWireMemory, query: str, queries: int) -> float:
    start = time.perf_counter()
    for _ in range(queries):
        await memory.query(query)
    return (time.perf_counter() - start) / queries * 1e6


async def fill_memories(memory: BotWireMemory, count: int, rng: random.Random) -> None:
    topics = ["flight", "hotel", "diet", "family", "work", "music", "sport", "budget", "books"]
    for n in range(count):
        topic, other = rng.sample(topics, 2)
        fact = f"Note {n} about {topic} and {other}: detail {rng.randint(0, 10**6)}"
        await memory.add(MemoryContent(content=fact, mime_type="text/plain"))
    await memory.add(MemoryContent(content="Flies to Lisbon on Tuesday for the conference",
                                   mime_type="text/plain"))  # fmt: skip
    await memory.query("warm up")  # the index catches up on the writes at the first search


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--turns", type=int, default=100)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="botwire-bench-ag-"))
    server, server_url = start_serve(f"sqlite:///{folder / 'served.db'}")
    embedded = f"sqlite:///{folder / 'botwire.db'}"
    with pg_schema() as pg:
        contexts: dict[str, Callable[[str], Any]] = {
            "botwire": lambda s: BotWireChatCompletionContext(s, url=embedded, buffer_size=BUFFER),
            "save_state to a file": lambda s: SavedToFile(folder / f"{s}.json"),
            "botwire over HTTP": lambda s: BotWireChatCompletionContext(
                s, url=server_url, buffer_size=BUFFER
            ),
        }
        if pg is not None:
            contexts["botwire on PostgreSQL"] = lambda s: BotWireChatCompletionContext(
                s, url=pg, buffer_size=BUFFER
            )
        facts = f"sqlite:///{folder / 'memories.db'}"  # apart from the contexts' writes
        memories = {count: BotWireMemory(f"facts-{count}", url=facts) for count in MEMORIES}
        cases: dict[str, list[float]] = {}
        try:
            rng = random.Random(7)
            for count, memory in memories.items():
                asyncio.run(fill_memories(memory, count, rng))
            for _ in range(args.rounds):
                for size in SIZES:
                    for name, make in contexts.items():
                        context = make(f"s{size}-{time.monotonic_ns()}")
                        turn = asyncio.run(measure(context, size, args.turns))
                        cases.setdefault(f"{name} {size}", []).append(turn)
                for count, memory in memories.items():
                    for label, query in QUERIES.items():
                        cases.setdefault(f"query {label} {count}", []).append(
                            asyncio.run(query_time(memory, query, 20))
                        )
        finally:
            server.terminate()
    med = medians(cases)
    print(f"median of {args.rounds} rounds; µs per turn (add_message + get_messages of the newest "
          f"{BUFFER}), {args.turns} turns\n")  # fmt: skip
    print("| context | " + " | ".join(f"@{s:,} messages" for s in SIZES) + " |")
    print("|---|" + "---:|" * len(SIZES))
    for name in contexts:
        print(f"| {name} | " + " | ".join(f"{med[f'{name} {s}']:,.0f}" for s in SIZES) + " |")
    print("\n| ratio | " + " | ".join(f"@{s:,}" for s in SIZES) + " |")
    print("|---|" + "---:|" * len(SIZES))
    ratios = [f"{med[f'save_state to a file {s}'] / med[f'botwire {s}']:.2f}" for s in SIZES]
    print("| save_state to a file / botwire | " + " | ".join(ratios) + " |")
    growth = med["botwire 10000"] / med["botwire 10"]
    print(f"| botwire @10,000 / @10 | {growth:.2f} | | |")
    print("\n| BotWireMemory.query (k=5), embedded | " + " | ".join(
        f"{count:,} memories" for count in MEMORIES) + " |")  # fmt: skip
    print("|---|" + "---:|" * len(MEMORIES))
    for label in QUERIES:
        cells = [f"{med[f'query {label} {count}']:,.0f}" for count in MEMORIES]
        print(f"| {label}, µs | " + " | ".join(cells) + " |")
    print("\n" + json.dumps({k: round(v, 1) for k, v in med.items()}))


if __name__ == "__main__":
    main()
