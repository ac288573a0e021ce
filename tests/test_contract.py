"""The storage contract: every backend passes these unchanged (see the ``store`` fixture)."""

from __future__ import annotations

import asyncio
import math
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from botwire import (
    InvalidKey,
    InvalidRequest,
    InvalidValue,
    Memory,
    ValueTooLarge,
    VersionConflict,
    WrongType,
)
from botwire._values import to_json
from botwire.backends.base import Get, Incr, ListKeys, ListNamespaces, Put, run_steps, together

from .conftest import Store

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=20,
)


def assert_same(got: Any, want: Any) -> None:
    """Equal, and of the same JSON types all the way down (a tuple is stored as a list)."""
    if isinstance(want, tuple):
        want = list(want)
    assert type(got) is type(want), (got, want)
    if isinstance(want, dict):
        assert list(got) == list(want)
        for key in want:
            assert_same(got[key], want[key])
    elif isinstance(want, list):
        assert len(got) == len(want)
        for a, b in zip(got, want, strict=True):
            assert_same(a, b)
    elif isinstance(want, float):
        assert got == want and math.copysign(1, got) == math.copysign(1, want)
    else:
        assert got == want


# -- values ---------------------------------------------------------------------------------


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=json_values)
def test_any_json_value_round_trips_with_its_types(mem: Memory, value: Any) -> None:
    mem.set("k", value)
    mem.set("j", [value])
    assert_same(mem.get("k"), value)
    assert_same(mem.get_many(["k"])["k"], value)
    both = mem.get_many(["j", "k"])  # values read together are decoded together
    assert_same(both["k"], value)
    assert_same(both["j"][0], value)
    assert_same(mem.items()["k"], value)


@pytest.mark.parametrize(
    "value",
    [
        5, 0, -1, 2**100, -(2**80), 1.0, -0.0, 3.14, 1e300, True, False, None,
        "[1,2]", "5", "null", "true", '{"a": 1}', "", "héllo wörld ✓ 🧠", "\u2028",
        [1, "2", [3.0]], {}, [], {"b": 1, "a": [None, {"c": "d"}]}, (1, 2),
    ],
)  # fmt: skip
def test_values_round_trip_exactly(mem: Memory, value: Any) -> None:
    mem.set("k", value)
    assert_same(mem.get("k"), value)


def test_dict_key_order_is_preserved(mem: Memory) -> None:
    mem.set("k", {"z": 1, "a": 2, "m": 3})
    assert list(mem.get("k")) == ["z", "a", "m"]


class Unserialisable:
    pass


def _circular() -> list[Any]:
    loop: list[Any] = []
    loop.append(loop)
    return loop


BAD_VALUES = [
    {1, 2},
    b"bytes",
    datetime(2026, 1, 1),
    Unserialisable(),
    float("nan"),
    float("inf"),
    -math.inf,
    {1: "int key"},
    {"nested": {2: "int key"}},
    [{"a": {None: 1}}],
    [1, {2}],
    _circular(),
    "lone \ud800 surrogate",
]


@pytest.mark.parametrize("value", BAD_VALUES, ids=lambda v: type(v).__name__)
def test_non_json_value_raises_type_error_and_writes_nothing(mem: Memory, value: Any) -> None:
    mem.set("kept", "before")
    with pytest.raises(TypeError, match=r"JSON|Unicode") as info:
        mem.set("new", value)
    assert isinstance(info.value, InvalidValue)
    with pytest.raises(InvalidValue):
        mem.set("kept", value)
    with pytest.raises(InvalidValue):
        mem.append("list", value)
    with pytest.raises(InvalidValue):
        mem.set_many({"a": 1, "b": value})
    assert mem.keys() == ["kept"]
    assert mem.get("kept") == "before"


def nested(depth: int) -> Any:
    value: Any = "core"
    for level in range(depth):
        value = [value] if level % 2 else {"in": value}
    return value


def test_a_value_nests_500_deep_and_no_deeper(mem: Memory) -> None:
    """What is written reads back on every path (a read parses a little less deep than a
    write, and ``get_many`` deeper in the stack than ``get``); one level more is refused and
    writes nothing."""
    deepest = nested(500)
    mem.set("deep", deepest)
    mem.set("other", 1)
    assert mem.get("deep") == deepest
    assert mem.get_many(["deep", "other"]) == {"deep": deepest, "other": 1}
    assert mem.items() == {"deep": deepest, "other": 1}
    for depth in (501, 991):
        with pytest.raises(InvalidValue, match="nested too deeply"):
            mem.set("too-deep", nested(depth))
        with pytest.raises(InvalidValue, match="nested too deeply"):
            mem.append("deep-list", nested(depth))
    assert mem.keys() == ["deep", "other"]


