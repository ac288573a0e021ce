"""The LangChain integration against LangChain's own interfaces, classes and standard tests."""

from __future__ import annotations

import asyncio
import json
import warnings
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_classic.embeddings import CacheBackedEmbeddings
from langchain_classic.memory import ConversationBufferMemory
from langchain_core._api.deprecation import (
    LangChainDeprecationWarning,
    LangChainPendingDeprecationWarning,
)
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    messages_to_dict,
)
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import RunnableLambda
from langchain_core.runnables.history import RunnableWithMessageHistory
from langchain_core.stores import BaseStore
from langchain_tests.integration_tests import (
    BaseStoreAsyncTests,
    BaseStoreSyncTests,
    RetrieversIntegrationTests,
)

import botwire
from botwire import InvalidKey, InvalidRequest, InvalidValue, Memory, WrongType
from botwire.langchain import (
    BotWireByteStore,
    BotWireChatHistory,
    BotWireRetriever,
    BotWireStore,
)

from .conftest import Store
from .helpers import run_many, run_python

# BaseChatMessageHistory, RunnableWithMessageHistory and ConversationBufferMemory are marked
# deprecated in favour of LangGraph persistence; they are still what most users run. (The
# langchain_classic imports stay at the top: its first import turns these warnings back on,
# which would override filters applied before it.)
pytestmark = [
    pytest.mark.filterwarnings(f"ignore::{warning.__module__}.{warning.__name__}")
    for warning in (LangChainDeprecationWarning, LangChainPendingDeprecationWarning)
]

MESSAGES: list[BaseMessage] = [
    SystemMessage("You are terse.", id="s1"),
    HumanMessage("hi 🧠", name="ann", id="h1", additional_kwargs={"lang": "en", "n": [1, 2.5]}),
    HumanMessage(
        content=[
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ]
    ),
    AIMessage(
        "calling a tool",
        id="a1",
        tool_calls=[{"name": "search", "args": {"q": "x", "k": 3}, "id": "call_1"}],
        invalid_tool_calls=[
            {"name": "bad", "args": "{oops", "id": "call_2", "error": "not JSON", "type": None}
        ],
        response_metadata={"model_name": "fake", "finish_reason": "tool_calls"},
        usage_metadata={"input_tokens": 3, "output_tokens": 5, "total_tokens": 8},
    ),
    ToolMessage("result", tool_call_id="call_1", name="search", artifact={"rows": [1, 2]}),
    FunctionMessage("42", name="calc"),
    ChatMessage("looks fine", role="critic"),
    AIMessage(""),
]


def assert_same_messages(got: list[BaseMessage], want: list[BaseMessage]) -> None:
    assert [type(m) for m in got] == [type(m) for m in want]
    assert [m.model_dump() for m in got] == [m.model_dump() for m in want]


@pytest.fixture
def mem(store: Store) -> Memory:
    return store.memory("langchain-sessions")


def history(mem: Memory, session_id: str = "user 42: a/b ✓", **kwargs: Any) -> BotWireChatHistory:
    return BotWireChatHistory(session_id, memory=mem, **kwargs)


# -- the chat history ------------------------------------------------------------------------


def test_is_a_langchain_chat_history(mem: Memory) -> None:
    h = history(mem)
    assert isinstance(h, BaseChatMessageHistory)
    assert h.messages == []
    assert str(h) == ""


def test_every_message_type_round_trips_exactly(mem: Memory) -> None:
    h = history(mem)
    h.add_messages(MESSAGES)
    assert_same_messages(h.messages, MESSAGES)
    assert_same_messages(history(mem).messages, MESSAGES)  # a new instance reads the same
    assert len(mem.get("user 42: a/b ✓")) == len(MESSAGES)  # one item per message


def test_a_streamed_chunk_is_stored_as_the_message_it_adds_up_to(mem: Memory) -> None:
    chunks = [AIMessageChunk("Hel", id="run-1"), AIMessageChunk("lo"), AIMessageChunk("!")]
    total = chunks[0] + chunks[1] + chunks[2]
    h = history(mem)
    h.add_message(total)
    (stored,) = h.messages
    assert type(stored) is AIMessage
    assert stored.content == "Hello!" and stored.id == "run-1"


