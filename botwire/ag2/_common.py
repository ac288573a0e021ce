"""What both AG2 integrations share, with no framework import: how a kept turn reads, the text
of a message, and the memory tools as plain functions."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from botwire._recall import Recalled
from botwire.errors import InvalidRequest
from botwire.tools import Arg, MemoryTools, ToolSpec, describe

Message = dict[str, Any]


def is_turn(memory: Recalled) -> bool:
    """Whether a recalled memory is a turn of a kept conversation."""
    return memory.namespace.endswith(":conversations") and isinstance(memory.value, dict)


def describe_turn(memory: Recalled) -> str:
    """A recalled memory as the model reads it: a fact by its key, an earlier turn with who
    said it, and the turn around it."""
    if not is_turn(memory):
        return describe(memory)
    turns = memory.around or (memory.value,)
    said = " / ".join(f"{turn.get('name') or turn.get('role')}: {turn.get('content')}"
                      for turn in turns if isinstance(turn, dict))  # fmt: skip
    if "<->" not in memory.key:  # a conversation kept by its stream (AG2 1.x)
        return f"earlier: {said}"
    partner = memory.key.split("<->", 1)[-1].split(":", 1)[0]
    return f"earlier, with {partner}: {said}"


def text_of(message: Message) -> str:
    """The text of a message to search memories with: its content, or its text parts."""
    content = message.get("content")
    if content is None:  # a tool call
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multimodal parts
        return " ".join(
            str(part.get("text", "")) if isinstance(part, dict) else str(part) for part in content
        )
    raise InvalidRequest(
        f"a message's content must be text (or text parts), not {type(content).__name__}"
    )


def function(
    tools: MemoryTools, spec: ToolSpec, annotate: Callable[[Arg], Any]
) -> Callable[..., str]:
    """A tool as a plain function whose signature the framework turns into the tool's schema;
    ``annotate`` gives each argument's annotation in the framework's way."""

    def call(**arguments: Any) -> str:
        return tools.call(spec.name, arguments)

    parameters = [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=inspect.Parameter.empty if arg.default is ... else arg.default,
            annotation=annotate(arg),
        )
        for name, arg in spec.arguments.items()
    ]
    call.__signature__ = inspect.Signature(parameters, return_annotation=str)  # type: ignore[attr-defined]
    call.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": str}
    call.__name__ = call.__qualname__ = spec.name
    call.__doc__ = spec.description
    return call
