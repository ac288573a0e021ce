"""LangChain integration: a chat message history, a retriever of long-term memories and
key-value stores on any botwire store.

    from botwire.langchain import BotWireChatHistory
    history = BotWireChatHistory("user-42")          # embedded store, or url=/BOTWIRE_URL
    history.add_messages([HumanMessage("hi"), AIMessage("hello!")])

Needs langchain-core: ``pip install -e '.[langchain]'`` (in a botwire checkout).
"""

from __future__ import annotations

from botwire.errors import MissingExtra

try:
    import langchain_core  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingExtra("botwire's LangChain integration needs langchain-core", "langchain") from exc

from botwire.langchain.chat_history import BotWireChatHistory
from botwire.langchain.retriever import BotWireRetriever
from botwire.langchain.store import BotWireByteStore, BotWireStore

__all__ = ["BotWireByteStore", "BotWireChatHistory", "BotWireRetriever", "BotWireStore"]
