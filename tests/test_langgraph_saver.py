"""BotWireSaver run the way LangGraph's demanding users run it: states of any size, DeltaChannel
threads pruned and read at depth, listings ordered as SqliteSaver orders them, checkpoints of
the earlier layout, on every store."""

from __future__ import annotations

import asyncio
import base64
import contextvars
import operator
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.base import BaseCheckpointSaver, Checkpoint
from langgraph.checkpoint.conformance.test_utils import generate_checkpoint, generate_metadata
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from botwire import Memory
from botwire.errors import BotWireError
from botwire.langgraph import BotWireSaver
from botwire.langgraph._steps import Call, Steps


def config(thread_id: Any, checkpoint_ns: str = "", **more: Any) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns, **more}}


# -- no state ceiling --------------------------------------------------------------------------


def test_a_50_mb_state_and_a_2_mb_write_round_trip(url: str) -> None:
    saver = BotWireSaver(url)
    state = os.urandom(50 * 1024 * 1024)
    stored = saver.put(config("big"), generate_checkpoint(channel_values={"blob": state}),
                       generate_metadata(), {})  # fmt: skip
    large_write = "w" * (2 * 1024 * 1024)
    saver.put_writes(stored, [("tool", large_write), ("small", 1)], "task-1")
    found = saver.get_tuple(config("big"))
    assert found is not None
    assert found.checkpoint["channel_values"]["blob"] == state
    assert found.pending_writes == [("task-1", "tool", large_write), ("task-1", "small", 1)]
    listed = list(saver.list(config("big")))
    assert [t.checkpoint["channel_values"]["blob"] == state for t in listed] == [True]
    saver.delete_thread("big")
    assert saver.get_tuple(config("big")) is None
    assert Memory(saver._namespace("big"), url).keys() == []  # no piece is left behind


class Chat(TypedDict):
    messages: Annotated[list[str], operator.add]


def tool_graph(saver: BotWireSaver) -> CompiledStateGraph[Any, Any, Any, Any]:
    """A graph whose tool answers 400 KB each turn."""

    def tool(state: Chat) -> dict[str, Any]:
        return {"messages": [f"result {len(state['messages'])}: " + "x" * 400_000]}

    builder = StateGraph(Chat)
    builder.add_node("tool", tool)
    builder.add_edge(START, "tool")
    return builder.compile(checkpointer=saver)


def test_a_graph_with_large_tool_results_goes_on_past_a_megabyte(url: str) -> None:
    app = tool_graph(BotWireSaver(url))
    for turn in range(4):
        app.invoke({"messages": [f"turn {turn}"]}, config("tools"))
    messages = app.get_state(config("tools")).values["messages"]
    assert len(messages) == 8 and sum(len(m) for m in messages) > 1_600_000


# -- DeltaChannel threads -------------------------------------------------------------------------


def extend(state: list[int], writes: Sequence[list[int]]) -> list[int]:
    """A DeltaChannel reducer: each write is a list of items."""
    return [*state, *(item for write in writes for item in write)]


class Notes(TypedDict):
    items: Annotated[list[int], DeltaChannel(extend, snapshot_frequency=100)]


class SnapshotEvery10(TypedDict):
    items: Annotated[list[int], DeltaChannel(extend, snapshot_frequency=10)]


def delta_graph(
    saver: BotWireSaver, state: type[Any] = Notes
) -> CompiledStateGraph[Any, Any, Any, Any]:
    def add(state: Any) -> dict[str, Any]:
        return {"items": [len(state["items"])]}

    builder = StateGraph(state)
    builder.add_node("add", add)
    builder.add_edge(START, "add")
    return builder.compile(checkpointer=saver)


