"""botwire.autogen against AutoGen's own classes: its Memory and ChatCompletionContext ABCs,
ListMemory and BufferedChatCompletionContext side by side, and an AssistantAgent with a replay
model client that continues a conversation in a second process."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from autogen_core import ComponentModel, FunctionCall, Image
from autogen_core.memory import ListMemory, MemoryContent, MemoryMimeType
from autogen_core.memory import Memory as AgentMemory
from autogen_core.model_context import (
    BufferedChatCompletionContext,
    ChatCompletionContext,
    ChatCompletionContextState,
    UnboundedChatCompletionContext,
)
from autogen_core.models import (
    AssistantMessage,
    FunctionExecutionResult,
    FunctionExecutionResultMessage,
    LLMMessage,
    SystemMessage,
    UserMessage,
)

from botwire import InvalidKey, InvalidRequest, InvalidValue, Memory
from botwire.autogen import BotWireChatCompletionContext, BotWireMemory

from .autogen_agent import agent, call_weather, sent
from .helpers import run_python

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'autogen.db'}"


def text(content: str, **metadata: Any) -> MemoryContent:
    return MemoryContent(content=content, mime_type=MemoryMimeType.TEXT, metadata=metadata or None)


FACTS = [
    text("The user is vegetarian", source="onboarding"),
    MemoryContent(content={"city": "Lisbon", "nights": 3}, mime_type="application/json"),
    MemoryContent(content="# Football\nSupports **Benfica**", mime_type=MemoryMimeType.MARKDOWN),
    text("Allergic to peanuts", severity="high", tags=["food", "health"], checked=True),
]

PIXEL = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
CONVERSATION: list[LLMMessage] = [
    SystemMessage(content="You are helpful."),
    UserMessage(content="Weather in Lisbon?", source="user"),
    AssistantMessage(
        content=[FunctionCall(id="c1", name="weather", arguments='{"city": "Lisbon"}')],
        thought="I should look it up",
        source="assistant",
    ),
    FunctionExecutionResultMessage(
        content=[FunctionExecutionResult(content="Sunny", call_id="c1", name="weather")]
    ),
    AssistantMessage(content="It is sunny.", source="assistant"),
    UserMessage(content=["Look at this", Image.from_base64(PIXEL)], source="user"),
    AssistantMessage(content="A single pixel.", source="assistant"),
]


def dumped(messages: list[LLMMessage]) -> list[dict[str, Any]]:
    return [message.model_dump(mode="json") for message in messages]


# -- BotWireMemory -------------------------------------------------------------------------------


def test_the_classes_are_autogens() -> None:
    memory = BotWireMemory("abc")
    context = BotWireChatCompletionContext("abc")
    assert isinstance(memory, AgentMemory)
    assert isinstance(context, ChatCompletionContext)
    assert memory.component_type == "memory"
    assert context.component_type == "chat_completion_context"


def test_memories_round_trip_exactly(url: str) -> None:
    async def main() -> None:
        memory = BotWireMemory("facts", url=url, k=10)
        for fact in FACTS:
            await memory.add(fact)
        # every fact matches one of these words; each comes back as it went in
        found = await memory.query("vegetarian lisbon benfica peanuts")
        assert sorted(r.model_dump_json() for r in found.results) == sorted(
            f.model_dump_json() for f in FACTS
        )
        json_fact = next(r for r in found.results if r.mime_type is MemoryMimeType.JSON)
        assert json_fact.content == {"city": "Lisbon", "nights": 3}
        # ListMemory answers every query with everything, in order; botwire with what is
        # relevant (on purpose: an agent's memories outgrow a model's context)
        theirs = ListMemory()
        for fact in FACTS:
            await theirs.add(fact)
        assert (await theirs.query("peanuts")).results == FACTS
        assert (await memory.query("peanuts")).results == [FACTS[3]]
        await memory.close()

    run(main())


def test_query_ranks_by_relevance_then_newest(db: str) -> None:
    async def main() -> None:
        memory = BotWireMemory("rank", url=db, k=2)
        await memory.add(text("Likes green tea"))
        await memory.add(text("Likes black coffee"))
        await memory.add(text("Loves green tea"))
        await memory.add(text("Owns a green bicycle"))
        results = (await memory.query("Which green tea?")).results
        # two words ("green", "tea") in as many words: equals, so the newer one first
        assert [r.content for r in results] == ["Loves green tea", "Likes green tea"]
        more = (await memory.query("Which green tea does she like?")).results
        assert [r.content for r in more] == ["Likes green tea", "Loves green tea"]  # + "like"
        by_content = (await memory.query(MemoryContent(content="coffee", mime_type="text/plain")))
        assert [r.content for r in by_content.results] == ["Likes black coffee"]
        assert len((await memory.query("green", k=3)).results) == 3
        assert (await memory.query("submarine")).results == []

    run(main())


def test_score_threshold_keeps_memories_with_enough_of_the_words(db: str) -> None:
    async def main() -> None:
        memory = BotWireMemory("threshold", url=db, k=5, score_threshold=0.6)
        await memory.add(text("Flight to Porto on Friday"))
        await memory.add(text("Porto has good wine"))
        await memory.add(text("Friday is a holiday"))
        query = "When is my flight to Porto, Friday?"  # words: flight, porto, friday
        assert [r.content for r in (await memory.query(query)).results] == [
            "Flight to Porto on Friday"
        ]
        everything = await memory.query(query, score_threshold=0.3)
        assert len(everything.results) == 3

    run(main())


def test_update_context_replaces_its_message_where_list_memory_stacks_them(db: str) -> None:
    async def update_twice(memory: Any, context: ChatCompletionContext) -> list[LLMMessage]:
        await context.add_message(UserMessage(content="Any tea tips?", source="user"))
        await memory.update_context(context)
        await context.add_message(AssistantMessage(content="Try sencha.", source="assistant"))
        await context.add_message(UserMessage(content="And more tea tips?", source="user"))
        await memory.update_context(context)
        return await context.get_messages()

    async def main() -> None:
        ours = BotWireMemory("ctx", url=db)
        theirs = ListMemory()
        for memory in (ours, theirs):
            await memory.add(text("Likes green tea"))
        for context in (
            BufferedChatCompletionContext(buffer_size=10),
            BotWireChatCompletionContext("ctx-session", url=db),
        ):
            messages = await update_twice(ours, context)
            systems = [m for m in messages if isinstance(m, SystemMessage)]
            assert len(systems) == 1  # replaced, not stacked
            assert systems[0].content == ours.header + "1. Likes green tea"
            assert messages[-1] == systems[0]  # after the question it answers
            assert [m.content for m in messages[:-1]] == [
                "Any tea tips?", "Try sencha.", "And more tea tips?"
            ]
        # AutoGen's ListMemory adds one more system message on every call
        stacked = await update_twice(theirs, BufferedChatCompletionContext(buffer_size=10))
        assert sum(isinstance(m, SystemMessage) for m in stacked) == 2

    run(main())


def test_a_persistent_context_only_appends_and_shows_what_applies(db: str) -> None:
    """On a BotWireChatCompletionContext each turn's memory message is appended (nothing is
    rewritten, whatever the conversation's length); the model sees it until the next user
    message, exactly as a BufferedChatCompletionContext whose old message was taken out."""

    async def turns(memory: BotWireMemory, context: ChatCompletionContext) -> list[Any]:
        views = []
        for question in ["Any tea tips?", "Which train to Porto?", "More tea, green?"]:
            await context.add_message(UserMessage(content=question, source="user"))
            await memory.update_context(context)
            for n in range(3):
                await context.add_message(AssistantMessage(content=f"a{n}", source="assistant"))
            views.append(dumped(await context.get_messages()))
        return views

    async def main() -> None:
        memory = BotWireMemory("applies", url=db)
        await memory.add(text("Likes green tea"))
        ours = BotWireChatCompletionContext("applies", url=db, buffer_size=6)
        theirs = BufferedChatCompletionContext(buffer_size=6)
        assert await turns(memory, ours) == await turns(memory, theirs)
        stored = Memory("autogen-contexts", db).get("applies")
        assert len(stored) == 15  # 12 messages and a memory message a turn, appended
        assert [n for n, m in enumerate(stored) if m["type"] == "SystemMessage"] == [1, 6, 11]
        for context in (ours, theirs):  # again in the same turn: the message is replaced
            await memory.update_context(context)
        assert dumped(await ours.get_messages()) == dumped(await theirs.get_messages())
        unbounded = BotWireChatCompletionContext("applies", url=db)
        assert [m.content for m in await unbounded.get_messages()] == [
            "Any tea tips?", "a0", "a1", "a2", "Which train to Porto?", "a0", "a1", "a2",
            "More tea, green?", "a0", "a1", "a2", memory.header + "1. Likes green tea",
        ]  # fmt: skip
        saved = ChatCompletionContextState.model_validate(await unbounded.save_state())
        assert dumped(saved.messages) == dumped(await unbounded.get_messages())

    run(main())


def test_update_context_shows_the_newest_when_none_is_relevant(db: str) -> None:
    """Never nothing while memories exist: with no relevant memory, the newest ones (up to
    ``k``); before any user message, nothing."""

    async def main() -> None:
        memory = BotWireMemory("none", url=db, k=2)
        for fact in ("Likes green tea", "Lives in Porto", "Has a cat"):
            await memory.add(text(fact))
        context = BufferedChatCompletionContext(buffer_size=5)
        result = await memory.update_context(context)  # no user message yet
        assert result.memories.results == [] and await context.get_messages() == []
        await context.add_message(UserMessage(content="Book a train", source="user"))
        result = await memory.update_context(context)
        assert [r.content for r in result.memories.results] == ["Has a cat", "Lives in Porto"]
        await context.add_message(UserMessage(content="Any tea for me?", source="user"))
        result = await memory.update_context(context)
        assert [r.content for r in result.memories.results] == ["Likes green tea", "Has a cat"]
        empty = BotWireMemory("empty", url=db)
        result = await empty.update_context(context)
        assert result.memories.results == []

    run(main())


def test_the_seed_preference_reaches_a_new_process(url: str) -> None:
    """Stored "The user prefers Python" in one process; in a later one, "What should I learn
    next?" (no word in common): the model's input holds the preference."""
    run_python(
        f"""
        import asyncio
        from autogen_core.memory import MemoryContent
        from botwire.autogen import BotWireMemory

        async def main():
            memory = BotWireMemory("user-7", url={url!r})
            await memory.add(MemoryContent(content="The user prefers Python",
                                           mime_type="text/plain"))
        asyncio.run(main())
        """
    )
    out = run_python(
        f"""
        import asyncio, json
        from tests.autogen_agent import agent, sent

        async def main():
            assistant, client = agent({url!r}, ["Learn asyncio next."])
            await assistant.run(task="What should I learn next?")
            print(json.dumps(sent(client)))

        asyncio.run(main())
        """
    )
    memories = [m["content"] for m in json.loads(out) if m["type"] == "SystemMessage"]
    assert any("The user prefers Python" in str(content) for content in memories), memories