def test_value_above_the_size_limit_is_refused(store: Store) -> None:
    small = store.memory(max_value_bytes=100)
    small.set("k", "x" * 98)  # 100 bytes with its quotes
    with pytest.raises(ValueTooLarge, match="100 bytes"):
        small.set("k", "x" * 99)
    with pytest.raises(ValueTooLarge):
        small.set("other", ["é" * 60])  # counted in UTF-8 bytes
    with pytest.raises(ValueTooLarge):
        small.append("list", "y" * 200)
    assert small.get("k") == "x" * 98
    assert small.keys() == ["k"]


def test_default_size_limit_is_one_mebibyte(mem: Memory) -> None:
    with pytest.raises(ValueTooLarge):
        mem.set("big", "x" * (1024 * 1024))
    assert "big" not in mem


# -- keys and namespaces --------------------------------------------------------------------

ODD_KEYS = [
    "a?x=1",
    "a",
    "#fragment",
    "a/b/c",
    "/",
    "with space",
    "%20",
    "a%2Fb",
    "emoji 🧠",
    "user:+1234567890",
    "plus+plus",
    "ключ",
    "..",
    "k" * 512,
]


def test_odd_keys_round_trip_without_aliasing(mem: Memory) -> None:
    for number, key in enumerate(ODD_KEYS):
        mem.set(key, number)
    for number, key in enumerate(ODD_KEYS):
        assert mem.get(key) == number
        assert key in mem
    assert mem.keys() == sorted(ODD_KEYS)
    assert mem.get_many(ODD_KEYS) == {key: n for n, key in enumerate(ODD_KEYS)}
    assert mem.delete("a/b/c") is True
    assert mem.get("a") == 1


@pytest.mark.parametrize(
    "namespace", ["twilio-whatsapp:+1234567890", "with space", "émoji 🧠", "a?b#c", "n" * 256]
)
def test_odd_namespaces_are_valid_and_isolated(store: Store, namespace: str) -> None:
    mem = store.memory(namespace)
    mem.set("k", "mine")
    store.memory("other").set("k", "theirs")
    assert mem.get("k") == "mine"
    assert mem.keys() == ["k"]
    assert store.backend.execute([]) == []
    (names,) = store.backend.execute([ListNamespaces("")])
    assert namespace in names and "other" in names


BAD_KEYS = ["", "k\n", "a\x00b", "tab\t", "\x7f", "c1\x85", "k" * 513, "é" * 257, "\udc80"]


@pytest.mark.parametrize("key", [*BAD_KEYS, 5, None, b"k"], ids=repr)
def test_bad_key_raises_value_error_naming_the_rule_and_writes_nothing(
    mem: Memory, key: Any
) -> None:
    calls = [
        lambda: mem.set(key, 1),
        lambda: mem.get(key),
        lambda: mem.append(key, 1),
        lambda: mem.incr(key),
        lambda: mem.update(key, lambda v: 1),
        lambda: mem.set_many({"ok": 1, key: 2}),
        lambda: mem.delete(key),
        lambda: mem.expire(key, 10),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="key") as info:
            call()
        assert isinstance(info.value, InvalidKey)
        message = str(info.value)
        assert any(
            rule in message for rule in ("empty", "control", "bytes", "must be a str", "Unicode")
        )
    assert mem.keys() == []


@pytest.mark.parametrize("namespace", ["", "a/b", "ns\n", "\x00", "n" * 257, 7])
def test_bad_namespace_raises_value_error(store: Store, namespace: Any) -> None:
    with pytest.raises(ValueError, match="namespace") as info:
        store.memory(namespace)
    assert isinstance(info.value, InvalidKey)


# -- basic calls ----------------------------------------------------------------------------


def test_get_missing_returns_default(mem: Memory) -> None:
    assert mem.get("nope") is None
    assert mem.get("nope", 42) == 42
    sentinel = object()
    assert mem.get("nope", sentinel) is sentinel
    mem.set("none", None)
    assert mem.get("none", "default") is None
    assert "none" in mem


def test_delete_says_whether_something_was_deleted(mem: Memory) -> None:
    mem.set("k", 1)
    assert mem.delete("k") is True
    assert mem.delete("k") is False
    assert "k" not in mem


def test_batches(mem: Memory) -> None:
    mem.set_many({"a": 1, "b": [2], "c": {"x": None}})
    assert mem.get_many(["a", "c", "missing"]) == {"a": 1, "c": {"x": None}}
    assert mem.get_many([]) == {}
    assert mem.delete_many(["a", "b", "missing"]) == 2
    assert mem.keys() == ["c"]
    mem.set_many({"t": 1}, ttl=60)
    assert mem.ttl("t") is not None