def test_prune_keep_latest_keeps_a_delta_channel_whole(url: str) -> None:
    """keep_latest keeps the newest checkpoint and the ancestors its DeltaChannel is rebuilt
    from (SqliteSaver refuses to prune instead); the rest goes."""
    saver = BotWireSaver(url)
    app = delta_graph(saver, SnapshotEvery10)
    for _ in range(33):
        app.invoke({"items": []}, config("notes"))
    before = app.get_state(config("notes")).values["items"]
    assert before == list(range(33))
    count = len(list(saver.list(config("notes"))))
    saver.prune(["notes"], strategy="keep_latest")
    assert app.get_state(config("notes")).values["items"] == before
    assert len(list(saver.list(config("notes")))) < count
    app.invoke({"items": []}, config("notes"))
    assert app.get_state(config("notes")).values["items"] == [*before, 33]


def test_prune_keep_latest_without_delta_channels_keeps_one_checkpoint(url: str) -> None:
    saver = BotWireSaver(url)
    app = tool_graph(saver)
    for turn in range(3):
        app.invoke({"messages": [f"turn {turn}"]}, config("plain"))
    saver.prune(["plain"], strategy="keep_latest")
    assert len(list(saver.list(config("plain")))) == 1
    assert len(app.get_state(config("plain")).values["messages"]) == 6


class Counting(BotWireSaver):
    """Counts the round trips its steps make."""

    calls = 0

    def _run(self, steps: Steps) -> Any:
        return super()._run(self._counted(steps))

    async def _arun(self, steps: Steps) -> Any:
        return await super()._arun(self._counted(steps))

    def _counted(self, steps: Steps) -> Steps:
        answer = None
        try:
            call: Call = steps.send(None)
            while True:
                self.calls += 1
                try:
                    answer = yield call
                except BotWireError as exc:  # a call's error goes on into the steps
                    call = steps.throw(exc)
                    continue
                call = steps.send(answer)
        except StopIteration as done:
            return done.value


def test_a_delta_channel_at_depth_60_is_read_in_a_few_round_trips(url: str) -> None:
    """The same history as LangGraph's own walk (one checkpoint per round trip) gives."""
    saver = Counting(url)
    app = delta_graph(saver)
    for _ in range(60):
        app.invoke({"items": []}, config("deep"))
    saver.calls = 0
    history = saver.get_delta_channel_history(config=config("deep"), channels=["items"])
    assert saver.calls == 1  # the heads and writes of 100 checkpoints (a small state inline)
    walked = BaseCheckpointSaver.get_delta_channel_history(
        saver, config=config("deep"), channels=["items"]
    )
    assert saver.calls > 10  # LangGraph's walk: a round trip per checkpoint
    assert history == walked and len(history["items"]["writes"]) > 10
    assert app.get_state(config("deep")).values["items"] == list(range(60))


def test_a_delta_threads_state_is_read_in_one_round_trip(url: str) -> None:
    """Once a thread's DeltaChannel has been rebuilt, its latest checkpoint comes with the page
    of history LangGraph asks for next: loading the thread takes one round trip. The page
    serves only that checkpoint's history, once."""
    saver = Counting(url)
    app = delta_graph(saver)
    for _ in range(5):
        app.invoke({"items": []}, config("one-trip"))
    saver.calls = 0
    latest = saver.get_tuple(config("one-trip"))
    assert latest is not None
    history = saver.get_delta_channel_history(config=latest.config, channels=["items"])
    assert saver.calls == 1
    walked = BaseCheckpointSaver.get_delta_channel_history(
        saver, config=latest.config, channels=["items"]
    )
    written = [v for _, _, v in history["items"]["writes"] if v]
    assert history == walked and written == [[0], [1], [2], [3], [4]]
    saver.calls = 0  # used once: a second history is read again
    assert saver.get_delta_channel_history(config=latest.config, channels=["items"]) == walked
    assert saver.calls == 1
    older = list(saver.list(config("one-trip")))[3].config
    walked = BaseCheckpointSaver.get_delta_channel_history(
        saver, config=older, channels=["items"]
    )
    saver.get_tuple(config("one-trip"))
    saver.calls = 0  # another checkpoint's history is its own
    assert saver.get_delta_channel_history(config=older, channels=["items"]) == walked
    assert saver.calls == 1
    app.invoke({"items": []}, config("one-trip"))
    assert app.get_state(config("one-trip")).values["items"] == [0, 1, 2, 3, 4, 5]

    async def load() -> int:
        saver.calls = 0
        found = await saver.aget_tuple(config("one-trip"))
        assert found is not None
        await saver.aget_delta_channel_history(config=found.config, channels=["items"])
        return saver.calls

    assert asyncio.run(load()) == 1