def test_order_is_insertion_order_within_one_microsecond(mem: Memory) -> None:
    """On SQLite and PostgreSQL the test clock stands still: every message has the same time."""
    h = history(mem)
    for n in range(30):
        h.add_message(HumanMessage(str(n)))
    h.add_messages([AIMessage(str(n)) for n in range(30, 40)])
    assert [m.content for m in h.messages] == [str(n) for n in range(40)]


def test_session_ids_are_any_text(mem: Memory) -> None:
    ids = ["with space", "user:42", "a/b/c", "ключ 🧠", "?#%", "x" * 512]
    for n, session in enumerate(ids):
        history(mem, session).add_message(HumanMessage(str(n)))
    for n, session in enumerate(ids):
        assert [m.content for m in history(mem, session).messages] == [str(n)]


def test_max_messages_keeps_the_newest_and_a_leading_system_message(mem: Memory) -> None:
    h = history(mem, "windowed", max_messages=4)
    h.add_message(SystemMessage("rules"))
    for n in range(10):
        h.add_messages([HumanMessage(f"q{n}"), AIMessage(f"a{n}")])
    assert [m.content for m in h.messages] == ["rules", "a8", "q9", "a9"]
    plain = history(mem, "plain", max_messages=3)
    for n in range(10):
        plain.add_messages([HumanMessage(f"q{n}"), AIMessage(f"a{n}")])
    assert [m.content for m in plain.messages] == ["a8", "q9", "a9"]
    later = history(mem, "system later", max_messages=2)
    later.add_messages([HumanMessage("q"), SystemMessage("not leading"), AIMessage("a")])
    assert [m.content for m in later.messages] == ["not leading", "a"]


def test_ttl_expires_an_idle_session(store: Store, mem: Memory) -> None:
    h = history(mem, "idle", ttl=1.0)
    h.add_message(HumanMessage("one"))
    store.advance(0.6)
    h.add_message(HumanMessage("two"))  # every write restarts the clock
    store.advance(0.6)
    assert [m.content for m in h.messages] == ["one", "two"]
    store.advance(0.6)
    assert h.messages == []


def test_clear(mem: Memory) -> None:
    h = history(mem)
    h.add_messages(MESSAGES)
    h.clear()
    assert h.messages == []
    assert "user 42: a/b ✓" not in mem