def test_keys_and_namespaces_reject_a_str_where_a_list_belongs(mem: Memory) -> None:
    with pytest.raises(InvalidRequest, match="iterable"):
        mem.get_many("abc")
    with pytest.raises(InvalidRequest, match="iterable"):
        mem.delete_many("abc")
    with pytest.raises(InvalidRequest, match="mapping"):
        mem.set_many([("a", 1)])  # type: ignore[arg-type]


def test_batch_is_atomic_when_one_operation_fails(store: Store) -> None:
    mem = store.memory()
    mem.set("text", "not a number")
    with pytest.raises(WrongType):
        store.backend.execute([Put("test", "written", "1"), Incr("test", "text", 1)])
    assert "written" not in mem
    assert store.backend.execute([Get("test", "written")]) == [None]


def test_versions_grow_and_guard_conditional_writes(mem: Memory) -> None:
    v1 = mem.set("k", "a")
    entry = mem.entry("k")
    assert entry is not None and entry.version == v1 and entry.value == "a"
    v2 = mem.set("k", "b", if_version=v1)
    assert v2 > v1
    with pytest.raises(VersionConflict) as info:
        mem.set("k", "c", if_version=v1)
    assert info.value.expected == v1 and info.value.actual == v2
    assert mem.get("k") == "b"
    with pytest.raises(VersionConflict):
        mem.set("k", "c", if_version=0)
    assert mem.set("new", 1, if_version=0) > 0
    with pytest.raises(VersionConflict) as info:
        mem.set("absent", 1, if_version=5)
    assert info.value.actual == 0
    assert "absent" not in mem


def test_a_recreated_key_never_reuses_an_old_version(mem: Memory) -> None:
    old = mem.set("k", 1)
    mem.delete("k")
    new = mem.set("k", 2)
    assert new > old
    with pytest.raises(VersionConflict):
        mem.set("k", 3, if_version=old)


def test_entry_carries_timestamps(store: Store) -> None:
    mem = store.memory()
    assert mem.entry("nope") is None
    mem.set("k", {"a": 1}, ttl=100)
    store.advance(0.05)
    mem.set("k", {"a": 2}, ttl=100)
    entry = mem.entry("k")
    assert entry is not None
    assert entry.value == {"a": 2} and entry.key == "k"
    assert entry.created_at.tzinfo is timezone.utc
    assert entry.created_at < entry.updated_at
    assert entry.expires_at is not None
    assert entry.expires_at - entry.updated_at == timedelta(seconds=100)
    mem.set("k", 3)
    entry = mem.entry("k")
    assert entry is not None and entry.expires_at is None


def test_entries_in_one_round_trip(store: Store) -> None:
    mem = store.memory()
    mem.set("a", 1)
    mem.set("b", [1, 2], ttl=1.0)
    found = mem.entries(["a", "b", "missing"])
    assert set(found) == {"a", "b"}
    assert found["a"] == mem.entry("a") and found["b"] == mem.entry("b")
    store.advance(0.6)
    assert set(mem.entries(["b"], refresh_ttl=True)) == {"b"}  # its expiry starts again
    store.advance(0.6)
    assert mem.entries(["b"])["b"].value == [1, 2]
    store.advance(0.6)
    assert mem.entries(["a", "b"]).keys() == {"a"}

    async def main() -> None:
        amem = store.amemory()
        assert (await amem.entries(["a"]))["a"].value == 1

    asyncio.run(main())


def test_incr(mem: Memory) -> None:
    assert mem.incr("n") == 1
    assert mem.incr("n", 10) == 11
    assert mem.incr("n", -20) == -9
    assert mem.get("n") == -9
    mem.set("big", 2**62)
    assert mem.incr("big", 2**62 - 1) == 2**63 - 1  # counters are 64-bit, as in Redis
    with pytest.raises(InvalidRequest, match="64-bit"):
        mem.incr("big")
    mem.set("huge", 2**70)
    with pytest.raises(InvalidRequest, match="64-bit"):
        mem.incr("huge", -1)
    assert mem.get("big") == 2**63 - 1 and mem.get("huge") == 2**70


@pytest.mark.parametrize("stored", ["5", 1.5, True, None, [1], {"a": 1}])
def test_incr_on_a_non_integer_fails_and_leaves_it(mem: Memory, stored: Any) -> None:
    mem.set("k", stored)
    with pytest.raises(WrongType, match="not an integer") as info:
        mem.incr("k")
    assert isinstance(info.value, TypeError)
    assert_same(mem.get("k"), stored)


