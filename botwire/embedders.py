"""Embedders: what turns text into vectors for recall by meaning.

An embedder is configured once, for a store (``botwire serve --embedder ...``) or a memory
(``Memory(ns, embedder=...)``), from any of:

- a callable ``list[str] -> list[list[float]]``, sync or async;
- a name ``"module:function"`` that resolves to one (``"botwire.embedders:wordllama"``: the
  small WordLlama model, its weights inside its wheel, never downloaded);
- a LangChain ``Embeddings`` (``embed_documents`` for values, ``embed_query`` for a search);
- LangGraph's ``index`` config of a store (``{"embed": ..., "dims": ...}``).

Each becomes an :class:`Embedder`, whose :attr:`~Embedder.fingerprint` is recorded with the
vectors it made: a store never compares vectors of two models, and a changed model is found
(``botwire reindex`` embeds again).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import inspect
import math
from array import array
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from botwire.errors import InvalidRequest

Vectors = list[list[float]]
EmbedFunction = Callable[[list[str]], Sequence[Sequence[float]] | Awaitable[Any]]

_PROBES = ["botwire fingerprint probe: a trip to Lisbon", "the cat sleeps on the warm sofa"]
"""Texts whose vectors identify a model (with its dimensions) when it is given no name."""


class Embedder:
    """Text to unit-length vectors, for values (:meth:`documents`) and for a search's query
    (:meth:`query`), sync or async.

    Args:
        documents: embeds the texts of values and list items.
        query: embeds a search's text (default: ``documents``).
        name: identifies the model for good (``"text-embedding-3-small"``); without one, the
            fingerprint is taken from the model's own vectors for two fixed texts, so that
            another model (or the same one at other dimensions) is told apart.
        hybrid_weight: how much this model's ranking weighs beside the words' in a hybrid
            search; default: calibrated once per store (see
            :mod:`botwire.backends.search.calibration`).
        background: for a slow or remote model: a write does not wait for it; a thread of the
            process embeds what it wrote afterwards (see
            :class:`~botwire.backends.embedding.Indexer`). Searches still embed their query.
    """

    def __init__(
        self,
        documents: EmbedFunction,
        query: EmbedFunction | None = None,
        *,
        name: str | None = None,
        hybrid_weight: float | None = None,
        background: bool = False,
    ) -> None:
        if not callable(documents) or (query is not None and not callable(query)):
            raise InvalidRequest("an embedder must be callable: list[str] -> list[list[float]]")
        self._documents = documents
        self._query = query or documents
        self.name = name
        if hybrid_weight is not None and not (
            isinstance(hybrid_weight, (int, float)) and 0 <= hybrid_weight < math.inf
        ):
            raise InvalidRequest(f"hybrid_weight is a number from 0, not {hybrid_weight!r}")
        self.hybrid_weight = hybrid_weight
        self.background = background
        self._fingerprint: str | None = None
        self.dims: int | None = None

    def __repr__(self) -> str:
        return f"Embedder({self.name or _qualified(self._documents)})"

    # -- sync --------------------------------------------------------------------------------

    def documents(self, texts: list[str]) -> list[bytes]:
        """The unit vectors of ``texts`` (float32, packed), in order."""
        if not texts:
            return []
        return self._check(texts, _call(self._documents, texts))

    def query(self, text: str) -> bytes:
        """The unit vector of a search's ``text``."""
        return self._check([text], _call(self._query, [text]))[0]

    @property
    def fingerprint(self) -> str:
        """What the store records with this embedder's vectors (its dimensions and model)."""
        if self._fingerprint is None:
            self._fingerprint = self._fingerprint_of(
                None if self.name else _call(self._documents, _PROBES)
            )
        return self._fingerprint

    # -- async -------------------------------------------------------------------------------

    async def adocuments(self, texts: list[str]) -> list[bytes]:
        """Async :meth:`documents` (a sync embedder runs in a worker thread)."""
        if not texts:
            return []
        return self._check(texts, await _acall(self._documents, texts))

    async def aquery(self, text: str) -> bytes:
        """Async :meth:`query`."""
        return self._check([text], await _acall(self._query, [text]))[0]

    async def afingerprint(self) -> str:
        """Async :attr:`fingerprint`."""
        if self._fingerprint is None:
            probed = None if self.name else await _acall(self._documents, _PROBES)
            self._fingerprint = self._fingerprint_of(probed)
        return self._fingerprint

    # -- checks ------------------------------------------------------------------------------

    def _fingerprint_of(self, probed: Any) -> str:
        if probed is None:
            return f"{self.name}"
        vectors = self._check(_PROBES, probed)
        rounded = [round(x, 2) for vector in vectors for x in array("f", vector)]
        digest = hashlib.sha256(repr(rounded).encode()).hexdigest()[:16]
        return f"{self.dims}:{digest}"

    def _check(self, texts: list[str], vectors: Any) -> list[bytes]:
        """Each vector as unit-length float32 bytes; a clear error for what is not one."""
        try:
            rows = [[float(x) for x in vector] for vector in vectors]
        except (TypeError, ValueError) as exc:
            raise InvalidRequest(
                f"the embedder {self!r} must return a list of vectors (lists of numbers): {exc}"
            ) from None
        if len(rows) != len(texts):
            raise InvalidRequest(
                f"the embedder {self!r} returned {len(rows)} vectors for {len(texts)} texts"
            )
        packed = []
        for row in rows:
            if self.dims is None:
                self.dims = len(row)
            if len(row) != self.dims or not row:
                raise InvalidRequest(
                    f"the embedder {self!r} returned a vector of {len(row)} dimensions after "
                    f"vectors of {self.dims}"
                )
            norm = math.sqrt(math.fsum(x * x for x in row))
            if not math.isfinite(norm):
                raise InvalidRequest(f"the embedder {self!r} returned a non-finite number")
            scale = 1.0 / norm if norm > 0 else 0.0
            packed.append(array("f", [x * scale for x in row]).tobytes())
        return packed


