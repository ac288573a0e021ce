"""``memory_plugin`` against AG2 1.x's real ``Agent``, its model scripted by AG2's own
``TestConfig``; conversations in separate processes, on the embedded store and a server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from ag2 import Agent
from ag2.events import ToolCallEvent
from ag2.testing import TestConfig, TrackingConfig

from botwire import Memory
from botwire.ag2 import memory_plugin
from botwire.tools import SPECS

from .helpers import Server, run_python

SCRIPT = """
import asyncio, json, sys
from ag2 import Agent
from ag2.testing import TestConfig, TrackingConfig
from botwire.ag2 import memory_plugin

url, message = sys.argv[1], sys.argv[2]
config = TrackingConfig(TestConfig("Noted."))
agent = Agent("assistant", prompt="You are helpful.", config=config,
              plugins=[memory_plugin("ana", url=url)])
reply = asyncio.run(agent.ask(message))
print(json.dumps({"reply": reply.body, "prompts": [list(call.prompt) for call in config.calls]}))
"""


def session(url: str, message: str) -> dict[str, Any]:
    """One conversation in a new process: the user says ``message``; what the model was shown."""
    out = run_python(f"import sys; sys.argv[1:] = {[url, message]!r}\n" + SCRIPT)
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.fixture(params=["embedded", "server"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "embedded":
        return f"sqlite:///{tmp_path / 'ag2.db'}"
    server: Server = request.getfixturevalue("http_server")
    return server.url


@pytest.mark.slow
def test_a_new_session_in_another_process_recalls_what_was_said_before(url: str) -> None:
    Memory("ana:conversations", url).clear()
    first = session(url, "My name is Ana and I love hiking")
    assert first["prompts"] == [["You are helpful."]]  # nothing to recall yet
    second = session(url, "What is my name?")
    (prompt,) = second["prompts"]
    assert prompt[0] == "You are helpful."
    assert "earlier: user: My name is Ana and I love hiking / assistant: Noted." in prompt[1]


def test_tools_write_the_namespace_and_the_block_never_enters_the_conversation(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'tools.db'}"
    Memory("ana", url).set("diet", "Ana is vegetarian")
    arguments = {"key": "city", "value": json.dumps("Lisbon"), "as_json": True}
    remember = ToolCallEvent(name="remember", arguments=json.dumps(arguments))
    config = TrackingConfig(TestConfig(remember, "Try the vegetarian place."))
    agent = Agent("assistant", prompt="You are helpful.", config=config,
                  plugins=[memory_plugin("ana", url=url)])  # fmt: skip
    reply = asyncio.run(agent.ask("I moved to Lisbon; any vegetarian dinner?"))
    assert reply.body == "Try the vegetarian place."
    assert Memory("ana", url).get("city") == "Lisbon"
    assert [len(call.prompt) for call in config.calls] == [2, 2]  # shown on each model call
    assert "1. 'diet' = Ana is vegetarian" in config.calls[0].prompt[1]
    offered = [tool.function.name for tool in config.calls[0].tools]
    assert offered == [spec.name for spec in SPECS]
    history = asyncio.run(reply.history.get_events())
    assert not any("Relevant memories" in str(event) for event in history)
    (kept,) = Memory("ana:conversations", url).keys()
    assert Memory("ana:conversations", url).get(kept) == [
        {"role": "user", "content": "I moved to Lisbon; any vegetarian dinner?"},
        {"role": "assistant", "content": "Try the vegetarian place."},
    ]


def test_read_only_offers_no_writing_tool_and_keeps_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ro.db'}"
    config = TrackingConfig(TestConfig("Hello."))
    agent = Agent("assistant", prompt="p", config=config,
                  plugins=[memory_plugin("ana", url=url, read_only=True)])  # fmt: skip
    asyncio.run(agent.ask("hi"))
    offered = [tool.function.name for tool in config.calls[0].tools]
    assert offered == ["recall", "list_memory", "search_memory", "read_memory"]
    assert Memory("ana:conversations", url).keys() == []


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    from botwire import InvalidRequest

    with pytest.raises(InvalidRequest, match="k"):
        memory_plugin("ana", url=f"sqlite:///{tmp_path / 'k.db'}", k=0)


def test_without_ag2_the_error_says_what_to_install() -> None:
    out = run_python(
        """
        import sys
        sys.modules["ag2"] = None
        import botwire.ag2
        try:
            botwire.ag2.memory_plugin
        except ImportError as exc:
            print(exc)
        """
    )
    assert "pip install -e '.[ag2]'" in out and "not on the package index" in out