def test_incr_on_a_list_made_by_append_fails(mem: Memory) -> None:
    mem.append("k", 1)
    with pytest.raises(WrongType, match="a list"):
        mem.incr("k")
    assert mem.get("k") == [1]


@pytest.mark.parametrize("by", [1.5, "1", True, None])
def test_incr_by_must_be_an_int(mem: Memory, by: Any) -> None:
    with pytest.raises(InvalidRequest, match="by"):
        mem.incr("k", by)
    assert "k" not in mem


def test_append_keeps_order_and_trims(mem: Memory) -> None:
    assert mem.append("chat", {"role": "user", "text": "hi"}) == 1
    assert mem.append("chat", "a", 2, [3], None) == 5
    assert mem.get("chat") == [{"role": "user", "text": "hi"}, "a", 2, [3], None]
    assert mem.append("chat", "x", "y", max_len=3) == 3
    assert mem.get("chat") == [None, "x", "y"]
    assert mem.append("chat", *range(10), max_len=4) == 4
    assert mem.get("chat") == [6, 7, 8, 9]
    mem.set("chat", "replaced")
    assert mem.get("chat") == "replaced"


def _sizes(store: Store, ns: str = "test") -> dict[str, int]:
    (page,) = store.backend.execute([ListKeys(ns)])
    return {info.key: info.size for info in page.keys}


def test_append_keeps_a_first_item_that_matches(store: Store) -> None:
    mem = store.memory()
    system = {"role": "system", "content": "be brief"}
    window = {"max_len": 3, "keep_first": {"role": "system"}}
    assert mem.append("chat", system, **window) == 1
    for n in range(10):
        assert mem.append("chat", {"role": "user", "n": n}, **window) == min(n + 2, 3)
    assert mem.get("chat") == [system, {"role": "user", "n": 8}, {"role": "user", "n": 9}]
    mem.append("chat", *({"n": n} for n in range(10, 15)), **window)
    assert mem.get("chat") == [system, {"n": 13}, {"n": 14}]
    assert mem.append("chat", {"n": 15}, max_len=1, keep_first={"role": "system"}) == 1
    assert mem.get("chat") == [system]
    mem.append("plain", {"role": "user", "n": 0}, **window)
    for n in range(1, 5):
        mem.append("plain", {"role": "user", "n": n}, **window)  # no match: a plain window
    assert [item["n"] for item in mem.get("plain")] == [2, 3, 4]
    mem.set("set", [system, 1, 2, 3])  # a list written by set, then trimmed
    assert mem.append("set", 4, **window) == 3
    assert mem.get("set") == [system, 3, 4]
    assert _sizes(store) == {k: len(to_json(mem.get(k))) for k in ("chat", "plain", "set")}


@pytest.mark.parametrize(
    ("first", "fields", "kept"),
    [
        ({"n": 1}, {"n": 1.0}, True),
        ({"n": 1}, {"n": True}, False),
        ({"n": True}, {"n": True}, True),
        ({"a": [1, {"b": None}]}, {"a": [1, {"b": None}]}, True),
        ({"a": 1}, {}, True),
        ({"a": 1}, {"b": None}, False),
        ("system", {"role": "system"}, False),
    ],
)
def test_keep_first_compares_json_values(mem: Memory, first: Any, fields: Any, kept: bool) -> None:
    mem.append("l", first, 2, 3, max_len=2, keep_first=fields)
    assert mem.get("l") == ([first, 3] if kept else [2, 3])


@pytest.mark.parametrize("fields", [["role"], "role", 5, '["x"]'])
def test_keep_first_must_be_fields(mem: Memory, fields: Any) -> None:
    with pytest.raises(InvalidRequest, match="keep_first"):
        mem.append("l", 1, max_len=2, keep_first=fields)
    assert "l" not in mem


def test_append_with_a_ttl_restarts_the_expiry(store: Store) -> None:
    mem = store.memory()
    mem.append("chat", 1, ttl=1.0)
    store.advance(0.6)
    mem.append("chat", 2, ttl=1.0)  # a write restarts the idle timer
    store.advance(0.6)
    assert mem.get("chat") == [1, 2]
    remaining = mem.ttl("chat")
    assert remaining is not None and remaining <= 0.41
    mem.append("chat", 3)  # without a ttl, the expiry stays
    store.advance(0.6)
    assert mem.get("chat") is None
    mem.set("kept", [1], ttl=100)
    mem.append("kept", 2)
    assert mem.ttl("kept") is not None
    with pytest.raises(InvalidRequest, match="ttl"):
        mem.append("new", 1, ttl=0)
    assert "new" not in mem