_named: dict[str, Embedder] = {}
"""The embedders of names resolved in this process."""


def resolve(spec: Any) -> Embedder | None:
    """The :class:`Embedder` that ``spec`` names (see the module's docstring); ``None`` for
    ``None``."""
    if spec is None or isinstance(spec, Embedder):
        return spec
    if isinstance(spec, str):  # a model is loaded once per process
        if spec not in _named:
            _named[spec] = resolve(_import(spec))  # type: ignore[assignment]
        return _named[spec]
    if isinstance(spec, Mapping):  # LangGraph's index config
        if "embed" not in spec:
            raise InvalidRequest("an index config needs 'embed': the embedder of its values")
        return resolve(spec["embed"])
    if callable(getattr(spec, "embed_documents", None)):  # LangChain Embeddings
        return _langchain(spec)
    if callable(spec):
        return Embedder(spec)
    raise InvalidRequest(
        f"cannot embed with {spec!r}: give a callable list[str] -> list[list[float]], a "
        "'module:function' name, a LangChain Embeddings, or LangGraph's index config"
    )


def wordllama() -> Embedder:
    """WordLlama (``pip install wordllama``): a small model (256 dimensions) whose weights come
    inside its wheel, loaded from there only (never downloaded)."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        import wordllama as package
        from wordllama import WordLlama
    except ImportError:
        raise InvalidRequest("the WordLlama embedder needs: pip install wordllama") from None
    finally:  # its import configures the application's logging (every INFO line printed)
        root.handlers[:] = handlers
        root.setLevel(level)
    from pathlib import Path

    # Its loader looks for the tokenizer in a tokenizer/ folder beside its code, while the wheel
    # ships tokenizers/; a cache folder of its own (the package's) finds both.
    model = WordLlama.load(cache_dir=Path(package.__file__).parent, disable_download=True)

    def embed(texts: list[str]) -> Any:
        return model.embed(texts, norm=True).tolist()

    return Embedder(embed, name="wordllama-l2_supercat-256")


def _langchain(embeddings: Any) -> Embedder:
    """An embedder of a LangChain ``Embeddings``: ``embed_documents`` for values,
    ``embed_query`` for searches, and their async twins where it has them."""

    def query(texts: list[str]) -> Any:
        return [embeddings.embed_query(texts[0])]

    async def aquery(texts: list[str]) -> Any:
        return [await embeddings.aembed_query(texts[0])]

    model = getattr(embeddings, "model", None)
    return Embedder(
        _Paired(embeddings.embed_documents, getattr(embeddings, "aembed_documents", None)),
        _Paired(query, aquery if hasattr(embeddings, "aembed_query") else None),
        name=model if isinstance(model, str) else None,
    )


class _Paired:
    """A sync function with its async twin where there is one."""

    def __init__(self, sync: Callable[..., Any], async_: Callable[..., Any] | None) -> None:
        self.sync, self.async_ = sync, async_

    def __call__(self, texts: list[str]) -> Any:
        return self.sync(texts)


def _call(fn: EmbedFunction, texts: list[str]) -> Any:
    """``fn(texts)``; a coroutine function runs to its end (not from inside an event loop)."""
    result = fn(list(texts))
    if inspect.isawaitable(result):
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(_awaited(result))
        close = getattr(result, "close", None)
        if close is not None:
            close()
        raise InvalidRequest(
            "an async embedder cannot be called from sync code inside an event loop: "
            "use AsyncMemory"
        )
    return result


async def _acall(fn: EmbedFunction, texts: list[str]) -> Any:
    if isinstance(fn, _Paired) and fn.async_ is not None:
        return await fn.async_(list(texts))
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__):
        return await fn(list(texts))  # type: ignore[misc]
    result = await asyncio.to_thread(fn, list(texts))
    return await result if inspect.isawaitable(result) else result


async def _awaited(result: Awaitable[Any]) -> Any:
    return await result


def _import(name: str) -> Any:
    """The object named ``"module:attribute"``; a function of no arguments that makes an
    embedder (:func:`wordllama`) is called."""
    module_name, _, attribute = name.partition(":")
    if not module_name or not attribute:
        raise InvalidRequest(
            f"an embedder name is 'module:function' (such as 'botwire.embedders:wordllama'), "
            f"not {name!r}"
        )
    try:
        target = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise InvalidRequest(f"cannot load the embedder {name!r}: {exc}") from None
    if callable(target) and _takes_no_arguments(target):
        return target()
    return target


def _takes_no_arguments(fn: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return not any(
        p.default is inspect.Parameter.empty
        and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        for p in parameters
    )


def _qualified(fn: Any) -> str:
    module = getattr(fn, "__module__", None) or type(fn).__module__
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{module}.{name}"
