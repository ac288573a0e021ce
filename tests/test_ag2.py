"""The AG2 capability against AG2's real ``ConversableAgent``s, with scripted replies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from autogen import ConversableAgent, register_function
from autogen.tools import Tool

from botwire import InvalidKey, InvalidRequest, Memory
from botwire.ag2 import BotWireCapability
from botwire.tools import SPECS

from .helpers import Server, run_python

SCRIPT = """
import json, sys
from autogen import ConversableAgent
from botwire.ag2 import BotWireCapability

url, resume, message = sys.argv[1], sys.argv[2] == "resume", sys.argv[3]
seen = []

def scripted(recipient, messages=None, sender=None, config=None):
    seen.append([dict(m) for m in messages])
    return True, f"answer {len(seen)}"

user = ConversableAgent("user", llm_config=False, human_input_mode="NEVER", default_auto_reply="ok")
assistant = ConversableAgent("assistant", llm_config=False, human_input_mode="NEVER")
assistant.register_reply([ConversableAgent, None], scripted, position=0)
memory = BotWireCapability("ana", url=url)
memory.add_to_agent(assistant)
resumed = memory.resume(assistant, user) if resume else 0
user.initiate_chat(assistant, message=message, max_turns=2, clear_history=not resume, silent=True)
print(json.dumps({"resumed": resumed, "seen": seen}))
"""


def conversation(
    url: str, message: str, *, resume: bool = False
) -> tuple[int, list[list[dict[str, Any]]]]:
    """One conversation of two agents in a new process: the user says ``message`` and ``ok``;
    the assistant's scripted reply function records what it was given."""
    out = run_python(
        f"import sys; sys.argv[1:] = {[url, 'resume' if resume else 'new', message]!r}\n" + SCRIPT
    )
    data = json.loads(out.strip().splitlines()[-1])
    return data["resumed"], data["seen"]


def latest(url: str, namespace: str) -> Any:
    """The newest conversation of the assistant with the user."""
    memory = Memory(namespace, url)
    (key,) = memory.keys("assistant<->user", reverse=True, limit=1)
    return memory.get(key)


def contents(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in messages]


MEMORY = "Relevant memories (ana), most relevant first:\n1. 'diet' = Ana is vegetarian"