@pytest.mark.parametrize(
    ("start", "stop"), [(None, None), (-3, None), (2, 5), (0, -1), (-100, 2), (7, 3), (9, None)]
)
def test_slice_reads_part_of_a_list(mem: Memory, start: Any, stop: Any) -> None:
    items = [{"n": n} for n in range(10)]
    mem.append("rows", *items[:6])
    mem.append("rows", *items[6:])
    mem.set("value", items)  # a list written by set slices the same
    assert mem.slice("rows", start, stop) == items[start:stop]
    assert mem.slice("value", start, stop) == items[start:stop]
    mem.append("window", *items, max_len=4)
    assert mem.slice("window", start, stop) == items[6:][start:stop]


def test_slice_of_what_is_not_a_list(mem: Memory) -> None:
    assert mem.slice("missing", -2) is None and mem.slice("missing", default=[]) == []
    mem.set("text", "abc")
    with pytest.raises(WrongType, match="slice"):
        mem.slice("text", 0, 1)
    with pytest.raises(InvalidRequest, match="start"):
        mem.slice("text", "1")  # type: ignore[arg-type]


def test_append_to_a_list_written_by_set(mem: Memory) -> None:
    mem.set("l", [1, {"a": "b"}, "[x]"])
    assert mem.append("l", 4) == 4
    assert_same(mem.get("l"), [1, {"a": "b"}, "[x]", 4])
    mem.set("empty", [])
    assert mem.append("empty", 1, max_len=1) == 1
    assert mem.get("empty") == [1]


@pytest.mark.parametrize("stored", ["text", 5, {"a": 1}, None, True])
def test_append_to_a_non_list_fails_and_leaves_it(mem: Memory, stored: Any) -> None:
    mem.set("k", stored)
    with pytest.raises(WrongType, match="not a list"):
        mem.append("k", 1)
    assert_same(mem.get("k"), stored)


@pytest.mark.parametrize("max_len", [0, -1, 1.5, "3"])
def test_append_rejects_bad_max_len(mem: Memory, max_len: Any) -> None:
    with pytest.raises(InvalidRequest, match="max_len"):
        mem.append("k", 1, max_len=max_len)
    with pytest.raises(InvalidRequest, match="at least one"):
        mem.append("k")
    assert "k" not in mem


def test_update_applies_a_function(mem: Memory) -> None:
    assert mem.update("prefs", lambda p: {**p, "lang": "en"}, default={}) == {"lang": "en"}
    assert mem.update("prefs", lambda p: {**p, "tz": "UTC"}) == {"lang": "en", "tz": "UTC"}
    assert mem.get("prefs") == {"lang": "en", "tz": "UTC"}

    def boom(value: Any) -> Any:
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        mem.update("prefs", boom)
    assert mem.get("prefs") == {"lang": "en", "tz": "UTC"}


def test_update_loses_no_update_across_threads(store: Store) -> None:
    def work() -> None:
        mem = store.memory()
        for _ in range(25):
            mem.update("counter", lambda n: n + 1, default=0)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.memory().get("counter") == 100


def test_clear_deletes_only_its_namespace(store: Store) -> None:
    mem, other = store.memory("a"), store.memory("b")
    mem.set_many({"x": 1, "y": 2})
    mem.append("l", 1)
    other.set("x", 1)
    assert mem.clear() == 3
    assert mem.keys() == []
    assert other.get("x") == 1
    assert mem.clear() == 0


# -- listing --------------------------------------------------------------------------------


def test_keys_with_prefix_and_more_than_one_page(mem: Memory) -> None:
    mem.set_many({f"user:{n:05}": n for n in range(1050)})
    mem.set_many({"other": 0, "user;": 1, "use": 2})
    keys = mem.keys("user:")
    assert len(keys) == 1050
    assert keys == sorted(keys)
    assert keys[0] == "user:00000" and keys[-1] == "user:01049"
    assert len(mem.list_keys()) == 1053
    assert mem.keys("user:0104") == [f"user:0104{n}" for n in range(10)]
    assert mem.keys("nothing") == []


def test_keys_from_a_point_backwards_and_limited(mem: Memory) -> None:
    mem.set_many({f"cp:{n:05}": n for n in range(1500)})
    mem.set_many({"cp;": 1, "co": 2, "cp:00007x": 3})
    everything = mem.keys("cp:")
    assert mem.keys("cp:", reverse=True) == everything[::-1]  # across pages
    assert mem.keys("cp:", reverse=True, limit=1) == ["cp:01499"]  # the last, in one page
    assert mem.keys("cp:", reverse=True, limit=1200)[-1] == "cp:00300"
    assert mem.keys("cp:", after="cp:00007", limit=2) == ["cp:00007x", "cp:00008"]
    assert mem.keys("cp:", after="cp:00008", reverse=True) == ["cp:00007x", *everything[:8][::-1]]
    assert mem.keys("cp:", after="cp:01499") == []
    assert mem.keys(reverse=True, limit=2) == ["cp;", "cp:01499"]
    assert mem.keys("nothing", reverse=True, limit=3) == []
    for bad in ({"limit": 0}, {"limit": "2"}, {"after": "a\x00"}, {"after": 5}):
        with pytest.raises((InvalidRequest, InvalidKey)):
            mem.keys("cp:", **bad)


