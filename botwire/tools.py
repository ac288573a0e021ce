"""Memory as tools for a language model: the words a model reads, written once.

Every integration that gives a model tools (the CrewAI tools, ``botwire.crewai``, and the MCP
server, ``botwire mcp``) wraps :class:`MemoryTools`: the same names, descriptions, argument
schemas and results everywhere. A result is short text a model can act on; bad input from a
model (an empty key, a value over the limit, a quota hit, a store that cannot be reached) comes
back as a :class:`Refusal`, a result that says what was wrong and what to do, never as an
exception that would stop an agent. Mistakes of the Python code that calls a tool (a key that
is not a ``str``) still raise.

    tools = MemoryTools(Memory("crew-memory"))
    tools.remember("budget", "5000 EUR")     # "stored 'budget'"
    tools.recall("budget")                   # "'budget' = 5000 EUR"
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from botwire import telemetry
from botwire._memory import Memory
from botwire._recall import Recalled, Source, matched_words, recall
from botwire.errors import (
    BackendUnavailable,
    BotWireError,
    Forbidden,
    InvalidKey,
    QuotaExceeded,
    Unauthorized,
    ValueTooLarge,
    WrongType,
)

if TYPE_CHECKING:
    from pydantic import BaseModel

MAX_VALUE_CHARS = 2_000
"""Longest value ``recall`` shows in full; longer ones are cut with a note of how much more."""
MAX_HIT_CHARS = 500
"""Longest value ``search_memory`` shows for each match."""
MAX_KEYS_SHOWN = 50
"""Most keys ``list_memory`` (and a missed ``recall``) name before noting how many more."""
MAX_MATCHES = 20
"""Most matches ``search_memory`` returns."""

JsonValue = str | int | float | bool | list[Any] | dict[str, Any] | None
"""What ``remember`` takes as a value: text stays text, a number stays a number."""


class Refusal(str):
    """A tool's result that says the call did nothing, and why: the text a model reads, marked
    so that a protocol with an error flag (MCP's ``isError``) can set it."""

    __slots__ = ()


class Answer(str):
    """A tool's result: the text a model reads, and ``data``, the same as JSON that fits the
    tool's :attr:`ToolSpec.output` (MCP's structured content)."""

    data: dict[str, Any]

    def __new__(cls, text: str, data: dict[str, Any]) -> Answer:
        answer = super().__new__(cls, text)
        answer.data = data
        return answer

    def __getnewargs__(self) -> tuple[str, dict[str, Any]]:  # type: ignore[override]
        """Copied and pickled whole (frameworks copy tool results with their messages)."""
        return str(self), self.data


MAX_READ_CHARS = 20_000
"""Most characters of memories ``read_memory`` shows at once."""


@dataclass(frozen=True)
class Arg:
    """One argument of a tool: what to pass, its type, its default (``...``: none, the
    argument is required) and, for a number, its bounds."""

    description: str
    type: Any = str
    default: Any = ...
    minimum: int | None = None
    maximum: int | None = None
    shown_as: str | None = None
    """The JSON type a model's schema shows, when it is narrower than what the tool takes: a
    schema that strict decoding (OpenAI's ``strict: true``, as CrewAI sends) can hold."""


@dataclass(frozen=True)
class ToolSpec:
    """A tool as a model sees it: its name, what it does and when to use it, its arguments."""

    name: str
    description: str
    arguments: dict[str, Arg]
    """Each argument, by name."""
    output: dict[str, Any]
    """The JSON schema of its result's ``data`` (an object)."""
    writes: bool = False
    """Left out of a read-only memory."""

    @cached_property
    def args_model(self) -> type[BaseModel]:
        """The arguments as a pydantic model: what frameworks validate a call with, and where
        the JSON schema a model reads comes from. (Needs pydantic, which every framework that
        takes tools brings.)"""
        from typing import Annotated

        from pydantic import Field, WithJsonSchema, create_model

        fields: dict[str, Any] = {
            name: (
                arg.type
                if arg.shown_as is None
                else Annotated[arg.type, WithJsonSchema({"type": arg.shown_as})],
                Field(arg.default, description=arg.description, ge=arg.minimum, le=arg.maximum),
            )
            for name, arg in self.arguments.items()
        }
        return create_model(f"{self.name.title().replace('_', '')}Args", **fields)


_STR: dict[str, Any] = {"type": "string"}
_BOOL: dict[str, Any] = {"type": "boolean"}
_INT: dict[str, Any] = {"type": "integer"}
_ANY: dict[str, Any] = {}
"""Any JSON value."""


def _list(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


def _object(**properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties)}


def _output(*required: str, **properties: dict[str, Any]) -> dict[str, Any]:
    """A tool's output schema: an object of these properties, ``required`` ones always there
    (default: all)."""
    schema = _object(**properties)
    if required:
        schema["required"] = list(required)
    return schema


KEY = Arg("A short name for the fact, such as 'budget' or 'client:acme:contact'.")

REMEMBER = ToolSpec(
    "remember",
    "Store a fact in long-term memory under a short key, so that you (or another agent) can "
    "recall it in a later conversation, even after a restart. Use it for what will matter later: "
    "the user's preferences, names, budgets, decisions, open tasks. Storing under a key that "
    "exists replaces its value.",
    {
        "key": KEY,
        "value": Arg(
            "The fact to store, as text. To store a number, list or object, give its JSON here "
            "and set as_json to true.",
            JsonValue,
            shown_as="string",
        ),
        "as_json": Arg(
            "true: value is JSON, stored as the number, list or object it describes; false: "
            "value is stored as the text it is.",
            bool,
            default=False,
        ),
    },
    _output(key=_STR, stored=_BOOL),
    writes=True,
)
RECALL = ToolSpec(
    "recall",
    "Read a fact stored earlier with remember, by its key. Use recall before asking the user for "
    "something they may already have told you. If the key is unknown, the answer lists the keys "
    "that are stored.",
    {"key": KEY},
    _output("key", "found", key=_STR, found=_BOOL, value=_ANY, known_keys=_list(_STR)),
)
LIST_MEMORY = ToolSpec(
    "list_memory",
    "List the keys of the facts in long-term memory, optionally only those that start with a "
    "prefix. Use it to see what you already know before you recall or remember.",
    {"prefix": Arg("Only keys that start with this text; empty for all keys.", default="")},
    _output(keys=_list(_STR), total=_INT),
)
FORGET = ToolSpec(
    "forget",
    "Delete a fact from long-term memory by its key, when it is wrong, outdated, or the user "
    "asks you to forget it.",
    {"key": KEY},
    _output(key=_STR, forgot=_BOOL),
    writes=True,
)
SEARCH_MEMORY = ToolSpec(
    "search_memory",
    "Search long-term memory when you do not know the key. It matches words, not meaning: "
    "facts and notes sharing any word of the query, in any form ('hiking' finds 'hiked'), "
    "rare words counting more than common ones like 'what' or 'my'; best first, each with the "
    "words it matched. Use words the fact would hold, such as 'allergy food'. If nothing "
    "matches, it shows the newest memories.",
    {
        "query": Arg("Words to look for; case, accents and punctuation do not matter."),
        "limit": Arg("Most matches to return.", int, 5, 1, MAX_MATCHES),
    },
    _output(
        matches=_list(
            _object(
                key=_STR, position={"type": ["integer", "null"]}, value=_ANY, matched=_list(_STR)
            )
        ),
        by_words=_BOOL,
    ),
)
APPEND_NOTE = ToolSpec(
    "append_note",
    "Add a line to a running list of notes under a key (a log, a to-do list, a diary), keeping "
    "the notes already there. Use it instead of remember when the key collects many notes over "
    "time; recall shows them all.",
    {"key": KEY, "text": Arg("The note to add, as one short line of text.")},
    _output(key=_STR, notes=_INT),
    writes=True,
)
READ_MEMORY = ToolSpec(
    "read_memory",
    "Read every fact and note in long-term memory at once (or those whose keys start with a "
    "prefix), as key = value lines, up to a size budget; the answer says how many more there "
    "are. Use it at the start of a task to see everything you know.",
    {"prefix": Arg("Only keys that start with this text; empty for all keys.", default="")},
    _output(memories=_list(_object(key=_STR, value=_ANY, whole=_BOOL)), total=_INT),
)
SPECS = (REMEMBER, RECALL, LIST_MEMORY, FORGET, SEARCH_MEMORY, APPEND_NOTE, READ_MEMORY)

INSTRUCTIONS = (
    "Long-term memory that lasts between conversations and is shared with other agents that "
    "use the same namespace. Before asking the user for something they may have told you "
    "before, search_memory or recall it; store what will matter later with remember (one fact "
    "per key) or append_note (running notes). Keys are short plain text such as 'budget' or "
    "'client:acme:contact'."
)
"""What an MCP client shows a model about the memory as a whole."""


def offered(*, read_only: bool = False) -> list[ToolSpec]:
    """The tools a memory offers: all of :data:`SPECS`, or those that only read."""
    return [spec for spec in SPECS if not (read_only and spec.writes)]


class MemoryTools:
    """The memory tools of one namespace, each returning the text a model reads.

    Args:
        memory: the namespace the tools read and write.
        read_only: leave out the tools that write (``remember``, ``forget``, ``append_note``).
    """

    def __init__(self, memory: Memory, *, read_only: bool = False) -> None:
        if not isinstance(memory, Memory):
            raise TypeError(f"MemoryTools needs a botwire Memory, not {type(memory).__name__}")
        self.memory = memory
        self.read_only = read_only

    @property
    def specs(self) -> list[ToolSpec]:
        """The tools this memory offers (no writing tools when read-only)."""
        return offered(read_only=self.read_only)

    def call(self, name: str, arguments: Mapping[str, Any]) -> str:
        """Call the tool ``name`` with a model's ``arguments`` (a JSON object): arguments that
        do not fit the tool's schema, and a tool this memory does not offer, are refusals too.
        For protocols that hand over a tool call as a name and JSON (MCP)."""
        if not telemetry.ENABLED:
            return self._call(name, arguments)
        attributes = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name,
                      "gen_ai.memory.store.id": self.memory.namespace}  # fmt: skip
        with telemetry.span(f"execute_tool {name}", attributes):
            return self._call(name, arguments)

    def _call(self, name: str, arguments: Mapping[str, Any]) -> str:
        from pydantic import ValidationError

        spec = next((spec for spec in self.specs if spec.name == name), None)
        if spec is None:
            offered = ", ".join(spec.name for spec in self.specs)
            return Refusal(f"there is no tool {name!r} here; the tools are: {offered}")
        try:
            valid = spec.args_model.model_validate(dict(arguments))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, error['loc'])) or 'arguments'}: {error['msg']}"
                for error in exc.errors()
            )
            return Refusal(f"{name} was called with bad arguments ({problems}). Call it again.")
        result: str = getattr(self, name)(**dict(valid))
        return result

    def remember(self, key: str, value: Any, as_json: bool = False) -> str:
        """Store ``value`` under ``key``: text as that text; with ``as_json``, the JSON value
        the text describes (a model under strict decoding can pass only text)."""
        self._writable()
        _needs_str(key, "key")
        if as_json and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError as exc:
                return Refusal(
                    f"could not store {key!r}: value is not valid JSON ({exc}). Pass it again as "
                    "valid JSON, or with as_json false to store it as text."
                )
        try:
            self.memory.set(key, value)
        except BotWireError as exc:
            return _advice(exc, f"could not store {key!r}")
        return Answer(f"stored {key!r}", {"key": key, "stored": True})

    def recall(self, key: str) -> str:
        """``'key' = value``, or which keys there are when ``key`` is unknown."""
        _needs_str(key, "key")
        missing = object()
        try:
            value = self.memory.get(key, missing)
            if value is missing:
                keys = self.memory.keys()
                data = {"key": key, "found": False, "known_keys": keys[:MAX_KEYS_SHOWN]}
                return Answer(f"no memory under {key!r}; {_known(keys)}", data)
        except BotWireError as exc:
            return _advice(exc, f"could not recall {key!r}")
        return Answer(f"{key!r} = {render(value)}", {"key": key, "found": True, "value": value})

    def list_memory(self, prefix: str = "") -> str:
        """The stored keys (those that start with ``prefix``), a bounded number of them."""
        _needs_str(prefix, "prefix")
        try:
            keys = self.memory.keys(prefix or None)
        except BotWireError as exc:
            return _advice(exc, "could not list the memory")
        data = {"keys": keys[:MAX_KEYS_SHOWN], "total": len(keys)}
        if not keys:
            return Answer(_nothing(prefix), data)
        return Answer(_listing(keys, "key"), data)

    def forget(self, key: str) -> str:
        """Delete ``key``."""
        self._writable()
        _needs_str(key, "key")
        try:
            deleted = self.memory.delete(key)
        except BotWireError as exc:
            return _advice(exc, f"could not forget {key!r}")
        text = f"forgot {key!r}" if deleted else f"no memory under {key!r}; nothing to forget"
        return Answer(text, {"key": key, "forgot": deleted})

    def search_memory(self, query: str, limit: int = 5) -> str:
        """The facts and notes that share words with ``query`` (or its meaning, where the store
        has an embedder), best first, one per line with the words it matched; when none does,
        the newest memories."""
        _needs_str(query, "query")
        if not query.strip():
            return Refusal(
                "the query is empty: say what to look for, such as 'budget', or use list_memory "
                "to see every key."
            )
        try:
            found = recall([Source(self.memory)], query, max(1, min(limit, MAX_MATCHES)))
        except BotWireError as exc:
            return _advice(exc, f"could not search for {query!r}")
        relevant = [memory for memory in found if memory.relevant]
        shown = relevant or found
        words = {id(memory): matched_words(query, memory) for memory in relevant}
        data = {
            "matches": [
                {"key": memory.key, "position": memory.position, "value": memory.value,
                 "matched": words.get(id(memory), [])}
                for memory in shown
            ],
            "by_words": bool(relevant),
        }  # fmt: skip
        if relevant:
            lines = [f"- {describe(memory)}  ({_how(words[id(memory)])})"
                     for memory in relevant]  # fmt: skip
            noun = "memory matches" if len(lines) == 1 else "memories match"
            return Answer("\n".join([f"{len(lines)} {noun} {query!r}, best first:", *lines]), data)
        if not found:
            return Answer("the memory is empty: nothing is stored yet", data)
        lines = [f"- {describe(memory)}" for memory in found]
        head = f"nothing in memory matches {query!r} by its words; the newest memories are:"
        return Answer("\n".join([head, *lines]), data)

    def append_note(self, key: str, text: str) -> str:
        """Add ``text`` to the list of notes under ``key`` (atomically: concurrent notes all
        land)."""
        self._writable()
        _needs_str(key, "key")
        _needs_str(text, "text")
        if not text.strip():
            return Refusal(f"the note is empty; nothing was added to {key!r}")
        try:
            count = self.memory.append(key, text)
        except WrongType:
            return Refusal(
                f"could not add a note to {key!r}: it holds a single fact, not a list of notes. "
                "Use another key for notes, or remember to replace the fact."
            )
        except BotWireError as exc:
            return _advice(exc, f"could not add a note to {key!r}")
        text = f"added a note to {key!r} ({count} note{'s' if count != 1 else ''})"
        return Answer(text, {"key": key, "notes": count})

    def read_memory(self, prefix: str = "") -> str:
        """Every memory (whose key starts with ``prefix``) as ``'key' = value`` lines, in key
        order, up to :data:`MAX_READ_CHARS`; then how many more there are."""
        _needs_str(prefix, "prefix")
        try:
            keys = self.memory.keys(prefix or None)
            lines: list[str] = []
            memories: list[dict[str, Any]] = []
            size = 0
            for key, value in self._entries(keys):
                shown = render(value, MAX_HIT_CHARS)
                line = f"- {key!r} = {shown}"
                if size + len(line) > MAX_READ_CHARS and lines:
                    break
                lines.append(line)
                whole = len(_as_text(value)) <= MAX_HIT_CHARS
                memories.append({"key": key, "value": value if whole else shown, "whole": whole})
                size += len(line) + 1
        except BotWireError as exc:
            return _advice(exc, "could not read the memory")
        data = {"memories": memories, "total": len(keys)}
        if not keys:
            return Answer(_nothing(prefix), data)
        more = len(keys) - len(lines)
        head = f"{len(keys)} memor{'y' if len(keys) == 1 else 'ies'}"
        tail = [f"… and {more:,} more: read them by a prefix, or recall them"] if more > 0 else []
        return Answer("\n".join([f"{head}:", *lines, *tail]), data)

    def relevant(self, text: str, limit: int = 5) -> str | None:
        """The memories relevant to ``text`` (a message a model is about to answer), as a
        numbered block to show it first; ``None`` when none is."""
        _needs_str(text, "text")
        found = recall([Source(self.memory)], text, limit, fill=False)
        return memory_block(self.memory.namespace, found) if found else None

    def _entries(self, keys: list[str]) -> Iterator[tuple[str, Any]]:
        """``(key, value)`` of each of ``keys`` that still exists, a page per round trip, read
        as they are asked for."""
        for start in range(0, len(keys), MAX_KEYS_SHOWN):
            page = keys[start : start + MAX_KEYS_SHOWN]
            values = self.memory.get_many(page)
            yield from ((key, values[key]) for key in page if key in values)

    def _writable(self) -> None:
        if self.read_only:
            raise PermissionError("this memory is read-only: its writing tools are not offered")


