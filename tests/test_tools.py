"""The memory tools' words, as a model reads them, on every backend (botwire.tools).

CrewAI, MCP and AG2 wrap these tools; what is tested here is what all of them answer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from botwire import Memory
from botwire.tools import FORGET, LIST_MEMORY, RECALL, REMEMBER, MemoryTools, render

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
    for result in (tools.remember(key, 1), tools.recall(key), tools.forget(key)):
        assert problem in result and "Use a short key of plain text" in result
    assert tools.memory.keys() == []


def test_a_value_over_the_limit_is_advice(store: Store) -> None:
    tools = MemoryTools(store.memory("crew", max_value_bytes=100))
    result = tools.remember("k", "x" * 200)
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
    read_only = MemoryTools(tools.memory, read_only=True)
    assert [s.name for s in read_only.specs] == ["recall", "list_memory"]
    with pytest.raises(PermissionError, match="read-only"):
        read_only.remember("k", 1)
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
    assert "Use recall before asking the user" in RECALL.description
    for spec in (REMEMBER, RECALL, LIST_MEMORY, FORGET):
        assert spec.description.endswith(".") and len(spec.description) < 400
        assert all(text.endswith((".", ".'", "keys.")) for text in spec.arguments.values())
    assert REMEMBER.writes and FORGET.writes and not RECALL.writes