def test_a_delta_thread_loaded_with_a_page_reads_on_past_it(url: str) -> None:
    """Past the page read with the latest checkpoint, the history reads on page by page; a
    context copied from the one holding the page (a task, a thread's copy) may use it too,
    and neither cuts the other's history short."""
    saver = Counting(url)
    app = delta_graph(saver)
    while len(list(saver.list(config("long")))) < 130:
        app.invoke({"items": []}, config("long"))
    latest = saver.get_tuple(config("long"))
    assert latest is not None
    walked = BaseCheckpointSaver.get_delta_channel_history(
        saver, config=latest.config, channels=["items"]
    )
    saver.get_tuple(config("long"))
    copied = contextvars.copy_context()
    saver.calls = 0
    in_copy = copied.run(
        saver.get_delta_channel_history, config=latest.config, channels=["items"]
    )
    assert saver.calls == 1  # the page came with the checkpoint: one more page
    here = saver.get_delta_channel_history(config=latest.config, channels=["items"])
    assert saver.calls == 2
    assert in_copy == here == walked
    assert len([v for _, _, v in here["items"]["writes"] if v]) > 40


def test_writes_of_several_tasks_and_beyond_one_value_all_arrive(url: str) -> None:
    """A checkpoint's first writes make its list in one row; another task's are added to it,
    and writes larger together than one value (five of 250 kB) go in as items."""
    saver = Counting(url)
    stored = saver.put(config("writes"), generate_checkpoint(), generate_metadata(), {})
    saver.calls = 0
    saver.put_writes(stored, [("a", 1), ("b", 2)], "task-1")
    assert saver.calls == 1
    saver.calls = 0
    saver.put_writes(stored, [("a", 3)], "task-2")
    assert saver.calls == 1  # a list this saver made: appended to at once
    saver.put_writes(stored, [("a", 4)], "task-1")  # task-1's slot 0 is taken: the first stays
    large = [(f"c{n}", os.urandom(190 * 1024)) for n in range(5)]
    saver.put_writes(stored, large, "task-3")
    elsewhere = Counting(url)  # another process: finds the list there, and appends
    elsewhere.put_writes(stored, [("d", 5)], "task-4")
    assert elsewhere.calls == 2
    found = saver.get_tuple(config("writes"))
    assert found is not None
    assert found.pending_writes == [
        ("task-1", "a", 1), ("task-1", "b", 2), ("task-2", "a", 3),
        *[("task-3", channel, value) for channel, value in large], ("task-4", "d", 5),
    ]  # fmt: skip
    other = saver.put(config("writes"), generate_checkpoint(), generate_metadata(), {})
    saver.put_writes(other, large, "task-3")  # too large for one value from the start
    found = saver.get_tuple(other)
    assert found is not None
    assert found.pending_writes == [("task-3", channel, value) for channel, value in large]


def test_checkpoints_stay_out_of_the_search_index(url: str) -> None:
    """Nobody searches a checkpoint: heads, state and writes are written out of the index
    (on every store), and read back whole."""
    saver = BotWireSaver(url)
    app = delta_graph(saver)
    for _ in range(3):
        app.invoke({"items": []}, config("walrus-thread"))
    namespace = saver._namespace("walrus-thread")
    assert Memory(namespace, url).search("walrus") == []
    assert len(Memory(namespace, url).keys()) > 6
    assert app.get_state(config("walrus-thread")).values["items"] == [0, 1, 2]