def test_keys_by_last_change_page_newest_first(store: Store) -> None:
    mem = store.memory("bylast")
    mem.set_many({f"k{n:02}": n for n in range(5)})  # one moment: ties go by key
    store.advance(0.01)
    mem.set("k01", "touched")
    store.advance(0.01)
    mem.set("z", "new")
    mem.set("other", 1, ttl=0.005)  # expired by the time it is listed
    store.advance(0.01)
    want = ["z", "k01", "k00", "k02", "k03", "k04"]

    def listing(reverse: bool, limit: int) -> list[str]:
        found: list[str] = []
        after: str | None = None
        while True:
            op = ListKeys("bylast", "", limit, after, reverse, by_update=True)
            (page,) = store.backend.execute([op])
            found += [info.key for info in page.keys]
            if page.next_cursor is None:
                return found
            after = page.next_cursor

    assert listing(False, 1000) == want
    assert listing(False, 2) == want  # across pages, ties included
    assert listing(True, 1) == want[::-1]
    (page,) = store.backend.execute([ListKeys("bylast", "k", 2, by_update=True)])
    assert [info.key for info in page.keys] == ["k01", "k00"]
    for bad in ("k01", "12x:k", ":k", "9999999999999999999:k"):
        with pytest.raises(InvalidRequest, match="cursor"):
            store.backend.execute([ListKeys("bylast", "", 5, bad, by_update=True)])


def test_namespaces_with_their_sizes(store: Store) -> None:
    store.memory("sized-a").set_many({"x": "abc", "y": [1, 2]})
    store.memory("sized-b").set("only", 12345)
    store.memory("sized-c").set("gone", 1, ttl=0.005)
    store.advance(0.01)
    (infos,) = store.backend.execute([ListNamespaces("sized-", sizes=True)])
    assert [tuple(info) for info in infos] == [
        ("sized-a", 2, len('"abc"') + len("[1,2]"), 0),
        ("sized-b", 1, len("12345"), 0),
    ]
    assert all(type(n) is int for info in infos for n in info[1:])
    (names,) = store.backend.execute([ListNamespaces("sized-")])
    assert names == ["sized-a", "sized-b"]


async def test_async_keys_from_a_point_backwards(store: Store) -> None:
    amem = store.amemory("rev")
    await amem.set_many({f"k{n}": n for n in range(5)})
    assert await amem.keys("k", reverse=True, limit=2) == ["k4", "k3"]
    assert await amem.keys(after="k1", limit=2) == ["k2", "k3"]


def test_reads_run_beside_each_other_in_one_round_trip(mem: Memory) -> None:
    """``together``: reads of several namespaces (``items`` across pages, ``keys``,
    ``get_many``) answered in one batch per round, as each answers alone."""
    other = Memory(f"{mem.namespace}-other", backend=mem.backend)
    mem.set_many({f"r:{n:04}": n for n in range(1200)})
    mem.delete("r:0500")
    mem.append("r:0500", "a", "b")
    other.set_many({"r:1": {"o": 1}, "s": [2]})
    batches: list[int] = []

    def execute(ops: list[Any]) -> list[Any]:
        batches.append(len(ops))
        return mem.backend.execute(ops)

    reads = [
        mem._read_steps("items", "r:", reverse=True, limit=1100),
        other._read_steps("keys"),
        other._read_steps("get_many", ["r:1", "s", "missing"]),
        mem._read_steps("items", "nothing"),
    ]
    answers = run_steps(execute, together(reads))
    assert answers == [
        mem.items("r:", reverse=True, limit=1100),
        ["r:1", "s"],
        {"r:1": {"o": 1}, "s": [2]},
        {},
    ]
    assert answers[0]["r:0500"] == ["a", "b"] and len(answers[0]) == 1100
    assert len(batches) == 2 and batches[1] == 1  # the second page's read went alone
    with pytest.raises(InvalidRequest, match="not a read"):
        next(mem._read_steps("set_many", {"k": 1}))
    assert mem.keys("k") == []