def describe(memory: Recalled) -> str:
    """A recalled memory as a model reads it: ``'key' = value``, or ``'key'[3] = item``."""
    name = repr(memory.key) if memory.position is None else f"{memory.key!r}[{memory.position}]"
    return f"{name} = {render(memory.value, MAX_HIT_CHARS)}"


def memory_block(
    namespace: str, memories: Sequence[Recalled], describe: Callable[[Recalled], str] = describe
) -> str:
    """The block of memories shown to a model before it answers, numbered, the most relevant
    first."""
    lines = [f"{n}. {describe(memory)}" for n, memory in enumerate(memories, 1)]
    return f"Relevant memories ({namespace}), most relevant first:\n" + "\n".join(lines)


def render(value: Any, max_chars: int = MAX_VALUE_CHARS) -> str:
    """A value as a model reads it: text as it is, anything else as compact, readable JSON;
    cut at ``max_chars`` with a note of how many characters more there are."""
    text = _as_text(value)
    if len(text) <= max_chars:
        return text
    return f"{text[:max_chars]}… ({len(text) - max_chars:,} more characters)"


def _listing(keys: list[str], noun: str, *, count: bool = True) -> str:
    shown = ", ".join(keys[:MAX_KEYS_SHOWN])
    head = f"{len(keys)} {noun}{'s' if len(keys) != 1 else ''}: " if count else ""
    more = len(keys) - MAX_KEYS_SHOWN
    if more > 0:
        return f"{head}{shown}, and {more:,} more (narrow it with a prefix)"
    return head + shown


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _nothing(prefix: str) -> str:
    return f"no keys start with {prefix!r}" if prefix else "the memory is empty"