def test_list_memory_parity_name_content_and_an_empty_query(db: str) -> None:
    async def main() -> None:
        ours, theirs = BotWireMemory("parity", url=db), ListMemory(name="parity")
        for memory in (ours, theirs):
            for fact in ("Likes green tea", "Lives in Porto"):
                await memory.add(text(fact))
            assert memory.name == "parity"
            assert [m.content for m in memory.content] == ["Likes green tea", "Lives in Porto"]
            assert [m.content for m in (await memory.query("")).results] == [
                "Likes green tea", "Lives in Porto"]  # fmt: skip
            memory.content = [text("Only this")]
            assert [m.content for m in (await memory.query("")).results] == ["Only this"]
        assert BotWireMemory("parity", url=db, name="prefs").name == "prefs"
        with pytest.raises(InvalidValue):
            ours.content = [text("fine"), MemoryContent(content=b"x", mime_type="image/png")]
        assert [m.content for m in ours.content] == ["Only this"]  # nothing written

    run(main())


def test_clear_and_memories_shared_by_instances(db: str) -> None:
    async def main() -> None:
        writer, reader = BotWireMemory("shared", url=db), BotWireMemory("shared", url=db)
        await writer.add(text("Has a cat named Miso"))
        assert [r.content for r in (await reader.query("cat")).results] == ["Has a cat named Miso"]
        await reader.clear()
        assert (await writer.query("cat")).results == []
        await writer.close()
        await reader.close()

    run(main())


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (MemoryContent(content=b"\x89PNG", mime_type=MemoryMimeType.IMAGE), "image/\\*"),
        (MemoryContent(content=b"\x00", mime_type=MemoryMimeType.BINARY), "octet-stream"),
        (MemoryContent(content="a,b", mime_type="text/csv"), "text/csv"),
        (MemoryContent(content={"a": 1}, mime_type="text/plain"), "must be str"),
        (MemoryContent(content=b"{}", mime_type="application/json"), "must be str or dict"),
        (MemoryContent(content="x", mime_type="text/plain", metadata={"when": {1, 2}}), "set"),
    ],
)
def test_bad_memories_are_refused_and_nothing_is_written(
    db: str, content: MemoryContent, problem: str
) -> None:
    memory = BotWireMemory("bad", url=db)
    with pytest.raises(InvalidValue, match=problem):
        run(memory.add(content))
    assert Memory("bad", db).keys() == []


