"""A LangGraph chat graph on ``BotWireSaver`` with a scripted chat model: what the tests run in
this process and in others."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore

from botwire.langgraph import BotWireSaver, BotWireStore


def graph(url: str, replies: list[str]) -> CompiledStateGraph[Any, Any, Any, Any]:
    """A one-node chat graph whose model answers ``replies`` in turn, checkpointed in botwire;
    the model's calls are kept in ``graph.model_inputs``."""
    model = GenericFakeChatModel(messages=iter([AIMessage(reply) for reply in replies]))
    seen: list[list[Any]] = []

    def chat(state: MessagesState) -> dict[str, Any]:
        seen.append(list(state["messages"]))
        return {"messages": [model.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("chat", chat)
    builder.add_edge(START, "chat")
    compiled = builder.compile(checkpointer=BotWireSaver(url))
    compiled.model_inputs = seen  # type: ignore[attr-defined]
    return compiled


def thread(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}}


def texts(messages: Iterator[Any] | list[Any]) -> list[str]:
    return [str(message.content) for message in messages]


def graph_with_store(url: str) -> CompiledStateGraph[Any, Any, Any, Any]:
    """A graph that keeps what the user asks it to remember in a ``BotWireStore`` (long-term,
    across threads) and answers other messages from what it finds there."""

    def chat(state: MessagesState, *, store: BaseStore) -> dict[str, Any]:
        text = str(state["messages"][-1].content)
        if text.startswith("remember:"):
            fact = text.removeprefix("remember:").strip()
            store.put(("memories", "user"), f"fact-{len(fact)}", {"text": fact})
            return {"messages": [AIMessage("Noted.")]}
        found = store.search(("memories", "user"), query=text, limit=1)
        answer = f"You told me: {found[0].value['text']}" if found else "I do not know."
        return {"messages": [AIMessage(answer)]}

    builder = StateGraph(MessagesState)
    builder.add_node("chat", chat)
    builder.add_edge(START, "chat")
    return builder.compile(checkpointer=BotWireSaver(url), store=BotWireStore(url))