def test_items_read_a_range_with_its_values(mem: Memory) -> None:
    """``items`` lists as ``keys`` does, with each value, lists included, across pages."""
    mem.set_many({f"cp:{n:05}": {"n": n} for n in range(1500)})
    mem.set_many({"cp;": 1, "co": [2], "cp:00007x": "three"})
    mem.delete("cp:00003")
    mem.append("cp:00003", "a", {"b": None})
    mem.delete("cp:00009")
    everything = mem.items("cp:")
    assert list(everything) == mem.keys("cp:") and len(everything) == 1500
    assert everything["cp:00003"] == ["a", {"b": None}] and everything["cp:00007x"] == "three"
    assert everything["cp:01499"] == {"n": 1499} and "cp:00009" not in everything
    assert list(mem.items("cp:", reverse=True)) == list(everything)[::-1]
    assert mem.items("cp:", after="cp:00007", limit=2) == {
        "cp:00007x": "three",
        "cp:00008": {"n": 8},
    }
    assert mem.items("cp:", after="cp:00008", reverse=True, limit=2) == {
        "cp:00007x": "three", "cp:00007": {"n": 7}}  # fmt: skip
    assert mem.items(reverse=True, limit=2) == {"cp;": 1, "cp:01499": {"n": 1499}}
    assert mem.items("nothing") == {}
    lists = ("ca:a", "ca:b", "ca:c")
    for n in range(3):  # lists whose items were added in turns, each read whole and in order
        for key in lists:
            mem.append(key, f"{key}{n}")
    assert mem.items("ca:") == {key: [f"{key}{n}" for n in range(3)] for key in lists}
    for bad in ({"limit": 0}, {"after": "a\x00"}, {"prefix": 5}):
        with pytest.raises((InvalidRequest, InvalidKey)):
            mem.items(**bad)


async def test_async_items(store: Store) -> None:
    amem = store.amemory("items")
    await amem.set_many({f"k{n}": [n] for n in range(5)})
    assert await amem.items("k", reverse=True, limit=2) == {"k4": [4], "k3": [3]}
    assert await amem.items(after="k2") == {"k3": [3], "k4": [4]}


def test_keys_prefix_with_odd_characters(mem: Memory) -> None:
    mem.set_many({"a?b": 1, "a?c": 2, "a": 3, "a/b": 4, "🧠x": 5, "🧠": 6, "🧡": 7})
    assert mem.keys("a?") == ["a?b", "a?c"]
    assert mem.keys("🧠") == ["🧠", "🧠x"]
    assert mem.keys("a/") == ["a/b"]


def test_list_namespaces(store: Store) -> None:
    for name in ["bot:1", "bot:2", "cat"]:
        store.memory(name).set("k", 1)
    store.memory("gone").set("k", 1)
    store.memory("gone").delete("k")
    (names,) = store.backend.execute([ListNamespaces("")])
    assert names == ["bot:1", "bot:2", "cat"]
    (names,) = store.backend.execute([ListNamespaces("bot:")])
    assert names == ["bot:1", "bot:2"]


# -- time to live ---------------------------------------------------------------------------


def test_ttl_expires_keys(store: Store) -> None:
    mem = store.memory()
    mem.set("short", 1, ttl=0.5)
    mem.set("long", 2, ttl=timedelta(hours=1))
    mem.set("forever", 3)
    remaining = mem.ttl("short")
    assert remaining is not None and 0 < remaining <= 0.5
    assert mem.ttl("forever") is None
    assert mem.ttl("missing") is None
    store.advance(0.8)
    assert mem.get("short") is None
    assert "short" not in mem
    assert mem.entry("short") is None
    assert mem.get_many(["short", "long"]) == {"long": 2}
    assert mem.keys() == ["forever", "long"]
    assert mem.delete("short") is False
    assert mem.ttl("short") is None


def test_expired_key_starts_afresh(store: Store) -> None:
    mem = store.memory()
    mem.set("n", 41, ttl=0.5)
    mem.append("l", 1, 2)
    mem.expire("l", 0.5)
    first = mem.entry("n")
    store.advance(0.8)
    assert mem.incr("n") == 1
    assert mem.append("l", 3) == 1
    assert mem.get("l") == [3]
    assert mem.ttl("n") is None
    mem.set("n", 5, ttl=0.5)
    store.advance(0.8)
    assert mem.set("n", 6, if_version=0) > 0
    entry = mem.entry("n")
    assert first is not None and entry is not None and entry.created_at > first.created_at


def test_expire_sets_and_removes_expiry(store: Store) -> None:
    mem = store.memory()
    mem.set("k", 1)
    assert mem.expire("k", 0.5) is True
    remaining = mem.ttl("k")
    assert remaining is not None and remaining <= 0.5
    assert mem.expire("k", None) is True
    assert mem.ttl("k") is None
    assert mem.expire("missing", 5) is False
    assert "missing" not in mem
    mem.expire("k", 0.5)
    store.advance(0.8)
    assert mem.expire("k", 10) is False