async def test_async_methods_are_native(mem: Memory, monkeypatch: pytest.MonkeyPatch) -> None:
    import langchain_core.chat_history as base

    def no_thread(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an async method ran the sync one in a thread")

    monkeypatch.setattr(base, "run_in_executor", no_thread)
    h = history(mem, "async", max_messages=5)
    await h.aadd_messages(MESSAGES)
    assert_same_messages(await h.aget_messages(), [MESSAGES[0], *MESSAGES[-4:]])
    await h.aclear()
    assert await h.aget_messages() == []


def test_a_session_written_by_the_hosted_sdk_is_read_and_converted(
    store: Store, mem: Memory
) -> None:
    old = [HumanMessage("from the old SDK"), AIMessage("still here")]
    text = json.dumps(messages_to_dict(old))
    if store.name == "http":  # as the hosted SDK wrote it: its own PUT on the compatible route
        base_url = store.backend.base_url  # type: ignore[attr-defined]
        put = httpx.put(f"{base_url}/memory/langchain-sessions/legacy", json={"value": text})
        assert put.status_code == 200
    else:
        mem.set("legacy", text)
    h = history(mem, "legacy", max_messages=3)
    assert_same_messages(h.messages, old)
    h.add_messages([HumanMessage("new"), AIMessage("answer")])
    assert [m.content for m in h.messages] == ["still here", "new", "answer"]
    assert isinstance(mem.get("legacy"), list)  # botwire's own format from now on
    mem.set("legacy2", json.dumps(messages_to_dict([SystemMessage("rules"), HumanMessage("q")])))
    asyncio.run(history(mem, "legacy2", max_messages=2).aadd_messages([AIMessage("a")]))
    assert [m.content for m in history(mem, "legacy2").messages] == ["rules", "a"]


@pytest.mark.parametrize("stored", [{"not": "a history"}, 5, "not json"])
def test_a_key_that_holds_something_else_is_a_clear_error(mem: Memory, stored: Any) -> None:
    mem.set("other", stored)
    h = history(mem, "other")
    with pytest.raises(WrongType, match="something else than a chat history"):
        h.messages  # noqa: B018
    with pytest.raises(WrongType, match="something else than a chat history"):
        h.add_message(HumanMessage("x"))
    assert mem.get("other") == stored


@pytest.mark.parametrize(
    "bad", [["just text"], [HumanMessage("ok"), {"role": "user"}], [HumanMessage("ok"), None]]
)
def test_a_non_message_is_refused_and_nothing_is_written(mem: Memory, bad: list[Any]) -> None:
    h = history(mem, "strict")
    with pytest.raises(InvalidValue, match="LangChain messages"):
        h.add_messages(bad)
    with pytest.raises(InvalidValue, match="LangChain messages"):
        asyncio.run(h.aadd_messages(bad))
    assert "strict" not in mem


def test_a_session_id_over_512_bytes_is_its_own_session(mem: Memory) -> None:
    """Ids that share their first 600 bytes stay apart; the id is kept whole."""
    ids = ["é" * 300 + "a", "é" * 300 + "b", "x" * 60_000]
    for n, session in enumerate(ids):
        history(mem, session).add_message(HumanMessage(str(n)))
    for n, session in enumerate(ids):
        assert [m.content for m in history(mem, session).messages] == [str(n)]
        assert history(mem, session).session_id == session
    assert all(len(key.encode()) <= 512 for key in mem.keys())  # noqa: SIM118
    history(mem, ids[0]).clear()
    assert history(mem, ids[0]).messages == [] and len(mem.keys()) == 2


def test_a_message_over_a_megabyte_round_trips(store: Store, mem: Memory) -> None:
    """A 1.5 MB multimodal message, as SQLChatMessageHistory stores it; over a limit, the error
    names the setting that raises it (the history's own, or a server's) and nothing is
    written."""
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 1_500_000}}
    message = HumanMessage(content=[{"type": "text", "text": "what is this?"}, image])
    h = history(mem, "pictures")
    if store.name.startswith("http"):  # the shared server keeps the default 1 MiB
        with pytest.raises(botwire.ValueTooLarge, match=r"server's limit.*BOTWIRE_MAX_VALUE_BYTES"):
            h.add_message(message)
        assert h.messages == []
    else:
        h.add_message(message)
        assert_same_messages(h.messages, [message])
    small = history(mem, "small", max_message_bytes=1_000_000)
    with pytest.raises(botwire.ValueTooLarge, match=r"BotWireChatHistory\(max_message_bytes="):
        small.add_message(message)
    assert small.messages == []


def test_non_finite_floats_in_metadata_round_trip(mem: Memory) -> None:
    """As LangChain's own serializer (json.dumps) writes and reads them."""
    message = AIMessage("hi", response_metadata={"logprob": float("-inf"), "x": float("nan")})
    h = history(mem, "floats")
    h.add_messages([HumanMessage("a"), message, AIMessage("b", response_metadata={"p": 0.5})])
    first, got, last = h.messages
    assert got.response_metadata["logprob"] == float("-inf")
    assert got.response_metadata["x"] != got.response_metadata["x"]  # NaN
    assert got.content == "hi" and type(got) is AIMessage
    assert first.content == "a" and last.response_metadata == {"p": 0.5}
    window = history(mem, "window", max_messages=3)
    window.add_messages([SystemMessage("sys", response_metadata={"x": float("inf")})])
    window.add_messages([HumanMessage(f"m{n}") for n in range(4)])
    assert [m.content for m in window.messages] == ["sys", "m2", "m3"]  # kept first


@pytest.mark.parametrize("session_id", ["", "line\nbreak", "nul\x00", "tab\t", 42, None])
def test_a_bad_session_id_is_refused(mem: Memory, session_id: Any) -> None:
    with pytest.raises(InvalidKey, match="session_id"):
        BotWireChatHistory(session_id, memory=mem)
    assert mem.keys() == []