def test_the_latest_checkpoint_is_read_in_one_round_trip(url: str) -> None:
    """Its head, state and writes come in one round trip, also in a checkpoint namespace of
    its own, and the writes are its own: not an older checkpoint's, nor those of a newer one
    being written."""
    saver = Counting(url)
    app = delta_graph(saver)
    for _ in range(3):
        app.invoke({"items": []}, config("latest"))
    newest, older = list(saver.list(config("latest")))[:2]
    saver.calls = 0
    found = saver.get_tuple(config("latest"))
    assert saver.calls == 1
    assert found is not None and found.config == newest.config
    assert found.checkpoint == newest.checkpoint and found.pending_writes == []
    assert older.pending_writes  # an older checkpoint's writes are not the newest's
    saver.put_writes(newest.config, [("items", [7])], "task-1")
    saver.calls = 0
    found = saver.get_tuple(config("latest"))
    assert saver.calls == 1
    assert found is not None and found.pending_writes == [("task-1", "items", [7])]
    newer = {**newest.config["configurable"], "checkpoint_id": "9" + newest.checkpoint["id"][1:]}
    saver.put_writes({"configurable": newer}, [("items", [8])], "task-2")  # no head yet
    fresh = Counting(url)  # reads the newest writes key alone
    found = fresh.get_tuple(config("latest"))
    assert fresh.calls == 2  # its writes, read by key
    assert found is not None and found.config == newest.config
    assert found.pending_writes == [("task-1", "items", [7])]
    saver.calls = 0  # reads a page of writes with it (its DeltaChannel was rebuilt): they are in it
    found = saver.get_tuple(config("latest"))
    assert saver.calls == 1
    assert found is not None and found.pending_writes == [("task-1", "items", [7])]
    inner = saver.put(config("latest", "inner"), generate_checkpoint(), generate_metadata(), {})
    saver.calls = 0
    found = saver.get_tuple(config("latest", "inner"))
    assert saver.calls == 1 and found is not None and found.config == inner


def test_delta_history_reads_back_page_by_page_and_along_forks(url: str) -> None:
    """Past a page of checkpoints, and on a branch forked from an old checkpoint, the history
    is LangGraph's own walk's; each further page costs one round trip, of heads and
    writes."""
    saver = Counting(url)
    app = delta_graph(saver)
    for _ in range(125):  # 250 checkpoints: three pages back
        app.invoke({"items": []}, config("long"))
    older = list(saver.list(config("long")))
    at_fork = app.get_state(older[170].config).values["items"]
    fork = app.invoke({"items": []}, older[170].config)  # a branch from an old checkpoint
    assert fork["items"] == [*at_fork, len(at_fork)] and 0 < len(at_fork) < 100
    tip = saver.get_tuple(config("long"))  # the fork's, now the newest
    assert tip is not None
    for named in (config("long"), tip.config, older[0].config, older[99].config,
                  older[170].config, older[-1].config):  # fmt: skip
        saver.calls = 0
        ours = saver.get_delta_channel_history(config=named, channels=["items"])
        assert saver.calls <= 4  # three pages back, and the seed's state
        walked = BaseCheckpointSaver.get_delta_channel_history(
            saver, config=named, channels=["items"]
        )
        assert ours == walked
    assert app.get_state(config("long")).values["items"] == list(range(len(fork["items"])))
    assert len(app.get_state(older[0].config).values["items"]) == 125


# -- listings as SqliteSaver lists ----------------------------------------------------------------


