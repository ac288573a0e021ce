"""The CrewAI tools against CrewAI's real classes: tools, agents, crews and their kickoffs."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from crewai import Agent, Crew, Task
from crewai.tools import BaseTool

from botwire import Memory
from botwire.crewai import memory_tools

from .conftest import Store
from .helpers import Server, run_python
from .scripted import ScriptedCrewLLM, final, tool_call


def crew(llm: ScriptedCrewLLM, tools: list[BaseTool], description: str) -> Crew:
    agent = Agent(
        role="assistant", goal="help the user", backstory="a careful assistant",
        llm=llm, tools=tools, verbose=False,
    )  # fmt: skip
    task = Task(description=description, expected_output="a short answer", agent=agent)
    return Crew(agents=[agent], tasks=[task], verbose=False)


def test_each_tool_is_a_crewai_tool_with_a_schema(store: Store) -> None:
    tools = memory_tools("crew", memory=store.memory())
    assert [tool.name for tool in tools] == [
        "remember", "recall", "list_memory", "forget", "search_memory", "append_note", "read_memory"
    ]  # fmt: skip
    by_name = {tool.name: tool for tool in tools}
    for tool in tools:
        assert isinstance(tool, BaseTool)
        assert len(tool.description) > 60
    schema = by_name["remember"].args_schema.model_json_schema()
    assert schema["required"] == ["key", "value"]
    assert schema["properties"]["key"]["type"] == "string"
    assert "short name" in schema["properties"]["key"]["description"]
    assert schema["properties"]["value"]["type"] == "string"  # JSON text with as_json
    assert schema["properties"]["as_json"]["type"] == "boolean"
    listing = by_name["list_memory"].args_schema.model_json_schema()
    assert listing.get("required", []) == [] and listing["properties"]["prefix"]["default"] == ""
    assert by_name["remember"].run(key="budget", value=5000) == "stored 'budget'"
    assert store.memory("crew").get("budget") == 5000  # a number stays a number
    assert by_name["recall"].run(key="budget") == "'budget' = 5000"
    assert by_name["list_memory"].run() == "1 key: budget"
    assert by_name["append_note"].run(key="log", text="budget agreed") == (
        "added a note to 'log' (1 note)"
    )
    found = by_name["search_memory"].run(query="budget").splitlines()
    assert found[0] == "2 memories match 'budget', best first:"
    assert sorted(found[1:]) == [
        "- 'budget' = 5000  (matched: budget)", "- 'log'[0] = budget agreed  (matched: budget)"
    ]  # fmt: skip
    search = by_name["search_memory"].args_schema.model_json_schema()
    assert search["properties"]["limit"] == {
        "default": 5, "description": "Most matches to return.", "maximum": 20, "minimum": 1,
        "title": "Limit", "type": "integer",
    }  # fmt: skip
    assert by_name["forget"].run(key="budget") == "forgot 'budget'"
    Agent(role="r", goal="g", backstory="b", tools=tools, llm=ScriptedCrewLLM(model="s"))


def strict_problems(schema: Any, where: str = "parameters") -> list[str]:
    """What OpenAI's strict decoding refuses in a tool's parameters: an object that is not
    closed or does not require every property, a schema without a type (such as ``{}``), and
    keywords it does not take."""
    problems = []
    if not isinstance(schema, dict):
        return [f"{where}: not a schema"]
    if "anyOf" in schema:
        for n, option in enumerate(schema["anyOf"]):
            problems += strict_problems(option, f"{where}.anyOf[{n}]")
        return problems
    kind = schema.get("type")
    if kind is None:
        problems.append(f"{where}: no type")
    for keyword in ("default", "title", "format", "examples"):
        if keyword in schema:
            problems.append(f"{where}: {keyword!r} is not permitted")
    if kind == "object":
        properties = schema.get("properties", {})
        if schema.get("additionalProperties") is not False:
            problems.append(f"{where}: additionalProperties is not false")
        if sorted(schema.get("required", [])) != sorted(properties):
            problems.append(f"{where}: not every property is required")
        if not properties:
            problems.append(f"{where}: an object of no properties holds only {{}}")
        for name, option in properties.items():
            problems += strict_problems(option, f"{where}.{name}")
    if kind == "array":
        problems += strict_problems(schema.get("items"), f"{where}.items")
    return problems


def test_the_schemas_crewai_sends_hold_under_openai_strict_mode(tmp_path: Path) -> None:
    """The exact tool schemas CrewAI's OpenAI provider sends, ``strict: true``; ``remember``
    still stores any JSON value (as JSON text with ``as_json``)."""
    from crewai.llms.providers.openai.completion import OpenAICompletion
    from crewai.utilities.agent_utils import convert_tools_to_openai_schema

    url = f"sqlite:///{tmp_path / 'strict.db'}"
    tools = memory_tools("crew", url=url)
    schemas, functions, _ = convert_tools_to_openai_schema(tools)
    sent = OpenAICompletion(model="gpt-4o", api_key="not-used")._convert_tools_for_interference(
        schemas
    )
    assert [tool["function"]["name"] for tool in sent] == [tool.name for tool in tools]
    for tool in sent:
        assert tool["function"]["strict"] is True
        assert strict_problems(tool["function"]["parameters"]) == [], tool["function"]["name"]
    remember = functions["remember"]
    for value in [{"city": "Lisbon", "days": [1, 2]}, [1, "a"], 42, 2.5, True, None, "text"]:
        assert remember(key="k", value=json.dumps(value), as_json=True) == "stored 'k'"
        assert Memory("crew", url).get("k") == value
    assert remember(key="t", value="[not json", as_json=False) == "stored 't'"
    assert Memory("crew", url).get("t") == "[not json"
    refused = remember(key="bad", value="[not json", as_json=True)
    assert "not valid JSON" in refused and Memory("crew", url).get("bad") is None


def test_read_only_leaves_out_the_writing_tools(tmp_path: Path) -> None:
    tools = memory_tools("crew", url=f"sqlite:///{tmp_path / 'ro.db'}", read_only=True)
    assert [tool.name for tool in tools] == [
        "recall",
        "list_memory",
        "search_memory",
        "read_memory",
    ]


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"key": "", "value": "x"}, "must not be empty"),
        ({"key": "a\x00b", "value": "x"}, "control character"),
        ({"key": "big", "value": "x" * 2_000_000}, "the value is too long"),
    ],
)
def test_bad_input_from_a_model_is_a_result_and_writes_nothing(
    store: Store, arguments: dict[str, Any], problem: str
) -> None:
    (remember, *_) = memory_tools("crew", memory=store.memory())
    result = remember.run(**arguments)
    assert isinstance(result, str) and problem in result
    assert store.memory("crew").keys() == []


def test_a_quota_hit_and_an_unreachable_store_are_results(tmp_path: Path) -> None:
    with Server(f"sqlite:///{tmp_path / 'q.db'}", "--quota-writes-per-day", "1") as server:
        remember, recall, *_ = memory_tools("crew", url=server.url)
        assert remember.run(key="a", value=1) == "stored 'a'"
        assert "no more writes today" in remember.run(key="b", value=2)
        assert Memory("crew", server.url).keys() == ["a"]
    assert "cannot be reached right now" in recall.run(key="a")


def _remember_then_answer() -> list[str]:
    return [
        tool_call("remember", '{"key": "budget", "value": "5000 EUR"}'),
        final("I stored the budget."),
    ]


def test_a_crew_remembers_with_kickoff(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crew.db'}"
    llm = ScriptedCrewLLM(model="scripted", replies=_remember_then_answer())
    out = crew(llm, memory_tools("crew", url=url), "Remember the budget: 5000 EUR.").kickoff()
    assert out.raw == "I stored the budget."
    assert Memory("crew", url).get("budget") == "5000 EUR"
    assert ScriptedCrewLLM.last_observation(llm.seen[-1]) == "stored 'budget'"


@pytest.mark.parametrize("kickoff", ["kickoff_async", "akickoff"])
async def test_async_kickoffs_do_not_block_the_event_loop(tmp_path: Path, kickoff: str) -> None:
    url = f"sqlite:///{tmp_path / 'crew.db'}"
    Memory("crew", url).set("budget", "5000 EUR")
    llm = ScriptedCrewLLM(
        model="scripted",
        replies=[tool_call("recall", '{"key": "budget"}'), final("Budget: {observation}")],
    )
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            gaps.append(time.monotonic() - last)
            last = time.monotonic()

    team = crew(llm, memory_tools("crew", url=url), "What is the budget?")  # built first: the
    ticking = asyncio.create_task(ticker())  # gaps measure the kickoff alone
    out = await getattr(team, kickoff)()
    ticking.cancel()
    assert out.raw == "Budget: 'budget' = 5000 EUR"
    assert gaps and max(gaps) < 1.0


@pytest.mark.slow
@pytest.mark.parametrize("where", ["embedded", "server"])
def test_a_fact_remembered_by_one_crew_is_recalled_by_another_process(
    tmp_path: Path, where: str
) -> None:
    code = """
        from tests.scripted import ScriptedCrewLLM, final, tool_call
        from tests.test_crewai import crew
        from botwire.memory import memory_tools
        llm = ScriptedCrewLLM(model="scripted", replies=REPLIES)
        print(crew(llm, memory_tools("acme", url=URL), TASK).kickoff().raw)
    """

    def run(url: str, replies: str, task: str) -> str:
        script = code.replace("REPLIES", replies).replace("URL", repr(url))
        return run_python(script.replace("TASK", repr(task))).strip().splitlines()[-1]

    remember = '[tool_call("remember", \'{"key": "budget", "value": "5000 EUR"}\'), final("ok")]'
    recall = '[tool_call("recall", \'{"key": "budget"}\'), final("The budget: {observation}")]'

    def both(url: str) -> str:
        assert run(url, remember, "Remember the client's budget: 5000 EUR.") == "ok"
        return run(url, recall, "What is the client's budget?")

    if where == "embedded":
        answer = both(f"sqlite:///{tmp_path / 'shared.db'}")
    else:
        with Server(f"sqlite:///{tmp_path / 'served.db'}") as server:
            answer = both(server.url)
    assert answer == "The budget: 'budget' = 5000 EUR"


def test_both_import_paths_and_no_framework_on_import() -> None:
    out = run_python(
        """
        import sys
        import botwire, botwire.memory
        assert "crewai" not in sys.modules
        from botwire.memory import memory_tools
        from botwire.crewai import memory_tools as direct
        assert memory_tools is direct and "crewai" in sys.modules
        print("ok")
        """
    )
    assert out.strip() == "ok"


def test_without_crewai_the_error_says_what_to_install() -> None:
    out = run_python(
        """
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "crewai":
                    raise ImportError(f"No module named {name!r}")
        sys.meta_path.insert(0, Block())
        try:
            from botwire.memory import memory_tools
        except ImportError as exc:
            print(exc)
        """
    )
    assert "pip install -e '.[crewai]'" in out and "not on the package index" in out