def test_bad_settings_are_refused(mem: Memory) -> None:
    with pytest.raises(botwire.InvalidRequest, match="max_messages"):
        history(mem, max_messages=0)
    with pytest.raises(botwire.InvalidRequest, match="ttl"):
        history(mem, ttl=-1)
    with pytest.raises(TypeError, match="memory="):
        BotWireChatHistory("s", memory="sqlite:///x.db")  # type: ignore[arg-type]


def test_botwire_itself_emits_no_warnings(mem: Memory) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        h = history(mem, "quiet", max_messages=3, ttl=60)
        h.add_messages(MESSAGES)
        h.messages  # noqa: B018
        asyncio.run(h.aadd_messages([HumanMessage("x")]))
        h.clear()
        store = BotWireStore("quiet", memory=mem)
        store.mset([("k", 1)])
        list(store.yield_keys())
    assert [str(w.message) for w in caught] == []


# -- LangChain runnables and classic memory ---------------------------------------------------


def _chain(seen: list[list[BaseMessage]], answers: list[str], url: str) -> Any:
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You are a bot."), MessagesPlaceholder("history"), ("human", "{question}")]
    )

    def record(value: Any) -> Any:
        seen.append(value.to_messages())
        return value

    model = GenericFakeChatModel(messages=iter([AIMessage(a) for a in answers]))
    return RunnableWithMessageHistory(
        prompt | RunnableLambda(record) | model,
        lambda session_id: BotWireChatHistory(session_id, url=url),
        input_messages_key="question",
        history_messages_key="history",
    )


def test_runnable_with_message_history_sync_and_async(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'chain.db'}"
    seen: list[list[BaseMessage]] = []
    chain = _chain(seen, ["Hello Ann", "You are Ann", "Hi Bob"], url)
    ann = {"configurable": {"session_id": "ann"}}
    assert chain.invoke({"question": "I am Ann"}, config=ann).content == "Hello Ann"
    reply = asyncio.run(chain.ainvoke({"question": "Who am I?"}, config=ann))
    assert reply.content == "You are Ann"
    chain.invoke({"question": "I am Bob"}, config={"configurable": {"session_id": "bob"}})
    assert [m.content for m in seen[1]] == ["You are a bot.", "I am Ann", "Hello Ann", "Who am I?"]
    assert [m.content for m in seen[2]] == ["You are a bot.", "I am Bob"]  # sessions apart
    assert len(BotWireChatHistory("ann", url=url).messages) == 4


@pytest.mark.slow
def test_a_conversation_continues_in_a_second_process(url: str) -> None:
    code = f"""
        import json, warnings
        warnings.simplefilter("ignore")
        from tests.test_langchain import _chain
        seen = []
        chain = _chain(seen, [ANSWER], {url!r})
        chain.invoke({{"question": QUESTION}}, config={{"configurable": {{"session_id": "s 1"}}}})
        print(json.dumps([[type(m).__name__, m.content] for m in seen[0]]))
    """
    first = run_python(code.replace("ANSWER", '"Noted, Ann"').replace("QUESTION", '"I am Ann"'))
    assert json.loads(first) == [["SystemMessage", "You are a bot."], ["HumanMessage", "I am Ann"]]
    second = run_python(code.replace("ANSWER", '"Ann"').replace("QUESTION", '"Who am I?"'))
    assert json.loads(second) == [
        ["SystemMessage", "You are a bot."],
        ["HumanMessage", "I am Ann"],
        ["AIMessage", "Noted, Ann"],
        ["HumanMessage", "Who am I?"],
    ]


def test_conversation_buffer_memory(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'classic.db'}"
    first = ConversationBufferMemory(
        chat_memory=BotWireChatHistory("classic", url=url), return_messages=True
    )
    first.save_context({"input": "My name is Ann"}, {"output": "Hello Ann"})
    again = ConversationBufferMemory(
        chat_memory=BotWireChatHistory("classic", url=url), return_messages=True
    )
    loaded = again.load_memory_variables({})["history"]
    assert_same_messages(loaded, [HumanMessage("My name is Ann"), AIMessage("Hello Ann")])


PROCESSES = 8