def put_chain(saver: Any, thread_id: str, checkpoint_ns: str, checkpoints: Sequence[Checkpoint]):
    parent: str | None = None
    for checkpoint in checkpoints:
        extra = {"checkpoint_id": parent} if parent else {}
        saver.put(config(thread_id, checkpoint_ns, **extra), checkpoint,
                  generate_metadata(step=len(checkpoint["id"])), {})  # fmt: skip
        parent = checkpoint["id"]


def test_list_orders_as_sqlitesaver_across_threads_and_namespaces(url: str, tmp_path: Path) -> None:
    """Checkpoints of three threads and two checkpoint namespaces, put in turn: ``list(None,
    limit=n)`` gives the newest n of the store, ``list(thread)`` the thread's newest across its
    namespaces, as SqliteSaver does."""
    chains = {(t, ns): [] for t in ("t1", "t2", "t3") for ns in ("", "sub")}
    for _ in range(4):
        for chain in chains.values():
            chain.append(generate_checkpoint())
    ours = BotWireSaver(url)
    with SqliteSaver.from_conn_string(str(tmp_path / "reference.db")) as reference:
        for saver in (ours, reference):
            for (thread_id, checkpoint_ns), chain in chains.items():
                put_chain(saver, thread_id, checkpoint_ns, chain)

        def ids(saver: Any, where: RunnableConfig | None, **kwargs: Any) -> list[str]:
            return [t.checkpoint["id"] for t in saver.list(where, **kwargs)]

        for where, kwargs in [
            (None, {"limit": 3}),
            (None, {}),
            ({"configurable": {"thread_id": "t2"}}, {"limit": 5}),
            (config("t2", "sub"), {"limit": 2}),
            (None, {"before": config("t1", "", checkpoint_id=chains["t2", ""][2]["id"])}),
        ]:
            assert ids(ours, where, **kwargs) == ids(reference, where, **kwargs)


# -- checkpoints of the earlier layout ----------------------------------------------------------


def test_checkpoints_of_the_earlier_layout_stay_readable(url: str) -> None:
    """Until 0.4 a checkpoint's head held the whole checkpoint, inline; such a thread is read,
    listed, continued, rebuilt (its DeltaChannel) and pruned."""
    saver = BotWireSaver(url)

    def dumped(value: Any) -> list[str]:
        kind, data = saver.serde.dumps_typed(value)
        return [kind, base64.b64encode(data).decode("ascii")]

    memory = Memory(saver._namespace("old"), url)
    parent = None
    for step in range(3):
        checkpoint = generate_checkpoint(
            channel_values={"items": [0]} if step == 0 else {},
            channel_versions={"items": step + 1},
        )
        metadata = {"step": step, "counters_since_delta_snapshot": {"items": [step, step]}}
        memory.set(f"c||{checkpoint['id']}", {"checkpoint": dumped(checkpoint),
                                              "metadata": dumped(metadata),
                                              "parent": parent, "run_id": None})  # fmt: skip
        write = {"task": "t", "idx": 0, "channel": "items", "value": dumped([step + 1]), "path": ""}
        memory.append(f"w||{checkpoint['id']}", write)
        parent = checkpoint["id"]
    found = saver.get_tuple(config("old"))
    assert found is not None and found.checkpoint["id"] == parent
    assert found.pending_writes == [("t", "items", [3])]
    assert found.config["configurable"]["thread_id"] == "old"
    assert [t.metadata["step"] for t in saver.list(config("old"))] == [2, 1, 0]
    history = saver.get_delta_channel_history(config=config("old"), channels=["items"])
    assert history["items"]["seed"] == [0]
    assert [w[2] for w in history["items"]["writes"]] == [[1], [2]]
    saver.prune(["old"], strategy="keep_latest")
    assert [t.metadata["step"] for t in saver.list(config("old"))] == [2, 1, 0]  # all needed
    saver.put(found.config, generate_checkpoint(), generate_metadata(step=3), {})
    assert [t.metadata["step"] for t in saver.list(config("old"))] == [3, 2, 1, 0]