def test_refresh_ttl_slides_the_expiry(store: Store) -> None:
    mem = store.memory()
    mem.set("session", "s", ttl=1.0)
    store.advance(0.6)
    assert mem.get("session", refresh_ttl=True) == "s"
    store.advance(0.6)
    assert mem.get("session") == "s"  # 1.2 s after set, 0.6 s after the refresh
    store.advance(0.6)
    assert mem.get("session") is None


def test_writes_that_keep_the_expiry(store: Store) -> None:
    mem = store.memory()
    mem.set("n", 1, ttl=0.5)
    mem.incr("n")
    mem.update("n", lambda v: v * 10)
    mem.set("l", [1], ttl=0.5)
    mem.append("l", 2)
    assert mem.ttl("n") is not None and mem.ttl("l") is not None
    store.advance(0.8)
    assert mem.keys() == []


def test_set_without_ttl_removes_the_expiry(store: Store) -> None:
    mem = store.memory()
    mem.set("k", 1, ttl=0.5)
    mem.set("k", 2)
    store.advance(0.8)
    assert mem.get("k") == 2


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf"), "10", True, 1e12, 10**400])
def test_bad_ttl_is_refused(mem: Memory, ttl: Any) -> None:
    with pytest.raises(InvalidRequest, match="ttl"):
        mem.set("k", 1, ttl=ttl)
    if not (isinstance(ttl, (int, float)) and ttl <= 0):  # expire(k, 0) means "now"
        with pytest.raises(InvalidRequest, match="ttl"):
            mem.expire("k", ttl)
    assert "k" not in mem


@pytest.mark.parametrize("ttl", [0, -5, 0.0, timedelta(0)])
def test_expire_with_zero_or_less_expires_now(mem: Memory, ttl: Any) -> None:
    mem.set("k", 1)
    mem.append("l", 1)
    assert mem.expire("k", ttl) is True
    assert mem.expire("l", ttl) is True
    assert "k" not in mem and mem.get("l") is None
    assert mem.keys() == []
    assert mem.expire("k", 0) is False
    assert mem.set("k", 2, if_version=0) > 0  # the key is gone: it can be created afresh


# -- async ----------------------------------------------------------------------------------


async def test_async_memory_mirrors_memory(store: Store) -> None:
    mem = store.amemory("async")
    assert await mem.set("k", {"a": 1}, ttl=60) > 0
    assert await mem.get("k") == {"a": 1}
    assert await mem.has("k")
    assert await mem.append("l", 1, 2, max_len=1) == 1
    assert await mem.incr("n", 3) == 3
    assert await mem.update("n", lambda v: v + 1) == 4

    async def double(v: int) -> int:
        return v * 2

    assert await mem.update("n", double) == 8
    await mem.set_many({"x": 1, "y": 2})
    assert await mem.get_many(["x", "y"]) == {"x": 1, "y": 2}
    assert await mem.delete_many(["x"]) == 1
    assert await mem.keys() == ["k", "l", "n", "y"]
    assert await mem.list_keys("l") == ["l"]
    remaining = await mem.ttl("k")
    assert remaining is not None and 59 < remaining <= 60
    assert await mem.expire("k", None)
    entry = await mem.entry("k")
    assert entry is not None and entry.value == {"a": 1}
    with pytest.raises(WrongType):
        await mem.incr("k")
    with pytest.raises(InvalidValue):
        await mem.set("bad", {1})
    assert await mem.delete("k") is True
    assert await mem.clear() == 3
    assert store.memory("async").keys() == []


def test_a_read_of_the_value_alone_answers_as_a_full_read(store: Store) -> None:
    """``Get(meta=False)`` (what ``Memory.get`` sends) gives the same value, expiry and
    absence as a full read, for values, lists and expired keys."""
    mem = store.memory("value-alone")
    mem.set("v", {"a": [1, "x"]})
    mem.append("chat", "one", "two")
    mem.set("soon", 1, ttl=1)
    store.advance(2)
    for key in ("v", "chat", "soon", "missing"):
        full, alone = store.backend.execute(
            [Get("value-alone", key), Get("value-alone", key, meta=False)]
        )
        single = store.backend.execute([Get("value-alone", key, meta=False)])[0]
        for lean in (alone, single):
            if full is None:
                assert lean is None, key
            else:
                assert lean is not None and lean.value == full.value, key
                assert lean.expires_at == full.expires_at, key
    assert mem.get("chat") == ["one", "two"] and mem.get("soon") is None
