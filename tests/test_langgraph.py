"""botwire.langgraph against LangGraph's own suites and classes: the checkpointer conformance
suite LangGraph publishes (async and sync methods, every store), and compiled graphs that
resume their threads in other processes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
)
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.test_utils import generate_checkpoint, generate_metadata
from langgraph.checkpoint.sqlite import SqliteSaver

from botwire import InvalidKey, list_namespaces
from botwire.langgraph import BotWireSaver

from .helpers import Server, run_many, run_python
from .langgraph_agent import graph, texts, thread
from .langgraph_conformance import checkpointer_test as main_test
from .langgraph_conformance import validate as main_run

SUITES = ["released", "main"]
"""The conformance suite as released (``langgraph-checkpoint-conformance``), and as it stands on
LangGraph's main branch, with the ``DeltaChannel`` history tests
(``tests/langgraph_conformance``)."""


def conformance(make: Any, suite: str) -> dict[str, Any]:
    """LangGraph's checkpointer conformance suite on the savers ``make()`` gives: each
    capability's failures (none when it passes)."""
    test, run = (checkpointer_test, validate) if suite == "released" else (main_test, main_run)

    @test(name=type(make()).__name__)
    async def saver() -> AsyncIterator[Any]:
        yield make()

    report = asyncio.run(run(saver))
    assert report.results, "the suite ran nothing"
    return {cap: result.failures for cap, result in report.results.items() if not result.passed}