@pytest.mark.slow
@pytest.mark.parametrize("max_messages", [None, 50])
def test_workers_writing_one_session_lose_nothing(url: str, max_messages: int | None) -> None:
    run_many(
        f"""
        import os
        from langchain_core.messages import AIMessage, HumanMessage
        from botwire.langchain import BotWireChatHistory
        h = BotWireChatHistory("shared", url={url!r}, max_messages={max_messages!r})
        worker = os.environ["WORKER"]
        for i in range(100):
            h.add_messages([HumanMessage(f"{{worker}}:{{i}}:q"), AIMessage(f"{{worker}}:{{i}}:a")])
        """,
        PROCESSES,
    )
    messages = BotWireChatHistory("shared", url=url).messages
    assert len(messages) == (max_messages or PROCESSES * 200)
    for worker in map(str, range(PROCESSES)):
        mine = [m.content for m in messages if str(m.content).startswith(f"{worker}:")]
        numbered = [(int(c.split(":")[1]), c.split(":")[2]) for c in mine]  # type: ignore[union-attr]
        assert numbered == sorted(numbered, key=lambda p: (p[0], p[1] == "a"))
        if max_messages is None:
            assert len(numbered) == 200
    for q, a in zip(messages[::2], messages[1::2], strict=True):  # each add stayed together
        assert type(q) is HumanMessage and type(a) is AIMessage
        assert str(q.content)[:-1] == str(a.content)[:-1]


# -- the key-value stores: LangChain's standard tests on every backend ------------------------


class TestBotWireStoreSync(BaseStoreSyncTests[Any]):
    @pytest.fixture
    def kv_store(self, store: Store) -> BaseStore[str, Any]:
        return BotWireStore("lc-store", memory=store.memory())

    @pytest.fixture
    def three_values(self) -> tuple[Any, Any, Any]:
        return {"a": [1, 2.5, None]}, "two 🧠", 3


class TestBotWireStoreAsync(BaseStoreAsyncTests[Any]):
    @pytest.fixture
    async def kv_store(self, store: Store) -> BaseStore[str, Any]:
        return BotWireStore("lc-store", memory=store.amemory())

    @pytest.fixture
    def three_values(self) -> tuple[Any, Any, Any]:
        return [1, "x"], None, {"nested": {"k": True}}


class TestBotWireByteStoreSync(BaseStoreSyncTests[bytes]):
    @pytest.fixture
    def kv_store(self, store: Store) -> BaseStore[str, bytes]:
        return BotWireByteStore("lc-bytes", memory=store.memory())

    @pytest.fixture
    def three_values(self) -> tuple[bytes, bytes, bytes]:
        return b"foo", bytes(range(256)), b""


class TestBotWireByteStoreAsync(BaseStoreAsyncTests[bytes]):
    @pytest.fixture
    async def kv_store(self, store: Store) -> BaseStore[str, bytes]:
        return BotWireByteStore("lc-bytes", memory=store.amemory())

    @pytest.fixture
    def three_values(self) -> tuple[bytes, bytes, bytes]:
        return b"\x00\xff", "é".encode(), b"x" * 1000


def test_stores_use_one_round_trip_per_call(store: Store) -> None:
    calls: list[int] = []
    execute = store.backend.execute

    def counting(ops: Any) -> Any:
        calls.append(len(ops))
        return execute(ops)

    store.backend.execute = counting  # type: ignore[method-assign]
    try:
        kv = BotWireStore("rt", memory=store.memory())
        kv.mset([(f"k{n}", n) for n in range(300)])
        assert kv.mget([f"k{n}" for n in range(0, 300, 2)]) == list(range(0, 300, 2))
        kv.mdelete([f"k{n}" for n in range(100)])
        assert sorted(kv.yield_keys(prefix="k2")) == sorted(
            f"k{n}" for n in range(100, 300) if str(n).startswith("2")
        )
    finally:
        del store.backend.execute
    assert calls == [300, 150, 100, 1]


def test_store_ttl_and_bad_values(store: Store) -> None:
    kv = BotWireStore("ttl", memory=store.memory(), ttl=0.5)
    kv.mset([("k", {"v": 1})])
    assert kv.mget(["k"]) == [{"v": 1}]
    store.advance(0.8)
    assert kv.mget(["k"]) == [None]
    with pytest.raises(InvalidValue):
        kv.mset([("ok", 1), ("bad", {1, 2})])
    raw = BotWireByteStore("ttl", memory=store.memory())
    with pytest.raises(InvalidValue, match="bytes"):
        raw.mset([("b", "text")])  # type: ignore[list-item]
    assert kv.mget(["ok", "bad"]) == [None, None] and raw.mget(["b"]) == [None]
    store.memory("ttl").set("not-bytes", {"a": 1})
    with pytest.raises(WrongType, match="BotWireByteStore"):
        raw.mget(["not-bytes"])


