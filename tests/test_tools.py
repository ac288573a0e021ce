"""The memory tools' words, as a model reads them, on every backend (botwire.tools).

CrewAI, MCP and AG2 wrap these tools; what is tested here is what all of them answer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from botwire import Memory
from botwire.tools import SPECS, MemoryTools, Refusal, render

from .conftest import Store
from .helpers import Server, free_port


@pytest.fixture
def tools(store: Store) -> MemoryTools:
    return MemoryTools(store.memory("crew"))


def test_results_are_short_text(tools: MemoryTools) -> None:
    assert tools.remember("budget", "5000 EUR") == "stored 'budget'"
    assert tools.recall("budget") == "'budget' = 5000 EUR"
    tools.remember("a", 1)
    tools.remember("c", 3)
    assert tools.recall("x") == "no memory under 'x'; known keys: a, budget, c"
    assert tools.list_memory() == "3 keys: a, budget, c"
    assert tools.list_memory("b") == "1 key: budget"
    assert tools.list_memory("zz") == "no keys start with 'zz'"
    assert tools.forget("budget") == "forgot 'budget'"
    assert tools.forget("budget") == "no memory under 'budget'; nothing to forget"


def test_an_empty_memory(tools: MemoryTools) -> None:
    assert tools.list_memory() == "the memory is empty"
    assert tools.recall("x") == "no memory under 'x'; nothing is stored yet"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("5000 EUR", "5000 EUR"),
        ("5000", "5000"),
        (5000, "5000"),
        (2.5, "2.5"),
        (True, "true"),
        (None, "null"),
        ({"amount": 5000, "currency": "EUR"}, '{"amount": 5000, "currency": "EUR"}'),
        (["flights", "hotel 🏨"], '["flights", "hotel 🏨"]'),
    ],
)
def test_values_keep_their_type_and_read_compactly(
    tools: MemoryTools, value: Any, shown: str
) -> None:
    tools.remember("k", value)
    assert tools.memory.get("k") == value and type(tools.memory.get("k")) is type(value)
    assert tools.recall("k") == f"'k' = {shown}"


def test_long_values_and_long_listings_are_cut_with_a_count(tools: MemoryTools) -> None:
    tools.remember("essay", "x" * 5000)
    assert tools.recall("essay") == "'essay' = " + "x" * 2000 + "… (3,000 more characters)"
    tools.memory.set_many({f"k{n:03}": n for n in range(120)})
    listing = tools.list_memory("k")
    assert listing.startswith("120 keys: k000, k001,")
    assert listing.endswith("k049, and 70 more (narrow it with a prefix)")
    assert tools.recall("nope").endswith("and 71 more (narrow it with a prefix)")
    assert render("y" * 10, max_chars=4) == "yyyy… (6 more characters)"


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("", "must not be empty"),
        ("a\nb", "control character"),
        ("k" * 600, "the limit is 512 bytes"),
    ],
)
def test_a_bad_key_from_a_model_is_advice(tools: MemoryTools, key: str, problem: str) -> None:
    for result in (
        tools.remember(key, 1), tools.recall(key), tools.forget(key), tools.append_note(key, "x")
    ):  # fmt: skip
        assert isinstance(result, Refusal)
        assert problem in result and "Use a short key of plain text" in result
    assert tools.memory.keys() == []


def test_a_value_over_the_limit_is_advice(store: Store) -> None:
    tools = MemoryTools(store.memory("crew", max_value_bytes=100))
    result = tools.remember("k", "x" * 200)
    assert isinstance(result, Refusal)
    assert isinstance(tools.append_note("k", "x" * 200), Refusal)
    assert result == (
        "could not store 'k': the value is too long (202 bytes; the limit is 100). "
        "Store a shorter summary instead."
    )
    assert tools.memory.keys() == []


def test_programming_errors_still_raise(tools: MemoryTools) -> None:
    with pytest.raises(TypeError, match="key must be a str"):
        tools.remember(5, "x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="prefix must be a str"):
        tools.list_memory(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Memory"):
        MemoryTools("crew")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="text must be a str"):
        tools.append_note("k", 5)  # type: ignore[arg-type]
    read_only = MemoryTools(tools.memory, read_only=True)
    assert [s.name for s in read_only.specs] == [
        "recall",
        "list_memory",
        "search_memory",
        "read_memory",
    ]
    for write in (read_only.remember, read_only.append_note):
        with pytest.raises(PermissionError, match="read-only"):
            write("k", "x")
    assert tools.memory.keys() == []


def test_an_unreachable_store_is_advice() -> None:
    tools = MemoryTools(Memory("crew", f"http://127.0.0.1:{free_port()}", timeout=2))
    for result in (tools.remember("k", 1), tools.recall("k"), tools.list_memory()):
        assert "cannot be reached right now. Go on without it" in result


def test_a_quota_hit_is_advice(tmp_path: Path) -> None:
    with Server(f"sqlite:///{tmp_path / 'q.db'}", "--quota-writes-per-day", "2") as server:
        tools = MemoryTools(Memory("crew", server.url))
        assert tools.remember("a", 1) == "stored 'a'"
        assert tools.remember("b", 2) == "stored 'b'"
        result = tools.remember("c", 3)
        assert result.startswith("could not store 'c': the memory takes no more writes today")
        assert "(retry in " in result and result.endswith("Go on without storing.")
        assert tools.memory.keys() == ["a", "b"]
    with Server(f"sqlite:///{tmp_path / 'b.db'}", "--quota-bytes", "50") as server:
        tools = MemoryTools(Memory("crew", server.url))
        assert tools.remember("big", "y" * 60) == (
            "could not store 'big': the memory is full. Forget facts you no longer need, "
            "then retry."
        )
        assert tools.memory.keys() == []


def test_descriptions_say_what_and_when() -> None:
    by_name = {spec.name: spec for spec in SPECS}
    assert list(by_name) == [
        "remember", "recall", "list_memory", "forget", "search_memory", "append_note", "read_memory"
    ]  # fmt: skip
    assert "Use recall before asking the user" in by_name["recall"].description
    assert "when you do not know the key" in by_name["search_memory"].description
    for spec in SPECS:
        assert spec.description.endswith(".") and len(spec.description) < 400
        assert all(arg.description.endswith(".") for arg in spec.arguments.values())
    writers = {spec.name for spec in SPECS if spec.writes}
    assert writers == {"remember", "forget", "append_note"}


def test_search_finds_facts_and_notes_by_their_words(tools: MemoryTools) -> None:
    assert tools.search_memory("trip") == "the memory is empty: nothing is stored yet"
    tools.remember("budget", "5000 EUR for the Lisbon trip")
    tools.remember("diet", {"likes": "vegetarian food", "allergy": "peanuts"})
    tools.append_note("log", "booked flights")
    tools.append_note("log", "the trip to Lisbon starts on May 3")
    assert tools.search_memory("When does the Lisbon trip start?").splitlines() == [
        "2 memories match 'When does the Lisbon trip start?', best first:",
        "- 'log'[1] = the trip to Lisbon starts on May 3  (matched: lisbon, trip, start)",
        "- 'budget' = 5000 EUR for the Lisbon trip  (matched: lisbon, trip)",
    ]
    assert tools.search_memory("vegetarian") == (
        "1 memory matches 'vegetarian', best first:\n"
        """- 'diet' = {"likes": "vegetarian food", "allergy": "peanuts"}  (matched: vegetarian)"""
    )
    assert tools.search_memory("trip", limit=1).startswith("1 memory matches 'trip', best first:")
    tools.remember("essay", "word " * 400)
    assert tools.search_memory("word").endswith("… (1,500 more characters)  (matched: word)")


def test_a_search_that_matches_nothing_shows_the_newest_memories(tools: MemoryTools) -> None:
    tools.remember("diet", "vegetarian, allergic to peanuts")
    tools.remember("budget", "5000 EUR")
    assert tools.search_memory("submarine", limit=1).splitlines() == [
        "nothing in memory matches 'submarine' by its words; the newest memories are:",
        "- 'budget' = 5000 EUR",
    ]


def test_each_match_says_which_words_it_matched(tools: MemoryTools) -> None:
    tools.remember("diet", "the user eats no meat")
    tools.remember("pet", "the user has a cat named Miso")
    found = tools.search_memory("What does the user eat?").splitlines()
    assert found == [
        "2 memories match 'What does the user eat?', best first:",
        "- 'diet' = the user eats no meat  (matched: user, eat)",
        "- 'pet' = the user has a cat named Miso  (matched: user)",
    ]
    tools.remember("hobby", "chess")
    assert tools.search_memory("hobbies") == (
        "1 memory matches 'hobbies', best first:\n- 'hobby' = chess  (matched: hobbies)"
    )


@pytest.mark.parametrize("query", ['budget" OR (*', "budget AND NOT -x", "budget:* NEAR/2 ^"])
def test_search_syntax_in_a_query_is_plain_text(tools: MemoryTools, query: str) -> None:
    tools.remember("budget", "5000 EUR")
    found = tools.search_memory(query)
    assert not isinstance(found, Refusal)
    assert found.splitlines()[1:] == ["- 'budget' = 5000 EUR  (matched: budget)"]
    assert tools.memory.keys() == ["budget"]


def test_an_empty_query_is_advice(tools: MemoryTools) -> None:
    tools.remember("budget", 1)
    for query in ("", "   "):
        result = tools.search_memory(query)
        assert isinstance(result, Refusal) and "the query is empty" in result


def test_notes_pile_up_under_one_key(tools: MemoryTools) -> None:
    assert tools.append_note("todo", "call Ana") == "added a note to 'todo' (1 note)"
    assert tools.append_note("todo", "book the hotel") == "added a note to 'todo' (2 notes)"
    assert tools.recall("todo") == """'todo' = ["call Ana", "book the hotel"]"""
    empty = tools.append_note("todo", "  ")
    assert isinstance(empty, Refusal) and "the note is empty" in empty
    tools.remember("budget", 5000)
    onto_a_fact = tools.append_note("budget", "raise it")
    assert isinstance(onto_a_fact, Refusal)
    assert "holds a single fact, not a list of notes" in onto_a_fact
    assert tools.memory.get("budget") == 5000
    assert tools.memory.get("todo") == ["call Ana", "book the hotel"]


def test_call_validates_a_models_arguments(tools: MemoryTools) -> None:
    assert tools.call("remember", {"key": "k", "value": [1, "a"]}) == "stored 'k'"
    assert tools.call("list_memory", {}) == "1 key: k"
    refusals = {
        "missing": tools.call("remember", {"value": 1}),
        "wrong type": tools.call("recall", {"key": 5}),
        "out of range": tools.call("search_memory", {"query": "k", "limit": 500}),
        "unknown tool": tools.call("drop_tables", {}),
    }
    assert all(isinstance(result, Refusal) for result in refusals.values())
    assert "key: Field required" in refusals["missing"]
    assert "key: Input should be a valid string" in refusals["wrong type"]
    assert "limit: Input should be less than or equal to 20" in refusals["out of range"]
    assert refusals["unknown tool"].startswith("there is no tool 'drop_tables' here")
    read_only = MemoryTools(tools.memory, read_only=True)
    assert isinstance(read_only.call("forget", {"key": "k"}), Refusal)
    assert tools.memory.get("k") == [1, "a"]


def test_relevant_memories_are_a_numbered_block_or_none(tools: MemoryTools) -> None:
    tools.remember("diet", "Ana is vegetarian")
    tools.append_note("trips", "Lisbon in May, vegetarian restaurants booked")
    block = tools.relevant("Where can a vegetarian eat?", limit=5)
    assert block is not None
    head, *lines = block.splitlines()
    assert head == "Relevant memories (crew), most relevant first:"
    assert sorted(line.split(". ", 1)[1] for line in lines) == [
        "'diet' = Ana is vegetarian",
        "'trips'[0] = Lisbon in May, vegetarian restaurants booked",
    ]
    assert tools.relevant("submarines") is None
    assert tools.relevant("   ") is None


def test_read_memory_reads_everything_within_a_budget(tmp_path: Path) -> None:
    from botwire.tools import MAX_READ_CHARS

    tools = MemoryTools(Memory("everything", f"sqlite:///{tmp_path / 'all.db'}"))
    assert tools.read_memory() == "the memory is empty"
    tools.memory.set_many({f"fact:{n:03}": f"fact number {n} " + "x" * 200 for n in range(300)})
    tools.memory.set("other", {"a": 1})
    answer = tools.read_memory("fact:")
    lines = answer.splitlines()
    assert lines[0] == "300 memories:"
    assert lines[1].startswith("- 'fact:000' = fact number 0 ")
    shown = len(lines) - 2
    assert 50 < shown < 300 and len(answer) <= MAX_READ_CHARS + 200
    assert lines[-1] == f"… and {300 - shown:,} more: read them by a prefix, or recall them"
    assert answer.data["total"] == 300 and len(answer.data["memories"]) == shown
    small = tools.read_memory("other")
    assert small == "1 memory:\n- 'other' = {\"a\": 1}"
    only = {"key": "other", "value": {"a": 1}, "whole": True}
    assert small.data == {"memories": [only], "total": 1}


def test_read_memory_cuts_a_long_value_in_its_data_too(tmp_path: Path) -> None:
    tools = MemoryTools(Memory("long", f"sqlite:///{tmp_path / 'long.db'}"))
    tools.memory.set("essay", "word " * 100_000)
    tools.memory.set("short", "a fact")
    answer = tools.read_memory()
    essay, short = answer.data["memories"]
    assert essay["whole"] is False and len(essay["value"]) < 1_000
    assert short == {"key": "short", "value": "a fact", "whole": True}


def test_an_answer_is_copied_and_pickled_whole() -> None:
    import copy
    import pickle

    from botwire.tools import Answer

    answer = Answer("stored 'k'", {"key": "k", "stored": True})
    for twin in (copy.copy(answer), copy.deepcopy(answer), pickle.loads(pickle.dumps(answer))):
        assert twin == "stored 'k'" and type(twin) is Answer and twin.data == answer.data
