"""AG2 benchmark: what botwire's capability adds to a turn of a classic `ConversableAgent` chat.

    python bench/bench_ag2.py [--rounds 5] [--turns 20]

Two AG2 agents talk with scripted replies (no model), so a turn costs only AG2's own work:
without a capability, with `BotWireCapability` on the embedded store (a memory search before
each reply, each message appended to the kept conversation), and with it but
`remember_conversations=False` (the search alone). The namespace holds 1,000 memories. AG2's own
memory capability, `Teachability`, needs a vector database and a model call for every message,
so it cannot run here without a key; the comparison is with AG2 doing nothing. Rounds
interleave the cases; the table has the median time per turn over rounds.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from autogen import ConversableAgent

from botwire import Memory
from botwire.ag2 import BotWireCapability

CASES = ("AG2 alone", "with BotWireCapability", "memories only (no conversations kept)")


def chat(url: str, case: str, turns: int) -> float:
    """Milliseconds per turn of one conversation of ``turns`` turns."""

    def scripted(recipient: Any, messages: Any = None, sender: Any = None, config: Any = None):  # type: ignore[no-untyped-def]
        return True, f"Noted: {messages[-1]['content']}"

    question = "What about the hotel near the conference?"
    user = ConversableAgent(
        "user", llm_config=False, human_input_mode="NEVER", default_auto_reply=question
    )
    assistant = ConversableAgent("assistant", llm_config=False, human_input_mode="NEVER")
    assistant.register_reply([ConversableAgent, None], scripted, position=0)
    if case != CASES[0]:
        keep = case == CASES[1]
        BotWireCapability("bench", url=url, remember_conversations=keep).add_to_agent(assistant)
    started = time.perf_counter()
    user.initiate_chat(assistant, message="Plan my trip to Lisbon", max_turns=turns, silent=True)
    return (time.perf_counter() - started) / turns * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--turns", type=int, default=20)
    args = parser.parse_args()
    url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='botwire-bench-ag2-')) / 'ag2.db'}"
    topics = ["hotel", "flight", "dinner", "museum", "budget", "conference", "train", "beach"]
    Memory("bench", url).set_many(
        {
            f"fact:{n}": f"note {n} about the {topics[n % len(topics)]} in Lisbon"
            for n in range(1000)
        }
    )
    times: dict[str, list[float]] = {case: [] for case in CASES}
    for _ in range(args.rounds):
        for case in CASES:
            times[case].append(chat(url, case, args.turns))
    med = {case: statistics.median(values) for case, values in times.items()}
    print(f"median of {args.rounds} rounds of a {args.turns}-turn chat; ms per turn\n")
    print("| case | ms per turn | vs AG2 alone |")
    print("|---|---:|---:|")
    for case in CASES:
        print(f"| {case} | {med[case]:.2f} | {med[case] / med[CASES[0]]:.2f} |")


if __name__ == "__main__":
    main()