def test_bytes_stay_out_of_the_search_index(tmp_path: Path) -> None:
    """A ByteStore's base64 is no text to search (nor to fill the index with); a
    BotWireStore's values are searched."""
    url = f"sqlite:///{tmp_path / 'bytes.db'}"
    BotWireByteStore("blobs", url=url).mset([("walrus-blob", b"walrus")])
    asyncio.run(BotWireByteStore("blobs", url=url).amset([("walrus-async", b"walrus")]))
    BotWireStore("values", url=url).mset([("walrus-value", {"a": 1})])
    assert Memory("blobs", url).search("walrus") == []
    assert [hit.key for hit in Memory("values", url).search("walrus")] == ["walrus-value"]
    assert BotWireByteStore("blobs", url=url).mget(["walrus-blob"]) == [b"walrus"]


def test_byte_store_caches_embeddings(tmp_path: Path) -> None:
    class Counting(DeterministicFakeEmbedding):
        calls: int = 0

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            self.calls += len(texts)
            return super().embed_documents(texts)

    url = f"sqlite:///{tmp_path / 'embeddings.db'}"
    underlying = Counting(size=8)
    cached = CacheBackedEmbeddings.from_bytes_store(
        underlying, BotWireByteStore("embeddings", url=url), namespace="fake-8",
        key_encoder="sha256",
    )  # fmt: skip
    first = cached.embed_documents(["a", "b"])
    again = CacheBackedEmbeddings.from_bytes_store(
        underlying, BotWireByteStore("embeddings", url=url), namespace="fake-8",
        key_encoder="sha256",
    ).embed_documents(["a", "b", "c"])  # fmt: skip
    assert again[:2] == first and underlying.calls == 3  # "a" and "b" came from botwire


# -- imports ----------------------------------------------------------------------------------


def test_lazy_names_on_botwire() -> None:
    out = run_python(
        """
        import sys
        import botwire
        assert "langchain_core" not in sys.modules
        from botwire import BotWireChatHistory, BotWireStore, BotWireByteStore
        from botwire.langchain import BotWireChatHistory as Direct
        assert BotWireChatHistory is Direct and "langchain_core" in sys.modules
        print("ok")
        """
    )
    assert out.strip() == "ok"


def test_without_langchain_the_error_says_what_to_install() -> None:
    out = run_python(
        """
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "langchain_core":
                    raise ImportError(f"No module named {name!r}")
        sys.meta_path.insert(0, Block())
        import botwire
        try:
            from botwire import BotWireChatHistory
        except ImportError as exc:
            print(exc)
        """
    )
    assert "pip install -e '.[langchain]'" in out
    assert "not on the package index" in out


# -- the retriever: long-term memories in a prompt ----------------------------------------------

FACTS = {
    "diet": "The user is vegetarian and allergic to peanuts",
    "language": "The user prefers Python",
    "city": {"text": "The user lives in Porto", "kind": "place"},
    "trip": {"text": "A trip to Lisbon in May, by train", "kind": "plan"},
}


class TestBotWireRetriever(RetrieversIntegrationTests):
    @pytest.fixture(autouse=True)
    def _memories(self, store: Store) -> None:
        self.memory = store.memory("lc-retriever")
        self.memory.set_many(FACTS)

    @property
    def retriever_constructor(self) -> type[BotWireRetriever]:
        return BotWireRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"namespace": "lc-retriever", "memory": self.memory}

    @property
    def retriever_query_example(self) -> str:
        return "What does the user like to eat?"