def _known(keys: list[str]) -> str:
    if not keys:
        return "nothing is stored yet"
    return "known keys: " + _listing(keys, "key", count=False)


def _needs_str(value: object, what: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")


def _advice(exc: BotWireError, failed: str) -> Refusal:
    """A refusal of the store, turned into what the model should do next."""
    return Refusal(_next_step(exc, failed))


def _next_step(exc: BotWireError, failed: str) -> str:
    if isinstance(exc, InvalidKey):
        return f"{failed}: {exc}. Use a short key of plain text, such as 'budget'."
    if isinstance(exc, ValueTooLarge):
        size = ""
        if exc.size and exc.limit:
            size = f" ({exc.size:,} bytes; the limit is {exc.limit:,})"
        return f"{failed}: the value is too long{size}. Store a shorter summary instead."
    if isinstance(exc, QuotaExceeded):
        if exc.quota == "bytes":
            return f"{failed}: the memory is full. Forget facts you no longer need, then retry."
        wait = _duration(exc.retry_after)
        return (
            f"{failed}: the memory takes no more writes today (retry in {wait}). "
            "Go on without storing."
        )
    if isinstance(exc, (Unauthorized, Forbidden)):
        return f"{failed}: access to the memory was refused ({exc}). Go on without it."
    if isinstance(exc, BackendUnavailable):
        return (
            f"{failed}: the memory cannot be reached right now. Go on without it, and tell the "
            "user that this was not saved."
        )
    return f"{failed}: {exc}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "a while"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


__all__ = [
    "APPEND_NOTE",
    "FORGET",
    "INSTRUCTIONS",
    "LIST_MEMORY",
    "RECALL",
    "REMEMBER",
    "SEARCH_MEMORY",
    "SPECS",
    "Arg",
    "MemoryTools",
    "Refusal",
    "ToolSpec",
    "describe",
    "memory_block",
    "offered",
    "render",
]


def _how(matched: list[str]) -> str:
    """How a memory matched a search: its words, or (none shared) its meaning."""
    return f"matched: {', '.join(matched)}" if matched else "matched by meaning"