@pytest.fixture(params=["embedded", "server"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "embedded":
        return f"sqlite:///{tmp_path / 'ag2.db'}"
    server: Server = request.getfixturevalue("http_server")
    return server.url


@pytest.mark.slow
def test_a_restarted_agent_resumes_the_conversation_with_its_memories(url: str) -> None:
    Memory("ana", url).clear()
    Memory("ana:conversations", url).clear()
    Memory("ana", url).set("diet", "Ana is vegetarian")
    _, first = conversation(url, "Hi, I am Ana. Plan a dinner in Lisbon for me.")
    assert contents(first[0]) == [
        ("system", MEMORY),  # the memory that shares words with the message, before it
        ("user", "Hi, I am Ana. Plan a dinner in Lisbon for me."),
    ]
    assert contents(first[1]) == [  # "ok" matches no memory; the earlier one is gone
        ("user", "Hi, I am Ana. Plan a dinner in Lisbon for me."),
        ("assistant", "answer 1"),
        ("user", "ok"),
    ]
    resumed, later = conversation(url, "Any vegetarian place for dinner tomorrow?", resume=True)
    assert resumed == 4
    assert contents(later[0]) == [
        ("user", "Hi, I am Ana. Plan a dinner in Lisbon for me."),
        ("assistant", "answer 1"),
        ("user", "ok"),
        ("assistant", "answer 2"),
        ("system", MEMORY),
        ("user", "Any vegetarian place for dinner tomorrow?"),
    ]
    kept = latest(url, "ana:conversations")
    assert [(m["role"], m["content"]) for m in kept][-2:] == [
        ("user", "ok"),
        ("assistant", "answer 2"),
    ]
    assert len(kept) == 8 and all(m["role"] != "system" for m in kept)


@pytest.mark.slow
def test_a_new_chat_in_another_process_recalls_what_was_said_before(url: str) -> None:
    """Process 1: "My name is Ana and I love hiking". Process 2, same namespace, a new chat
    (not resumed): "What is my name?" reaches the model with that earlier turn before it."""
    Memory("ana", url).clear()
    Memory("ana:conversations", url).clear()
    conversation(url, "My name is Ana and I love hiking")
    _, later = conversation(url, "What is my name?")
    shown = [m["content"] for m in later[0] if m["role"] == "system"]
    assert len(shown) == 1 and "My name is Ana and I love hiking" in shown[0], later[0]
    assert "earlier, with user" in shown[0]
    assert later[0][-1] == {"role": "user", "content": "What is my name?", "name": "user"} or \
        later[0][-1]["content"] == "What is my name?"  # fmt: skip


def test_the_seed_preference_is_recalled_in_a_new_process(tmp_path: Path) -> None:
    """A fact stored through the tools in one process is shown before the reply to a question
    that shares a word with it, in a new process and a new chat."""
    url = f"sqlite:///{tmp_path / 'seed.db'}"
    run_python(
        f"""
        from botwire.ag2 import BotWireCapability
        memory = BotWireCapability("ana", url={url!r})
        (remember,) = [t for t in memory.tools() if t.__name__ == "remember"]
        print(remember(key="language", value="The user prefers Python"))
        """
    )
    _, seen = conversation(url, "Which Python book should I read next?")
    shown = [m["content"] for m in seen[0] if m["role"] == "system"]
    assert shown and "The user prefers Python" in shown[0]


def agents(url: str, **options: Any) -> tuple[ConversableAgent, ConversableAgent, list[Any]]:
    seen: list[Any] = []

    def scripted(recipient: Any, messages: Any = None, sender: Any = None, config: Any = None):  # type: ignore[no-untyped-def]
        seen.append([dict(m) for m in messages])
        return True, f"answer {len(seen)}"

    user = ConversableAgent("user", llm_config=False, human_input_mode="NEVER")
    assistant = ConversableAgent("assistant", llm_config=False, human_input_mode="NEVER")
    assistant.register_reply([ConversableAgent, None], scripted, position=0)
    BotWireCapability("team", url=url, **options).add_to_agent(assistant)
    return user, assistant, seen


def test_a_new_conversation_is_kept_beside_the_earlier_one_and_memories_never_pile_up(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    Memory("team", url).set_many({"launch": "the launch is on May 3", "lead": "Bob leads it"})
    user, assistant, seen = agents(url, k=1)
    user.initiate_chat(assistant, message="When is the launch?", max_turns=3, silent=True)
    systems = [m for messages in seen for m in messages if m["role"] == "system"]
    assert [m["content"] for m in systems] == [
        "Relevant memories (team), most relevant first:\n1. 'launch' = the launch is on May 3"
    ]
    assert all(m["role"] != "system" for m in assistant.chat_messages[user])
    user.initiate_chat(assistant, message="Who leads it?", max_turns=1, silent=True)
    kept = latest(url, "team:conversations")
    assert contents(kept) == [("user", "Who leads it?"), ("assistant", f"answer {len(seen)}")]
    assert "Bob leads it" in seen[-1][0]["content"]
    chats = Memory("team:conversations", url).keys("assistant<->user")
    assert len(chats) == 2 and chats[0].startswith("assistant<->user:20")


def test_without_conversations_only_memories_are_shown(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    user, assistant, seen = agents(url, remember_conversations=False)
    user.initiate_chat(assistant, message="hello", max_turns=1, silent=True)
    assert seen and Memory("team:conversations", url).keys() == []


def test_bad_input_is_a_clear_error_and_writes_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    with pytest.raises(InvalidKey, match="control character"):
        BotWireCapability("bad\nname", url=url)
    with pytest.raises(InvalidRequest, match="k must be"):
        BotWireCapability("team", url=url, k=0)
    user, assistant, seen = agents(url)
    with pytest.raises(InvalidRequest, match="content must be text"):
        user.send({"content": 42}, assistant, request_reply=True, silent=True)
    with pytest.raises(TypeError, match="ConversableAgent"):
        BotWireCapability("team", url=url).add_to_agent("assistant")  # type: ignore[arg-type]
    assert seen == []
    assert Memory("team:conversations", url).keys() == [] and Memory("team", url).keys() == []


def test_the_tools_carry_the_shared_words_and_run_through_register_function(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    functions = BotWireCapability("team", url=url).tools()
    assert [f.__name__ for f in functions] == [spec.name for spec in SPECS]
    for function, spec in zip(functions, SPECS, strict=True):
        schema = Tool(func_or_tool=function).tool_schema["function"]
        assert schema["description"] == spec.description == function.__doc__
        assert set(schema["parameters"]["properties"]) == set(spec.arguments)
    remember = dict(zip([f.__name__ for f in functions], functions, strict=True))["remember"]
    caller = ConversableAgent(
        "assistant", human_input_mode="NEVER",
        llm_config={"config_list": [{"model": "scripted", "api_key": "not-used"}]},
    )  # fmt: skip
    executor = ConversableAgent("user", llm_config=False, human_input_mode="NEVER")
    for function in functions:
        register_function(
            function, caller=caller, executor=executor, description=function.__doc__ or ""
        )
    offered = [tool["function"]["name"] for tool in caller.llm_config["tools"]]
    assert offered == [spec.name for spec in SPECS]
    arguments = json.dumps({"key": "budget", "value": {"eur": 5000}})
    ok, result = executor.execute_function({"name": "remember", "arguments": arguments})
    assert ok and result["content"] == "stored 'budget'"
    ok, result = executor.execute_function({"name": "recall", "arguments": '{"key": "budget"}'})
    assert result["content"] == """'budget' = {"eur": 5000}"""
    ok, result = executor.execute_function({"name": "remember", "arguments": '{"key": ""}'})
    assert "value\n  Field required" in str(result["content"])  # AG2 checks the schema first
    ok, result = executor.execute_function(
        {"name": "remember", "arguments": '{"key": "", "value": 1}'}
    )
    assert "key must not be empty. Use a short key of plain text" in result["content"]
    assert remember(key="k", value=1) == "stored 'k'"
    assert Memory("team", url).get_many(["budget", "k"]) == {"budget": {"eur": 5000}, "k": 1}


def test_without_the_classic_ag2_the_error_says_what_to_install() -> None:
    out = run_python(
        """
        import sys
        sys.modules["autogen"] = None
        import botwire.ag2
        try:
            botwire.ag2.BotWireCapability
        except ImportError as exc:
            print(exc)
        """
    )
    assert "pip install -e '.[ag2-classic]'" in out


def test_the_classic_capability_uses_no_private_ag2_function() -> None:
    import botwire.ag2.classic as classic

    source = Path(classic.__file__).read_text()
    assert "normilize_message_to_oai" not in source
    assert "autogen.agentchat.conversable" not in source


def test_a_conversation_kept_by_the_previous_release_is_resumed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    Memory("team:conversations", url).append(
        "assistant<->user", {"role": "user", "content": "kept before", "name": "user"}
    )
    user, assistant, _ = agents(url)
    capability = BotWireCapability("team", url=url)
    assert capability.resume(assistant, user) == 1
    assert contents(assistant.chat_messages[user]) == [("user", "kept before")]
