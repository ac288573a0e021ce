"""Chat history benchmark: `BotWireChatHistory` against LangChain's SQL and file histories.

    python bench/bench_langchain.py [--rounds 5] [--appends 40]

All on one SQLite directory: `BotWireChatHistory` on the embedded store,
`SQLChatMessageHistory` (langchain-community, SQLAlchemy) on a SQLite file and
`FileChatMessageHistory` on a JSON file; then `BotWireChatHistory` through `botwire serve` (HTTP,
the server on a SQLite file in the same directory) and on PostgreSQL.

For each session size (10, 1,000 and 10,000 messages) every history is filled to that size, then
`add_message` of one message is timed (`--appends` times; 10 for the file history from 1,000
messages on, where each append rewrites the whole file) and `messages` (read the whole session
back) five times. Rounds interleave every case; the table has the median over rounds.

Same durability on both SQLite sides: botwire's default (WAL, synchronous=NORMAL: a committed
write survives any process crash) is given to SQLChatMessageHistory's engine too, the fastest
setting it can run with that promise (its own default, a rollback journal with synchronous=FULL,
is slower).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _shared import medians, per_op, pg_schema, start_serve
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import AIMessage, HumanMessage, messages_to_dict

from botwire.langchain import BotWireChatHistory

warnings.simplefilter("ignore")  # LangChain's deprecation notices on the classes measured here

SIZES = (10, 1_000, 10_000)
QUESTION = "What did I tell you about my travel plans for next week? Remind me of the dates."
ANSWER = "You said you fly to Lisbon on Tuesday and come back on Saturday, for a conference."


def filler(size: int) -> list[Any]:
    return [HumanMessage(QUESTION) if n % 2 == 0 else AIMessage(ANSWER) for n in range(size)]


def sql_history(folder: Path, session: str) -> BaseChatMessageHistory:
    from langchain_community.chat_message_histories import SQLChatMessageHistory
    from sqlalchemy import create_engine, event

    engine = create_engine(f"sqlite:///{folder / 'sqlalchemy.db'}")

    @event.listens_for(engine, "connect")
    def pragmas(conn: Any, record: Any) -> None:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")

    return SQLChatMessageHistory(session_id=session, connection=engine)


def file_history(folder: Path, session: str) -> BaseChatMessageHistory:
    from langchain_community.chat_message_histories import FileChatMessageHistory

    return FileChatMessageHistory(str(folder / f"{session}.json"))


def fill(history: BaseChatMessageHistory, size: int) -> None:
    """Bring a new session to ``size`` messages (setup, not measured). The file history adds
    one message at a time, rewriting its whole file each time: its file is written at once."""
    from langchain_community.chat_message_histories import FileChatMessageHistory

    if isinstance(history, FileChatMessageHistory):
        history.file_path.write_text(json.dumps(messages_to_dict(filler(size))))
    else:
        history.add_messages(filler(size))


def measure(
    make: Callable[[str], BaseChatMessageHistory], size: int, appends: int
) -> tuple[float, float]:
    """Microseconds per ``add_message`` on a session of ``size``, and per full read."""
    history = make(f"s{size}-{time.monotonic_ns()}")
    fill(history, size)
    if type(history).__name__ == "FileChatMessageHistory" and size > 100:
        appends = 10  # each append rewrites the whole file: seconds at 10,000
    message = HumanMessage(QUESTION)
    append = per_op(lambda i: history.add_message(message), appends)
    read = per_op(lambda i: history.messages, 5)
    assert len(history.messages) == size + appends
    return append, read


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--appends", type=int, default=200)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="botwire-bench-lc-"))
    server, server_url = start_serve(f"sqlite:///{folder / 'served.db'}")
    with pg_schema() as pg:
        histories: dict[str, Callable[[str], BaseChatMessageHistory]] = {
            "botwire": lambda s: BotWireChatHistory(s, url=f"sqlite:///{folder / 'botwire.db'}"),
            "SQLChatMessageHistory": lambda s: sql_history(folder, s),
            "FileChatMessageHistory": lambda s: file_history(folder, s),
            "botwire over HTTP": lambda s: BotWireChatHistory(s, url=server_url),
        }
        if pg is not None:
            histories["botwire on PostgreSQL"] = lambda s: BotWireChatHistory(s, url=pg)
        cases: dict[str, list[float]] = {}
        try:
            for _ in range(args.rounds):
                for size in SIZES:
                    for name, make in histories.items():
                        append, read = measure(make, size, args.appends)
                        cases.setdefault(f"{name} append {size}", []).append(append)
                        cases.setdefault(f"{name} read {size}", []).append(read)
        finally:
            server.terminate()
    med = medians(cases)
    print(f"median of {args.rounds} rounds; µs per call ({args.appends} appends, 5 reads)\n")
    print("| history | " + " | ".join(f"append @{s:,}" for s in SIZES) + " | "
          + " | ".join(f"read @{s:,}" for s in SIZES) + " |")  # fmt: skip
    print("|---|" + "---:|" * (2 * len(SIZES)))
    for name in histories:
        cells = [f"{med[f'{name} append {s}']:,.0f}" for s in SIZES]
        cells += [f"{med[f'{name} read {s}']:,.0f}" for s in SIZES]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\n| ratio | " + " | ".join(f"@{s:,}" for s in SIZES) + " | target |")
    print("|---|" + "---:|" * len(SIZES) + "---|")
    rows = [
        ("SQLChatMessageHistory append / botwire append", "SQLChatMessageHistory append",
         "botwire append", "≥ 3"),
        ("botwire read / SQLChatMessageHistory read", "botwire read",
         "SQLChatMessageHistory read", "≤ 1"),
        ("FileChatMessageHistory append / botwire append", "FileChatMessageHistory append",
         "botwire append", ""),
    ]  # fmt: skip
    for label, top, bottom, target in rows:
        cells = [f"{med[f'{top} {s}'] / med[f'{bottom} {s}']:.2f}" for s in SIZES]
        print(f"| {label} | " + " | ".join(cells) + f" | {target} |")
    growth = med["botwire append 10000"] / med["botwire append 10"]
    print(f"| botwire append @10,000 / @10 | {growth:.2f} | | | ≤ 1.5 |")
    print("\n" + json.dumps({k: round(v, 1) for k, v in med.items()}))


if __name__ == "__main__":
    main()