def test_bad_queries_are_refused(db: str) -> None:
    memory = BotWireMemory("q", url=db)
    with pytest.raises(InvalidRequest, match="needs text"):
        run(memory.query(MemoryContent(content=b"x", mime_type=MemoryMimeType.BINARY)))
    with pytest.raises(InvalidRequest, match="takes k and score_threshold"):
        run(memory.query("tea", top=3))
    with pytest.raises(InvalidRequest, match="score_threshold"):
        run(memory.query("tea", score_threshold=2))
    with pytest.raises(InvalidRequest, match="k"):
        BotWireMemory("q", url=db, k=0)
    with pytest.raises(InvalidRequest, match="score_threshold"):
        BotWireMemory("q", url=db, score_threshold=-0.1)


def test_memory_component_round_trip(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOTWIRE_TOKEN", "secret-token")
    memory = BotWireMemory("studio", url=db, k=3, score_threshold=0.5)
    model = memory.dump_component()
    assert model.provider == "botwire.autogen.BotWireMemory"
    assert model.config == {"namespace": "studio", "url": db, "k": 3, "score_threshold": 0.5}
    assert "secret-token" not in model.model_dump_json()
    # as AutoGen Studio loads it: from JSON, through the ABC
    loaded = AgentMemory.load_component(ComponentModel.model_validate_json(model.model_dump_json()))
    assert isinstance(loaded, BotWireMemory)
    assert loaded.dump_component() == model

    async def main() -> None:
        await memory.add(text("Speaks Portuguese"))
        assert [r.content for r in (await loaded.query("portuguese")).results] == [
            "Speaks Portuguese"
        ]

    run(main())


# -- BotWireChatCompletionContext ----------------------------------------------------------------


def test_messages_round_trip_and_survive_a_new_context(url: str) -> None:
    async def main() -> None:
        context = BotWireChatCompletionContext("user 7: trip/plans ✈", url=url)
        for message in CONVERSATION:
            await context.add_message(message)
        again = BotWireChatCompletionContext("user 7: trip/plans ✈", url=url)
        assert dumped(await again.get_messages()) == dumped(CONVERSATION)  # images by their data
        await context.close()
        await again.close()

    run(main())


@pytest.mark.parametrize("buffer_size", [1, 2, 3, 4, 5, 7, 10])
def test_the_buffer_matches_buffered_chat_completion_context(db: str, buffer_size: int) -> None:
    async def main() -> None:
        ours = BotWireChatCompletionContext(f"b{buffer_size}", url=db, buffer_size=buffer_size)
        theirs = BufferedChatCompletionContext(buffer_size=buffer_size)
        for message in CONVERSATION:
            await ours.add_message(message)
            await theirs.add_message(message)
            # a buffer never starts with a function result whose call it cut off
            assert dumped(await ours.get_messages()) == dumped(await theirs.get_messages())
        assert dumped(ChatCompletionContextState.model_validate(await ours.save_state()).messages) \
            == dumped(ChatCompletionContextState.model_validate(await theirs.save_state()).messages)
        await ours.clear()
        await theirs.clear()
        assert await ours.get_messages() == await theirs.get_messages() == []

    run(main())


def test_initial_messages_start_a_new_session_only(db: str) -> None:
    start = [SystemMessage(content="Be brief.")]

    async def main() -> None:
        ours = BotWireChatCompletionContext("init", url=db, initial_messages=start)
        theirs = UnboundedChatCompletionContext(initial_messages=start)
        assert await ours.get_messages() == await theirs.get_messages() == start
        for context in (ours, theirs):
            await context.add_message(UserMessage(content="hi", source="user"))
        assert await ours.get_messages() == await theirs.get_messages()
        # a context made again on the session keeps it, not a second copy of the start
        again = BotWireChatCompletionContext("init", url=db, initial_messages=start)
        assert await again.get_messages() == await ours.get_messages()
        await again.clear()  # as AutoGen's contexts do, clear drops the initial messages too
        await theirs.clear()
        fresh = BotWireChatCompletionContext("init", url=db, initial_messages=start)
        assert await fresh.get_messages() == await theirs.get_messages() == []

    run(main())


def test_concurrent_writers_lose_no_message(db: str) -> None:
    async def writer(number: int) -> None:
        context = BotWireChatCompletionContext("busy", url=db)
        for n in range(25):
            await context.add_message(UserMessage(content=f"{number}:{n}", source=f"w{number}"))

    async def main() -> None:
        await asyncio.gather(*(writer(number) for number in range(4)))
        messages = await BotWireChatCompletionContext("busy", url=db).get_messages()
        assert len(messages) == 100
        for number in range(4):
            mine = [m.content for m in messages if m.source == f"w{number}"]  # type: ignore[union-attr]
            assert mine == [f"{number}:{n}" for n in range(25)]

    run(main())


def test_save_and_load_state(db: str) -> None:
    async def main() -> None:
        ours = BotWireChatCompletionContext("saved", url=db)
        theirs = UnboundedChatCompletionContext()
        for message in CONVERSATION[:5]:
            await ours.add_message(message)
            await theirs.add_message(message)
        state = await ours.save_state()
        assert state == await theirs.save_state()
        json.dumps(state, default=str)  # what AssistantAgent.save_state callers write out
        other = BotWireChatCompletionContext("restored", url=db)
        await other.load_state(state)
        assert await other.get_messages() == CONVERSATION[:5]
        with pytest.raises(InvalidValue, match="saved model context"):
            await other.load_state({"messages": [{"type": "Nope"}]})
        assert await other.get_messages() == CONVERSATION[:5]

    run(main())


def test_bad_messages_and_session_ids_are_refused_and_nothing_is_written(db: str) -> None:
    context = BotWireChatCompletionContext("s", url=db)
    for bad in ("hello", {"type": "UserMessage", "content": "x", "source": "u"}, None):
        with pytest.raises(InvalidValue, match="LLMMessage"):
            run(context.add_message(bad))  # type: ignore[arg-type]
    assert Memory("autogen-contexts", db).keys() == []
    for session in ("a\x00b", "line\nbreak", "", "x" * 600):
        with pytest.raises(InvalidKey):
            BotWireChatCompletionContext(session, url=db)
    with pytest.raises(InvalidRequest, match="buffer_size"):
        BotWireChatCompletionContext("s", url=db, buffer_size=0)
    assert Memory("autogen-contexts", db).keys() == []


def test_context_component_round_trip(db: str) -> None:
    start = [SystemMessage(content="Be brief.")]
    context = BotWireChatCompletionContext(
        "comp", namespace="ctx", url=db, buffer_size=4, initial_messages=start
    )
    model = context.dump_component()
    assert model.provider == "botwire.autogen.BotWireChatCompletionContext"
    loaded = ChatCompletionContext.load_component(
        ComponentModel.model_validate_json(model.model_dump_json())
    )
    assert isinstance(loaded, BotWireChatCompletionContext)
    assert loaded.dump_component() == model

    async def main() -> None:
        await context.add_message(UserMessage(content="hi", source="user"))
        assert await loaded.get_messages() == [*start, UserMessage(content="hi", source="user")]

    run(main())


# -- an agent, restarted -------------------------------------------------------------------------

def test_an_agent_continues_its_conversation_in_another_process(url: str) -> None:
    async def first() -> list[dict[str, Any]]:
        assistant, client = agent(url, [call_weather("Lisbon"), "Sunny: try the vegetarian tasca."])
        (memory,) = assistant._memory or []
        await memory.add(MemoryContent(content="The user is vegetarian", mime_type="text/plain"))
        await memory.add(MemoryContent(content={"city": "Lisbon"}, mime_type="application/json"))
        await memory.add(MemoryContent(content="Supports Benfica", mime_type="text/markdown"))
        result = await assistant.run(task="Where should a vegetarian eat in Lisbon today?")
        assert result.messages[-1].content == "Sunny: try the vegetarian tasca."  # type: ignore[union-attr]
        assert len(client.create_calls) == 2  # the tool call, then the answer
        return sent(client)

    first_call = run(first())
    assert [m["type"] for m in first_call] == ["SystemMessage", "UserMessage", "SystemMessage"]
    memories = first_call[2]["content"].splitlines()[1:]
    assert sorted(memories[:2]) == ['1. The user is vegetarian', '2. {"city": "Lisbon"}'] or \
        sorted(memories[:2]) == ['1. {"city": "Lisbon"}', "2. The user is vegetarian"]
    assert memories[2] == "3. Supports Benfica"  # not relevant: shown after, as the newest

    out = run_python(
        f"""
        import asyncio, json
        from tests.autogen_agent import agent, sent

        async def main():
            assistant, client = agent({url!r}, ["You support Benfica."])
            await assistant.run(task="Remind me which football club I support")
            print(json.dumps(sent(client)))

        asyncio.run(main())
        """
    )
    second_call = json.loads(out)
    types = [m["type"] for m in second_call]
    assert types == [
        "SystemMessage",  # the agent's own
        "UserMessage",  # the first run: the question,
        "AssistantMessage",  # the tool call,
        "FunctionExecutionResultMessage",  # its result,
        "AssistantMessage",  # the answer
        "UserMessage",  # the second run's question
        "SystemMessage",  # and the memories relevant to it, once
    ]
    assert second_call[1]["content"] == "Where should a vegetarian eat in Lisbon today?"
    assert second_call[2]["content"][0]["name"] == "weather"
    assert second_call[3]["content"][0]["content"] == "Sunny in Lisbon, 24°C"
    assert second_call[4]["content"] == "Sunny: try the vegetarian tasca."
    assert second_call[6]["content"].splitlines()[1] == "1. Supports Benfica"
    # the first run's memories were replaced, not kept beside the new ones
    assert sum("Relevant memories" in str(m.get("content")) for m in second_call) == 1


def test_an_agent_state_saves_and_loads_through_the_context(db: str) -> None:
    async def main() -> None:
        assistant, _ = agent(db, ["Hello!"])
        await assistant.run(task="Hi there")
        state = await assistant.save_state()
        restored, client = agent(db.replace("autogen.db", "other.db"), ["Welcome back."])
        await restored.load_state(state)
        await restored.run(task="I am back")
        assert [m["content"] for m in sent(client) if m["type"] == "UserMessage"] == [
            "Hi there", "I am back"
        ]

    run(main())


def test_without_autogen_the_error_says_what_to_install() -> None:
    out = run_python(
        """
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "autogen_core":
                    raise ImportError(f"No module named {name!r}")
        sys.meta_path.insert(0, Block())
        import botwire
        try:
            from botwire.autogen import BotWireMemory
        except ImportError as exc:
            print(exc)
        """
    )
    assert "pip install -e '.[autogen]'" in out and "not on the package index" in out