@pytest.fixture
def small_pieces(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Pieces of 1 kB, so that a small state is written and read in many."""
    from botwire.langgraph import _keys, checkpoint

    monkeypatch.setattr(checkpoint, "PIECE", 1024)
    monkeypatch.setattr(checkpoint, "BATCH", 4096)  # pieces read per round trip
    monkeypatch.setattr(_keys, "BATCH", 4096)  # and written
    yield


def test_a_state_of_many_pieces_is_written_in_batches_and_appears_whole(
    url: str, small_pieces: None
) -> None:
    saver = Counting(url)
    state = "s" * 100_000  # about 130 pieces, 33 batches
    saver.put(config("many"), generate_checkpoint(channel_values={"s": state}),
              generate_metadata(), {})  # fmt: skip
    assert saver.calls > 30
    found = saver.get_tuple(config("many"))
    assert found is not None and found.checkpoint["channel_values"]["s"] == state


# -- what a review found --------------------------------------------------------------------------


def test_ttl_with_a_delta_channel_is_refused_on_the_first_run(tmp_path: Path) -> None:
    """Checkpoints that expire one by one would leave a DeltaChannel rebuilt from a broken
    chain, silently: the first run that writes one says so instead."""
    from botwire import InvalidRequest

    app = delta_graph(BotWireSaver(f"sqlite:///{tmp_path / 'ttl.db'}", ttl=60))
    with pytest.raises(InvalidRequest, match="DeltaChannel"):
        app.invoke({"items": []}, config("expiring"))
    plain = tool_graph(BotWireSaver(f"sqlite:///{tmp_path / 'ttl.db'}", ttl=60))
    plain.invoke({"messages": ["hi"]}, config("fine"))  # without DeltaChannels, ttl works


def test_copy_thread_copies_writes_of_any_total_size(url: str) -> None:
    saver = BotWireSaver(url)
    stored = saver.put(config("source"), generate_checkpoint(), generate_metadata(), {})
    writes = [(f"ch{n}", "w" * 150_000) for n in range(8)]  # 1.2 MB in all
    saver.put_writes(stored, writes, "task-1")
    saver.copy_thread("source", "copy")
    copied = saver.get_tuple(config("copy", checkpoint_id=stored["configurable"]["checkpoint_id"]))
    assert copied is not None and copied.pending_writes == [("task-1", c, v) for c, v in writes]
    assert copied.config["configurable"]["thread_id"] == "copy"
    saver.put_writes(copied.config, [("more", 1)], "task-2")  # still an append-list
    again = saver.get_tuple(copied.config)
    assert again is not None and again.pending_writes[-1] == ("task-2", "more", 1)


class TwoChannels(TypedDict):
    items: Annotated[list[int], DeltaChannel(extend, snapshot_frequency=10)]
    unused: Annotated[list[int], DeltaChannel(extend, snapshot_frequency=10)]


def test_prune_is_not_held_back_by_a_delta_channel_never_written(tmp_path: Path) -> None:
    saver = BotWireSaver(f"sqlite:///{tmp_path / 'unused.db'}")
    app = delta_graph(saver, TwoChannels)
    for _ in range(33):
        app.invoke({"items": []}, config("two"))
    before = len(list(saver.list(config("two"))))
    saver.prune(["two"], strategy="keep_latest")
    assert len(list(saver.list(config("two")))) < before / 3
    assert app.get_state(config("two")).values["items"] == list(range(33))


def test_a_thread_id_too_long_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    from botwire import InvalidKey

    url = f"sqlite:///{tmp_path / 'long.db'}"
    saver = BotWireSaver(url)
    with pytest.raises(InvalidKey, match="thread_id"):
        saver.put(config("\x01" * 30_000), generate_checkpoint(), generate_metadata(), {})
    assert Memory("langgraph-threads", url).keys() == []
    from botwire import list_namespaces

    assert list_namespaces(url=url) == []
