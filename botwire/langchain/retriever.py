"""``BotWireRetriever``: a LangChain retriever over an agent's long-term memories, so that a
chain or an agent pulls what it was told in earlier sessions into its prompt."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field, PrivateAttr, field_validator

from botwire import AsyncMemory, Memory, _values
from botwire._memory import on_store
from botwire._recall import Recalled, Source, arecall, recall
from botwire.backends.search import check_where
from botwire.errors import InvalidRequest


class BotWireRetriever(BaseRetriever):
    """A LangChain ``BaseRetriever`` over the memories of a botwire namespace: each key's value
    (and each item of a list, such as a chat log or notes) is a memory.

    ``invoke(question)`` returns the ``k`` memories most relevant to the question as
    ``Document``\\ s, best first: botwire's relevance search (the words of the question, in any
    form, rare words weighing more than common ones). When fewer than ``k`` match, the newest
    other memories follow (``fill``), so that a prompt with memories never gets nothing; their
    ``metadata["relevant"]`` is ``False``. ``ainvoke`` does the same with ``AsyncMemory``.

    Args:
        namespace: the botwire namespace that holds the memories.
        url: the store (default ``$BOTWIRE_URL``, else the embedded file).
        memory: an existing ``Memory`` or ``AsyncMemory`` whose store to use instead of ``url``.
        k: how many memories to return (``invoke(question, k=3)`` for one call).
        prefix: only keys that start with it.
        where: only dict values (and list items) that pass this filter, as in
            ``Memory.search`` (``invoke(question, where=...)`` for one call).
        fill: fill up to ``k`` with the newest other memories when fewer match.
        context: with a memory that is a list item, the ``context`` items before and after it
            (a chat turn's question and answer) join its text.

    Each ``Document`` has ``id`` ``"key"`` (or ``"key[3]"`` for an item of a list) and
    ``metadata`` ``namespace``, ``key``, ``position`` (list items) and ``relevant``.

    Example::

        retriever = BotWireRetriever(namespace="user-42", k=5)
        docs = retriever.invoke("What should I cook tonight?")
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    namespace: str
    url: str | None = None
    memory: Memory | AsyncMemory | None = Field(default=None, exclude=True)
    k: int = 4
    prefix: str | None = None
    where: dict[str, Any] | None = None
    fill: bool = True
    context: int = 0

    _memory: Memory = PrivateAttr()
    _amemory: AsyncMemory = PrivateAttr()

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, namespace: str) -> str:
        return _values.check_namespace(namespace)

    @field_validator("k")
    @classmethod
    def _k(cls, k: int) -> int:
        return _values.check_int(k, "k", 1, 1000)

    @field_validator("context")
    @classmethod
    def _context(cls, context: int) -> int:
        return _values.check_int(context, "context", 0, 10)

    @field_validator("where")
    @classmethod
    def _where(cls, where: dict[str, Any] | None) -> dict[str, Any] | None:
        check_where(where)
        return where

    def model_post_init(self, context: Any, /) -> None:
        self._memory = on_store(Memory, self.namespace, self.url, self.memory)
        self._amemory = on_store(AsyncMemory, self.namespace, self.url, self._memory)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        k, where = self._asked(kwargs)
        found = recall([Source(self._memory, prefix=self.prefix, where=where)], query, k,
                       fill=self.fill, context=self.context)  # fmt: skip
        return [_document(memory) for memory in found]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        k, where = self._asked(kwargs)
        found = await arecall([Source(self._amemory, prefix=self.prefix, where=where)], query, k,
                              fill=self.fill, context=self.context)  # fmt: skip
        return [_document(memory) for memory in found]

    def _asked(self, kwargs: dict[str, Any]) -> tuple[int, Mapping[str, Any] | None]:
        """This call's ``k`` and ``where``: the retriever's, or those ``invoke`` was given."""
        unknown = set(kwargs) - {"k", "where"}
        if unknown:
            raise InvalidRequest(f"BotWireRetriever takes k= and where=, not {sorted(unknown)}")
        k = _values.check_int(kwargs.get("k", self.k), "k", 1, 1000)
        where = kwargs.get("where", self.where)
        check_where(where)
        return k, where


def _document(memory: Recalled) -> Document:
    parts = memory.around or (memory.value,)
    text = "\n".join(part if isinstance(part, str) else json.dumps(part, ensure_ascii=False)
                     for part in parts)  # fmt: skip
    place = memory.key if memory.position is None else f"{memory.key}[{memory.position}]"
    metadata: dict[str, Any] = {"namespace": memory.namespace, "key": memory.key,
                                "relevant": memory.relevant}  # fmt: skip
    if memory.position is not None:
        metadata["position"] = memory.position
    return Document(page_content=text, metadata=metadata, id=place)