class SyncDriven(BotWireSaver):
    """The sync methods under the conformance suite: each async method calls its sync twin
    in a worker thread."""

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        found = await asyncio.to_thread(
            lambda: list(self.list(config, filter=filter, before=before, limit=limit))
        )
        for item in found:
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await asyncio.to_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await asyncio.to_thread(self.delete_thread, thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await asyncio.to_thread(self.delete_for_runs, run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await asyncio.to_thread(self.copy_thread, source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await asyncio.to_thread(self.prune, thread_ids, strategy=strategy)

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        return await asyncio.to_thread(
            self.get_delta_channel_history, config=config, channels=channels
        )


@pytest.mark.parametrize("suite", SUITES)
def test_the_checkpointer_passes_langgraphs_conformance_suite(url: str, suite: str) -> None:
    assert conformance(lambda: BotWireSaver(url), suite) == {}


@pytest.mark.parametrize("suite", SUITES)
def test_the_sync_methods_pass_it_too(url: str, suite: str) -> None:
    assert conformance(lambda: SyncDriven(url), suite) == {}


def test_every_capability_is_implemented(tmp_path: Path) -> None:
    """The suite skips a capability a saver does not override; this saver has them all."""
    from tests.langgraph_conformance.capabilities import DetectedCapabilities

    detected = DetectedCapabilities.from_instance(BotWireSaver(f"sqlite:///{tmp_path / 'c.db'}"))
    assert detected.missing == frozenset()


@pytest.mark.parametrize("thread_id", ["plain", "a/b", "100%", "x|y", "ünï cödé ✈", "c|x|y", "%2F"])
def test_any_thread_id_and_namespace_round_trip(tmp_path: Path, thread_id: str) -> None:
    saver = BotWireSaver(f"sqlite:///{tmp_path / 'ids.db'}")
    for checkpoint_ns in ["", "sub|graph:1", "a%7Cb"]:
        config: RunnableConfig = {
            "configurable": {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns}
        }
        stored = saver.put(config, generate_checkpoint(channel_values={"k": checkpoint_ns}),
                           generate_metadata(), {})  # fmt: skip
        found = saver.get_tuple(config)
        assert found is not None and found.config == stored
        assert found.checkpoint["channel_values"] == {"k": checkpoint_ns}
    listed = list(saver.list({"configurable": {"thread_id": thread_id}}))
    assert sorted(t.config["configurable"]["checkpoint_ns"] for t in listed) == [
        "", "a%7Cb", "sub|graph:1"
    ]  # fmt: skip
    assert [t.config["configurable"]["thread_id"] for t in saver.list(None)] == [thread_id] * 3


def test_thread_ids_of_any_length_and_type_behave_as_in_sqlitesaver(tmp_path: Path) -> None:
    """Long ids (cut and hashed into a namespace, the id itself kept), control characters,
    an empty id and an int (read back as a str, as SqliteSaver does)."""
    ids: list[Any] = ["a\x00b", "line\nbreak", "", "x" * 600, "x" * 599 + "y", "é/%" * 5000, 5]
    ours = BotWireSaver(f"sqlite:///{tmp_path / 'ids.db'}")
    with SqliteSaver.from_conn_string(str(tmp_path / "reference.db")) as reference:
        for saver in (ours, reference):
            for thread_id in ids:
                config: RunnableConfig = {"configurable": {"thread_id": thread_id,
                                                           "checkpoint_ns": ""}}  # fmt: skip
                checkpoint = generate_checkpoint(channel_values={"id": str(thread_id)})
                saver.put(config, checkpoint, generate_metadata(), {})
                found = saver.get_tuple(config)
                assert found is not None
                assert found.checkpoint["channel_values"] == {"id": str(thread_id)}
                assert found.config["configurable"]["thread_id"] == str(thread_id)

        def threads(saver: Any) -> list[str]:
            return sorted(t.config["configurable"]["thread_id"] for t in saver.list(None))

        assert threads(ours) == threads(reference) == sorted(str(i) for i in ids)


def test_a_thread_id_that_is_not_unicode_is_refused_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'bad.db'}"
    saver = BotWireSaver(url)
    config: RunnableConfig = {"configurable": {"thread_id": "a\ud800b", "checkpoint_ns": ""}}
    with pytest.raises(InvalidKey, match="thread_id"):
        saver.put(config, generate_checkpoint(), generate_metadata(), {})
    assert list_namespaces(url=url) == []


def test_a_ttl_expires_idle_threads(tmp_path: Path) -> None:
    saver = BotWireSaver(f"sqlite:///{tmp_path / 'ttl.db'}", ttl=0.5)
    config: RunnableConfig = {"configurable": {"thread_id": "brief", "checkpoint_ns": ""}}
    stored = saver.put(config, generate_checkpoint(), generate_metadata(), {})
    saver.put_writes(stored, [("messages", "hi")], "task-1")
    found = saver.get_tuple(config)
    assert found is not None and found.pending_writes == [("task-1", "messages", "hi")]
    time.sleep(0.7)
    assert saver.get_tuple(config) is None
    assert list(saver.list(None)) == []


# -- graphs ---------------------------------------------------------------------------------------


def test_a_graph_resumes_its_thread_in_another_process(url: str) -> None:
    app = graph(url, ["Hello Ann!"])
    app.invoke({"messages": [HumanMessage("Hi, I am Ann")]}, thread("ann"))
    out = run_python(
        f"""
        import json
        from langchain_core.messages import HumanMessage
        from tests.langgraph_agent import graph, texts, thread

        app = graph({url!r}, ["You are Ann."])
        state = app.invoke({{"messages": [HumanMessage("Who am I?")]}}, thread("ann"))
        print(json.dumps({{"sent": texts(app.model_inputs[0]),
                           "state": texts(state["messages"])}}))
        """
    )
    second = json.loads(out)
    assert second["sent"] == ["Hi, I am Ann", "Hello Ann!", "Who am I?"]
    assert second["state"] == ["Hi, I am Ann", "Hello Ann!", "Who am I?", "You are Ann."]
    history = list(BotWireSaver(url).list(thread("ann")))
    assert [(h.metadata["source"], h.metadata["step"]) for h in history] == [
        ("loop", 4), ("loop", 3), ("input", 2), ("loop", 1), ("loop", 0), ("input", -1)
    ]  # newest first: each run's input, the state before its step, and after it  # fmt: skip
    latest = graph(url, []).get_state(thread("ann"))
    assert texts(latest.values["messages"])[-1] == "You are Ann."


def test_async_graphs_use_the_native_async_methods(url: str) -> None:
    async def main() -> list[str]:
        app = graph(url, ["one", "two"])
        await app.ainvoke({"messages": [HumanMessage("first")]}, thread("async"))
        state = await app.ainvoke({"messages": [HumanMessage("second")]}, thread("async"))
        return texts(state["messages"])

    assert asyncio.run(main()) == ["first", "one", "second", "two"]


def test_eight_processes_on_one_server_keep_every_checkpoint(tmp_path: Path) -> None:
    with Server(f"sqlite:///{tmp_path / 'served.db'}") as server:
        run_many(
            f"""
            import os
            from langchain_core.messages import HumanMessage
            from tests.langgraph_agent import graph, thread

            worker = os.environ["WORKER"]
            app = graph({server.url!r}, [f"reply {{n}}" for n in range(5)])
            for n in range(5):
                app.invoke({{"messages": [HumanMessage(f"{{worker}}:{{n}}")]}}, thread(worker))
            """,
            8,
        )
        saver = BotWireSaver(server.url)
        for worker in range(8):
            history = list(saver.list(thread(str(worker))))
            assert len(history) == 5 * 3  # each run: its input, the state before its step, after
            latest = graph(server.url, []).get_state(thread(str(worker)))
            assert texts(latest.values["messages"]) == [
                text for n in range(5) for text in (f"{worker}:{n}", f"reply {n}")
            ]
            for item in history:  # every checkpoint readable on its own
                assert saver.get_tuple(item.config) is not None


def test_without_langgraph_the_error_says_what_to_install() -> None:
    out = run_python(
        """
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "langgraph":
                    raise ImportError(f"No module named {name!r}")
        sys.meta_path.insert(0, Block())
        import botwire
        try:
            from botwire.langgraph import BotWireSaver
        except ImportError as exc:
            print(exc)
        """
    )
    assert "pip install -e '.[langgraph]'" in out
    assert "not on the package index" in out