def test_the_retriever_finds_the_relevant_memories_first(store: Store) -> None:
    mem = store.memory("recall")
    mem.set_many(FACTS)
    mem.append("chat", "Where should we eat tonight?")
    mem.append("chat", "Try the vegetarian place by the river")
    retriever = BotWireRetriever(namespace="recall", memory=mem, k=2, fill=False)
    found = retriever.invoke("Any vegetarian restaurants?")
    assert [doc.id for doc in found] == ["chat[1]", "diet"] or [doc.id for doc in found] == [
        "diet", "chat[1]"
    ]  # fmt: skip
    assert all(doc.metadata["relevant"] for doc in found)
    assert found[0].metadata["namespace"] == "recall"
    places = retriever.invoke("Where does the user live?", k=1, where={"kind": "place"})
    assert [(d.id, d.page_content) for d in places] == [
        ("city", '{"text": "The user lives in Porto", "kind": "place"}')
    ]
    assert retriever.invoke("submarines") == []  # nothing matches, and no filling
    around = BotWireRetriever(namespace="recall", memory=mem, k=1, prefix="chat", context=1)
    (turn,) = around.invoke("vegetarian place")
    assert turn.metadata == {"namespace": "recall", "key": "chat", "relevant": True, "position": 1}
    assert (
        turn.page_content == "Where should we eat tonight?\nTry the vegetarian place by the river"
    )
    assert asyncio.run(retriever.ainvoke("Any vegetarian restaurants?")) == found


def test_the_retriever_fills_with_the_newest_memories(store: Store) -> None:
    mem = store.memory("fill")
    assert BotWireRetriever(namespace="fill", memory=mem).invoke("anything") == []
    mem.set_many(FACTS)
    retriever = BotWireRetriever(namespace="fill", memory=mem, k=3)
    found = retriever.invoke("What should I learn next?")  # no word in common
    assert len(found) == 3 and not any(doc.metadata["relevant"] for doc in found)
    assert "The user prefers Python" in [doc.page_content for doc in found]
    mixed = retriever.invoke("Which trip?")
    assert [doc.metadata["relevant"] for doc in mixed] == [True, False, False]
    assert mixed[0].id == "trip"


def test_the_retriever_refuses_bad_input_clearly(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bad.db'}"
    for bad, says in [({"k": 0}, "k must be from 1"), ({"namespace": "a/b"}, "'/'"),
                      ({"where": {"a": {"$regex": "x"}}}, "operator"),
                      ({"context": 11}, "context must be from 0")]:  # fmt: skip
        with pytest.raises(ValueError, match=says):
            BotWireRetriever(**{"namespace": "ns", "url": url, **bad})
    retriever = BotWireRetriever(namespace="ns", url=url)
    with pytest.raises(InvalidRequest, match="takes k= and where="):
        retriever.invoke("x", top_k=3)
    with pytest.raises(InvalidRequest, match="k must be"):
        retriever.invoke("x", k=-1)
    assert Memory("ns", url).keys() == []


@pytest.mark.slow
def test_a_chain_pulls_earlier_memories_into_its_prompt_in_a_new_process(url: str) -> None:
    """Session one stores a preference; a new process answers "What should I learn next?"
    with a chain whose prompt holds the memories the retriever found."""
    run_python(f"""
        from botwire import Memory
        Memory("user-42", {url!r}).set("language", "The user prefers Python")
    """)
    out = run_python(f"""
        import json
        from langchain_core.language_models import GenericFakeChatModel
        from langchain_core.messages import AIMessage
        from langchain_core.prompts import ChatPromptTemplate
        from langchain_core.runnables import RunnableLambda, RunnablePassthrough
        from botwire.langchain import BotWireRetriever

        seen = []
        def record(value):
            seen.append([m.content for m in value.to_messages()])
            return value

        retriever = BotWireRetriever(namespace="user-42", url={url!r})
        prompt = ChatPromptTemplate.from_messages(
            [("system", "What you remember:\\n{{memories}}"), ("human", "{{question}}")]
        )
        model = GenericFakeChatModel(messages=iter([AIMessage("Try FastAPI next.")]))
        chain = (
            {{"memories": retriever | (lambda docs: "\\n".join(d.page_content for d in docs)),
              "question": RunnablePassthrough()}}
            | prompt | RunnableLambda(record) | model
        )
        print(json.dumps([chain.invoke("What should I learn next?").content, seen[0]]))
    """)
    answer, messages = json.loads(out)
    assert answer == "Try FastAPI next."
    assert messages == ["What you remember:\nThe user prefers Python", "What should I learn next?"]
